//! SmolLM3 (`SmolLM3ForCausalLM`): Llama under another name. Its rope-free layers
//! (`no_rope_layers`) are not written: llama.cpp hard-codes every 4th layer.
//!
//! Reference: `SmolLM3Model(LlamaModel)` in llama.cpp's `convert_hf_to_gguf.py`
//! (`conversion/llama.py`), and transformers' `SmolLM3Config` for the defaults.

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::{self, Hparams, as_u32};
use super::super::layout::{self, Layout, QueryWidth};
use super::super::tensors::{PlannedTensor, Transform};
use super::llama::Llama;
use super::text::{self, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgufWriter, Value};

/// SmolLM3.
pub struct SmolLm3;

fn defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(128256)),
        ("hidden_size", json!(2048)),
        ("intermediate_size", json!(11008)),
        ("num_hidden_layers", json!(36)),
        ("num_attention_heads", json!(16)),
        ("num_key_value_heads", json!(4)),
        ("max_position_embeddings", json!(32768)),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(2000000.0)),
        ("rope_scaling", Json::Null),
        ("tie_word_embeddings", json!(true)),
        ("bos_token_id", json!(128000)),
        ("eos_token_id", json!(128001)),
    ]
}

fn post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
    hparams::rope_type_from_type(map);
}

impl Architecture for SmolLm3 {
    fn gguf_name(&self) -> &'static str {
        "smollm3"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["SmolLM3ForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "smollm3",
            defaults,
            attribute_map: &[],
            post_init,
            tokenizer: TokenizerClass::Generic,
        }]
    }

    fn extra_tensors(&self, hp: &Hparams) -> Result<Vec<PlannedTensor>> {
        Llama.extra_tensors(hp)
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| text::map_decoder(base, block_count, false))
    }

    fn transform(
        &self,
        name: &str,
        hf_name: &str,
        shape: &mut Vec<usize>,
        hp: &Hparams,
    ) -> Result<Transform> {
        Llama.transform(name, hf_name, shape, hp)
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        layout::decoder(hp, n_vocab, QueryWidth::HeadsTimesHeadDim, false).map(Some)
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("smollm3", hp, file_type, w)?;
        w.add_kv(
            "smollm3.vocab_size",
            Value::U32(hp.req_u32(&["vocab_size"])?),
        );
        let rope_dim = match hp.get("head_dim") {
            Some(v) => as_u32(v).ok_or_else(|| cfg("head_dim must be an integer"))?,
            None => {
                let hidden = hp.req_u32(&["hidden_size"])?;
                let heads = hp.req_u32(&["num_attention_heads"])?;
                if heads == 0 {
                    return Err(cfg("num_attention_heads is 0"));
                }
                hidden / heads
            }
        };
        w.add_kv("smollm3.rope.dimension_count", Value::U32(rope_dim));
        Ok(())
    }

    fn before_vocab(&self, model: &HfModel, w: &mut GgufWriter) -> Result<()> {
        Llama.before_vocab(model, w)
    }

    fn check_bpe_tokenizer(&self, tj: &Map<String, Json>) -> Result<()> {
        Llama.check_bpe_tokenizer(tj)
    }

    fn after_vocab(&self, model: &HfModel, hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        Llama.after_vocab(model, hp, w)
    }
}
