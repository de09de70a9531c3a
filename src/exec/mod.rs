//! The executor: runs the selected part of a [`Plan`] and materializes its outputs.
//!
//! 1. Hash source inputs (through the stat cache: unchanged files are not reread).
//! 2. Walk the DAG in dependency order. For each ready node compute its key from its inputs'
//!    digests (upstream *output* digests, so an unchanged output cuts off rebuilds downstream).
//!    An action record with intact objects means no work; otherwise the action runs on the rayon
//!    pool (`-j`), into a private staging directory, and its outputs are moved into the CAS.
//! 3. Check the lock (`--locked`), place outputs under `out/`, remove stale ones, write the lock
//!    and state.
//!
//! Failures stop scheduling (or not, with `--keep-going`); running actions finish. Ctrl-C sets a
//! cancellation flag that actions poll; nothing is ever written in place, so an interruption at
//! any point leaves only whole files behind.

mod fault;
pub mod lockfile;
pub mod materialize;
mod progress;
pub use progress::LogWriter;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::actions::{ResolvedInput, RunCtx};
use crate::cache::stat::digest_dir;
use crate::cache::{ActionRecord, Digest, OutputEntry, StatCache, Store, ac, cas};
use crate::manifest::Project;
use crate::plan::{Input, Plan, Selection, key};
use crate::{Error, Result};
use lockfile::{LockEntry, LockFile, LockInput};
use materialize::{Placed, State};

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Targets (`model`, `model:quant`, `release`); empty for everything.
    pub targets: Vec<String>,
    /// Worker threads, shared by parallel actions and their internal parallelism.
    pub jobs: usize,
    /// Continue with independent actions after a failure.
    pub keep_going: bool,
    /// Report what would run without running or writing anything.
    pub dry_run: bool,
    /// Fail if the lock file would change.
    pub locked: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// Print per-action lines.
    pub verbose_lines: bool,
}

/// What happened to one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Executed.
    Run,
    /// Found in the cache; outputs had to be (re)placed.
    FromCache,
    /// Found in the cache; outputs already in place.
    UpToDate,
    /// Would run (dry run).
    WouldRun,
    /// Failed.
    Failed,
    /// Not run because something it needs failed or the build stopped.
    Skipped,
}

impl Status {
    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            Status::Run => "run",
            Status::FromCache => "from cache",
            Status::UpToDate => "up to date",
            Status::WouldRun => "would run",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// Per-action result.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    /// Action id.
    pub id: String,
    /// Action kind.
    pub kind: String,
    /// Outcome.
    pub status: Status,
    /// Action key, when known.
    pub key: Option<String>,
    /// Wall time spent running it.
    pub seconds: f64,
    /// Error message, if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The key preimage (kept for `status --explain`, not serialized).
    #[serde(skip)]
    pub preimage: Option<serde_json::Value>,
}

/// Build summary (the `--json` output of `tinylm build`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct BuildReport {
    /// Selected actions.
    pub actions: usize,
    /// Executed.
    pub run: usize,
    /// Cache hits whose outputs were (re)placed.
    pub from_cache: usize,
    /// Cache hits with outputs already in place.
    pub up_to_date: usize,
    /// Would run (dry run).
    pub would_run: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped because of failures.
    pub skipped: usize,
    /// Source and cache files hashed (0 on a no-op build).
    pub hashed_files: u64,
    /// Bytes hashed.
    pub hashed_bytes: u64,
    /// Files placed under the output directory.
    pub placed: usize,
    /// Stale files removed from the output directory.
    pub removed: usize,
    /// Whether the lock file changed.
    pub lock_changed: bool,
    /// Wall time.
    pub seconds: f64,
    /// Error messages of failed actions.
    pub errors: Vec<String>,
    /// Per-action details in execution order.
    pub details: Vec<ActionReport>,
    /// Remote cache counters, when a remote cache is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<crate::cache::remote::RemoteReport>,
}

impl BuildReport {
    /// The one-line human summary.
    pub fn summary_line(&self) -> String {
        let mut s = format!(
            "{} actions: {} run, {} from cache, {} up to date",
            self.actions, self.run, self.from_cache, self.up_to_date
        );
        for (n, what) in [
            (self.would_run, "would run"),
            (self.failed, "failed"),
            (self.skipped, "skipped"),
        ] {
            if n > 0 {
                s += &format!(", {n} {what}");
            }
        }
        s += &format!(" ({:.2}s)", self.seconds);
        if let Some(r) = self.remote.as_ref().filter(|r| r.contacted) {
            s += &format!("; {}", r.summary());
        }
        s
    }
}

/// Paths of a project's own files (state, lock) and its cache.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The validated manifest.
    pub project: Project,
    /// The cache.
    pub store: Store,
}

impl Workspace {
    /// `.tinylm/` in the project.
    pub fn state_dir(&self) -> PathBuf {
        self.project.root.join(".tinylm")
    }

    /// The project state file.
    pub fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.project.root.join(lockfile::LOCK_FILE)
    }
}

#[derive(Debug, Clone)]
enum NodeState {
    Waiting,
    Done {
        outputs: BTreeMap<String, OutputEntry>,
        key: Digest,
        inputs: Vec<ResolvedInput>,
    },
    WouldRun,
    Failed,
    Skipped,
}

struct JobResult {
    node: NodeIndex,
    result: Result<BTreeMap<String, OutputEntry>>,
    seconds: f64,
    key: Digest,
    inputs: Vec<ResolvedInput>,
    /// Restored from the remote cache instead of run.
    remote: bool,
}

/// Builds the selected targets of `plan`.
pub fn build(
    ws: &Workspace,
    plan: &Plan,
    opts: &BuildOptions,
    cancel: Arc<AtomicBool>,
) -> Result<BuildReport> {
    let started = Instant::now();
    let sel = plan.select(&opts.targets)?;
    let stat = StatCache::load(&ws.store.stat_path());
    let old_lock = LockFile::read(&ws.lock_path())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("tinylm-worker-{i}"))
        .build()
        .map_err(|e| Error::Build(format!("cannot start worker threads: {e}")))?;

    let sources = pool.install(|| hash_sources(plan, &sel, &stat))?;
    let mut report = BuildReport {
        actions: sel.nodes.len(),
        ..Default::default()
    };
    let mut progress = progress::Progress::new(opts.progress, sel.nodes.len() as u64);
    let (states, mut details, errors) = schedule(
        ws,
        plan,
        &sel,
        &sources,
        &stat,
        &old_lock,
        opts,
        &cancel,
        &pool,
        &mut progress,
    );
    progress.finish();
    // Background uploads finish before the build reports success.
    report.remote = ws.store.finish_remote();
    stat.save()?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    report.errors = errors;

    // The lock as this build leaves it: fresh entries for what was built, old ones for the rest.
    let mut lock = LockFile {
        version: 1,
        actions: BTreeMap::new(),
    };
    for ix in plan.graph.node_indices() {
        let id = &plan.graph[ix].id;
        match &states[ix.index()] {
            NodeState::Done {
                outputs,
                key,
                inputs,
                ..
            } => {
                lock.actions
                    .insert(id.clone(), lock_entry(ws, plan, ix, key, inputs, outputs));
            }
            _ => {
                if let Some(e) = old_lock.actions.get(id) {
                    lock.actions.insert(id.clone(), e.clone());
                }
            }
        }
    }
    if opts.locked && !opts.dry_run {
        // A CI gate: on any failure or lock change, write nothing at all.
        if let Some(e) = report.errors.first() {
            return Err(Error::Build(e.clone()));
        }
        if lock != old_lock {
            let ids = lock.changed_ids(&old_lock);
            return Err(Error::Build(format!(
                "--locked: the build would change tinylm.lock ({}); run `tinylm build` and commit the lock",
                ids.join(", ")
            )));
        }
    }

    if opts.dry_run {
        let touched = unplaced_owners(ws, plan, &sel, &states);
        for d in &mut details {
            if d.status == Status::UpToDate && touched.contains(&d.id) {
                d.status = Status::FromCache;
            }
        }
    } else {
        let (placed, removed, touched) = place_outputs(ws, plan, &sel, &states)?;
        report.placed = placed;
        report.removed = removed;
        for d in &mut details {
            if d.status == Status::UpToDate && touched.contains(&d.id) {
                d.status = Status::FromCache;
            }
        }
        report.lock_changed = lock.write_if_changed(&ws.lock_path())?;
        register_root(ws, &lock);
    }

    for d in &details {
        match d.status {
            Status::Run => report.run += 1,
            Status::FromCache => report.from_cache += 1,
            Status::UpToDate => report.up_to_date += 1,
            Status::WouldRun => report.would_run += 1,
            Status::Failed => report.failed += 1,
            Status::Skipped => report.skipped += 1,
        }
    }
    report.hashed_files = stat.hashed_files.load(Ordering::Relaxed);
    report.hashed_bytes = stat.hashed_bytes.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    report.details = details;
    Ok(report)
}

/// Digests of every source file and directory the selection reads, hashed in parallel.
fn hash_sources(
    plan: &Plan,
    sel: &Selection,
    stat: &StatCache,
) -> Result<HashMap<PathBuf, (Digest, u64)>> {
    use rayon::prelude::*;
    let mut wanted: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for &ix in &sel.nodes {
        for (_, input) in &plan.graph[ix].inputs {
            match input {
                Input::File(p) => {
                    wanted.insert(p.clone(), false);
                }
                Input::Dir(p) => {
                    wanted.insert(p.clone(), true);
                }
                Input::Output { .. } => {}
            }
        }
    }
    wanted
        .into_par_iter()
        .map(|(path, is_dir)| {
            let d = if is_dir {
                digest_dir(stat, &path)
            } else {
                stat.digest(&path)
            };
            let d = d.map_err(|e| match e {
                Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::Build(format!("input {} does not exist", path.display()))
                }
                other => other,
            })?;
            Ok((path, d))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn schedule(
    ws: &Workspace,
    plan: &Plan,
    sel: &Selection,
    sources: &HashMap<PathBuf, (Digest, u64)>,
    stat: &StatCache,
    old_lock: &LockFile,
    opts: &BuildOptions,
    cancel: &Arc<AtomicBool>,
    pool: &rayon::ThreadPool,
    progress: &mut progress::Progress,
) -> (Vec<NodeState>, Vec<ActionReport>, Vec<String>) {
    let g = &plan.graph;
    let mut states = vec![NodeState::Waiting; g.node_count()];
    let mut details: Vec<ActionReport> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    // Unfinished upstream nodes per selected node.
    let mut pending: HashMap<NodeIndex, usize> = sel
        .nodes
        .iter()
        .map(|&n| {
            let ups: BTreeSet<NodeIndex> = g
                .edges_directed(n, Direction::Incoming)
                .map(|e| e.source())
                .collect();
            (n, ups.len())
        })
        .collect();
    let mut ready: VecDeque<NodeIndex> = plan
        .topo_order()
        .into_iter()
        .filter(|n| sel.nodes.contains(n) && pending[n] == 0)
        .collect();
    let mut stop = false;
    let (tx, rx) = mpsc::channel::<JobResult>();
    let mut in_flight = 0usize;

    pool.in_place_scope(|scope| {
        loop {
            while let Some(n) = ready.pop_front() {
                let node = &g[n];
                let finish = |states: &mut Vec<NodeState>, st: NodeState, ready: &mut VecDeque<NodeIndex>, pending: &mut HashMap<NodeIndex, usize>| {
                    states[n.index()] = st;
                    release_dependents(plan, sel, n, pending, ready);
                };
                if stop || cancel.load(Ordering::Relaxed) {
                    details.push(report(node, Status::Skipped, None, 0.0, None));
                    finish(&mut states, NodeState::Skipped, &mut ready, &mut pending);
                    continue;
                }
                // Resolve inputs; an upstream that failed or would run decides for us.
                let mut inputs = Vec::new();
                let mut blocked: Option<NodeState> = None;
                for (name, input) in &node.inputs {
                    match input {
                        Input::File(p) | Input::Dir(p) => {
                            let (digest, size) = sources[p];
                            inputs.push(ResolvedInput { name: name.clone(), path: p.clone(), digest, size });
                        }
                        Input::Output { node: up, output } => match &states[up.index()] {
                            NodeState::Done { outputs, .. } => match outputs.get(output) {
                                Some(o) => inputs.push(ResolvedInput {
                                    name: name.clone(),
                                    path: ws.store.object_path(&o.digest),
                                    digest: o.digest,
                                    size: o.size,
                                }),
                                None => blocked = Some(NodeState::Failed),
                            },
                            NodeState::WouldRun => blocked = Some(NodeState::WouldRun),
                            _ => blocked = Some(NodeState::Skipped),
                        },
                    }
                }
                if let Some(st) = blocked {
                    let status = if matches!(st, NodeState::WouldRun) { Status::WouldRun } else { Status::Skipped };
                    details.push(report(node, status, None, 0.0, None));
                    finish(&mut states, st, &mut ready, &mut pending);
                    continue;
                }
                let preimage = key::preimage(node.action.as_ref(), &inputs);
                let k = key::key_of(&preimage);
                if let Some(outputs) = cached_outputs(ws, stat, &k, node.action.outputs()) {
                    details.push(report(node, Status::UpToDate, Some(&k), 0.0, None));
                    progress.done(&node.id);
                    finish(&mut states, NodeState::Done { outputs, key: k, inputs }, &mut ready, &mut pending);
                    continue;
                }
                if opts.locked && old_lock.actions.get(&node.id).is_none_or(|e| e.key != k) {
                    let msg = format!(
                        "--locked: `{}` is not in tinylm.lock with this key; the build would change the lock. \
                         Run `tinylm build` and commit tinylm.lock",
                        node.id
                    );
                    details.push(report(node, Status::Failed, Some(&k), 0.0, Some(msg.clone())));
                    errors.push(msg);
                    stop = true;
                    finish(&mut states, NodeState::Failed, &mut ready, &mut pending);
                    continue;
                }
                if opts.dry_run {
                    let mut r = report(node, Status::WouldRun, Some(&k), 0.0, None);
                    r.preimage = Some(preimage);
                    details.push(r);
                    finish(&mut states, NodeState::WouldRun, &mut ready, &mut pending);
                    continue;
                }
                progress.start(&node.id, opts.verbose_lines);
                let tx = tx.clone();
                in_flight += 1;
                scope.spawn(move |_| {
                    let t0 = Instant::now();
                    let action = &plan.graph[n].action;
                    let (result, remote) = match ws.store.fetch_remote(stat, &k, action.kind(), &preimage, &action.outputs(), cancel) {
                        Some(outputs) => (Ok(outputs), true),
                        None => (run_node(ws, plan, n, &inputs, &k, preimage, stat, cancel), false),
                    };
                    let _ = tx.send(JobResult { node: n, result, seconds: t0.elapsed().as_secs_f64(), key: k, inputs, remote });
                });
            }
            if in_flight == 0 {
                break;
            }
            let Ok(done) = rx.recv() else { break };
            in_flight -= 1;
            let node = &g[done.node];
            match done.result {
                Ok(outputs) => {
                    let status = if done.remote { Status::FromCache } else { Status::Run };
                    details.push(report(node, status, Some(&done.key), done.seconds, None));
                    if done.remote {
                        progress.downloaded(&node.id, done.seconds, opts.verbose_lines);
                    } else {
                        progress.finished(&node.id, done.seconds, opts.verbose_lines);
                    }
                    states[done.node.index()] =
                        NodeState::Done { outputs, key: done.key, inputs: done.inputs };
                }
                Err(e) => {
                    let msg = format!("{} failed: {e}", node.id);
                    progress.failed(&msg);
                    details.push(report(node, Status::Failed, Some(&done.key), done.seconds, Some(e.to_string())));
                    states[done.node.index()] = NodeState::Failed;
                    if !matches!(e, Error::Interrupted) {
                        errors.push(msg);
                    }
                    if !opts.keep_going {
                        stop = true;
                    }
                }
            }
            release_dependents(plan, sel, done.node, &mut pending, &mut ready);
        }
    });
    (states, details, errors)
}

fn release_dependents(
    plan: &Plan,
    sel: &Selection,
    n: NodeIndex,
    pending: &mut HashMap<NodeIndex, usize>,
    ready: &mut VecDeque<NodeIndex>,
) {
    let downs: BTreeSet<NodeIndex> = plan
        .graph
        .edges_directed(n, Direction::Outgoing)
        .map(|e| e.target())
        .collect();
    for d in downs {
        if !sel.nodes.contains(&d) {
            continue;
        }
        if let Some(c) = pending.get_mut(&d) {
            *c -= 1;
            if *c == 0 {
                ready.push_back(d);
            }
        }
    }
}

fn report(
    node: &crate::plan::Node,
    status: Status,
    key: Option<&Digest>,
    seconds: f64,
    error: Option<String>,
) -> ActionReport {
    ActionReport {
        id: node.id.clone(),
        kind: node.action.kind().to_string(),
        status,
        key: key.map(Digest::to_hex),
        seconds,
        error,
        preimage: None,
    }
}

/// The outputs recorded for `key`, if the record exists and every object is intact.
fn cached_outputs(
    ws: &Workspace,
    stat: &StatCache,
    key: &Digest,
    expected: Vec<String>,
) -> Option<BTreeMap<String, OutputEntry>> {
    let rec = ac::read(&ws.store, key)?;
    if rec.outputs.keys().cloned().collect::<Vec<_>>() != sorted(expected) {
        return None;
    }
    for (name, o) in &rec.outputs {
        let path = ws.store.object_path(&o.digest);
        match stat.verify(&path, &o.digest, o.size) {
            Ok(true) => {}
            _ => {
                tracing::warn!(
                    "cache object for output `{name}` ({}) is missing or corrupt; rebuilding",
                    o.digest
                );
                cas::remove(&ws.store, stat, &o.digest);
                ac::remove(&ws.store, key);
                return None;
            }
        }
    }
    Some(rec.outputs)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[allow(clippy::too_many_arguments)]
fn run_node(
    ws: &Workspace,
    plan: &Plan,
    n: NodeIndex,
    inputs: &[ResolvedInput],
    key: &Digest,
    preimage: serde_json::Value,
    stat: &StatCache,
    cancel: &Arc<AtomicBool>,
) -> Result<BTreeMap<String, OutputEntry>> {
    let node = &plan.graph[n];
    // Warnings from inside the action then name the action they come from. No parent: rayon may
    // run another action on this thread while this one waits, and only the innermost matters.
    let _span = tracing::warn_span!(parent: None, "action", id = %node.id).entered();
    tracing::info!("running (key {})", &key.to_hex()[..12]);
    let tmp_root = ws.store.tmp_dir();
    let staging = tempfile::Builder::new()
        .prefix(&format!("{}-", std::process::id()))
        .tempdir_in(&tmp_root)
        .map_err(|e| Error::io(&tmp_root, e))?;
    let ctx = RunCtx {
        inputs,
        out_dir: staging.path(),
        cancel,
    };
    node.action.run(&ctx)?;
    fault::point("after-run", &node.id);
    let mut outputs = BTreeMap::new();
    for name in node.action.outputs() {
        let file = staging.path().join(&name);
        if !file.is_file() {
            return Err(Error::Build(format!(
                "internal error: {} did not produce its output `{name}`",
                node.id
            )));
        }
        let (digest, size) = cas::insert(&ws.store, stat, &file)?;
        outputs.insert(name, OutputEntry { digest, size });
    }
    fault::point("before-record", &node.id);
    ws.store.record(&ActionRecord::new(
        *key,
        node.action.kind(),
        preimage,
        outputs.clone(),
    ))?;
    Ok(outputs)
}

fn lock_entry(
    ws: &Workspace,
    plan: &Plan,
    ix: NodeIndex,
    key: &Digest,
    inputs: &[ResolvedInput],
    outputs: &BTreeMap<String, OutputEntry>,
) -> LockEntry {
    let node = &plan.graph[ix];
    let mut map = BTreeMap::new();
    for (input, resolved) in node.inputs.iter().zip(inputs) {
        let (path, from) = match &input.1 {
            Input::File(p) | Input::Dir(p) => (Some(relative(&ws.project.root, p)), None),
            Input::Output { node: up, output } => {
                (None, Some(format!("{}/{output}", plan.graph[*up].id)))
            }
        };
        map.insert(
            input.0.clone(),
            LockInput {
                path,
                from,
                digest: resolved.digest,
                size: resolved.size,
            },
        );
    }
    LockEntry {
        kind: node.action.kind().to_string(),
        key: *key,
        inputs: map,
        outputs: outputs.clone(),
    }
}

/// Registers the project in the cache with what its lock needs, so `gc` from another project
/// sharing the cache keeps it.
fn register_root(ws: &Workspace, lock: &LockFile) {
    let keys = lock.actions.values().map(|e| e.key).collect();
    let objects = lock
        .actions
        .values()
        .flat_map(|e| e.outputs.values().map(|o| o.digest))
        .collect();
    let r =
        crate::cache::roots::register(&ws.store, &ws.project.root, &ws.lock_path(), keys, objects);
    if let Err(e) = r {
        tracing::warn!("cannot register the project in the cache: {e}");
    }
}

/// `p` relative to `root` with `/` separators when it is inside it, else as given.
pub fn relative(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Ids of owners whose outputs are cached but not in place (what a build would restore).
fn unplaced_owners(
    ws: &Workspace,
    plan: &Plan,
    sel: &Selection,
    states: &[NodeState],
) -> BTreeSet<String> {
    let state = State::load(&ws.state_path());
    let mut out = BTreeSet::new();
    for m in plan
        .materializations
        .iter()
        .filter(|m| sel.nodes.contains(&m.owner))
    {
        if let NodeState::Done { outputs, .. } = &states[m.node.index()]
            && let Some(o) = outputs.get(&m.output)
            && !state.is_current(&ws.project.out, &m.dest, &o.digest)
        {
            out.insert(plan.graph[m.owner].id.clone());
        }
    }
    out
}

/// Places outputs of finished nodes and removes stale ones; returns (placed, removed, ids of
/// owners that had something placed).
fn place_outputs(
    ws: &Workspace,
    plan: &Plan,
    sel: &Selection,
    states: &[NodeState],
) -> Result<(usize, usize, BTreeSet<String>)> {
    let out = &ws.project.out;
    let state_path = ws.state_path();
    let mut state = State::load(&state_path);
    materialize::remove_leftover_temps(out);
    let mut placed = 0;
    let mut touched = BTreeSet::new();
    let mut current: BTreeSet<PathBuf> = BTreeSet::new();
    let mut mats: Vec<_> = plan
        .materializations
        .iter()
        .filter(|m| sel.nodes.contains(&m.owner))
        .collect();
    mats.sort_by(|a, b| a.dest.cmp(&b.dest));
    for m in mats {
        current.insert(m.dest.clone());
        let NodeState::Done { outputs, .. } = &states[m.node.index()] else {
            continue;
        };
        if !matches!(states[m.owner.index()], NodeState::Done { .. }) {
            continue;
        }
        let Some(o) = outputs.get(&m.output) else {
            continue;
        };
        if state.is_current(out, &m.dest, &o.digest) {
            continue;
        }
        fault::point("before-materialize", &plan.graph[m.owner].id);
        let stat = materialize::place(&ws.store.object_path(&o.digest), &out.join(&m.dest))?;
        state.placed.insert(
            m.dest.clone(),
            Placed {
                digest: o.digest,
                stat,
                group: m.group.clone(),
            },
        );
        placed += 1;
        touched.insert(plan.graph[m.owner].id.clone());
        // Save as we go: a crash between placements must not forget what is already there.
        if placed % 16 == 0 {
            state.save(&state_path)?;
        }
    }
    // Everything ever placed for the cleaned groups that this plan no longer produces.
    let all_dests: BTreeSet<&PathBuf> = plan.materializations.iter().map(|m| &m.dest).collect();
    let stale: Vec<PathBuf> = state
        .placed
        .iter()
        .filter(|(p, pl)| {
            (sel.all || sel.groups.contains(&pl.group))
                && !current.contains(*p)
                && !all_dests.contains(p)
        })
        .map(|(p, _)| p.clone())
        .collect();
    let mut removed = 0;
    for p in stale {
        if let Some(pl) = state.placed.remove(&p)
            && materialize::remove_stale(out, &p, &pl)
        {
            removed += 1;
        }
    }
    // A no-op build writes nothing (and pays for no fsync).
    if placed > 0 || removed > 0 {
        state.save(&state_path)?;
    }
    Ok((placed, removed, touched))
}
