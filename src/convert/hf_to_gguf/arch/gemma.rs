//! Gemma (`GemmaForCausalLM`): a SentencePiece vocabulary without a space prefix, RMS norm
//! weights stored as `w` and used as `1 + w` (the converter adds the 1), `lm_head` never
//! written (the embedding is always tied), and the CodeGemma infill/EOT ids.
//!
//! Reference: `GemmaModel` in llama.cpp's `convert_hf_to_gguf.py`; transformers'
//! `GemmaConfig` for the defaults. The helpers here are shared with [`super::gemma2`] and
//! [`super::gemma3`].

use serde_json::{Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::Hparams;
use super::super::tensors::Transform;
use super::text::{block, map_with_suffix};
use super::{Architecture, ConfigClass, Skip, TokenizerClass, VocabKind, no_post_init};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgufWriter, Value};

/// Gemma 1.
pub struct Gemma;

fn gemma_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(256000)),
        ("hidden_size", json!(3072)),
        ("intermediate_size", json!(24576)),
        ("num_hidden_layers", json!(28)),
        ("num_attention_heads", json!(16)),
        ("num_key_value_heads", json!(16)),
        ("head_dim", json!(256)),
        ("max_position_embeddings", json!(8192)),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(10000.0)),
        ("tie_word_embeddings", json!(true)),
        ("pad_token_id", json!(0)),
        ("eos_token_id", json!(1)),
        ("bos_token_id", json!(2)),
    ]
}

/// Which of the Gemma generations names the block tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Generation {
    /// Gemma 1: pre-norms only (`post_attention_layernorm` is the FFN's pre-norm).
    One,
    /// Gemma 2: pre- and post-norms around attention and FFN.
    Two,
    /// Gemma 3: Gemma 2's norms plus per-head q/k norms.
    Three,
}

/// The GGUF name of a Gemma tensor (`lm_head` only for Gemma 3: the others drop it).
pub(super) fn map_gemma(name: &str, block_count: u32, g: Generation) -> Option<String> {
    map_with_suffix(name, |base| {
        match base {
            "model.embed_tokens" => return Some("token_embd".into()),
            "model.norm" => return Some("output_norm".into()),
            "lm_head" if g == Generation::Three => return Some("output".into()),
            _ => {}
        }
        let (n, tail) = block(base.strip_prefix("model.layers.")?, block_count)?;
        let t = match (tail, g) {
            ("input_layernorm", _) => "attn_norm",
            ("self_attn.q_proj", _) => "attn_q",
            ("self_attn.k_proj", _) => "attn_k",
            ("self_attn.v_proj", _) => "attn_v",
            ("self_attn.o_proj", _) => "attn_output",
            ("mlp.gate_proj", _) => "ffn_gate",
            ("mlp.up_proj", _) => "ffn_up",
            ("mlp.down_proj", _) => "ffn_down",
            ("post_attention_layernorm", Generation::One) => "ffn_norm",
            ("post_attention_layernorm", _) => "post_attention_norm",
            ("pre_feedforward_layernorm", Generation::Two | Generation::Three) => "ffn_norm",
            ("post_feedforward_layernorm", Generation::Two | Generation::Three) => "post_ffw_norm",
            ("self_attn.q_norm", Generation::Three) => "attn_q_norm",
            ("self_attn.k_norm", Generation::Three) => "attn_k_norm",
            _ => return None,
        };
        Some(format!("blk.{n}.{t}"))
    })
}

/// Gemma's RMS norms compute `x * (1 + w)`; llama.cpp's multiply by the stored weight, so the
/// converter stores `w + 1` (for every tensor whose name ends in `norm.weight`).
pub(super) fn norm_shift(name: &str) -> Transform {
    if name.ends_with("norm.weight") {
        Transform::AddOne
    } else {
        Transform::None
    }
}

/// `GemmaModel.filter_tensors` / `Gemma2Model.filter_tensors`: `lm_head.weight` is skipped
/// (llama.cpp uses the tied embedding; AutoAWQ exports carry an unused copy).
pub(super) fn skip_lm_head(name: &str) -> Skip {
    if name == "lm_head.weight" {
        Skip::Ignore
    } else {
        Skip::Keep
    }
}

/// The `set_gguf_parameters` shared by Gemma 1 and 2 (they do not call `TextModel`'s): only
/// these keys, in this order, then `general.file_type`.
pub(super) fn write_gemma_params(
    a: &str,
    hp: &Hparams,
    file_type: u32,
    w: &mut GgufWriter,
) -> Result<()> {
    let k = |s: &str| format!("{a}.{s}");
    let req_f32 = |key: &str| {
        hp.opt_f32(&[key])?
            .ok_or_else(|| cfg(format!("missing {key}")))
    };
    w.add_kv(
        k("context_length"),
        Value::U32(hp.req_u32(&["max_position_embeddings"])?),
    );
    w.add_kv(
        k("embedding_length"),
        Value::U32(hp.req_u32(&["hidden_size"])?),
    );
    w.add_kv(
        k("block_count"),
        Value::U32(hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?),
    );
    w.add_kv(
        k("feed_forward_length"),
        Value::U32(hp.req_u32(&["intermediate_size"])?),
    );
    let heads = hp.req_u32(&["num_attention_heads"])?;
    w.add_kv(k("attention.head_count"), Value::U32(heads));
    let kv_heads = match hp.get("num_key_value_heads") {
        Some(_) => hp.req_u32(&["num_key_value_heads"])?,
        None => heads,
    };
    w.add_kv(k("attention.head_count_kv"), Value::U32(kv_heads));
    w.add_kv(
        k("attention.layer_norm_rms_epsilon"),
        Value::F32(req_f32("rms_norm_eps")?),
    );
    let head_dim = hp.req_u32(&["head_dim"])?;
    w.add_kv(k("attention.key_length"), Value::U32(head_dim));
    w.add_kv(k("attention.value_length"), Value::U32(head_dim));
    w.add_kv("general.file_type", Value::U32(file_type));
    Ok(())
}

/// Gemma and Gemma 2 read `tokenizer.model` only (`_set_vocab_sentencepiece`).
pub(super) fn sentencepiece_only(_model: &HfModel) -> Result<VocabKind> {
    Ok(VocabKind::SentencePiece)
}

impl Architecture for Gemma {
    fn gguf_name(&self) -> &'static str {
        "gemma"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["GemmaForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "gemma",
            defaults: gemma_defaults,
            attribute_map: &[],
            post_init: no_post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn skip(&self, name: &str) -> Skip {
        skip_lm_head(name)
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_gemma(name, block_count, Generation::One)
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
        write_gemma_params("gemma", hp, file_type, w)
    }

    fn vocab_kind(&self, model: &HfModel) -> Result<VocabKind> {
        sentencepiece_only(model)
    }

    fn after_vocab(&self, _model: &HfModel, _hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        // GemmaModel.set_vocab's second SpecialVocab sets CodeGemma's prefix (67), suffix (69),
        // middle (68), fsep (70) and eot (107); gguf-py has a writer only for eot, and the
        // add_* flags it writes again are the ones already written (same files, same values).
        w.add_kv("tokenizer.ggml.eot_token_id", Value::U32(107));
        w.add_kv("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        Ok(())
    }
}
