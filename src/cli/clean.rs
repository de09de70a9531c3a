//! `tinylm clean`.

use std::process::ExitCode;

use super::{GlobalOpts, open};
use crate::Result;

/// Arguments of `tinylm clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Also delete the cache (what tinylm created in it; a cache shared through --cache,
    /// TINYLM_CACHE or [cache] dir is emptied for every project using it).
    #[arg(long)]
    pub all: bool,
}

/// Runs `tinylm clean`: removes the outputs tinylm placed (never other files).
pub fn run(g: &GlobalOpts, args: CleanArgs) -> Result<ExitCode> {
    let ws = open(g)?;
    let report = ws.clean(args.all)?;
    let out = &ws.project().out;
    if !g.quiet {
        for k in &report.kept {
            eprintln!(
                "warning: kept {} (modified after tinylm placed it)",
                out.join(k).display()
            );
        }
        for k in &report.cache_kept {
            eprintln!(
                "warning: kept {} in the cache directory (tinylm did not create it)",
                k.display()
            );
        }
    }
    if g.json {
        super::print_json(&report);
    } else if !g.quiet {
        eprintln!("removed {} files from {}", report.removed, out.display());
    }
    Ok(ExitCode::SUCCESS)
}
