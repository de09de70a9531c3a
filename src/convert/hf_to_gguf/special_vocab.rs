//! gguf-py's `SpecialVocab`: merges, special token ids, `add_*_token` flags, chat templates
//! and normalizer flags, read from `tokenizer.json`, `tokenizer_config.json`, `config.json`
//! and `merges.txt` exactly as the reference reads them, and written in its key order.

use serde_json::{Map, Value as Json};

use super::error::{ConvertError, Result};
use super::json::{parse_json_file, truthy};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{Array, GgufWriter, Value};

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
