//! `config.json` as the reference converter sees it.
//!
//! The reference loads `config.json` through transformers' `AutoConfig(...).to_dict()`, so the
//! config class's defaults for missing fields leak into the GGUF (`docs/hf-to-gguf.md`). This
//! module re-creates that dict for the config classes the architectures declare
//! ([`super::arch::ConfigClass`]: defaults, `attribute_map`, `__init__` post-processing, as of
//! transformers 4.57) and falls back to the raw JSON for unknown `model_type`s, as the
//! reference does when `AutoConfig` fails.

use serde_json::{Map, Value as Json, json};

use super::arch::config_class;
use super::error::{Result, cfg};

/// The hyperparameter dict (`self.hparams` of the reference).
#[derive(Debug, Clone)]
pub struct Hparams {
    map: Map<String, Json>,
    /// The raw `config.json` (used where the reference reads the file directly).
    pub raw: Map<String, Json>,
}

/// Defaults every `PretrainedConfig` has, for the keys the converter reads.
fn common_defaults() -> [(&'static str, Json); 2] {
    [
        ("max_length", json!(20)),
        ("tie_word_embeddings", json!(true)),
    ]
}

impl Hparams {
    /// Parses `config.json` and applies the config class's defaults.
    pub fn parse(bytes: &[u8]) -> Result<Hparams> {
        let raw: Json =
            serde_json::from_slice(bytes).map_err(|e| cfg(format!("invalid JSON: {e}")))?;
        let Json::Object(raw) = raw else {
            return Err(cfg("not a JSON object"));
        };
        let model_type = raw.get("model_type").and_then(Json::as_str).unwrap_or("");
        let Some(class) = config_class(model_type) else {
            return Ok(Hparams {
                map: raw.clone(),
                raw,
            });
        };
        let mut defaults = (class.defaults)();
        for (k, val) in common_defaults() {
            if !defaults.iter().any(|(key, _)| *key == k) {
                defaults.push((k, val));
            }
        }
        let mut map = Map::new();
        for (k, v) in defaults {
            map.insert(k.to_string(), v);
        }
        for (k, v) in &raw {
            let key = class
                .attribute_map
                .iter()
                .find(|(from, _)| from == k)
                .map_or(k.as_str(), |(_, to)| to);
            map.insert(key.to_string(), v.clone());
        }
        // `__init__` post-processing of the config class.
        (class.post_init)(&mut map);
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

/// `__init__` of Llama-like configs: `num_key_value_heads` defaults to `num_attention_heads`.
pub fn default_kv_heads(map: &mut Map<String, Json>) {
    if map.get("num_key_value_heads").is_none_or(Json::is_null) {
        let heads = map
            .get("num_attention_heads")
            .cloned()
            .unwrap_or(Json::Null);
        map.insert("num_key_value_heads".into(), heads);
    }
}

/// `LlamaConfig.__init__`: `head_dim` defaults to `hidden_size / num_attention_heads`.
pub fn default_head_dim(map: &mut Map<String, Json>) {
    if map.get("head_dim").is_none_or(Json::is_null) {
        let hidden = map.get("hidden_size").and_then(Json::as_u64);
        let heads = map.get("num_attention_heads").and_then(Json::as_u64);
        if let (Some(h), Some(n)) = (hidden, heads)
            && n > 0
        {
            map.insert("head_dim".into(), json!(h / n));
        }
    }
}

/// Backward compatibility of the rope config: `rope_scaling.type` is mirrored to `rope_type`.
pub fn rope_type_from_type(map: &mut Map<String, Json>) {
    if let Some(Json::Object(rs)) = map.get_mut("rope_scaling")
        && let Some(t) = rs.get("type").cloned()
    {
        rs.insert("rope_type".into(), t);
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
