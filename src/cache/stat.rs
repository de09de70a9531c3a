//! The stat cache: (path, dev, ino, size, mtime) → digest, so unchanged inputs are never rehashed.
//!
//! An entry is trusted only if the file's mtime is safely older than the moment hashing started
//! ([`RACY_WINDOW_NS`]): a file modified in the same timestamp tick as (or after) the hash could
//! otherwise keep its stat and change its bytes unnoticed — git's "racy clean" problem. Racy
//! entries are recorded but rehashed on next use, after which they are normally safe.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::Digest;
use super::digest::hash_file;
use crate::{IoContext, Result};

/// How much older than the start of hashing a file's mtime must be for its entry to be trusted.
/// Covers coarse filesystem timestamps (kernel ticks, 1 s on some network filesystems).
pub const RACY_WINDOW_NS: i64 = 1_000_000_000;

const FORMAT_VERSION: u32 = 1;

/// The stat fields that identify an unchanged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
}

impl FileStat {
    /// Stats `path` (following symlinks).
    pub fn of(path: &Path) -> std::io::Result<FileStat> {
        Ok(Self::from_metadata(&std::fs::metadata(path)?))
    }

    /// The stat fields of `m`.
    pub fn from_metadata(m: &std::fs::Metadata) -> FileStat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileStat {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i64);
            FileStat {
                dev: 0,
                ino: 0,
                size: m.len(),
                mtime_ns,
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stat: FileStat,
    digest: Digest,
    /// When hashing started; the entry is racy if the mtime is not clearly older.
    hashed_at_ns: i64,
}

impl Entry {
    fn trusted_for(&self, stat: &FileStat) -> bool {
        self.stat == *stat && self.stat.mtime_ns < self.hashed_at_ns - RACY_WINDOW_NS
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    entries: HashMap<PathBuf, Entry>,
}

/// The stat cache of one cache directory; safe to use from several threads.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: std::sync::atomic::AtomicBool,
    /// Files hashed during this process (for `--json` counters and tests).
    pub hashed_files: AtomicU64,
    /// Bytes hashed during this process.
    pub hashed_bytes: AtomicU64,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl StatCache {
    /// Loads the stat cache at `path`; a missing or unreadable file gives an empty cache.
    pub fn load(path: &Path) -> StatCache {
        let entries = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<OnDisk>(&b).ok())
            .filter(|d| d.version == FORMAT_VERSION)
            .map(|d| d.entries)
            .unwrap_or_default();
        StatCache {
            path: path.to_path_buf(),
            entries: Mutex::new(entries),
            dirty: false.into(),
            hashed_files: 0.into(),
            hashed_bytes: 0.into(),
        }
    }

    /// Digest and size of `path`, from the cache when its stat is unchanged and not racy.
    pub fn digest(&self, path: &Path) -> Result<(Digest, u64)> {
        let stat = FileStat::of(path).with_path(path)?;
        if let Some(e) = self.lookup(path)
            && e.trusted_for(&stat)
        {
            return Ok((e.digest, stat.size));
        }
        let started = now_ns();
        tracing::debug!("hashing {}", path.display());
        let digest = hash_file(path)?;
        self.hashed_files.fetch_add(1, Ordering::Relaxed);
        self.hashed_bytes.fetch_add(stat.size, Ordering::Relaxed);
        // If the file changed while we hashed it, don't record anything.
        if FileStat::of(path).with_path(path)? == stat {
            self.insert(
                path,
                Entry {
                    stat,
                    digest,
                    hashed_at_ns: started,
                },
            );
        }
        Ok((digest, stat.size))
    }

    /// Records `digest` for `to`, with the stat of `from`: call it just before renaming `from`
    /// (which tinylm wrote) to `to`. A rename keeps device, inode, size and mtime, so the entry
    /// is valid the moment the file appears and a concurrent [`StatCache::verify`] of `to` never
    /// needs to rehash it.
    pub fn record_before_rename(&self, from: &Path, to: &Path, digest: Digest) -> Result<()> {
        let stat = FileStat::of(from).with_path(from)?;
        self.insert(
            to,
            Entry {
                stat,
                digest,
                hashed_at_ns: i64::MAX,
            },
        );
        Ok(())
    }

    /// Checks that the object at `path` still has `digest` and `size`; rehashes only when its
    /// stat differs from what was recorded.
    pub fn verify(&self, path: &Path, digest: &Digest, size: u64) -> Result<bool> {
        let stat = match FileStat::of(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(crate::Error::io(path, e)),
        };
        if stat.size != size {
            return Ok(false);
        }
        if let Some(e) = self.lookup(path)
            && e.stat == stat
            && e.digest == *digest
        {
            return Ok(true);
        }
        Ok(self.digest(path)?.0 == *digest)
    }

    /// Drops the entry for `path`.
    pub fn forget(&self, path: &Path) {
        if let Ok(mut m) = self.entries.lock()
            && m.remove(path).is_some()
        {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the cache back if anything changed.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.load(Ordering::Relaxed) {
            return Ok(());
        }
        let entries = self.entries.lock().map(|m| m.clone()).unwrap_or_default();
        let bytes = serde_json::to_vec(&OnDisk {
            version: FORMAT_VERSION,
            entries,
        })
        .map_err(|e| crate::Error::Build(format!("serializing stat cache: {e}")))?;
        crate::fsutil::write_atomic(&self.path, &bytes)
    }

    fn lookup(&self, path: &Path) -> Option<Entry> {
        self.entries.lock().ok()?.get(path).cloned()
    }

    fn insert(&self, path: &Path, e: Entry) {
        if let Ok(mut m) = self.entries.lock() {
            m.insert(path.to_path_buf(), e);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }
}

/// Digest of a directory tree: blake3 over the sorted (relative path, size, digest) of every
/// regular file, skipping dot-files and dot-directories (`.git`, `.cache`). Returns the digest
/// and the total size.
pub fn digest_dir(stat: &StatCache, dir: &Path) -> Result<(Digest, u64)> {
    let mut listing = String::new();
    let mut total = 0u64;
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| crate::Error::Build(format!("{}: {e}", dir.display())))?;
        // Regular files and symlinks to files (HF cache snapshots are symlinks).
        if !entry.path().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let (d, size) = stat.digest(entry.path())?;
        total += size;
        listing.push_str(&format!("{}\0{size}\0{d}\n", rel.to_string_lossy()));
    }
    Ok((Digest::of(listing.as_bytes()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backdate(path: &Path, secs: u64) {
        let t = SystemTime::now() - std::time::Duration::from_secs(secs);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn unchanged_old_files_are_not_rehashed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"hello").unwrap();
        backdate(&f, 60);
        let cache_path = dir.path().join("stat.json");
        let c = StatCache::load(&cache_path);
        let (d1, _) = c.digest(&f).unwrap();
        c.save().unwrap();
        let c = StatCache::load(&cache_path);
        let (d2, _) = c.digest(&f).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(c.hashed_files.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn racy_files_are_rehashed_and_same_size_edits_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"hello").unwrap();
        let c = StatCache::load(&dir.path().join("stat.json"));
        let (d1, _) = c.digest(&f).unwrap();
        // Same size, same second: stat alone could not tell the difference.
        std::fs::write(&f, b"jello").unwrap();
        let (d2, _) = c.digest(&f).unwrap();
        assert_ne!(d1, d2);
        assert_eq!(c.hashed_files.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn changed_stat_means_rehash() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a");
        std::fs::write(&f, b"hello").unwrap();
        backdate(&f, 60);
        let c = StatCache::load(&dir.path().join("stat.json"));
        c.digest(&f).unwrap();
        std::fs::write(&f, b"hello world").unwrap();
        backdate(&f, 30);
        let (d, size) = c.digest(&f).unwrap();
        assert_eq!((d, size), (Digest::of(b"hello world"), 11));
        assert_eq!(c.hashed_files.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn verify_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("obj.tmp");
        let f = dir.path().join("obj");
        std::fs::write(&tmp, b"content").unwrap();
        let c = StatCache::load(&dir.path().join("stat.json"));
        let d = Digest::of(b"content");
        c.record_before_rename(&tmp, &f, d).unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        assert!(c.verify(&f, &d, 7).unwrap());
        assert_eq!(
            c.hashed_files.load(Ordering::Relaxed),
            0,
            "trusted after the rename"
        );
        // A later same-size overwrite (a new mtime) is caught by rehashing.
        std::fs::write(&f, b"CONTENT").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(!c.verify(&f, &d, 7).unwrap());
        // A size change is caught without hashing.
        std::fs::write(&f, b"longer content").unwrap();
        let before = c.hashed_files.load(Ordering::Relaxed);
        assert!(!c.verify(&f, &d, 7).unwrap());
        assert_eq!(c.hashed_files.load(Ordering::Relaxed), before);
        assert!(!c.verify(&dir.path().join("missing"), &d, 7).unwrap());
    }
}
