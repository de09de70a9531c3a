//! tiny-lm Llama 3 (`tiny_lm/model/architectures/llama3`) → transformers'
//! `LlamaForCausalLM`: q/k rows reordered per head from tiny-lm's adjacent-pair RoPE layout to
//! HF's half-split layout, GQA, SwiGLU, RMSNorm, optional biases.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::super::TinyLmArch;
use super::super::config::ModelYaml;
use super::super::weights::{Builder, ModelFacts, Source, check_flag};
use super::{KeyLayout, TinyLmArchitecture};
use crate::formats::tensor::TensorBytes;

/// tiny-lm Llama 3.
pub struct Llama3;

impl TinyLmArchitecture for Llama3 {
    fn arch(&self) -> TinyLmArch {
        TinyLmArch::Llama3
    }

    fn signature_hint(&self) -> &'static str {
        "attn_norm/ffn.w1"
    }

    fn recognizes(&self, keys: &BTreeSet<&str>) -> bool {
        keys.contains("blocks.0.attn_norm.gamma") || keys.contains("blocks.0.ffn.w1.weight")
    }

    fn keys(&self) -> KeyLayout {
        KeyLayout {
            top: &[],
            per_block: &[
                "attn.W_q.weight",
                "attn.W_k.weight",
                "attn.W_v.weight",
                "attn.out_proj.weight",
                "ffn.w1.weight",
                "ffn.w2.weight",
                "ffn.w3.weight",
                "attn_norm.gamma",
                "ffn_norm.gamma",
            ],
            optional: &[
                "attn.W_q.bias",
                "attn.W_k.bias",
                "attn.W_v.bias",
                "attn.out_proj.bias",
                "ffn.w1.bias",
                "ffn.w2.bias",
                "ffn.w3.bias",
            ],
            tail: &["norm_f.gamma"],
        }
    }

    fn kv_heads(&self, m: &ModelYaml) -> usize {
        m.n_kv_heads.unwrap_or(m.n_heads)
    }

    fn check_config(&self, _m: &ModelYaml, head_dim: usize) -> Result<(), String> {
        if !head_dim.is_multiple_of(2) {
            return Err(format!("head dimension {head_dim} must be even for RoPE"));
        }
        Ok(())
    }

    fn map(
        &self,
        m: &ModelYaml,
        src: &Source<'_>,
        b: &mut Builder,
        facts: &mut ModelFacts,
    ) -> Result<(), String> {
        let (d, v) = (m.d_model, m.vocab_size);
        let (h, kv, hd) = (facts.n_heads, facts.n_kv_heads, facts.head_dim);
        let f = src
            .tensors
            .get("blocks.0.ffn.w1.weight")
            .and_then(|t| t.shape.first().copied())
            .ok_or("missing tensor blocks.0.ffn.w1.weight")?;
        facts.ffn = f;
        let qkv_bias = src.has("blocks.0.attn.W_q.bias");
        let o_bias = src.has("blocks.0.attn.out_proj.bias");
        let mlp_bias = src.has("blocks.0.ffn.w1.bias");
        check_flag(m.qkv_bias, "qkv_bias", qkv_bias, "attn.W_q.bias")?;
        check_flag(m.ffn_bias, "ffn_bias", mlp_bias, "ffn.w1.bias")?;
        // HF's `attention_bias` switches q, k, v and o biases on together.
        facts.attention_bias = qkv_bias || o_bias;
        facts.mlp_bias = mlp_bias;

        b.copy(
            "model.embed_tokens.weight",
            src.get("token_emb.weight", &[v, d])?,
        );
        for i in 0..m.n_layers {
            let k = |s: &str| format!("blocks.{i}.{s}");
            let o = |s: &str| format!("model.layers.{i}.{s}");
            for (n, hf, heads) in [
                ("W_q", "q_proj", Some(h)),
                ("W_k", "k_proj", Some(kv)),
                ("W_v", "v_proj", None),
            ] {
                let rows = heads.unwrap_or(kv) * hd;
                let w = b.bytes(src.get(&k(&format!("attn.{n}.weight")), &[rows, d])?);
                let bias = if qkv_bias {
                    Some(b.bytes(src.get(&k(&format!("attn.{n}.bias")), &[rows])?))
                } else if facts.attention_bias {
                    Some(TensorBytes::Owned(Arc::from(b.zeros(rows))))
                } else {
                    None
                };
                match heads {
                    Some(heads) => {
                        let pw = b.half_split_rows(w.as_bytes(), heads, hd, d);
                        b.push_owned(&o(&format!("self_attn.{hf}.weight")), vec![rows, d], pw);
                        if let Some(bias) = bias {
                            let pb = b.half_split_rows(bias.as_bytes(), heads, hd, 1);
                            b.push_owned(&o(&format!("self_attn.{hf}.bias")), vec![rows], pb);
                        }
                    }
                    None => {
                        b.push(&o(&format!("self_attn.{hf}.weight")), vec![rows, d], w);
                        if let Some(bias) = bias {
                            b.push(&o(&format!("self_attn.{hf}.bias")), vec![rows], bias);
                        }
                    }
                }
            }
            b.copy(
                &o("self_attn.o_proj.weight"),
                src.get(&k("attn.out_proj.weight"), &[d, h * hd])?,
            );
            if o_bias {
                b.copy(
                    &o("self_attn.o_proj.bias"),
                    src.get(&k("attn.out_proj.bias"), &[d])?,
                );
            } else if facts.attention_bias {
                let z = b.zeros(d);
                b.push_owned(&o("self_attn.o_proj.bias"), vec![d], z);
            }
            for (n, hf, shape) in [
                ("w1", "gate_proj", [f, d]),
                ("w3", "up_proj", [f, d]),
                ("w2", "down_proj", [d, f]),
            ] {
                b.copy(
                    &o(&format!("mlp.{hf}.weight")),
                    src.get(&k(&format!("ffn.{n}.weight")), &shape)?,
                );
                if mlp_bias {
                    b.copy(
                        &o(&format!("mlp.{hf}.bias")),
                        src.get(&k(&format!("ffn.{n}.bias")), &shape[..1])?,
                    );
                }
            }
            b.copy(
                &o("input_layernorm.weight"),
                src.get(&k("attn_norm.gamma"), &[d])?,
            );
            b.copy(
                &o("post_attention_layernorm.weight"),
                src.get(&k("ffn_norm.gamma"), &[d])?,
            );
        }
        b.copy("model.norm.weight", src.get("norm_f.gamma", &[d])?);
        Ok(())
    }

    fn config_json(&self, m: &ModelYaml, f: &ModelFacts, c: &mut Map<String, Value>) {
        c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
        c.insert("model_type".into(), json!("llama"));
        c.insert("attention_bias".into(), json!(f.attention_bias));
        c.insert("attention_dropout".into(), json!(0.0));
        c.insert("head_dim".into(), json!(f.head_dim));
        c.insert("hidden_act".into(), json!("silu"));
        c.insert("hidden_size".into(), json!(f.d_model));
        c.insert("intermediate_size".into(), json!(f.ffn));
        c.insert("max_position_embeddings".into(), json!(f.ctx));
        c.insert("mlp_bias".into(), json!(f.mlp_bias));
        c.insert("num_attention_heads".into(), json!(f.n_heads));
        c.insert("num_hidden_layers".into(), json!(f.n_layers));
        c.insert("num_key_value_heads".into(), json!(f.n_kv_heads));
        c.insert("pretraining_tp".into(), json!(1));
        c.insert("rms_norm_eps".into(), json!(m.norm_eps.unwrap_or(1e-6)));
        c.insert("rope_scaling".into(), Value::Null);
        c.insert("rope_theta".into(), json!(m.rope_theta.unwrap_or(10000.0)));
        c.insert("tie_word_embeddings".into(), json!(f.tied));
    }
}
