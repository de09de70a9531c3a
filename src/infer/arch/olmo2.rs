//! `olmo2`: the llama block with the norms moved after attention and after the FFN, and q/k
//! RMS-normalised over the whole projection before NeoX-style RoPE.

use super::{ArchSpec, HfName, llama_like_gguf, llama_like_hf, llama_like_hf_tensor};
use crate::infer::config::{BlockVariant, ModelConfig};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "olmo2",
    hf_architectures: &["Olmo2ForCausalLM"],
    from_gguf: |m| llama_like_gguf(m, RopeMode::Neox, true).map(post_norms),
    from_hf: |c| llama_like_hf(c, "olmo2", true).map(post_norms),
    hf_tensor,
};

fn post_norms(mut c: ModelConfig) -> ModelConfig {
    c.variant = BlockVariant {
        post_norms: true,
        qk_norm_full: true,
        ..Default::default()
    };
    c
}

fn hf_tensor(name: &str) -> Option<HfName> {
    let rest = name.strip_prefix("model.layers.");
    if let Some((layer, suffix)) = rest.and_then(|r| r.split_once('.')) {
        let g = match suffix {
            "post_attention_layernorm.weight" => Some("post_attention_norm.weight"),
            "post_feedforward_layernorm.weight" => Some("post_ffw_norm.weight"),
            _ => None,
        };
        if let Some(g) = g {
            return Some(HfName {
                gguf: format!("blk.{layer}.{g}"),
                transposed: false,
            });
        }
    }
    llama_like_hf_tensor(name)
}
