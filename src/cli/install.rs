//! `tinylm install` and `tinylm uninstall`.
//!
//! The manifest-aware `install ollama MODEL[:QUANT]` and the `[install]` section are the
//! engine's; they call [`crate::install::ollama::install`] with the built GGUF and Modelfile.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::install::{lmstudio, ollama};
use crate::template::modelfile::Modelfile;
use crate::{Error, IoContext, Result};

/// Arguments of `tinylm install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(subcommand)]
    pub target: InstallTarget,
}

/// Where to install.
#[derive(Debug, clap::Subcommand)]
pub enum InstallTarget {
    /// Write the model into the Ollama store ($OLLAMA_MODELS or ~/.ollama/models).
    Ollama {
        /// The GGUF to install.
        gguf: PathBuf,
        /// Ollama model name (model[:tag], namespace/model[:tag]).
        #[arg(long)]
        name: String,
        /// Modelfile with TEMPLATE/SYSTEM/PARAMETER/LICENSE/MESSAGE (its FROM is ignored).
        #[arg(long, value_name = "PATH")]
        modelfile: Option<PathBuf>,
        /// Run `ollama create` instead of writing the store (needs the ollama binary).
        #[arg(long)]
        via_cli: bool,
    },
    /// Link or copy the GGUF into LM Studio's models folder.
    Lmstudio {
        /// The GGUF to install.
        gguf: PathBuf,
        /// Model name (folder `<name>-GGUF`).
        #[arg(long)]
        name: String,
        /// Publisher folder.
        #[arg(long, default_value = "tinylm")]
        publisher: String,
        /// Models folder (default $LMSTUDIO_MODELS or ~/.lmstudio/models).
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
    },
}

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

/// Runs `tinylm install`.
pub fn install(g: &GlobalOpts, args: InstallArgs) -> Result<ExitCode> {
    match args.target {
        InstallTarget::Ollama {
            gguf,
            name,
            modelfile,
            via_cli,
        } => {
            if via_cli {
                let path = match modelfile {
                    Some(p) => p,
                    None => {
                        return Err(Error::Usage(
                            "--via-cli needs --modelfile (a Modelfile whose FROM points at the GGUF)".into(),
                        ));
                    }
                };
                ollama::create_via_cli(&path, &name)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mf = match &modelfile {
                Some(p) => Modelfile::parse(&std::fs::read(p).with_path(p)?)
                    .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?,
                None => Modelfile::new(gguf.display().to_string()),
            };
            let store = ollama::OllamaStore::from_env()?;
            let r = ollama::install(&store, &gguf, &mf, &name)?;
            if g.json {
                println!(
                    "{}",
                    serde_json::json!({"manifest": r.manifest, "id": r.manifest_digest, "written": r.written, "hardlinked": r.hardlinked})
                );
            } else if !g.quiet {
                let id = r.manifest_digest.get(7..19).unwrap_or("");
                if r.written.is_empty() {
                    println!("{name} is up to date in {} (id {id})", store.root.display());
                } else {
                    println!(
                        "installed {name} into {} (id {id}, {} file(s) written{})",
                        store.root.display(),
                        r.written.len(),
                        if r.hardlinked {
                            ", GGUF hardlinked"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        InstallTarget::Lmstudio {
            gguf,
            name,
            publisher,
            models_dir,
        } => {
            let dir = match models_dir {
                Some(d) => d,
                None => lmstudio::models_dir()?,
            };
            let (path, linked) = lmstudio::install(&dir, &gguf, &publisher, &name)?;
            if !g.quiet {
                println!(
                    "{} ({})",
                    path.display(),
                    if linked {
                        "hardlink"
                    } else {
                        "copy or unchanged"
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `tinylm uninstall`.
pub fn uninstall(g: &GlobalOpts, args: UninstallArgs) -> Result<ExitCode> {
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
