//! Chat templates: built-in families, detection, Ollama Modelfile writing/parsing and lint.

pub mod modelfile;
pub mod params;
