//! `cache push|pull|stats`: explicit sync of a project's locked results with the remote cache.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::Workspace;
use crate::cache::remote::{self, Remote, RemoteReport};
use crate::cache::{ActionRecord, Digest, StoreUsage, roots};
use crate::exec::lockfile::{LockEntry, LockFile};
use crate::plan::PlanOptions;
use crate::{Error, Result};

/// What `cache push` did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Actions whose results were (or already were) on the remote.
    pub pushed: usize,
    /// Actions whose upload failed.
    pub failed: usize,
    /// Actions selected but not built locally (or not in the lock).
    pub not_built: Vec<String>,
    /// Transfer counters.
    pub remote: RemoteReport,
}

/// What `cache pull` did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// Actions downloaded.
    pub pulled: usize,
    /// Actions already in the local cache.
    pub present: usize,
    /// Actions the remote does not have.
    pub not_found: Vec<String>,
    /// Selected actions missing from `tinylm.lock`.
    pub not_in_lock: Vec<String>,
    /// Actions whose remote outputs differ from the lock (a non-reproducible build).
    pub differs_from_lock: Vec<String>,
    /// Transfer counters.
    pub remote: RemoteReport,
}

/// The remote as `cache stats` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteProbe {
    /// URL without credentials.
    pub url: String,
    /// Whether this machine uploads.
    pub upload: bool,
    /// Whether a request got an answer.
    pub reachable: bool,
    /// Round-trip time of the probe.
    pub latency_ms: Option<f64>,
    /// Why it is unreachable.
    pub error: Option<String>,
}

/// What `cache stats` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// Cache directory.
    pub dir: std::path::PathBuf,
    /// Local objects and records.
    #[serde(flatten)]
    pub usage: StoreUsage,
    /// Projects registered as using this cache.
    pub projects: Vec<String>,
    /// The configured remote, probed.
    pub remote: Option<RemoteProbe>,
    /// Transfer totals per remote URL, over all builds with this cache.
    pub totals: BTreeMap<String, RemoteReport>,
}

impl Workspace {
    fn remote(&self) -> Result<&Remote> {
        self.store().remote().map(|r| r.as_ref()).ok_or_else(|| {
            Error::Usage(
                "no remote cache configured: set [cache] remote in tinylm.toml, --remote-cache \
                 URL or TINYLM_REMOTE_CACHE"
                    .into(),
            )
        })
    }

    /// Lock entries of the selected targets, by action id; ids missing from the lock are listed.
    fn locked_entries(
        &self,
        targets: &[String],
    ) -> Result<(BTreeMap<String, LockEntry>, Vec<String>)> {
        let plan = self.plan(PlanOptions::default())?;
        let sel = plan.select(targets)?;
        let lock = LockFile::read(&self.layout().lock_path())?;
        let mut entries = BTreeMap::new();
        let mut missing = Vec::new();
        for &ix in &sel.nodes {
            let id = &plan.graph[ix].id;
            match lock.actions.get(id) {
                Some(e) => {
                    entries.insert(id.clone(), e.clone());
                }
                None => missing.push(id.clone()),
            }
        }
        missing.sort();
        Ok((entries, missing))
    }

    /// Uploads the cached results `targets` (default: everything in the lock) need.
    pub fn push(&self, targets: &[String]) -> Result<PushReport> {
        let remote = self.remote()?;
        let store = self.store();
        let _held = store.lock_shared()?;
        let (entries, mut not_built) = self.locked_entries(targets)?;
        let stat = store.stat_cache();
        let mut records = Vec::new();
        for (id, e) in &entries {
            match store.intact_record(&stat, &e.key) {
                Some(rec) => records.push(rec),
                None => not_built.push(id.clone()),
            }
        }
        let pushed = remote.push(store, records);
        let report = remote.finish(store);
        stat.save()?;
        Ok(PushReport {
            pushed: pushed.pushed,
            failed: pushed.failed,
            not_built,
            remote: report,
        })
    }

    /// Downloads the results `tinylm.lock` names for `targets` into the local cache.
    pub fn pull(&self, targets: &[String], cancel: &AtomicBool) -> Result<PullReport> {
        let remote = self.remote()?;
        let store = self.store();
        let _held = store.lock_shared()?;
        let (entries, not_in_lock) = self.locked_entries(targets)?;
        let stat = store.stat_cache();
        let (mut present, mut pulled) = (0usize, 0usize);
        let mut not_found = Vec::new();
        let mut differs = Vec::new();
        // Every key is known: download them side by side, then record them in lock order.
        let todo: Vec<(Digest, Vec<String>)> = entries
            .iter()
            .filter(|(_, e)| store.intact_record(&stat, &e.key).is_none())
            .map(|(_, e)| (e.key, e.outputs.keys().cloned().collect()))
            .collect();
        remote.expect_prefetch(todo.iter().map(|(k, _)| *k));
        std::thread::scope(|s| {
            s.spawn(|| remote.prefetch(store, &stat, &todo, cancel, cancel));
            for (id, e) in &entries {
                if store.intact_record(&stat, &e.key).is_some() {
                    present += 1;
                    continue;
                }
                let names: Vec<String> = e.outputs.keys().cloned().collect();
                match remote.fetch(store, &stat, &e.key, &names, cancel) {
                    Some((outputs, rec)) => {
                        if outputs != e.outputs {
                            tracing::warn!(
                                "`{id}`: the remote's outputs differ from tinylm.lock (a \
                                 non-reproducible build?); using the remote's"
                            );
                            differs.push(id.clone());
                        }
                        store.write_record(&ActionRecord::new(
                            e.key,
                            &rec.kind,
                            rec.preimage,
                            outputs,
                        ))?;
                        pulled += 1;
                    }
                    None => not_found.push(id.clone()),
                }
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
            }
            Ok(())
        })?;
        let report = remote.finish(store);
        stat.save()?;
        Ok(PullReport {
            pulled,
            present,
            not_found,
            not_in_lock,
            differs_from_lock: differs,
            remote: report,
        })
    }

    /// Local cache size, projects sharing it, the remote (probed) and transfer totals.
    pub fn cache_stats(&self) -> CacheStats {
        let store = self.store();
        let projects = roots::list(store)
            .into_iter()
            .map(|r| r.project.display().to_string())
            .collect();
        let remote = store.remote().map(|r| {
            let probe = r.probe();
            RemoteProbe {
                url: r.url().to_string(),
                upload: r.uploads(),
                reachable: probe.is_ok(),
                latency_ms: probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
                error: probe.err(),
            }
        });
        CacheStats {
            dir: store.root().to_path_buf(),
            usage: store.usage(),
            projects,
            remote,
            totals: remote::totals(store).remotes,
        }
    }
}
