//! Garbage collection: drop objects and records nothing needs any more, oldest first.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::{Digest, ExclusiveCacheLock, Store, ac};
use crate::{Error, IoContext, Result};

/// What must survive a collection: the action keys and objects the project's lock file names.
#[derive(Debug, Clone, Default)]
pub struct GcRoots {
    /// Action records to keep.
    pub keys: BTreeSet<Digest>,
    /// Objects to keep.
    pub objects: BTreeSet<Digest>,
    /// Other projects sharing the cache whose needs are included (for the report).
    pub other_projects: Vec<PathBuf>,
}

/// What a collection did (the `--json` output of `tinylm gc`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcStats {
    /// Objects deleted.
    pub objects_deleted: usize,
    /// Bytes those objects took.
    pub bytes_freed: u64,
    /// Action records deleted.
    pub records_deleted: usize,
    /// Size of all objects before the collection.
    pub bytes_before: u64,
    /// Other projects sharing the cache whose lock files were honoured.
    pub other_projects: Vec<PathBuf>,
}

impl Store {
    /// Deletes objects not in `roots` (oldest first, only until the objects fit in `max_size`
    /// when given) and the records that are unreachable or point at deleted objects, so no
    /// record ever promises an output the cache no longer has. Without `max_size`, records of
    /// keys not in `roots` go too.
    pub fn gc(
        &self,
        _held: &ExclusiveCacheLock,
        roots: &GcRoots,
        max_size: Option<u64>,
    ) -> Result<GcStats> {
        let mut objects: Vec<(std::time::SystemTime, u64, PathBuf, bool)> = Vec::new();
        let mut total = 0u64;
        for entry in walkdir::WalkDir::new(self.root().join("cas"))
            .min_depth(2)
            .max_depth(2)
        {
            let entry = entry.map_err(|e| Error::Build(format!("scanning cache: {e}")))?;
            // Only objects: a file named by its digest in the directory of its first two
            // digits. Anything else in `cas/` is not ours to delete.
            let is_object = entry.file_type().is_file()
                && entry.file_name().to_str().is_some_and(|n| {
                    entry
                        .path()
                        .parent()
                        .and_then(|d| d.file_name())
                        .and_then(|d| d.to_str())
                        .is_some_and(|d| super::marker::is_digest_name(d, n))
                });
            if !is_object {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| Error::Build(format!("scanning cache: {e}")))?;
            total += meta.len();
            let reachable = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Digest>().ok())
                .is_some_and(|d| roots.objects.contains(&d));
            objects.push((
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                meta.len(),
                entry.into_path(),
                reachable,
            ));
        }
        objects.sort();
        let mut freed = 0u64;
        let mut deleted = BTreeSet::new();
        for (_, size, path, reachable) in &objects {
            if *reachable || max_size.is_some_and(|max| total - freed <= max) {
                continue;
            }
            std::fs::remove_file(path).with_path(path)?;
            freed += size;
            if let Some(d) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<Digest>().ok())
            {
                deleted.insert(d);
            }
        }
        let mut records = 0;
        for entry in walkdir::WalkDir::new(self.root().join("ac"))
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
        {
            let Some(key) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Digest>().ok())
            else {
                continue;
            };
            let dangling = ac::read(self, &key)
                .is_none_or(|r| r.outputs.values().any(|o| deleted.contains(&o.digest)));
            if (max_size.is_none() && !roots.keys.contains(&key)) || dangling {
                let _ = std::fs::remove_file(entry.path());
                records += 1;
            }
        }
        Ok(GcStats {
            objects_deleted: deleted.len(),
            bytes_freed: freed,
            records_deleted: records,
            bytes_before: total,
            other_projects: roots.other_projects.clone(),
        })
    }
}
