//! Errors of the quantizer.

use std::path::PathBuf;

/// What went wrong while quantizing; converted into [`crate::Error`] at the module boundary.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// A metadata key the type rules need is missing or has the wrong type.
    #[error("metadata key '{key}' {msg}")]
    Metadata {
        /// The key.
        key: String,
        /// What is wrong with it.
        msg: String,
    },
    /// A tensor cannot be processed.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Tensor name.
        name: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// The input and output paths are the same file.
    #[error("input and output are the same file: {}", .0.display())]
    SameFile(PathBuf),
    /// Cancellation was requested.
    #[error("interrupted")]
    Interrupted,
}

impl QuantError {
    pub(crate) fn tensor(name: &str, msg: impl Into<String>) -> QuantError {
        QuantError::Tensor {
            name: name.to_string(),
            msg: msg.into(),
        }
    }
}
