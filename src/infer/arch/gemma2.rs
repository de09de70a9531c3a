//! `gemma2`: Gemma with post-norms, attention and final logit soft-capping, and
//! sliding-window attention on even layers (see [`super::gemma`]).

use super::ArchSpec;
use super::gemma::{Gen, from_gguf, no_hf};

pub static SPEC: ArchSpec = ArchSpec {
    name: "gemma2",
    hf_architectures: &["Gemma2ForCausalLM"],
    from_gguf: |m| from_gguf(m, Gen::Two),
    from_hf: no_hf,
    hf_tensor: |_| None,
};
