//! `tinylm clean`.

use std::process::ExitCode;

use super::{GlobalOpts, open};
use crate::Result;

/// Arguments of `tinylm clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Also delete the cache directory.
    #[arg(long)]
    pub cache: bool,
}

/// Runs `tinylm clean`: removes the outputs tinylm placed (never other files).
pub fn run(g: &GlobalOpts, args: CleanArgs) -> Result<ExitCode> {
    let ws = open(g)?;
    let report = ws.clean(args.cache)?;
    if !g.quiet {
        eprintln!(
            "removed {} files from {}",
            report.removed,
            ws.project().out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
