//! What llama.cpp's `TextModel` base class does for every decoder-only architecture: the
//! generic `<arch>.*` hyperparameters, the rope parameters, and the `model.layers.N.*` tensor
//! names Llama-like models share.

use serde_json::{Map, Value as Json};

use super::super::error::{Result, cfg};
use super::super::hparams::{Hparams, as_f32, as_u32};
use crate::formats::gguf::{GgufWriter, Value};

/// Splits `name` into its base and `.weight`/`.bias` suffix, maps the base with `map`, and
/// puts the suffix back.
pub fn map_with_suffix(name: &str, map: impl FnOnce(&str) -> Option<String>) -> Option<String> {
    let (base, suffix) = if let Some(b) = name.strip_suffix(".weight") {
        (b, ".weight")
    } else if let Some(b) = name.strip_suffix(".bias") {
        (b, ".bias")
    } else {
        (name, "")
    };
    Some(format!("{}{suffix}", map(base)?))
}

/// `TextModel.set_gguf_parameters`: the hyperparameters every text model writes, then
/// `general.file_type`.
pub fn write_params(a: &str, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
    let k = |s: &str| format!("{a}.{s}");
    let block_count = hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;
    w.add_kv(k("block_count"), Value::U32(block_count));
    let u32_keys: [(&str, &[&str]); 5] = [
        (
            "context_length",
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
        ),
        ("embedding_length", &["hidden_size", "n_embd", "dim"]),
        (
            "feed_forward_length",
            &[
                "prefix_dense_intermediate_size",
                "dense_intermediate_size",
                "intermediate_size",
                "n_inner",
                "hidden_dim",
            ],
        ),
        (
            "attention.head_count",
            &["num_attention_heads", "n_head", "n_heads"],
        ),
        (
            "attention.head_count_kv",
            &["num_key_value_heads", "n_kv_heads"],
        ),
    ];
    for (key, names) in u32_keys {
        if let Some(v) = hp.opt_u32(names)? {
            w.add_kv(k(key), Value::U32(v));
        }
    }
    if hp.get("is_causal") == Some(&Json::Bool(false)) {
        w.add_kv(k("attention.causal"), Value::Bool(false));
    }
    let rope = rope_parameters(hp);
    let full = rope
        .get("full_attention")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_else(|| rope.clone());
    if let Some(rt) = full.get("rope_type").filter(|v| !v.is_null()) {
        let rt = rt.as_str().unwrap_or("");
        let factor = full.get("factor").filter(|v| !v.is_null());
        let f32_of = |v: &Json, what: &str| {
            as_f32(v).ok_or_else(|| cfg(format!("rope {what} must be a number, found {v}")))
        };
        match rt {
            "linear" if factor.is_some() => {
                w.add_kv(k("rope.scaling.type"), Value::str("linear"));
                w.add_kv(
                    k("rope.scaling.factor"),
                    Value::F32(f32_of(factor.unwrap_or(&Json::Null), "factor")?),
                );
            }
            "yarn" if factor.is_some() => {
                w.add_kv(k("rope.scaling.type"), Value::str("yarn"));
                w.add_kv(
                    k("rope.scaling.factor"),
                    Value::F32(f32_of(factor.unwrap_or(&Json::Null), "factor")?),
                );
                let orig = full
                    .get("original_max_position_embeddings")
                    .and_then(as_u32)
                    .ok_or_else(|| {
                        cfg("yarn rope scaling needs original_max_position_embeddings")
                    })?;
                w.add_kv(k("rope.scaling.original_context_length"), Value::U32(orig));
                let opt = |name: &str| full.get(name).filter(|v| !v.is_null());
                if let Some(v) = opt("extrapolation_factor") {
                    w.add_kv(
                        k("rope.scaling.yarn_ext_factor"),
                        Value::F32(f32_of(v, "extrapolation_factor")?),
                    );
                }
                if let Some(v) = opt("attention_factor").or_else(|| opt("attn_factor")) {
                    w.add_kv(
                        k("rope.scaling.yarn_attn_factor"),
                        Value::F32(f32_of(v, "attention_factor")?),
                    );
                }
                if let Some(v) = opt("beta_fast") {
                    w.add_kv(
                        k("rope.scaling.yarn_beta_fast"),
                        Value::F32(f32_of(v, "beta_fast")?),
                    );
                }
                if let Some(v) = opt("beta_slow") {
                    w.add_kv(
                        k("rope.scaling.yarn_beta_slow"),
                        Value::F32(f32_of(v, "beta_slow")?),
                    );
                }
            }
            "su" | "longrope" => {
                w.add_kv(k("rope.scaling.type"), Value::str("longrope"));
            }
            _ => {
                if rt != "dynamic" && !rt.eq_ignore_ascii_case("llama3") && rt != "default" {
                    tracing::warn!("unknown RoPE type: {rt}");
                }
            }
        }
    }
    if let Some(theta) = full.get("rope_theta").filter(|v| !v.is_null()) {
        let t = as_f32(theta)
            .ok_or_else(|| cfg(format!("rope_theta must be a number, found {theta}")))?;
        w.add_kv(k("rope.freq_base"), Value::F32(t));
    }
    if let Some(swa) = rope
        .get("sliding_attention")
        .and_then(|s| s.get("rope_theta"))
        .filter(|v| !v.is_null())
    {
        let t = as_f32(swa).ok_or_else(|| cfg("sliding rope_theta must be a number"))?;
        w.add_kv(k("rope.freq_base_swa"), Value::F32(t));
    }
    if let Some(e) = hp.opt_f32(&["rms_norm_eps", "norm_eps"])? {
        w.add_kv(k("attention.layer_norm_rms_epsilon"), Value::F32(e));
    }
    if let Some(e) = hp.opt_f32(&["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])? {
        w.add_kv(k("attention.layer_norm_epsilon"), Value::F32(e));
    }
    if hp
        .find(&["num_local_experts", "num_experts", "n_routed_experts"])
        .is_some()
    {
        return Err(cfg(
            "mixture-of-experts models are not supported by tinylm's converter",
        ));
    }
    if let Some(hd) = hp.get("head_dim") {
        let hd =
            as_u32(hd).ok_or_else(|| cfg(format!("head_dim must be an integer, found {hd}")))?;
        w.add_kv(k("attention.key_length"), Value::U32(hd));
        w.add_kv(k("attention.value_length"), Value::U32(hd));
    }
    w.add_kv("general.file_type", Value::U32(file_type));
    Ok(())
}

/// `self.rope_parameters` after TextModel.__init__'s mirroring of the global rope settings.
pub fn rope_parameters(hp: &Hparams) -> Map<String, Json> {
    let mut rp = hp
        .get("rope_parameters")
        .or_else(|| hp.get("rope_scaling"))
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    if !rp.contains_key("full_attention") && !rp.contains_key("sliding_attention") {
        if let Some(local) = hp.find(&[
            "local_rope_theta",
            "rope_local_theta",
            "rope_theta_local",
            "swa_rope_theta",
            "rope_local_base_freq",
        ]) {
            rp.insert(
                "sliding_attention".into(),
                serde_json::json!({ "rope_theta": local }),
            );
        }
        if !rp.contains_key("rope_theta")
            && let Some(t) = hp.find(&[
                "global_rope_theta",
                "rope_global_theta",
                "rope_theta_global",
                "rope_theta",
                "rotary_emb_base",
            ])
        {
            rp.insert("rope_theta".into(), t.clone());
        }
        if !rp.contains_key("rope_type")
            && let Some(t) = rp.get("type").filter(|v| !v.is_null()).cloned()
        {
            rp.insert("rope_type".into(), t);
        }
        if !rp.contains_key("partial_rotary_factor")
            && let Some(p) = hp.find(&["partial_rotary_factor", "rope_pct", "rope_percent"])
        {
            rp.insert("partial_rotary_factor".into(), p.clone());
        }
        if !rp.contains_key("original_max_position_embeddings")
            && let Some(o) = hp.find(&["original_max_position_embeddings"])
        {
            rp.insert("original_max_position_embeddings".into(), o.clone());
        }
    }
    rp
}

/// `N.rest` with N a canonical decimal block index below `block_count`.
pub fn block(s: &str, block_count: u32) -> Option<(u32, &str)> {
    let (digits, tail) = s.split_once('.')?;
    let n: u32 = digits.parse().ok()?;
    (n < block_count && n.to_string() == digits).then_some((n, tail))
}

/// The `model.layers.N.*` names of Llama-like decoders; `qk_norm` adds Qwen3's q/k norms.
pub fn map_decoder(base: &str, block_count: u32, qk_norm: bool) -> Option<String> {
    match base {
        "model.embed_tokens" => return Some("token_embd".into()),
        "model.norm" => return Some("output_norm".into()),
        "lm_head" => return Some("output".into()),
        _ => {}
    }
    let (n, tail) = block(base.strip_prefix("model.layers.")?, block_count)?;
    let t = match tail {
        "input_layernorm" => "attn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "post_attention_layernorm" => "ffn_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "self_attn.q_norm" if qk_norm => "attn_q_norm",
        "self_attn.k_norm" if qk_norm => "attn_k_norm",
        _ => return None,
    };
    Some(format!("blk.{n}.{t}"))
}
