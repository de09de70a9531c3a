//! `config.json` as the reference converter sees it.
//!
//! The reference loads `config.json` through transformers' `AutoConfig(...).to_dict()`, so the
//! config class's defaults for missing fields leak into the GGUF (notes/llama-cpp.md §2.2). This
//! module re-creates that dict for the config classes tinylm converts (gpt2, llama, mistral, qwen2,
//! qwen3; transformers 4.57) and falls back to the raw JSON for unknown `model_type`s, as the
//! reference does when `AutoConfig` fails.

use serde_json::{Map, Value as Json, json};

use super::error::{Result, cfg};

/// The hyperparameter dict (`self.hparams` of the reference).
#[derive(Debug, Clone)]
pub struct Hparams {
    map: Map<String, Json>,
    /// The raw `config.json` (used where the reference reads the file directly).
    pub raw: Map<String, Json>,
}

/// Defaults of the transformers config classes, for the keys the converter reads.
fn class_defaults(model_type: &str) -> Option<Vec<(&'static str, Json)>> {
    let common = [
        ("max_length", json!(20)),
        ("tie_word_embeddings", json!(true)),
    ];
    let mut v: Vec<(&'static str, Json)> = match model_type {
        "gpt2" => vec![
            ("vocab_size", json!(50257)),
            ("n_positions", json!(1024)),
            ("n_embd", json!(768)),
            ("n_layer", json!(12)),
            ("n_head", json!(12)),
            ("n_inner", Json::Null),
            ("layer_norm_epsilon", json!(1e-5)),
            ("bos_token_id", json!(50256)),
            ("eos_token_id", json!(50256)),
        ],
        "llama" => vec![
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
        ],
        "mistral" => vec![
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
        ],
        "qwen2" | "qwen3" => {
            let mut v = vec![
                ("vocab_size", json!(151936)),
                ("max_position_embeddings", json!(32768)),
                ("hidden_size", json!(4096)),
                ("intermediate_size", json!(22016)),
                ("num_hidden_layers", json!(32)),
                ("num_attention_heads", json!(32)),
                ("num_key_value_heads", Json::Null),
                ("rms_norm_eps", json!(1e-6)),
                ("rope_theta", json!(10000.0)),
                ("rope_scaling", Json::Null),
                ("tie_word_embeddings", json!(false)),
                ("bos_token_id", Json::Null),
                ("eos_token_id", Json::Null),
            ];
            if model_type == "qwen3" {
                v.push(("head_dim", json!(128)));
            }
            v
        }
        _ => return None,
    };
    for (k, val) in common {
        if !v.iter().any(|(key, _)| *key == k) {
            v.push((k, val));
        }
    }
    Some(v)
}

/// `attribute_map` of GPT2Config: config.json may use the generic names.
const GPT2_ATTRIBUTE_MAP: &[(&str, &str)] = &[
    ("hidden_size", "n_embd"),
    ("max_position_embeddings", "n_positions"),
    ("num_attention_heads", "n_head"),
    ("num_hidden_layers", "n_layer"),
];

impl Hparams {
    /// Parses `config.json` and applies the config class's defaults.
    pub fn parse(bytes: &[u8]) -> Result<Hparams> {
        let raw: Json =
            serde_json::from_slice(bytes).map_err(|e| cfg(format!("invalid JSON: {e}")))?;
        let Json::Object(raw) = raw else {
            return Err(cfg("not a JSON object"));
        };
        let model_type = raw.get("model_type").and_then(Json::as_str).unwrap_or("");
        let Some(defaults) = class_defaults(model_type) else {
            return Ok(Hparams {
                map: raw.clone(),
                raw,
            });
        };
        let mut map = Map::new();
        for (k, v) in defaults {
            map.insert(k.to_string(), v);
        }
        for (k, v) in &raw {
            let key = if model_type == "gpt2" {
                GPT2_ATTRIBUTE_MAP
                    .iter()
                    .find(|(from, _)| from == k)
                    .map_or(k.as_str(), |(_, to)| to)
            } else {
                k.as_str()
            };
            map.insert(key.to_string(), v.clone());
        }
        // __init__ post-processing of the config classes.
        if matches!(model_type, "llama" | "mistral" | "qwen2" | "qwen3")
            && map.get("num_key_value_heads").is_none_or(Json::is_null)
        {
            let heads = map
                .get("num_attention_heads")
                .cloned()
                .unwrap_or(Json::Null);
            map.insert("num_key_value_heads".into(), heads);
        }
        if model_type == "llama" && map.get("head_dim").is_none_or(Json::is_null) {
            let hidden = map.get("hidden_size").and_then(Json::as_u64);
            let heads = map.get("num_attention_heads").and_then(Json::as_u64);
            if let (Some(h), Some(n)) = (hidden, heads)
                && n > 0
            {
                map.insert("head_dim".into(), json!(h / n));
            }
        }
        if matches!(model_type, "llama" | "qwen2" | "qwen3")
            && let Some(Json::Object(rs)) = map.get_mut("rope_scaling")
            && let Some(t) = rs.get("type").cloned()
        {
            rs.insert("rope_type".into(), t);
        }
        Ok(Hparams { map, raw })
    }

    /// Like `find_hparam`: the value of the first key present (a present `null` counts, and
    /// yields `None`).
    pub fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter()
            .find_map(|k| self.map.get(*k))
            .filter(|v| !v.is_null())
    }

    /// The value of `key`, `None` when absent or null.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` is present (even if null).
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A required unsigned integer from the first present key.
    pub fn req_u32(&self, keys: &[&str]) -> Result<u32> {
        let v = self
            .find(keys)
            .ok_or_else(|| cfg(format!("missing {}", keys.join(" / "))))?;
        as_u32(v).ok_or_else(|| {
            cfg(format!(
                "{} must be a non-negative integer, found {v}",
                keys[0]
            ))
        })
    }

    /// An optional unsigned integer from the first present key.
    pub fn opt_u32(&self, keys: &[&str]) -> Result<Option<u32>> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => as_u32(v).map(Some).ok_or_else(|| {
                cfg(format!(
                    "{} must be a non-negative integer, found {v}",
                    keys[0]
                ))
            }),
        }
    }

    /// An optional float from the first present key (as f32, like gguf-py's `add_float32`).
    pub fn opt_f32(&self, keys: &[&str]) -> Result<Option<f32>> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => as_f32(v)
                .map(Some)
                .ok_or_else(|| cfg(format!("{} must be a number, found {v}", keys[0]))),
        }
    }
}

/// A JSON number as u32, if it is an integer in range (Python's `struct.pack("<I")` rule).
pub fn as_u32(v: &Json) -> Option<u32> {
    match v {
        Json::Bool(b) => Some(u32::from(*b)),
        _ => v.as_u64().and_then(|x| u32::try_from(x).ok()),
    }
}

/// A JSON number as f32 (round to nearest even, like `struct.pack("<f")`).
pub fn as_f32(v: &Json) -> Option<f32> {
    match v {
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_defaults_leak_like_autoconfig() {
        let hp = Hparams::parse(
            br#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}"#,
        )
        .unwrap();
        assert_eq!(hp.get("head_dim"), Some(&json!(16)));
        assert_eq!(hp.get("num_key_value_heads"), Some(&json!(4)));
        assert_eq!(hp.get("max_position_embeddings"), Some(&json!(2048)));
        assert_eq!(hp.opt_f32(&["rms_norm_eps"]).unwrap(), Some(1e-6));
    }

    #[test]
    fn mistral_keeps_head_dim_none_and_defaults_kv_heads() {
        let hp = Hparams::parse(br#"{"model_type": "mistral"}"#).unwrap();
        assert_eq!(hp.get("head_dim"), None);
        assert_eq!(hp.get("num_key_value_heads"), Some(&json!(8)));
        let hp = Hparams::parse(
            br#"{"model_type": "mistral", "num_key_value_heads": null, "num_attention_heads": 6}"#,
        )
        .unwrap();
        assert_eq!(hp.get("num_key_value_heads"), Some(&json!(6)));
    }

    #[test]
    fn gpt2_attribute_map_and_find_order() {
        let hp =
            Hparams::parse(br#"{"model_type": "gpt2", "hidden_size": 32, "num_hidden_layers": 3}"#)
                .unwrap();
        assert_eq!(hp.get("n_embd"), Some(&json!(32)));
        assert_eq!(
            hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer"])
                .unwrap(),
            3
        );
        assert!(hp.get("n_ctx").is_none());
        // a present null stops the search, as find_hparam does
        let hp = Hparams::parse(br#"{"model_type": "xyz", "a": null, "b": 3}"#).unwrap();
        assert_eq!(hp.find(&["a", "b"]), None);
    }

    #[test]
    fn unknown_model_type_uses_raw_config() {
        let hp = Hparams::parse(br#"{"model_type": "falcon", "hidden_size": 8}"#).unwrap();
        assert!(hp.get("max_length").is_none());
        assert!(Hparams::parse(b"[1]").is_err());
        assert!(Hparams::parse(b"{").is_err());
    }
}
