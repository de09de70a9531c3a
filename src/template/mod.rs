//! Chat templates: built-in families, detection, Ollama Modelfile writing/parsing and lint.
//!
//! Entry points for the engine:
//! - [`params::validate`] / [`params::validate_toml`]: a manifest PARAMETER value → typed
//!   [`params::ParamValue`] or a [`params::ParamError`] naming the parameter, the expected Go
//!   type and the allowed names (with a did-you-mean).
//! - [`modelfile::Modelfile::render`]: deterministic Modelfile text that Ollama's parser reads
//!   back unchanged (or an error saying which value cannot be represented);
//!   [`modelfile::Modelfile::parse`] / [`modelfile::parse_commands`]: Ollama's parser.
//! - [`params::params_blob`]: the JSON params layer Ollama stores for those parameters.

pub mod detect;
pub mod families;
pub(crate) mod golang;
pub mod gotmpl;
pub mod lint;
pub mod modelfile;
pub mod params;
pub mod vocab;
