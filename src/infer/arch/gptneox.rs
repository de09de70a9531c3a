//! `gptneox` (Pythia): LayerNorm with biases, a fused QKV with biases, partial NeoX-style
//! RoPE, a parallel attention/FFN residual, GELU FFN. HF stores the fused QKV per head; the
//! converter regroups it as q|k|v, so the HF path splits it per head instead.
//!
//! llama.cpp runs the tanh GELU (`LLM_FFN_GELU`) whatever `hidden_act` says; so does tinylm.

use super::{ArchSpec, GgufMeta, HfConfig, HfName};
use crate::infer::config::{BlockVariant, FfnKind, ModelConfig, NormKind, RopeConfig};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "gptneox",
    hf_architectures: &["GPTNeoXForCausalLM"],
    from_gguf,
    from_hf,
    hf_tensor,
};

fn from_gguf(m: &GgufMeta) -> Result<ModelConfig, String> {
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    if n_head == 0 {
        return Err("gptneox.attention.head_count is 0".into());
    }
    let head_dim = n_embd / n_head;
    let parallel = match m.file.get("gptneox.use_parallel_residual") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or("metadata key 'gptneox.use_parallel_residual' should be a bool")?,
    };
    Ok(ModelConfig {
        arch: "gptneox".into(),
        n_vocab: 0,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv: m.opt_usize("attention.head_count_kv")?.unwrap_or(n_head),
        head_dim,
        n_ff: m.usize("feed_forward_length")?,
        n_ctx_train: m.usize("context_length")?,
        norm: NormKind::LayerNorm,
        norm_eps: m.f32("attention.layer_norm_epsilon")?,
        rope: Some(RopeConfig {
            mode: RopeMode::Neox,
            n_rot: m.opt_usize("rope.dimension_count")?.unwrap_or(head_dim),
            freq_base: m.opt_f32("rope.freq_base")?.unwrap_or(10000.0),
            freq_scale: 1.0,
            factors: None,
        }),
        ffn: FfnKind::Gelu,
        qk_norm: false,
        extras: Default::default(),
        variant: BlockVariant {
            parallel_residual: parallel,
            ..Default::default()
        },
    })
}

fn from_hf(c: &HfConfig) -> Result<ModelConfig, String> {
    let n_embd = c.usize(&["hidden_size"])?;
    let n_head = c.usize(&["num_attention_heads"])?;
    if n_head == 0 || n_embd % n_head != 0 {
        return Err(format!(
            "config.json num_attention_heads {n_head} must divide hidden_size {n_embd}"
        ));
    }
    match c.find(&["hidden_act"]).and_then(|v| v.as_str()) {
        None | Some("gelu" | "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") => {}
        Some(other) => {
            return Err(format!(
                "config.json hidden_act '{other}' is not supported (tinylm runs the tanh GELU, \
                 as llama.cpp does)"
            ));
        }
    }
    let head_dim = n_embd / n_head;
    let pct = c
        .find(&["rotary_pct", "partial_rotary_factor"])
        .map_or(Some(0.25), |v| v.as_f64())
        .ok_or("config.json rotary_pct should be a number")?;
    let parallel = c
        .find(&["use_parallel_residual"])
        .map_or(Some(true), |v| v.as_bool())
        .ok_or("config.json use_parallel_residual should be a bool")?;
    Ok(ModelConfig {
        arch: "gptneox".into(),
        n_vocab: c.usize(&["vocab_size"])?,
        n_embd,
        n_layer: c.usize(&["num_hidden_layers"])?,
        n_head,
        n_head_kv: n_head,
        head_dim,
        n_ff: c.usize(&["intermediate_size"])?,
        n_ctx_train: c.opt_usize(&["max_position_embeddings"])?.unwrap_or(2048),
        norm: NormKind::LayerNorm,
        norm_eps: c.opt_f32(&["layer_norm_eps"])?.unwrap_or(1e-5),
        rope: Some(RopeConfig {
            mode: RopeMode::Neox,
            n_rot: (pct * head_dim as f64) as usize,
            freq_base: c
                .opt_f32(&["rotary_emb_base", "rope_theta"])?
                .unwrap_or(10000.0),
            freq_scale: 1.0,
            factors: None,
        }),
        ffn: FfnKind::Gelu,
        qk_norm: false,
        extras: Default::default(),
        variant: BlockVariant {
            parallel_residual: parallel,
            qkv_per_head: true,
            ..Default::default()
        },
    })
}

fn hf_tensor(name: &str) -> Option<HfName> {
    let plain = |g: String| {
        Some(HfName {
            gguf: g,
            transposed: false,
        })
    };
    match name {
        "gpt_neox.embed_in.weight" => return plain("token_embd.weight".into()),
        "embed_out.weight" => return plain("output.weight".into()),
        _ => {}
    }
    if let Some(kind) = name.strip_prefix("gpt_neox.final_layer_norm.") {
        return plain(format!("output_norm.{kind}"));
    }
    let rest = name.strip_prefix("gpt_neox.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = suffix.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "attention.query_key_value" => "attn_qkv",
        "attention.dense" => "attn_output",
        "mlp.dense_h_to_4h" => "ffn_up",
        "mlp.dense_4h_to_h" => "ffn_down",
        _ => return None,
    };
    plain(format!("blk.{layer}.{g}.{kind}"))
}
