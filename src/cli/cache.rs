//! `tinylm cache push|pull|stats`: explicit sync with the remote cache, and cache statistics.

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, open, print_json};
use crate::Result;
use crate::workspace::CacheStats;

/// Arguments of `tinylm cache`.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// `tinylm cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Upload the cached results of targets (default: everything in tinylm.lock) to the remote.
    Push(TargetArgs),
    /// Download the results tinylm.lock names from the remote into the local cache.
    Pull(TargetArgs),
    /// Local cache size, projects sharing it, and remote cache totals.
    Stats,
}

/// Targets of `cache push` / `cache pull`.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// `MODEL`, `MODEL:QUANT` or `RELEASE` (default: everything).
    pub targets: Vec<String>,
}

/// Runs `tinylm cache …`.
pub fn run(g: &GlobalOpts, args: CacheArgs) -> Result<ExitCode> {
    let ws = open(g)?;
    match args.command {
        CacheCommand::Push(t) => {
            let r = ws.push(&t.targets)?;
            if g.json {
                print_json(&r);
            } else if !g.quiet {
                eprintln!(
                    "pushed {}/{} actions to {}: {} objects uploaded ({:.1} MiB), {} already there",
                    r.pushed,
                    r.pushed + r.failed,
                    r.remote.url,
                    r.remote.uploaded_objects,
                    mib(r.remote.uploaded_bytes),
                    r.remote.already_present
                );
                if !r.not_built.is_empty() {
                    eprintln!(
                        "not in the local cache (run `tinylm build` first): {}",
                        r.not_built.join(", ")
                    );
                }
            }
            Ok(exit(r.failed > 0 || r.remote.unavailable))
        }
        CacheCommand::Pull(t) => {
            let cancel = crate::exec::cancel_on_ctrl_c();
            let r = ws.pull(&t.targets, &cancel)?;
            if g.json {
                print_json(&r);
            } else if !g.quiet {
                eprintln!(
                    "pulled {} actions from {} ({} objects, {:.1} MiB), {} already local; \
                     `tinylm build` places them",
                    r.pulled,
                    r.remote.url,
                    r.remote.downloaded_objects,
                    mib(r.remote.downloaded_bytes),
                    r.present
                );
                if !r.not_found.is_empty() {
                    eprintln!("not on the remote: {}", r.not_found.join(", "));
                }
                if !r.not_in_lock.is_empty() {
                    eprintln!(
                        "not in tinylm.lock (build them once): {}",
                        r.not_in_lock.join(", ")
                    );
                }
            }
            Ok(exit(r.remote.unavailable))
        }
        CacheCommand::Stats => {
            let s = ws.cache_stats();
            if g.json {
                print_json(&s);
            } else {
                print_stats(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn print_stats(s: &CacheStats) {
    println!("cache     {}", s.dir.display());
    println!(
        "local     {} objects ({:.1} MiB), {} action records",
        s.usage.objects,
        mib(s.usage.bytes),
        s.usage.records
    );
    println!("projects  {}", s.projects.len());
    for p in &s.projects {
        println!("          {p}");
    }
    match &s.remote {
        Some(r) => {
            let state = match (r.reachable, r.latency_ms) {
                (true, Some(ms)) => format!("reachable ({ms:.0} ms)"),
                _ => format!("unreachable: {}", r.error.as_deref().unwrap_or("?")),
            };
            println!(
                "remote    {} (upload {}), {state}",
                r.url,
                if r.upload { "on" } else { "off" }
            );
        }
        None => println!("remote    none (set [cache] remote or --remote-cache)"),
    }
    for (url, t) in &s.totals {
        println!(
            "totals    {url}: {} hits, {} misses; down {} objects ({:.1} MiB), up {} objects \
             ({:.1} MiB), {} errors",
            t.hits,
            t.misses,
            t.downloaded_objects,
            mib(t.downloaded_bytes),
            t.uploaded_objects,
            mib(t.uploaded_bytes),
            t.errors
        );
    }
}
