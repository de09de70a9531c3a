//! `tinylm inspect`: describe a model or tokenizer file (see [`crate::inspect`]).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, print_json};
use crate::{Result, inspect};

/// Arguments of `tinylm inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// File to describe: .ckpt/.pt/.bin (torch), .safetensors, tokenizer.pkl (tiktoken).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs `tinylm inspect`.
pub fn run(g: &GlobalOpts, args: InspectArgs) -> Result<ExitCode> {
    let report = inspect::describe(&args.file)?;
    if g.json {
        print_json(&report.json);
    } else {
        print!("{}", report.text);
    }
    Ok(ExitCode::SUCCESS)
}
