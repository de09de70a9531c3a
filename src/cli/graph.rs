//! `tinylm graph`.

use std::process::ExitCode;

use super::{GlobalOpts, open};
use crate::Result;
use crate::plan::graph::GraphFormat;

/// Arguments of `tinylm graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Output format (default dot; json with --json).
    #[arg(long, value_enum)]
    pub format: Option<GraphFormat>,
}

/// Runs `tinylm graph`.
pub fn run(g: &GlobalOpts, args: GraphArgs) -> Result<ExitCode> {
    let format = args.format.unwrap_or(if g.json {
        GraphFormat::Json
    } else {
        GraphFormat::Dot
    });
    print!("{}", open(g)?.graph()?.render(format));
    Ok(ExitCode::SUCCESS)
}
