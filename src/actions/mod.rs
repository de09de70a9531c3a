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

mod export_hf;
mod gguf;
mod import;
mod lint;
mod modelfile;
mod quantize;
mod release;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use export_hf::{ExportHfAction, HF_FILES};
pub use gguf::{GgufAction, GgufSource};
pub use import::ImportGguf;
pub use lint::LintAction;
pub use modelfile::ModelfileAction;
pub use quantize::QuantizeAction;
pub use release::{ReleaseAction, ReleaseItem};

use crate::cache::Digest;
use crate::{Error, Result};

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
