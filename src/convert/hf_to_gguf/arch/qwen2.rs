//! Qwen2 (`Qwen2ForCausalLM`, `Qwen2Model`): Llama's tensor names without the Q/K permutation.
//!
//! Reference: `Qwen2Model` in llama.cpp's `convert_hf_to_gguf.py`; transformers' `Qwen2Config`
//! for the defaults.

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, file_err};
use super::super::hparams::{self, Hparams};
use super::super::layout::{self, Layout, QueryWidth};
use super::text::{self, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass};
use crate::convert::hf::HfModel;
use crate::formats::gguf::GgufWriter;

/// Qwen2.
pub struct Qwen2;

/// `Qwen2Config` defaults (Qwen3's add `head_dim`).
pub(super) fn qwen2_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(151936)),
        ("max_position_embeddings", json!(32768)),
        ("hidden_size", json!(4096)),
        ("intermediate_size", json!(22016)),
        ("num_hidden_layers", json!(32)),
        ("num_attention_heads", json!(32)),
        ("num_key_value_heads", Json::Null),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(10000.0)),
        ("rope_scaling", Json::Null),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", Json::Null),
        ("eos_token_id", Json::Null),
    ]
}

/// `Qwen2Config.__init__` (and Qwen3's): default KV heads, `rope_scaling.type` mirrored.
pub(super) fn qwen_post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
    hparams::rope_type_from_type(map);
}

/// Refuses sentence-transformers exports (a pooling module): embedding models, which the
/// reference converts with a different head.
pub(super) fn reject_pooling(model: &HfModel) -> Result<()> {
    if let Some(bytes) = model.files.get("modules.json")
        && let Ok(Json::Array(mods)) = serde_json::from_slice::<Json>(bytes)
        && mods.iter().any(|m| {
            m.get("type")
                .and_then(Json::as_str)
                .is_some_and(|t| t.ends_with("Pooling"))
        })
    {
        return Err(file_err(
            "modules.json",
            "sentence-transformers pooling (embedding models) is not supported",
        ));
    }
    Ok(())
}

impl Architecture for Qwen2 {
    fn gguf_name(&self) -> &'static str {
        "qwen2"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Qwen2ForCausalLM", "Qwen2Model"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "qwen2",
            defaults: qwen2_defaults,
            attribute_map: &[],
            post_init: qwen_post_init,
            tokenizer: TokenizerClass::Qwen2,
        }]
    }

    fn check_variant(&self, model: &HfModel, _hp: &Hparams) -> Result<()> {
        reject_pooling(model)
    }

    fn normalize_name(&self, hf_arch: &str, name: String) -> String {
        if hf_arch == "Qwen2Model" {
            format!("model.{name}")
        } else {
            name
        }
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| text::map_decoder(base, block_count, false))
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        layout::decoder(hp, n_vocab, QueryWidth::Embedding, false).map(Some)
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("qwen2", hp, file_type, w)
    }
}
