//! `tinylm build`.

use std::process::ExitCode;

use serde::Serialize;

use super::{GlobalOpts, open, print_json, resolve_sources};
use crate::Result;
use crate::exec::BuildReport;
use crate::plan::PlanOptions;
use crate::workspace::{BuildRequest, Installed};

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
    /// Report quants over their `quality` budgets as warnings instead of failing.
    #[arg(long)]
    pub allow_quality: bool,
    /// Worker threads (default: number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

/// `--json` output: the build report plus what the `[install]` section installed.
#[derive(Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    report: &'a BuildReport,
    installed: &'a [Installed],
    /// Exceeded quality budgets that `--allow-quality` let through.
    quality_warnings: &'a [String],
}

/// Runs `tinylm build`.
pub fn run(g: &GlobalOpts, args: BuildArgs) -> Result<ExitCode> {
    let mut ws = open(g)?;
    resolve_sources(g, &mut ws, args.dry_run)?;
    let plan = ws.plan(PlanOptions {
        allow_lint: args.allow_lint,
        allow_quality: args.allow_quality,
    })?;
    let req = BuildRequest {
        targets: args.targets,
        jobs: args.jobs,
        keep_going: args.keep_going,
        dry_run: args.dry_run,
        locked: args.locked,
        progress: !g.quiet && !g.json,
        interruptible: true,
    };
    let report = ws.build(&plan, &req)?;
    // The [install] section runs last, only after a complete, successful build.
    let installed = if report.failed == 0 && !args.dry_run {
        ws.install_after_build(&plan, &req.targets)?
    } else {
        Vec::new()
    };
    // Quants over budget that --allow-quality let through, whether their gate ran now or before.
    let quality_warnings = if report.failed == 0 && !args.dry_run {
        ws.quality_warnings(&plan, &req.targets)?
    } else {
        Vec::new()
    };
    if !g.quiet {
        for w in &quality_warnings {
            eprintln!("warning: quality budget exceeded (allowed by --allow-quality): {w}");
        }
    }
    if g.json {
        print_json(&Output {
            report: &report,
            installed: &installed,
            quality_warnings: &quality_warnings,
        });
    } else {
        if args.dry_run {
            for d in &report.details {
                eprintln!("{:>12} {}", d.status.label(), d.id);
                if let Some(nd) = &d.source_not_downloaded {
                    eprintln!("{:>12} {nd}", "");
                }
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
