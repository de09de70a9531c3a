//! Finding and opening the project: manifest, cache, locks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::GlobalOpts;
use crate::cache::remote::RemoteConfig;
use crate::cache::{Store, lock};
use crate::exec::Workspace;
use crate::manifest::{self, MANIFEST_FILE};
use crate::{Error, IoContext, Result};

/// Loads and validates the manifest and opens the cache it names.
pub fn open(g: &GlobalOpts) -> Result<Workspace> {
    let path = g
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(MANIFEST_FILE));
    let loaded = manifest::load(&path)?;
    let project = manifest::validate(&loaded)?;
    let cache_dir = g
        .cache
        .clone()
        .map(|c| std::path::absolute(&c).unwrap_or(c))
        .or_else(|| project.cache_dir.clone())
        .unwrap_or_else(|| project.root.join(".tinylm").join("cache"));
    let remote = RemoteConfig::resolve(
        g.remote_cache.as_deref(),
        g.remote_upload,
        project.remote.as_deref(),
        project.upload,
    )
    .map_err(|e| Error::Usage(format!("--remote-cache / TINYLM_REMOTE_CACHE: {e}")))?;
    let store = Store::open(&cache_dir)?.with_remote(remote);
    Ok(Workspace { project, store })
}

/// Locks held for the duration of a build.
pub struct BuildLocks {
    _project: lock::LockGuard,
    _cache: lock::LockGuard,
}

/// Takes the project lock (exclusive: one build per project at a time) and the cache lock
/// (shared with other builds; `gc` takes it exclusively). When no other process uses the cache,
/// leftovers of crashed builds in `tmp/` are removed first.
pub fn lock_for_build(ws: &Workspace) -> Result<BuildLocks> {
    let project = lock::acquire(
        &ws.state_dir().join("lock"),
        true,
        "another tinylm build of this project",
    )?;
    let cache_lock = ws.store.lock_path();
    {
        let f = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&cache_lock)
            .with_path(&cache_lock)?;
        if f.try_lock().is_ok() {
            clean_tmp(ws);
        }
    }
    let cache = lock::acquire(&cache_lock, false, "a tinylm gc of the cache")?;
    Ok(BuildLocks {
        _project: project,
        _cache: cache,
    })
}

fn clean_tmp(ws: &Workspace) {
    let tmp = ws.store.tmp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            tracing::debug!("removing leftover {}", e.path().display());
            let _ = remove_path(&e.path());
        }
    }
}

fn remove_path(path: &std::path::Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
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

/// Number of worker threads: `-j`, else every core.
pub fn jobs(j: Option<usize>) -> Result<usize> {
    match j {
        Some(0) => Err(Error::Usage("-j must be at least 1".into())),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}
