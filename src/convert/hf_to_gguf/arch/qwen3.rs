//! Qwen3 (`Qwen3ForCausalLM`, `Qwen3Model`): Qwen2 plus per-head q/k RMS norms.
//!
//! Reference: `Qwen3Model` in llama.cpp's `convert_hf_to_gguf.py` (its reranker detection
//! too); transformers' `Qwen3Config` for the defaults.

use serde_json::{Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::Hparams;
use super::super::layout::{self, Layout, QueryWidth};
use super::qwen2::{qwen_post_init, qwen2_defaults, reject_pooling};
use super::text::{self, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass};
use crate::convert::hf::HfModel;
use crate::formats::gguf::GgufWriter;

/// Qwen3.
pub struct Qwen3;

fn qwen3_defaults() -> Vec<(&'static str, Json)> {
    let mut v = qwen2_defaults();
    v.push(("head_dim", json!(128)));
    v
}

impl Architecture for Qwen3 {
    fn gguf_name(&self) -> &'static str {
        "qwen3"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Qwen3ForCausalLM", "Qwen3Model"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "qwen3",
            defaults: qwen3_defaults,
            attribute_map: &[],
            post_init: qwen_post_init,
            tokenizer: TokenizerClass::Qwen2,
        }]
    }

    fn check_variant(&self, model: &HfModel, hp: &Hparams) -> Result<()> {
        reject_pooling(model)?;
        let readme = model
            .files
            .get("README.md")
            .map(|b| String::from_utf8_lossy(b).to_lowercase())
            .unwrap_or_default();
        let hints = [
            model.dir_name.to_lowercase(),
            hp.raw
                .get("_name_or_path")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_lowercase(),
        ];
        if readme.contains("# qwen3-reranker")
            || readme.contains("# qwen3-vl-reranker")
            || hints
                .iter()
                .any(|h| h.contains("qwen3-reranker") || h.contains("qwen3-vl-reranker"))
        {
            return Err(cfg("Qwen3 reranker models are not supported"));
        }
        Ok(())
    }

    fn normalize_name(&self, hf_arch: &str, name: String) -> String {
        if hf_arch == "Qwen3Model" {
            format!("model.{name}")
        } else {
            name
        }
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| text::map_decoder(base, block_count, true))
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        layout::decoder(hp, n_vocab, QueryWidth::HeadsTimesHeadDim, true).map(Some)
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("qwen3", hp, file_type, w)
    }
}
