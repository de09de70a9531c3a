//! `config.json` and `generation_config.json` exactly as transformers' `save_pretrained` writes
//! them for a `GPT2Config` / `LlamaConfig` built from tiny-lm's hyper-parameters.
//!
//! transformers writes `to_diff_dict()`: every architecture-specific attribute, plus the common
//! `PretrainedConfig` attributes whose value differs from the defaults. That is why GPT-2's
//! config has no `tie_word_embeddings` (true is the default) while Llama's does.

use serde_json::{Map, Value, json};

use super::arch::architecture;
use super::config::ModelYaml;
use super::pyjson;
use super::tokenizer::SpecialIds;
use super::weights::ModelFacts;
use crate::formats::DType;

/// The transformers release whose `save_pretrained` output these files reproduce.
pub const TRANSFORMERS_VERSION: &str = "4.57.6";

fn torch_dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "float32",
    }
}

fn insert_ids(map: &mut Map<String, Value>, ids: &SpecialIds) {
    for (k, v) in [
        ("bos_token_id", ids.bos),
        ("eos_token_id", ids.eos),
        ("pad_token_id", ids.pad),
    ] {
        if let Some(id) = v {
            map.insert(k.into(), json!(id));
        }
    }
}

/// `config.json` bytes.
pub fn config_json(m: &ModelYaml, f: &ModelFacts, ids: &SpecialIds, dtype: DType) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("dtype".into(), json!(torch_dtype_name(dtype)));
    c.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    c.insert("vocab_size".into(), json!(f.vocab));
    c.insert("initializer_range".into(), json!(0.02));
    c.insert("use_cache".into(), json!(true));
    insert_ids(&mut c, ids);
    architecture(f.arch).config_json(m, f, &mut c);
    (pyjson::dumps(&Value::Object(c), true) + "\n").into_bytes()
}

/// `generation_config.json` bytes (`GenerationConfig.from_model_config`).
pub fn generation_config_json(ids: &SpecialIds) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("_from_model_config".into(), json!(true));
    insert_ids(&mut c, ids);
    c.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    (pyjson::dumps(&Value::Object(c), true) + "\n").into_bytes()
}
