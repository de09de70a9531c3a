//! Llama and Mistral (`LlamaForCausalLM`, `MistralForCausalLM`, `LlamaModel`): Q/K rows
//! permuted for llama.cpp's rope, Llama 3 rope scaling as a `rope_freqs` tensor.
//!
//! Reference: `LlamaModel` in llama.cpp's `convert_hf_to_gguf.py` (its `permute`,
//! `generate_extra_tensors` and the `set_vocab` preamble), and transformers' `LlamaConfig` /
//! `MistralConfig` for the defaults.

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::super::error::{ConvertError, Result, cfg, tensor_err};
use super::super::hparams::{self, Hparams, as_u32};
use super::super::json::{parse_json_file, truthy as json_truthy};
use super::super::layout::{self, Layout, QueryWidth};
use super::super::spm_vocab;
use super::super::tensors::{PlannedTensor, Source, Transform};
use super::text::{self, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass, VocabKind};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgmlType, GgufWriter, Value};

/// Llama (and Mistral, which llama.cpp converts as `llama`).
pub struct Llama;

fn llama_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(32000)),
        ("max_position_embeddings", json!(2048)),
        ("hidden_size", json!(4096)),
        ("intermediate_size", json!(11008)),
        ("num_hidden_layers", json!(32)),
        ("num_attention_heads", json!(32)),
        ("num_key_value_heads", Json::Null),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(10000.0)),
        ("rope_scaling", Json::Null),
        ("head_dim", Json::Null),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", json!(1)),
        ("eos_token_id", json!(2)),
    ]
}

fn llama_post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
    hparams::default_head_dim(map);
    hparams::rope_type_from_type(map);
}

fn mistral_defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(32000)),
        ("max_position_embeddings", json!(131072)),
        ("hidden_size", json!(4096)),
        ("intermediate_size", json!(14336)),
        ("num_hidden_layers", json!(32)),
        ("num_attention_heads", json!(32)),
        ("sliding_window", json!(4096)),
        ("head_dim", Json::Null),
        ("num_key_value_heads", json!(8)),
        ("rms_norm_eps", json!(1e-6)),
        ("rope_theta", json!(10000.0)),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", json!(1)),
        ("eos_token_id", json!(2)),
    ]
}

fn mistral_post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
}

impl Architecture for Llama {
    fn gguf_name(&self) -> &'static str {
        "llama"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &[
            "LlamaForCausalLM",
            "LLaMAForCausalLM",
            "LlamaModel",
            "MistralForCausalLM",
        ]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[
            ConfigClass {
                model_type: "llama",
                defaults: llama_defaults,
                attribute_map: &[],
                post_init: llama_post_init,
                tokenizer: TokenizerClass::Llama,
            },
            ConfigClass {
                model_type: "mistral",
                defaults: mistral_defaults,
                attribute_map: &[],
                post_init: mistral_post_init,
                tokenizer: TokenizerClass::Llama,
            },
        ]
    }

    fn extra_tensors(&self, hp: &Hparams) -> Result<Vec<PlannedTensor>> {
        Ok(llama3_rope_freqs(hp)?
            .map(|values| PlannedTensor {
                name: "rope_freqs.weight".into(),
                shape: vec![values.len()],
                ggml_type: GgmlType::F32,
                source: Source::Values(Arc::from(values)),
                src_dtype: None,
            })
            .into_iter()
            .collect())
    }

    fn normalize_name(&self, hf_arch: &str, name: String) -> String {
        let name = name.replace("text_model.", "");
        if hf_arch == "LlamaModel" {
            format!("model.{name}")
        } else {
            name
        }
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
        let n_head = hp
            .find(&["n_heads", "num_attention_heads"])
            .and_then(as_u32);
        let n_kv_head = hp
            .find(&["n_kv_heads", "num_key_value_heads"])
            .and_then(as_u32);
        let heads = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
            n_head
        } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
            match (n_head, n_kv_head) {
                (h, Some(kv)) if Some(kv) != h => Some(kv),
                (h, _) => h,
            }
        } else {
            return Ok(Transform::None);
        };
        let h = heads.ok_or_else(|| {
            cfg("num_attention_heads / num_key_value_heads are required to permute Q/K")
        })? as usize;
        let rows = shape.first().copied().unwrap_or(0);
        if h == 0 || rows % (2 * h) != 0 {
            return Err(tensor_err(
                hf_name,
                format!("{rows} rows cannot be split into {h} heads of even size"),
            ));
        }
        Ok(Transform::Permute(h))
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        layout::decoder(hp, n_vocab, QueryWidth::HeadsTimesHeadDim, false).map(Some)
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        text::write_params("llama", hp, file_type, w)?;
        w.add_kv("llama.vocab_size", Value::U32(hp.req_u32(&["vocab_size"])?));
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
        w.add_kv("llama.rope.dimension_count", Value::U32(rope_dim));
        Ok(())
    }

    fn before_vocab(&self, model: &HfModel, w: &mut GgufWriter) -> Result<()> {
        if let Some(tc) = parse_json_file(model, "tokenizer_config.json")?
            && let Some(v) = tc.get("add_prefix_space").filter(|v| !v.is_null())
        {
            w.add_kv(
                "tokenizer.ggml.add_space_prefix",
                Value::Bool(json_truthy(v)),
            );
        }
        if model.files.contains_key("tekken.json") && !model.files.contains_key("tokenizer.json") {
            return Err(ConvertError::Tokenizer(
                "Mistral tekken.json tokenizers are not supported; provide tokenizer.json".into(),
            ));
        }
        Ok(())
    }

    fn vocab_kind(&self, model: &HfModel) -> Result<VocabKind> {
        llama_vocab_kind(model)
    }

    fn after_vocab(&self, _model: &HfModel, hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        llama_after_vocab(hp, w);
        Ok(())
    }
}

/// `LlamaModel.set_vocab`'s choice: `tokenizer.model`, else an SPM-style `tokenizer.json`,
/// else byte-level BPE.
pub(super) fn llama_vocab_kind(model: &HfModel) -> Result<VocabKind> {
    if model.files.contains_key("tokenizer.model") {
        return Ok(VocabKind::SentencePiece);
    }
    // The light read answers for every well-formed file; the whole parse gives the errors.
    if let Some(bytes) = model.files.get("tokenizer.json")
        && let Some(llama_hf) = spm_vocab::is_llama_hf_bytes(bytes)
    {
        return Ok(if llama_hf {
            VocabKind::LlamaHf
        } else {
            VocabKind::Bpe
        });
    }
    match parse_json_file(model, "tokenizer.json")? {
        Some(tj) if spm_vocab::is_llama_hf(&tj) => Ok(VocabKind::LlamaHf),
        _ => Ok(VocabKind::Bpe),
    }
}

/// The end of `LlamaModel.set_vocab`: CodeLlama's infill ids, SmolLM's BOS.
pub(super) fn llama_after_vocab(hp: &Hparams, w: &mut GgufWriter) {
    let vocab_size = hp.get("vocab_size").and_then(as_u32).unwrap_or(32000);
    if vocab_size == 32016 {
        // CodeLlama: prefix/suffix/middle have no gguf-py handler; only eot is written.
        w.add_kv("tokenizer.ggml.eot_token_id", Value::U32(32010));
    }
    // SmolLM's vocabulary size: the reference turns BOS off for it.
    if vocab_size == 49152 {
        w.add_kv("tokenizer.ggml.add_bos_token", Value::Bool(false));
    }
}

/// Llama 3 `rope_freqs` (f32 arithmetic as torch does it), when `rope_type == "llama3"`.
fn llama3_rope_freqs(hp: &Hparams) -> Result<Option<Vec<f32>>> {
    let rp = text::rope_parameters(hp);
    let rp = rp
        .get("full_attention")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or(rp);
    if rp.is_empty()
        || !rp
            .get("rope_type")
            .and_then(Json::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("llama3"))
    {
        return Ok(None);
    }
    let num = |k: &str, d: f64| -> Result<f64> {
        match rp.get(k).filter(|v| !v.is_null()) {
            None => Ok(d),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| cfg(format!("rope_scaling.{k} must be a number"))),
        }
    };
    let base = num("rope_theta", 10000.0)?;
    let dim = match hp.get("head_dim") {
        Some(v) => as_u32(v).ok_or_else(|| cfg("head_dim must be an integer"))?,
        None => {
            let heads = hp.req_u32(&["num_attention_heads"])?;
            if heads == 0 {
                return Err(cfg("num_attention_heads is 0"));
            }
            hp.req_u32(&["hidden_size"])? / heads
        }
    } as usize;
    let factor = num("factor", 8.0)?;
    let low = num("low_freq_factor", 1.0)?;
    let high = num("high_freq_factor", 4.0)?;
    let old_ctx = num("original_max_position_embeddings", 8192.0)?;
    let low_wavelen = old_ctx / low;
    let high_wavelen = old_ctx / high;
    let base32 = base as f32;
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let mut out = Vec::with_capacity(dim / 2);
    for i in (0..dim).step_by(2) {
        let exponent = i as f32 / dim as f32;
        let freq = 1.0f32 / base32.powf(exponent);
        let wavelen = two_pi / freq;
        let v = if wavelen < high_wavelen as f32 {
            1.0
        } else if wavelen > low_wavelen as f32 {
            factor as f32
        } else {
            let smooth = (old_ctx as f32 / wavelen - low as f32) / (high - low) as f32;
            1.0 / ((1.0 - smooth) / factor as f32 + smooth)
        };
        out.push(v);
    }
    Ok(Some(out))
}
