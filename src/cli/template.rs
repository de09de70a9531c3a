//! `tinylm template`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm template`.
#[derive(Debug, clap::Args)]
pub struct TemplateArgs {}

/// Runs `tinylm template`.
pub fn run(_g: &GlobalOpts, _args: TemplateArgs) -> Result<ExitCode> {
    super::not_yet("template")
}
