//! `smollm3`: the llama block (adjacent-pair RoPE after the converter's permutation) with RoPE
//! skipped on every 4th layer, as llama.cpp hard-codes (`n_no_rope_layer_step`).

use super::{ArchSpec, HfConfig, llama_like_gguf, llama_like_hf, llama_like_hf_tensor};
use crate::infer::config::ModelConfig;
use crate::infer::ops::RopeMode;

pub static SPEC: ArchSpec = ArchSpec {
    name: "smollm3",
    hf_architectures: &["SmolLM3ForCausalLM"],
    from_gguf: |m| {
        llama_like_gguf(m, RopeMode::Normal, false).map(|mut c| {
            c.variant.no_rope_interval = 4;
            c
        })
    },
    from_hf,
    hf_tensor: llama_like_hf_tensor,
};

fn from_hf(c: &HfConfig) -> Result<ModelConfig, String> {
    let mut cfg = llama_like_hf(c, "smollm3", false)?;
    let interval = c.opt_usize(&["no_rope_layer_interval"])?.unwrap_or(4);
    // transformers derives no_rope_layers from the interval; a list that says otherwise is a
    // model tinylm cannot run.
    if let Some(list) = c.find(&["no_rope_layers"]).and_then(|v| v.as_array()) {
        for (il, v) in list.iter().enumerate() {
            let uses_rope = v.as_u64() != Some(0);
            if interval == 0 || uses_rope != ((il + 1) % interval != 0) {
                return Err(format!(
                    "config.json no_rope_layers does not follow no_rope_layer_interval = \
                     {interval} at layer {il}: not supported"
                ));
            }
        }
    }
    cfg.variant.no_rope_interval = interval;
    Ok(cfg)
}
