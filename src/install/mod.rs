//! Installing built models into local runtimes (Ollama store, LM Studio).
//!
//! Engine entry points: [`ollama::install`] (gguf path, Modelfile, name) writes the Ollama store
//! directly; [`ollama::uninstall`]; [`ollama::create_via_cli`] for `--via-cli`;
//! [`lmstudio::install`].

pub mod lmstudio;
pub mod ollama;
pub mod project;
