//! Byte-level BPE vocabularies: the token list, token types, merges, special ids, add_* flags and
//! chat templates, exactly as `_set_vocab_gpt2` + gguf-py's `SpecialVocab` write them
//! (notes/llama-cpp.md §3.2).
//!
//! The reference reads the tokenizer through transformers' `AutoTokenizer`, which builds the HF
//! `tokenizers` engine from `tokenizer.json` and then adjusts it (special tokens that the config
//! names but the vocabulary lacks are added; `LlamaTokenizerFast` rewrites the post-processor;
//! `add_prefix_space` is forced on a top-level pre-tokenizer). [`HfTokenizer`] re-creates that
//! object with the same Rust engine, so token ids, and therefore the chkhsh, come out identical.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use tokenizers::{AddedToken, Tokenizer};

use super::error::{ConvertError, Result, file_err};
use super::hparams::Hparams;
use crate::convert::hf::HfModel;
use crate::formats::gguf::{Array, GgufWriter, Value};

/// gguf `TokenType` values.
pub mod token_type {
    /// A regular vocabulary entry.
    pub const NORMAL: i32 = 1;
    /// A control (special) token.
    pub const CONTROL: i32 = 3;
    /// An added, non-special token.
    pub const USER_DEFINED: i32 = 4;
    /// A hole in the id space, written as `[PAD<id>]`.
    pub const UNUSED: i32 = 5;
}

/// The fixed text whose token ids identify a pre-tokenizer (convert_hf_to_gguf.py's `chktxt`).
pub const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1F680} (normal) \u{1F636}\u{200d}\u{1F32B}\u{FE0F} (multiple emojis concatenated) \u{2705} \u{1F999}\u{1F999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17B6}\u{1793}\u{17CB}\u{178F}\u{17C2}\u{1796}\u{17B7}\u{179F}\u{17C1}\u{179F}\u{17A2}\u{17B6}\u{1785}\u{1F601} ?\u{6211}\u{60F3}\u{5728}apple\u{5DE5}\u{4F5C}1314151\u{5929}\u{FF5E} ------======= \u{043D}\u{0435}\u{0449}\u{043E} \u{043D}\u{0430} \u{0411}\u{044A}\u{043B}\u{0433}\u{0430}\u{0440}\u{0441}\u{043A}\u{0438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

pub(crate) fn parse_json_file(model: &HfModel, name: &str) -> Result<Option<Map<String, Json>>> {
    let Some(bytes) = model.files.get(name) else {
        return Ok(None);
    };
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(file_err(name, "not a JSON object")),
        Err(e) => Err(file_err(name, format!("invalid JSON: {e}"))),
    }
}

/// The content of a special-token entry: a string or `{"content": …}`.
fn token_content(v: &Json) -> Option<&str> {
    match v {
        Json::String(s) => Some(s),
        Json::Object(o) => o.get("content").and_then(Json::as_str),
        _ => None,
    }
}

/// Which transformers tokenizer class `AutoTokenizer` picks, by the behaviour tinylm emulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokClass {
    Gpt2,
    Qwen2,
    Llama,
    Generic,
}

fn tokenizer_class(tc: Option<&Map<String, Json>>, hp: &Hparams) -> TokClass {
    let name = tc
        .and_then(|t| t.get("tokenizer_class"))
        .and_then(Json::as_str)
        .map(|s| s.trim_end_matches("Fast").to_string());
    match name.as_deref() {
        Some("GPT2Tokenizer") => TokClass::Gpt2,
        Some("Qwen2Tokenizer") => TokClass::Qwen2,
        Some("LlamaTokenizer" | "CodeLlamaTokenizer") => TokClass::Llama,
        Some(_) => TokClass::Generic,
        None => match hp.raw.get("model_type").and_then(Json::as_str) {
            Some("gpt2") => TokClass::Gpt2,
            Some("qwen2" | "qwen3") => TokClass::Qwen2,
            Some("llama" | "mistral") => TokClass::Llama,
            _ => TokClass::Generic,
        },
    }
}

/// The HF tokenizer as transformers' `AutoTokenizer.from_pretrained` would build it.
pub struct HfTokenizer {
    tok: Tokenizer,
    clean_up_spaces: bool,
}

impl HfTokenizer {
    /// Builds the tokenizer from `tokenizer.json` + `tokenizer_config.json`.
    pub fn load(model: &HfModel, hp: &Hparams) -> Result<HfTokenizer> {
        let Some(json) = parse_json_file(model, "tokenizer.json")? else {
            return Err(file_err(
                "tokenizer.json",
                "missing: tinylm converts byte-level BPE tokenizers from tokenizer.json",
            ));
        };
        Self::from_json(Json::Object(json), model, hp)
    }

    /// Like [`HfTokenizer::load`], from an already parsed `tokenizer.json`.
    pub fn from_json(mut json: Json, model: &HfModel, hp: &Hparams) -> Result<HfTokenizer> {
        let tc = parse_json_file(model, "tokenizer_config.json")?;
        let stm = parse_json_file(model, "special_tokens_map.json")?;
        let class = tokenizer_class(tc.as_ref(), hp);

        // Special tokens the tokenizer object knows: class defaults, then tokenizer_config,
        // then special_tokens_map.json for keys the config does not set.
        let endoftext = Some("<|endoftext|>".to_string());
        let mut specials: Vec<(&str, Option<String>)> = match class {
            TokClass::Gpt2 => vec![
                ("unk_token", endoftext.clone()),
                ("bos_token", endoftext.clone()),
                ("eos_token", endoftext.clone()),
            ],
            TokClass::Qwen2 => vec![
                ("unk_token", endoftext.clone()),
                ("bos_token", None),
                ("eos_token", endoftext.clone()),
                ("pad_token", endoftext.clone()),
            ],
            TokClass::Llama => vec![
                ("unk_token", Some("<unk>".into())),
                ("bos_token", Some("<s>".into())),
                ("eos_token", Some("</s>".into())),
            ],
            TokClass::Generic => vec![],
        };
        for key in [
            "bos_token",
            "eos_token",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
        ] {
            let from = tc
                .as_ref()
                .and_then(|t| t.get(key))
                .or_else(|| stm.as_ref().and_then(|s| s.get(key)));
            if let Some(v) = from {
                let val = token_content(v).map(str::to_string);
                match specials.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = val,
                    None => specials.push((key, val)),
                }
            }
        }
        let mut additional: Vec<String> = Vec::new();
        if let Some(list) = tc
            .as_ref()
            .and_then(|t| t.get("additional_special_tokens"))
            .or_else(|| {
                stm.as_ref()
                    .and_then(|s| s.get("additional_special_tokens"))
            })
            .and_then(Json::as_array)
        {
            additional.extend(list.iter().filter_map(token_content).map(str::to_string));
        }

        // add_prefix_space is forced onto a top-level pre-tokenizer that has the field.
        if class != TokClass::Llama {
            let want = tc
                .as_ref()
                .and_then(|t| t.get("add_prefix_space"))
                .and_then(Json::as_bool)
                .unwrap_or(false);
            if let Some(Json::Object(pt)) = json.get_mut("pre_tokenizer")
                && let Some(Json::Bool(cur)) = pt.get("add_prefix_space")
                && *cur != want
            {
                pt.insert("add_prefix_space".into(), Json::Bool(want));
            }
        }

        let mut tok: Tokenizer = serde_json::from_value(json)
            .map_err(|e| file_err("tokenizer.json", format!("not a valid HF tokenizer: {e}")))?;

        // added_tokens_decoder entries and special tokens missing from the vocabulary are added.
        let mut to_add: Vec<AddedToken> = Vec::new();
        if let Some(Json::Object(dec)) = tc.as_ref().and_then(|t| t.get("added_tokens_decoder")) {
            let mut entries: Vec<(u64, &Map<String, Json>)> = dec
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_object()?)))
                .collect();
            entries.sort_by_key(|(k, _)| *k);
            let existing = tok.get_added_tokens_decoder();
            for (_, e) in entries {
                let Some(content) = e.get("content").and_then(Json::as_str) else {
                    continue;
                };
                let flag = |k: &str, d: bool| e.get(k).and_then(Json::as_bool).unwrap_or(d);
                let at = AddedToken {
                    content: content.to_string(),
                    single_word: flag("single_word", false),
                    lstrip: flag("lstrip", false),
                    rstrip: flag("rstrip", false),
                    normalized: flag("normalized", true),
                    special: flag("special", false),
                };
                if !existing.values().any(|x| *x == at) {
                    to_add.push(at);
                }
            }
        }
        let special_strings: Vec<String> = specials
            .iter()
            .filter_map(|(_, v)| v.clone())
            .chain(additional.iter().cloned())
            .collect();
        let encoder: Vec<String> = tok
            .get_added_tokens_decoder()
            .values()
            .map(|t| t.content.clone())
            .chain(to_add.iter().map(|t| t.content.clone()))
            .collect();
        for s in &special_strings {
            if !encoder.contains(s) && !to_add.iter().any(|t| &t.content == s) {
                to_add.push(AddedToken::from(s.clone(), true));
            }
        }
        for t in &mut to_add {
            if special_strings.contains(&t.content) {
                t.special = true;
            }
        }
        if !to_add.is_empty() {
            tok.add_tokens(&to_add);
        }

        if class == TokClass::Llama {
            let flag = |k: &str, d: bool| {
                tc.as_ref()
                    .and_then(|t| t.get(k))
                    .and_then(Json::as_bool)
                    .unwrap_or(d)
            };
            let (add_bos, add_eos) = (flag("add_bos_token", true), flag("add_eos_token", false));
            let get = |k: &str| {
                specials
                    .iter()
                    .find(|(n, _)| *n == k)
                    .and_then(|(_, v)| v.clone())
            };
            let mut single = String::new();
            let mut pair = String::new();
            let mut special_tokens = Vec::new();
            let ids = |s: &str| -> Result<u32> {
                tok.token_to_id(s).ok_or_else(|| {
                    ConvertError::Tokenizer(format!("special token '{s}' is not in the vocabulary"))
                })
            };
            if add_bos {
                let b = get("bos_token").ok_or_else(|| {
                    ConvertError::Tokenizer("add_bos_token = true but bos_token is null".into())
                })?;
                single.push_str(&format!("{b}:0 "));
                special_tokens.push(serde_json::json!({"id": b, "ids": [ids(&b)?], "tokens": [b]}));
            }
            single.push_str("$A:0");
            if add_eos {
                let e = get("eos_token").ok_or_else(|| {
                    ConvertError::Tokenizer("add_eos_token = true but eos_token is null".into())
                })?;
                single.push_str(&format!(" {e}:0"));
                special_tokens.push(serde_json::json!({"id": e, "ids": [ids(&e)?], "tokens": [e]}));
            }
            pair.push_str(&single);
            if add_bos && let Some(b) = get("bos_token") {
                pair.push_str(&format!(" {b}:1"));
            }
            pair.push_str(" $B:1");
            if add_eos && let Some(e) = get("eos_token") {
                pair.push_str(&format!(" {e}:1"));
            }
            let pieces = |s: &str| -> Vec<Json> {
                s.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (id, type_id) = p.rsplit_once(':').unwrap_or((p, "0"));
                        let type_id: u32 = type_id.parse().unwrap_or(0);
                        if let Some(seq) = id.strip_prefix('$') {
                            serde_json::json!({"Sequence": {"id": seq, "type_id": type_id}})
                        } else {
                            serde_json::json!({"SpecialToken": {"id": id, "type_id": type_id}})
                        }
                    })
                    .collect()
            };
            let mut st = Map::new();
            for t in special_tokens {
                if let Some(id) = t.get("id").and_then(Json::as_str) {
                    st.insert(id.to_string(), t.clone());
                }
            }
            let pp = serde_json::json!({
                "type": "TemplateProcessing",
                "single": pieces(&single),
                "pair": pieces(&pair),
                "special_tokens": st,
            });
            let pp: tokenizers::PostProcessorWrapper = serde_json::from_value(pp).map_err(|e| {
                ConvertError::Tokenizer(format!("cannot build the Llama post-processor: {e}"))
            })?;
            tok.with_post_processor(Some(pp));
        }

        let clean_up_spaces = tc
            .as_ref()
            .and_then(|t| t.get("clean_up_tokenization_spaces"))
            .and_then(Json::as_bool)
            .unwrap_or(false)
            && class != TokClass::Llama;
        Ok(HfTokenizer {
            tok,
            clean_up_spaces,
        })
    }

    /// Token ids of `text` with special tokens added (transformers' `encode`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tok
            .encode(text, true)
            .map_err(|e| ConvertError::Tokenizer(format!("encoding failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// llama.cpp's chkhsh: sha256 of Python's `str(list_of_ids)` for [`CHKTXT`].
    pub fn chkhsh(&self) -> Result<String> {
        use sha2::Digest;
        let ids = self.encode(CHKTXT)?;
        let text = format!(
            "[{}]",
            ids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let digest = sha2::Sha256::digest(text.as_bytes());
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The underlying engine.
    pub fn inner(&self) -> &Tokenizer {
        &self.tok
    }

    fn roundtrip(&self, token: &str) -> Result<String> {
        let enc = self
            .tok
            .encode(token, false)
            .map_err(|e| ConvertError::Tokenizer(format!("encoding '{token}' failed: {e}")))?;
        let mut s = self
            .tok
            .decode(enc.get_ids(), false)
            .map_err(|e| ConvertError::Tokenizer(format!("decoding '{token}' failed: {e}")))?;
        if self.clean_up_spaces {
            for (from, to) in [
                (" .", "."),
                (" ?", "?"),
                (" !", "!"),
                (" ,", ","),
                (" ' ", "'"),
                (" n't", "n't"),
                (" 'm", "'m"),
                (" 's", "'s"),
                (" 've", "'ve"),
                (" 're", "'re"),
            ] {
                s = s.replace(from, to);
            }
        }
        Ok(s)
    }

    /// `get_vocab_base`: the token list and types for ids `0..vocab_size`.
    pub fn vocab_base(&self, vocab_size: usize) -> Result<(Vec<String>, Vec<i32>)> {
        let vocab = self.tok.get_vocab(true);
        let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
        if max_id >= vocab_size {
            return Err(ConvertError::Tokenizer(format!(
                "the tokenizer has token id {max_id} but config.json vocab_size is {vocab_size}: \
                 the embedding cannot hold it"
            )));
        }
        let mut reverse: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
        for (t, &id) in &vocab {
            reverse.insert(id, t.as_str());
        }
        let decoder = self.tok.get_added_tokens_decoder();
        let mut added_sorted: Vec<(&u32, &AddedToken)> = decoder.iter().collect();
        added_sorted.sort_by_key(|(id, _)| **id);
        let mut added_vocab: HashMap<&str, u32> = HashMap::new();
        for (id, t) in &added_sorted {
            added_vocab.insert(t.content.as_str(), **id);
        }
        let mut tokens = Vec::with_capacity(vocab_size);
        let mut types = Vec::with_capacity(vocab_size);
        for i in 0..vocab_size {
            let Some(&tok) = reverse.get(&(i as u32)) else {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
                continue;
            };
            let mut token = tok.to_string();
            if added_vocab.contains_key(tok) {
                let info = decoder.get(&(i as u32));
                if info.is_some_and(|t| !t.normalized) {
                    token = self.roundtrip(&token)?;
                }
                if info.is_some_and(|t| t.special) || looks_special(&token) {
                    types.push(token_type::CONTROL);
                } else {
                    token = token.replace('\u{2581}', " ");
                    types.push(token_type::USER_DEFINED);
                }
            } else {
                types.push(token_type::NORMAL);
            }
            tokens.push(token);
        }
        Ok((tokens, types))
    }
}

/// `does_token_look_special` of the reference.
pub fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{FF5C}") && t.ends_with("\u{FF5C}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// gguf-py's `SpecialVocab`: merges, special ids, add_* flags, chat template, normalizer flags.
#[derive(Debug, Default)]
pub struct SpecialVocab {
    /// Merges as "a b" strings.
    pub merges: Vec<String>,
    /// Special token ids in insertion order (`bos`, `eos`, …).
    pub ids: Vec<(String, u32)>,
    /// add_* flags in insertion order.
    pub add: Vec<(String, bool)>,
    /// Chat template: a single string or named templates.
    pub chat_template: Option<ChatTemplate>,
    /// `tokenizer.ggml.normalizer.lowercase`.
    pub lowercase: Option<bool>,
    /// `tokenizer.ggml.normalizer.strip_accents`.
    pub strip_accents: Option<bool>,
    types: Vec<String>,
    n_vocab: Option<usize>,
}

/// A chat template as found in the tokenizer files.
#[derive(Debug, Clone)]
pub enum ChatTemplate {
    /// One template.
    Single(String),
    /// Named templates (`default` plus others).
    Named(Vec<(String, String)>),
}

impl SpecialVocab {
    /// Loads like `SpecialVocab(dir, load_merges, n_vocab=…)`.
    pub fn load(
        model: &HfModel,
        tokenizer_json: Option<&Map<String, Json>>,
        load_merges: bool,
        n_vocab: Option<usize>,
    ) -> Result<SpecialVocab> {
        let mut sv = SpecialVocab {
            types: ["bos", "eos", "unk", "sep", "pad", "cls", "mask"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            n_vocab,
            ..Default::default()
        };
        sv.load_tokenizer_json(model, tokenizer_json, load_merges)?;
        sv.load_config_json(model)?;
        if load_merges && sv.merges.is_empty() {
            sv.merges_txt(model);
        }
        Ok(sv)
    }

    fn set_special(&mut self, typ: &str, id: Option<&Json>) -> Result<()> {
        let Some(id) = id else { return Ok(()) };
        // Only ints count (a bool is an int in Python).
        let id = match id {
            Json::Number(n) => match n.as_i64() {
                Some(v) => v,
                None => return Ok(()),
            },
            Json::Bool(b) => i64::from(*b),
            _ => return Ok(()),
        };
        if id < 0 {
            return Err(ConvertError::Tokenizer(format!(
                "invalid value for special token type {typ}: {id}"
            )));
        }
        if self.n_vocab.is_none_or(|n| (id as u64) < n as u64) {
            if !self.ids.iter().any(|(t, _)| t == typ) {
                self.ids.push((typ.to_string(), id as u32));
            }
        } else {
            tracing::warn!("special token type {typ}, id {id} out of range, skipping");
        }
        Ok(())
    }

    fn set_add(&mut self, typ: &str, v: bool, overwrite: bool) {
        match self.add.iter_mut().find(|(t, _)| t == typ) {
            Some(slot) if overwrite => slot.1 = v,
            Some(_) => {}
            None => self.add.push((typ.to_string(), v)),
        }
    }

    fn has_add(&self, typ: &str) -> bool {
        self.add.iter().any(|(t, _)| t == typ)
    }

    fn parse_normalizer(&mut self, n: &Json) {
        match n.get("type").and_then(Json::as_str) {
            Some("Lowercase") => self.lowercase = Some(true),
            Some("StripAccents") => self.strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(v) = n.get("lowercase").and_then(Json::as_bool) {
                    self.lowercase = Some(v);
                }
                if let Some(v) = n.get("strip_accents").and_then(Json::as_bool) {
                    self.strip_accents = Some(v);
                }
            }
            Some("Sequence") => {
                if let Some(list) = n.get("normalizers").and_then(Json::as_array) {
                    for x in list {
                        self.parse_normalizer(x);
                    }
                }
            }
            _ => {}
        }
    }

    fn load_tokenizer_json(
        &mut self,
        model: &HfModel,
        tokenizer: Option<&Map<String, Json>>,
        load_merges: bool,
    ) -> Result<()> {
        let mut added_tokens: Vec<Json> = Vec::new();
        if let Some(tj) = tokenizer {
            if load_merges
                && let Some(merges) = tj
                    .get("model")
                    .and_then(|m| m.get("merges"))
                    .and_then(Json::as_array)
                && !merges.is_empty()
            {
                self.merges = parse_merges(merges)?;
            }
            if let Some(n) = tj.get("normalizer").filter(|n| !n.is_null()) {
                self.parse_normalizer(n);
            }
            if let Some(a) = tj.get("added_tokens").and_then(Json::as_array) {
                added_tokens = a.clone();
            }
        }
        let mut tc = parse_json_file(model, "tokenizer_config.json")?;
        if let Some(tj) = tokenizer {
            let get = |tc: &Option<Map<String, Json>>, k: &str| -> Json {
                tc.as_ref()
                    .and_then(|t| t.get(k))
                    .cloned()
                    .unwrap_or(Json::Null)
            };
            let mut special_bos = get(&tc, "bos_token");
            let mut special_cls = get(&tc, "cls_token");
            let mut special_eos = get(&tc, "eos_token");
            let mut special_sep = get(&tc, "sep_token");
            let tc_nonempty = tc.as_ref().is_some_and(|t| !t.is_empty());
            if !truthy(&special_bos) && truthy(&special_cls) && tc_nonempty {
                special_bos = special_cls.clone();
                if let Some(t) = tc.as_mut() {
                    t.insert("bos_token".into(), special_bos.clone());
                }
            }
            if !truthy(&special_eos) && truthy(&special_sep) && tc_nonempty {
                special_eos = special_sep.clone();
                if let Some(t) = tc.as_mut() {
                    t.insert("eos_token".into(), special_eos.clone());
                }
            }
            if let Some(pp) = tj.get("post_processor").filter(|p| truthy(p)) {
                let procs: Vec<Json> = match pp.get("processors").and_then(Json::as_array) {
                    Some(list) => list.clone(),
                    None => vec![pp.clone()],
                };
                for p in procs {
                    match p.get("type").and_then(Json::as_str) {
                        Some("ByteLevel") => {
                            self.set_add("bos", false, false);
                            self.set_add("eos", false, false);
                        }
                        Some("RobertaProcessing") => {
                            self.set_add("bos", true, true);
                            self.set_add("eos", true, true);
                            self.set_add("sep", true, true);
                            let tc_ok = tc.as_ref().is_some_and(|t| !t.is_empty());
                            if !truthy(&special_cls) && tc_ok {
                                special_cls = p
                                    .get("cls")
                                    .and_then(|c| c.get(0))
                                    .cloned()
                                    .unwrap_or(special_bos.clone());
                                if let Some(t) = tc.as_mut() {
                                    t.insert("cls_token".into(), special_cls.clone());
                                }
                            }
                            if !truthy(&special_sep) && tc_ok {
                                special_sep = p
                                    .get("sep")
                                    .and_then(|c| c.get(0))
                                    .cloned()
                                    .unwrap_or(special_eos.clone());
                                if let Some(t) = tc.as_mut() {
                                    t.insert("sep_token".into(), special_sep.clone());
                                }
                            }
                        }
                        Some("TemplateProcessing") => {
                            self.template_processing(
                                &p,
                                &mut tc,
                                &mut special_bos,
                                &mut special_cls,
                                &mut special_eos,
                                &special_sep,
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
        let Some(tc) = tc.filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        // chat template
        let mut alt: Option<ChatTemplate> = None;
        if let Some(t) = model.files.get("chat_template.jinja") {
            let text = String::from_utf8_lossy(t).into_owned();
            let extras: Vec<(&String, &Vec<u8>)> = model
                .files
                .iter()
                .filter(|(k, _)| k.starts_with("additional_chat_templates/"))
                .collect();
            if extras.is_empty() {
                alt = Some(ChatTemplate::Single(text));
            } else {
                let mut named = vec![("default".to_string(), text)];
                for (k, v) in extras {
                    let stem = k
                        .trim_start_matches("additional_chat_templates/")
                        .trim_end_matches(".jinja")
                        .to_string();
                    named.push((stem, String::from_utf8_lossy(v).into_owned()));
                }
                alt = Some(ChatTemplate::Named(named));
            }
        } else if let Some(ct) = parse_json_file(model, "chat_template.json")? {
            alt = ct.get("chat_template").and_then(json_template);
        }
        self.chat_template = match tc.get("chat_template") {
            Some(v) => json_template(v),
            None => alt,
        };
        let types = self.types.clone();
        for typ in &types {
            if let Some(Json::Bool(b)) = tc.get(&format!("add_{typ}_token"))
                && !self.has_add(typ)
            {
                self.set_add(typ, *b, false);
            }
            let Some(content) = tc.get(&format!("{typ}_token")).and_then(|e| match e {
                Json::String(s) => Some(s.as_str()),
                Json::Object(o) => o.get("content").and_then(Json::as_str),
                _ => None,
            }) else {
                continue;
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Json::as_str) == Some(content))
                .and_then(|a| a.get("id"))
                .cloned();
            self.set_special(typ, id.as_ref())?;
        }
        Ok(())
    }

    fn template_processing(
        &mut self,
        p: &Json,
        tc: &mut Option<Map<String, Json>>,
        special_bos: &mut Json,
        special_cls: &mut Json,
        special_eos: &mut Json,
        special_sep: &Json,
    ) {
        let empty = Vec::new();
        let single = p.get("single").and_then(Json::as_array).unwrap_or(&empty);
        let pair = p.get("pair").and_then(Json::as_array).unwrap_or(&empty);
        let special_id = |e: &Json| -> Option<String> {
            e.get("SpecialToken")
                .and_then(|s| s.get("id"))
                .and_then(Json::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let tc_ok = tc.as_ref().is_some_and(|t| !t.is_empty());
        let mut special_first: Option<String> = None;
        let mut special_last: Option<String> = None;
        if single.len() > 1 {
            special_first = single.first().and_then(special_id);
            if let Some(first) = &special_first {
                let f = Json::String(first.clone());
                if !tc_ok {
                    *special_bos = f.clone();
                } else if f != *special_bos && f != *special_cls {
                    if !truthy(special_bos) {
                        *special_bos = f.clone();
                        if let Some(t) = tc.as_mut() {
                            t.insert("bos_token".into(), f.clone());
                        }
                    }
                    if !truthy(special_cls) {
                        *special_cls = f.clone();
                        if let Some(t) = tc.as_mut() {
                            t.insert("cls_token".into(), f.clone());
                        }
                    }
                }
                let v = f == *special_bos || f == *special_cls;
                self.set_add("bos", v, true);
            }
            special_last = single.last().and_then(special_id);
            if let Some(last) = &special_last {
                let l = Json::String(last.clone());
                if !tc_ok {
                    *special_eos = l.clone();
                } else if l != *special_eos {
                    if !self.types.iter().any(|t| t == "eot") {
                        self.types.push("eot".into());
                        if let Some(t) = tc.as_mut() {
                            t.insert("eot_token".into(), special_eos.clone());
                        }
                    } else if !self.types.iter().any(|t| t == "eom") {
                        self.types.push("eom".into());
                        if let Some(t) = tc.as_mut() {
                            t.insert("eom_token".into(), special_eos.clone());
                        }
                    }
                    *special_eos = l.clone();
                    if let Some(t) = tc.as_mut() {
                        t.insert("eos_token".into(), l.clone());
                    }
                }
                let v = l == *special_eos;
                self.set_add("eos", v, true);
            }
        }
        if pair.is_empty() {
            return;
        }
        let seq_start = usize::from(
            special_first.is_some() && pair.first().and_then(special_id) == special_first,
        );
        let seq_stop_trim =
            special_last.is_some() && pair.last().and_then(special_id) == special_last;
        let end = if seq_stop_trim {
            pair.len().saturating_sub(1)
        } else {
            pair.len()
        };
        let slice: &[Json] = if seq_start <= end {
            &pair[seq_start..end]
        } else {
            &[]
        };
        if slice.is_empty() {
            return;
        }
        let seq_id = |e: &Json| -> Option<String> {
            e.get("Sequence")
                .and_then(|s| s.get("id"))
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        let a = slice.first().and_then(seq_id);
        let b = slice.last().and_then(seq_id);
        if a.as_deref() == Some("A") && b.as_deref() == Some("B") && slice.len() > 2 {
            let middle = &slice[1..slice.len() - 1];
            let is_sep = |id: &str| {
                let v = Json::String(id.to_string());
                v == *special_sep || v == *special_eos
            };
            let mut add_sep = false;
            if let Some(entry) = middle.first().and_then(special_id)
                && is_sep(&entry)
                && special_last.is_none()
            {
                add_sep = true;
            }
            if middle.len() == 2
                && let Some(entry) = middle.get(1).and_then(special_id)
                && is_sep(&entry)
            {
                add_sep = true;
            }
            self.set_add("sep", add_sep, true);
            if add_sep
                && !truthy(special_sep)
                && tc_ok
                && let Some(t) = tc.as_mut()
            {
                t.insert("sep_token".into(), special_eos.clone());
            }
        }
    }

    fn load_config_json(&mut self, model: &HfModel) -> Result<()> {
        let Some(cfg) = parse_json_file(model, "config.json")? else {
            return Ok(());
        };
        let types = self.types.clone();
        for typ in &types {
            let key = format!("{typ}_token_id");
            let mut id = cfg.get(&key).filter(|v| !v.is_null()).cloned();
            if id.is_none()
                && let Some(tc) = cfg.get("text_config")
            {
                id = tc.get(&key).cloned();
            }
            self.set_special(typ, id.as_ref())?;
        }
        Ok(())
    }

    fn merges_txt(&mut self, model: &HfModel) {
        let Some(bytes) = model.files.get("merges.txt") else {
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines().peekable();
        if lines.peek().is_some_and(|l| l.trim().starts_with('#')) {
            lines.next();
        }
        let mut merges = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.len() == 2 {
                merges.push(format!("{} {}", parts[0], parts[1]));
            }
        }
        self.merges = merges;
    }

    /// Writes the KVs in gguf-py's order.
    pub fn add_to(&self, w: &mut GgufWriter) {
        if !self.merges.is_empty() {
            w.add_kv(
                "tokenizer.ggml.merges",
                Value::Array(Array::strings(&self.merges)),
            );
        }
        for (typ, id) in &self.ids {
            let key = match typ.as_str() {
                "bos" => "tokenizer.ggml.bos_token_id",
                "eos" => "tokenizer.ggml.eos_token_id",
                "unk" => "tokenizer.ggml.unknown_token_id",
                "sep" => "tokenizer.ggml.seperator_token_id",
                "pad" => "tokenizer.ggml.padding_token_id",
                "mask" => "tokenizer.ggml.mask_token_id",
                "eot" => "tokenizer.ggml.eot_token_id",
                "eom" => "tokenizer.ggml.eom_token_id",
                _ => continue, // cls has no handler in gguf-py
            };
            w.add_kv(key, Value::U32(*id));
        }
        for (typ, v) in &self.add {
            let key = match typ.as_str() {
                "bos" => "tokenizer.ggml.add_bos_token",
                "eos" => "tokenizer.ggml.add_eos_token",
                "sep" => "tokenizer.ggml.add_sep_token",
                _ => continue,
            };
            w.add_kv(key, Value::Bool(*v));
        }
        match &self.chat_template {
            None => {}
            Some(ChatTemplate::Single(t)) if !t.is_empty() => {
                w.add_kv("tokenizer.chat_template", Value::str(t));
            }
            Some(ChatTemplate::Single(_)) => {}
            Some(ChatTemplate::Named(list)) => {
                let mut default = None;
                let mut names: Vec<String> = Vec::new();
                for (name, tmpl) in list {
                    let name: String = name
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    if name.is_empty() {
                        continue;
                    }
                    if name == "default" {
                        default = Some(tmpl.clone());
                    } else {
                        if !names.contains(&name) {
                            names.push(name.clone());
                        }
                        if !tmpl.is_empty() {
                            w.add_kv(format!("tokenizer.chat_template.{name}"), Value::str(tmpl));
                        }
                    }
                }
                if !names.is_empty() {
                    // gguf-py builds this list from a Python set (unordered); sorted here.
                    names.sort();
                    w.add_kv(
                        "tokenizer.chat_templates",
                        Value::Array(Array::strings(&names)),
                    );
                }
                if let Some(d) = default.filter(|d| !d.is_empty()) {
                    w.add_kv("tokenizer.chat_template", Value::str(d));
                }
            }
        }
        if let Some(v) = self.lowercase {
            w.add_kv("tokenizer.ggml.normalizer.lowercase", Value::Bool(v));
        }
        if let Some(v) = self.strip_accents {
            w.add_kv("tokenizer.ggml.normalizer.strip_accents", Value::Bool(v));
        }
    }
}

fn json_template(v: &Json) -> Option<ChatTemplate> {
    match v {
        Json::String(s) => Some(ChatTemplate::Single(s.clone())),
        Json::Array(list) => Some(ChatTemplate::Named(
            list.iter()
                .filter_map(|e| {
                    Some((
                        e.get("name")
                            .and_then(Json::as_str)
                            .unwrap_or("")
                            .to_string(),
                        e.get("template")?.as_str()?.to_string(),
                    ))
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// `model.merges` of tokenizer.json: "a b" strings, or `[a, b]` pairs (spaces inside a part are
/// encoded as U+0120, as gguf-py does).
pub fn parse_merges(merges: &[Json]) -> Result<Vec<String>> {
    match merges.first() {
        Some(Json::String(_)) => merges
            .iter()
            .map(|m| {
                m.as_str().map(str::to_string).ok_or_else(|| {
                    ConvertError::Tokenizer("tokenizer.json merges mix strings and pairs".into())
                })
            })
            .collect(),
        Some(Json::Array(first)) if first.len() == 2 && first[0].is_string() => merges
            .iter()
            .map(|m| {
                let pair = m.as_array().filter(|p| p.len() == 2);
                let parts: Option<Vec<String>> = pair.and_then(|p| {
                    p.iter()
                        .map(|s| s.as_str().map(|s| s.replace(' ', "\u{0120}")))
                        .collect()
                });
                parts.map(|p| p.join(" ")).ok_or_else(|| {
                    ConvertError::Tokenizer("tokenizer.json has a malformed merge pair".into())
                })
            })
            .collect(),
        _ => Err(ConvertError::Tokenizer(
            "unknown tokenizer merges format".into(),
        )),
    }
}
