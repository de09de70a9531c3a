//! The crate-wide error type and its mapping to exit codes.
//!
//! Library modules define their own `thiserror` enums with full context (which file, which key or
//! tensor, what was expected); they convert into [`Error`] at module boundaries. The CLI maps an
//! [`Error`] to an exit code with [`Error::exit_code`]: 2 for usage and manifest errors, 1 for
//! everything that went wrong while building.

use std::path::PathBuf;

/// Result alias used across tinylm.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error tinylm reports to a user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was wrong (bad flag value, unknown target, …).
    #[error("{0}")]
    Usage(String),

    /// `tinylm.toml` is malformed or inconsistent; the message carries file:line:column.
    #[error("{0}")]
    Manifest(String),

    /// An I/O operation on a specific path failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// An input file is not what it should be (truncated, wrong format, inconsistent).
    #[error("{}: {msg}", path.display())]
    Format {
        /// The offending file.
        path: PathBuf,
        /// What was wrong and, where possible, what to do.
        msg: String,
    },

    /// The build was interrupted (Ctrl-C); nothing partial was left behind.
    #[error("interrupted")]
    Interrupted,

    /// Any other build failure, already formatted for the user.
    #[error("{0}")]
    Build(String),
}

impl Error {
    /// Exit code for this error: 2 for usage/manifest errors, 130 after Ctrl-C (the shell
    /// convention for SIGINT), 1 for build failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Manifest(_) => 2,
            Error::Interrupted => 130,
            _ => 1,
        }
    }

    /// Wraps an `io::Error` with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A format error about `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Adds the path to an `io::Result`, turning it into a tinylm [`Result`].
pub trait IoContext<T> {
    /// Attaches `path` to the error, if any.
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn with_path(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
