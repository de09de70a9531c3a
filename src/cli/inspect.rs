//! `tinylm inspect`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {}

/// Runs `tinylm inspect`.
pub fn run(_g: &GlobalOpts, _args: InspectArgs) -> Result<ExitCode> {
    super::not_yet("inspect")
}
