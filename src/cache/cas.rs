//! Content-addressed objects: `cas/<2 hex>/<digest>`, read-only once written.

use std::path::Path;

use super::digest::hash_file;
use super::{Digest, StatCache, Store};
use crate::fsutil::{set_readonly, sync_dir};
use crate::{Error, IoContext, Result};

/// Moves a finished file (in the cache's tmp dir) into the store; returns its digest and size.
///
/// The object is made read-only and fsynced before the rename, so it appears whole or not at all.
/// If an intact object with the same digest already exists, the new file is simply dropped.
pub(super) fn insert(store: &Store, stat: &StatCache, file: &Path) -> Result<(Digest, u64)> {
    let digest = hash_file(file)?;
    let size = insert_verified(store, stat, file, digest)?;
    Ok((digest, size))
}

/// Like [`insert`] for a file whose blake3 the caller has just computed (a verified download);
/// returns its size.
pub(super) fn insert_verified(
    store: &Store,
    stat: &StatCache,
    file: &Path,
    digest: Digest,
) -> Result<u64> {
    let size = std::fs::metadata(file).with_path(file)?.len();
    let dest = store.object_path(&digest);
    if stat.verify(&dest, &digest, size)? {
        std::fs::remove_file(file).with_path(file)?;
        return Ok(size);
    }
    let f = std::fs::File::open(file).with_path(file)?;
    f.sync_all().with_path(file)?;
    set_readonly(file)?;
    let dir = dest.parent().unwrap_or(store.root());
    std::fs::create_dir_all(dir).with_path(dir)?;
    // Recorded before the rename so that a concurrent build step producing the same object
    // finds it trusted instead of rehashing it.
    stat.record_before_rename(file, &dest, digest)?;
    // A corrupt object in the way is read-only; renaming over it is still allowed on Unix.
    if let Err(e) = std::fs::rename(file, &dest) {
        stat.forget(&dest);
        return Err(Error::io(&dest, e));
    }
    sync_dir(dir);
    Ok(size)
}

/// Moves several finished files whose blake3 the caller has computed into the store at once
/// (verified downloads); returns each one's size or error, in order.
///
/// Crash safety is that of [`insert_verified`]: every file is fsynced *before* it is renamed
/// into `cas/`, so no object is ever visible under its name without its bytes on disk. What
/// the batch saves is the rest: the fsyncs come first, back to back, so the first one commits
/// the filesystem journal for all of them and the others find little left to do; then the
/// renames; then one fsync per directory that received objects, instead of one per object.
/// A crash between a rename and its directory's fsync can only lose the name (the object is
/// then missing and fetched or built again), never expose a partial object.
pub(super) fn insert_verified_batch(
    store: &Store,
    stat: &StatCache,
    files: &[(&Path, Digest)],
) -> Vec<Result<u64>> {
    let synced: Vec<Result<u64>> = files
        .iter()
        .map(|(file, _)| {
            let f = std::fs::File::open(file).with_path(file)?;
            f.sync_all().with_path(file)?;
            Ok(f.metadata().with_path(file)?.len())
        })
        .collect();
    let mut dirs = std::collections::BTreeSet::new();
    let done = files
        .iter()
        .zip(synced)
        .map(|((file, digest), size)| {
            let size = size?;
            let dest = store.object_path(digest);
            if stat.verify(&dest, digest, size)? {
                std::fs::remove_file(file).with_path(file)?;
                return Ok(size);
            }
            set_readonly(file)?;
            let dir = dest.parent().unwrap_or(store.root());
            std::fs::create_dir_all(dir).with_path(dir)?;
            stat.record_before_rename(file, &dest, *digest)?;
            if let Err(e) = std::fs::rename(file, &dest) {
                stat.forget(&dest);
                return Err(Error::io(&dest, e));
            }
            dirs.insert(dir.to_path_buf());
            Ok(size)
        })
        .collect();
    for dir in &dirs {
        sync_dir(dir);
    }
    done
}

/// Removes an object (e.g. found corrupt).
pub(super) fn remove(store: &Store, stat: &StatCache, digest: &Digest) {
    let path = store.object_path(digest);
    let _ = std::fs::remove_file(&path);
    stat.forget(&path);
}
