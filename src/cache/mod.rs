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
//! - `lock`: shared by builds, exclusive for `gc` and for deleting the cache.
//!
//! Every write is a temp file in the same directory, fsynced, then renamed into place
//! ([`crate::fsutil::write_atomic`]), so a crash or Ctrl-C never leaves a partial object or
//! record.

mod ac;
mod cas;
mod digest;
mod gc;
pub mod remote;
pub(crate) mod roots;
pub(crate) mod stat;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ac::{ActionRecord, OutputEntry};
pub use digest::{Digest, hash_file};
pub use gc::{GcRoots, GcStats};
pub use stat::StatCache;

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
    /// Opens (creating if needed) the cache at `root`.
    pub fn open(root: &Path) -> Result<Store> {
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

    /// Deletes the whole cache directory.
    pub fn remove_all(&self, _held: &ExclusiveCacheLock) -> Result<()> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&self.root, e)),
        }
    }

    fn clean_tmp(&self) {
        let tmp = self.tmp_dir();
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                tracing::debug!("removing leftover {}", e.path().display());
                let _ = crate::fsutil::remove_path(&e.path());
            }
        }
    }
}
