//! Advisory file locks so concurrent tinylm processes wait for each other instead of colliding.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::{Error, IoContext, Result};

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

/// Takes the lock at `path`, exclusive or shared, waiting (with a message naming `what`) if
/// another process holds it.
pub fn acquire(path: &Path, exclusive: bool, what: &str) -> Result<LockGuard> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_path(dir)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .with_path(path)?;
    let attempt = if exclusive {
        file.try_lock()
    } else {
        file.try_lock_shared()
    };
    match attempt {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            tracing::warn!("waiting for {what} to finish (lock {})", path.display());
            eprintln!(
                "Blocking: waiting for {what} to finish (lock {})",
                path.display()
            );
            let r = if exclusive {
                file.lock()
            } else {
                file.lock_shared()
            };
            r.map_err(|e| Error::io(path, e))?;
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(path, e)),
    }
    Ok(LockGuard { _file: file })
}
