//! The boundary around one action running on a worker thread: a panic inside it becomes that
//! action's failure, and the scheduler always hears back, whatever happens to the worker.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::time::Instant;

use petgraph::graph::NodeIndex;

use crate::actions::ResolvedInput;
use crate::cache::{Digest, OutputEntry};
use crate::{Error, Result};

/// What a worker reports for one node.
pub(super) struct JobResult {
    pub node: NodeIndex,
    pub result: Result<BTreeMap<String, OutputEntry>>,
    pub seconds: f64,
    pub key: Digest,
    pub inputs: Vec<ResolvedInput>,
    /// Restored from the remote cache instead of run.
    pub remote: bool,
}

/// The promise of a [`JobResult`]: sent by [`Job::run`], or by `Drop` if the worker never got
/// to it (its closure was dropped unrun, or something outside the action panicked), so the
/// scheduler never waits forever for a result that cannot come.
pub(super) struct Job {
    tx: Sender<JobResult>,
    node: NodeIndex,
    key: Digest,
    inputs: Option<Vec<ResolvedInput>>,
    started: Instant,
}

impl Job {
    pub fn new(
        tx: Sender<JobResult>,
        node: NodeIndex,
        key: Digest,
        inputs: Vec<ResolvedInput>,
    ) -> Job {
        Job {
            tx,
            node,
            key,
            inputs: Some(inputs),
            started: Instant::now(),
        }
    }

    /// Runs `f` with the node's inputs, catching a panic as the action's failure, and reports.
    /// `f` returns the outputs and whether they came from the remote cache.
    pub fn run(
        mut self,
        f: impl FnOnce(&[ResolvedInput]) -> Result<(BTreeMap<String, OutputEntry>, bool)>,
    ) {
        let inputs = self.inputs.take().unwrap_or_default();
        let result = catch_unwind(AssertUnwindSafe(|| f(&inputs))).unwrap_or_else(|payload| {
            Err(Error::Build(format!(
                "panicked: {} (this is a bug in tinylm; please report it)",
                panic_message(payload.as_ref())
            )))
        });
        let remote = matches!(result, Ok((_, true)));
        self.send(result.map(|(o, _)| o), inputs, remote);
    }

    fn send(
        &mut self,
        result: Result<BTreeMap<String, OutputEntry>>,
        inputs: Vec<ResolvedInput>,
        remote: bool,
    ) {
        // The receiver is gone only if the scheduler itself stopped; nothing to tell then.
        let _ = self.tx.send(JobResult {
            node: self.node,
            result,
            seconds: self.started.elapsed().as_secs_f64(),
            key: self.key,
            inputs,
            remote,
        });
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(inputs) = self.inputs.take() {
            let err = Error::Build(
                "its worker stopped without reporting a result (this is a bug in tinylm; please report it)"
                    .into(),
            );
            self.send(Err(err), inputs, false);
        }
    }
}

/// The message of a panic payload (`panic!("…")` carries a `&str` or a `String`).
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
