//! tiny-lm architectures, one module each behind [`TinyLmArchitecture`]: how to recognize a
//! checkpoint, which tensors it must have, how they map to the Hugging Face model's tensors,
//! and what its `config.json` says.
//!
//! Adding a tiny-lm architecture: a variant of [`TinyLmArch`] (the one enum the manifest, its
//! schema and the CLI share), a file here implementing [`TinyLmArchitecture`], one arm in
//! [`architecture`] (the registry: the compiler asks for it), and goldens
//! (`scripts/conformance/hf_export.py`, `tests/golden/hf_export/`).

mod gpt2;
mod llama3;

use std::collections::BTreeSet;

use clap::ValueEnum;
use serde_json::{Map, Value};

use super::TinyLmArch;
use super::config::ModelYaml;
use super::weights::{Builder, ModelFacts, Source};

/// The tensors a checkpoint must hold besides `token_emb.weight` (and an optional untied
/// `lm_head.weight`), by key without the Lightning `model.` prefix.
#[derive(Debug, Clone, Copy)]
pub struct KeyLayout {
    /// Top-level keys after `token_emb.weight`.
    pub top: &'static [&'static str],
    /// Keys of every block `blocks.N.*`.
    pub per_block: &'static [&'static str],
    /// Bias keys of a block that are all present or all absent (judged on block 0).
    pub optional: &'static [&'static str],
    /// Keys after the blocks.
    pub tail: &'static [&'static str],
}

/// One tiny-lm architecture (`tiny_lm/model/architectures/<name>`).
pub trait TinyLmArchitecture: Sync {
    /// Its name in the shared vocabulary.
    fn arch(&self) -> TinyLmArch;

    /// Key names that give the architecture away, for the "cannot tell" error.
    fn signature_hint(&self) -> &'static str;

    /// Whether a state dict with these keys (prefix stripped) is one of this architecture's.
    fn recognizes(&self, keys: &BTreeSet<&str>) -> bool;

    /// The tensors a checkpoint must hold.
    fn keys(&self) -> KeyLayout;

    /// Key/value heads from the YAML.
    fn kv_heads(&self, m: &ModelYaml) -> usize;

    /// Checks the YAML beyond the heads dividing `d_model` into `head_dim`.
    fn check_config(&self, _m: &ModelYaml, _head_dim: usize) -> Result<(), String> {
        Ok(())
    }

    /// Builds the HF tensors (in `b`) from the checkpoint and records what `config.json` needs
    /// in `facts`; token embedding and untied head excepted, which the caller handles.
    fn map(
        &self,
        m: &ModelYaml,
        src: &Source<'_>,
        b: &mut Builder,
        facts: &mut ModelFacts,
    ) -> Result<(), String>;

    /// The architecture's entries of `config.json` (`architectures`, `model_type`, …), added
    /// after the common ones in transformers' order.
    fn config_json(&self, m: &ModelYaml, f: &ModelFacts, c: &mut Map<String, Value>);
}

/// The implementation of `arch`: the registry, one arm per architecture.
pub fn architecture(arch: TinyLmArch) -> &'static dyn TinyLmArchitecture {
    match arch {
        TinyLmArch::Gpt2 => &gpt2::Gpt2,
        TinyLmArch::Llama3 => &llama3::Llama3,
    }
}

/// Every architecture, in the enum's order.
pub fn all() -> impl Iterator<Item = &'static dyn TinyLmArchitecture> {
    TinyLmArch::value_variants()
        .iter()
        .map(|a| architecture(*a))
}

/// What to say when no architecture recognizes a checkpoint.
pub fn unrecognized_hint() -> String {
    let hints: Vec<String> = all()
        .map(|a| format!("no {} for {}", a.signature_hint(), a.arch()))
        .collect();
    let names: Vec<&str> = all().map(|a| a.arch().name()).collect();
    format!(
        "cannot tell the architecture from the tensor names ({}); pass --arch {}",
        hints.join(", "),
        names.join("|")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_is_registered_under_its_own_name() {
        for a in TinyLmArch::value_variants() {
            assert_eq!(architecture(*a).arch(), *a);
        }
        assert_eq!(
            unrecognized_hint(),
            "cannot tell the architecture from the tensor names (no pos_emb/norm1 for gpt2, \
             no attn_norm/ffn.w1 for llama3); pass --arch gpt2|llama3"
        );
    }
}
