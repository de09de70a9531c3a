//! Gemma 2 (`Gemma2ForCausalLM`): Gemma plus post-norms around attention and FFN, attention
//! and final logit soft-capping, and a sliding window on every other layer.
//!
//! Reference: `Gemma2Model` in llama.cpp's `convert_hf_to_gguf.py`; transformers'
//! `Gemma2Config` for the defaults.

use serde_json::{Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::Hparams;
use super::super::tensors::Transform;
use super::gemma::{
    Generation, map_gemma, norm_shift, sentencepiece_only, skip_lm_head, write_gemma_params,
};
use super::{Architecture, ConfigClass, Skip, TokenizerClass, VocabKind, no_post_init};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgufWriter, Value};

/// Gemma 2.
pub struct Gemma2;

fn gemma2_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(256000)),
        ("hidden_size", json!(2304)),
        ("intermediate_size", json!(9216)),
        ("num_hidden_layers", json!(26)),
        ("num_attention_heads", json!(8)),
        ("num_key_value_heads", json!(4)),
        ("head_dim", json!(256)),
        ("max_position_embeddings", json!(8192)),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(10000.0)),
        ("tie_word_embeddings", json!(true)),
        ("query_pre_attn_scalar", json!(256)),
        ("sliding_window", json!(4096)),
        ("final_logit_softcapping", json!(30.0)),
        ("attn_logit_softcapping", json!(50.0)),
        ("pad_token_id", json!(0)),
        ("eos_token_id", json!(1)),
        ("bos_token_id", json!(2)),
    ]
}

impl Architecture for Gemma2 {
    fn gguf_name(&self) -> &'static str {
        "gemma2"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Gemma2ForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "gemma2",
            defaults: gemma2_defaults,
            attribute_map: &[],
            post_init: no_post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn skip(&self, name: &str) -> Skip {
        skip_lm_head(name)
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_gemma(name, block_count, Generation::Two)
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
        write_gemma_params("gemma2", hp, file_type, w)?;
        // The reference reads these with hparams[...]: null or missing is an error there too.
        let f = |key: &str| {
            hp.opt_f32(&[key])?
                .ok_or_else(|| cfg(format!("missing {key} (Gemma 2 needs it)")))
        };
        w.add_kv(
            "gemma2.attn_logit_softcapping",
            Value::F32(f("attn_logit_softcapping")?),
        );
        w.add_kv(
            "gemma2.final_logit_softcapping",
            Value::F32(f("final_logit_softcapping")?),
        );
        w.add_kv(
            "gemma2.attention.sliding_window",
            Value::U32(hp.req_u32(&["sliding_window"])?),
        );
        Ok(())
    }

    fn vocab_kind(&self, model: &HfModel) -> Result<VocabKind> {
        sentencepiece_only(model)
    }

    fn after_vocab(&self, _model: &HfModel, _hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        w.add_kv("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        Ok(())
    }
}
