//! The executor: runs the selected part of a [`BuildPlan`] and materializes its outputs.
//!
//! 1. Hash source inputs (through the stat cache: unchanged files are not reread).
//! 2. Walk the DAG in dependency order ([`scheduler`]). For each ready node compute its key from
//!    its inputs' digests (upstream *output* digests, so an unchanged output cuts off rebuilds
//!    downstream). An action record with intact objects means no work; otherwise the action runs
//!    on the rayon pool (`-j`), into a private staging directory, and its outputs are moved into
//!    the CAS.
//! 3. Check the lock (`--locked`), place outputs under `out/` ([`materialize`]), remove stale
//!    ones, write the lock ([`lockfile`]) and state.
//!
//! Failures stop scheduling (or not, with `--keep-going`); running actions finish. Ctrl-C sets a
//! cancellation flag that actions poll; nothing is ever written in place, so an interruption at
//! any point leaves only whole files behind.
//!
//! The executor knows nothing of the manifest: it sees a plan and a [`ProjectLayout`].

mod fault;
mod job;
pub(crate) mod lockfile;
mod lookahead;
pub(crate) mod materialize;
mod progress;
mod report;
mod scheduler;

pub use progress::{LogWriter, set_active_bar};
pub use report::{ActionReport, BuildReport, Status};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::cache::stat::digest_dir;
use crate::cache::{Digest, OutputEntry, StatCache, Store};
use crate::plan::{BuildPlan, Input, Selection};
use crate::{Error, Result};
use lockfile::LockFile;
use scheduler::{NodeState, Scheduler};

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

/// Where a project's build reads and writes: its root (lock paths are relative to it), its
/// output directory, its own state files under `.tinylm/` and the cache.
#[derive(Debug, Clone)]
pub struct ProjectLayout {
    /// Directory of the manifest.
    pub root: PathBuf,
    /// Output directory (absolute).
    pub out: PathBuf,
    /// The cache.
    pub store: Store,
}

impl ProjectLayout {
    /// `.tinylm/` in the project.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".tinylm")
    }

    /// The project state file (what was placed under `out/`).
    pub fn state_path(&self) -> PathBuf {
        self.state_dir().join("state.json")
    }

    /// The project lock (one build of a project at a time).
    pub fn project_lock_path(&self) -> PathBuf {
        self.state_dir().join("lock")
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(lockfile::LOCK_FILE)
    }
}

/// Removes temp files killed builds left in the project: in the output directory, in
/// `.tinylm/` and next to `tinylm.lock` (only tinylm's own names, only of processes that are
/// gone; see [`crate::fsutil::temp`]). Call with the project lock held.
pub fn remove_leftovers(layout: &ProjectLayout) {
    use crate::fsutil::temp::remove_stale_in;
    materialize::remove_leftover_temps(&layout.out);
    remove_stale_in(&layout.state_dir(), false, &|_| true);
    // Before 0.2, temp copies of the lock file were `.tmp-XXXXXX` next to it: recognised by
    // their content, since the project directory is not tinylm's.
    remove_stale_in(&layout.root, false, &lockfile::is_lock_text);
}

/// A cancellation flag set by Ctrl-C; a second Ctrl-C exits at once.
pub fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted twice: exiting now");
            std::process::exit(130);
        }
        eprintln!(
            "\ninterrupted: stopping after running actions notice (press Ctrl-C again to force)"
        );
    });
    flag
}

/// Registers the project in the cache with what its lock needs, so `gc` from another project
/// sharing the cache keeps it.
fn register_root(layout: &ProjectLayout, lock: &LockFile) {
    let keys = lock.actions.values().map(|e| e.key).collect();
    let objects = lock
        .actions
        .values()
        .flat_map(|e| e.outputs.values().map(|o| o.digest))
        .collect();
    let r = crate::cache::roots::register(
        &layout.store,
        &layout.root,
        &layout.lock_path(),
        keys,
        objects,
    );
    if let Err(e) = r {
        tracing::warn!("cannot register the project in the cache: {e}");
    }
}

/// Builds the selected targets of `plan`.
pub fn build(
    layout: &ProjectLayout,
    plan: &BuildPlan,
    opts: &BuildOptions,
    cancel: Arc<AtomicBool>,
) -> Result<BuildReport> {
    let started = Instant::now();
    let sel = plan.select(&opts.targets)?;
    let stat = layout.store.stat_cache();
    let old_lock = LockFile::read(&layout.lock_path())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .thread_name(|i| format!("tinylm-worker-{i}"))
        .build()
        .map_err(|e| Error::Build(format!("cannot start worker threads: {e}")))?;

    let mut report = BuildReport {
        actions: sel.nodes.len(),
        ..Default::default()
    };
    let mut progress = progress::Progress::new(opts.progress, sel.nodes.len() as u64);
    let prefetch = prefetch_list(layout, plan, &sel, &stat, &old_lock, opts);
    let stop_prefetch = AtomicBool::new(false);
    // Without --locked, keys are learned as sources are hashed and records arrive.
    let remote = layout.store.remote();
    let ahead = remote.filter(|_| !opts.locked && !opts.dry_run).map(|r| {
        let (queue, keys) = r.prefetch_queue();
        (lookahead::Lookahead::new(layout, plan, &sel, queue), keys)
    });
    let (ahead, keys) = match ahead {
        Some((a, k)) => (Some(a), Some(k)),
        None => (None, None),
    };
    let outcome = std::thread::scope(|s| {
        if let Some(remote) = remote.filter(|_| !prefetch.is_empty()) {
            remote.expect_prefetch(prefetch.iter().map(|(k, _)| *k));
            s.spawn(|| remote.prefetch(&layout.store, &stat, &prefetch, &stop_prefetch, &cancel));
        }
        if let (Some(remote), Some(ahead), Some(keys)) = (remote, &ahead, keys) {
            let seen = |k: &Digest, o: Option<&BTreeMap<String, OutputEntry>>| ahead.record(k, o);
            let (stop, cancel, stat) = (&stop_prefetch, &cancel, &stat);
            s.spawn(move || remote.prefetch_from(&layout.store, stat, keys, &seen, stop, cancel));
        }
        let on_hashed = |p: &std::path::Path, (d, size): (Digest, u64)| {
            if let Some(a) = &ahead {
                a.source(p, d, size);
            }
        };
        let sources = pool.install(|| hash_sources(plan, &sel, &stat, &on_hashed));
        let outcome = sources.map(|sources| {
            Scheduler {
                layout,
                plan,
                sel: &sel,
                sources: &sources,
                stat: &stat,
                old_lock: &old_lock,
                opts,
                cancel: &cancel,
            }
            .run(&pool, &mut progress)
        });
        // What the build did not ask for is not needed.
        stop_prefetch.store(true, Ordering::SeqCst);
        outcome
    })?;
    let (states, mut details) = (outcome.states, outcome.details);
    progress.finish();
    // Background uploads finish before the build reports success.
    report.remote = layout.store.finish_remote();
    stat.save()?;
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    report.errors = outcome.errors;

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
                lock.actions.insert(
                    id.clone(),
                    lockfile::entry(&layout.root, plan, ix, key, inputs, outputs),
                );
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
        let touched = materialize::unplaced_owners(layout, plan, &sel, &states);
        for d in &mut details {
            if d.status == Status::UpToDate && touched.contains(&d.id) {
                d.status = Status::FromCache;
            }
        }
    } else {
        let (placed, removed, touched) = materialize::place_outputs(layout, plan, &sel, &states)?;
        report.placed = placed;
        report.removed = removed;
        for d in &mut details {
            if d.status == Status::UpToDate && touched.contains(&d.id) {
                d.status = Status::FromCache;
            }
        }
        report.lock_changed = lock.write_if_changed(&layout.lock_path())?;
        register_root(layout, &lock);
    }

    // Execution order depends on thread timing; machines diffing reports need a stable one.
    details.sort_by(|a, b| a.id.cmp(&b.id));
    report.details = details;
    report.count_details();
    report.hashed_files = stat.hashed_files.load(Ordering::Relaxed);
    report.hashed_bytes = stat.hashed_bytes.load(Ordering::Relaxed);
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Actions a `--locked` build with a remote cache downloads up front: their keys are the
/// lock's (anything else fails the build), so downloads need not wait for source hashing or
/// for upstream actions. Those already restorable from the local cache are left out.
fn prefetch_list(
    layout: &ProjectLayout,
    plan: &BuildPlan,
    sel: &Selection,
    stat: &StatCache,
    old_lock: &LockFile,
    opts: &BuildOptions,
) -> Vec<(Digest, Vec<String>)> {
    if !opts.locked || opts.dry_run || layout.store.remote().is_none() {
        return Vec::new();
    }
    let mut list: Vec<(u64, Digest, Vec<String>)> = sel
        .nodes
        .iter()
        .filter_map(|&ix| {
            let node = &plan.graph[ix];
            let entry = old_lock.actions.get(&node.id)?;
            if layout.store.intact_record(stat, &entry.key).is_some() {
                return None;
            }
            let size: u64 = entry.outputs.values().map(|o| o.size).sum();
            Some((size, entry.key, node.action.outputs()))
        })
        .collect();
    // Largest first: the longest transfer must not be the one still running alone at the end,
    // and the small ones fill in around it.
    list.sort_by_key(|&(size, ..)| std::cmp::Reverse(size));
    list.into_iter().map(|(_, k, o)| (k, o)).collect()
}

/// Digests of every source file and directory the selection reads, hashed in parallel.
fn hash_sources(
    plan: &BuildPlan,
    sel: &Selection,
    stat: &StatCache,
    on_hashed: &(dyn Fn(&std::path::Path, (Digest, u64)) + Sync),
) -> Result<HashMap<PathBuf, (Digest, u64)>> {
    use rayon::prelude::*;
    let mut wanted: BTreeMap<PathBuf, bool> = BTreeMap::new();
    for &ix in &sel.nodes {
        for (_, input) in &plan.graph[ix].inputs {
            match input {
                Input::File(p) | Input::Dir(p) if plan.not_downloaded.contains_key(p) => {}
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
            on_hashed(&path, d);
            Ok((path, d))
        })
        .collect()
}
