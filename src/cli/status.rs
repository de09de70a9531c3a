//! `tinylm status`.

use std::process::ExitCode;

use super::{GlobalOpts, open, print_json, resolve_sources};
use crate::Result;
use crate::exec::Status;

/// Arguments of `tinylm status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Targets to check (default: everything).
    pub targets: Vec<String>,
    /// Say why each stale action must run (which input or parameter changed).
    #[arg(long)]
    pub explain: bool,
    /// Exit with 1 when anything is stale or must be restored (for CI), like `git diff
    /// --exit-code`.
    #[arg(long)]
    pub exit_code: bool,
}

/// Runs `tinylm status`.
pub fn run(g: &GlobalOpts, args: StatusArgs) -> Result<ExitCode> {
    let mut ws = open(g)?;
    // Never downloads: a Hub source the cache lacks is reported as what a build would fetch.
    resolve_sources(g, &mut ws, true)?;
    let status = ws.status(args.targets, args.explain || g.json)?;
    let b = &status.build;
    let code = if args.exit_code && b.would_run + b.remote_hit + b.from_cache > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if g.json {
        print_json(&status);
        return Ok(code);
    }
    let mut fresh = 0;
    for a in &status.actions {
        let label = match a.status {
            Status::WouldRun => "stale",
            Status::FromCache => "restore",
            Status::RemoteHit => "remote",
            _ => {
                fresh += 1;
                if let Some(t) = &a.template {
                    println!("{:>8}  {}", "ok", a.id);
                    println!("{:>10}{}", "", t.describe());
                }
                continue;
            }
        };
        println!("{label:>8}  {}", a.id);
        for r in &a.reasons {
            println!("{:>10}{}", "", r.message);
        }
        if let Some(t) = &a.template {
            println!("{:>10}{}", "", t.describe());
        }
    }
    let remote = if b.remote_hit > 0 {
        format!(", {} to download from the remote cache", b.remote_hit)
    } else {
        String::new()
    };
    println!(
        "{} actions: {} stale, {} to restore from cache{remote}, {fresh} up to date",
        b.actions, b.would_run, b.from_cache
    );
    Ok(code)
}
