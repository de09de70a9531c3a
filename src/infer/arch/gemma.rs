//! `gemma`, `gemma2`, `gemma3`: the llama block with a GELU-gated FFN, embeddings scaled by
//! `sqrt(n_embd)` and NeoX RoPE; Gemma 2 adds post-norms, attention and final logit
//! soft-capping and sliding-window attention on even layers; Gemma 3 replaces the attention
//! soft-capping with q/k norms, slides on five layers of six with its own RoPE base there.
//!
//! GGUF only: HF checkpoints store the norms as `w` for `1 + w` (the converter adds the 1),
//! which the HF tensor path does not do.

use super::{ArchSpec, GgufMeta, llama_like_gguf};
use crate::infer::config::{FfnKind, ModelConfig, SlidingWindow};
use crate::infer::ops::RopeMode;

/// Which generation's extras to read from the metadata.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Gen {
    /// Gemma 1.
    One,
    /// Gemma 2.
    Two,
    /// Gemma 3.
    Three,
}

/// The configuration of any Gemma generation from its GGUF metadata.
pub(super) fn from_gguf(m: &GgufMeta, g: Gen) -> Result<ModelConfig, String> {
    let mut c = llama_like_gguf(m, RopeMode::Neox, g == Gen::Three)?;
    c.ffn = FfnKind::GeluGated;
    c.extras.embd_scale = Some((c.n_embd as f32).sqrt());
    if g == Gen::One {
        return Ok(c);
    }
    c.extras.post_norms = true;
    let cap = |k: &str| -> Result<Option<f32>, String> { Ok(m.opt_f32(k)?.filter(|v| *v != 0.0)) };
    c.extras.final_softcap = cap("final_logit_softcapping")?;
    let window = if g == Gen::Two {
        c.extras.attn_softcap = cap("attn_logit_softcapping")?;
        // llama.cpp's default for Gemma 2 when the key is absent
        Some(m.opt_usize("attention.sliding_window")?.unwrap_or(4096))
    } else {
        m.opt_usize("attention.sliding_window")?.filter(|w| *w > 0)
    };
    if let (Some(window), Some(rope)) = (window, &c.rope) {
        if m.opt_usize("attention.sliding_window_pattern")?.is_some() {
            return Err(format!(
                "{}.attention.sliding_window_pattern is not supported yet",
                m.arch
            ));
        }
        let (pattern, freq_scale) = match g {
            // Gemma 2's sliding layers share the global rope; Gemma 3's never scale.
            Gen::Two => (2, rope.freq_scale),
            _ => (6, 1.0),
        };
        c.extras.swa = Some(SlidingWindow {
            window,
            pattern,
            freq_base: m.opt_f32("rope.freq_base_swa")?.unwrap_or(rope.freq_base),
            freq_scale,
        });
    }
    Ok(c)
}

/// Gemma has no HF tensor path.
pub(super) fn no_hf(_: &super::HfConfig) -> Result<ModelConfig, String> {
    Err(
        "Gemma models run from GGUF: convert the folder first (tinylm convert DIR --to gguf)"
            .into(),
    )
}

pub static SPEC: ArchSpec = ArchSpec {
    name: "gemma",
    hf_architectures: &["GemmaForCausalLM"],
    from_gguf: |m| from_gguf(m, Gen::One),
    from_hf: no_hf,
    hf_tensor: |_| None,
};
