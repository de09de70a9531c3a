//! `gpt2`: LayerNorm with bias, learned absolute positions, fused QKV, GELU (tanh) FFN, every
//! linear with a bias. HF stores the linears as Conv1D (`[in, out]`).

use super::{ArchSpec, GgufMeta, HfConfig, HfName};
use crate::infer::config::{FfnKind, ModelConfig, NormKind};

pub static SPEC: ArchSpec = ArchSpec {
    name: "gpt2",
    hf_architectures: &["GPT2LMHeadModel", "GPT2Model"],
    from_gguf,
    from_hf,
    hf_tensor,
};

fn from_gguf(m: &GgufMeta) -> Result<ModelConfig, String> {
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    if n_head == 0 {
        return Err("gpt2.attention.head_count is 0".into());
    }
    Ok(ModelConfig {
        arch: "gpt2".into(),
        n_vocab: 0,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv: m.opt_usize("attention.head_count_kv")?.unwrap_or(n_head),
        head_dim: n_embd / n_head,
        n_ff: m.usize("feed_forward_length")?,
        n_ctx_train: m.usize("context_length")?,
        norm: NormKind::LayerNorm,
        norm_eps: m.f32("attention.layer_norm_epsilon")?,
        rope: None,
        ffn: FfnKind::Gelu,
        qk_norm: false,
    })
}

fn from_hf(c: &HfConfig) -> Result<ModelConfig, String> {
    let n_embd = c.usize(&["n_embd", "hidden_size"])?;
    let n_head = c.usize(&["n_head", "num_attention_heads"])?;
    if n_head == 0 {
        return Err("config.json n_head is 0".into());
    }
    match c.find(&["activation_function"]).and_then(|v| v.as_str()) {
        None | Some("gelu_new") | Some("gelu_pytorch_tanh") | Some("gelu_fast") => {}
        Some(other) => {
            return Err(format!(
                "config.json activation_function '{other}' is not supported (tinylm runs the \
                 tanh GELU, 'gelu_new', as llama.cpp does)"
            ));
        }
    }
    Ok(ModelConfig {
        arch: "gpt2".into(),
        n_vocab: c.usize(&["vocab_size"])?,
        n_embd,
        n_layer: c.usize(&["n_layer", "num_hidden_layers"])?,
        n_head,
        n_head_kv: n_head,
        head_dim: n_embd / n_head,
        n_ff: c.opt_usize(&["n_inner"])?.unwrap_or(4 * n_embd),
        n_ctx_train: c.usize(&["n_positions", "n_ctx"])?,
        norm: NormKind::LayerNorm,
        norm_eps: c.opt_f32(&["layer_norm_epsilon"])?.unwrap_or(1e-5),
        rope: None,
        ffn: FfnKind::Gelu,
        qk_norm: false,
    })
}

fn hf_tensor(name: &str) -> Option<HfName> {
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    let plain = |g: &str| {
        Some(HfName {
            gguf: g.to_string(),
            transposed: false,
        })
    };
    match name {
        "wte.weight" => return plain("token_embd.weight"),
        "wpe.weight" => return plain("position_embd.weight"),
        "ln_f.weight" => return plain("output_norm.weight"),
        "ln_f.bias" => return plain("output_norm.bias"),
        "lm_head.weight" => return plain("output.weight"),
        _ => {}
    }
    let rest = name.strip_prefix("h.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = suffix.rsplit_once('.')?;
    let (g, conv1d) = match module {
        "ln_1" => ("attn_norm", false),
        "ln_2" => ("ffn_norm", false),
        "attn.c_attn" => ("attn_qkv", true),
        "attn.c_proj" => ("attn_output", true),
        "mlp.c_fc" => ("ffn_up", true),
        "mlp.c_proj" => ("ffn_down", true),
        // attn.bias / attn.masked_bias are causal-mask buffers.
        _ => return None,
    };
    Some(HfName {
        gguf: format!("blk.{layer}.{g}.{kind}"),
        transposed: conv1d && kind == "weight",
    })
}
