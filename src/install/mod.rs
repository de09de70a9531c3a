//! Installing built models into local runtimes (Ollama store, LM Studio).
//!
//! Entry points: [`ollama::install`] (gguf path, Modelfile, name) writes the Ollama store
//! directly; [`ollama::uninstall`]; [`ollama::create_via_cli`] for `--via-cli`;
//! [`lmstudio::install`]. Installing a manifest's artifacts is the workspace's
//! ([`crate::workspace::Workspace::install`]).

pub mod lmstudio;
pub mod ollama;

use serde::Serialize;

/// A local runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The Ollama store.
    Ollama,
    /// LM Studio's models folder.
    Lmstudio,
}
