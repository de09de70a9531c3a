//! `general.*` metadata, derived as gguf-py's `Metadata.load` + `set_gguf_meta_model` do
//! (`docs/hf-to-gguf.md`, gguf-py's `metadata.py`): model card front matter, `_name_or_path`,
//! the folder name, generation_config sampling values, and the size label from the parameter
//! count.

use regex::Regex;
use serde_json::{Map, Value as Json};

use super::error::Result;
use super::model_card::{self, Card};
use crate::convert::hf::HfModel;
use crate::formats::gguf::{Array, GgufWriter, Value};

/// Authorship and sampling metadata (gguf-py's `Metadata`).
#[derive(Debug, Default, Clone)]
pub struct Metadata {
    sampling: Vec<(&'static str, Value)>,
    /// `general.name`.
    pub name: Option<String>,
    author: Option<String>,
    version: Option<String>,
    organization: Option<String>,
    finetune: Option<String>,
    basename: Option<String>,
    description: Option<String>,
    quantized_by: Option<String>,
    /// `general.size_label`.
    pub size_label: Option<String>,
    source_url: Option<String>,
    source_doi: Option<String>,
    source_uuid: Option<String>,
    source_repo_url: Option<String>,
    license: Option<String>,
    license_name: Option<String>,
    license_link: Option<String>,
    base_models: Option<Vec<Vec<(String, String)>>>,
    datasets: Option<Vec<Vec<(String, String)>>>,
    tags: Option<Vec<String>>,
    languages: Option<Vec<String>>,
}

/// `Metadata.id_to_title`.
pub fn id_to_title(s: &str) -> String {
    let keep = Regex::new(r"^(v\d+(?:\.\d+)*|\d.*)$").expect("static regex");
    s.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            if is_lower(w) && !keep.is_match(w) {
                py_title(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Python's `str.islower()`: at least one cased character and no upper-case ones.
fn is_lower(s: &str) -> bool {
    s.chars().any(char::is_lowercase) && !s.chars().any(|c| c.is_uppercase())
}

/// Python's `str.title()`: upper-case the first letter of each alphabetic run.
fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_cased = false;
    for c in s.chars() {
        if c.is_alphabetic() {
            if prev_cased {
                out.extend(c.to_lowercase());
            } else {
                out.extend(c.to_uppercase());
            }
            prev_cased = true;
        } else {
            out.push(c);
            prev_cased = false;
        }
    }
    out
}

/// Components of a model id: (full name, org, basename, finetune, version, size label).
pub type IdComponents = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Basename,
    SizeLabel,
    Finetune,
    Version,
    Type,
}

/// `Metadata.get_model_id_components`.
pub fn model_id_components(model_id: &str, total_params: i64) -> IdComponents {
    if model_id.contains(' ') {
        return (Some(model_id.to_string()), None, None, None, None, None);
    }
    let (mut org, full) = match model_id.split_once('/') {
        Some((o, n)) => (Some(o.to_string()), n.to_string()),
        None => (None, model_id.to_string()),
    };
    if org.as_deref().is_some_and(|o| o.starts_with('.')) {
        org = None;
    }
    let mut parts: Vec<String> = full
        .split('-')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let mut tags: Vec<Vec<Tag>> = vec![Vec::new(); parts.len()];
    let re_version = Regex::new(r"(?i)^(v|iter)?\d+([.]\d+)*$").expect("static regex");
    let re_type = Regex::new(r"(?i)^(i?q\d(_\w)*|b?fp?(16|32))$").expect("static regex");
    let re_size =
        Regex::new(r"(?i)^((([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl))$")
            .expect("static regex");
    let re_ft = Regex::new(r"(?i)^(chat|instruct|vision|lora)$").expect("static regex");
    for i in 0..parts.len() {
        let part = parts[i].clone();
        if re_version.is_match(&part) {
            tags[i].push(Tag::Version);
        } else if re_type.is_match(&part) {
            tags[i].push(Tag::Type);
            parts[i] = part.to_uppercase();
        } else if i > 0 && re_size.is_match(&part) {
            let mut p: Vec<char> = part.replace('_', ".").chars().collect();
            if p.last().is_some_and(|c| c.is_ascii_digit()) && p.len() >= 2 {
                let n = p.len();
                let (a, b) = (p[n - 2], p[n - 1]);
                p.truncate(n - 2);
                p.push('.');
                p.push(b);
                p.push(a);
            }
            let n = p.len();
            if n > 1 && p[n - 2].is_ascii_digit() && "kmbt".contains(p[n - 1]) {
                p[n - 1] = p[n - 1].to_ascii_uppercase();
            }
            let mut s: String = p.iter().collect();
            if total_params != 0
                && let Some(last) = s.chars().last()
            {
                let num: String = s.chars().take(s.chars().count() - 1).collect();
                let scale = " KMBT".find(last).map(|i| i as i32);
                if let (Ok(v), Some(sc)) = (num.parse::<f64>(), scale) {
                    let label = v * 1000f64.powi(sc.max(0)) * if sc < 0 { 1e-3 } else { 1.0 };
                    let tp = total_params as f64;
                    let small = total_params < 0 && label < (total_params.abs() / 8) as f64;
                    let far =
                        total_params > 0 && (label - tp).abs() > (7 * total_params / 8) as f64;
                    if small || far {
                        tags[i].push(Tag::Finetune);
                        let lower: String = last.to_lowercase().collect();
                        s = format!("{num}{lower}");
                    }
                }
            }
            if tags[i].is_empty() {
                tags[i].push(Tag::SizeLabel);
            }
            parts[i] = s;
        } else if i > 0 && re_ft.is_match(&part) {
            if total_params < 0 && part.eq_ignore_ascii_case("lora") {
                tags[i].push(Tag::Type);
            } else {
                tags[i].push(Tag::Finetune);
            }
        }
    }
    let any_numeric_size = parts
        .iter()
        .zip(&tags)
        .any(|(n, t)| t.contains(&Tag::SizeLabel) && n.chars().any(|c| c.is_ascii_digit()));
    if any_numeric_size {
        for (n, t) in parts.iter().zip(tags.iter_mut()) {
            if t.contains(&Tag::SizeLabel) && n.chars().all(char::is_alphabetic) {
                t.retain(|x| *x != Tag::SizeLabel);
            }
        }
    }
    let mut at_start = true;
    for (part, t) in parts.iter().zip(tags.iter_mut()) {
        let starts_alpha = part.chars().next().is_some_and(char::is_alphabetic);
        if at_start && ((t.is_empty() && starts_alpha) || t.contains(&Tag::Version)) {
            t.push(Tag::Basename);
        } else {
            at_start = false;
            if t.is_empty() {
                t.push(Tag::Finetune);
            }
        }
    }
    for t in tags.iter_mut().rev() {
        if t.contains(&Tag::Basename) && t.len() > 1 {
            t.retain(|x| *x != Tag::Basename);
        } else {
            break;
        }
    }
    let join = |tag: Tag, exclude: Option<Tag>| -> Option<String> {
        let v: Vec<&str> = parts
            .iter()
            .zip(&tags)
            .filter(|(_, t)| t.contains(&tag) && exclude.is_none_or(|e| !t.contains(&e)))
            .map(|(p, _)| p.as_str())
            .collect();
        (!v.is_empty()).then(|| v.join("-"))
    };
    let mut basename = join(Tag::Basename, None);
    let size_label = {
        let mut seen: Vec<&str> = Vec::new();
        for (p, t) in parts.iter().zip(&tags) {
            if t.contains(&Tag::SizeLabel) && !seen.contains(&p.as_str()) {
                seen.push(p);
            }
        }
        (!seen.is_empty()).then(|| seen.join("-"))
    };
    let finetune = join(Tag::Finetune, None);
    let version = join(Tag::Version, Some(Tag::Basename));
    if size_label.is_none() && finetune.is_none() && version.is_none() {
        basename = None;
    }
    (Some(full), org, basename, finetune, version, size_label)
}

/// `model_weight_count_rounded_notation(n, min_digits=2)`.
pub fn size_label(n: u64) -> String {
    let f = n as f64;
    let (scaled, suffix) = if f > 1e12 {
        (f * 1e-12, "T")
    } else if f > 1e9 {
        (f * 1e-9, "B")
    } else if f > 1e6 {
        (f * 1e-6, "M")
    } else {
        (f * 1e-3, "K")
    };
    let rounded = py_round(scaled).to_string();
    let digits = rounded.trim_start_matches('0').len();
    let fix = 2usize.saturating_sub(digits);
    format!("{}{suffix}", py_format_fixed(scaled, fix))
}

/// Python's `round(x)` (ties to even) as an integer.
fn py_round(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        let t = x.trunc();
        if (t as i64) % 2 == 0 {
            t as i64
        } else {
            r as i64
        }
    } else {
        r as i64
    }
}

/// `f"{x:.{prec}f}"`: Rust's `{:.N}` also rounds the exact binary value half-to-even.
fn py_format_fixed(x: f64, prec: usize) -> String {
    format!("{x:.prec$}")
}

fn json_str(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        _ => None,
    }
}

impl Metadata {
    /// `Metadata.load(None, dir, model_name, total_params)`.
    pub fn load(
        model: &HfModel,
        name_override: Option<&str>,
        total_params: i64,
    ) -> Result<Metadata> {
        let mut md = Metadata::default();
        let card = model_card::load(model)?;
        md.apply_card(&card, total_params);
        // config.json _name_or_path
        if let Some(Json::Object(cfg)) = model
            .files
            .get("config.json")
            .and_then(|b| serde_json::from_slice::<Json>(b).ok())
            && let Some(nop) = cfg.get("_name_or_path").and_then(Json::as_str)
            && nop.matches('/').count() <= 1
        {
            md.apply_id(nop, total_params);
        }
        md.apply_id(&model.dir_name, total_params);
        // generation_config.json (invalid JSON is ignored, as in the reference)
        if let Some(Json::Object(gc)) = model
            .files
            .get("generation_config.json")
            .and_then(|b| serde_json::from_slice::<Json>(b).ok())
        {
            md.sampling = sampling(&gc);
        }
        if let Some(n) = name_override {
            md.name = Some(n.to_string());
        }
        if md.name.is_none() {
            md.name = Some(model.dir_name.clone());
        }
        Ok(md)
    }

    fn apply_id(&mut self, id: &str, total_params: i64) {
        let (full, org, basename, finetune, version, size) = model_id_components(id, total_params);
        if self.name.is_none()
            && let Some(f) = full
        {
            self.name = Some(id_to_title(&f));
        }
        if self.organization.is_none()
            && let Some(o) = org
        {
            self.organization = Some(id_to_title(&o));
        }
        fill(&mut self.basename, basename);
        fill(&mut self.finetune, finetune);
        fill(&mut self.version, version);
        fill(&mut self.size_label, size);
    }

    fn apply_card(&mut self, card: &Card, total_params: i64) {
        let s = |k: &str| card.get(k).and_then(json_str);
        for (field, keys) in [
            ("name", ["name", "model_name"]),
            ("author", ["author", "model_author"]),
            ("version", ["version", "model_version"]),
            ("organization", ["organization", "model_organization"]),
            ("description", ["description", "model_description"]),
            ("finetune", ["finetune", "model_finetune"]),
            ("basename", ["basename", "model_basename"]),
            ("size_label", ["size_label", "model_size_label"]),
            ("source_url", ["url", "model_url"]),
            ("source_doi", ["doi", "model_doi"]),
            ("source_uuid", ["uuid", "model_uuid"]),
            ("source_repo_url", ["repo_url", "model_repo_url"]),
        ] {
            for k in keys {
                if card.contains_key(k) {
                    let slot = self.field_mut(field);
                    if slot.is_none() {
                        *slot = s(k);
                    }
                }
            }
        }
        if card.contains_key("model_creator") && self.author.is_none() {
            self.author = s("model_creator");
        }
        if card.contains_key("model_type") && self.basename.is_none() {
            self.basename = s("model_type");
        }
        if let Some(v) = card
            .get("base_model")
            .or_else(|| card.get("base_models"))
            .or_else(|| card.get("base_model_sources"))
        {
            let list = self.base_models.get_or_insert_with(Vec::new);
            list.extend(ref_entries(v, total_params));
        } else if card.contains_key("base_model")
            || card.contains_key("base_models")
            || card.contains_key("base_model_sources")
        {
            self.base_models.get_or_insert_with(Vec::new);
        }
        if let Some(v) = card
            .get("datasets")
            .or_else(|| card.get("dataset"))
            .or_else(|| card.get("dataset_sources"))
        {
            let list = self.datasets.get_or_insert_with(Vec::new);
            list.extend(ref_entries(v, total_params));
        } else if card.contains_key("datasets")
            || card.contains_key("dataset")
            || card.contains_key("dataset_sources")
        {
            self.datasets.get_or_insert_with(Vec::new);
        }
        if card.contains_key("license") && self.license.is_none() {
            self.license = match card.get("license") {
                Some(Json::Array(a)) => {
                    Some(a.iter().filter_map(json_str).collect::<Vec<_>>().join(","))
                }
                Some(v) => json_str(v),
                None => None,
            };
        }
        if card.contains_key("license_name") && self.license_name.is_none() {
            self.license_name = s("license_name");
        }
        if card.contains_key("license_link") && self.license_link.is_none() {
            self.license_link = s("license_link");
        }
        for (key, target) in [
            ("tags", 0),
            ("pipeline_tag", 0),
            ("languages", 1),
            ("language", 1),
        ] {
            let Some(v) = card.get(key).filter(|v| !v.is_null()) else {
                continue;
            };
            let slot = if target == 0 {
                &mut self.tags
            } else {
                &mut self.languages
            };
            let list = slot.get_or_insert_with(Vec::new);
            match v {
                Json::String(s) => list.push(s.clone()),
                Json::Array(a) => list.extend(a.iter().filter_map(json_str)),
                _ => {}
            }
        }
    }

    fn field_mut(&mut self, field: &str) -> &mut Option<String> {
        match field {
            "name" => &mut self.name,
            "author" => &mut self.author,
            "version" => &mut self.version,
            "organization" => &mut self.organization,
            "description" => &mut self.description,
            "finetune" => &mut self.finetune,
            "basename" => &mut self.basename,
            "size_label" => &mut self.size_label,
            "source_url" => &mut self.source_url,
            "source_doi" => &mut self.source_doi,
            "source_uuid" => &mut self.source_uuid,
            _ => &mut self.source_repo_url,
        }
    }

    /// Writes the KVs in `set_gguf_meta_model` order.
    pub fn write(&self, w: &mut GgufWriter) {
        for (k, v) in &self.sampling {
            w.add_kv(format!("general.sampling.{k}"), v.clone());
        }
        let mut s = |k: &str, v: &Option<String>| {
            if let Some(v) = v
                && !v.is_empty()
            {
                w.add_kv(format!("general.{k}"), Value::str(v));
            }
        };
        s("name", &self.name);
        s("author", &self.author);
        s("version", &self.version);
        s("organization", &self.organization);
        s("finetune", &self.finetune);
        s("basename", &self.basename);
        s("description", &self.description);
        s("quantized_by", &self.quantized_by);
        s("size_label", &self.size_label);
        s("license", &self.license);
        s("license.name", &self.license_name);
        s("license.link", &self.license_link);
        s("source.url", &self.source_url);
        s("source.doi", &self.source_doi);
        s("source.uuid", &self.source_uuid);
        s("source.repo_url", &self.source_repo_url);
        for (prefix, list) in [
            ("base_model", &self.base_models),
            ("dataset", &self.datasets),
        ] {
            let Some(list) = list else { continue };
            w.add_kv(
                format!("general.{prefix}.count"),
                Value::U32(list.len() as u32),
            );
            for (i, entry) in list.iter().enumerate() {
                for key in [
                    "name",
                    "author",
                    "version",
                    "organization",
                    "description",
                    "url",
                    "doi",
                    "uuid",
                    "repo_url",
                ] {
                    if let Some((_, v)) = entry.iter().find(|(k, _)| k == key)
                        && !v.is_empty()
                    {
                        w.add_kv(format!("general.{prefix}.{i}.{key}"), Value::str(v));
                    }
                }
            }
        }
        if let Some(t) = &self.tags
            && !t.is_empty()
        {
            w.add_kv("general.tags", Value::Array(Array::strings(t)));
        }
        if let Some(l) = &self.languages
            && !l.is_empty()
        {
            w.add_kv("general.languages", Value::Array(Array::strings(l)));
        }
    }
}

fn fill(slot: &mut Option<String>, v: Option<String>) {
    if slot.is_none() {
        *slot = v;
    }
}

/// base_model / datasets entries: ids, URLs or dicts.
fn ref_entries(v: &Json, total_params: i64) -> Vec<Vec<(String, String)>> {
    let items: Vec<&Json> = match v {
        Json::String(_) => vec![v],
        Json::Array(a) => a.iter().collect(),
        _ => vec![],
    };
    let url_re = Regex::new(r"^https?://huggingface.co/([^/]+/[^/]+)$").expect("static regex");
    let mut out = Vec::new();
    for item in items {
        let mut e: Vec<(String, String)> = Vec::new();
        match item {
            Json::String(id) => {
                if id.starts_with("http://")
                    || id.starts_with("https://")
                    || id.starts_with("ssh://")
                {
                    e.push(("repo_url".into(), id.clone()));
                    if id.contains("huggingface.co")
                        && let Some(c) = url_re.captures(id)
                    {
                        let (full, org, _, _, version, _) =
                            model_id_components(&c[1], total_params);
                        if let Some(f) = full {
                            e.push(("name".into(), id_to_title(&f)));
                        }
                        if let Some(o) = org {
                            e.push(("organization".into(), id_to_title(&o)));
                        }
                        if let Some(v) = version {
                            e.push(("version".into(), v));
                        }
                    }
                } else {
                    let (full, org, _, _, version, _) = model_id_components(id, total_params);
                    if let Some(f) = &full {
                        e.push(("name".into(), id_to_title(f)));
                    }
                    if let Some(o) = &org {
                        e.push(("organization".into(), id_to_title(o)));
                    }
                    if let Some(v) = version {
                        e.push(("version".into(), v));
                    }
                    if let (Some(o), Some(f)) = (org, full) {
                        e.push(("repo_url".into(), format!("https://huggingface.co/{o}/{f}")));
                    }
                }
            }
            Json::Object(m) => {
                for (k, v) in m {
                    if let Some(s) = json_str(v) {
                        e.push((k.clone(), s));
                    }
                }
            }
            _ => {}
        }
        out.push(e);
    }
    out
}

/// generation_config.json → `general.sampling.*` (in write order).
fn sampling(gc: &Map<String, Json>) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let num = |k: &str| gc.get(k).filter(|v| !v.is_null());
    if let Some(Json::String(s)) = num("sequence") {
        out.push(("sequence", Value::str(s)));
    }
    let int = |v: &Json| v.as_i64().map(|x| Value::I32(x as i32));
    let flt = |v: &Json| v.as_f64().map(|x| Value::F32(x as f32));
    let push = |out: &mut Vec<(&'static str, Value)>, name: &'static str, v: Option<Value>| {
        if let Some(v) = v {
            out.push((name, v));
        }
    };
    push(&mut out, "top_k", num("top_k").and_then(int));
    push(&mut out, "top_p", num("top_p").and_then(flt));
    push(&mut out, "min_p", num("min_p").and_then(flt));
    push(
        &mut out,
        "xtc_probability",
        num("xtc_probability").and_then(flt),
    );
    push(
        &mut out,
        "xtc_threshold",
        num("xtc_threshold").and_then(flt),
    );
    push(&mut out, "temp", num("temperature").and_then(flt));
    push(
        &mut out,
        "penalty_last_n",
        num("penalty_last_n").and_then(int),
    );
    let repeat = gc
        .get("penalty_repeat")
        .or_else(|| gc.get("repetition_penalty"))
        .filter(|v| !v.is_null());
    push(&mut out, "penalty_repeat", repeat.and_then(flt));
    push(&mut out, "mirostat", num("mirostat").and_then(int));
    push(&mut out, "mirostat_tau", num("mirostat_tau").and_then(flt));
    push(&mut out, "mirostat_eta", num("mirostat_eta").and_then(flt));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_components_match_the_reference_examples() {
        let c = model_id_components("meta-llama/Llama-3.2-1B-Instruct", 0);
        assert_eq!(c.0.as_deref(), Some("Llama-3.2-1B-Instruct"));
        assert_eq!(c.1.as_deref(), Some("meta-llama"));
        assert_eq!(c.2.as_deref(), Some("Llama-3.2"));
        assert_eq!(c.3.as_deref(), Some("Instruct"));
        assert_eq!(c.5.as_deref(), Some("1B"));
        let c = model_id_components("mistralai/Mistral-7B-Instruct-v0.3", 0);
        assert_eq!(c.2.as_deref(), Some("Mistral"));
        assert_eq!(c.4.as_deref(), Some("v0.3"));
        assert_eq!(c.5.as_deref(), Some("7B"));
        assert_eq!(
            id_to_title("Mistral-7B-Instruct-v0.3"),
            "Mistral 7B Instruct v0.3"
        );
        assert_eq!(id_to_title("gpt2"), "Gpt2");
        assert_eq!(id_to_title("llama-tiny"), "Llama Tiny");
        assert_eq!(model_id_components("gpt2", 0).2, None);
    }

    #[test]
    fn size_labels_match_the_reference_examples() {
        assert_eq!(size_label(124_439_808), "124M");
        assert_eq!(size_label(3_300_000), "3.3M");
        assert_eq!(size_label(16_500_000), "16M");
        assert_eq!(size_label(1_240_000_000), "1.2B");
    }
}
