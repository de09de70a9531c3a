//! `tinylm quantize`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {}

/// Runs `tinylm quantize`.
pub fn run(_g: &GlobalOpts, _args: QuantizeArgs) -> Result<ExitCode> {
    super::not_yet("quantize")
}
