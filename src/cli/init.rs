//! `tinylm init`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;
use crate::manifest::{self, manifest_path};

/// Arguments of `tinylm init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Project name (default: the directory name).
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs `tinylm init`: writes a starter manifest listing the models found nearby.
pub fn run(g: &GlobalOpts, args: InitArgs) -> Result<ExitCode> {
    let path = manifest_path(g.manifest.as_deref());
    manifest::init(&path, args.name)?;
    if !g.quiet {
        eprintln!("wrote {}; run `tinylm build`", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
