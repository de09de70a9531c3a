//! GPT-NeoX (`GPTNeoXForCausalLM`: Pythia and friends): LayerNorm with biases, a fused QKV
//! stored per head (`(n_head, 3, head_dim)` rows, regrouped for llama.cpp), partial rotary
//! embeddings (`rotary_pct`), parallel attention/FFN residual.
//!
//! Reference: `GPTNeoXModel` in llama.cpp's `convert_hf_to_gguf.py` (`conversion/gptneox.py`),
//! which writes its own hyperparameters without `general.file_type` or `rope.freq_base`, and
//! transformers' `GPTNeoXConfig` for the defaults.

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, cfg, tensor_err};
use super::super::hparams::{Hparams, as_f32};
use super::super::json::truthy;
use super::super::layout::{BLOCK_COUNT_KEYS, Layout, positive};
use super::super::tensors::Transform;
use super::text::{block, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass};
use crate::formats::gguf::{GgufWriter, Value};

/// GPT-NeoX.
pub struct GptNeox;

fn defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(50432)),
        ("hidden_size", json!(6144)),
        ("num_hidden_layers", json!(44)),
        ("num_attention_heads", json!(64)),
        ("intermediate_size", json!(24576)),
        ("rotary_pct", json!(0.25)),
        ("rotary_emb_base", json!(10000)),
        ("max_position_embeddings", json!(2048)),
        ("layer_norm_eps", json!(1e-5)),
        ("use_parallel_residual", json!(true)),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", json!(0)),
        ("eos_token_id", json!(2)),
    ]
}

fn post_init(_: &mut Map<String, Json>) {}

/// A required number, naming the key when it is missing or not a number.
fn req_f64(hp: &Hparams, key: &str) -> Result<f64> {
    let v = hp.get(key).ok_or_else(|| cfg(format!("missing {key}")))?;
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| cfg(format!("{key} must be a number, found {v}")))
}

/// `(n_head, n_embd)` as the QKV regrouping reads them.
fn heads_and_width(hp: &Hparams) -> Result<(usize, usize)> {
    let n_head = positive(hp, &["n_head", "num_attention_heads"])?;
    let n_embd = positive(hp, &["hidden_size", "n_embed"])?;
    if n_embd % n_head != 0 {
        return Err(cfg(format!(
            "num_attention_heads = {n_head} does not divide hidden_size = {n_embd}: attention \
             heads must have equal size"
        )));
    }
    Ok((n_head, n_embd))
}

impl Architecture for GptNeox {
    fn gguf_name(&self) -> &'static str {
        "gptneox"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["GPTNeoXForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "gpt_neox",
            defaults,
            attribute_map: &[],
            post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| {
            match base {
                "gpt_neox.embed_in" => return Some("token_embd".into()),
                "gpt_neox.final_layer_norm" => return Some("output_norm".into()),
                "embed_out" => return Some("output".into()),
                _ => {}
            }
            let (n, tail) = block(base.strip_prefix("gpt_neox.layers.")?, block_count)?;
            let t = match tail {
                "input_layernorm" => "attn_norm",
                "attention.query_key_value" => "attn_qkv",
                "attention.dense" => "attn_output",
                "post_attention_layernorm" => "ffn_norm",
                "mlp.dense_h_to_4h" => "ffn_up",
                "mlp.dense_4h_to_h" => "ffn_down",
                _ => return None,
            };
            Some(format!("blk.{n}.{t}"))
        })
    }

    fn transform(
        &self,
        name: &str,
        hf_name: &str,
        shape: &mut Vec<usize>,
        hp: &Hparams,
    ) -> Result<Transform> {
        if !(name.ends_with(".attention.query_key_value.weight")
            || name.ends_with(".attention.query_key_value.bias"))
        {
            return Ok(Transform::None);
        }
        let (n_head, n_embd) = heads_and_width(hp)?;
        if shape.first().copied() != Some(3 * n_embd) {
            return Err(tensor_err(
                hf_name,
                format!(
                    "has shape {shape:?}; a fused QKV of hidden_size = {n_embd} needs {} rows",
                    3 * n_embd
                ),
            ));
        }
        Ok(Transform::QkvByPart(n_head))
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        let (n_head, n_embd) = heads_and_width(hp)?;
        let n_ff = positive(hp, &["intermediate_size"])?;
        let n_layer = positive(hp, &BLOCK_COUNT_KEYS)?;
        let mut l = Layout {
            from: format!(
                "hidden_size = {n_embd}, num_attention_heads = {n_head}, intermediate_size = \
                 {n_ff}, num_hidden_layers = {n_layer}"
            ),
            ..Layout::default()
        };
        l.add(
            "token_embd.weight".into(),
            "gpt_neox.embed_in.weight".into(),
            vec![n_vocab, n_embd],
            true,
        );
        for s in ["weight", "bias"] {
            l.add(
                format!("output_norm.{s}"),
                format!("gpt_neox.final_layer_norm.{s}"),
                vec![n_embd],
                true,
            );
        }
        l.add(
            "output.weight".into(),
            "embed_out.weight".into(),
            vec![n_vocab, n_embd],
            true,
        );
        for i in 0..n_layer {
            let parts: [(&str, &str, Vec<usize>, usize); 6] = [
                ("attn_norm", "input_layernorm", vec![n_embd], n_embd),
                (
                    "attn_qkv",
                    "attention.query_key_value",
                    vec![3 * n_embd, n_embd],
                    3 * n_embd,
                ),
                (
                    "attn_output",
                    "attention.dense",
                    vec![n_embd, n_embd],
                    n_embd,
                ),
                ("ffn_norm", "post_attention_layernorm", vec![n_embd], n_embd),
                ("ffn_up", "mlp.dense_h_to_4h", vec![n_ff, n_embd], n_ff),
                ("ffn_down", "mlp.dense_4h_to_h", vec![n_embd, n_ff], n_embd),
            ];
            for (g, hf, wshape, blen) in parts {
                l.add(
                    format!("blk.{i}.{g}.weight"),
                    format!("gpt_neox.layers.{i}.{hf}.weight"),
                    wshape,
                    true,
                );
                l.add(
                    format!("blk.{i}.{g}.bias"),
                    format!("gpt_neox.layers.{i}.{hf}.bias"),
                    vec![blen],
                    true,
                );
            }
        }
        Ok(Some(l))
    }

    fn write_params(&self, hp: &Hparams, _file_type: u32, w: &mut GgufWriter) -> Result<()> {
        let k = |s: &str| format!("gptneox.{s}");
        // The reference indexes these directly (KeyError when absent), in this order.
        w.add_kv(
            k("context_length"),
            Value::U32(hp.req_u32(&["max_position_embeddings"])?),
        );
        let (n_head, n_embd) = heads_and_width(hp)?;
        w.add_kv(
            k("embedding_length"),
            Value::U32(hp.req_u32(&["hidden_size"])?),
        );
        w.add_kv(k("block_count"), Value::U32(hp.req_u32(&BLOCK_COUNT_KEYS)?));
        w.add_kv(
            k("feed_forward_length"),
            Value::U32(hp.req_u32(&["intermediate_size"])?),
        );
        // int(rotary_pct * (hidden_size // num_attention_heads)), in Python's float arithmetic.
        let pct = req_f64(hp, "rotary_pct")?;
        let rot = (pct * (n_embd / n_head) as f64).trunc();
        if !(0.0..=(n_embd / n_head) as f64).contains(&rot) {
            return Err(cfg(format!(
                "rotary_pct = {pct} must be between 0 and 1 (the share of each head that rotates)"
            )));
        }
        w.add_kv(k("rope.dimension_count"), Value::U32(rot as u32));
        w.add_kv(
            k("attention.head_count"),
            Value::U32(hp.req_u32(&["num_attention_heads"])?),
        );
        let parallel = hp.get("use_parallel_residual").is_none_or(truthy);
        w.add_kv(k("use_parallel_residual"), Value::Bool(parallel));
        let eps = hp
            .get("layer_norm_eps")
            .ok_or_else(|| cfg("missing layer_norm_eps"))?;
        let eps = as_f32(eps)
            .ok_or_else(|| cfg(format!("layer_norm_eps must be a number, found {eps}")))?;
        w.add_kv(k("attention.layer_norm_epsilon"), Value::F32(eps));
        // No general.file_type: GPTNeoXModel.set_gguf_parameters does not call the base class.
        Ok(())
    }
}
