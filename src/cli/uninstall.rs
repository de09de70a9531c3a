//! `tinylm uninstall`.

use std::process::ExitCode;

use super::GlobalOpts;
use crate::Result;
use crate::install::ollama;

/// Arguments of `tinylm uninstall`.
#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    #[command(subcommand)]
    pub target: UninstallTarget,
}

/// What to uninstall.
#[derive(Debug, clap::Subcommand)]
pub enum UninstallTarget {
    /// Remove a model from the Ollama store (and blobs no other model uses).
    Ollama {
        /// Ollama model name.
        name: String,
    },
}

/// Runs `tinylm uninstall`.
pub fn run(g: &GlobalOpts, args: UninstallArgs) -> Result<ExitCode> {
    match args.target {
        UninstallTarget::Ollama { name } => {
            let store = ollama::OllamaStore::from_env()?;
            let r = ollama::uninstall(&store, &name)?;
            if !g.quiet {
                println!(
                    "removed {} and {} blob(s) no other model uses",
                    r.manifest.display(),
                    r.removed_blobs.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
