//! Cross-checks and defaults: turns a parsed [`Manifest`] into the resolved [`Project`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::locations;
use super::{
    Defaults, EvalSection, HfSource, ImatrixDef, InstallSelection, Loaded, Message, Model,
    QualityDef, QuantEntry, QuantTable, Sp, closest, quant_name,
};
use crate::convert::hf_to_gguf::OutType;
use crate::convert::tinylm_to_hf::{HfDtype, TinyLmArch};
use crate::quant::recipe::{parse_ggml_type, parse_tensor_type};
use crate::quant::{FileType, Recipe, TensorTypeRule};
use crate::template::families::{builtin, builtin_names};
use crate::template::lint;
use crate::template::params::{self, ParamValue};
use crate::{Error, Result};

/// The validated project: everything the planner needs, with absolute paths and defaults applied.
#[derive(Debug, Clone)]
pub struct Project {
    /// Project name.
    pub name: String,
    /// Project version.
    pub version: String,
    /// Directory of the manifest; relative paths are resolved against it.
    pub root: PathBuf,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// Output directory (absolute).
    pub out: PathBuf,
    /// Cache directory from the manifest (absolute), if set.
    pub cache_dir: Option<PathBuf>,
    /// Remote cache URL from the manifest, if set (checked).
    pub remote: Option<String>,
    /// `[cache] upload`, if set.
    pub upload: Option<bool>,
    /// Models by name.
    pub models: BTreeMap<String, ModelSpec>,
    /// Releases by name.
    pub releases: BTreeMap<String, ReleaseSpec>,
    /// `[eval]`: what every quant is scored on.
    pub eval: Option<EvalSpec>,
    /// Artifacts (model, quant name) to install into Ollama after a build.
    pub install_ollama: Vec<(String, Option<String>)>,
    /// Artifacts (model, quant name) to install into LM Studio after a build.
    pub install_lmstudio: Vec<(String, Option<String>)>,
}

/// A model with defaults applied.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Model name (safe for file names).
    pub name: String,
    /// Where it comes from.
    pub source: SourceSpec,
    /// Quantizations to build, in manifest order; empty for a GGUF used as is.
    pub quants: Vec<QuantSpec>,
    /// The importance matrix of the quants that use one.
    pub imatrix: Option<ImatrixSpec>,
    /// Template, system prompt and parameters for its Modelfiles; `None` writes a bare `FROM`.
    pub template: Option<TemplateSpec>,
    /// Name for Ollama installs.
    pub ollama_name: String,
    /// Type of the converted base GGUF (`hf`/`tinylm` sources).
    pub outtype: OutType,
    /// `tokenizer.ggml.pre` override.
    pub pre: Option<String>,
    /// Whether to put the exported HF folder in the output.
    pub export_hf: bool,
    /// Quality budgets, checked after each quant's eval.
    pub quality: Vec<Budget>,
    /// Where a Hub or Ollama source was resolved (set by the workspace before planning).
    pub origin: Option<SourceOrigin>,
}

/// `[eval]` with an absolute path.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSpec {
    /// Absolute path of the text.
    pub text: PathBuf,
    /// The path as written in the manifest.
    pub text_given: String,
    /// Tokens per chunk.
    pub ctx: usize,
    /// At most this many chunks.
    pub chunks: Option<usize>,
}

/// A quality metric a budget limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Mean KL-divergence against the base (an upper bound).
    MaxKld,
    /// Same-top-token rate (a lower bound).
    MinSameTop,
    /// Perplexity over the base's perplexity (an upper bound).
    MaxPplRatio,
}

impl Metric {
    /// The manifest key.
    pub fn key(self) -> &'static str {
        match self {
            Metric::MaxKld => "max_kld",
            Metric::MinSameTop => "min_same_top",
            Metric::MaxPplRatio => "max_ppl_ratio",
        }
    }
}

/// One budget: `metric` of quant `quant` must stay within `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Quant name.
    pub quant: String,
    /// What is limited.
    pub metric: Metric,
    /// The limit.
    pub limit: f64,
}

/// One quantized artifact of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantSpec {
    /// Artifact name (`q4_k_m`, `q4_k_m-imat`): file names, targets, releases, Ollama tags.
    pub name: String,
    /// llama-quantize file type.
    pub ftype: FileType,
    /// Whether it is quantized with the model's importance matrix.
    pub imatrix: bool,
    /// Per-tensor overrides.
    pub recipe: Recipe,
}

impl QuantSpec {
    /// A quant named after its type, without imatrix or recipe.
    pub fn plain(ftype: FileType) -> QuantSpec {
        QuantSpec {
            name: quant_name(ftype),
            ftype,
            imatrix: false,
            recipe: Recipe::default(),
        }
    }

    /// Whether the output depends only on the file type (no imatrix, no recipe).
    pub fn is_plain(&self) -> bool {
        !self.imatrix && self.recipe.is_default()
    }
}

/// Where a model's importance matrix comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImatrixSpec {
    /// A given file.
    File {
        /// Absolute path.
        path: PathBuf,
        /// The path as written in the manifest (recorded as `quantize.imatrix.file`).
        given: String,
    },
    /// Computed from the model's base GGUF on a calibration text.
    Compute {
        /// Absolute path of the text.
        text: PathBuf,
        /// The path as written in the manifest (recorded in the imatrix's datasets).
        text_given: String,
        /// Tokens per chunk.
        ctx: usize,
        /// At most this many chunks.
        chunks: Option<usize>,
    },
}

/// A model source with absolute paths.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// An existing GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face folder.
    Hf(PathBuf),
    /// A Hugging Face Hub repository, resolved to a snapshot folder of the Hub cache before
    /// planning (it then becomes [`SourceSpec::Hf`] with a [`SourceOrigin`]).
    HfHub(HubSpec),
    /// A model in the Ollama store, resolved to its GGUF blob before planning (it then becomes
    /// [`SourceSpec::Gguf`] with a [`SourceOrigin`]).
    Ollama(String),
    /// A tiny-lm run.
    TinyLm(TinyLmSpec),
}

/// `source.hf = { repo, revision }`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSpec {
    /// Repository id.
    pub repo: crate::hub::RepoId,
    /// Branch, tag or commit.
    pub revision: String,
}

/// Where a resolved source came from, for the lock file and the model's name.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOrigin {
    /// The resolved path (snapshot folder, GGUF blob).
    pub path: PathBuf,
    /// How `tinylm.lock` names it, the same on every machine: `hf://org/name@<commit>`,
    /// `ollama://name:tag@sha256:<hex>`.
    pub locator: String,
    /// The name a downloaded folder would have (`general.name` of a conversion).
    pub name: String,
    /// Set by `status` and `build -n` for a Hub source the cache lacks: `path` does not
    /// exist (yet) and the actions reading it would run after a download.
    pub not_downloaded: Option<crate::hub::NotDownloaded>,
}

/// tiny-lm inputs with absolute paths.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyLmSpec {
    /// Lightning checkpoint.
    pub checkpoint: PathBuf,
    /// Model YAML.
    pub config: PathBuf,
    /// tokenizer.pkl.
    pub tokenizer: PathBuf,
    /// Tokenizer YAML.
    pub tokenizer_config: Option<PathBuf>,
    /// Architecture, if given.
    pub arch: Option<TinyLmArch>,
    /// Exported weight dtype.
    pub dtype: HfDtype,
}

/// What a model's Modelfiles carry: a `[templates]` entry, a built-in family, or `auto`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateSpec {
    /// Template name as the manifest refers to it.
    pub name: String,
    /// Built-in family the template comes from, or `auto` (detected from the model at build
    /// time). `None` for a fully custom template.
    pub family: Option<String>,
    /// Go template text (for built-in families, resolved here so it is part of the key);
    /// `None` with family `auto` means "detect", otherwise "no TEMPLATE line".
    pub template: Option<String>,
    /// System prompt.
    pub system: Option<String>,
    /// PARAMETERs in name order.
    pub parameters: Vec<(String, ParamValue)>,
    /// License text.
    pub license: Option<String>,
    /// MESSAGE lines as (role, content).
    pub messages: Vec<(String, String)>,
}

/// A release with its (model, quant) items resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseSpec {
    /// Release name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// (model, quant name) pairs in manifest order; quant is `None` for a GGUF used as is.
    pub items: Vec<(String, Option<String>)>,
}

struct Errors<'a> {
    loaded: &'a Loaded,
    list: Vec<String>,
}

impl Errors<'_> {
    fn at(&mut self, span: &Range<usize>, msg: impl AsRef<str>) {
        self.list.push(self.loaded.error_at(span, msg.as_ref()));
    }
}

pub(super) fn validate(loaded: &Loaded) -> Result<Project> {
    let m = &loaded.manifest;
    let root = loaded
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root
    };
    let root = std::path::absolute(&root).map_err(|e| Error::io(&root, e))?;
    let mut errs = Errors {
        loaded,
        list: Vec::new(),
    };

    let name = m.project.name.value.clone();
    if name.trim().is_empty() {
        errs.at(&m.project.name.span, "project name must not be empty");
    }
    let version = m.project.version.value.clone();
    check_safe_component(&mut errs, &m.project.version, "project version");
    let out = m.project.out.as_ref().map_or("dist", |o| o.value.as_str());
    let out = root.join(out);
    let cache_dir = m.cache.dir.as_ref().map(|d| root.join(&d.value));
    if let Some(r) = &m.cache.remote
        && let Err(e) = crate::cache::remote::parse_url(&r.value)
    {
        errs.at(&r.span, format!("[cache] remote: {e}"));
    }
    let remote = m.cache.remote.as_ref().map(|r| r.value.clone());

    let templates = resolve_templates(&mut errs, &root);
    let eval = m.eval.as_ref().map(|e| resolve_eval(&mut errs, &root, e));
    if eval.is_none() {
        for q in m
            .models
            .values()
            .filter_map(|m| m.quality.as_ref())
            .chain(m.defaults.quality.as_ref())
        {
            errs.at(
                &q.span,
                "quality budgets need an `[eval]` section (`text = \"eval.txt\"`, `ctx`, `chunks`) \
                 to measure the quants on",
            );
        }
    }

    let mut models = BTreeMap::new();
    for (mname, model) in &m.models {
        if let Some(spec) = resolve_model(&mut errs, &root, mname, model, &m.defaults, &templates) {
            models.insert(mname.clone(), spec);
        }
    }

    let mut releases = BTreeMap::new();
    for (rname, rel) in &m.releases {
        let mut items = Vec::new();
        if !is_safe_name(rname) {
            errs.list.push(format!(
                "{}: release name `{rname}` may only contain letters, digits, `.`, `_` and `-`",
                loaded.path.display()
            ));
        }
        let rquants: Option<Vec<String>> = rel
            .quants
            .as_ref()
            .map(|qs| qs.iter().map(|q| q.value.clone()).collect());
        if rel.models.is_empty() {
            errs.list.push(format!(
                "{}: release `{rname}` lists no models",
                loaded.path.display()
            ));
        }
        for mref in &rel.models {
            let Some(model) = models.get(&mref.value) else {
                if !m.models.contains_key(&mref.value) {
                    let hint = closest(&mref.value, m.models.keys().map(String::as_str))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    errs.at(
                        &mref.span,
                        format!(
                            "release `{rname}` names unknown model `{}`{hint}",
                            mref.value
                        ),
                    );
                }
                continue;
            };
            if model.quants.is_empty() {
                items.push((model.name.clone(), None));
                continue;
            }
            let wanted = rquants
                .clone()
                .unwrap_or_else(|| model.quants.iter().map(|q| q.name.clone()).collect());
            for q in wanted {
                if let Some(spec) = model
                    .quants
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&q))
                {
                    items.push((model.name.clone(), Some(spec.name.clone())));
                } else if let Some(qs) = &rel.quants {
                    let span = qs.iter().find(|s| s.value == q).map(|s| s.span.clone());
                    let hint = closest(&q, model.quants.iter().map(|s| s.name.as_str()))
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    errs.at(
                        &span.unwrap_or(mref.span.clone()),
                        format!(
                            "release `{rname}` wants quant `{q}` of model `{}`; {hint}it builds [{}]",
                            model.name,
                            quant_names(&model.quants)
                        ),
                    );
                }
            }
        }
        let version = match &rel.version {
            Some(v) => {
                check_safe_component(&mut errs, v, "release version");
                v.value.clone()
            }
            None => version.clone(),
        };
        releases.insert(
            rname.clone(),
            ReleaseSpec {
                name: rname.clone(),
                version,
                items,
            },
        );
    }

    for (mname, spec) in models.iter_mut() {
        let (def, is_default) = match (&m.models[mname].quality, &m.defaults.quality) {
            (Some(q), _) => (q, false),
            (None, Some(q)) => (q, true),
            (None, None) => continue,
        };
        spec.quality = resolve_quality(&mut errs, spec, def, is_default);
    }
    check_locations(&mut errs, &root, &models);

    let install_ollama = resolve_install(&mut errs, &models, m.install.ollama.as_ref());
    let install_lmstudio = resolve_install(&mut errs, &models, m.install.lmstudio.as_ref());

    if !errs.list.is_empty() {
        // A bad `[defaults]` value is checked once per model using it: report it once.
        let mut seen = std::collections::BTreeSet::new();
        errs.list.retain(|e| seen.insert(e.clone()));
        return Err(Error::Manifest(errs.list.join("\n\n")));
    }
    Ok(Project {
        eval,
        install_ollama,
        install_lmstudio,
        name,
        version,
        root,
        manifest_path: loaded.path.clone(),
        out,
        cache_dir,
        remote,
        upload: m.cache.upload,
        models,
        releases,
    })
}

fn resolve_templates(errs: &mut Errors<'_>, root: &Path) -> BTreeMap<String, TemplateSpec> {
    let mut out = BTreeMap::new();
    for (tname, def) in &errs.loaded.manifest.templates {
        let family = match &def.family {
            None => None,
            Some(f) if f.value == "auto" => Some((f.value.clone(), None)),
            Some(f) => match builtin(&f.value) {
                Some(b) => Some((b.name.clone(), Some(b))),
                None => {
                    let names = builtin_names();
                    let hint = closest(&f.value, names.iter().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    errs.at(
                        &f.span,
                        format!(
                            "unknown template family `{}`; {hint}built-ins: {}, or \"auto\"",
                            f.value,
                            names.join(", ")
                        ),
                    );
                    continue;
                }
            },
        };
        let text = match (&def.template, &def.file) {
            (Some(_), Some(f)) => {
                errs.at(
                    &f.span,
                    format!("template `{tname}` sets both `template` and `file`; keep one"),
                );
                continue;
            }
            (Some(t), None) => Some((t.value.clone(), t.span.clone())),
            (None, Some(f)) => match crate::fsutil::input::read_to_string(&root.join(&f.value)) {
                Ok(t) => Some((t, f.span.clone())),
                Err(e) => {
                    errs.at(
                        &f.span,
                        format!("cannot read template file `{}`: {e}", f.value),
                    );
                    continue;
                }
            },
            (None, None) => None,
        };
        // A template that does not parse would only fail later, inside Ollama.
        if let Some((t, span)) = &text {
            let mut report = lint::LintReport::default();
            lint::check_template(t, None, &mut report);
            for f in report
                .findings
                .iter()
                .filter(|f| f.severity == lint::Severity::Error)
            {
                errs.at(span, format!("template `{tname}`: {}", f.message));
            }
        }
        let mut parameters = Vec::new();
        for (pname, value) in def.parameters.iter().flatten() {
            match params::validate(pname, &value.value) {
                Ok(typed) => parameters.push((pname.clone(), typed)),
                Err(e) => errs.at(&value.span, format!("template `{tname}`: {e}")),
            }
        }
        let builtin_t = family.as_ref().and_then(|(_, b)| b.as_ref());
        if let Some(b) = builtin_t
            && !parameters.iter().any(|(n, _)| n == "stop")
        {
            parameters.extend(b.parameters());
            parameters.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let messages = def.messages.iter().flatten().filter_map(|Message { role, content }| {
            if ["system", "user", "assistant"].contains(&role.value.as_str()) {
                Some((role.value.clone(), content.clone()))
            } else {
                errs.at(
                    &role.span,
                    format!("message role must be one of \"system\", \"user\" or \"assistant\", not `{}`", role.value),
                );
                None
            }
        });
        let messages: Vec<_> = messages.collect();
        out.insert(
            tname.clone(),
            TemplateSpec {
                name: tname.clone(),
                template: text
                    .map(|(t, _)| t)
                    .or_else(|| builtin_t.map(|b| b.template.clone())),
                family: family.map(|(f, _)| f),
                system: def.system.clone(),
                parameters,
                license: def.license.clone(),
                messages,
            },
        );
    }
    out
}

fn resolve_model(
    errs: &mut Errors<'_>,
    root: &Path,
    name: &str,
    model: &Model,
    defaults: &Defaults,
    templates: &BTreeMap<String, TemplateSpec>,
) -> Option<ModelSpec> {
    let before = errs.list.len();
    if name.len() > MAX_MODEL_NAME {
        let shown: String = name.chars().take(40).collect();
        errs.at(
            &model.source.span,
            format!(
                "model name `{shown}…` is {} bytes long; at most {MAX_MODEL_NAME} (it names files)",
                name.len()
            ),
        );
        return None;
    }
    let default_quants = defaults.quants.as_ref();
    let default_template = defaults.template.as_ref();
    let default_imatrix = defaults.imatrix.as_ref();
    if !is_safe_name(name) {
        errs.at(
            &model.source.span,
            format!("model name `{name}` may only contain letters, digits, `.`, `_` and `-` (it names files)"),
        );
    }
    let src = &model.source.value;
    let given = [
        src.gguf.is_some(),
        src.hf.is_some(),
        src.ollama.is_some(),
        src.tinylm.is_some(),
    ];
    let source = match (&src.gguf, &src.hf, &src.ollama, &src.tinylm) {
        _ if given.iter().filter(|g| **g).count() != 1 => {
            errs.at(
                &model.source.span,
                format!(
                    "model `{name}` needs exactly one source: `source.gguf = \"file.gguf\"`, \
                     `source.hf = \"dir\"`, `source.hf = {{ repo = \"org/name\" }}`, \
                     `source.ollama = \"name:tag\"` or `source.tinylm = {{ checkpoint, config, tokenizer }}`"
                ),
            );
            return None;
        }
        (Some(p), _, _, _) => SourceSpec::Gguf(existing_file(errs, root, p, "GGUF file")),
        (_, Some(h), _, _) => match &h.value {
            HfSource::Dir(d) => {
                let p = Sp {
                    value: d.clone(),
                    span: h.span.clone(),
                };
                if !root.join(d).exists()
                    && d.matches('/').count() == 1
                    && crate::hub::RepoId::parse(d).is_ok()
                {
                    errs.at(
                        &h.span,
                        format!(
                            "Hugging Face folder `{d}` does not exist (paths are relative to the manifest); \
                             did you mean the Hub repository: `source.hf = {{ repo = \"{d}\" }}`?"
                        ),
                    );
                    return None;
                }
                SourceSpec::Hf(existing(errs, root, &p, "Hugging Face folder"))
            }
            HfSource::Repo(r) => {
                let repo = crate::hub::RepoId::parse(&r.repo.value)
                    .map_err(|e| errs.at(&r.repo.span, format!("model `{name}`: `repo`: {e}")))
                    .ok();
                let revision = match &r.revision {
                    Some(rev) => crate::hub::check_revision(&rev.value)
                        .map_err(|e| errs.at(&rev.span, format!("model `{name}`: `revision`: {e}")))
                        .ok()
                        .map(|()| rev.value.clone()),
                    None => Some(crate::hub::DEFAULT_REVISION.to_string()),
                };
                match (repo, revision) {
                    (Some(repo), Some(revision)) => SourceSpec::HfHub(HubSpec { repo, revision }),
                    _ => return None,
                }
            }
        },
        (_, _, Some(o), _) => match crate::install::ollama::ModelName::parse(&o.value) {
            Ok(_) => SourceSpec::Ollama(o.value.clone()),
            Err(e) => {
                errs.at(&o.span, format!("model `{name}`: `source.ollama`: {e}"));
                return None;
            }
        },
        (_, _, _, Some(t)) => SourceSpec::TinyLm(TinyLmSpec {
            checkpoint: existing_file(errs, root, &t.checkpoint, "checkpoint"),
            config: existing_file(errs, root, &t.config, "model config"),
            tokenizer: existing_file(errs, root, &t.tokenizer, "tokenizer"),
            tokenizer_config: t
                .tokenizer_config
                .as_ref()
                .map(|p| existing_file(errs, root, p, "tokenizer config")),
            arch: t.arch,
            dtype: t.dtype.unwrap_or(HfDtype::F32),
        }),
        _ => unreachable!("exactly one source is set"),
    };
    let is_gguf = matches!(source, SourceSpec::Gguf(_) | SourceSpec::Ollama(_));

    let imatrix_def = model.imatrix.as_ref().or(default_imatrix);
    let imatrix = imatrix_def.and_then(|d| resolve_imatrix(errs, root, d));
    let quant_list = model.quants.as_ref().or(default_quants);
    let mut quants: Vec<QuantSpec> = Vec::new();
    for q in quant_list.into_iter().flatten() {
        if let Some(spec) = resolve_quant(errs, name, q, imatrix_def.is_some()) {
            if quants
                .iter()
                .any(|s| s.name.eq_ignore_ascii_case(&spec.name))
            {
                errs.at(
                    &q.span,
                    format!(
                        "quant `{}` is listed twice (names must be unique)",
                        spec.name
                    ),
                );
            } else {
                quants.push(spec);
            }
        }
    }
    let given_outtype = model.outtype.as_ref().map(|o| OutType::parse(&o.value));
    if !is_gguf && quants.is_empty() {
        // A converted model needs at least its base GGUF.
        let base = match given_outtype {
            None | Some(Some(OutType::Auto)) => Some(FileType::F16),
            Some(Some(o)) => base_file_type(o),
            // An unknown outtype is reported below.
            Some(None) => None,
        };
        quants.extend(base.map(QuantSpec::plain));
    }

    if let Some(p) = &model.pre
        && let Err(msg) = crate::convert::hf_to_gguf::check_pre_name(&p.value)
    {
        errs.at(&p.span, format!("model `{name}`: {msg}"));
    }
    for (field, set) in [
        ("outtype", model.outtype.is_some()),
        ("pre", model.pre.is_some()),
        ("export_hf", model.export_hf.is_some()),
    ] {
        if is_gguf && set {
            errs.at(
                &model.source.span,
                format!("model `{name}`: `{field}` only applies to `hf` and `tinylm` sources (a `gguf` or `ollama` source is already a GGUF)"),
            );
        }
    }
    if model.export_hf == Some(true) && !matches!(source, SourceSpec::TinyLm(_)) {
        errs.at(
            &model.source.span,
            format!("model `{name}`: `export_hf` only applies to `tinylm` sources"),
        );
    }
    let outtype = match (&model.outtype, given_outtype) {
        (_, Some(Some(o))) => o,
        (Some(o), _) => {
            let names: Vec<&str> = OutType::ALL.iter().map(|o| o.name()).collect();
            errs.at(
                &o.span,
                format!(
                    "unknown outtype `{}`; expected one of {}",
                    o.value,
                    names.join(", ")
                ),
            );
            OutType::default()
        }
        // Like the reference's "auto", but a float quant the user asked for wins.
        (None, _) => quants
            .iter()
            .find_map(|q| match q.ftype {
                FileType::F32 => Some(OutType::F32),
                FileType::F16 => Some(OutType::F16),
                FileType::BF16 => Some(OutType::BF16),
                _ => None,
            })
            .unwrap_or(OutType::F16),
    };

    let template = match model.template.as_ref().or(default_template) {
        None => None,
        Some(t) if t.value == "auto" => Some(TemplateSpec {
            name: "auto".into(),
            family: Some("auto".into()),
            ..Default::default()
        }),
        Some(t) => match (templates.get(&t.value), builtin(&t.value)) {
            (Some(spec), _) => Some(spec.clone()),
            (None, Some(b)) => Some(TemplateSpec {
                name: b.name.clone(),
                family: Some(b.name.clone()),
                template: Some(b.template.clone()),
                parameters: b.parameters(),
                ..Default::default()
            }),
            (None, None) => {
                let known: Vec<String> = templates.keys().cloned().chain(builtin_names()).collect();
                let hint = closest(&t.value, known.iter().map(String::as_str))
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                errs.at(
                    &t.span,
                    format!("unknown template `{}`{hint} (defined in [templates]: {}; built-in: {}; or \"auto\")",
                        t.value,
                        if templates.is_empty() { "none".to_string() } else { templates.keys().cloned().collect::<Vec<_>>().join(", ") },
                        builtin_names().join(", ")),
                );
                None
            }
        },
    };

    let ollama_name = match &model.ollama_name {
        Some(n) if is_ollama_name(&n.value) => n.value.clone(),
        Some(n) => {
            errs.at(&n.span, format!("`{}` is not a valid Ollama model name (letters, digits, `_`, `-`, `.`, optional `namespace/` and `:tag`)", n.value));
            String::new()
        }
        None => name.to_lowercase(),
    };

    (errs.list.len() == before).then(|| ModelSpec {
        name: name.to_string(),
        source,
        quants,
        imatrix,
        template,
        ollama_name,
        outtype,
        pre: model.pre.as_ref().map(|p| p.value.clone()),
        export_hf: model.export_hf.unwrap_or(false),
        quality: Vec::new(),
        origin: None,
    })
}

/// The source files and folders of `models`.
pub(super) fn source_paths(models: &BTreeMap<String, ModelSpec>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for m in models.values() {
        match &m.source {
            SourceSpec::Gguf(p) | SourceSpec::Hf(p) => v.push(p.clone()),
            // Outside the project, in stores other tools own.
            SourceSpec::HfHub(_) | SourceSpec::Ollama(_) => {}
            SourceSpec::TinyLm(t) => {
                v.extend([t.checkpoint.clone(), t.config.clone(), t.tokenizer.clone()]);
                v.extend(t.tokenizer_config.clone());
            }
        }
    }
    v
}

/// `out` and `[cache] dir` must not be the project, each other, `.tinylm/` or hold sources
/// (see [`locations`]): `clean` and `gc` delete inside them.
fn check_locations(errs: &mut Errors<'_>, root: &Path, models: &BTreeMap<String, ModelSpec>) {
    let m = &errs.loaded.manifest;
    let sources: Vec<PathBuf> = source_paths(models)
        .iter()
        .map(|p| locations::resolve(p))
        .collect();
    let root = locations::resolve(root);
    let out_value = m.project.out.as_ref().map_or("dist", |o| o.value.as_str());
    let out = locations::resolve(&root.join(out_value));
    let out_span = m.project.out.as_ref().map(|o| o.span.clone());
    let cache = m
        .cache
        .dir
        .as_ref()
        .map(|d| (locations::resolve(&root.join(&d.value)), d.span.clone()));
    let out_bad = locations::out_problem(&root, &out, &sources);
    if let Some(problem) = &out_bad {
        let msg = format!("`out = {out_value:?}`: {problem}");
        match out_span {
            Some(span) => errs.at(&span, msg),
            None => errs
                .list
                .push(format!("{}: {msg}", errs.loaded.path.display())),
        }
    }
    if let Some((cache, span)) = cache
        && let Some(problem) = locations::cache_problem(&root, &cache, &out, &sources)
    {
        // Once: an out that is wrong is reported on its own.
        if out_bad.is_none() || !problem.contains("output directory") {
            errs.at(&span, format!("`[cache] dir`: {problem}"));
        }
    }
}

/// Like [`existing`], for inputs read as files: a FIFO or a device would block or never end.
fn existing_file(errs: &mut Errors<'_>, root: &Path, p: &Sp<String>, what: &str) -> PathBuf {
    let path = existing(errs, root, p, what);
    if let Some(kind) = crate::fsutil::input::non_regular_kind(&path) {
        errs.at(
            &p.span,
            format!("{what} `{}` is {kind}, not a regular file", p.value),
        );
    }
    path
}

fn existing(errs: &mut Errors<'_>, root: &Path, p: &Sp<String>, what: &str) -> PathBuf {
    let path = root.join(&p.value);
    match std::fs::metadata(&path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.symlink_metadata().is_ok() => {
            errs.at(
                &p.span,
                format!(
                    "{what} `{}` is a symlink whose target does not exist",
                    p.value
                ),
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            errs.at(
                &p.span,
                format!(
                    "{what} `{}` does not exist (paths are relative to the manifest)",
                    p.value
                ),
            );
        }
        Err(e) => {
            errs.at(
                &p.span,
                format!(
                    "{what} `{}` cannot be read: {}",
                    p.value,
                    super::describe_io(&e)
                ),
            );
        }
    }
    path
}

/// The file type a converted base GGUF of `outtype` already is (none for `auto`).
pub fn base_file_type(outtype: OutType) -> Option<FileType> {
    match outtype {
        OutType::F32 => Some(FileType::F32),
        OutType::F16 => Some(FileType::F16),
        OutType::BF16 => Some(FileType::BF16),
        OutType::Q8_0 => Some(FileType::Q8_0),
        OutType::Auto => None,
    }
}

fn quant_names(quants: &[QuantSpec]) -> String {
    let names: Vec<&str> = quants.iter().map(|q| q.name.as_str()).collect();
    names.join(", ")
}

/// Parses a file type name as the manifest spells it (`q4_k_m`), with a did-you-mean.
fn check_ftype(errs: &mut Errors<'_>, value: &str, span: &Range<usize>) -> Option<FileType> {
    match value.parse::<FileType>() {
        // Aliases (`q4_k` = `q4_k_m`) would name files inconsistently; ask for the full name.
        Ok(t) if t.name().eq_ignore_ascii_case(value) => Some(t),
        Ok(t) => {
            errs.at(
                span,
                format!("write `{}` for `{value}`", t.name().to_lowercase()),
            );
            None
        }
        Err(e) => {
            let names: Vec<String> = FileType::ALL
                .iter()
                .map(|t| t.name().to_lowercase())
                .collect();
            let hint = closest(&value.to_lowercase(), names.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errs.at(
                span,
                format!(
                    "unknown quant `{}`; {hint}expected one of {}",
                    e.given,
                    names.join(", ")
                ),
            );
            None
        }
    }
}

/// One entry of `quants`, checked against whether the model has an imatrix.
fn resolve_quant(
    errs: &mut Errors<'_>,
    model: &str,
    q: &Sp<QuantEntry>,
    has_imatrix: bool,
) -> Option<QuantSpec> {
    let before = errs.list.len();
    let (name, name_span, ftype, imatrix_flag, recipe) = match &q.value {
        QuantEntry::Name(n) => {
            let ft = check_ftype(errs, n, &q.span)?;
            (quant_name(ft), q.span.clone(), ft, None, Recipe::default())
        }
        QuantEntry::Table(t) => {
            let (ft, span) = match (&t.ftype, &t.name) {
                (Some(ty), _) => (check_ftype(errs, &ty.value, &ty.span)?, ty.span.clone()),
                (None, Some(n)) => (check_ftype(errs, &n.value, &n.span)?, n.span.clone()),
                (None, None) => {
                    errs.at(
                        &q.span,
                        "a quant table needs `type` (the file type, e.g. \"q4_k_m\") and usually \
                         `name` (the artifact's name)",
                    );
                    return None;
                }
            };
            let name = t
                .name
                .as_ref()
                .map_or_else(|| quant_name(ft), |n| n.value.clone());
            let name_span = t.name.as_ref().map_or(span, |n| n.span.clone());
            let recipe = resolve_recipe(errs, t, &q.span);
            (name, name_span, ft, t.imatrix.as_ref(), recipe)
        }
    };
    if !is_quant_name(&name) {
        errs.at(
            &name_span,
            format!(
                "quant name `{name}` may only contain letters, digits, `.`, `_` and `-` and must \
                 not start with `.` (it names files and Ollama tags)"
            ),
        );
    }
    let wants = imatrix_flag.map(|f| f.value);
    let how = format!(
        "add `imatrix = {{ file = \"{model}.imatrix.gguf\" }}` or `imatrix = {{ text = \"calib.txt\" }}` \
         to [models.{model}] or [defaults], or compute one with `tinylm imatrix`"
    );
    if ftype.needs_imatrix() && wants == Some(false) {
        errs.at(
            &imatrix_flag.map_or(q.span.clone(), |f| f.span.clone()),
            format!(
                "quant `{name}`: type `{}` cannot be made without an importance matrix \
                 (llama-quantize refuses it too); remove `imatrix = false`",
                quant_name(ftype)
            ),
        );
    } else if ftype.needs_imatrix() && !has_imatrix {
        errs.at(
            &q.span,
            format!(
                "quant `{name}`: type `{}` needs an importance matrix, and model `{model}` has \
                 none; {how}",
                quant_name(ftype)
            ),
        );
    } else if wants == Some(true) && !has_imatrix {
        errs.at(
            &imatrix_flag.map_or(q.span.clone(), |f| f.span.clone()),
            format!(
                "quant `{name}` wants an importance matrix, and model `{model}` has none; {how}"
            ),
        );
    }
    (errs.list.len() == before).then(|| QuantSpec {
        name,
        ftype,
        imatrix: wants.unwrap_or(ftype.needs_imatrix()),
        recipe,
    })
}

/// The per-tensor recipe of a quant table.
fn resolve_recipe(errs: &mut Errors<'_>, t: &QuantTable, span: &Range<usize>) -> Recipe {
    let mut recipe = Recipe {
        pure: t.pure.unwrap_or(false),
        leave_output_tensor: t.leave_output.unwrap_or(false),
        ..Recipe::default()
    };
    let ty = |errs: &mut Errors<'_>, key: &str, v: &Option<Sp<String>>| {
        v.as_ref().and_then(|v| match parse_ggml_type(&v.value) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.at(&v.span, format!("`{key}`: {e}"));
                None
            }
        })
    };
    recipe.token_embedding_type = ty(errs, "token_embedding", &t.token_embedding);
    recipe.output_tensor_type = ty(errs, "output", &t.output);
    for (pattern, ty) in t.tensor_types.iter().flat_map(|tt| tt.0.iter()) {
        match parse_tensor_type(&format!("{pattern}={}", ty.value)) {
            Ok(TensorTypeRule {
                pattern: _,
                ggml_type,
            }) => recipe.tensor_types.push(TensorTypeRule {
                pattern: pattern.clone(),
                ggml_type,
            }),
            Err(e) => errs.at(&ty.span, format!("`tensor_types`: {e}")),
        }
    }
    if let Err(e) = recipe.compile() {
        errs.at(span, e.to_string());
    }
    recipe
}

/// An `imatrix = { … }` table: exactly one of `file` and `text`.
fn resolve_imatrix(errs: &mut Errors<'_>, root: &Path, d: &Sp<ImatrixDef>) -> Option<ImatrixSpec> {
    let def = &d.value;
    match (&def.file, &def.text) {
        (Some(f), None) => {
            for (key, v) in [("ctx", &def.ctx), ("chunks", &def.chunks)] {
                if let Some(v) = v {
                    errs.at(
                        &v.span,
                        format!(
                            "`{key}` applies to a computed imatrix (`text = …`), not to `file`"
                        ),
                    );
                }
            }
            Some(ImatrixSpec::File {
                path: existing(errs, root, f, "imatrix file"),
                given: f.value.clone(),
            })
        }
        (None, Some(t)) => {
            let ctx = def.ctx.as_ref().map_or(512, |c| c.value);
            if let Some(c) = &def.ctx
                && !(4..=1 << 20).contains(&c.value)
            {
                errs.at(&c.span, "`ctx` must be between 4 and 1048576 tokens");
            }
            if let Some(c) = &def.chunks
                && c.value == 0
            {
                errs.at(&c.span, "`chunks` must be at least 1");
            }
            Some(ImatrixSpec::Compute {
                text: existing(errs, root, t, "calibration text"),
                text_given: t.value.clone(),
                ctx: ctx as usize,
                chunks: def.chunks.as_ref().map(|c| c.value as usize),
            })
        }
        _ => {
            errs.at(
                &d.span,
                "`imatrix` needs exactly one of `file = \"m.imatrix.gguf\"` (a given imatrix) or \
                 `text = \"calib.txt\"` (computed from the base GGUF)",
            );
            None
        }
    }
}

/// `[eval]`.
fn resolve_eval(errs: &mut Errors<'_>, root: &Path, e: &Sp<EvalSection>) -> EvalSpec {
    let e = &e.value;
    if let Some(c) = &e.ctx
        && !(4..=1 << 20).contains(&c.value)
    {
        errs.at(&c.span, "`ctx` must be between 4 and 1048576 tokens");
    }
    if let Some(c) = &e.chunks
        && c.value == 0
    {
        errs.at(&c.span, "`chunks` must be at least 1");
    }
    EvalSpec {
        text: existing(errs, root, &e.text, "eval text"),
        text_given: e.text.value.clone(),
        ctx: e.ctx.as_ref().map_or(512, |c| c.value as usize),
        chunks: e.chunks.as_ref().map(|c| c.value as usize),
    }
}

/// A model's `quality` budgets. Budgets from `[defaults]` apply to the quants a model has;
/// a model's own must name its quants.
fn resolve_quality(
    errs: &mut Errors<'_>,
    model: &ModelSpec,
    def: &Sp<QualityDef>,
    is_default: bool,
) -> Vec<Budget> {
    let mut out = Vec::new();
    let d = &def.value;
    for (metric, map) in [
        (Metric::MaxKld, &d.max_kld),
        (Metric::MinSameTop, &d.min_same_top),
        (Metric::MaxPplRatio, &d.max_ppl_ratio),
    ] {
        for (quant, limit) in map.iter().flatten() {
            let Some(spec) = model
                .quants
                .iter()
                .find(|q| q.name.eq_ignore_ascii_case(quant))
            else {
                if !is_default {
                    let hint = closest(quant, model.quants.iter().map(|q| q.name.as_str()))
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    errs.at(
                        &limit.span,
                        format!(
                            "`quality.{}` names quant `{quant}`, which model `{}` does not build; \
                             {hint}it builds [{}]",
                            metric.key(),
                            model.name,
                            quant_names(&model.quants)
                        ),
                    );
                }
                continue;
            };
            // Every metric compares with the base GGUF, which has nothing to compare with.
            let base = match model.source {
                SourceSpec::Gguf(_) | SourceSpec::Ollama(_) => None,
                _ => base_file_type(model.outtype),
            };
            if spec.is_plain() && Some(spec.ftype) == base {
                if !is_default {
                    errs.at(
                        &limit.span,
                        format!(
                            "`quality.{}`: quant `{}` is model `{}`'s base GGUF, which the other \
                             quants are measured against; it has no budget",
                            metric.key(),
                            spec.name,
                            model.name
                        ),
                    );
                }
                continue;
            }
            let v = limit.value;
            let ok = match metric {
                Metric::MaxKld => v.is_finite() && v >= 0.0,
                Metric::MinSameTop => (0.0..=1.0).contains(&v),
                Metric::MaxPplRatio => v.is_finite() && v >= 1.0,
            };
            if !ok {
                let want = match metric {
                    Metric::MaxKld => "a KL-divergence of 0 or more",
                    Metric::MinSameTop => "a rate between 0 and 1",
                    Metric::MaxPplRatio => "a ratio of 1 or more",
                };
                errs.at(
                    &limit.span,
                    format!("`quality.{}`: expected {want}", metric.key()),
                );
                continue;
            }
            out.push(Budget {
                quant: spec.name.clone(),
                metric,
                limit: v,
            });
        }
    }
    out
}

/// Whether `s` can name a quant artifact (a file name part and an Ollama tag).
fn is_quant_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_safe_component(errs: &mut Errors<'_>, v: &Sp<String>, what: &str) {
    if !is_safe_name(&v.value) {
        errs.at(
            &v.span,
            format!(
                "{what} `{}` may only contain letters, digits, `.`, `_`, `+` and `-`",
                v.value
            ),
        );
    }
}

/// Longest model name: it names files (`<name>-<quant>.Modelfile`, release entries) and
/// Ollama models, which must stay well within the 255-byte file name limit.
const MAX_MODEL_NAME: usize = 64;

/// Whether `s` is safe as a single path component everywhere we use it.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
}

fn is_ollama_name(s: &str) -> bool {
    let (path, tag) = s.split_once(':').unwrap_or((s, "latest"));
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 80
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    path.split('/').count() <= 2 && path.split('/').all(part_ok) && part_ok(tag)
}

/// Resolves an `[install]` selection into (model, quant) artifacts.
fn resolve_install(
    errs: &mut Errors<'_>,
    models: &BTreeMap<String, ModelSpec>,
    sel: Option<&Sp<InstallSelection>>,
) -> Vec<(String, Option<String>)> {
    let artifacts = |m: &ModelSpec| -> Vec<(String, Option<String>)> {
        if m.quants.is_empty() {
            vec![(m.name.clone(), None)]
        } else {
            m.quants
                .iter()
                .map(|q| (m.name.clone(), Some(q.name.clone())))
                .collect()
        }
    };
    let Some(sel) = sel else { return Vec::new() };
    match &sel.value {
        InstallSelection::All(false) => Vec::new(),
        InstallSelection::All(true) => models.values().flat_map(artifacts).collect(),
        InstallSelection::Only(items) => {
            let mut out = Vec::new();
            for item in items {
                let (model, quant) = match item.split_once(':') {
                    Some((m, q)) => (m, Some(q.to_lowercase())),
                    None => (item.as_str(), None),
                };
                let Some(spec) = models.get(model) else {
                    let hint = closest(model, models.keys().map(String::as_str))
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    errs.at(
                        &sel.span,
                        format!("[install] names unknown model `{model}`{hint}"),
                    );
                    continue;
                };
                match quant {
                    None => out.extend(artifacts(spec)),
                    Some(q) => match spec.quants.iter().find(|s| s.name.eq_ignore_ascii_case(&q)) {
                        Some(s) => out.push((model.to_string(), Some(s.name.clone()))),
                        None => errs.at(
                            &sel.span,
                            format!(
                                "[install] wants `{model}:{q}`, but `{model}` builds [{}]",
                                quant_names(&spec.quants)
                            ),
                        ),
                    },
                }
            }
            out
        }
    }
}
