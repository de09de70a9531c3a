//! `tinylm lint`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {}

/// Runs `tinylm lint`.
pub fn run(_g: &GlobalOpts, _args: LintArgs) -> Result<ExitCode> {
    super::not_yet("lint")
}
