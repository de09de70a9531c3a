//! Placeholder until the template library lands: accepts every parameter.

use crate::manifest::ParamValue;

/// Checks a manifest PARAMETER against Ollama's table.
pub fn check_manifest_param(_name: &str, _value: &ParamValue) -> Result<(), String> {
    Ok(())
}
