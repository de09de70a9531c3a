//! Gemma 3, text only (`Gemma3ForCausalLM`): Gemma 2's layout plus per-head q/k RMS norms,
//! separate rope bases for global and sliding-window layers, no attention soft-capping, and
//! token embedding rows beyond the tokenizer dropped.
//!
//! Reference: `Gemma3Model` in llama.cpp's `convert_hf_to_gguf.py`; transformers'
//! `Gemma3TextConfig` for the defaults.

use serde_json::{Value as Json, json};

use super::super::error::{Result, cfg, file_err};
use super::super::hparams::{Hparams, as_f32};
use super::super::json::parse_json_file;
use super::super::spm_vocab;
use super::super::tensors::Transform;
use super::gemma::{Generation, map_gemma, norm_shift};
use super::text;
use super::{Architecture, ConfigClass, TokenizerClass, VocabKind, no_post_init};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgufWriter, Value};

/// Gemma 3 (text).
pub struct Gemma3;

fn gemma3_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(262208)),
        ("hidden_size", json!(2304)),
        ("intermediate_size", json!(9216)),
        ("num_hidden_layers", json!(26)),
        ("num_attention_heads", json!(8)),
        ("num_key_value_heads", json!(4)),
        ("head_dim", json!(256)),
        ("max_position_embeddings", json!(131072)),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(1_000_000.0)),
        ("rope_local_base_freq", json!(10000.0)),
        ("rope_scaling", Json::Null),
        ("tie_word_embeddings", json!(true)),
        ("query_pre_attn_scalar", json!(256)),
        ("sliding_window", json!(4096)),
        ("final_logit_softcapping", Json::Null),
        ("attn_logit_softcapping", Json::Null),
        ("pad_token_id", json!(0)),
        ("eos_token_id", json!(1)),
        ("bos_token_id", json!(2)),
    ]
}

impl Architecture for Gemma3 {
    fn gguf_name(&self) -> &'static str {
        "gemma3"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Gemma3ForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "gemma3_text",
            defaults: gemma3_defaults,
            attribute_map: &[],
            post_init: no_post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_gemma(name, block_count, Generation::Three)
    }

    fn transform(
        &self,
        name: &str,
        _hf_name: &str,
        _shape: &mut Vec<usize>,
        _hp: &Hparams,
    ) -> Result<Transform> {
        Ok(norm_shift(name))
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("gemma3", hp, file_type, w)?;
        let u =
            |key: &str, default: u32| -> Result<u32> { Ok(hp.opt_u32(&[key])?.unwrap_or(default)) };
        w.add_kv(
            "gemma3.context_length",
            Value::U32(u("max_position_embeddings", 131072)?),
        );
        w.add_kv(
            "gemma3.attention.head_count",
            Value::U32(u("num_attention_heads", 8)?),
        );
        w.add_kv(
            "gemma3.attention.layer_norm_rms_epsilon",
            Value::F32(hp.opt_f32(&["rms_norm_eps"])?.unwrap_or(1e-6)),
        );
        let head_dim = u("head_dim", 256)?;
        w.add_kv("gemma3.attention.key_length", Value::U32(head_dim));
        w.add_kv("gemma3.attention.value_length", Value::U32(head_dim));
        let rope = text::rope_parameters(hp);
        let full = rope
            .get("full_attention")
            .and_then(Json::as_object)
            .unwrap_or(&rope);
        let theta = match full.get("rope_theta") {
            None => 1_000_000.0,
            Some(v) => {
                as_f32(v).ok_or_else(|| cfg(format!("rope_theta must be a number, found {v}")))?
            }
        };
        w.add_kv("gemma3.rope.freq_base", Value::F32(theta));
        if hp.get("attn_logit_softcapping").is_some() {
            // The reference asserts this; Gemma 3 replaced soft-capping with q/k norms.
            return Err(cfg(
                "attn_logit_softcapping is set, but Gemma 3 has none (is this a Gemma 2 config?)",
            ));
        }
        // Written when truthy, as the reference's walrus test does.
        if let Some(cap) = hp.opt_f32(&["final_logit_softcapping"])?
            && cap != 0.0
        {
            w.add_kv("gemma3.final_logit_softcapping", Value::F32(cap));
        }
        // `!= 1` in Python: 1, 1.0 and true all equal 1.
        let pattern_is_one = match hp.get("sliding_window_pattern") {
            Some(Json::Bool(b)) => *b,
            Some(v) => v.as_f64() == Some(1.0),
            None => false,
        };
        if !pattern_is_one {
            w.add_kv(
                "gemma3.attention.sliding_window",
                Value::U32(hp.req_u32(&["sliding_window"])?),
            );
        }
        w.add_kv(
            "gemma3.attention.head_count_kv",
            Value::U32(u("num_key_value_heads", 4)?),
        );
        Ok(())
    }

    fn vocab_kind(&self, model: &HfModel) -> Result<VocabKind> {
        Ok(if model.files.contains_key("tokenizer.model") {
            VocabKind::SentencePiece
        } else {
            VocabKind::Bpe
        })
    }

    fn after_vocab(&self, model: &HfModel, _hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        if model.files.contains_key("tokenizer.model") {
            w.add_kv("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        }
        Ok(())
    }

    fn embedding_rows(&self, model: &HfModel, hp: &Hparams) -> Result<Option<usize>> {
        // `Gemma3Model.modify_tensors`: rows past the tokenizer's vocabulary are dropped.
        if let Some(sp) = spm_vocab::load_model(model)? {
            return Ok(Some(spm_vocab::sentencepiece_vocab_size(hp, &sp)?));
        }
        let tj = parse_json_file(model, "tokenizer.json")?.ok_or_else(|| {
            file_err(
                "tokenizer.json",
                "missing: Gemma 3 needs tokenizer.model or tokenizer.json",
            )
        })?;
        let vocab = tj
            .get("model")
            .and_then(|m| m.get("vocab"))
            .and_then(Json::as_object)
            .map(|v| v.len());
        let added = tj
            .get("added_tokens")
            .and_then(Json::as_array)
            .map(|a| a.len());
        match (vocab, added) {
            // The reference counts an added token that is also in the vocabulary twice.
            (Some(v), Some(a)) => Ok(Some(v + a)),
            _ => Err(file_err(
                "tokenizer.json",
                "Gemma 3 needs model.vocab (an object) and added_tokens (a list) to count the vocabulary",
            )),
        }
    }
}
