//! tinylm: a content-addressed build system for small language models.
//!
//! Data flows one way:
//! [`manifest`] (parse + validate `tinylm.toml`) → [`plan`] (DAG of actions with content keys)
//! → [`exec`] (run stale actions in parallel, results into [`cache`]) → materialize into `dist/`.
//!
//! Actions ([`actions`]) are thin adapters over the libraries that do the real work:
//! [`formats`] (file readers/writers), [`convert`] (tiny-lm → HF, HF → GGUF), [`quant`]
//! (GGUF quantization), [`template`] (chat templates, Modelfiles, lint) and [`install`]
//! (Ollama / LM Studio stores).

pub(crate) mod actions;
pub mod cache;
pub mod cli;
pub mod convert;
pub mod error;
pub mod exec;
pub mod formats;
pub(crate) mod fsutil;
pub mod infer;
pub mod inspect;
pub mod install;
pub mod manifest;
pub mod plan;
pub mod quant;
pub(crate) mod suggest;
pub mod template;
pub mod workspace;

pub use error::{Error, IoContext, Result};

/// The tinylm version, recorded in action keys and release metadata.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
