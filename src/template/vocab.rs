//! The tokenizer facts template detection and lint need, read from a GGUF or an HF folder.

use std::collections::HashMap;
use std::path::Path;

use crate::formats::gguf::{Array, GgufFile, Value};
use crate::{Error, IoContext, Result};

use crate::formats::gguf::token_type;

/// A model's vocabulary and tokenizer metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), …
    pub model: String,
    /// Token texts as stored (byte-level BPE tokens use GPT-2's byte-to-unicode alphabet).
    pub tokens: Vec<String>,
    /// Token types, parallel to `tokens` (empty when the file has none).
    pub token_types: Vec<i32>,
    /// Number of BPE merges; `None` when the key is missing.
    pub merges: Option<usize>,
    /// BOS token id.
    pub bos_id: Option<u64>,
    /// EOS token id.
    pub eos_id: Option<u64>,
    /// End-of-turn token id (`tokenizer.ggml.eot_token_id`).
    pub eot_id: Option<u64>,
    /// The Jinja chat template (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// Rows of the token embedding matrix (`token_embd.weight`), when known.
    pub embedding_rows: Option<u64>,
    /// Rows of the output projection (`output.weight`), when present.
    pub output_rows: Option<u64>,
    index: HashMap<String, usize>,
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(Array::String(items)) => Some(
            items
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
        ),
        _ => None,
    }
}

fn ints(v: Option<&Value>) -> Option<Vec<i32>> {
    match v? {
        Value::Array(Array::I32(items)) => Some(items.clone()),
        Value::Array(Array::U32(items)) => Some(items.iter().map(|&x| x as i32).collect()),
        _ => None,
    }
}

impl Vocab {
    /// Builds a vocabulary from its parts (tests and callers with their own sources).
    pub fn new(model: &str, tokens: Vec<String>, token_types: Vec<i32>) -> Vocab {
        let mut v = Vocab {
            model: model.to_string(),
            tokens,
            token_types,
            ..Default::default()
        };
        v.reindex();
        v
    }

    fn reindex(&mut self) {
        self.index = self
            .tokens
            .iter()
            .enumerate()
            .rev()
            .map(|(i, t)| (t.clone(), i))
            .collect();
    }

    /// Reads the tokenizer metadata and embedding shapes of a GGUF.
    pub fn from_gguf(g: &GgufFile) -> Vocab {
        let get = |k: &str| g.get(k);
        let mut v = Vocab {
            model: get("tokenizer.ggml.model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            tokens: strings(get("tokenizer.ggml.tokens")).unwrap_or_default(),
            token_types: ints(get("tokenizer.ggml.token_type")).unwrap_or_default(),
            merges: get("tokenizer.ggml.merges")
                .and_then(Value::as_array)
                .map(Array::len),
            bos_id: get("tokenizer.ggml.bos_token_id").and_then(Value::as_u64),
            eos_id: get("tokenizer.ggml.eos_token_id").and_then(Value::as_u64),
            eot_id: get("tokenizer.ggml.eot_token_id").and_then(Value::as_u64),
            chat_template: get("tokenizer.chat_template")
                .and_then(Value::as_str)
                .map(str::to_string),
            embedding_rows: g
                .tensor("token_embd.weight")
                .and_then(|t| t.ne.get(1).copied()),
            output_rows: g.tensor("output.weight").and_then(|t| t.ne.get(1).copied()),
            index: HashMap::new(),
        };
        v.reindex();
        v
    }

    /// Opens a GGUF and reads its vocabulary.
    pub fn open_gguf(path: &Path) -> Result<Vocab> {
        Ok(Vocab::from_gguf(&GgufFile::open(path)?))
    }

    /// Reads an HF folder: `tokenizer.json` (vocab, merges, added tokens), `tokenizer_config.json`
    /// (chat template, bos/eos), `chat_template.jinja`/`chat_template.json`, `config.json`
    /// (`vocab_size` as the embedding rows).
    pub fn from_hf_dir(dir: &Path) -> Result<Vocab> {
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let p = dir.join(name);
            if !p.exists() {
                return Ok(None);
            }
            let text = crate::fsutil::input::read_to_string(&p).with_path(&p)?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::format(&p, format!("not valid JSON: {e}")))
        };
        let mut v = Vocab::default();
        if let Some(tok) = read_json("tokenizer.json")? {
            let model = &tok["model"];
            v.model = match model["type"].as_str() {
                Some("BPE") => "gpt2",
                Some("Unigram") => "llama",
                Some("WordPiece") => "bert",
                _ => "",
            }
            .to_string();
            let mut pairs: Vec<(String, usize)> = model["vocab"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, id)| Some((k.clone(), id.as_u64()? as usize)))
                        .collect()
                })
                .unwrap_or_default();
            let mut types = HashMap::new();
            for t in tok["added_tokens"].as_array().into_iter().flatten() {
                if let (Some(c), Some(id)) = (t["content"].as_str(), t["id"].as_u64()) {
                    pairs.push((c.to_string(), id as usize));
                    let ty = if t["special"].as_bool() == Some(true) {
                        token_type::CONTROL
                    } else {
                        token_type::USER_DEFINED
                    };
                    types.insert(id as usize, ty);
                }
            }
            let n = pairs.iter().map(|p| p.1 + 1).max().unwrap_or(0);
            v.tokens = vec![String::new(); n];
            v.token_types = vec![token_type::NORMAL; n];
            for (t, id) in pairs {
                if let Some(slot) = v.tokens.get_mut(id) {
                    *slot = t;
                }
            }
            for (id, ty) in types {
                if let Some(slot) = v.token_types.get_mut(id) {
                    *slot = ty;
                }
            }
            v.merges = model["merges"].as_array().map(Vec::len);
        }
        v.reindex();
        if let Some(cfg) = read_json("tokenizer_config.json")? {
            v.chat_template = match &cfg["chat_template"] {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Array(list) => list
                    .iter()
                    .find(|t| t["name"] == "default")
                    .or(list.first())
                    .and_then(|t| t["template"].as_str())
                    .map(str::to_string),
                _ => None,
            };
            let id_of = |key: &str| -> Option<u64> {
                let s = cfg[key].as_str().or_else(|| cfg[key]["content"].as_str())?;
                v.token_id(s).map(|i| i as u64)
            };
            let (bos, eos) = (id_of("bos_token"), id_of("eos_token"));
            v.bos_id = bos;
            v.eos_id = eos;
        }
        if v.chat_template.is_none() {
            let p = dir.join("chat_template.jinja");
            if p.exists() {
                v.chat_template = Some(crate::fsutil::input::read_to_string(&p).with_path(&p)?);
            } else if let Some(j) = read_json("chat_template.json")? {
                v.chat_template = j["chat_template"].as_str().map(str::to_string);
            }
        }
        if let Some(cfg) = read_json("config.json")? {
            v.embedding_rows = cfg["vocab_size"].as_u64();
        }
        Ok(v)
    }

    /// The id of a token whose stored text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<usize> {
        self.index.get(text).copied()
    }

    /// The type of token `id` (`NORMAL` when the file has no types).
    pub fn token_type(&self, id: usize) -> i32 {
        self.token_types
            .get(id)
            .copied()
            .unwrap_or(token_type::NORMAL)
    }

    /// The text of token `id`.
    pub fn token(&self, id: u64) -> Option<&str> {
        self.tokens
            .get(usize::try_from(id).ok()?)
            .map(String::as_str)
    }

    /// Control and user-defined tokens (every token when the file has no types).
    pub fn special_tokens(&self) -> Vec<&str> {
        self.tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                self.token_types.is_empty()
                    || matches!(
                        self.token_type(*i),
                        token_type::CONTROL | token_type::USER_DEFINED
                    )
            })
            .map(|(_, t)| t.as_str())
            .collect()
    }

    /// The bytes a normal token decodes to (byte-level BPE alphabet or SentencePiece `▁`).
    fn decoded(&self, id: usize) -> Option<Vec<u8>> {
        let t = self.tokens.get(id)?;
        match self.token_type(id) {
            token_type::CONTROL | token_type::UNUSED | token_type::UNKNOWN => None,
            token_type::BYTE => {
                let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
                u8::from_str_radix(hex, 16).ok().map(|b| vec![b])
            }
            token_type::USER_DEFINED => Some(t.as_bytes().to_vec()),
            _ if self.model == "gpt2" => t.chars().map(byte_of_bpe_char).collect(),
            _ if self.model == "llama" => Some(t.replace('▁', " ").into_bytes()),
            _ => Some(t.as_bytes().to_vec()),
        }
    }

    /// Whether `text` can be produced by a sequence of ordinary tokens (greedy longest match
    /// over decoded token bytes, with backtracking). Used for stop strings that are not one token.
    pub fn can_spell(&self, text: &str) -> bool {
        let mut pieces: HashMap<Vec<u8>, ()> = HashMap::new();
        let mut longest = 0;
        for id in 0..self.tokens.len() {
            if let Some(b) = self.decoded(id)
                && !b.is_empty()
            {
                longest = longest.max(b.len());
                pieces.insert(b, ());
            }
        }
        let target = text.as_bytes();
        // reachable[i]: the first i bytes can be spelled.
        let mut reachable = vec![false; target.len() + 1];
        reachable[0] = true;
        for i in 0..target.len() {
            if !reachable[i] {
                continue;
            }
            for len in 1..=longest.min(target.len() - i) {
                if pieces.contains_key(&target[i..i + len]) {
                    reachable[i + len] = true;
                }
            }
        }
        reachable[target.len()]
    }
}

/// GPT-2's byte-to-unicode alphabet, inverted: the byte a byte-level BPE character stands for.
fn byte_of_bpe_char(c: char) -> Option<u8> {
    let u = c as u32;
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    if printable(u) {
        return Some(u as u8);
    }
    // The other 68 bytes are mapped to 256, 257, … in increasing byte order.
    let mut n = 256;
    for b in 0u32..256 {
        if !printable(b) {
            if n == u {
                return Some(b as u8);
            }
            n += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpe_alphabet() {
        assert_eq!(byte_of_bpe_char('a'), Some(b'a'));
        assert_eq!(byte_of_bpe_char('Ġ'), Some(b' '));
        assert_eq!(byte_of_bpe_char('Ċ'), Some(b'\n'));
        assert_eq!(byte_of_bpe_char('\u{100}'), Some(0));
        assert_eq!(byte_of_bpe_char('€'), None);
    }

    #[test]
    fn spelling_with_bpe_and_spm_tokens() {
        let v = Vocab::new(
            "gpt2",
            vec!["<".into(), "|".into(), "end".into(), ">".into(), "Ġ".into()],
            vec![],
        );
        assert!(v.can_spell("<|end|>"));
        assert!(v.can_spell(" <end>"));
        assert!(!v.can_spell("<|x|>"));
        let v = Vocab::new(
            "llama",
            vec!["▁User".into(), ":".into(), "<0x0A>".into(), "<s>".into()],
            vec![1, 1, 6, 3],
        );
        assert!(v.can_spell(" User:\n"));
        assert!(!v.can_spell("<s>"), "control tokens are not text");
    }
}
