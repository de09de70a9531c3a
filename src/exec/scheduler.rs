//! Walking the DAG: which node is ready, whether its outputs are cached, running it on the pool.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;

use super::job::{Job, JobResult};
use super::lockfile::LockFile;
use super::progress::Progress;
use super::report::{ActionReport, Status};
use super::{BuildOptions, ProjectLayout, fault};
use crate::actions::{ResolvedInput, RunCtx};
use crate::cache::{ActionRecord, Digest, OutputEntry, StatCache};
use crate::plan::{BuildPlan, Input, Selection, key};
use crate::{Error, Result};

/// Where a node stands during a build.
#[derive(Debug, Clone)]
pub(super) enum NodeState {
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

/// Everything one build's scheduling reads.
pub(super) struct Scheduler<'a> {
    pub layout: &'a ProjectLayout,
    pub plan: &'a BuildPlan,
    pub sel: &'a Selection,
    /// Digest and size of every source file and directory the selection reads.
    pub sources: &'a HashMap<PathBuf, (Digest, u64)>,
    pub stat: &'a StatCache,
    pub old_lock: &'a LockFile,
    pub opts: &'a BuildOptions,
    pub cancel: &'a Arc<AtomicBool>,
}

/// What scheduling did: the final state of every node, per-action reports in execution order,
/// and the error messages of failed actions.
pub(super) struct Outcome {
    pub states: Vec<NodeState>,
    pub details: Vec<ActionReport>,
    pub errors: Vec<String>,
}

impl Scheduler<'_> {
    /// Runs every selected node whose outputs are not cached, in dependency order, on `pool`.
    pub fn run(&self, pool: &rayon::ThreadPool, progress: &mut Progress) -> Outcome {
        let (plan, sel, opts) = (self.plan, self.sel, self.opts);
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
                    let finish = |states: &mut Vec<NodeState>,
                                  st: NodeState,
                                  ready: &mut VecDeque<NodeIndex>,
                                  pending: &mut HashMap<NodeIndex, usize>| {
                        states[n.index()] = st;
                        self.release_dependents(n, pending, ready);
                    };
                    if stop || self.cancel.load(Ordering::Relaxed) {
                        details.push(ActionReport::new(node, Status::Skipped, None, 0.0, None));
                        finish(&mut states, NodeState::Skipped, &mut ready, &mut pending);
                        continue;
                    }
                    // Resolve inputs; an upstream that failed or would run decides for us.
                    let mut inputs = Vec::new();
                    let mut blocked: Option<NodeState> = None;
                    let mut absent = None;
                    for (name, input) in &node.inputs {
                        match input {
                            Input::File(p) | Input::Dir(p) if plan.not_downloaded.contains_key(p) => {
                                absent = plan.not_downloaded.get(p);
                            }
                            Input::File(p) | Input::Dir(p) => {
                                let (digest, size) = self.sources[p];
                                inputs.push(ResolvedInput {
                                    name: name.clone(),
                                    path: p.clone(),
                                    digest,
                                    size,
                                });
                            }
                            Input::Output { node: up, output } => match &states[up.index()] {
                                NodeState::Done { outputs, .. } => match outputs.get(output) {
                                    Some(o) => inputs.push(ResolvedInput {
                                        name: name.clone(),
                                        path: self.layout.store.object_path(&o.digest),
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
                    if let Some(nd) = absent {
                        // Only status and dry runs plan a source the cache lacks; a build
                        // downloads it first.
                        let (status, st, error) = if opts.dry_run {
                            (Status::WouldRun, NodeState::WouldRun, None)
                        } else {
                            let msg = format!("{}: {nd}", node.id);
                            errors.push(msg.clone());
                            stop |= !opts.keep_going;
                            (Status::Failed, NodeState::Failed, Some(msg))
                        };
                        let mut r = ActionReport::new(node, status, None, 0.0, error);
                        r.source_not_downloaded = Some(nd.clone());
                        details.push(r);
                        finish(&mut states, st, &mut ready, &mut pending);
                        continue;
                    }
                    if let Some(st) = blocked {
                        let status = if matches!(st, NodeState::WouldRun) {
                            Status::WouldRun
                        } else {
                            Status::Skipped
                        };
                        details.push(ActionReport::new(node, status, None, 0.0, None));
                        finish(&mut states, st, &mut ready, &mut pending);
                        continue;
                    }
                    let preimage = key::preimage(node.action.as_ref(), &inputs);
                    let k = key::key_of(&preimage);
                    if let Some(outputs) = self.cached_outputs(&k, node.action.outputs()) {
                        details.push(ActionReport::new(node, Status::UpToDate, Some(&k), 0.0, None));
                        progress.done(&node.id);
                        finish(
                            &mut states,
                            NodeState::Done {
                                outputs,
                                key: k,
                                inputs,
                            },
                            &mut ready,
                            &mut pending,
                        );
                        continue;
                    }
                    if opts.locked
                        && self
                            .old_lock
                            .actions
                            .get(&node.id)
                            .is_none_or(|e| e.key != k)
                    {
                        let msg = format!(
                            "--locked: `{}` is not in tinylm.lock with this key; the build would change the lock. \
                             Run `tinylm build` and commit tinylm.lock",
                            node.id
                        );
                        details.push(ActionReport::new(
                            node,
                            Status::Failed,
                            Some(&k),
                            0.0,
                            Some(msg.clone()),
                        ));
                        errors.push(msg);
                        stop = true;
                        finish(&mut states, NodeState::Failed, &mut ready, &mut pending);
                        continue;
                    }
                    if opts.dry_run {
                        // What a build would download instead of running: its outputs' digests
                        // come from the remote record, so keys downstream are known too.
                        if let Some(outputs) = self.layout.store.lookup_remote(
                            self.stat,
                            &k,
                            &node.action.outputs(),
                        ) {
                            details.push(ActionReport::new(
                                node,
                                Status::RemoteHit,
                                Some(&k),
                                0.0,
                                None,
                            ));
                            finish(
                                &mut states,
                                NodeState::Done {
                                    outputs,
                                    key: k,
                                    inputs,
                                },
                                &mut ready,
                                &mut pending,
                            );
                            continue;
                        }
                        let mut r = ActionReport::new(node, Status::WouldRun, Some(&k), 0.0, None);
                        r.preimage = Some(preimage);
                        details.push(r);
                        finish(&mut states, NodeState::WouldRun, &mut ready, &mut pending);
                        continue;
                    }
                    progress.start(&node.id, opts.verbose_lines);
                    let job = Job::new(tx.clone(), n, k, inputs);
                    in_flight += 1;
                    scope.spawn(move |_| {
                        job.run(|inputs| {
                            let action = &g[n].action;
                            let fetched = self.layout.store.fetch_remote(
                                self.stat,
                                &k,
                                action.kind(),
                                &preimage,
                                &action.outputs(),
                                self.cancel,
                            );
                            match fetched {
                                Some(outputs) => Ok((outputs, true)),
                                // A download stopped by Ctrl-C is not a reason to build.
                                None if self.cancel.load(Ordering::Relaxed) => {
                                    Err(Error::Interrupted)
                                }
                                None => self.run_node(n, inputs, &k, preimage).map(|o| (o, false)),
                            }
                        });
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
                        let status = if done.remote {
                            Status::FromCache
                        } else {
                            Status::Run
                        };
                        details.push(ActionReport::new(
                            node,
                            status,
                            Some(&done.key),
                            done.seconds,
                            None,
                        ));
                        if done.remote {
                            progress.downloaded(&node.id, done.seconds, opts.verbose_lines);
                        } else {
                            progress.finished(&node.id, done.seconds, opts.verbose_lines);
                        }
                        states[done.node.index()] = NodeState::Done {
                            outputs,
                            key: done.key,
                            inputs: done.inputs,
                        };
                    }
                    Err(e) => {
                        let msg = format!("{} failed: {e}", node.id);
                        // The reason is printed once, in the build's error at the end.
                        progress.failed(&node.id);
                        details.push(ActionReport::new(
                            node,
                            Status::Failed,
                            Some(&done.key),
                            done.seconds,
                            Some(e.to_string()),
                        ));
                        states[done.node.index()] = NodeState::Failed;
                        if !matches!(e, Error::Interrupted) {
                            errors.push(msg);
                        }
                        if !opts.keep_going {
                            stop = true;
                        }
                    }
                }
                self.release_dependents(done.node, &mut pending, &mut ready);
            }
        });
        Outcome {
            states,
            details,
            errors,
        }
    }

    fn release_dependents(
        &self,
        n: NodeIndex,
        pending: &mut HashMap<NodeIndex, usize>,
        ready: &mut VecDeque<NodeIndex>,
    ) {
        let downs: BTreeSet<NodeIndex> = self
            .plan
            .graph
            .edges_directed(n, Direction::Outgoing)
            .map(|e| e.target())
            .collect();
        for d in downs {
            if !self.sel.nodes.contains(&d) {
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

    /// The outputs recorded for `key`, if the record exists and every object is intact.
    fn cached_outputs(
        &self,
        key: &Digest,
        expected: Vec<String>,
    ) -> Option<BTreeMap<String, OutputEntry>> {
        let store = &self.layout.store;
        let rec = store.record(key)?;
        if rec.outputs.keys().cloned().collect::<Vec<_>>() != sorted(expected) {
            return None;
        }
        for (name, o) in &rec.outputs {
            let path = store.object_path(&o.digest);
            match self.stat.verify(&path, &o.digest, o.size) {
                Ok(true) => {}
                _ => {
                    tracing::warn!(
                        "cache object for output `{name}` ({}) is missing or corrupt; rebuilding",
                        o.digest
                    );
                    store.remove_object(self.stat, &o.digest);
                    store.remove_record(key);
                    return None;
                }
            }
        }
        Some(rec.outputs)
    }

    /// Runs node `n` in a private staging directory and moves its outputs into the cache.
    fn run_node(
        &self,
        n: NodeIndex,
        inputs: &[ResolvedInput],
        key: &Digest,
        preimage: serde_json::Value,
    ) -> Result<BTreeMap<String, OutputEntry>> {
        let node = &self.plan.graph[n];
        let store = &self.layout.store;
        // Warnings from inside the action then name the action they come from. No parent:
        // rayon may run another action on this thread while this one waits, and only the
        // innermost matters.
        let _span = tracing::warn_span!(parent: None, "action", id = %node.id).entered();
        tracing::info!("running (key {})", &key.to_hex()[..12]);
        let staging = store.staging_dir()?;
        let bar = super::progress::ActionBar::new(&node.id);
        let ctx = RunCtx {
            inputs,
            out_dir: staging.path(),
            cancel: self.cancel,
            progress: &bar,
        };
        fault::point("in-action", &node.id);
        node.action
            .run(&ctx)
            .map_err(|e| staging_error(e, staging.path(), store.root()))?;
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
            let (digest, size) = store.insert_object(self.stat, &file)?;
            outputs.insert(name, OutputEntry { digest, size });
        }
        fault::point("before-record", &node.id);
        store.write_record_and_upload(&ActionRecord::new(
            *key,
            node.action.kind(),
            preimage,
            outputs.clone(),
        ))?;
        Ok(outputs)
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// An I/O error on a file in the staging directory `staging` named as the output it was
/// (`model.gguf`, written into the cache at `cache`): the staging path means nothing to users,
/// and a full disk must say which disk.
fn staging_error(e: Error, staging: &std::path::Path, cache: &std::path::Path) -> Error {
    match e {
        Error::Io { path, source } if path.starts_with(staging) => {
            let rel = path.strip_prefix(staging).unwrap_or(&path);
            let name = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .unwrap_or_default();
            // `.model.gguf.tinylm-tmp-<pid>-<rand>` is the temp file of `model.gguf`.
            let name = match name.rfind(crate::fsutil::temp::MARKER) {
                Some(i) if name.starts_with('.') && i > 1 => name[1..i].to_string(),
                _ => name,
            };
            // tempfile appends " at path <temp file>" to its errors: drop it with the path.
            let msg = source.to_string();
            let msg = msg.split(" at path ").next().unwrap_or(&msg);
            Error::Build(format!(
                "writing its output `{name}` into the cache {}: {msg}",
                cache.display()
            ))
        }
        other => other,
    }
}
