//! SentencePiece vocabularies (`tokenizer.ggml.model = "llama"`): tokens, scores and token
//! types exactly as the reference writes them.
//!
//! Three readers, as in llama.cpp's converter:
//! - [`from_model`]: `tokenizer.model` (`_create_vocab_sentencepiece`), then `added_tokens.json`
//!   and `tokenizer_config.json`'s `added_tokens_decoder`;
//! - [`phi3_from_model`]: `Phi3MiniModel.set_vocab`'s variant of the same (no range checks on
//!   the config's added tokens, no "looks special" rule, `tokenizer.json`'s added tokens too);
//! - [`from_tokenizer_json`]: an HF `tokenizer.json` of SentencePiece style, BPE with byte
//!   fallback (`_set_vocab_llama_hf` / gguf-py's `LlamaHfVocab`), scores all -1000.
//!
//! [`write`] adds the KVs: model `llama`, pre `default`, tokens, scores, types, then gguf-py's
//! `SpecialVocab` without merges.

use std::path::Path;

use serde_json::{Map, Value as Json};

use super::bpe_vocab::{HfTokenizer, looks_special};
use super::error::{ConvertError, Result, file_err};
use super::hparams::{Hparams, as_u32};
use super::json::parse_json_file;
use super::special_vocab::SpecialVocab;
use crate::convert::hf::HfModel;
use crate::formats::gguf::{Array, GgufWriter, Value, token_type};
use crate::formats::sentencepiece::{PieceType, SpmModel};

/// A SentencePiece vocabulary as written to the GGUF.
#[derive(Debug, Clone, Default)]
pub struct SpmVocab {
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type`.
    pub types: Vec<i32>,
}

impl SpmVocab {
    /// `vocab_size` placeholders: `[PAD<i>]`, score -10000, unused.
    fn padded(vocab_size: usize) -> SpmVocab {
        SpmVocab {
            tokens: (0..vocab_size).map(|i| format!("[PAD{i}]")).collect(),
            scores: vec![-10000.0; vocab_size],
            types: vec![token_type::UNUSED; vocab_size],
        }
    }

    fn set(&mut self, id: usize, token: &str, score: f32, ty: i32) {
        self.tokens[id] = token.to_string();
        self.scores[id] = score;
        self.types[id] = ty;
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Parses `tokenizer.model`, `None` when the folder has none.
pub fn load_model(model: &HfModel) -> Result<Option<SpmModel>> {
    let Some(bytes) = model.files.get("tokenizer.model") else {
        return Ok(None);
    };
    SpmModel::parse(bytes, Path::new("tokenizer.model"))
        .map(Some)
        .map_err(|e| ConvertError::Tokenizer(e.to_string()))
}

/// The llama.cpp token type of a SentencePiece piece (`IsUnknown`, `IsControl`, `IsUnused`,
/// `IsByte`, else normal: user-defined pieces count as normal).
fn piece_type(kind: PieceType) -> i32 {
    match kind {
        PieceType::Unknown => token_type::UNKNOWN,
        PieceType::Control => token_type::CONTROL,
        PieceType::Unused => token_type::UNUSED,
        PieceType::Byte => token_type::BYTE,
        PieceType::Normal | PieceType::UserDefined => token_type::NORMAL,
    }
}

/// `vocab_size` of the reference: the config's (a 0 or absent value falls back to the model's).
fn vocab_size(hp: &Hparams, keys: &[&str], sp: &SpmModel) -> Result<usize> {
    match hp.find(keys) {
        Some(v) => {
            let n = as_u32(v).ok_or_else(|| {
                super::error::cfg(format!(
                    "vocab_size must be a non-negative integer, found {v}"
                ))
            })?;
            Ok(if n == 0 { sp.len() } else { n as usize })
        }
        None => Ok(sp.len()),
    }
}

/// The number of tokens `_create_vocab_sentencepiece` returns for this model.
pub fn sentencepiece_vocab_size(hp: &Hparams, sp: &SpmModel) -> Result<usize> {
    vocab_size(hp, &["vocab_size_per_layer_input", "vocab_size"], sp)
}

fn base_vocab(sp: &SpmModel, vocab_size: usize, warn_out_of_range: bool) -> SpmVocab {
    let mut v = SpmVocab::padded(vocab_size);
    for (id, p) in sp.pieces.iter().enumerate() {
        if id >= vocab_size {
            if warn_out_of_range {
                tracing::warn!(
                    "tokenizer.model: ignoring pieces from id {id}: config vocab_size is {vocab_size}"
                );
            }
            break;
        }
        v.set(id, &p.text, p.score, piece_type(p.kind));
    }
    v
}

/// `added_tokens.json`: token → id, in file order.
fn added_tokens_json(model: &HfModel) -> Result<Vec<(String, u64)>> {
    let Some(map) = parse_json_file(model, "added_tokens.json")? else {
        return Ok(Vec::new());
    };
    map.into_iter()
        .map(|(k, v)| {
            let id = v.as_u64().ok_or_else(|| {
                file_err(
                    "added_tokens.json",
                    format!("the id of {k:?} must be a non-negative integer, found {v}"),
                )
            })?;
            Ok((k, id))
        })
        .collect()
}

/// One `added_tokens_decoder` / `added_tokens` entry: id, content, special.
struct Added {
    id: u64,
    content: String,
    special: bool,
}

fn added_entry(file: &str, id: u64, data: &Json) -> Result<Added> {
    let content = data
        .get("content")
        .and_then(Json::as_str)
        .ok_or_else(|| file_err(file, format!("added token {id} has no \"content\" string")))?;
    Ok(Added {
        id,
        content: content.to_string(),
        special: data.get("special").is_some_and(super::json::truthy),
    })
}

/// `tokenizer_config.json`'s `added_tokens_decoder`, in file order.
fn added_tokens_decoder(tc: Option<&Map<String, Json>>) -> Result<Vec<Added>> {
    let Some(dec) = tc.and_then(|t| t.get("added_tokens_decoder")) else {
        return Ok(Vec::new());
    };
    let Json::Object(dec) = dec else {
        return Err(file_err(
            "tokenizer_config.json",
            "added_tokens_decoder must be an object of id → token",
        ));
    };
    dec.iter()
        .map(|(k, data)| {
            let id: u64 = k.parse().map_err(|_| {
                file_err(
                    "tokenizer_config.json",
                    format!("added_tokens_decoder key {k:?} is not a token id"),
                )
            })?;
            added_entry("tokenizer_config.json", id, data)
        })
        .collect()
}

/// `_create_vocab_sentencepiece` for `tokenizer.model`.
pub fn from_model(model: &HfModel, hp: &Hparams, sp: &SpmModel) -> Result<SpmVocab> {
    let n = sentencepiece_vocab_size(hp, sp)?;
    let mut v = base_vocab(sp, n, true);
    for (token, id) in added_tokens_json(model)? {
        if id >= n as u64 {
            tracing::warn!("added_tokens.json: ignoring token {id}: vocab_size is {n}");
            continue;
        }
        v.set(id as usize, &token, -1000.0, token_type::USER_DEFINED);
    }
    let tc = parse_json_file(model, "tokenizer_config.json")?;
    for a in added_tokens_decoder(tc.as_ref())? {
        if a.id >= n as u64 {
            tracing::warn!(
                "tokenizer_config.json: ignoring added token {}: vocab_size is {n}",
                a.id
            );
            continue;
        }
        let (token, ty) = if a.special || looks_special(&a.content) {
            (a.content, token_type::CONTROL)
        } else {
            // user-defined spaces are pre-normalized
            (a.content.replace('\u{2581}', " "), token_type::USER_DEFINED)
        };
        v.set(a.id as usize, &token, -1000.0, ty);
    }
    Ok(v)
}

/// `Phi3MiniModel.set_vocab`: like [`from_model`], but the config's added tokens are taken as
/// they are (special → control, else user-defined), and `tokenizer.json`'s added tokens too.
/// The reference crashes (IndexError) on an added token outside the vocabulary; tinylm says
/// which one.
pub fn phi3_from_model(model: &HfModel, hp: &Hparams, sp: &SpmModel) -> Result<SpmVocab> {
    let n = match hp.get("vocab_size") {
        Some(_) => vocab_size(hp, &["vocab_size"], sp)?,
        None => sp.len(),
    };
    let mut v = base_vocab(sp, n, false);
    for (token, id) in added_tokens_json(model)? {
        if id >= n as u64 {
            continue;
        }
        v.set(id as usize, &token, -1000.0, token_type::USER_DEFINED);
    }
    let tc = parse_json_file(model, "tokenizer_config.json")?;
    let mut added = added_tokens_decoder(tc.as_ref())?
        .into_iter()
        .map(|a| ("tokenizer_config.json", a))
        .collect::<Vec<_>>();
    if let Some(tj) = parse_json_file(model, "tokenizer.json")?
        && let Some(list) = tj.get("added_tokens").and_then(Json::as_array)
    {
        for data in list {
            let id = data.get("id").and_then(Json::as_u64).ok_or_else(|| {
                file_err("tokenizer.json", "an added token has no integer \"id\"")
            })?;
            added.push(("tokenizer.json", added_entry("tokenizer.json", id, data)?));
        }
    }
    for (file, a) in added {
        if a.id >= n as u64 {
            return Err(file_err(
                file,
                format!(
                    "added token {:?} has id {}, outside the vocabulary of {n} tokens (config.json vocab_size)",
                    a.content, a.id
                ),
            ));
        }
        let ty = if a.special {
            token_type::CONTROL
        } else {
            token_type::USER_DEFINED
        };
        v.set(a.id as usize, &a.content, -1000.0, ty);
    }
    Ok(v)
}

/// Whether `tokenizer.json` is of SentencePiece style in the reference's sense (`LlamaHfVocab`):
/// BPE with byte fallback and a `Sequence` decoder, not a Llama 3 style BPE.
pub fn is_llama_hf(tj: &Map<String, Json>) -> bool {
    let m = tj.get("model").unwrap_or(&Json::Null);
    let is_bpe = m.get("type").and_then(Json::as_str) == Some("BPE");
    let llama3 = is_bpe
        && m.get("ignore_merges")
            .and_then(Json::as_bool)
            .unwrap_or(false)
        && !m
            .get("byte_fallback")
            .and_then(Json::as_bool)
            .unwrap_or(true);
    let seq_decoder = tj
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Json::as_str)
        == Some("Sequence");
    !llama3
        && is_bpe
        && m.get("byte_fallback")
            .and_then(Json::as_bool)
            .unwrap_or(false)
        && seq_decoder
}

/// [`is_llama_hf`] straight from `tokenizer.json`'s bytes, reading only the keys it needs:
/// the vocabulary and merges (most of the file) are skipped instead of built as JSON values.
/// `None` when the file does not have the expected shape (invalid JSON, a `model` or `decoder`
/// that is not an object): the caller then parses it whole, for the same answer or error.
pub fn is_llama_hf_bytes(bytes: &[u8]) -> Option<bool> {
    const LEAF: &[Key] = &[];
    const TOP: &[Key] = &[
        Key(
            "model",
            &[
                Key("type", LEAF),
                Key("ignore_merges", LEAF),
                Key("byte_fallback", LEAF),
            ],
        ),
        Key("decoder", &[Key("type", LEAF)]),
    ];
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let head = serde::de::DeserializeSeed::deserialize(Pick(TOP), &mut de).ok()?;
    de.end().ok()?;
    Some(is_llama_hf(&head))
}

/// A key [`Pick`] keeps, with the keys it keeps inside its value (none: the value whole).
struct Key(&'static str, &'static [Key]);

/// Reads a JSON object keeping only the listed keys (as [`serde_json`]'s own map does, the last
/// of duplicate keys wins) and skipping the other values unparsed.
struct Pick(&'static [Key]);

impl<'de> serde::de::DeserializeSeed<'de> for Pick {
    type Value = Map<String, Json>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pick {
    type Value = Map<String, Json>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = a.next_key::<String>()? {
            match self.0.iter().find(|key| key.0 == k) {
                Some(Key(_, [])) => {
                    let v: Json = a.next_value()?;
                    out.insert(k, v);
                }
                Some(Key(_, sub)) => {
                    let v = a.next_value_seed(Pick(sub))?;
                    out.insert(k, Json::Object(v));
                }
                None => {
                    a.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// `_set_vocab_llama_hf`: the tokens of an SPM-style `tokenizer.json` through transformers'
/// fast tokenizer: base vocabulary (byte tokens `<0xNN>`, special tokens control), then added
/// tokens above it; every score is -1000.
pub fn from_tokenizer_json(
    model: &HfModel,
    hp: &Hparams,
    tj: &Map<String, Json>,
) -> Result<SpmVocab> {
    let tok = HfTokenizer::from_json(Json::Object(tj.clone()), model, hp)?;
    let inner = tok.inner();
    let base = inner.get_vocab_size(false);
    let vocab = inner.get_vocab(true);
    let mut reverse: Vec<Option<&str>> = vec![
        None;
        vocab
            .values()
            .max()
            .map_or(0, |m| *m as usize + 1)
            .max(base)
    ];
    for (t, &id) in &vocab {
        reverse[id as usize] = Some(t.as_str());
    }
    let specials = tok.all_special_tokens();
    let special_ids: Vec<u32> = specials
        .iter()
        .filter_map(|s| vocab.get(s.as_str()).copied())
        .collect();
    let mut added: Vec<(u32, String)> = inner
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(id, _)| *id as usize >= base)
        .map(|(id, t)| (id, t.content))
        .collect();
    added.sort();
    let added_ids: Vec<u32> = added.iter().map(|(id, _)| *id).collect();

    let is_byte = |t: &str| {
        let b = t.as_bytes();
        b.len() == 6
            && t.starts_with("<0x")
            && t.ends_with('>')
            && b[3].is_ascii_hexdigit()
            && b[4].is_ascii_hexdigit()
    };
    let mut v = SpmVocab::default();
    for id in 0..base as u32 {
        if added_ids.contains(&id) {
            continue;
        }
        let text = reverse.get(id as usize).copied().flatten().ok_or_else(|| {
            file_err(
                "tokenizer.json",
                format!("token id {id} is missing from the vocabulary (ids must be contiguous)"),
            )
        })?;
        let ty = if is_byte(text) {
            token_type::BYTE
        } else if special_ids.contains(&id) {
            token_type::CONTROL
        } else {
            token_type::NORMAL
        };
        v.tokens.push(text.to_string());
        v.scores.push(-1000.0);
        v.types.push(ty);
    }
    for (_, text) in added {
        let ty = if specials.contains(&text) {
            token_type::CONTROL
        } else {
            token_type::USER_DEFINED
        };
        v.tokens.push(text);
        v.scores.push(-1000.0);
        v.types.push(ty);
    }
    Ok(v)
}

/// Writes the vocabulary KVs and gguf-py's `SpecialVocab` (no merges) like
/// `_set_vocab_sentencepiece`.
pub fn write(v: &SpmVocab, model: &HfModel, w: &mut GgufWriter) -> Result<()> {
    w.add_kv("tokenizer.ggml.model", Value::str("llama"));
    w.add_kv("tokenizer.ggml.pre", Value::str("default"));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(&v.tokens)),
    );
    w.add_kv(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32(v.scores.clone())),
    );
    w.add_kv(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(v.types.clone())),
    );
    let tj = parse_json_file(model, "tokenizer.json")?;
    let sv = SpecialVocab::load(model, tj.as_ref(), false, Some(v.len()))?;
    sv.add_to(w);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_light_read_of_tokenizer_json_answers_like_the_whole_parse_or_not_at_all() {
        let spm = r#"{"model": {"type": "BPE", "byte_fallback": true, "vocab": {"a": 0}},
                      "decoder": {"type": "Sequence", "decoders": []}}"#;
        let cases = [
            spm.to_string(),
            spm.replace("Sequence", "ByteLevel"),
            spm.replace(r#""byte_fallback": true"#, r#""byte_fallback": false"#),
            spm.replace(r#""byte_fallback": true"#, r#""ignore_merges": true"#),
            spm.replace(r#""type": "BPE""#, r#""type": "Unigram""#),
            // Null reads as absent; the last of duplicate keys wins.
            spm.replace(r#""byte_fallback": true"#, r#""byte_fallback": null"#),
            spm.replace(r#"{"model""#, r#"{"model": {"type": "Unigram"}, "model""#),
            spm.replace(
                r#""decoder": {"type": "Sequence", "decoders": []}"#,
                r#""x": [{"type": "BPE"}]"#,
            ),
        ];
        for c in &cases {
            let whole: Map<String, Json> = serde_json::from_str(c).unwrap();
            assert_eq!(
                is_llama_hf_bytes(c.as_bytes()),
                Some(is_llama_hf(&whole)),
                "{c}"
            );
        }
        assert_eq!(is_llama_hf_bytes(spm.as_bytes()), Some(true));
        // Shapes the light read refuses: the caller's whole parse decides.
        for bad in [
            r#"{"model": ["BPE", true], "decoder": {"type": "Sequence"}}"#,
            r#"{"model": {"type": "BPE"}, "decoder": null}"#,
            r#"{"model": {"type": "BPE"}, "decoder": ["Sequence"]}"#,
            r#"[{"model": {"type": "BPE"}}]"#,
            r#"{"model": {"type": "BPE"}} trailing"#,
            r#"{"model": {"type": "BPE""#,
        ] {
            assert_eq!(is_llama_hf_bytes(bad.as_bytes()), None, "{bad}");
        }
        // A real file: tinylm's own byte-level tokenizer.
        let real = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/infer/tokenizer.json"
        ))
        .unwrap();
        let whole: Map<String, Json> = serde_json::from_slice(&real).unwrap();
        assert_eq!(is_llama_hf_bytes(&real), Some(is_llama_hf(&whole)));
    }
}
