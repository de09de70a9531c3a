//! `llama` (Llama 1–3, Mistral, SmolLM, tiny-lm's llama3): RMSNorm, GQA, SiLU-gated FFN,
//! RoPE on adjacent pairs (the converter permutes HF q/k into that layout), optional biases and
//! Llama 3 `rope_freqs`.

use super::{ArchSpec, llama_like_gguf, llama_like_hf, llama_like_hf_tensor};
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "llama",
    hf_architectures: &[
        "LlamaForCausalLM",
        "LLaMAForCausalLM",
        "LlamaModel",
        "MistralForCausalLM",
    ],
    from_gguf: |m| llama_like_gguf(m, RopeMode::Normal, false),
    from_hf: |c| llama_like_hf(c, "llama", false),
    hf_tensor: llama_like_hf_tensor,
};
