//! `qwen2`: the llama block with q/k/v biases and NeoX RoPE (q/k are not permuted).

use super::{ArchSpec, llama_like_gguf, llama_like_hf, llama_like_hf_tensor};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "qwen2",
    hf_architectures: &["Qwen2ForCausalLM", "Qwen2Model"],
    from_gguf: |m| llama_like_gguf(m, RopeMode::Neox, false),
    from_hf: |c| llama_like_hf(c, "qwen2", false),
    hf_tensor: llama_like_hf_tensor,
};
