//! Action kinds: what a node of the plan does when it runs.
//!
//! An action is a pure function from its inputs (files, by digest) and its parameters to a fixed
//! set of named output files. The executor gives it resolved input paths and a private staging
//! directory; it writes each declared output there and returns. Everything about caching,
//! atomicity and materialization is the executor's business, so actions stay small adapters over
//! the libraries that do the work.
//!
//! The action key is derived from [`Action::kind`], [`Action::version`], [`Action::params`] and the
//! input digests: bump `version` whenever an implementation change alters the bytes produced.
//! Each action builds its params from its own `#[derive(Serialize)]` struct (never from manifest
//! types), so renaming a manifest field cannot silently change cache keys.
//!
//! Adding an action kind: a file here with the action struct, its params struct and its `run`;
//! a `mod`/`pub use` line below; output-name constants if it has new outputs; the node(s) that
//! use it in `plan`; and tests in `tests/it/`.

mod eval;
mod export_hf;
mod gguf;
mod imatrix;
mod import;
mod lint;
mod modelfile;
mod parity;
mod quantize;
mod release;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use eval::{EvalAction, EvalRecord, QualityAction, QualityBudget, QualityRecord, read_eval};
pub use export_hf::{ExportHfAction, HF_FILES};
pub use gguf::{GgufAction, GgufSource};
pub use imatrix::ImatrixAction;
pub use import::ImportGguf;
pub use lint::LintAction;
pub use modelfile::{ModelfileAction, ModelfileTemplate, TemplateChoice};
pub use parity::{ParityAction, ParitySource};
pub use quantize::QuantizeAction;
pub use release::{ReleaseAction, ReleaseImatrix, ReleaseItem};

use serde::Serialize;

use crate::cache::Digest;
use crate::{Error, Result};

/// Output: a GGUF (`import`, `gguf`, `quantize`).
pub const MODEL_GGUF: &str = "model.gguf";
/// Output: a conversion or quantization report (`gguf`, `quantize`).
pub const REPORT_JSON: &str = "report.json";
/// Output: an importance matrix in llama.cpp's GGUF imatrix format (`imatrix`).
pub const IMATRIX_GGUF: &str = "imatrix.gguf";
/// Output: perplexity and KL-divergence of a GGUF ([`EvalRecord`], `eval`).
pub const EVAL_JSON: &str = "eval.json";
/// Output: a quality gate's verdict ([`QualityRecord`], `quality`).
pub const QUALITY_JSON: &str = "quality.json";
/// Output: conversion parity of a base GGUF (`parity`).
pub const PARITY_JSON: &str = "parity.json";
/// Output: a release's model card (`release`).
pub const README_MD: &str = "README.md";
/// Output: an Ollama Modelfile (`modelfile`).
pub const MODELFILE: &str = "Modelfile";
/// Output: the template a Modelfile uses and why ([`TemplateChoice`], `modelfile`).
pub const TEMPLATE_JSON: &str = "template.json";
/// Output: a lint report ([`crate::template::lint::LintRecord`], `lint`).
pub const LINT_JSON: &str = "lint.json";
/// Output: a release's checksums (`release`).
pub const SHA256SUMS: &str = "SHA256SUMS";
/// Output: a release's description (`release`).
pub const RELEASE_JSON: &str = "release.json";

/// One kind of build step.
pub trait Action: Send + Sync + std::fmt::Debug {
    /// Kind name (`modelfile`, `quantize`, …), part of the key.
    fn kind(&self) -> &'static str;
    /// Implementation version, part of the key: bump it when the output bytes change.
    fn version(&self) -> u32;
    /// Every parameter that influences the outputs, as JSON (canonicalized into the key).
    fn params(&self) -> serde_json::Value;
    /// Names of the output files, fixed at plan time.
    fn outputs(&self) -> Vec<String>;
    /// Produces every output in `ctx.out_dir`.
    fn run(&self, ctx: &RunCtx<'_>) -> Result<()>;
}

/// An input as the action sees it at run time.
#[derive(Debug, Clone)]
pub struct ResolvedInput {
    /// Input name, as declared in the plan.
    pub name: String,
    /// Where to read it: a source file or directory, or a read-only cache object.
    pub path: PathBuf,
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes (total for a directory).
    pub size: u64,
}

/// What an action gets when it runs.
#[derive(Debug)]
pub struct RunCtx<'a> {
    /// Inputs in declaration order.
    pub inputs: &'a [ResolvedInput],
    /// Private staging directory; write output `name` to `out_dir/name`.
    pub out_dir: &'a Path,
    /// Set on Ctrl-C; long actions check it between units of work.
    pub cancel: &'a Arc<AtomicBool>,
}

impl RunCtx<'_> {
    /// The input named `name`.
    pub fn input(&self, name: &str) -> Result<&ResolvedInput> {
        self.inputs.iter().find(|i| i.name == name).ok_or_else(|| {
            Error::Build(format!(
                "internal error: action has no input named `{name}`"
            ))
        })
    }

    /// Where to write output `name`.
    pub fn output(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    /// Returns `Error::Interrupted` once cancellation was requested.
    pub fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// An action's params struct as the JSON value its key is computed from.
pub(crate) fn to_params<T: Serialize>(params: &T) -> serde_json::Value {
    // Params are plain structs of strings, numbers and options: serializing cannot fail.
    serde_json::to_value(params).unwrap_or(serde_json::Value::Null)
}

/// Writes output `name` as pretty JSON with a trailing newline.
pub(crate) fn write_json<T: Serialize>(ctx: &RunCtx<'_>, name: &str, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Build(e.to_string()))?;
    text.push('\n');
    let path = ctx.output(name);
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
}
