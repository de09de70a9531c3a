//! `tinylm graph`.

use std::process::ExitCode;

use super::{GlobalOpts, open};
use crate::Result;
use crate::plan::graph::GraphFormat;

/// Arguments of `tinylm graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// Runs `tinylm graph`.
pub fn run(g: &GlobalOpts, args: GraphArgs) -> Result<ExitCode> {
    print!("{}", open(g)?.graph()?.render(args.format));
    Ok(ExitCode::SUCCESS)
}
