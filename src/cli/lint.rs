//! `tinylm lint`: check a GGUF with a template or a Modelfile.
//!
//! The manifest-aware `tinylm lint [MODEL]` is the engine's: it calls
//! [`crate::template::lint::lint_gguf`] with the Modelfile it builds for each (model, quant).

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::template::detect::detect;
use crate::template::families::{builtin, builtin_names};
use crate::template::lint::{lint, lint_modelfile_text};
use crate::template::modelfile::Modelfile;
use crate::template::vocab::Vocab;
use crate::{Error, IoContext, Result};

/// Arguments of `tinylm lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// The GGUF to check.
    pub gguf: PathBuf,
    /// A built-in template to check against the model (`auto` detects it).
    #[arg(long, value_name = "FAMILY", conflicts_with = "modelfile")]
    pub template: Option<String>,
    /// A Modelfile to check against the model.
    #[arg(long, value_name = "PATH")]
    pub modelfile: Option<PathBuf>,
    /// Report errors as warnings (exit 0).
    #[arg(long)]
    pub allow_lint: bool,
}

/// Runs `tinylm lint`.
pub fn run(g: &GlobalOpts, args: LintArgs) -> Result<ExitCode> {
    let v = Vocab::open_gguf(&args.gguf)?;
    let report = if let Some(path) = &args.modelfile {
        let text = std::fs::read(path).with_path(path)?;
        lint_modelfile_text(&v, &text)
    } else {
        let name = args.template.as_deref().unwrap_or("auto");
        let t = if name == "auto" {
            let d =
                detect(&v).map_err(|e| Error::Build(format!("{}: {e}", args.gguf.display())))?;
            if !g.quiet {
                eprint!("template: {d}");
            }
            d.template()
        } else {
            builtin(name)
        }
        .ok_or_else(|| {
            Error::Usage(format!(
                "no built-in template {name:?}; available: {}",
                builtin_names().join(", ")
            ))
        })?;
        let mut mf = Modelfile::new(args.gguf.display().to_string());
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
            mf.parameters = vec![(
                "stop".into(),
                crate::template::params::ParamValue::List(stops),
            )];
        }
        lint(&v, &mf)
    };
    if g.json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| serde_json::json!({"severity": format!("{:?}", f.severity).to_lowercase(), "code": f.code, "message": f.message, "hint": f.hint}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"errors": report.errors(), "warnings": report.warnings(), "findings": findings})
        );
    } else {
        println!("{report}");
    }
    Ok(if report.has_errors() && !args.allow_lint {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
