//! `tinylm lint`: check a GGUF with a template or a Modelfile.
//!
//! The manifest-aware `tinylm lint [MODEL]` is the engine's: it calls
//! [`crate::template::lint::lint_gguf`] with the Modelfile it builds for each (model, quant).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, workspace};
use crate::exec::lockfile::LockFile;
use crate::exec::{self, BuildOptions};
use crate::plan;
use crate::template::detect::detect;
use crate::template::families::{builtin, builtin_names};
use crate::template::lint::{lint, lint_modelfile_text};
use crate::template::modelfile::Modelfile;
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
        let text = std::fs::read(path).with_path(path)?;
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
        let mut mf = Modelfile::new(gguf.display().to_string());
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

/// Lints the manifest's artifacts (building what they need) and prints every finding.
fn lint_manifest(g: &GlobalOpts, target: Option<&str>, allow: bool) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    // Run lint leniently so every report is produced; the exit code applies the strictness.
    let plan = plan::plan(&ws.project, plan::PlanOptions { allow_lint: true })?;
    let _locks = workspace::lock_for_build(&ws)?;
    let opts = BuildOptions {
        targets: target.map(|t| vec![t.to_string()]).unwrap_or_default(),
        jobs: workspace::jobs(None)?,
        keep_going: true,
        dry_run: false,
        locked: false,
        progress: false,
        verbose_lines: false,
    };
    let report = exec::build(&ws, &plan, &opts, workspace::cancel_on_ctrl_c())?;
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    let sel = plan.select(&opts.targets)?;
    let lock = LockFile::read(&ws.lock_path())?;
    let mut errors = 0u64;
    let mut all = Vec::new();
    for a in plan
        .artifacts
        .iter()
        .filter(|a| sel.nodes.contains(&a.lint))
    {
        let id = &plan.graph[a.lint].id;
        let Some(o) = lock
            .actions
            .get(id)
            .and_then(|e| e.outputs.get("lint.json"))
        else {
            continue;
        };
        let path = ws.store.object_path(&o.digest);
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).with_path(&path)?)
                .map_err(|e| Error::format(&path, e.to_string()))?;
        errors += doc["errors"].as_u64().unwrap_or(0);
        let name = format!(
            "{}{}",
            a.model,
            a.quant
                .as_ref()
                .map(|q| format!(":{q}"))
                .unwrap_or_default()
        );
        if !g.json {
            let findings = doc["findings"].as_array().cloned().unwrap_or_default();
            println!(
                "{name}: {} error(s), {} warning(s)",
                doc["errors"], doc["warnings"]
            );
            for f in findings {
                println!(
                    "  {}[{}]: {}",
                    f["severity"].as_str().unwrap_or(""),
                    f["code"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                );
                println!("    fix: {}", f["hint"].as_str().unwrap_or(""));
            }
        }
        all.push(serde_json::json!({ "artifact": name, "report": doc }));
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    }
    let failed = report.failed > 0 || (errors > 0 && !allow);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
