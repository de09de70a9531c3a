//! tiny-lm GPT-2 (`tiny_lm/model/architectures/gpt2`) → transformers' `GPT2LMHeadModel`:
//! separate Q/K/V become the fused Conv1D `c_attn` (Conv1D stores `[in, out]`), every linear
//! gets a bias (zeros where tiny-lm has none), learned positions, LayerNorm with beta.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::super::TinyLmArch;
use super::super::config::ModelYaml;
use super::super::weights::{Builder, ModelFacts, Source, check_flag};
use super::{KeyLayout, TinyLmArchitecture};

/// tiny-lm GPT-2.
pub struct Gpt2;

impl TinyLmArchitecture for Gpt2 {
    fn arch(&self) -> TinyLmArch {
        TinyLmArch::Gpt2
    }

    fn signature_hint(&self) -> &'static str {
        "pos_emb/norm1"
    }

    fn recognizes(&self, keys: &BTreeSet<&str>) -> bool {
        keys.contains("pos_emb.pos_emb.weight") || keys.contains("blocks.0.norm1.gamma")
    }

    fn keys(&self) -> KeyLayout {
        KeyLayout {
            top: &["pos_emb.pos_emb.weight"],
            per_block: &[
                "attn.W_q.weight",
                "attn.W_k.weight",
                "attn.W_v.weight",
                "attn.out_proj.weight",
                "ffn.fc1.weight",
                "ffn.fc2.weight",
                "norm1.gamma",
                "norm1.beta",
                "norm2.gamma",
                "norm2.beta",
            ],
            optional: &[
                "attn.W_q.bias",
                "attn.W_k.bias",
                "attn.W_v.bias",
                "attn.out_proj.bias",
                "ffn.fc1.bias",
                "ffn.fc2.bias",
            ],
            tail: &["ln_f.gamma", "ln_f.beta"],
        }
    }

    fn kv_heads(&self, m: &ModelYaml) -> usize {
        m.n_heads
    }

    fn map(
        &self,
        m: &ModelYaml,
        src: &Source<'_>,
        b: &mut Builder,
        facts: &mut ModelFacts,
    ) -> Result<(), String> {
        let (d, v) = (m.d_model, m.vocab_size);
        let f = src
            .tensors
            .get("blocks.0.ffn.fc1.weight")
            .and_then(|t| t.shape.first().copied())
            .ok_or("missing tensor blocks.0.ffn.fc1.weight")?;
        if let Some(dff) = m.d_ff
            && dff != f
        {
            return Err(format!(
                "the model config says d_ff: {dff}, but ffn.fc1 has {f} rows"
            ));
        }
        facts.ffn = f;
        let qkv_bias = src.has("blocks.0.attn.W_q.bias");
        check_flag(m.qkv_bias, "qkv_bias", qkv_bias, "attn.W_q.bias")?;

        b.copy(
            "transformer.wte.weight",
            src.get("token_emb.weight", &[v, d])?,
        );
        b.copy(
            "transformer.wpe.weight",
            src.get("pos_emb.pos_emb.weight", &[m.context_length, d])?,
        );
        for i in 0..m.n_layers {
            let k = |s: &str| format!("blocks.{i}.{s}");
            let h = |s: &str| format!("transformer.h.{i}.{s}");
            // Conv1D stores [in, out]: c_attn = [W_q; W_k; W_v]ᵀ.
            let mut qkv = Vec::new();
            for n in ["W_q", "W_k", "W_v"] {
                qkv.extend_from_slice(
                    b.bytes(src.get(&k(&format!("attn.{n}.weight")), &[d, d])?)
                        .as_bytes(),
                );
            }
            let w = b.transpose(&qkv, 3 * d, d);
            b.push_owned(&h("attn.c_attn.weight"), vec![d, 3 * d], w);
            let mut bias = Vec::new();
            for n in ["W_q", "W_k", "W_v"] {
                match qkv_bias {
                    true => bias.extend_from_slice(
                        b.bytes(src.get(&k(&format!("attn.{n}.bias")), &[d])?)
                            .as_bytes(),
                    ),
                    false => bias.extend(b.zeros(d)),
                }
            }
            b.push_owned(&h("attn.c_attn.bias"), vec![3 * d], bias);
            linear_conv1d(b, src, &k("attn.out_proj"), &h("attn.c_proj"), d, d)?;
            b.copy(&h("ln_1.weight"), src.get(&k("norm1.gamma"), &[d])?);
            b.copy(&h("ln_1.bias"), src.get(&k("norm1.beta"), &[d])?);
            b.copy(&h("ln_2.weight"), src.get(&k("norm2.gamma"), &[d])?);
            b.copy(&h("ln_2.bias"), src.get(&k("norm2.beta"), &[d])?);
            linear_conv1d(b, src, &k("ffn.fc1"), &h("mlp.c_fc"), f, d)?;
            linear_conv1d(b, src, &k("ffn.fc2"), &h("mlp.c_proj"), d, f)?;
        }
        b.copy("transformer.ln_f.weight", src.get("ln_f.gamma", &[d])?);
        b.copy("transformer.ln_f.bias", src.get("ln_f.beta", &[d])?);
        Ok(())
    }

    fn config_json(&self, m: &ModelYaml, f: &ModelFacts, c: &mut Map<String, Value>) {
        let dropout = |specific: Option<f64>| json!(specific.or(m.dropout).unwrap_or(0.1));
        c.insert("architectures".into(), json!(["GPT2LMHeadModel"]));
        c.insert("model_type".into(), json!("gpt2"));
        c.insert("activation_function".into(), json!("gelu_new"));
        c.insert("attn_pdrop".into(), dropout(m.attn_dropout));
        c.insert("embd_pdrop".into(), dropout(m.emb_dropout));
        c.insert("resid_pdrop".into(), dropout(m.resid_dropout));
        c.insert("layer_norm_epsilon".into(), json!(1e-5));
        c.insert("n_ctx".into(), json!(f.ctx));
        c.insert("n_positions".into(), json!(f.ctx));
        c.insert("n_embd".into(), json!(f.d_model));
        c.insert("n_head".into(), json!(f.n_heads));
        c.insert("n_inner".into(), json!(f.ffn));
        c.insert("n_layer".into(), json!(f.n_layers));
        c.insert("reorder_and_upcast_attn".into(), json!(false));
        c.insert("scale_attn_by_inverse_layer_idx".into(), json!(false));
        c.insert("scale_attn_weights".into(), json!(true));
        c.insert("summary_activation".into(), Value::Null);
        c.insert("summary_first_dropout".into(), json!(0.1));
        c.insert("summary_proj_to_labels".into(), json!(true));
        c.insert("summary_type".into(), json!("cls_index"));
        c.insert("summary_use_proj".into(), json!(true));
        // Only written when it differs from the default (true).
        if !f.tied {
            c.insert("tie_word_embeddings".into(), json!(false));
        }
    }
}

/// An `nn.Linear` `[out, in]` (+ optional bias) as a Conv1D `[in, out]` with a bias (zeros if
/// tiny-lm has none: HF GPT-2 always has biases).
fn linear_conv1d(
    b: &mut Builder,
    src: &Source<'_>,
    from: &str,
    to: &str,
    out: usize,
    inp: usize,
) -> Result<(), String> {
    let w = b.bytes(src.get(&format!("{from}.weight"), &[out, inp])?);
    let t = b.transpose(w.as_bytes(), out, inp);
    b.push_owned(&format!("{to}.weight"), vec![inp, out], t);
    let bias_key = format!("{from}.bias");
    if src.has(&bias_key) {
        b.copy(&format!("{to}.bias"), src.get(&bias_key, &[out])?);
    } else {
        let z = b.zeros(out);
        b.push_owned(&format!("{to}.bias"), vec![out], z);
    }
    Ok(())
}
