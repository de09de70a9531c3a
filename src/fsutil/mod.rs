//! File-system helpers every layer shares: atomic writes, advisory locks, read-only files,
//! link-or-copy placement, same-file checks and manifest-relative path display.
//!
//! They live in one place so that the crash-safety rules (temp file in the destination
//! directory, fsync, rename; never a partial file under the final name) are written once.

pub mod input;
pub mod lock;
pub mod temp;
pub mod writeback;

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use crate::{Error, IoContext, Result};

/// Writes `bytes` to `path` atomically (readers see the old file or the new one, never a mix).
///
/// For tinylm's own state (action records, the stat cache, the lock file, project state): the
/// file gets the permissions of a normally created file (0666 less the umask) and the directory
/// is fsynced after the rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, None, true)
}

/// Like [`write_atomic`], with the temp file in `tmp_dir` (on the same filesystem as `path`),
/// so a crash leaves its temp file where the next run looks for leftovers, not beside `path`.
pub fn write_atomic_via(path: &Path, bytes: &[u8], tmp_dir: &Path) -> Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).with_path(dir)?;
    let mut tmp = temp_file_named(tmp_dir, path.file_name().unwrap_or_default()).with_path(path)?;
    // Through the File: NamedTempFile's own Write appends "at path <temp file>" to errors.
    tmp.as_file_mut().write_all(bytes).with_path(path)?;
    tmp.as_file().sync_all().with_path(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Like [`write_atomic`], for files other programs read (the Ollama store): mode 0644, like a
/// file created normally.
pub fn write_atomic_shared(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, Some(0o644), false)
}

fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    mode: Option<u32>,
    sync_parent: bool,
) -> Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).with_path(dir)?;
    // Errors name the file being written, never the temp file (which is removed on error).
    let mut tmp = public_temp_file_for(path).with_path(path)?;
    // Through the File: NamedTempFile's own Write appends "at path <temp file>" to errors.
    tmp.as_file_mut().write_all(bytes).with_path(path)?;
    tmp.as_file().sync_all().with_path(path)?;
    if let Some(mode) = mode {
        set_mode(tmp.path(), mode).map_err(|e| match e {
            Error::Io { source, .. } => Error::io(path, source),
            other => other,
        })?;
    }
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    if sync_parent {
        sync_dir(dir);
    }
    Ok(())
}

/// A temporary file in `dir` that gets the permissions of a normally created file (0666 less
/// the umask) once persisted (tempfile's default is 0600). The caller writes it and persists
/// it over the final name.
pub fn public_temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    temp_file_named(dir, OsStr::new(""))
}

/// Like [`public_temp_file_in`], in the directory of `path` and named after it
/// (`.<name>.tinylm-tmp-<pid>-<random>`), so a leftover says what it was.
pub fn public_temp_file_for(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    temp_file_named(parent(path), path.file_name().unwrap_or_default())
}

fn temp_file_named(dir: &Path, name: &OsStr) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    let prefix = temp::temp_prefix(name);
    b.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Passed to open(2), so the umask applies, as for any new file.
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir)
}

/// The directory a file named `path` goes into (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a directory so a rename into it survives a power loss (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Sets a file's Unix permission bits (no-op elsewhere).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).with_path(path)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Makes a file read-only for everyone.
pub fn set_readonly(path: &Path) -> Result<()> {
    let mut perms = std::fs::metadata(path).with_path(path)?.permissions();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        perms.set_mode(0o444);
    }
    #[cfg(not(unix))]
    perms.set_readonly(true);
    std::fs::set_permissions(path, perms).with_path(path)
}

/// How [`link_or_copy`] put a file in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linked {
    /// A copy-on-write clone: own inode, shared extents.
    Reflink,
    /// A hard link: the very same inode.
    Hardlink,
    /// A plain byte copy.
    Copy,
}

/// Puts the bytes of `src` at `dst` (which must not exist): a reflink where the filesystem
/// can, else a hard link, else a copy.
pub fn link_or_copy(src: &Path, dst: &Path) -> Result<Linked> {
    if reflink_copy::reflink(src, dst).is_ok() {
        return Ok(Linked::Reflink);
    }
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(Linked::Hardlink);
    }
    std::fs::copy(src, dst).with_path(dst)?;
    Ok(Linked::Copy)
}

/// Puts the bytes of `src` at `dst`: a hard link when both are on one filesystem, else a
/// copy. Returns whether it hard-linked. For stores other programs own (a reflink would give
/// them a file tinylm cannot recognise as its own later).
pub fn hardlink_or_copy(src: &Path, dst: &Path) -> Result<bool> {
    if std::fs::hard_link(src, dst).is_ok() {
        return Ok(true);
    }
    std::fs::copy(src, dst).with_path(dst)?;
    Ok(false)
}

/// Copies `src` to `dst`, as a copy-on-write clone where the filesystem allows.
pub fn reflink_or_copy(src: &Path, dst: &Path) -> Result<()> {
    reflink_copy::reflink_or_copy(src, dst)
        .map(|_| ())
        .map_err(|e| Error::io(dst, e))
}

/// Whether two paths name the same file: the same path once symlinks are resolved, or the
/// same inode (a hard link). Paths that do not exist are never the same file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(x), Ok(y)) = (a.canonicalize(), b.canonicalize())
        && x == y
    {
        return true;
    }
    same_inode(a, b)
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino() && x.ino() != 0,
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

/// `p` relative to `root` with `/` separators when it is inside it, else as given: how paths
/// appear in `tinylm.lock`, the build graph and the starter manifest.
pub fn relative(root: &Path, p: &Path) -> String {
    let rel = p.strip_prefix(root).unwrap_or(p);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        write_atomic_shared(&p, b"three").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644);
        }
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "a.json")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn same_file_sees_hard_links_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        let b = dir.path().join("b");
        std::fs::hard_link(&a, &b).unwrap();
        let c = dir.path().join("c");
        std::fs::write(&c, b"x").unwrap();
        assert!(same_file(&a, &b));
        assert!(same_file(&a, &dir.path().join("./a")));
        assert!(!same_file(&a, &c));
        assert!(!same_file(&a, &dir.path().join("missing")));
    }
}
