//! Errors of the HF → GGUF converter.

/// What went wrong while converting an HF model to GGUF.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// `config.json` names an architecture the converter does not handle.
    #[error(
        "config.json: architecture '{arch}' is not supported; supported architectures: {}",
        supported.join(", ")
    )]
    UnsupportedArch {
        /// The `architectures[0]` value found.
        arch: String,
        /// Every architecture the converter accepts.
        supported: Vec<&'static str>,
    },
    /// A required file is absent or unreadable.
    #[error("{file}: {msg}")]
    File {
        /// File name inside the model folder.
        file: String,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A hyperparameter is missing or has the wrong type.
    #[error("config.json: {0}")]
    Config(String),
    /// A tensor is missing, unexpected or malformed.
    #[error("tensor '{name}': {msg}")]
    Tensor {
        /// Tensor name (HF name when known).
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// The tokenizer cannot be converted.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The conversion was cancelled through [`super::GgufOptions::cancel`].
    #[error("interrupted")]
    Cancelled,
    /// Writing the output failed.
    #[error(transparent)]
    Write(#[from] crate::Error),
}

impl From<ConvertError> for crate::Error {
    fn from(e: ConvertError) -> Self {
        match e {
            ConvertError::Cancelled => crate::Error::Interrupted,
            ConvertError::Write(inner) => inner,
            other => crate::Error::Build(other.to_string()),
        }
    }
}

/// Result alias for the converter.
pub type Result<T, E = ConvertError> = std::result::Result<T, E>;

pub(crate) fn cfg(msg: impl Into<String>) -> ConvertError {
    ConvertError::Config(msg.into())
}

pub(crate) fn tensor_err(name: &str, msg: impl Into<String>) -> ConvertError {
    ConvertError::Tensor {
        name: name.to_string(),
        msg: msg.into(),
    }
}

pub(crate) fn file_err(file: &str, msg: impl Into<String>) -> ConvertError {
    ConvertError::File {
        file: file.to_string(),
        msg: msg.into(),
    }
}
