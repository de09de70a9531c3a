//! `lint`: checks a Modelfile against the model it points at (template, markers, stops,
//! tokenizer). Errors fail the build unless `--allow-lint`, so a model that would talk garbage
//! or never stop cannot reach a release.

use serde::Serialize;

use super::{Action, LINT_JSON, RunCtx, to_params, write_json};
use crate::template::lint::{LintRecord, lint_modelfile_text};
use crate::template::vocab::Vocab;
use crate::{Error, Result};

/// Lints `modelfile` against `gguf`; writes `lint.json`.
#[derive(Debug)]
pub struct LintAction {
    /// Downgrade errors to warnings (`--allow-lint`). Part of the key: a lenient pass is never
    /// reused by a strict build.
    pub allow: bool,
}

impl Action for LintAction {
    fn kind(&self) -> &'static str {
        "lint"
    }

    fn version(&self) -> u32 {
        2
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params { allow: self.allow })
    }

    fn outputs(&self) -> Vec<String> {
        vec![LINT_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let gguf = &ctx.input("gguf")?.path;
        let mf_path = &ctx.input("modelfile")?.path;
        let vocab = Vocab::open_gguf(gguf)?;
        let text = std::fs::read(mf_path).map_err(|e| Error::io(mf_path, e))?;
        let report = lint_modelfile_text(&vocab, &text);
        if report.has_errors() && !self.allow {
            return Err(Error::Build(format!(
                "the Modelfile does not fit the model:\n{report}\n(fix the template or parameters, or pass --allow-lint)"
            )));
        }
        write_json(ctx, LINT_JSON, &LintRecord::from(&report))
    }
}

/// The key parameters of [`LintAction`].
#[derive(Serialize)]
struct Params {
    allow: bool,
}
