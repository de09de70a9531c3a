//! Engine subcommands: status, graph, clean, gc, init, schema.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;

/// Arguments of `tinylm status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}

/// Runs `tinylm status`.
pub fn status(_g: &GlobalOpts, _args: StatusArgs) -> Result<ExitCode> {
    super::not_yet("status")
}

/// Arguments of `tinylm graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {}

/// Runs `tinylm graph`.
pub fn graph(_g: &GlobalOpts, _args: GraphArgs) -> Result<ExitCode> {
    super::not_yet("graph")
}

/// Arguments of `tinylm clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {}

/// Runs `tinylm clean`.
pub fn clean(_g: &GlobalOpts, _args: CleanArgs) -> Result<ExitCode> {
    super::not_yet("clean")
}

/// Arguments of `tinylm gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {}

/// Runs `tinylm gc`.
pub fn gc(_g: &GlobalOpts, _args: GcArgs) -> Result<ExitCode> {
    super::not_yet("gc")
}

/// Arguments of `tinylm init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {}

/// Runs `tinylm init`.
pub fn init(_g: &GlobalOpts, _args: InitArgs) -> Result<ExitCode> {
    super::not_yet("init")
}

/// Arguments of `tinylm schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// Runs `tinylm schema`.
pub fn schema(_g: &GlobalOpts, _args: SchemaArgs) -> Result<ExitCode> {
    super::not_yet("schema")
}
