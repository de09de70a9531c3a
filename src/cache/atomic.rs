//! Crash-safe file writes: temp file in the destination directory, fsync, rename.

use std::io::Write;
use std::path::Path;

use crate::{Error, IoContext, Result};

/// Writes `bytes` to `path` atomically (readers see the old file or the new one, never a mix).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).with_path(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_path(dir)?;
    tmp.write_all(bytes).with_path(tmp.path())?;
    tmp.as_file().sync_all().with_path(tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// fsyncs a directory so a rename into it survives a power loss (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
