//! A project on disk: its validated manifest, its cache and output directory, and the engine
//! operations on it (build, status, graph, clean, gc, installs, lint of built artifacts).
//!
//! Each `tinylm` subcommand is a thin wrapper around one of these methods. A build is always
//! the same sequence: [`Workspace::open`] → [`Workspace::plan`] → [`Workspace::build`] (which
//! takes the locks, resolves the options and runs the executor).

mod install;
mod lint;
mod quality;
mod remote;
mod sources;
mod status;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

pub use crate::install::Runtime;
pub use install::{Installed, LmStudioOptions};
pub use lint::ArtifactLint;
pub use remote::{CacheStats, PullReport, PushReport, RemoteProbe};
pub use sources::Network;
pub use status::{StatusEntry, StatusReport};

use crate::cache::remote::RemoteConfig;
use crate::cache::{GcRoots, GcStats, SharedCacheLock, Store, VerifyStats};
use crate::exec::lockfile::LockFile;
use crate::exec::materialize::{self, State};
use crate::exec::{self, BuildOptions, BuildReport, ProjectLayout};
use crate::fsutil::lock::{self, LockGuard};
use crate::manifest::{self, Project};
use crate::plan::graph::Graph;
use crate::plan::{self, BuildPlan, PlanOptions};
use crate::{Error, Result};

/// A project opened for engine operations.
#[derive(Debug, Clone)]
pub struct Workspace {
    project: Project,
    layout: ProjectLayout,
}

/// Locks held for the duration of a build.
#[derive(Debug)]
pub struct BuildLocks {
    _project: LockGuard,
    _cache: SharedCacheLock,
}

/// What to build and how: everything but the plan.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// Targets (`model`, `model:quant`, `release`); empty for everything.
    pub targets: Vec<String>,
    /// Worker threads (`-j`); every core when `None`.
    pub jobs: Option<usize>,
    /// Continue with independent actions after a failure.
    pub keep_going: bool,
    /// Report what would run without running, writing or locking anything.
    pub dry_run: bool,
    /// Fail if the lock file would change.
    pub locked: bool,
    /// Show a progress bar and per-action lines.
    pub progress: bool,
    /// Stop at the next action boundary on Ctrl-C (a second Ctrl-C exits at once).
    pub interruptible: bool,
}

/// Remote cache settings from the command line (`--remote-cache`, `--remote-upload` and their
/// environment variables).
#[derive(Debug, Clone, Default)]
pub struct RemoteOverride {
    /// URL, or `none` to turn the manifest's remote off.
    pub url: Option<String>,
    /// Whether to upload what this machine builds.
    pub upload: Option<bool>,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The cache's objects.
    #[serde(flatten)]
    pub cache: VerifyStats,
    /// Placed outputs checked (those not modified since tinylm placed them).
    pub outputs: usize,
    /// Placed outputs whose content is not what tinylm placed (relative paths).
    pub corrupt_outputs: Vec<std::path::PathBuf>,
}

/// What `clean` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanReport {
    /// Files removed from the output directory.
    pub removed: usize,
    /// Files kept because they were modified after tinylm placed them (relative paths).
    pub kept: Vec<std::path::PathBuf>,
    /// Paths left in the cache directory because tinylm did not create them (with `cache`).
    pub cache_kept: Vec<std::path::PathBuf>,
}

impl Workspace {
    /// Loads and validates the manifest at `manifest` and opens the cache: `cache_override`
    /// (`--cache`, `TINYLM_CACHE`), else the manifest's `[cache] dir`, else `.tinylm/cache`.
    pub fn open(manifest: &Path, cache_override: Option<&Path>) -> Result<Workspace> {
        Workspace::open_with(manifest, cache_override, &RemoteOverride::default())
    }

    /// Like [`Workspace::open`], with the remote cache settings of the command line, which win
    /// over the manifest's `[cache] remote`/`upload`.
    pub fn open_with(
        manifest: &Path,
        cache_override: Option<&Path>,
        remote: &RemoteOverride,
    ) -> Result<Workspace> {
        let loaded = manifest::load(manifest)?;
        let project = manifest::validate(&loaded)?;
        let cache_dir = cache_override
            .map(|c| std::path::absolute(c).unwrap_or_else(|_| c.to_path_buf()))
            .or_else(|| project.cache_dir.clone())
            .unwrap_or_else(|| project.root.join(".tinylm").join("cache"));
        if let Some(c) = cache_override
            && let Some(problem) = manifest::cache_location_problem(&project, &cache_dir)
        {
            return Err(Error::Usage(format!("--cache {}: {problem}", c.display())));
        }
        let remote = RemoteConfig::resolve(
            remote.url.as_deref(),
            remote.upload,
            project.remote.as_deref(),
            project.upload,
        )
        .map_err(|e| Error::Usage(format!("--remote-cache / TINYLM_REMOTE_CACHE: {e}")))?;
        let store = Store::open(&cache_dir)?.with_remote(remote);
        let layout = ProjectLayout {
            root: project.root.clone(),
            out: project.out.clone(),
            store,
        };
        Ok(Workspace { project, layout })
    }

    /// The validated manifest.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The cache.
    pub fn store(&self) -> &Store {
        &self.layout.store
    }

    /// Where builds read and write.
    pub fn layout(&self) -> &ProjectLayout {
        &self.layout
    }

    /// Resolves the Hub and Ollama sources (see [`Network`]); `progress` hears about each
    /// download. Commands that build call it before [`Workspace::plan`].
    pub fn resolve_sources(
        &mut self,
        net: Network,
        progress: &dyn crate::hub::download::DownloadProgress,
    ) -> Result<()> {
        if sources::needs_resolving(&self.project) {
            self.project = sources::resolve(&self.project, net, progress)?;
        }
        Ok(())
    }

    /// The build plan of the project (sources not resolved yet are resolved from the caches,
    /// never downloaded).
    pub fn plan(&self, opts: PlanOptions) -> Result<BuildPlan> {
        if sources::needs_resolving(&self.project) {
            let resolved = sources::resolve(
                &self.project,
                Network::ReadOnly,
                &crate::hub::download::Silent,
            )?;
            return plan::plan(&resolved, opts);
        }
        plan::plan(&self.project, opts)
    }

    /// Takes the project lock (exclusive: one build per project at a time) and the cache lock
    /// (shared with other builds; `gc` takes it exclusively).
    pub fn lock_for_build(&self) -> Result<BuildLocks> {
        let project = lock::acquire(
            &self.layout.project_lock_path(),
            true,
            "another tinylm build of this project",
        )?;
        let cache = self.layout.store.lock_shared()?;
        exec::remove_leftovers(&self.layout);
        Ok(BuildLocks {
            _project: project,
            _cache: cache,
        })
    }

    /// Builds `req.targets` of `plan`: locks (unless a dry run), then runs the executor.
    pub fn build(&self, plan: &BuildPlan, req: &BuildRequest) -> Result<BuildReport> {
        let _locks = if req.dry_run {
            None
        } else {
            Some(self.lock_for_build()?)
        };
        if req.locked && !req.dry_run {
            sources::check_locked(plan.locators.values(), &self.layout.lock_path())?;
        }
        let opts = BuildOptions {
            targets: req.targets.clone(),
            jobs: jobs(req.jobs)?,
            keep_going: req.keep_going,
            dry_run: req.dry_run,
            locked: req.locked,
            progress: req.progress,
            verbose_lines: req.progress,
        };
        let cancel: Arc<AtomicBool> = if req.interruptible {
            exec::cancel_on_ctrl_c()
        } else {
            Default::default()
        };
        exec::build(&self.layout, plan, &opts, cancel)
    }

    /// Removes the outputs tinylm placed (never other files), then with `cache` the whole
    /// cache directory.
    pub fn clean(&self, cache: bool) -> Result<CleanReport> {
        let locks = self.lock_for_build()?;
        let state_path = self.layout.state_path();
        let mut state = State::load(&state_path);
        let out = &self.layout.out;
        let mut report = CleanReport::default();
        for (rel, placed) in std::mem::take(&mut state.placed) {
            if materialize::remove_stale(out, &rel, &placed) {
                report.removed += 1;
            } else if out.join(&rel).exists() {
                report.kept.push(rel);
            }
        }
        let _ = std::fs::remove_dir(out.join("releases"));
        let _ = std::fs::remove_dir(out);
        state.save(&state_path)?;
        if cache {
            drop(locks);
            let store = &self.layout.store;
            let held = store.lock_exclusive("another tinylm process using the cache")?;
            report.cache_kept = store.remove_all(&held)?;
        }
        Ok(report)
    }

    /// Rehashes every cache object and every output tinylm placed that is still there (outputs
    /// edited since are not tinylm's any more and are skipped, as `clean` keeps them).
    pub fn verify(&self) -> Result<VerifyReport> {
        let locks = self.lock_for_build()?;
        let cache = self.layout.store.verify(&locks._cache)?;
        let state = State::load(&self.layout.state_path());
        let mut report = VerifyReport {
            cache,
            ..Default::default()
        };
        for (rel, placed) in &state.placed {
            let path = self.layout.out.join(rel);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let unchanged = crate::cache::stat::FileStat::from_metadata(&meta) == placed.stat;
            if !unchanged {
                continue;
            }
            report.outputs += 1;
            if crate::cache::hash_file(&path).ok() != Some(placed.digest) {
                report.corrupt_outputs.push(rel.clone());
            }
        }
        Ok(report)
    }

    /// Drops cache objects and records `tinylm.lock` does not need (see [`Store::gc`]).
    pub fn gc(&self, max_size: Option<u64>) -> Result<GcStats> {
        let store = &self.layout.store;
        // The project lock too: gc also clears what killed builds left in the project.
        let _project = lock::acquire(
            &self.layout.project_lock_path(),
            true,
            "another tinylm build of this project",
        )?;
        let held = store.lock_exclusive("running tinylm builds")?;
        exec::remove_leftovers(&self.layout);
        store.remove_leftovers(&held);
        // Read under the exclusive lock: a build that finished meanwhile has written its lock.
        let lock = LockFile::read(&self.layout.lock_path())?;
        let mut roots = GcRoots {
            keys: lock.actions.values().map(|e| e.key).collect(),
            objects: lock
                .actions
                .values()
                .flat_map(|e| e.outputs.values().map(|o| o.digest))
                .collect(),
            other_projects: Vec::new(),
        };
        // A cache shared by several projects: keep what their locks need too.
        let others = crate::cache::roots::protected_by_others(store, &self.project.root);
        roots.keys.extend(others.keys);
        roots.objects.extend(others.objects);
        roots.other_projects = others.projects;
        for p in &others.dropped {
            tracing::info!("forgetting {} (its lock file is gone)", p.display());
        }
        store.gc(&held, &roots, max_size)
    }

    /// The build graph.
    pub fn graph(&self) -> Result<Graph> {
        let plan = self.plan(PlanOptions::default())?;
        Ok(Graph::of(&plan, &self.project.root))
    }
}

/// Most worker threads `-j` accepts: far more than any machine has cores, few enough that
/// starting them is instant (a typo like `-j 100000` used to spend minutes creating threads).
pub const MAX_JOBS: usize = 1024;

/// Number of worker threads: `-j`, else every core.
pub fn jobs(j: Option<usize>) -> Result<usize> {
    match j {
        Some(0) => Err(Error::Usage("-j must be at least 1".into())),
        Some(n) if n > MAX_JOBS => Err(Error::Usage(format!(
            "-j {n}: at most {MAX_JOBS} worker threads (default: one per core)"
        ))),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}
