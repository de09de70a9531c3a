//! Architectures the converter knows, one module each behind [`Architecture`], and the
//! [`REGISTRY`] that finds one from `config.json`.
//!
//! An architecture says what llama.cpp's `convert_hf_to_gguf.py` says in its `Model` subclass:
//! the HF class names it handles, the transformers config classes whose defaults leak into the
//! GGUF, how tensor names map, which tensors change layout (or are dropped, or generated), the
//! `<arch>.*` metadata it writes, and the tokenizer model its vocabulary uses. Everything else
//! (tensor order, types, the vocabulary itself, `general.*`) is shared by all.
//!
//! Adding an architecture: a file here implementing [`Architecture`] (start from the closest
//! one; [`text`] has the generic `TextModel` pieces), one line in [`REGISTRY`], and goldens
//! from the reference converter (`scripts/golden/make_hf_goldens.py`,
//! `tests/it/golden_hf_to_gguf.rs`).

mod gemma;
mod gemma2;
mod gemma3;
mod gpt2;
mod gptneox;
mod llama;
mod olmo2;
mod phi3;
mod qwen2;
mod qwen3;
mod smollm3;
pub(super) mod text;

use serde_json::{Map, Value as Json};

use super::error::{ConvertError, Result, cfg};
use super::hparams::Hparams;
use super::layout::Layout;
use super::tensors::{PlannedTensor, Transform};
use crate::convert::hf::HfModel;
use crate::formats::gguf::GgufWriter;

/// Every architecture, in the order error messages list them.
pub static REGISTRY: &[&dyn Architecture] = &[
    &gpt2::Gpt2,
    &llama::Llama,
    &qwen2::Qwen2,
    &qwen3::Qwen3,
    &gptneox::GptNeox,
    &olmo2::Olmo2,
    &smollm3::SmolLm3,
    &phi3::Phi3,
    &gemma::Gemma,
    &gemma2::Gemma2,
    &gemma3::Gemma3,
];

/// Which of the reference's vocabulary readers an architecture uses for a model folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// Byte-level BPE from `tokenizer.json` (`_set_vocab_gpt2`, model `gpt2`).
    Bpe,
    /// A SentencePiece `tokenizer.model` (`_set_vocab_sentencepiece`, model `llama`).
    SentencePiece,
    /// Phi-3's own reading of `tokenizer.model` (`Phi3MiniModel.set_vocab`).
    Phi3SentencePiece,
    /// A SentencePiece-style `tokenizer.json`: BPE with byte fallback (`_set_vocab_llama_hf`).
    LlamaHf,
}

/// The transformers tokenizer class `AutoTokenizer` builds for a config class, by the
/// behaviour the BPE vocabulary emulates (special-token defaults, post-processor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerClass {
    /// `GPT2TokenizerFast`.
    Gpt2,
    /// `Qwen2TokenizerFast`.
    Qwen2,
    /// `LlamaTokenizerFast` (rewrites the post-processor for `add_bos/eos_token`).
    Llama,
    /// Anything else: `tokenizer.json` as is.
    Generic,
}

/// A transformers config class: what `AutoConfig(...).to_dict()` adds to `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct ConfigClass {
    /// `model_type` in `config.json`.
    pub model_type: &'static str,
    /// Defaults of the keys the converter reads (the class's `__init__` arguments).
    pub defaults: fn() -> Vec<(&'static str, Json)>,
    /// `attribute_map`: generic names `config.json` may use for the class's own keys.
    pub attribute_map: &'static [(&'static str, &'static str)],
    /// `__init__` post-processing (derived defaults).
    pub post_init: fn(&mut Map<String, Json>),
    /// The tokenizer class `AutoTokenizer` picks when `tokenizer_config.json` names none.
    pub tokenizer: TokenizerClass,
}

/// A [`ConfigClass::post_init`] for classes whose `__init__` derives nothing.
pub(super) fn no_post_init(_map: &mut Map<String, Json>) {}

/// Tensors the reference drops without a trace vs. with a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Converted.
    Keep,
    /// Dropped without a warning: the reference skips it by design (Gemma's unused `lm_head`).
    Ignore,
    /// Dropped; the warning names how many, like "dropped 2 {what} (…): they are not weights".
    Drop {
        /// What the dropped tensors are, plural.
        what: &'static str,
    },
}

/// One architecture of llama.cpp's converter.
pub trait Architecture: Sync {
    /// `general.architecture` and the prefix of its hyperparameter keys.
    fn gguf_name(&self) -> &'static str;

    /// `config.json` `architectures[0]` values this module converts.
    fn hf_architectures(&self) -> &'static [&'static str];

    /// The transformers config classes (by `model_type`) whose defaults it knows.
    fn config_classes(&self) -> &'static [ConfigClass];

    /// Refuses variants the reference converts differently (embedding heads, rerankers).
    fn check_variant(&self, _model: &HfModel, _hp: &Hparams) -> Result<()> {
        Ok(())
    }

    /// The tensors llama.cpp's loader reads for this architecture, with the shapes the
    /// hyperparameters imply (`n_vocab` is the token embedding's rows); an error names an
    /// inconsistent hyperparameter. `None`: not checked.
    fn layout(&self, _hp: &Hparams, _n_vocab: usize) -> Result<Option<Layout>> {
        Ok(None)
    }

    /// KVs the reference writes while planning tensors, so right after
    /// `general.architecture` (Phi-3's `rope.scaling.attn_factor`).
    fn early_params(&self, _hp: &Hparams, _w: &mut GgufWriter) -> Result<()> {
        Ok(())
    }

    /// Tensors computed from the hyperparameters, written before the model's own
    /// (`rope_freqs.weight` for Llama 3 rope scaling).
    fn extra_tensors(&self, _hp: &Hparams) -> Result<Vec<PlannedTensor>> {
        Ok(Vec::new())
    }

    /// Whether an HF tensor is converted.
    fn skip(&self, _name: &str) -> Skip {
        Skip::Keep
    }

    /// The HF name after the architecture's prefix rules (`hf_arch` is `architectures[0]`).
    fn normalize_name(&self, _hf_arch: &str, name: String) -> String {
        name
    }

    /// The GGUF name of an HF tensor (weight or bias), `None` if the architecture has none.
    fn map_name(&self, name: &str, block_count: u32) -> Option<String>;

    /// The layout change a tensor needs (`name` normalized, `hf_name` as stored), updating
    /// `shape` to the output shape. Value changes (norm offsets, …) are transforms too.
    fn transform(
        &self,
        _name: &str,
        _hf_name: &str,
        _shape: &mut Vec<usize>,
        _hp: &Hparams,
    ) -> Result<Transform> {
        Ok(Transform::None)
    }

    /// Writes the `<arch>.*` hyperparameters and `general.file_type` (`set_gguf_parameters`).
    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()>;

    /// The vocabulary reader for this folder (`set_vocab`); `TextModel`'s is byte-level BPE.
    fn vocab_kind(&self, _model: &HfModel) -> Result<VocabKind> {
        Ok(VocabKind::Bpe)
    }

    /// Tokenizer KVs and checks before the vocabulary (`set_vocab`'s preamble).
    fn before_vocab(&self, _model: &HfModel, _w: &mut GgufWriter) -> Result<()> {
        Ok(())
    }

    /// Checks a parsed `tokenizer.json` before it is converted as byte-level BPE.
    fn check_bpe_tokenizer(&self, _tokenizer_json: &Map<String, Json>) -> Result<()> {
        Ok(())
    }

    /// Tokenizer KVs after the vocabulary and special tokens.
    fn after_vocab(&self, _model: &HfModel, _hp: &Hparams, _w: &mut GgufWriter) -> Result<()> {
        Ok(())
    }

    /// Rows of `token_embd.weight` to keep (Gemma 3 drops rows beyond the tokenizer).
    fn embedding_rows(&self, _model: &HfModel, _hp: &Hparams) -> Result<Option<usize>> {
        Ok(None)
    }
}

/// Every HF architecture name the converter accepts, in registry order.
pub fn supported() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .flat_map(|a| a.hf_architectures().iter().copied())
        .collect()
}

/// The config class of `model_type`, if an architecture knows it.
pub fn config_class(model_type: &str) -> Option<&'static ConfigClass> {
    REGISTRY
        .iter()
        .flat_map(|a| a.config_classes())
        .find(|c| c.model_type == model_type)
}

/// Picks the architecture from `config.json`, failing up front for unsupported ones. Returns
/// it with the HF architecture string.
pub fn detect(hp: &Hparams) -> Result<(&'static dyn Architecture, String)> {
    let arch = hp
        .raw
        .get("architectures")
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(Json::as_str)
        .map(str::to_string);
    let Some(arch) = arch else {
        return Err(cfg(format!(
            "no \"architectures\" entry: cannot tell the model type (supported: {})",
            supported().join(", ")
        )));
    };
    match REGISTRY
        .iter()
        .find(|a| a.hf_architectures().contains(&arch.as_str()))
    {
        Some(a) => Ok((*a, arch)),
        None => Err(ConvertError::UnsupportedArch {
            arch,
            supported: supported(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_belongs_to_one_architecture() {
        let mut hf: Vec<&str> = supported();
        let n = hf.len();
        hf.sort();
        hf.dedup();
        assert_eq!(hf.len(), n, "an HF architecture is claimed twice");
        let mut gguf: Vec<&str> = REGISTRY.iter().map(|a| a.gguf_name()).collect();
        gguf.sort();
        gguf.dedup();
        assert_eq!(gguf.len(), REGISTRY.len());
        let mut types: Vec<&str> = REGISTRY
            .iter()
            .flat_map(|a| a.config_classes().iter().map(|c| c.model_type))
            .collect();
        let n = types.len();
        types.sort();
        types.dedup();
        assert_eq!(types.len(), n, "a config class is declared twice");
        assert_eq!(
            config_class("mistral").map(|c| c.tokenizer),
            Some(TokenizerClass::Llama)
        );
    }
}
