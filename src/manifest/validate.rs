//! Cross-checks and defaults: turns a parsed [`Manifest`] into the resolved [`Project`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::locations;
use super::{InstallSelection, Loaded, Message, Model, Sp, closest, quant_name};
use crate::convert::hf_to_gguf::OutType;
use crate::convert::tinylm_to_hf::{HfDtype, TinyLmArch};
use crate::quant::FileType;
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
    /// Artifacts to install into Ollama after a build.
    pub install_ollama: Vec<(String, Option<FileType>)>,
    /// Artifacts to install into LM Studio after a build.
    pub install_lmstudio: Vec<(String, Option<FileType>)>,
}

/// A model with defaults applied.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Model name (safe for file names).
    pub name: String,
    /// Where it comes from.
    pub source: SourceSpec,
    /// Quantizations to build, in manifest order; empty for a GGUF used as is.
    pub quants: Vec<FileType>,
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
}

/// A model source with absolute paths.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// An existing GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face folder.
    Hf(PathBuf),
    /// A tiny-lm run.
    TinyLm(TinyLmSpec),
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
    /// (model, quant) pairs in manifest order; quant is `None` for a GGUF used as is.
    pub items: Vec<(String, Option<FileType>)>,
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
    let default_quants = m.defaults.quants.as_ref();
    let default_template = m.defaults.template.as_ref();

    let mut models = BTreeMap::new();
    for (mname, model) in &m.models {
        if let Some(spec) = resolve_model(
            &mut errs,
            &root,
            mname,
            model,
            default_quants,
            default_template,
            &templates,
        ) {
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
            .map(|qs| qs.iter().map(|q| q.value.to_lowercase()).collect());
        if let Some(qs) = &rel.quants {
            for q in qs {
                check_quant(&mut errs, q);
            }
        }
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
                .unwrap_or_else(|| model.quants.iter().map(|q| quant_name(*q)).collect());
            for q in wanted {
                if let Some(ft) = model.quants.iter().find(|ft| quant_name(**ft) == q) {
                    items.push((model.name.clone(), Some(*ft)));
                } else if let Some(qs) = &rel.quants {
                    let span = qs
                        .iter()
                        .find(|s| s.value.to_lowercase() == q)
                        .map(|s| s.span.clone());
                    errs.at(
                        &span.unwrap_or(mref.span.clone()),
                        format!(
                            "release `{rname}` wants quant `{q}` of model `{}`, which only builds [{}]",
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
    default_quants: Option<&Vec<Sp<String>>>,
    default_template: Option<&Sp<String>>,
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
    if !is_safe_name(name) {
        errs.at(
            &model.source.span,
            format!("model name `{name}` may only contain letters, digits, `.`, `_` and `-` (it names files)"),
        );
    }
    let src = &model.source.value;
    let given = [src.gguf.is_some(), src.hf.is_some(), src.tinylm.is_some()];
    let source = match (&src.gguf, &src.hf, &src.tinylm) {
        _ if given.iter().filter(|g| **g).count() != 1 => {
            errs.at(
                &model.source.span,
                format!(
                    "model `{name}` needs exactly one source: `source.gguf = \"file.gguf\"`, \
                     `source.hf = \"dir\"` or `source.tinylm = {{ checkpoint, config, tokenizer }}`"
                ),
            );
            return None;
        }
        (Some(p), _, _) => SourceSpec::Gguf(existing_file(errs, root, p, "GGUF file")),
        (_, Some(p), _) => SourceSpec::Hf(existing(errs, root, p, "Hugging Face folder")),
        (_, _, Some(t)) => SourceSpec::TinyLm(TinyLmSpec {
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
    let is_gguf = matches!(source, SourceSpec::Gguf(_));

    let quant_list = model.quants.as_ref().or(default_quants);
    let mut quants: Vec<FileType> = Vec::new();
    for q in quant_list.into_iter().flatten() {
        if let Some(ft) = check_quant(errs, q) {
            if quants.contains(&ft) {
                errs.at(
                    &q.span,
                    format!("quant `{}` is listed twice", quant_name(ft)),
                );
            } else {
                quants.push(ft);
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
        quants.extend(base);
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
                format!("model `{name}`: `{field}` only applies to `hf` and `tinylm` sources"),
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
            .find_map(|q| match q {
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
        template,
        ollama_name,
        outtype,
        pre: model.pre.as_ref().map(|p| p.value.clone()),
        export_hf: model.export_hf.unwrap_or(false),
    })
}

/// The source files and folders of `models`.
pub(super) fn source_paths(models: &BTreeMap<String, ModelSpec>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for m in models.values() {
        match &m.source {
            SourceSpec::Gguf(p) | SourceSpec::Hf(p) => v.push(p.clone()),
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

fn quant_names(quants: &[FileType]) -> String {
    let names: Vec<String> = quants.iter().map(|q| quant_name(*q)).collect();
    names.join(", ")
}

fn check_quant(errs: &mut Errors<'_>, q: &Sp<String>) -> Option<FileType> {
    match q.value.parse::<FileType>() {
        // Types llama-quantize refuses without an importance matrix cannot be built until the
        // manifest can name one.
        Ok(t) if t.needs_imatrix() => {
            errs.at(
                &q.span,
                format!(
                    "quant `{}` needs an importance matrix, which tinylm.toml cannot provide yet; \
                     use `tinylm quantize IN OUT {} --imatrix FILE`",
                    q.value,
                    t.name()
                ),
            );
            None
        }
        // Aliases (`q4_k` = `q4_k_m`) would name files inconsistently; ask for the full name.
        Ok(t) if t.name().eq_ignore_ascii_case(&q.value) => Some(t),
        Ok(t) => {
            errs.at(
                &q.span,
                format!("write `{}` for `{}`", t.name().to_lowercase(), q.value),
            );
            None
        }
        Err(e) => {
            let names: Vec<String> = FileType::ALL
                .iter()
                .map(|t| t.name().to_lowercase())
                .collect();
            let hint = closest(&q.value.to_lowercase(), names.iter().map(String::as_str))
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errs.at(
                &q.span,
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
) -> Vec<(String, Option<FileType>)> {
    let artifacts = |m: &ModelSpec| -> Vec<(String, Option<FileType>)> {
        if m.quants.is_empty() {
            vec![(m.name.clone(), None)]
        } else {
            m.quants
                .iter()
                .map(|q| (m.name.clone(), Some(*q)))
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
                    Some(q) => match spec.quants.iter().find(|ft| quant_name(**ft) == q) {
                        Some(ft) => out.push((model.to_string(), Some(*ft))),
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
