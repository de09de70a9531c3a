//! `tinylm convert`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {}

/// Runs `tinylm convert`.
pub fn run(_g: &GlobalOpts, _args: ConvertArgs) -> Result<ExitCode> {
    super::not_yet("convert")
}
