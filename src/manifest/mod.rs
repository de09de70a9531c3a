//! `tinylm.toml`: the typed manifest, its validation, and the JSON schema derived from it.
//!
//! [`load`] parses the file (unknown keys are rejected with a did-you-mean), then [`validate`]
//! checks cross-references and values and resolves defaults into a [`Project`], the only thing
//! the planner sees. Every error points at `file:line:column` with the offending snippet.

mod locations;
mod span;
mod starter;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

pub use span::{Sp, closest, render};
pub use starter::{find_manifest, init, manifest_path, starter};
pub use validate::{
    Budget, EvalSpec, ImatrixSpec, Metric, ModelSpec, Project, QuantSpec, ReleaseSpec, SourceSpec,
    TemplateSpec, TinyLmSpec, base_file_type,
};

use crate::convert::tinylm_to_hf::{HfDtype, TinyLmArch};
use crate::quant::FileType;
pub use crate::template::params::RawValue;
use crate::{Error, Result};

/// How the manifest, action ids and file names spell a quant: llama-quantize's name in lower
/// case (`q4_k_m`).
pub fn quant_name(ft: FileType) -> String {
    ft.name().to_ascii_lowercase()
}

/// The whole manifest as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "tinylm.toml", description = "tinylm build manifest")]
pub struct Manifest {
    /// Project name, version and output directory.
    pub project: ProjectSection,
    /// Cache settings.
    #[serde(default)]
    pub cache: CacheSection,
    /// Values applied to models that don't set them.
    #[serde(default)]
    pub defaults: Defaults,
    /// Models to build, by name.
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
    /// Chat templates and Modelfile settings, by name.
    #[serde(default)]
    pub templates: BTreeMap<String, TemplateDef>,
    /// Release bundles, by name.
    #[serde(default)]
    pub releases: BTreeMap<String, Release>,
    /// Local runtimes `tinylm build` installs into as its last step.
    #[serde(default)]
    pub install: InstallSection,
    /// Evaluate every built quant (perplexity, KL-divergence against the base GGUF).
    pub eval: Option<Sp<EvalSection>>,
}

/// `[eval]`: the text every quant is scored on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// UTF-8 text, relative to the manifest (at least two chunks of `ctx` tokens).
    pub text: Sp<String>,
    /// Tokens per chunk (default 512).
    pub ctx: Option<Sp<u64>>,
    /// Score at most this many chunks (default: all that fit).
    pub chunks: Option<Sp<u64>>,
}

/// `quality = { … }`: budgets per quant name; a quant over budget fails the build.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityDef {
    /// Largest mean KL-divergence against the base GGUF, per quant (`{ q4_k_m = 0.1 }`).
    pub max_kld: Option<BTreeMap<String, Sp<f64>>>,
    /// Smallest rate (0 to 1) of positions whose top token equals the base's, per quant.
    pub min_same_top: Option<BTreeMap<String, Sp<f64>>>,
    /// Largest perplexity ratio to the base GGUF's (`{ q4_k_m = 1.05 }`), per quant.
    pub max_ppl_ratio: Option<BTreeMap<String, Sp<f64>>>,
}

/// `[install]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallSection {
    /// Write models into the Ollama store (`$OLLAMA_MODELS` or `~/.ollama/models`): `true` for
    /// every model, or a list of `model` / `model:quant`.
    pub ollama: Option<Sp<InstallSelection>>,
    /// Link models into LM Studio's folder (`$LMSTUDIO_MODELS` or `~/.lmstudio/models`).
    pub lmstudio: Option<Sp<InstallSelection>>,
}

/// Which artifacts to install.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum InstallSelection {
    /// `true`: everything; `false`: nothing.
    All(bool),
    /// `model` (all its quants) or `model:quant` entries.
    Only(Vec<String>),
}

/// `[project]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// Project name.
    pub name: Sp<String>,
    /// Project version; releases default to it.
    pub version: Sp<String>,
    /// Output directory, relative to the manifest (default `dist`).
    pub out: Option<Sp<String>>,
}

/// `[cache]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Cache directory, relative to the manifest (default `.tinylm/cache`); `--cache` and
    /// `TINYLM_CACHE` override it.
    pub dir: Option<Sp<String>>,
    /// Remote cache shared by machines: `http(s)://host/prefix` (Bazel HTTP cache protocol:
    /// bazel-remote, nginx WebDAV, …), `s3://bucket/prefix`, `gs://bucket/prefix` or
    /// `az://container/prefix`. `--remote-cache` and `TINYLM_REMOTE_CACHE` override it.
    pub remote: Option<Sp<String>>,
    /// Upload results built here to the remote cache (default false; `--remote-upload`).
    pub upload: Option<bool>,
}

/// `[defaults]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Quantizations for models that don't list their own.
    pub quants: Option<Vec<Sp<QuantEntry>>>,
    /// Template for models that don't name their own.
    pub template: Option<Sp<String>>,
    /// Importance matrix for models that don't configure their own.
    pub imatrix: Option<Sp<ImatrixDef>>,
    /// Quality budgets for models that don't set their own (needs `[eval]`).
    pub quality: Option<Sp<QualityDef>>,
}

/// `[models.<name>]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Where the model comes from: exactly one of `gguf`, `hf`, `tinylm`.
    pub source: Sp<Source>,
    /// Quantizations to build: file type names (`f16`, `q8_0`, `q4_k_m`, …) or tables with a
    /// recipe (`{ name = "q4_k_m-imat", type = "q4_k_m", imatrix = true }`).
    pub quants: Option<Vec<Sp<QuantEntry>>>,
    /// Importance matrix for the quants that use one: `{ file = "m.imatrix.gguf" }` or
    /// `{ text = "calib.txt", chunks = 100, ctx = 512 }` (computed from the base GGUF).
    pub imatrix: Option<Sp<ImatrixDef>>,
    /// Quality budgets per quant name (needs `[eval]`): `{ max_kld = { q4_k_m = 0.1 } }`.
    pub quality: Option<Sp<QualityDef>>,
    /// Template name (from `[templates]` or a built-in family) or `"auto"`.
    pub template: Option<Sp<String>>,
    /// Name to use when installing into Ollama (default: the model name).
    pub ollama_name: Option<Sp<String>>,
    /// Type of the converted base GGUF for `hf`/`tinylm` sources: f32, f16, bf16, q8_0 or auto.
    pub outtype: Option<Sp<String>>,
    /// Override of `tokenizer.ggml.pre` for converted models.
    pub pre: Option<Sp<String>>,
    /// Also put the exported Hugging Face folder in the output (`tinylm` sources).
    pub export_hf: Option<bool>,
}

/// One entry of `quants`: a file type name (`"q4_k_m"`), or a table naming the artifact and
/// its recipe.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum QuantEntry {
    /// llama-quantize's file type in lower case; also the artifact's name.
    Name(String),
    /// An artifact with its own name, file type and recipe.
    Table(QuantTable),
}

impl<'de> Deserialize<'de> for QuantEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Not `#[serde(untagged)]`: that buffers the value, losing both the did-you-mean of
        // an unknown key and the spans of the table's values.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = QuantEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a quant name such as \"q4_k_m\" or a table { name, type, … }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<QuantEntry, E> {
                Ok(QuantEntry::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<QuantEntry, A::Error> {
                QuantTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(QuantEntry::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `quants = [{ … }]`: one artifact with a recipe.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuantTable {
    /// Artifact name in `out/` and releases (default: the type's name).
    pub name: Option<Sp<String>>,
    /// File type (`q4_k_m`, `iq3_s`, …; default: `name`).
    #[serde(rename = "type")]
    pub ftype: Option<Sp<String>>,
    /// Quantize with the model's importance matrix (default: only for types that need one).
    pub imatrix: Option<Sp<bool>>,
    /// Tensor type overrides `{ "PATTERN" = "TYPE" }`, first match wins (`--tensor-type`).
    pub tensor_types: Option<TensorTypes>,
    /// Type of `token_embd.weight` (`--token-embedding-type`).
    pub token_embedding: Option<Sp<String>>,
    /// Type of `output.weight` (`--output-tensor-type`).
    pub output: Option<Sp<String>>,
    /// No mixture rules: every quantizable tensor gets the type's default (`--pure`).
    pub pure: Option<bool>,
    /// Keep `output.weight` as it is (`--leave-output-tensor`).
    pub leave_output: Option<bool>,
}

/// `tensor_types = { "ffn_down" = "q6_k", … }` in the order written (the first match wins).
#[derive(Debug, Clone, Default)]
pub struct TensorTypes(pub Vec<(String, Sp<String>)>);

impl<'de> Deserialize<'de> for TensorTypes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TensorTypes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of \"PATTERN\" = \"TYPE\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TensorTypes, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    v.push((k, map.next_value::<Sp<String>>()?));
                }
                Ok(TensorTypes(v))
            }
        }
        d.deserialize_map(V)
    }
}

impl JsonSchema for TensorTypes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TensorTypes".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Tensor name pattern (regular expression) = tensor type (`q6_k`, `q8_0`, `iq4_xs`, `f16`, …).",
            "type": "object",
            "additionalProperties": { "type": "string" }
        })
    }
}

/// `imatrix = { … }`: a given importance matrix file, or a calibration text to compute one.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImatrixDef {
    /// An existing imatrix (llama-imatrix's GGUF or legacy `.dat`), relative to the manifest.
    pub file: Option<Sp<String>>,
    /// Calibration text (UTF-8) to compute the imatrix from with the model's base GGUF.
    pub text: Option<Sp<String>>,
    /// Tokens per chunk (default 512).
    pub ctx: Option<Sp<u64>>,
    /// Use at most this many chunks of the text (default: all that fit).
    pub chunks: Option<Sp<u64>>,
}

/// `source = { … }`: exactly one key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An existing GGUF file.
    pub gguf: Option<Sp<String>>,
    /// A Hugging Face model folder.
    pub hf: Option<Sp<String>>,
    /// A tiny-lm training run.
    pub tinylm: Option<TinyLmSource>,
}

/// `source.tinylm = { … }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TinyLmSource {
    /// Lightning checkpoint (`last.ckpt`).
    pub checkpoint: Sp<String>,
    /// Model YAML config.
    pub config: Sp<String>,
    /// Pickled tiktoken tokenizer (`tokenizer.pkl`).
    pub tokenizer: Sp<String>,
    /// Tokenizer YAML config (special tokens).
    pub tokenizer_config: Option<Sp<String>>,
    /// Architecture; inferred from the checkpoint when omitted.
    pub arch: Option<TinyLmArch>,
    /// Weight dtype of the exported Hugging Face folder (default f32).
    pub dtype: Option<HfDtype>,
}

/// `[templates.<name>]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDef {
    /// Start from a built-in family (`chatml`, `llama3-tools`, …) or `auto` (detected from the
    /// model); `template` and `parameters.stop` override the family's.
    pub family: Option<Sp<String>>,
    /// Go template text (Ollama TEMPLATE).
    pub template: Option<Sp<String>>,
    /// File holding the Go template, relative to the manifest.
    pub file: Option<Sp<String>>,
    /// System prompt.
    pub system: Option<String>,
    /// Ollama PARAMETERs; `stop` is a list of strings.
    pub parameters: Option<BTreeMap<String, Sp<RawValue>>>,
    /// License text.
    pub license: Option<String>,
    /// Example conversation.
    pub messages: Option<Vec<Message>>,
}

/// One MESSAGE of a Modelfile.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: Sp<String>,
    /// Message text.
    pub content: String,
}

/// `[releases.<name>]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Models in the release.
    pub models: Vec<Sp<String>>,
    /// Quant names to ship (default: every quant of each model).
    pub quants: Option<Vec<Sp<String>>>,
    /// Release version (default: the project version).
    pub version: Option<Sp<String>>,
}

/// The manifest file name looked up by default.
pub const MANIFEST_FILE: &str = "tinylm.toml";

/// A parsed manifest with its text, for error rendering.
#[derive(Debug)]
pub struct Loaded {
    /// Path of the manifest.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// The parsed manifest.
    pub manifest: Manifest,
}

impl Loaded {
    /// Renders an error at `span` of the manifest.
    pub fn error_at(&self, span: &std::ops::Range<usize>, msg: &str) -> String {
        render(&self.path.display().to_string(), &self.text, span, msg)
    }
}

/// Reads and parses a manifest (syntax and shape only; see [`validate`]).
///
/// Every problem with the file itself is a manifest error (exit 2): missing, a directory or
/// other non-regular file, unreadable, not UTF-8 (with the line and column of the first bad
/// byte).
pub fn load(path: &Path) -> Result<Loaded> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound if path.symlink_metadata().is_ok() => {
            Error::Manifest(format!("{shown}: a symlink whose target does not exist"))
        }
        std::io::ErrorKind::NotFound => Error::Manifest(format!(
            "{shown}: no such file; run `tinylm init` to create a manifest"
        )),
        _ => Error::Manifest(format!(
            "{shown}: cannot read the manifest: {}",
            describe_io(&e)
        )),
    })?;
    if meta.is_dir() {
        let inside = path.join(MANIFEST_FILE);
        let hint = if inside.is_file() {
            format!("; did you mean {}?", inside.display())
        } else {
            String::new()
        };
        return Err(Error::Manifest(format!(
            "{shown}: is a directory, not a manifest file{hint}"
        )));
    }
    if !meta.is_file() {
        let kind = crate::fsutil::input::non_regular_kind(path).unwrap_or("something else");
        return Err(Error::Manifest(format!(
            "{shown}: is {kind}, not a regular file; the manifest must be a file"
        )));
    }
    let bytes = crate::fsutil::input::read(path).map_err(|e| {
        Error::Manifest(format!(
            "{shown}: cannot read the manifest: {}",
            describe_io(&e)
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        let line_start = bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&bytes[line_start..at]).chars().count() + 1;
        Error::Manifest(format!(
            "{shown}:{line}:{col}: the manifest is not valid UTF-8 (byte 0x{:02x}); save it as UTF-8",
            bytes[at]
        ))
    })?;
    let manifest = parse(path, &text)?;
    Ok(Loaded {
        path: path.to_path_buf(),
        text,
        manifest,
    })
}

/// An I/O error in words, naming symlink loops (std has no stable kind for ELOOP).
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return format!("{e} (a symlink loop)");
    }
    e.to_string()
}

/// Parses manifest text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Manifest> {
    toml::from_str(text).map_err(|e| {
        let msg = span::did_you_mean(e.message());
        let file = path.display().to_string();
        Error::Manifest(match e.span() {
            Some(sp) => render(&file, text, &sp, &msg),
            None => format!("{file}: {msg}"),
        })
    })
}

/// Parses and validates, resolving defaults: the [`Project`] the planner consumes.
pub fn validate(loaded: &Loaded) -> Result<Project> {
    validate::validate(loaded)
}

/// Whether `cache` may be the cache of `project` (for `--cache` and `TINYLM_CACHE`, which the
/// manifest's own checks do not see): the reason it may not, if so.
pub fn cache_location_problem(project: &Project, cache: &Path) -> Option<String> {
    let sources: Vec<PathBuf> = validate::source_paths(&project.models)
        .iter()
        .map(|p| locations::resolve(p))
        .collect();
    locations::cache_problem(
        &locations::resolve(&project.root),
        &locations::resolve(cache),
        &locations::resolve(&project.out),
        &sources,
    )
}

/// The JSON schema of `tinylm.toml`, pretty-printed with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
