//! `tinylm lint`: check a GGUF with a template or a Modelfile, or the manifest's models (linted
//! as `tinylm build` lints them, see [`crate::workspace::Workspace::lint`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, open, print_json};
use crate::template::detect::detect;
use crate::template::families::{builtin, builtin_names};
use crate::template::lint::{LintRecord, builtin_modelfile, lint, lint_modelfile_text};
use crate::template::vocab::Vocab;
use crate::{Error, IoContext, Result};

/// Arguments of `tinylm lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// A GGUF file to check, or a manifest `MODEL`/`MODEL:QUANT` (default: every model of the
    /// manifest, linted as `tinylm build` lints them).
    pub target: Option<String>,
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
    let file = args
        .target
        .as_deref()
        .filter(|t| std::path::Path::new(t).is_file());
    let Some(file) = file else {
        if args.template.is_some() || args.modelfile.is_some() {
            return Err(Error::Usage(
                "--template and --modelfile apply to a GGUF file argument".into(),
            ));
        }
        return lint_manifest(g, args.target.as_deref(), args.allow_lint);
    };
    let gguf = PathBuf::from(file);
    let v = Vocab::open_gguf(&gguf)?;
    let report = if let Some(path) = &args.modelfile {
        let text = crate::fsutil::input::read(path).with_path(path)?;
        lint_modelfile_text(&v, &text)
    } else {
        let name = args.template.as_deref().unwrap_or("auto");
        let t = if name == "auto" {
            let d = detect(&v).map_err(|e| Error::Build(format!("{}: {e}", gguf.display())))?;
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
        lint(&v, &builtin_modelfile(&gguf.display().to_string(), &t, &v))
    };
    if g.json {
        println!(
            "{}",
            serde_json::to_string(&LintRecord::from(&report)).unwrap_or_default()
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

/// Lints the manifest's artifacts (building what they need) and prints every finding.
fn lint_manifest(g: &GlobalOpts, target: Option<&str>, allow: bool) -> Result<ExitCode> {
    let ws = open(g)?;
    let (build, reports) = ws.lint(target)?;
    for e in &build.errors {
        eprintln!("error: {e}");
    }
    let mut errors = 0;
    for a in &reports {
        errors += a.report.errors;
        if !g.json {
            let r = &a.report;
            println!(
                "{}: {} error(s), {} warning(s)",
                a.artifact, r.errors, r.warnings
            );
            for f in &r.findings {
                let severity = match f.severity {
                    crate::template::lint::Severity::Error => "error",
                    crate::template::lint::Severity::Warning => "warning",
                };
                println!("  {severity}[{}]: {}", f.code, f.message);
                println!("    fix: {}", f.hint);
            }
        }
    }
    if g.json {
        print_json(&reports);
    }
    let failed = build.failed > 0 || (errors > 0 && !allow);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
