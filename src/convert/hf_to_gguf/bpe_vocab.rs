//! Byte-level BPE vocabularies: the token list and token types exactly as `_set_vocab_gpt2`
//! writes them, from the HF tokenizer as transformers builds it ([`HfTokenizer`]), and the
//! pre-tokenizer fingerprint (chkhsh) llama.cpp identifies it by. Merges, special ids and
//! flags are the [`super::special_vocab`]'s.
//!
//! The reference reads the tokenizer through transformers' `AutoTokenizer`, which builds the HF
//! `tokenizers` engine from `tokenizer.json` and then adjusts it (special tokens that the config
//! names but the vocabulary lacks are added; `LlamaTokenizerFast` rewrites the post-processor;
//! `add_prefix_space` is forced on a top-level pre-tokenizer). [`HfTokenizer`] re-creates that
//! object with the same Rust engine, so token ids, and therefore the chkhsh, come out identical.
//! References: `get_vocab_base` and `get_vocab_base_pre` in llama.cpp's `convert_hf_to_gguf.py`.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use tokenizers::{AddedToken, Tokenizer};

use super::arch::{TokenizerClass, config_class};
use super::error::{ConvertError, Result, file_err};
use super::hparams::Hparams;
use super::json::parse_json_file;
use crate::convert::hf::HfModel;
use crate::formats::gguf::token_type;

/// The fixed text whose token ids identify a pre-tokenizer (convert_hf_to_gguf.py's `chktxt`).
pub const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1F680} (normal) \u{1F636}\u{200d}\u{1F32B}\u{FE0F} (multiple emojis concatenated) \u{2705} \u{1F999}\u{1F999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17B6}\u{1793}\u{17CB}\u{178F}\u{17C2}\u{1796}\u{17B7}\u{179F}\u{17C1}\u{179F}\u{17A2}\u{17B6}\u{1785}\u{1F601} ?\u{6211}\u{60F3}\u{5728}apple\u{5DE5}\u{4F5C}1314151\u{5929}\u{FF5E} ------======= \u{043D}\u{0435}\u{0449}\u{043E} \u{043D}\u{0430} \u{0411}\u{044A}\u{043B}\u{0433}\u{0430}\u{0440}\u{0441}\u{043A}\u{0438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// The content of a special-token entry: a string or `{"content": …}`.
fn token_content(v: &Json) -> Option<&str> {
    match v {
        Json::String(s) => Some(s),
        Json::Object(o) => o.get("content").and_then(Json::as_str),
        _ => None,
    }
}

/// Which transformers tokenizer class `AutoTokenizer` picks: the one `tokenizer_config.json`
/// names, else the default of the model's config class.
fn tokenizer_class(tc: Option<&Map<String, Json>>, hp: &Hparams) -> TokenizerClass {
    let name = tc
        .and_then(|t| t.get("tokenizer_class"))
        .and_then(Json::as_str)
        .map(|s| s.trim_end_matches("Fast").to_string());
    match name.as_deref() {
        Some("GPT2Tokenizer") => TokenizerClass::Gpt2,
        Some("Qwen2Tokenizer") => TokenizerClass::Qwen2,
        Some("LlamaTokenizer" | "CodeLlamaTokenizer") => TokenizerClass::Llama,
        Some(_) => TokenizerClass::Generic,
        None => hp
            .raw
            .get("model_type")
            .and_then(Json::as_str)
            .and_then(config_class)
            .map_or(TokenizerClass::Generic, |c| c.tokenizer),
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
    pub fn from_json(json: Json, model: &HfModel, hp: &Hparams) -> Result<HfTokenizer> {
        guarded(|| Self::build(json, model, hp))
    }

    fn build(mut json: Json, model: &HfModel, hp: &Hparams) -> Result<HfTokenizer> {
        let tc = parse_json_file(model, "tokenizer_config.json")?;
        let stm = parse_json_file(model, "special_tokens_map.json")?;
        let class = tokenizer_class(tc.as_ref(), hp);

        // Special tokens the tokenizer object knows: class defaults, then tokenizer_config,
        // then special_tokens_map.json for keys the config does not set.
        let endoftext = Some("<|endoftext|>".to_string());
        let mut specials: Vec<(&str, Option<String>)> = match class {
            TokenizerClass::Gpt2 => vec![
                ("unk_token", endoftext.clone()),
                ("bos_token", endoftext.clone()),
                ("eos_token", endoftext.clone()),
            ],
            TokenizerClass::Qwen2 => vec![
                ("unk_token", endoftext.clone()),
                ("bos_token", None),
                ("eos_token", endoftext.clone()),
                ("pad_token", endoftext.clone()),
            ],
            TokenizerClass::Llama => vec![
                ("unk_token", Some("<unk>".into())),
                ("bos_token", Some("<s>".into())),
                ("eos_token", Some("</s>".into())),
            ],
            TokenizerClass::Generic => vec![],
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
        if class != TokenizerClass::Llama {
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

        if class == TokenizerClass::Llama {
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
            && class != TokenizerClass::Llama;
        Ok(HfTokenizer {
            tok,
            clean_up_spaces,
        })
    }

    /// Token ids of `text` with special tokens added (transformers' `encode`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        guarded(|| {
            let enc = self
                .tok
                .encode(text, true)
                .map_err(|e| ConvertError::Tokenizer(format!("encoding failed: {e}")))?;
            Ok(enc.get_ids().to_vec())
        })
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
        guarded(|| self.roundtrip_unguarded(token))
    }

    fn roundtrip_unguarded(&self, token: &str) -> Result<String> {
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
        guarded(|| self.vocab_base_unguarded(vocab_size))
    }

    fn vocab_base_unguarded(&self, vocab_size: usize) -> Result<(Vec<String>, Vec<i32>)> {
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

/// Runs a call into the `tokenizers` library, which panics on some malformed
/// `tokenizer.json` files (a template post-processor naming an undefined special token):
/// the panic becomes a tokenizer error.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::formats::guard::catch("the tokenizers library failed on tokenizer.json", f)
        .map_err(|msg| file_err("tokenizer.json", msg))?
}

/// `does_token_look_special` of the reference.
pub fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{FF5C}") && t.ends_with("\u{FF5C}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}
