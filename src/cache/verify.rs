//! `tinylm verify`: rehash every object of the cache, trusting nothing (not the stat cache).

use std::path::PathBuf;

use serde::Serialize;

use super::{Digest, SharedCacheLock, Store, marker};
use crate::Result;

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyStats {
    /// Objects hashed.
    pub objects: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Objects whose content does not match their name.
    pub corrupt: Vec<PathBuf>,
}

impl Store {
    /// Rehashes every object (held shared, like a build: objects are immutable once named).
    pub fn verify(&self, _held: &SharedCacheLock) -> Result<VerifyStats> {
        let mut stats = VerifyStats::default();
        for entry in walkdir::WalkDir::new(self.root().join("cas"))
            .min_depth(2)
            .max_depth(2)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            let (Some(name), Some(dir)) = (
                entry.file_name().to_str(),
                entry
                    .path()
                    .parent()
                    .and_then(|d| d.file_name())
                    .and_then(|d| d.to_str()),
            ) else {
                continue;
            };
            if !entry.file_type().is_file() || !marker::is_digest_name(dir, name) {
                continue;
            }
            let Ok(expected) = name.parse::<Digest>() else {
                continue;
            };
            stats.objects += 1;
            stats.bytes += entry.metadata().map_or(0, |m| m.len());
            // An unreadable object is as useless as a corrupt one.
            if super::digest::hash_file(entry.path()).ok() != Some(expected) {
                stats.corrupt.push(entry.path().to_path_buf());
            }
        }
        Ok(stats)
    }
}
