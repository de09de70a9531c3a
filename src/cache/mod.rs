//! The content-addressed cache: objects, action records, the stat cache and the lock around them.
//!
//! Layout under the cache directory (owned by [`Store`]; nothing else builds these paths):
//! - `cas/<2 hex>/<digest>`: read-only objects named by their blake3 digest;
//! - `ac/<2 hex>/<key>`: action records, the outputs of an action key ([`ActionRecord`]);
//! - `stat.json`: the stat cache, (path, dev, ino, size, mtime) → digest ([`StatCache`]);
//! - `roots/`: the projects using this cache and what their locks need, so `gc` in one project
//!   keeps what another still needs;
//! - `remote/`: sha256 of objects and transfer totals of the remote cache;
//! - `tmp/`: staging area for outputs being produced (same filesystem, so renames are atomic);
//! - `lock`: shared by builds, exclusive for `gc` and for deleting the cache;
//! - `tinylm-cache.json` and `CACHEDIR.TAG`: what makes the directory a tinylm cache
//!   ([`marker`]): tinylm only uses an empty or marked directory, and deletes only names it
//!   creates itself.
//!
//! Every write is a temp file in the same directory, fsynced, then renamed into place
//! ([`crate::fsutil::write_atomic`]), so a crash or Ctrl-C never leaves a partial object or
//! record.

mod ac;
mod cas;
mod digest;
mod gc;
mod marker;
pub mod remote;
pub(crate) mod roots;
pub(crate) mod stat;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ac::{ActionRecord, OutputEntry};
pub use digest::{Digest, hash_file};
pub use gc::{GcRoots, GcStats};
pub use stat::StatCache;
pub use verify::VerifyStats;

use crate::fsutil::lock::{self, LockGuard};
use crate::{Error, IoContext, Result};

/// The cache directory and its parts.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// The remote cache behind this one ([`Store::with_remote`]).
    remote: Option<Arc<remote::Remote>>,
}

/// What a store holds ([`Store::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreUsage {
    /// Objects in `cas/`.
    pub objects: u64,
    /// Their total size.
    pub bytes: u64,
    /// Action records in `ac/`.
    pub records: u64,
}

/// The cache lock held shared by a build: `gc` and cache deletion wait for it.
#[derive(Debug)]
pub struct SharedCacheLock {
    _guard: LockGuard,
}

/// The cache lock held exclusively: no build uses the cache meanwhile.
#[derive(Debug)]
pub struct ExclusiveCacheLock {
    _guard: LockGuard,
}

impl Store {
    /// Opens (creating if needed) the cache at `root`. A directory that is neither empty nor a
    /// tinylm cache is refused (a usage error): tinylm never deletes what it did not create.
    pub fn open(root: &Path) -> Result<Store> {
        marker::ensure(root)?;
        for sub in ["cas", "ac", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).with_path(root.join(sub))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            remote: None,
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object with `digest` lives.
    pub fn object_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join("cas").join(&hex[..2]).join(&hex)
    }

    /// Where the record of action `key` lives.
    fn record_path(&self, key: &Digest) -> PathBuf {
        let hex = key.to_hex();
        self.root.join("ac").join(&hex[..2]).join(&hex)
    }

    /// The staging directory for outputs in progress.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// A new private staging directory in [`Store::tmp_dir`], removed when dropped; named so
    /// that the next build can tell it was ours if this process is killed.
    pub fn staging_dir(&self) -> Result<tempfile::TempDir> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix(&crate::fsutil::temp::temp_prefix(std::ffi::OsStr::new(
                "stage",
            )))
            .tempdir_in(&tmp)
            .map_err(|e| Error::io(&tmp, e))
    }

    /// The lock file shared by builds and taken exclusively by `gc`.
    fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The stat cache file.
    pub fn stat_path(&self) -> PathBuf {
        self.root.join("stat.json")
    }

    /// Loads the stat cache of this store.
    pub fn stat_cache(&self) -> StatCache {
        StatCache::load(&self.stat_path())
    }

    /// The record of action `key`; a missing or unreadable record is a miss.
    pub fn record(&self, key: &Digest) -> Option<ActionRecord> {
        ac::read(self, key)
    }

    /// Writes a record atomically.
    pub fn write_record(&self, rec: &ActionRecord) -> Result<()> {
        ac::write(self, rec)
    }

    /// Deletes a record (its outputs were found missing or corrupt).
    pub fn remove_record(&self, key: &Digest) {
        ac::remove(self, key)
    }

    /// Moves a finished file (in [`Store::tmp_dir`]) into the store; returns its digest and size.
    pub fn insert_object(&self, stat: &StatCache, file: &Path) -> Result<(Digest, u64)> {
        cas::insert(self, stat, file)
    }

    /// Like [`Store::insert_object`] for a file whose blake3 the caller has just computed (a
    /// verified download); returns its size.
    pub fn insert_verified_object(
        &self,
        stat: &StatCache,
        file: &Path,
        digest: Digest,
    ) -> Result<u64> {
        cas::insert_verified(self, stat, file, digest)
    }

    /// [`Store::insert_verified_object`] for several files at once, with the fsyncs grouped
    /// (see `cas::insert_verified_batch`); returns each one's size or error, in order.
    pub fn insert_verified_objects(
        &self,
        stat: &StatCache,
        files: &[(&Path, Digest)],
    ) -> Vec<Result<u64>> {
        cas::insert_verified_batch(self, stat, files)
    }

    /// The record of `key` if it and every object it names are intact.
    pub fn intact_record(&self, stat: &StatCache, key: &Digest) -> Option<ActionRecord> {
        let rec = self.record(key)?;
        rec.outputs
            .values()
            .all(|o| {
                stat.verify(&self.object_path(&o.digest), &o.digest, o.size)
                    .unwrap_or(false)
            })
            .then_some(rec)
    }

    /// Objects and their total size, and action records, currently in the store.
    pub fn usage(&self) -> StoreUsage {
        let count = |sub: &str| {
            walkdir::WalkDir::new(self.root.join(sub))
                .min_depth(2)
                .max_depth(2)
                .into_iter()
                .flatten()
                .filter(|e| e.file_type().is_file())
                .fold((0u64, 0u64), |(n, b), e| {
                    (n + 1, b + e.metadata().map_or(0, |m| m.len()))
                })
        };
        let (objects, bytes) = count("cas");
        let (records, _) = count("ac");
        StoreUsage {
            objects,
            bytes,
            records,
        }
    }

    /// Removes an object (e.g. found corrupt).
    pub fn remove_object(&self, stat: &StatCache, digest: &Digest) {
        cas::remove(self, stat, digest)
    }

    /// Takes the cache lock shared, as a build does (waiting while `gc` runs). When no other
    /// process uses the cache, leftovers of crashed builds in `tmp/` are removed first.
    pub fn lock_shared(&self) -> Result<SharedCacheLock> {
        let path = self.lock_path();
        {
            let f = std::fs::File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_path(&path)?;
            if f.try_lock().is_ok() {
                self.clean_tmp();
            }
        }
        let guard = lock::acquire(&path, false, "a tinylm gc of the cache")?;
        Ok(SharedCacheLock { _guard: guard })
    }

    /// Takes the cache lock exclusively, waiting (with a message naming `what`) for others.
    pub fn lock_exclusive(&self, what: &str) -> Result<ExclusiveCacheLock> {
        let guard = lock::acquire(&self.lock_path(), true, what)?;
        Ok(ExclusiveCacheLock { _guard: guard })
    }

    /// Deletes what tinylm created in the cache directory (objects, records, staging
    /// directories, its state and marker files), then the directory if nothing else is left.
    /// Returns the entries it left because tinylm did not create them.
    pub fn remove_all(&self, _held: &ExclusiveCacheLock) -> Result<Vec<PathBuf>> {
        let root = &self.root;
        let mut kept = Vec::new();
        for fanned in ["cas", "ac"] {
            let dir = root.join(fanned);
            for sub in read_names(&dir) {
                let subdir = dir.join(&sub);
                if !marker::is_fanout_name(&sub) || !subdir.is_dir() {
                    kept.push(subdir);
                    continue;
                }
                for name in read_names(&subdir) {
                    let p = subdir.join(&name);
                    let ours = marker::is_digest_name(&sub, &name)
                        || crate::fsutil::temp::owner_pid(&name).is_some()
                        || crate::fsutil::temp::is_legacy_atomic_temp(&name);
                    if !(ours && p.is_file() && remove_file(&p)) {
                        kept.push(p);
                    }
                }
                let _ = std::fs::remove_dir(&subdir);
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let tmp = self.tmp_dir();
        for name in read_names(&tmp) {
            let p = tmp.join(&name);
            let meta = std::fs::symlink_metadata(&p);
            let removed = if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                marker::is_staging_name(&name) && std::fs::remove_dir_all(&p).is_ok()
            } else {
                crate::fsutil::temp::owner_pid(&name).is_some() && remove_file(&p)
            };
            if !removed {
                kept.push(p);
            }
        }
        let _ = std::fs::remove_dir(&tmp);
        // Project roots (`roots/<32 hex>.json`) and remote-cache bookkeeping
        // (`remote/totals.*`, `remote/sha256/<2 hex>/<64 hex>`).
        let temp = |name: &str| {
            crate::fsutil::temp::owner_pid(name).is_some()
                || crate::fsutil::temp::is_legacy_atomic_temp(name)
        };
        remove_own_files(&root.join("roots"), &mut kept, |n| {
            n.strip_suffix(".json")
                .is_some_and(|h| marker::is_hex_name(h, 32))
                || temp(n)
        });
        let sha = root.join("remote").join("sha256");
        for sub in read_names(&sha) {
            if marker::is_fanout_name(&sub) {
                remove_own_files(&sha.join(&sub), &mut kept, |n| {
                    marker::is_hex_name(n, 64) || temp(n)
                });
            } else {
                kept.push(sha.join(sub));
            }
        }
        let _ = std::fs::remove_dir(&sha);
        remove_own_files(&root.join("remote"), &mut kept, |n| {
            ["totals.json", "totals.lock"].contains(&n) || temp(n)
        });
        for name in read_names(root) {
            let p = root.join(&name);
            let ours = ["stat.json", "lock", marker::TAG_FILE].contains(&name.as_str())
                || crate::fsutil::temp::owner_pid(&name).is_some()
                || crate::fsutil::temp::is_legacy_atomic_temp(&name);
            if ours && p.is_file() {
                remove_file(&p);
            }
        }
        // The marker goes last: until then the directory is still recognisably ours.
        let left: Vec<String> = read_names(root)
            .into_iter()
            .filter(|n| n != marker::MARKER_FILE)
            .collect();
        if left.is_empty() {
            remove_file(&root.join(marker::MARKER_FILE));
            let _ = std::fs::remove_dir(root);
        } else {
            kept.extend(
                left.iter()
                    .filter(|n| !["cas", "ac", "tmp", "roots", "remote"].contains(&n.as_str()))
                    .map(|n| root.join(n)),
            );
        }
        kept.sort();
        kept.dedup();
        Ok(kept)
    }

    /// Removes what killed processes left in the cache (staging directories, temp copies of
    /// records and of the stat cache); returns how many entries it removed.
    pub fn remove_leftovers(&self, _held: &ExclusiveCacheLock) -> usize {
        self.clean_tmp() + self.clean_record_temps()
    }

    /// Removes what crashed builds left: staging directories in `tmp/` and temp copies of the
    /// stat cache. Called only while no other process uses the cache.
    fn clean_tmp(&self) -> usize {
        let tmp = self.tmp_dir();
        let mut removed = 0;
        for name in read_names(&tmp) {
            let p = tmp.join(&name);
            if marker::is_staging_name(&name)
                && std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir())
                && stale_staging(&name, &p)
            {
                tracing::debug!("removing leftover {}", p.display());
                if std::fs::remove_dir_all(&p).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
            + crate::fsutil::temp::remove_stale_in(&tmp, false, &|_| false)
            + crate::fsutil::temp::remove_stale_in(&self.root, false, &|_| true)
    }

    /// Removes temp files crashed writers left among the action records (slow: lists every
    /// record directory; `gc` does it).
    fn clean_record_temps(&self) -> usize {
        let ac = self.root.join("ac");
        read_names(&ac)
            .into_iter()
            .filter(|n| marker::is_fanout_name(n))
            .map(|n| crate::fsutil::temp::remove_stale_in(&ac.join(n), false, &|_| true))
            .sum()
    }
}

/// A staging directory of the current naming is stale when its process is gone (or it is a
/// day old); one of the naming before it is only ever seen under the exclusive lock, which
/// proves no build is using it.
fn stale_staging(name: &str, path: &Path) -> bool {
    match crate::fsutil::temp::owner_pid(name) {
        Some(pid) => crate::fsutil::temp::is_stale(path, pid),
        None => true,
    }
}

/// Names in `dir` (none when it cannot be read).
/// Removes the files in `dir` that `own` recognises, then `dir` if empty; anything else is
/// kept and listed in `kept`.
fn remove_own_files(dir: &Path, kept: &mut Vec<PathBuf>, own: impl Fn(&str) -> bool) {
    for name in read_names(dir) {
        let p = dir.join(&name);
        if !(own(&name) && p.is_file() && remove_file(&p)) {
            kept.push(p);
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn read_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

fn remove_file(p: &Path) -> bool {
    match std::fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}
