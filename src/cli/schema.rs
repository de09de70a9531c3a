//! `tinylm schema`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::{Result, manifest};

/// Arguments of `tinylm schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// Runs `tinylm schema`: prints the JSON schema of tinylm.toml.
pub fn run(_g: &GlobalOpts, _args: SchemaArgs) -> Result<ExitCode> {
    print!("{}", manifest::json_schema());
    Ok(ExitCode::SUCCESS)
}
