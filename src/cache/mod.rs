//! The content-addressed cache and the project state around it.
//!
//! Layout under the cache directory:
//! - `cas/<2 hex>/<digest>`: read-only objects named by their blake3 digest ([`cas`]);
//! - `ac/<2 hex>/<key>`: action records, the outputs of an action key ([`ac`]);
//! - `stat.json`: the stat cache, (path, dev, ino, size, mtime) → digest ([`stat`]);
//! - `roots/`: the projects using this cache and what their locks need, so `gc` in one project
//!   keeps what another still needs ([`roots`]);
//! - `remote/`: sha256 of objects and transfer totals of the remote cache ([`remote`]);
//! - `tmp/`: staging area for outputs being produced (same filesystem, so renames are atomic);
//! - `lock`: shared by builds, exclusive for `gc` ([`lock`]).
//!
//! Every write is a temp file in the same directory, fsynced, then renamed into place
//! ([`atomic`]), so a crash or Ctrl-C never leaves a partial object or record.

pub mod ac;
pub mod atomic;
pub mod cas;
pub mod digest;
pub mod lock;
pub mod remote;
pub mod roots;
pub mod stat;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use ac::{ActionRecord, OutputEntry};
pub use digest::Digest;
pub use stat::StatCache;

use crate::{IoContext, Result};

/// The cache directory and its parts.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// The remote cache behind this one ([`Store::with_remote`]).
    remote: Option<Arc<remote::Remote>>,
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
    pub fn record_path(&self, key: &Digest) -> PathBuf {
        let hex = key.to_hex();
        self.root.join("ac").join(&hex[..2]).join(&hex)
    }

    /// The staging directory for outputs in progress.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The lock file shared by builds and taken exclusively by `gc`.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The stat cache file.
    pub fn stat_path(&self) -> PathBuf {
        self.root.join("stat.json")
    }
}
