//! The one error type shared by the file-format readers and writers.

use std::path::{Path, PathBuf};

/// Why an input or output file could not be read or written.
///
/// Every format module re-exports this under its own name (`SafetensorsError`, …) so call sites
/// read naturally; the variants are the same because the failure modes are: the OS refused, or
/// the bytes are not what the format promises.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened, mapped, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The contents are not valid for the format.
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong and what to do.
        msg: String,
    },
}

impl FileError {
    /// An [`FileError::Invalid`] for `path`.
    pub(crate) fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        FileError::Invalid {
            path: path.to_owned(),
            msg: msg.into(),
        }
    }
}

impl From<FileError> for crate::Error {
    fn from(e: FileError) -> Self {
        match e {
            FileError::Io { path, source } => crate::Error::Io { path, source },
            FileError::Invalid { path, msg } => crate::Error::Format { path, msg },
        }
    }
}
