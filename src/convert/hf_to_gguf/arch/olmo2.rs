//! OLMo 2 (`Olmo2ForCausalLM`): norms after attention and after the FFN instead of before
//! them, q/k RMS norms over the whole projection width, no Q/K permutation.
//!
//! Reference: `Olmo2Model` in llama.cpp's `convert_hf_to_gguf.py` (`conversion/olmo.py`: the
//! `TextModel` hyperparameters plus the sliding window keys when `config.json` has one), and
//! transformers' `Olmo2Config` for the defaults.

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::{self, Hparams, as_u32};
use super::super::layout::{self, Layout, QueryWidth, positive};
use super::text::{self, block, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass};
use crate::formats::gguf::{Array, GgufWriter, Value};

/// OLMo 2.
pub struct Olmo2;

fn defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(50304)),
        ("max_position_embeddings", json!(2048)),
        ("hidden_size", json!(4096)),
        ("intermediate_size", json!(11008)),
        ("num_hidden_layers", json!(32)),
        ("num_attention_heads", json!(32)),
        ("num_key_value_heads", Json::Null),
        ("rope_theta", json!(10000.0)),
        ("rope_scaling", Json::Null),
        ("rms_norm_eps", json!(1e-5)),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", Json::Null),
        ("eos_token_id", json!(50279)),
    ]
}

fn post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
    hparams::rope_type_from_type(map);
}

impl Architecture for Olmo2 {
    fn gguf_name(&self) -> &'static str {
        "olmo2"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Olmo2ForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "olmo2",
            defaults,
            attribute_map: &[],
            post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| {
            if let Some(rest) = base.strip_prefix("model.layers.") {
                let (n, tail) = block(rest, block_count)?;
                let t = match tail {
                    "post_attention_layernorm" => "post_attention_norm",
                    "post_feedforward_layernorm" => "post_ffw_norm",
                    "self_attn.q_norm" => "attn_q_norm",
                    "self_attn.k_norm" => "attn_k_norm",
                    // OLMo 2 has no pre-norms: `input_layernorm` is not one of its tensors.
                    "input_layernorm" => return None,
                    _ => return text::map_decoder(base, block_count, false),
                };
                return Some(format!("blk.{n}.{t}"));
            }
            text::map_decoder(base, block_count, false)
        })
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        let mut l = layout::decoder(hp, n_vocab, QueryWidth::Embedding, false)?;
        let n_embd = positive(hp, &["hidden_size"])?;
        let n_head = positive(hp, &["num_attention_heads"])?;
        let n_kv = match hp.get("num_key_value_heads") {
            None => n_head,
            Some(_) => positive(hp, &["num_key_value_heads"])?,
        };
        let kv_dim = n_embd / n_head * n_kv;
        // Pre-norms become post-norms; the q/k norms span the projections.
        l.tensors.retain(|e| !e.name.ends_with(".attn_norm.weight"));
        let mut extra = Vec::new();
        for e in &mut l.tensors {
            if let Some(blk) = e.name.strip_suffix(".ffn_norm.weight") {
                let blk = blk.to_string();
                let hf_blk = e
                    .hf_name
                    .trim_end_matches(".post_attention_layernorm.weight");
                e.name = format!("{blk}.post_attention_norm.weight");
                extra.push((
                    format!("{blk}.post_ffw_norm.weight"),
                    format!("{hf_blk}.post_feedforward_layernorm.weight"),
                    n_embd,
                ));
                extra.push((
                    format!("{blk}.attn_q_norm.weight"),
                    format!("{hf_blk}.self_attn.q_norm.weight"),
                    n_embd,
                ));
                extra.push((
                    format!("{blk}.attn_k_norm.weight"),
                    format!("{hf_blk}.self_attn.k_norm.weight"),
                    kv_dim,
                ));
            }
        }
        for (name, hf, n) in extra {
            l.add(name, hf, vec![n], true);
        }
        Ok(Some(l))
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("olmo2", hp, file_type, w)?;
        // Olmo2Config has no sliding window; a config.json that adds one (OLMo 3 style) gets
        // the reference's keys: every 4th layer full attention unless `layer_types` says.
        if hp.contains("sliding_window") {
            let sw = hp.get("sliding_window").and_then(as_u32).ok_or_else(|| {
                cfg(format!(
                    "sliding_window must be a non-negative integer, found {}",
                    hp.get("sliding_window").unwrap_or(&Json::Null)
                ))
            })?;
            w.add_kv("olmo2.attention.sliding_window", Value::U32(sw));
            let pattern: Vec<bool> = match hp.get("layer_types").and_then(Json::as_array) {
                Some(types) => types
                    .iter()
                    .map(|t| t.as_str() == Some("sliding_attention"))
                    .collect(),
                None => {
                    let n = hp.req_u32(&["num_hidden_layers"])?;
                    (0..n).map(|i| (i + 1) % 4 != 0).collect()
                }
            };
            if !pattern.is_empty() {
                w.add_kv(
                    "olmo2.attention.sliding_window_pattern",
                    Value::Array(Array::Bool(pattern)),
                );
            }
        }
        Ok(())
    }
}
