//! `phi3` (Phi-3, Phi-3.5, Phi-4-mini): the llama block with a fused QKV and a fused gate/up
//! projection, partial NeoX-style RoPE, and LongRoPE (per-pair divisors chosen by context size,
//! a factor on cos/sin).

use serde_json::Value as Json;

use super::{ArchSpec, GgufMeta, HfConfig, HfName, llama_like_gguf, llama_like_hf};
use crate::infer::config::{LongRope, ModelConfig};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "phi3",
    hf_architectures: &["Phi3ForCausalLM"],
    from_gguf,
    from_hf,
    hf_tensor,
};

fn from_gguf(m: &GgufMeta) -> Result<ModelConfig, String> {
    let mut c = llama_like_gguf(m, RopeMode::Neox, false)?;
    c.variant.fused_gate_up = true;
    if m.file
        .tensors
        .iter()
        .any(|t| t.name == "rope_factors_long.weight")
    {
        c.variant.long_rope = Some(LongRope {
            long: Vec::new(),
            short: Vec::new(),
            n_ctx_orig: m
                .opt_usize("rope.scaling.original_context_length")?
                .unwrap_or(c.n_ctx_train),
            attn_factor: m.opt_f32("rope.scaling.attn_factor")?.unwrap_or(1.0),
        });
    }
    Ok(c)
}

fn factors(rs: &serde_json::Map<String, Json>, key: &str) -> Result<Vec<f32>, String> {
    rs.get(key)
        .and_then(Json::as_array)
        .and_then(|a| a.iter().map(|x| x.as_f64().map(|v| v as f32)).collect())
        .ok_or_else(|| format!("config.json rope_scaling.{key} should be a list of numbers"))
}

fn from_hf(c: &HfConfig) -> Result<ModelConfig, String> {
    // The generic reader knows no LongRoPE: read the rest without rope_scaling.
    let mut json = c.json.clone();
    let rs = json.remove("rope_scaling").filter(|v| !v.is_null());
    let mut cfg = llama_like_hf(&HfConfig { json }, "phi3", false)?;
    let pct = c
        .opt_f32(&["partial_rotary_factor"])?
        .map_or(1.0, f64::from);
    let n_rot = (pct * cfg.n_embd as f64) as usize / cfg.n_head;
    if let Some(r) = &mut cfg.rope {
        r.n_rot = n_rot;
    }
    cfg.variant.fused_gate_up = true;
    if let Some(rs) = rs {
        let rs = rs
            .as_object()
            .ok_or("config.json rope_scaling should be an object")?;
        let ty = rs
            .get("rope_type")
            .or_else(|| rs.get("type"))
            .and_then(Json::as_str)
            .unwrap_or("");
        if !matches!(ty, "longrope" | "su") {
            return Err(format!(
                "config.json rope_scaling type '{ty}' is not supported for phi3 (longrope only)"
            ));
        }
        let orig = c
            .opt_usize(&["original_max_position_embeddings"])?
            .unwrap_or(cfg.n_ctx_train);
        let scale = cfg.n_ctx_train as f64 / orig as f64;
        let attn_factor = if scale > 1.0 {
            (1.0 + scale.ln() / (orig as f64).ln()).sqrt()
        } else {
            1.0
        };
        let long = factors(rs, "long_factor")?;
        let short = factors(rs, "short_factor")?;
        if long.len() != n_rot / 2 || short.len() != n_rot / 2 {
            return Err(format!(
                "config.json rope_scaling factors need {} values each",
                n_rot / 2
            ));
        }
        cfg.variant.long_rope = Some(LongRope {
            long,
            short,
            n_ctx_orig: orig,
            attn_factor: attn_factor as f32,
        });
    }
    Ok(cfg)
}

fn hf_tensor(name: &str) -> Option<HfName> {
    let mapped = |g: String| {
        Some(HfName {
            gguf: g,
            transposed: false,
        })
    };
    if let Some(rest) = name.strip_prefix("model.layers.")
        && let Some((layer, suffix)) = rest.split_once('.')
    {
        match suffix {
            "self_attn.qkv_proj.weight" => return mapped(format!("blk.{layer}.attn_qkv.weight")),
            "mlp.gate_up_proj.weight" => return mapped(format!("blk.{layer}.ffn_up.weight")),
            _ => {}
        }
    }
    super::llama_like_hf_tensor(name)
}
