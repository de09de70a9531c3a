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

/// Removes an object (e.g. found corrupt).
pub(super) fn remove(store: &Store, stat: &StatCache, digest: &Digest) {
    let path = store.object_path(digest);
    let _ = std::fs::remove_file(&path);
    stat.forget(&path);
}
