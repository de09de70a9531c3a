//! `qwen3`: the qwen2 block without biases, plus per-head RMSNorm of q and k before RoPE
//! (`attn_q_norm`, `attn_k_norm`) and an explicit head dimension.

use super::{ArchSpec, llama_like_gguf, llama_like_hf, llama_like_hf_tensor};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "qwen3",
    hf_architectures: &["Qwen3ForCausalLM", "Qwen3Model"],
    from_gguf: |m| llama_like_gguf(m, RopeMode::Neox, true),
    from_hf: |c| llama_like_hf(c, "qwen3", true),
    hf_tensor: llama_like_hf_tensor,
};
