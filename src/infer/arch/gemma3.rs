//! `gemma3` (text): Gemma 2's block with q/k norms instead of attention soft-capping, sliding
//! windows on five layers of six with their own RoPE base (see [`super::gemma`]).

use super::ArchSpec;
use super::gemma::{Gen, from_gguf, no_hf};

pub static SPEC: ArchSpec = ArchSpec {
    name: "gemma3",
    hf_architectures: &["Gemma3ForCausalLM"],
    from_gguf: |m| from_gguf(m, Gen::Three),
    from_hf: no_hf,
    hf_tensor: |_| None,
};
