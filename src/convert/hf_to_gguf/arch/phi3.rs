//! Phi-3 / Phi-3.5 / Phi-4-mini (`Phi3ForCausalLM`): fused `qkv_proj` and `gate_up_proj`,
//! partial rotary embeddings, LongRoPE as two factor tensors (`rope_factors_long/short`) plus
//! an attention factor, a sliding window key (0 for Phi-4).
//!
//! Reference: `Phi3MiniModel` in llama.cpp's `convert_hf_to_gguf.py` (`conversion/phi.py`),
//! and transformers' `Phi3Config` for the defaults. Its `generate_extra_tensors` writes
//! `rope.scaling.attn_factor` while the tensors are planned, so that key comes right after
//! `general.architecture`. The vocabulary is byte-level BPE when `tokenizer_class` is
//! `GPT2Tokenizer` (Phi-4-mini), else SentencePiece from `tokenizer.model`. Delta: a folder with
//! only a byte-level `tokenizer.json` of another class converts as BPE (the reference fails with
//! "Missing tokenizer.model").

use std::sync::Arc;

use serde_json::{Map, Value as Json, json};

use super::super::error::{Result, cfg};
use super::super::hparams::{self, Hparams, as_f32};
use super::super::json::parse_json_file;
use super::super::layout::{BLOCK_COUNT_KEYS, Layout, positive};
use super::super::tensors::{PlannedTensor, Source};
use super::text::{self, map_with_suffix};
use super::{Architecture, ConfigClass, TokenizerClass, VocabKind};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{GgmlType, GgufWriter, Value};

/// Phi-3.
pub struct Phi3;

fn defaults() -> Vec<(&'static str, Json)> {
    vec![
        ("vocab_size", json!(32064)),
        ("hidden_size", json!(3072)),
        ("intermediate_size", json!(8192)),
        ("num_hidden_layers", json!(32)),
        ("num_attention_heads", json!(32)),
        ("num_key_value_heads", Json::Null),
        ("max_position_embeddings", json!(4096)),
        ("original_max_position_embeddings", json!(4096)),
        ("rms_norm_eps", json!(1e-5)),
        ("rope_theta", json!(10000.0)),
        ("rope_scaling", Json::Null),
        ("partial_rotary_factor", json!(1.0)),
        ("sliding_window", Json::Null),
        ("tie_word_embeddings", json!(false)),
        ("bos_token_id", json!(1)),
        ("eos_token_id", json!(32000)),
    ]
}

/// `Phi3Config.__init__`: default KV heads, the old `su`/`yarn` scaling names become
/// `longrope`.
fn post_init(map: &mut Map<String, Json>) {
    hparams::default_kv_heads(map);
    if let Some(Json::Object(rs)) = map.get_mut("rope_scaling")
        && matches!(rs.get("type").and_then(Json::as_str), Some("su" | "yarn"))
    {
        rs.insert("type".into(), json!("longrope"));
    }
    hparams::rope_type_from_type(map);
}

/// The shapes the reference derives: `(n_embd, n_head, n_head_kv, rope_dims)`.
fn dims(hp: &Hparams) -> Result<(usize, usize, usize, usize)> {
    let n_embd = positive(hp, &["hidden_size", "n_embd"])?;
    let n_head = positive(hp, &["num_attention_heads", "n_head"])?;
    let n_kv = positive(hp, &["num_key_value_heads", "n_head_kv"])?;
    if n_embd % n_head != 0 {
        return Err(cfg(format!(
            "num_attention_heads = {n_head} does not divide hidden_size = {n_embd}: attention \
             heads must have equal size"
        )));
    }
    if n_head % n_kv != 0 {
        return Err(cfg(format!(
            "num_key_value_heads = {n_kv} must divide num_attention_heads = {n_head}"
        )));
    }
    let rp = text::rope_parameters(hp);
    let pct = match rp.get("partial_rotary_factor").filter(|v| !v.is_null()) {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| {
                cfg(format!(
                    "partial_rotary_factor must be a number between 0 and 1, found {v}"
                ))
            })?,
    };
    // int(partial_rotary_factor * n_embd) // n_head, in Python's float arithmetic.
    let rope_dims = (pct * n_embd as f64).trunc() as usize / n_head;
    Ok((n_embd, n_head, n_kv, rope_dims))
}

/// `rope_scaling.original_max_position_embeddings` (or the top-level key).
fn original_ctx(hp: &Hparams) -> Result<u32> {
    let rp = text::rope_parameters(hp);
    let v = rp
        .get("original_max_position_embeddings")
        .filter(|v| !v.is_null())
        .ok_or_else(|| cfg("missing original_max_position_embeddings"))?;
    hparams::as_u32(v).filter(|&o| o > 0).ok_or_else(|| {
        cfg(format!(
            "original_max_position_embeddings must be a positive integer, found {v}"
        ))
    })
}

/// LongRoPE: the attention factor and the long/short factor tensors, when
/// `rope_scaling.long_factor` is set.
struct LongRope {
    attn_factor: f32,
    long: Vec<f32>,
    short: Vec<f32>,
}

fn factors(rp: &Map<String, Json>, key: &str) -> Result<Option<Vec<f32>>> {
    match rp.get(key).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(Json::Array(a)) => a
            .iter()
            .map(|x| {
                as_f32(x).ok_or_else(|| {
                    cfg(format!(
                        "rope_scaling.{key} must be a list of numbers, found {x}"
                    ))
                })
            })
            .collect::<Result<Vec<f32>>>()
            .map(Some),
        Some(other) => Err(cfg(format!(
            "rope_scaling.{key} must be a list of numbers, found {other}"
        ))),
    }
}

fn long_rope(hp: &Hparams) -> Result<Option<LongRope>> {
    let rp = text::rope_parameters(hp);
    let Some(long) = factors(&rp, "long_factor")?.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let (_, _, _, rope_dims) = dims(hp)?;
    let max_pos = hp.req_u32(&["n_positions", "max_position_embeddings"])?;
    let orig = original_ctx(hp)?;
    let scale = f64::from(max_pos) / f64::from(orig);
    let ty = rp
        .get("rope_type")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_lowercase();
    let attn_factor = match ty.as_str() {
        "" => {
            return Err(cfg(
                "rope_scaling has long_factor but no type (\"longrope\")",
            ));
        }
        "su" | "longrope" if scale > 1.0 => (1.0 + scale.ln() / f64::from(orig).ln()).sqrt(),
        "yarn" if scale > 1.0 => 0.1 * scale.ln() + 1.0,
        "su" | "longrope" | "yarn" => 1.0,
        other => {
            return Err(cfg(format!(
                "rope_scaling type '{other}' with long_factor is not supported (expected \
                 \"longrope\")"
            )));
        }
    };
    let short = factors(&rp, "short_factor")?
        .ok_or_else(|| cfg("rope_scaling has long_factor but no short_factor"))?;
    if long.len() != short.len() || 2 * long.len() != rope_dims {
        return Err(cfg(format!(
            "rope_scaling.long_factor and short_factor must have {} values each (half the \
             rotary dimensions), found {} and {}",
            rope_dims as f64 / 2.0,
            long.len(),
            short.len()
        )));
    }
    Ok(Some(LongRope {
        attn_factor: attn_factor as f32,
        long,
        short,
    }))
}

/// Whether `tokenizer_config.json` names `GPT2Tokenizer` (Phi-4-mini's byte-level BPE).
fn gpt2_tokenizer(model: &HfModel) -> bool {
    parse_json_file(model, "tokenizer_config.json")
        .ok()
        .flatten()
        .and_then(|tc| tc.get("tokenizer_class").cloned())
        .and_then(|c| c.as_str().map(|s| s == "GPT2Tokenizer"))
        .unwrap_or(false)
}

impl Architecture for Phi3 {
    fn gguf_name(&self) -> &'static str {
        "phi3"
    }

    fn hf_architectures(&self) -> &'static [&'static str] {
        &["Phi3ForCausalLM"]
    }

    fn config_classes(&self) -> &'static [ConfigClass] {
        &[ConfigClass {
            model_type: "phi3",
            defaults,
            attribute_map: &[],
            post_init,
            tokenizer: TokenizerClass::Llama,
        }]
    }

    fn early_params(&self, hp: &Hparams, w: &mut GgufWriter) -> Result<()> {
        if let Some(lr) = long_rope(hp)? {
            w.add_kv("phi3.rope.scaling.attn_factor", Value::F32(lr.attn_factor));
        }
        Ok(())
    }

    fn extra_tensors(&self, hp: &Hparams) -> Result<Vec<PlannedTensor>> {
        let Some(lr) = long_rope(hp)? else {
            return Ok(Vec::new());
        };
        let t = |name: &str, v: Vec<f32>| PlannedTensor {
            name: name.into(),
            shape: vec![v.len()],
            ggml_type: GgmlType::F32,
            source: Source::Values(Arc::from(v)),
            src_dtype: None,
        };
        Ok(vec![
            t("rope_factors_long.weight", lr.long),
            t("rope_factors_short.weight", lr.short),
        ])
    }

    fn map_name(&self, name: &str, block_count: u32) -> Option<String> {
        map_with_suffix(name, |base| {
            if let Some(rest) = base.strip_prefix("model.layers.") {
                let (n, tail) = text::block(rest, block_count)?;
                match tail {
                    "self_attn.qkv_proj" => return Some(format!("blk.{n}.attn_qkv")),
                    "mlp.gate_up_proj" => return Some(format!("blk.{n}.ffn_up")),
                    "self_attn.q_proj" | "self_attn.k_proj" | "self_attn.v_proj"
                    | "mlp.gate_proj" | "mlp.up_proj" => return None,
                    _ => {}
                }
            }
            text::map_decoder(base, block_count, false)
        })
    }

    fn layout(&self, hp: &Hparams, n_vocab: usize) -> Result<Option<Layout>> {
        let (n_embd, n_head, n_kv, _) = dims(hp)?;
        let n_ff = positive(hp, &["intermediate_size"])?;
        let n_layer = positive(hp, &BLOCK_COUNT_KEYS)?;
        let hd = n_embd / n_head;
        let mut l = Layout {
            from: format!(
                "hidden_size = {n_embd}, num_attention_heads = {n_head}, num_key_value_heads = \
                 {n_kv}, intermediate_size = {n_ff}, num_hidden_layers = {n_layer}"
            ),
            ..Layout::default()
        };
        l.add_llama_ends(n_vocab, n_embd);
        for i in 0..n_layer {
            let parts: [(&str, &str, Vec<usize>); 6] = [
                ("attn_norm", "input_layernorm", vec![n_embd]),
                (
                    "attn_qkv",
                    "self_attn.qkv_proj",
                    vec![n_embd + 2 * n_kv * hd, n_embd],
                ),
                ("attn_output", "self_attn.o_proj", vec![n_embd, n_embd]),
                ("ffn_norm", "post_attention_layernorm", vec![n_embd]),
                ("ffn_up", "mlp.gate_up_proj", vec![2 * n_ff, n_embd]),
                ("ffn_down", "mlp.down_proj", vec![n_embd, n_ff]),
            ];
            for (g, hf, shape) in parts {
                l.add(
                    format!("blk.{i}.{g}.weight"),
                    format!("model.layers.{i}.{hf}.weight"),
                    shape,
                    true,
                );
            }
        }
        Ok(Some(l))
    }

    fn write_params(&self, hp: &Hparams, file_type: u32, w: &mut GgufWriter) -> Result<()> {
        let k = |s: &str| format!("phi3.{s}");
        let (n_embd, n_head, n_kv, rope_dims) = dims(hp)?;
        let max_pos = hp.req_u32(&["n_positions", "max_position_embeddings"])?;
        let orig = original_ctx(hp)?;
        w.add_kv(k("context_length"), Value::U32(max_pos));
        w.add_kv(k("rope.scaling.original_context_length"), Value::U32(orig));
        w.add_kv(k("embedding_length"), Value::U32(n_embd as u32));
        w.add_kv(
            k("feed_forward_length"),
            Value::U32(hp.req_u32(&["intermediate_size"])?),
        );
        w.add_kv(k("block_count"), Value::U32(hp.req_u32(&BLOCK_COUNT_KEYS)?));
        w.add_kv(k("attention.head_count"), Value::U32(n_head as u32));
        w.add_kv(k("attention.head_count_kv"), Value::U32(n_kv as u32));
        let eps = hp
            .opt_f32(&["rms_norm_eps"])?
            .ok_or_else(|| cfg("missing rms_norm_eps"))?;
        w.add_kv(k("attention.layer_norm_rms_epsilon"), Value::F32(eps));
        w.add_kv(k("rope.dimension_count"), Value::U32(rope_dims as u32));
        let rp = text::rope_parameters(hp);
        let full = rp
            .get("full_attention")
            .and_then(Json::as_object)
            .unwrap_or(&rp);
        let theta = full
            .get("rope_theta")
            .filter(|v| !v.is_null())
            .ok_or_else(|| cfg("missing rope_theta"))?;
        let theta = as_f32(theta)
            .ok_or_else(|| cfg(format!("rope_theta must be a number, found {theta}")))?;
        w.add_kv(k("rope.freq_base"), Value::F32(theta));
        w.add_kv("general.file_type", Value::U32(file_type));
        let sw = match hp.get("sliding_window") {
            None => 0,
            Some(v) => hparams::as_u32(v).ok_or_else(|| {
                cfg(format!(
                    "sliding_window must be a non-negative integer, found {v}"
                ))
            })?,
        };
        w.add_kv(k("attention.sliding_window"), Value::U32(sw));
        Ok(())
    }

    fn vocab_kind(&self, model: &HfModel) -> Result<VocabKind> {
        Ok(
            if gpt2_tokenizer(model) || !model.files.contains_key("tokenizer.model") {
                VocabKind::Bpe
            } else {
                VocabKind::Phi3SentencePiece
            },
        )
    }
}
