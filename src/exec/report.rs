//! What a build reports: per-action outcomes and the summary (`tinylm build --json`).

use serde::Serialize;

use crate::cache::Digest;
use crate::plan::Node;

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
    /// Not in the local cache, but the remote cache has it: a build would download it, not
    /// run it (dry run).
    RemoteHit,
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
            Status::RemoteHit => "remote hit",
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
    /// A dry run: the Hub source it reads is not downloaded yet, so its key is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_not_downloaded: Option<crate::hub::NotDownloaded>,
}

impl ActionReport {
    pub(super) fn new(
        node: &Node,
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
            source_not_downloaded: None,
        }
    }
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
    /// Would be downloaded from the remote cache instead of run (dry run).
    pub remote_hit: usize,
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
    /// Per-action details, sorted by action id (execution order varies between runs).
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
            (self.remote_hit, "remote hit"),
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

    /// Counts the per-action outcomes into the summary fields.
    pub(super) fn count_details(&mut self) {
        for d in &self.details {
            match d.status {
                Status::Run => self.run += 1,
                Status::FromCache => self.from_cache += 1,
                Status::UpToDate => self.up_to_date += 1,
                Status::WouldRun => self.would_run += 1,
                Status::RemoteHit => self.remote_hit += 1,
                Status::Failed => self.failed += 1,
                Status::Skipped => self.skipped += 1,
            }
        }
    }
}
