//! Opening the files a user names (checkpoints, configs, tokenizers, templates, manifests,
//! GGUFs, Modelfiles): only regular files, after following symlinks, are read.
//!
//! `open(2)` on a FIFO blocks until a writer appears, and a character device such as
//! `/dev/zero` reads without end, so a plain `File::open` + `read_to_end` turns a wrong path into
//! a hang or an out-of-memory abort. These helpers open without blocking, check the opened
//! file's type (no race between the check and the read) and refuse anything but a regular file
//! with an error that says what the path is.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Opens `path` for reading if it is a regular file (symlinks followed); otherwise an
/// `InvalidInput` error saying what it is. Never blocks on a FIFO.
pub fn open(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Without O_NONBLOCK, opening a FIFO waits for a writer. It has no effect on reads of
        // regular files, the only kind we go on to read.
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "is {}, not a regular file (tinylm reads only regular files)",
                describe(&kind)
            ),
        ))
    }
}

/// The whole contents of the regular file `path`.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

/// The whole contents of the regular file `path` as UTF-8 text.
pub fn read_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "is not valid UTF-8 text".to_string(),
        )
    })
}

/// A read-only memory map of the regular file `path`; `populate` pre-faults every page (for
/// inputs that will be read in full).
/// The open file comes along for system calls that copy between files (`copy_file_range`).
pub fn map(path: &Path, populate: bool) -> io::Result<(memmap2::Mmap, File)> {
    let file = open(path)?;
    let mut opts = memmap2::MmapOptions::new();
    if populate {
        opts.populate();
    }
    // SAFETY: the mapping is read-only and private to this process; tinylm never writes its
    // inputs. Like every mmap-based model reader, we rely on the user not truncating the file
    // while tinylm runs; readers bounds-check every offset against the mapping's length.
    let map = unsafe { opts.map(&file)? };
    Ok((map, file))
}

/// Whether `path` (symlinks followed) is something [`open`] would refuse: it exists but is not
/// a regular file. For validation that wants to report the problem early (the manifest).
pub fn non_regular_kind(path: &Path) -> Option<&'static str> {
    let kind = std::fs::metadata(path).ok()?.file_type();
    (!kind.is_file()).then(|| describe(&kind))
}

fn describe(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_and_symlinks_to_them_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "hello").unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "hello");
        #[cfg(unix)]
        {
            let l = dir.path().join("link");
            std::os::unix::fs::symlink(&p, &l).unwrap();
            assert_eq!(read(&l).unwrap(), b"hello");
            assert_eq!(non_regular_kind(&l), None);
        }
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("a directory"), "{err}");
        #[cfg(unix)]
        {
            let err = read(Path::new("/dev/zero")).unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
            assert_eq!(
                non_regular_kind(Path::new("/dev/null")),
                Some("a character device")
            );
        }
    }
}
