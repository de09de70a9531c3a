//! Running models: a native f32 forward pass over every architecture tinylm converts.
//!
//! - [`Model`]: loads a GGUF ([`Model::load`], any tensor type tinylm writes, memory-mapped and
//!   decoded a tile at a time) or an HF model / tiny-lm checkpoint ([`load_hf_dir`],
//!   [`load_tinylm`]) with its own tensor layout, so source and GGUF logits can be compared.
//! - [`Session`]: a KV cache; [`Session::eval`] runs a chunk of tokens at once.
//! - [`arch`]: one file per architecture plus the registry.

pub mod arch;
pub mod config;
pub mod eval;
pub mod imatrix;
pub mod kernel;
mod load;
pub mod model;
pub mod ops;
pub mod qdot;
pub mod sample;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

pub use config::ModelConfig;
pub use model::{MatmulObserver, Model, Numerics, Session};
pub use tokenizer::Tokenizer;
pub use weights::Weight;

use crate::convert::hf::HfModel;
use crate::convert::tinylm_to_hf::{self, ExportOptions, TinyLmInputs};
use crate::formats::gguf::GgufFile;

/// Why a model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The architecture has no description in [`arch::REGISTRY`].
    #[error(
        "{}: architecture '{arch}' cannot be run by tinylm yet (it runs: {})",
        path.display(),
        arch::supported()
    )]
    UnsupportedArch {
        /// The model file.
        path: PathBuf,
        /// Its architecture.
        arch: String,
    },
    /// A hyper-parameter is missing or wrong.
    #[error("{}: {msg}", path.display())]
    Metadata {
        /// The model file (or its config.json).
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A tensor is missing or has the wrong shape or type.
    #[error("{}: tensor '{name}' {msg}", path.display())]
    Tensor {
        /// The model file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// Bad input to a run (token outside the vocabulary, context full, …).
    #[error("{0}")]
    Input(String),
    /// Reading the file failed.
    #[error(transparent)]
    File(#[from] crate::Error),
}

impl From<InferError> for crate::Error {
    fn from(e: InferError) -> Self {
        match e {
            InferError::File(e) => e,
            InferError::Metadata { path, msg } => crate::Error::format(path, msg),
            other => crate::Error::Build(other.to_string()),
        }
    }
}

/// Loads a model from an already-parsed GGUF file.
pub fn load_gguf(file: &GgufFile) -> Result<Model, InferError> {
    load::from_gguf_file(file)
}

/// Loads an in-memory HF model; `origin` names it in errors.
pub fn load_hf(model: &HfModel, origin: &Path) -> Result<Model, InferError> {
    load::from_hf(model, origin)
}

/// Loads an HF model folder (safetensors or pytorch_model.bin, memory-mapped).
pub fn load_hf_dir(dir: &Path) -> Result<Model, InferError> {
    let m = HfModel::open(dir)?;
    load::from_hf(&m, dir)
}

/// Loads a tiny-lm checkpoint through the in-memory HF export (f32 weights).
pub fn load_tinylm(inputs: &TinyLmInputs) -> Result<Model, InferError> {
    let hf = tinylm_to_hf::export(inputs, &ExportOptions::default()).map_err(crate::Error::from)?;
    load::from_hf(&hf, &inputs.checkpoint)
}

/// A GGUF model with its tokenizer.
pub struct Loaded {
    /// The weights.
    pub model: Model,
    /// The tokenizer from the same file.
    pub tokenizer: Tokenizer,
}

/// Loads a GGUF file's model and tokenizer.
pub fn load_with_tokenizer(path: &Path) -> Result<Loaded, crate::Error> {
    let file = GgufFile::open(path)?;
    // The model first: an unsupported architecture is the more useful message.
    let model = load::from_gguf_file(&file)?;
    let tokenizer =
        Tokenizer::from_gguf(&file, None).map_err(|e| crate::Error::format(path, e.msg))?;
    if tokenizer.n_vocab() != model.config.n_vocab {
        return Err(crate::Error::format(
            path,
            format!(
                "the tokenizer has {} tokens but token_embd.weight has {} rows",
                tokenizer.n_vocab(),
                model.config.n_vocab
            ),
        ));
    }
    Ok(Loaded { model, tokenizer })
}
