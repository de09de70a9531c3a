//! Remote prefetch for builds whose keys are not known in advance (no `--locked`).
//!
//! The scheduler learns an action's key only once its upstream actions are done, so left to
//! itself a restore follows the graph: the f16 GGUF downloads, then its quantizations. The
//! lookahead computes keys ahead of it instead: a source's digest is known as soon as that
//! file is hashed, and an upstream action's outputs as soon as the remote's record of it
//! arrives (a small request), long before its bytes. Each key found is sent to the remote's
//! prefetch at once, so downloads start while other sources are still being hashed and run
//! side by side with their upstream downloads.
//!
//! Nothing here is trusted: a key computed from a record is a guess about what the scheduler
//! will ask for. Downloads are verified as always, and if the guess was wrong (an upstream
//! download turned out corrupt and was rebuilt differently) the scheduler's key simply differs
//! and it fetches or builds that action itself.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use petgraph::graph::NodeIndex;

use super::ProjectLayout;
use crate::actions::ResolvedInput;
use crate::cache::remote::PrefetchQueue;
use crate::cache::{Digest, OutputEntry};
use crate::plan::{BuildPlan, Input, Selection, key};

/// Keys of the selected actions, computed as their inputs become known; those the local
/// cache lacks go to the remote's prefetch queue.
///
/// It advances inside the callbacks that bring news (a source hashed, a record arrived), on
/// their threads: so by the time hashing returns, every key its sources make known is queued,
/// and by the time an action's download ends (the scheduler then computes the keys downstream)
/// the keys its record made known are queued too. The scheduler never asks for a key the
/// lookahead could have queued but had not yet.
pub(super) struct Lookahead<'a> {
    layout: &'a ProjectLayout,
    plan: &'a BuildPlan,
    order: Vec<NodeIndex>,
    queue: PrefetchQueue<'a>,
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    sources: HashMap<PathBuf, (Digest, u64)>,
    outputs: HashMap<NodeIndex, BTreeMap<String, OutputEntry>>,
    keyed: HashMap<NodeIndex, Digest>,
    /// Keys queued whose record has not arrived, with their node.
    asked: HashMap<Digest, NodeIndex>,
}

impl<'a> Lookahead<'a> {
    pub(super) fn new(
        layout: &'a ProjectLayout,
        plan: &'a BuildPlan,
        sel: &Selection,
        queue: PrefetchQueue<'a>,
    ) -> Lookahead<'a> {
        let order = plan
            .topo_order()
            .into_iter()
            .filter(|n| sel.nodes.contains(n))
            .collect();
        Lookahead {
            layout,
            plan,
            order,
            queue,
            known: Mutex::new(Known::default()),
        }
    }

    /// Source `path` was hashed.
    pub(super) fn source(&self, path: &Path, digest: Digest, size: u64) {
        if let Ok(mut k) = self.known.lock() {
            k.sources.insert(path.to_path_buf(), (digest, size));
            self.advance(&mut k);
        }
    }

    /// The remote's record of `key` arrived: its outputs, or `None` (miss or failure).
    pub(super) fn record(&self, key: &Digest, outputs: Option<&BTreeMap<String, OutputEntry>>) {
        if let Ok(mut k) = self.known.lock()
            && let Some(n) = k.asked.remove(key)
            && let Some(o) = outputs
        {
            k.outputs.insert(n, o.clone());
            self.advance(&mut k);
        }
    }

    /// Computes every key whose inputs are now known, in dependency order.
    fn advance(&self, k: &mut Known) {
        let g = &self.plan.graph;
        for &n in &self.order {
            if k.keyed.contains_key(&n) {
                continue;
            }
            let node = &g[n];
            let mut inputs = Vec::with_capacity(node.inputs.len());
            for (name, input) in &node.inputs {
                let known = match input {
                    Input::File(p) | Input::Dir(p) => k
                        .sources
                        .get(p)
                        .map(|&(digest, size)| (p.clone(), digest, size)),
                    Input::Output { node: up, output } => k
                        .outputs
                        .get(up)
                        .and_then(|o| o.get(output))
                        .map(|o| (self.layout.store.object_path(&o.digest), o.digest, o.size)),
                };
                let Some((path, digest, size)) = known else {
                    break;
                };
                inputs.push(ResolvedInput {
                    name: name.clone(),
                    path,
                    digest,
                    size,
                });
            }
            if inputs.len() < node.inputs.len() {
                continue;
            }
            let key = key::key_of(&key::preimage(node.action.as_ref(), &inputs));
            k.keyed.insert(n, key);
            // A local record is as good as a remote one for keys downstream; whether its
            // objects are intact is the scheduler's business.
            if let Some(rec) = self.layout.store.record(&key) {
                k.outputs.insert(n, rec.outputs);
                continue;
            }
            k.asked.insert(key, n);
            self.queue.send(key, node.action.outputs());
        }
    }
}
