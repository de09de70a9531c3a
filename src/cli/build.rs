//! `tinylm build`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {}

/// Runs `tinylm build`.
pub fn run(_g: &GlobalOpts, _args: BuildArgs) -> Result<ExitCode> {
    super::not_yet("build")
}
