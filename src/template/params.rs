//! Ollama's PARAMETER table: names, Go types, validation and encodings.
//!
//! Source of truth: `api.Options` + `api.Runner` as validated by `api.FormatParams`
//! in Ollama's `api/types.go` (see `docs/ollama.md`). A value is checked the way `ollama create`
//! checks a Modelfile line (ParseInt / ParseFloat(…, 32) / ParseBool), so anything that
//! validates here is accepted by Ollama, and it is stored typed so the Modelfile text and the
//! params-blob JSON are exact.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use super::golang::{self, FloatError};

/// The Go type of a parameter, which decides how its value is parsed and encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// Go `int`: `strconv.ParseInt(s, 10, 64)`; JSON number.
    Int,
    /// Go `float32`: `strconv.ParseFloat(s, 32)`; JSON number.
    Float,
    /// Go `bool`: `strconv.ParseBool`; JSON boolean.
    Bool,
    /// Go `[]string` (`stop`): one PARAMETER line per entry; JSON array.
    StringList,
}

impl ParamType {
    /// The name used in messages ("an integer", …).
    pub fn describe(self) -> &'static str {
        match self {
            ParamType::Int => "an integer (Go int)",
            ParamType::Float => "a number (Go float32)",
            ParamType::Bool => "a boolean",
            ParamType::StringList => "a list of strings",
        }
    }
}

/// When Ollama applies a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamGroup {
    /// `api.Runner`: applied when the model is loaded (changing it reloads the runner).
    Runner,
    /// `api.Options`: applied per request.
    Options,
}

/// One valid PARAMETER name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamSpec {
    /// The exact, lower-case name (the JSON tag in `api.Options`).
    pub name: &'static str,
    /// Its Go type.
    pub ty: ParamType,
    /// Load-time or per-request.
    pub group: ParamGroup,
}

const fn spec(name: &'static str, ty: ParamType, group: ParamGroup) -> ParamSpec {
    ParamSpec { name, ty, group }
}

/// Every PARAMETER name Ollama accepts, in the order of the `api.Options` and `api.Runner`
/// fields of Ollama's `api/types.go`.
pub const PARAMETERS: &[ParamSpec] = &[
    spec("num_ctx", ParamType::Int, ParamGroup::Runner),
    spec("num_batch", ParamType::Int, ParamGroup::Runner),
    spec("num_gpu", ParamType::Int, ParamGroup::Runner),
    spec("main_gpu", ParamType::Int, ParamGroup::Runner),
    spec("use_mmap", ParamType::Bool, ParamGroup::Runner),
    spec("num_thread", ParamType::Int, ParamGroup::Runner),
    spec("draft_num_predict", ParamType::Int, ParamGroup::Runner),
    spec("num_keep", ParamType::Int, ParamGroup::Options),
    spec("seed", ParamType::Int, ParamGroup::Options),
    spec("num_predict", ParamType::Int, ParamGroup::Options),
    spec("top_k", ParamType::Int, ParamGroup::Options),
    spec("top_p", ParamType::Float, ParamGroup::Options),
    spec("min_p", ParamType::Float, ParamGroup::Options),
    spec("typical_p", ParamType::Float, ParamGroup::Options),
    spec("repeat_last_n", ParamType::Int, ParamGroup::Options),
    spec("temperature", ParamType::Float, ParamGroup::Options),
    spec("repeat_penalty", ParamType::Float, ParamGroup::Options),
    spec("presence_penalty", ParamType::Float, ParamGroup::Options),
    spec("frequency_penalty", ParamType::Float, ParamGroup::Options),
    spec("stop", ParamType::StringList, ParamGroup::Options),
];

/// Names Ollama drops with `warning: parameter X is deprecated` (`deprecatedParameters`).
pub const DEPRECATED_PARAMETERS: &[&str] = &[
    "penalize_newline",
    "low_vram",
    "f16_kv",
    "logits_all",
    "vocab_only",
    "use_mlock",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
];

/// Names that used to exist and are now a hard `unknown parameter` error in Ollama.
const REMOVED_PARAMETERS: &[&str] = &["tfs_z", "numa", "num_gqa", "rope_frequency_base"];

/// Looks up a PARAMETER name (exact, case-sensitive, like Ollama).
pub fn lookup(name: &str) -> Option<&'static ParamSpec> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// A validated PARAMETER value, typed by its name's Go type.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// Go int.
    Int(i64),
    /// Go float32 (finite).
    Float(f32),
    /// Go bool.
    Bool(bool),
    /// Go []string (`stop`); never empty, no empty entries.
    List(Vec<String>),
}

impl ParamValue {
    /// The type of this value.
    pub fn ty(&self) -> ParamType {
        match self {
            ParamValue::Int(_) => ParamType::Int,
            ParamValue::Float(_) => ParamType::Float,
            ParamValue::Bool(_) => ParamType::Bool,
            ParamValue::List(_) => ParamType::StringList,
        }
    }

    /// The raw (unquoted) text of each `PARAMETER <name> …` line this value becomes: one line
    /// for scalars, one per entry for `stop`. The Modelfile writer adds quoting.
    pub fn modelfile_texts(&self) -> Vec<String> {
        match self {
            ParamValue::Int(i) => vec![i.to_string()],
            ParamValue::Float(f) => vec![golang::format_float32(*f)],
            ParamValue::Bool(b) => vec![b.to_string()],
            ParamValue::List(items) => items.clone(),
        }
    }

    /// The JSON this value gets in an Ollama params blob: numbers as numbers (float32
    /// formatting), booleans, and `stop` as an array of strings; Go `encoding/json` bytes.
    pub fn to_json(&self) -> String {
        match self {
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => golang::format_float32(*f),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::List(items) => {
                let mut out = String::from("[");
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    golang::push_json_string(&mut out, s);
                }
                out.push(']');
                out
            }
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::List(items) => write!(f, "{items:?}"),
            other => f.write_str(&other.modelfile_texts().concat()),
        }
    }
}

/// Serializes as the JSON value Ollama stores (number, boolean or array of strings).
impl Serialize for ParamValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ParamValue::Int(i) => s.serialize_i64(*i),
            ParamValue::Float(f) => s.serialize_f32(*f),
            ParamValue::Bool(b) => s.serialize_bool(*b),
            ParamValue::List(items) => items.serialize(s),
        }
    }
}

/// A PARAMETER value as written by a user (in TOML), before it is checked against the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string, parsed like the text of a Modelfile line.
    Str(String),
    /// A list of strings (`stop`).
    List(Vec<String>),
}

impl RawValue {
    fn describe(&self) -> String {
        match self {
            RawValue::Bool(b) => format!("the boolean {b}"),
            RawValue::Int(i) => format!("the integer {i}"),
            RawValue::Float(f) => format!("the float {f:?}"),
            RawValue::Str(s) => format!("the string {s:?}"),
            RawValue::List(l) => format!("the list {l:?}"),
        }
    }
}

/// Why a PARAMETER was rejected. Every message names the parameter and says what to write.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// The name is not in Ollama's table.
    #[error("{}", unknown_message(name, suggestion.as_deref()))]
    Unknown {
        /// The name as written.
        name: String,
        /// The closest valid name, if one is close.
        suggestion: Option<&'static str>,
    },
    /// Ollama ignores this parameter with a warning; writing it has no effect.
    #[error(
        "PARAMETER `{name}` is deprecated: Ollama ignores it (\"warning: parameter {name} is deprecated\"); remove it"
    )]
    Deprecated {
        /// The deprecated name.
        name: String,
    },
    /// The value has the wrong type or cannot be parsed as the parameter's Go type.
    #[error("PARAMETER `{name}` must be {}; got {got}{}", expected.describe(), hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Type {
        /// The parameter.
        name: String,
        /// Its Go type.
        expected: ParamType,
        /// What was given.
        got: String,
        /// How to fix it, when there is an obvious fix.
        hint: Option<String>,
    },
    /// The value has the right type but Ollama cannot store or use it.
    #[error("PARAMETER `{name}`: {msg}")]
    Invalid {
        /// The parameter.
        name: String,
        /// What is wrong and what to do.
        msg: String,
    },
}

fn unknown_message(name: &str, suggestion: Option<&str>) -> String {
    let mut msg = format!("unknown PARAMETER `{name}`");
    if REMOVED_PARAMETERS.contains(&name) {
        msg.push_str(" (removed from Ollama; `ollama create` fails on it)");
    }
    if let Some(s) = suggestion {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg.push_str(&format!(
        " Ollama accepts (lower-case, exactly): {}",
        allowed_names()
    ));
    msg
}

/// The valid names, comma-separated, for messages.
pub fn allowed_names() -> String {
    PARAMETERS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest valid name to a misspelt one, if any is plausibly meant.
fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(p) = lookup(&lower) {
        return Some(p.name);
    }
    let (best, dist) = PARAMETERS
        .iter()
        .map(|p| (p.name, strsim::levenshtein(&lower, p.name)))
        .min_by_key(|&(_, d)| d)?;
    let limit = (best.len() / 3).max(2);
    (dist <= limit).then_some(best)
}

/// Checks a parameter name: valid, not deprecated.
pub fn check_name(name: &str) -> Result<&'static ParamSpec, ParamError> {
    if let Some(p) = lookup(name) {
        return Ok(p);
    }
    if DEPRECATED_PARAMETERS.contains(&name) {
        return Err(ParamError::Deprecated { name: name.into() });
    }
    Err(ParamError::Unknown {
        name: name.into(),
        suggestion: suggest(name),
    })
}

/// Validates a manifest value for PARAMETER `name` and types it.
///
/// Numbers, booleans and lists are taken as typed; a string is parsed exactly as Ollama parses
/// the text of a Modelfile line. Ints reject `4096.0` and `"1e3"`; floats are rounded to
/// float32 like `ParseFloat(…, 32)`; `stop` takes a list (or one string).
pub fn validate(name: &str, value: &RawValue) -> Result<ParamValue, ParamError> {
    let spec = check_name(name)?;
    let wrong = |hint: Option<String>| ParamError::Type {
        name: name.into(),
        expected: spec.ty,
        got: value.describe(),
        hint,
    };
    match (spec.ty, value) {
        (ParamType::Int, RawValue::Int(i)) => Ok(ParamValue::Int(*i)),
        (ParamType::Int, RawValue::Float(f)) => {
            Err(wrong((f.fract() == 0.0 && f.abs() < 9e15).then(|| {
                format!("write {} without a decimal point", *f as i64)
            })))
        }
        (ParamType::Int, RawValue::Str(s)) => {
            golang::parse_int(s).map(ParamValue::Int).ok_or_else(|| {
                wrong(Some(
                    "Ollama parses it with strconv.ParseInt(s, 10, 64)".into(),
                ))
            })
        }
        (ParamType::Float, RawValue::Float(f)) => {
            // The shortest text of the f64 is what the user meant; round that to float32.
            float_from_text(name, &format!("{f}"), value)
        }
        (ParamType::Float, RawValue::Int(i)) => float_from_text(name, &i.to_string(), value),
        (ParamType::Float, RawValue::Str(s)) => float_from_text(name, s, value),
        (ParamType::Bool, RawValue::Bool(b)) => Ok(ParamValue::Bool(*b)),
        (ParamType::Bool, RawValue::Str(s)) => golang::parse_bool(s)
            .map(ParamValue::Bool)
            .ok_or_else(|| wrong(Some("write true or false".into()))),
        (ParamType::StringList, RawValue::List(items)) => stop_list(name, items.clone()),
        (ParamType::StringList, RawValue::Str(s)) => stop_list(name, vec![s.clone()]),
        (ParamType::StringList, _) => Err(wrong(Some(format!("write {name} = [\"…\", \"…\"]")))),
        (ParamType::Bool, _) => Err(wrong(Some("write true or false".into()))),
        (ParamType::Int | ParamType::Float, _) => Err(wrong(None)),
    }
}

/// Validates a `toml::Value` for PARAMETER `name` (see [`validate`]).
pub fn validate_toml(name: &str, value: &toml::Value) -> Result<ParamValue, ParamError> {
    let raw = match value {
        toml::Value::Boolean(b) => RawValue::Bool(*b),
        toml::Value::Integer(i) => RawValue::Int(*i),
        toml::Value::Float(f) => RawValue::Float(*f),
        toml::Value::String(s) => RawValue::Str(s.clone()),
        toml::Value::Array(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    toml::Value::String(s) => list.push(s.clone()),
                    other => {
                        let spec = check_name(name)?;
                        return Err(ParamError::Type {
                            name: name.into(),
                            expected: spec.ty,
                            got: format!("a list containing {other}"),
                            hint: (spec.ty == ParamType::StringList)
                                .then(|| "every entry must be a string".into()),
                        });
                    }
                }
            }
            RawValue::List(list)
        }
        other => {
            let spec = check_name(name)?;
            return Err(ParamError::Type {
                name: name.into(),
                expected: spec.ty,
                got: format!("a TOML {}", other.type_str()),
                hint: None,
            });
        }
    };
    validate(name, &raw)
}

/// Parses the text of one `PARAMETER name value` line the way `api.FormatParams` does.
/// For `stop` the result is a one-entry list (lines accumulate in the caller).
pub fn parse_modelfile_value(name: &str, text: &str) -> Result<ParamValue, ParamError> {
    let spec = check_name(name)?;
    match spec.ty {
        ParamType::StringList => stop_list(name, vec![text.to_string()]),
        _ => validate(name, &RawValue::Str(text.to_string())),
    }
}

/// Checks that `value` has the type PARAMETER `name` requires (for values built in code).
pub fn check_typed(name: &str, value: &ParamValue) -> Result<(), ParamError> {
    let spec = check_name(name)?;
    if spec.ty != value.ty() {
        return Err(ParamError::Type {
            name: name.into(),
            expected: spec.ty,
            got: format!("a value of type {}", value.ty().describe()),
            hint: None,
        });
    }
    match value {
        ParamValue::Float(f) if !f.is_finite() => Err(ParamError::Invalid {
            name: name.into(),
            msg: format!("{f} cannot be stored: Ollama's JSON encoder rejects NaN and infinities"),
        }),
        ParamValue::List(items) => stop_list(name, items.clone()).map(|_| ()),
        _ => Ok(()),
    }
}

fn float_from_text(name: &str, text: &str, raw: &RawValue) -> Result<ParamValue, ParamError> {
    match golang::parse_float32(text) {
        Ok(f) if f.is_finite() => Ok(ParamValue::Float(f)),
        Ok(f) => Err(ParamError::Invalid {
            name: name.into(),
            msg: format!("{f} cannot be stored: Ollama's JSON encoder rejects NaN and infinities"),
        }),
        Err(FloatError::Range) => Err(ParamError::Invalid {
            name: name.into(),
            msg: format!("{text} is out of float32 range (about ±3.4e38)"),
        }),
        Err(FloatError::Syntax) => Err(ParamError::Type {
            name: name.into(),
            expected: ParamType::Float,
            got: raw.describe(),
            hint: Some("Ollama parses it with strconv.ParseFloat(s, 32)".into()),
        }),
    }
}

fn stop_list(name: &str, items: Vec<String>) -> Result<ParamValue, ParamError> {
    if items.is_empty() {
        return Err(ParamError::Invalid {
            name: name.into(),
            msg: "the list is empty; remove the parameter or add stop strings".into(),
        });
    }
    if items.iter().any(String::is_empty) {
        return Err(ParamError::Invalid {
            name: name.into(),
            msg: "an empty stop string would stop generation immediately; remove it".into(),
        });
    }
    Ok(ParamValue::List(items))
}

/// The params blob Ollama stores for these parameters: a JSON object with sorted keys (Go map
/// encoding), typed values, and the trailing newline of `json.Encoder`. Every entry is checked.
pub fn params_blob(params: &[(String, ParamValue)]) -> Result<String, ParamError> {
    let mut sorted: Vec<&(String, ParamValue)> = params.iter().collect();
    for (name, value) in &sorted {
        check_typed(name, value)?;
    }
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ParamError::Invalid {
            name: w[0].0.clone(),
            msg: "given twice; give each parameter once (put every stop string in one list)".into(),
        });
    }
    let mut out = String::from("{");
    for (i, (name, value)) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        golang::push_json_string(&mut out, name);
        out.push(':');
        out.push_str(&value.to_json());
    }
    out.push_str("}\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_str(s: &str) -> RawValue {
        RawValue::Str(s.into())
    }

    #[test]
    fn table_matches_the_notes() {
        assert_eq!(PARAMETERS.len(), 20);
        let ints = [
            "num_ctx",
            "num_batch",
            "num_gpu",
            "main_gpu",
            "num_thread",
            "draft_num_predict",
            "num_keep",
            "seed",
            "num_predict",
            "top_k",
            "repeat_last_n",
        ];
        let floats = [
            "top_p",
            "min_p",
            "typical_p",
            "temperature",
            "repeat_penalty",
            "presence_penalty",
            "frequency_penalty",
        ];
        for n in ints {
            assert_eq!(lookup(n).map(|p| p.ty), Some(ParamType::Int), "{n}");
        }
        for n in floats {
            assert_eq!(lookup(n).map(|p| p.ty), Some(ParamType::Float), "{n}");
        }
        assert_eq!(lookup("use_mmap").map(|p| p.ty), Some(ParamType::Bool));
        assert_eq!(lookup("stop").map(|p| p.ty), Some(ParamType::StringList));
        for p in PARAMETERS {
            assert_eq!(p.name, p.name.to_ascii_lowercase());
        }
        for d in DEPRECATED_PARAMETERS {
            assert!(lookup(d).is_none());
        }
    }

    #[test]
    fn ints_reject_floats_and_float_text() {
        assert_eq!(
            validate("num_ctx", &RawValue::Int(4096)),
            Ok(ParamValue::Int(4096))
        );
        assert_eq!(
            validate("num_ctx", &raw_str("4096")),
            Ok(ParamValue::Int(4096))
        );
        let e = validate("num_ctx", &RawValue::Float(4096.0)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`num_ctx`"), "{msg}");
        assert!(msg.contains("integer"), "{msg}");
        assert!(msg.contains("write 4096 without a decimal point"), "{msg}");
        assert!(validate("num_ctx", &raw_str("4096.0")).is_err());
        assert!(validate("num_ctx", &raw_str("1e3")).is_err());
        assert!(validate("seed", &RawValue::Bool(true)).is_err());
        assert_eq!(
            validate("seed", &RawValue::Int(-1)),
            Ok(ParamValue::Int(-1))
        );
    }

    #[test]
    fn floats_are_float32() {
        assert_eq!(
            validate("temperature", &RawValue::Float(0.7)),
            Ok(ParamValue::Float(0.7))
        );
        assert_eq!(
            validate("temperature", &RawValue::Int(1)),
            Ok(ParamValue::Float(1.0))
        );
        assert_eq!(
            validate("top_p", &raw_str("0.9")),
            Ok(ParamValue::Float(0.9))
        );
        assert_eq!(
            validate("top_p", &raw_str(".5")),
            Ok(ParamValue::Float(0.5))
        );
        let e = validate("temperature", &raw_str("0.7 # hot"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`temperature`") && e.contains("float32"), "{e}");
        assert!(validate("temperature", &RawValue::Float(f64::NAN)).is_err());
        assert!(validate("temperature", &raw_str("inf")).is_err());
        let e = validate("temperature", &RawValue::Float(1e39))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of float32 range"), "{e}");
    }

    #[test]
    fn bools_and_lists() {
        assert_eq!(
            validate("use_mmap", &RawValue::Bool(false)),
            Ok(ParamValue::Bool(false))
        );
        assert_eq!(
            validate("use_mmap", &raw_str("TRUE")),
            Ok(ParamValue::Bool(true))
        );
        assert!(validate("use_mmap", &RawValue::Int(1)).is_err());
        assert_eq!(
            validate(
                "stop",
                &RawValue::List(vec!["<|im_end|>".into(), "<|im_start|>".into()])
            ),
            Ok(ParamValue::List(vec![
                "<|im_end|>".into(),
                "<|im_start|>".into()
            ]))
        );
        assert_eq!(
            validate("stop", &raw_str("</s>")),
            Ok(ParamValue::List(vec!["</s>".into()]))
        );
        assert!(validate("stop", &RawValue::List(vec![])).is_err());
        assert!(validate("stop", &RawValue::List(vec!["".into()])).is_err());
        let e = validate("stop", &RawValue::Int(3)).unwrap_err().to_string();
        assert!(e.contains("list of strings"), "{e}");
        assert!(validate("temperature", &RawValue::List(vec!["1".into()])).is_err());
    }

    #[test]
    fn unknown_names_suggest_and_list() {
        let e = validate("temprature", &RawValue::Float(0.5)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("did you mean `temperature`"), "{msg}");
        assert!(msg.contains("num_ctx, num_batch"), "{msg}");
        let e = validate("TEMPERATURE", &RawValue::Float(0.5))
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `temperature`"), "{e}");
        let e = validate("tfs_z", &RawValue::Float(1.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("removed from Ollama"), "{e}");
        let e = validate("zzzzzzzz", &RawValue::Int(1)).unwrap_err();
        assert_eq!(
            e,
            ParamError::Unknown {
                name: "zzzzzzzz".into(),
                suggestion: None
            }
        );
        let e = validate("mirostat", &RawValue::Int(1)).unwrap_err();
        assert!(matches!(e, ParamError::Deprecated { .. }));
    }

    #[test]
    fn toml_values() {
        let doc: toml::Table = toml::from_str(
            "num_ctx = 2048\ntemperature = 0.7\nstop = [\"a\", \"b\"]\nuse_mmap = true\nbad = [1]\nnum_keep = 4096.0\n",
        )
        .unwrap();
        assert_eq!(
            validate_toml("num_ctx", &doc["num_ctx"]),
            Ok(ParamValue::Int(2048))
        );
        assert_eq!(
            validate_toml("temperature", &doc["temperature"]),
            Ok(ParamValue::Float(0.7))
        );
        assert_eq!(
            validate_toml("stop", &doc["stop"]),
            Ok(ParamValue::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            validate_toml("use_mmap", &doc["use_mmap"]),
            Ok(ParamValue::Bool(true))
        );
        assert!(validate_toml("stop", &doc["bad"]).is_err());
        assert!(validate_toml("num_keep", &doc["num_keep"]).is_err());
    }

    #[test]
    fn raw_values_deserialize_from_toml() {
        #[derive(Deserialize)]
        struct T {
            p: std::collections::BTreeMap<String, RawValue>,
        }
        let t: T =
            toml::from_str("[p]\na = 1\nb = 0.5\nc = true\nd = \"x\"\ne = [\"y\"]\n").unwrap();
        assert_eq!(t.p["a"], RawValue::Int(1));
        assert_eq!(t.p["b"], RawValue::Float(0.5));
        assert_eq!(t.p["c"], RawValue::Bool(true));
        assert_eq!(t.p["d"], raw_str("x"));
        assert_eq!(t.p["e"], RawValue::List(vec!["y".into()]));
    }

    #[test]
    fn blob_json_types_and_order() {
        let params = vec![
            ("temperature".to_string(), ParamValue::Float(0.7)),
            (
                "stop".to_string(),
                ParamValue::List(vec!["<|im_end|>".into(), "\"q\"".into()]),
            ),
            ("num_ctx".to_string(), ParamValue::Int(4096)),
            ("use_mmap".to_string(), ParamValue::Bool(true)),
        ];
        let blob = params_blob(&params).unwrap();
        assert_eq!(
            blob,
            "{\"num_ctx\":4096,\"stop\":[\"\\u003c|im_end|\\u003e\",\"\\\"q\\\"\"],\"temperature\":0.7,\"use_mmap\":true}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&blob).unwrap();
        assert!(v["num_ctx"].is_i64());
        assert!(v["temperature"].is_f64());
        assert!(v["stop"].is_array());
        assert!(v["use_mmap"].is_boolean());
        // Duplicates and wrong types are refused.
        let dup = vec![
            ("seed".to_string(), ParamValue::Int(1)),
            ("seed".to_string(), ParamValue::Int(2)),
        ];
        assert!(params_blob(&dup).is_err());
        assert!(params_blob(&[("seed".to_string(), ParamValue::Float(1.0))]).is_err());
    }

    #[test]
    fn serialize_is_the_json_value() {
        assert_eq!(
            serde_json::to_string(&ParamValue::Float(0.7)).unwrap(),
            "0.7"
        );
        assert_eq!(serde_json::to_string(&ParamValue::Int(3)).unwrap(), "3");
        assert_eq!(
            serde_json::to_string(&ParamValue::List(vec!["a".into()])).unwrap(),
            "[\"a\"]"
        );
    }

    #[test]
    fn modelfile_line_values() {
        assert_eq!(
            parse_modelfile_value("num_ctx", "4096"),
            Ok(ParamValue::Int(4096))
        );
        assert_eq!(
            parse_modelfile_value("stop", "<|im_end|>"),
            Ok(ParamValue::List(vec!["<|im_end|>".into()]))
        );
        assert!(parse_modelfile_value("temperature", "0.7 # hot").is_err());
        assert_eq!(ParamValue::Float(0.7).modelfile_texts(), vec!["0.7"]);
        assert_eq!(ParamValue::Float(1.0).modelfile_texts(), vec!["1"]);
    }
}
