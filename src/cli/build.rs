//! `tinylm build`.

use std::process::ExitCode;

use super::{GlobalOpts, workspace};
use crate::exec::{self, BuildOptions};
use crate::install::project::{self, Runtime};
use crate::{Result, plan};

/// Arguments of `tinylm build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// What to build: `MODEL`, `MODEL:QUANT` or `RELEASE` (default: everything).
    pub targets: Vec<String>,
    /// Show what would run, without running or writing anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Fail (exit 1, writing nothing) if the build would change tinylm.lock.
    #[arg(long)]
    pub locked: bool,
    /// Keep building independent actions after a failure.
    #[arg(long, short = 'k')]
    pub keep_going: bool,
    /// Report lint errors (template, stops, tokenizer) as warnings instead of failing.
    #[arg(long)]
    pub allow_lint: bool,
    /// Worker threads (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

/// Runs `tinylm build`.
pub fn run(g: &GlobalOpts, args: BuildArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let plan = plan::plan(
        &ws.project,
        plan::PlanOptions {
            allow_lint: args.allow_lint,
        },
    )?;
    let _locks = if args.dry_run {
        None
    } else {
        Some(workspace::lock_for_build(&ws)?)
    };
    let opts = BuildOptions {
        targets: args.targets,
        jobs: workspace::jobs(args.jobs)?,
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        locked: args.locked,
        progress: !g.quiet && !g.json,
        verbose_lines: !g.quiet && !g.json,
    };
    let report = exec::build(&ws, &plan, &opts, workspace::cancel_on_ctrl_c())?;
    // The [install] section runs last, only after a complete, successful build.
    let mut installed = Vec::new();
    if report.failed == 0 && !args.dry_run {
        let sel = plan.select(&opts.targets)?;
        for (runtime, list) in [
            (Runtime::Ollama, &ws.project.install_ollama),
            (Runtime::Lmstudio, &ws.project.install_lmstudio),
        ] {
            let which: Vec<_> = list
                .iter()
                .filter(|(m, q)| {
                    plan.artifacts
                        .iter()
                        .any(|a| &a.model == m && &a.quant == q && sel.nodes.contains(&a.modelfile))
                })
                .cloned()
                .collect();
            if !which.is_empty() {
                installed.extend(project::install(&ws, &plan, runtime, &which, None)?);
            }
        }
    }
    if g.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        v["installed"] = serde_json::to_value(&installed).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if args.dry_run {
            for d in &report.details {
                eprintln!("{:>12} {}", d.status.label(), d.id);
            }
        }
        if !g.quiet {
            for i in &installed {
                let what = if i.changed { "Installed" } else { "Up to date" };
                eprintln!(
                    "{what:>12} {} ({:?}: {})",
                    i.name,
                    i.runtime,
                    i.location.display()
                );
            }
            eprintln!("{}", report.summary_line());
        }
    }
    if report.failed > 0 {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
