//! GPT-2 (`GPT2LMHeadModel`): Conv1D weights stored transposed, learned positions, fused QKV.
//!
//! Reference: `GPT2Model` in llama.cpp's `convert_hf_to_gguf.py`. Deltas: the reference fails
//! on `h.N.attn.bias` / `h.N.attn.masked_bias` mask buffers (tinylm drops them with a warning)
//! and requires `n_ctx` (tinylm falls back to `n_positions`).

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, cfg, tensor_err};
use super::super::hparams::{Hparams, as_u32};
use super::super::layout::{self, Layout};
use super::super::tensors::Transform;
use super::text::{block, map_with_suffix};
use super::{Architecture, ConfigClass, Skip, TokenizerClass};
use crate::formats::gguf::{GgufWriter, Value};

/// GPT-2.
pub struct Gpt2;

fn defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(50257)),
        ("n_positions", json!(1024)),
        ("n_embd", json!(768)),
        ("n_layer", json!(12)),
        ("n_head", json!(12)),
        ("n_inner", Json::Null),
        ("layer_norm_epsilon", json!(1e-5)),
        ("bos_token_id", json!(50256)),
        ("eos_token_id", json!(50256)),
    ]
}

fn post_init(_: &mut Map<String, Json>) {}

/// `gpt2.context_length`: the reference requires n_ctx (KeyError otherwise); tinylm also
/// accepts n_positions.
fn n_ctx(hp: &Hparams) -> Result<u32> {
    match hp.get("n_ctx") {
        Some(v) => as_u32(v).ok_or_else(|| cfg(format!("n_ctx must be an integer, found {v}"))),
        None => hp.req_u32(&["n_positions"]),
    }
}

impl Architecture for Gpt2 {
    fn gguf_name(&self) -> &'static str {
        "gpt2"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["GPT2LMHeadModel"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "gpt2",
            defaults,
            // GPT2Config's `attribute_map`: config.json may use the generic names.
            attribute_map: &[
                ("hidden_size", "n_embd"),
                ("max_position_embeddings", "n_positions"),
                ("num_attention_heads", "n_head"),
                ("num_hidden_layers", "n_layer"),
            ],
            post_init,
            tokenizer: TokenizerClass::Gpt2,
        }]
    }

    fn skip(&self, name: &str) -> Skip {
        if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
            Skip::Drop {
                what: "GPT-2 attention mask buffer(s)",
            }
        } else {
            Skip::Keep
        }
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| {
            let base = base.strip_prefix("transformer.").unwrap_or(base);
            match base {
                "wte" => return Some("token_embd".into()),
                "wpe" => return Some("position_embd".into()),
                "ln_f" => return Some("output_norm".into()),
                "lm_head" => return Some("output".into()),
                _ => {}
            }
            let (n, tail) = block(base.strip_prefix("h.")?, block_count)?;
            let t = match tail {
                "ln_1" => "attn_norm",
                "attn.c_attn" => "attn_qkv",
                "attn.c_proj" => "attn_output",
                "ln_2" => "ffn_norm",
                "mlp.c_fc" => "ffn_up",
                "mlp.c_proj" => "ffn_down",
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
        _hp: &Hparams,
    ) -> Result<Transform> {
        // Conv1D stores [in, out]; GGUF wants nn.Linear's [out, in].
        if name.ends_with(".c_attn.weight")
            || name.ends_with(".c_proj.weight")
            || name.ends_with(".c_fc.weight")
        {
            if shape.len() != 2 {
                return Err(tensor_err(
                    hf_name,
                    format!("Conv1D weight must be 2-D, shape is {shape:?}"),
                ));
            }
            shape.swap(0, 1);
            return Ok(Transform::Transpose);
        }
        Ok(Transform::None)
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        layout::gpt2(hp, n_vocab, n_ctx(hp)? as usize).map(Some)
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        let k = |s: &str| format!("gpt2.{s}");
        let block_count =
            hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;
        w.add_kv(k("block_count"), Value::U32(block_count));
        w.add_kv(k("context_length"), Value::U32(n_ctx(hp)?));
        let n_embd = hp.req_u32(&["n_embd"])?;
        w.add_kv(k("embedding_length"), Value::U32(n_embd));
        let ff = n_embd
            .checked_mul(4)
            .ok_or_else(|| cfg("n_embd is too large"))?;
        w.add_kv(k("feed_forward_length"), Value::U32(ff));
        w.add_kv(
            k("attention.head_count"),
            Value::U32(hp.req_u32(&["n_head"])?),
        );
        let eps = hp
            .opt_f32(&["layer_norm_epsilon"])?
            .ok_or_else(|| cfg("missing layer_norm_epsilon"))?;
        w.add_kv(k("attention.layer_norm_epsilon"), Value::F32(eps));
        w.add_kv("general.file_type", Value::U32(file_type));
        Ok(())
    }
}
