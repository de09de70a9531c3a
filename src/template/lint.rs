//! Lint: will this model + Modelfile actually chat and stop? Checks the Go template, the stop
//! strings and template markers against the vocabulary, the PARAMETERs, the Modelfile quoting,
//! and the tokenizer itself (merges, bos/eos ids, vocab size vs embedding rows).

use std::fmt;
use std::path::Path;

use super::families::BuiltinTemplate;
use super::gotmpl::{self, Mode};
use super::modelfile::{self, Modelfile};
use super::params::{self, ParamValue};
use super::vocab::Vocab;
use crate::formats::gguf::token_type;

/// How bad a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The model will misbehave (fails the build unless `--allow-lint`).
    Error,
    /// Probably wrong, or unverifiable.
    Warning,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// A stable short code (`stop-not-in-vocab`, `bpe-no-merges`, …).
    pub code: &'static str,
    /// What is wrong, specifically.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// The result of a lint run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintReport {
    /// Findings in check order.
    pub findings: Vec<Finding>,
}

/// A lint report as stored (`lint.json` of the `lint` action) and printed (`tinylm lint
/// --json`); `tinylm lint` reads it back for built artifacts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LintRecord {
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Findings in check order.
    pub findings: Vec<FindingRecord>,
}

/// One finding of a [`LintRecord`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FindingRecord {
    /// Error or warning.
    pub severity: Severity,
    /// The stable short code.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl From<&LintReport> for LintRecord {
    fn from(r: &LintReport) -> LintRecord {
        LintRecord {
            errors: r.errors(),
            warnings: r.warnings(),
            findings: r
                .findings
                .iter()
                .map(|f| FindingRecord {
                    severity: f.severity,
                    code: f.code.to_string(),
                    message: f.message.clone(),
                    hint: f.hint.clone(),
                })
                .collect(),
        }
    }
}

impl LintReport {
    fn push(
        &mut self,
        severity: Severity,
        code: &'static str,
        message: String,
        hint: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            code,
            message,
            hint: hint.into(),
        });
    }

    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Number of warnings.
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.errors() > 0
    }

    /// Whether a finding with this code exists.
    pub fn has(&self, code: &str) -> bool {
        self.findings.iter().any(|f| f.code == code)
    }
}

impl fmt::Display for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.findings {
            let s = match x.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{s}[{}]: {}", x.code, x.message)?;
            writeln!(f, "  fix: {}", x.hint)?;
        }
        write!(
            f,
            "{} error(s), {} warning(s)",
            self.errors(),
            self.warnings()
        )
    }
}

/// Tokenizer sanity: BPE merges, bos/eos ids in range, vocab size = embedding rows.
pub fn check_tokenizer(v: &Vocab, r: &mut LintReport) {
    let n = v.tokens.len() as u64;
    if n == 0 {
        r.push(
            Severity::Error,
            "no-vocab",
            "the model has no tokenizer.ggml.tokens".into(),
            "convert the model with its tokenizer (tokenizer.json or tokenizer.model)",
        );
        return;
    }
    if v.model == "gpt2" && v.merges.unwrap_or(0) == 0 {
        r.push(
            Severity::Error,
            "bpe-no-merges",
            format!(
                "the BPE tokenizer has {} merges: without merges every word splits into single bytes and the model reads garbage",
                v.merges.map_or("no".to_string(), |m| m.to_string())
            ),
            "re-export with the tokenizer's merges (tokenizer.json model.merges → tokenizer.ggml.merges)",
        );
    }
    if !v.token_types.is_empty() && v.token_types.len() as u64 != n {
        r.push(
            Severity::Error,
            "token-types-length",
            format!(
                "tokenizer.ggml.token_type has {} entries for {n} tokens",
                v.token_types.len()
            ),
            "regenerate the GGUF; the two arrays must be parallel",
        );
    }
    for (name, id) in [("bos", v.bos_id), ("eos", v.eos_id), ("eot", v.eot_id)] {
        if let Some(id) = id
            && id >= n
        {
            r.push(
                Severity::Error,
                "special-id-out-of-range",
                format!("tokenizer.ggml.{name}_token_id = {id}, but the vocabulary has {n} tokens"),
                format!("set {name}_token_id to the id of the {name} token (0..{n})"),
            );
        }
    }
    if v.eos_id.is_none() {
        r.push(
            Severity::Warning,
            "no-eos",
            "the model declares no EOS token (tokenizer.ggml.eos_token_id)".into(),
            "set eos_token in tokenizer_config.json / generation_config.json before converting",
        );
    }
    for (what, rows) in [
        ("token_embd.weight", v.embedding_rows),
        ("output.weight", v.output_rows),
    ] {
        if let Some(rows) = rows
            && rows != n
        {
            r.push(
                Severity::Error,
                "vocab-size-mismatch",
                format!("{what} has {rows} rows but the vocabulary has {n} tokens"),
                "pad the vocabulary (llama.cpp adds [PADn] tokens) or fix config.json vocab_size so they agree",
            );
        }
    }
}

/// Special-looking markers in a template's literal text: `<|…|>`, `<…>` tags, `[INST]`-style
/// brackets and `<<SYS>>`.
pub fn template_markers(template: &str) -> Vec<String> {
    let Ok(t) = gotmpl::parse(template) else {
        return Vec::new();
    };
    let mut text = String::new();
    collect_text(&t.root, &mut text);
    for (_, body) in &t.defines {
        collect_text(body, &mut text);
    }
    let mut out: Vec<String> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        let end = if rest.starts_with("<<") {
            rest.find(">>").map(|e| e + 2)
        } else if rest.starts_with('<') || rest.starts_with('[') {
            let close = if rest.starts_with('<') { '>' } else { ']' };
            rest[1..].find(close).map(|e| e + 2)
        } else {
            None
        };
        match end {
            Some(e) if e > 2 && e <= 40 => {
                let m = &rest[..e];
                let inner = &m[1..m.len() - 1];
                let tagish = inner.chars().all(|c| {
                    c.is_alphanumeric() || matches!(c, '|' | '_' | '/' | '<' | '>' | '▁' | '｜')
                });
                let shaped = m.starts_with("<|")
                    || m.starts_with("<<")
                    || (m.starts_with('[')
                        && inner.chars().any(|c| c.is_ascii_uppercase())
                        && !inner.chars().any(|c| c.is_ascii_lowercase()))
                    || (m.starts_with('<') && !inner.is_empty());
                if tagish && shaped {
                    if !out.iter().any(|x| x == m) {
                        out.push(m.to_string());
                    }
                    i += e;
                    continue;
                }
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
            _ => i += rest.chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

fn collect_text(nodes: &[gotmpl::Node], out: &mut String) {
    for n in nodes {
        match n {
            gotmpl::Node::Text(t) => {
                out.push_str(t);
                out.push('\u{0}');
            }
            gotmpl::Node::Branch {
                list, else_list, ..
            } => {
                collect_text(list, out);
                if let Some(e) = else_list {
                    collect_text(e, out);
                }
            }
            _ => {}
        }
    }
}

/// Checks a Go template: it parses, uses only fields Ollama provides, and every special marker it
/// emits is a token of the vocabulary.
pub fn check_template(template: &str, v: Option<&Vocab>, r: &mut LintReport) {
    let parsed = match gotmpl::parse(template) {
        Ok(t) => t,
        Err(e) => {
            r.push(
                Severity::Error,
                "template-syntax",
                format!("TEMPLATE does not parse as a Go template: {e}"),
                "Ollama rejects it with `template error`; balance {{ }} and if/range/with … end",
            );
            return;
        }
    };
    for i in gotmpl::check_fields(&parsed) {
        r.push(
            Severity::Error,
            "template-field",
            format!("TEMPLATE line {}: {}", i.line, i.msg),
            "use the fields Ollama passes (see docs/ollama.md, Templates); unknown fields render as <no value>",
        );
    }
    if parsed.mode() == Mode::Legacy && template.contains("Messages") {
        r.push(
            Severity::Warning,
            "template-mode",
            "TEMPLATE mentions Messages in text but not as a field; it runs in legacy mode".into(),
            "use {{ range .Messages }} to get Messages mode",
        );
    }
    let Some(v) = v else { return };
    for m in template_markers(template) {
        if let Some(id) = v.token_id(&m) {
            if v.token_type(id) == token_type::NORMAL && m.starts_with("<|") {
                r.push(
                    Severity::Warning,
                    "marker-not-special",
                    format!("template marker {m} is token {id}, but a normal one (not control/user-defined)"),
                    "mark it special in tokenizer.json added_tokens so it is never split",
                );
            }
            continue;
        }
        if m.starts_with("<|") || m.starts_with("<start_of_turn") || m.starts_with("<end_of_turn") {
            r.push(
                Severity::Error,
                "marker-not-in-vocab",
                format!("the template emits {m}, which is not a token of this model's vocabulary: the model was not trained on this chat format"),
                "pick the template family that matches the model (tinylm template detect), or add the token when training",
            );
        } else if v.can_spell(&m) {
            r.push(
                Severity::Warning,
                "marker-is-text",
                format!("template marker {m} is not a single token; it is tokenized as plain text"),
                "fine for formats trained on text markers (Llama 2's [INST]); otherwise use the model's own template",
            );
        } else {
            r.push(
                Severity::Error,
                "marker-not-in-vocab",
                format!("the template emits {m}, which this vocabulary can neither encode as one token nor spell"),
                "use the model's own chat template",
            );
        }
    }
}

/// Checks stop strings against the vocabulary, and that EOS/EOT are among them.
pub fn check_stops(stops: &[String], v: &Vocab, r: &mut LintReport) {
    for s in stops {
        if v.token_id(s).is_some() {
            continue;
        }
        if v.can_spell(s) {
            continue;
        }
        r.push(
            Severity::Error,
            "stop-not-in-vocab",
            format!("stop string {s:?} is not a token and cannot be spelled by this vocabulary: it can never match"),
            "use the model's real end-of-turn token text (see tinylm template detect)",
        );
    }
    for (name, id) in [("EOS", v.eos_id), ("EOT", v.eot_id)] {
        let Some(text) = id.and_then(|i| v.token(i)) else {
            continue;
        };
        if !stops.iter().any(|s| s == text) {
            r.push(
                Severity::Error,
                "eos-not-stop",
                format!("the {name} token {text:?} is not in the stop list: generation runs on past the end of the answer"),
                format!("add PARAMETER stop {text}"),
            );
        }
    }
}

/// Lints a Modelfile (as written by tinylm or by hand) against a model's vocabulary.
pub fn lint(v: &Vocab, mf: &Modelfile) -> LintReport {
    let mut r = LintReport::default();
    check_tokenizer(v, &mut r);
    match &mf.template {
        Some(t) => check_template(t, Some(v), &mut r),
        None => r.push(
            Severity::Warning,
            "no-template",
            "the Modelfile has no TEMPLATE: Ollama ≥ 0.30 falls back to the GGUF's Jinja chat template, older versions to {{ .Prompt }} (raw text)".into(),
            "set a template (a built-in family or template = \"auto\")",
        ),
    }
    let mut stops = Vec::new();
    for (name, value) in &mf.parameters {
        if let Err(e) = params::check_typed(name, value) {
            r.push(
                Severity::Error,
                "parameter",
                e.to_string(),
                "use a name and type from Ollama's table",
            );
        }
        if let (true, ParamValue::List(items)) = (name == "stop", value) {
            stops.extend(items.iter().cloned());
        }
    }
    check_stops(&stops, v, &mut r);
    if let Err(e) = mf.render() {
        r.push(
            Severity::Error,
            "modelfile-quoting",
            e.to_string(),
            "change the value so Ollama's parser reads it back unchanged",
        );
    }
    r
}

/// Lints Modelfile text: Ollama's parser rules first, then [`lint`].
pub fn lint_modelfile_text(v: &Vocab, text: &[u8]) -> LintReport {
    match modelfile::parse_commands(text) {
        Err(e) => {
            let mut r = LintReport::default();
            r.push(
                Severity::Error,
                "modelfile-syntax",
                format!("Ollama's parser rejects the Modelfile: {e}"),
                "fix the line; note there are no inline # comments and no escapes in quotes",
            );
            r
        }
        Ok(cmds) => {
            let mut pre = LintReport::default();
            for c in &cmds {
                if params::DEPRECATED_PARAMETERS.contains(&c.name.as_str()) {
                    pre.push(
                        Severity::Warning,
                        "parameter-deprecated",
                        format!("PARAMETER {} is deprecated; Ollama ignores it", c.name),
                        "remove it",
                    );
                }
            }
            match Modelfile::parse(text) {
                Ok(mf) => {
                    let mut r = lint(v, &mf);
                    pre.findings.append(&mut r.findings);
                    pre
                }
                Err(e) => {
                    pre.push(
                        Severity::Error,
                        "modelfile",
                        e.to_string(),
                        "fix the Modelfile",
                    );
                    pre
                }
            }
        }
    }
}

/// Lints a GGUF with a Modelfile (the engine's `lint` action and `tinylm lint`).
pub fn lint_gguf(gguf: &Path, mf: &Modelfile) -> crate::Result<LintReport> {
    let v = Vocab::open_gguf(gguf)?;
    Ok(lint(&v, mf))
}

/// The Modelfile tinylm would write for `gguf` with built-in template `t`: its TEMPLATE and
/// PARAMETERs, with the model's own EOS/EOT token texts added to the stops.
pub fn builtin_modelfile(gguf: &str, t: &BuiltinTemplate, v: &Vocab) -> Modelfile {
    let mut mf = Modelfile::new(gguf.to_string());
    mf.template = Some(t.template.clone());
    mf.parameters = t.parameters();
    // EOS/EOT are part of the stop list tinylm writes.
    let mut stops = t.stops.clone();
    for id in [v.eos_id, v.eot_id].into_iter().flatten() {
        if let Some(text) = v.token(id)
            && !stops.iter().any(|s| s == text)
        {
            stops.push(text.to_string());
        }
    }
    if !stops.is_empty() {
        mf.parameters = vec![("stop".into(), ParamValue::List(stops))];
    }
    mf
}
