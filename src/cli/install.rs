//! `tinylm install` and `tinylm uninstall`.
//!
//! The manifest-aware `install ollama MODEL[:QUANT]` and the `[install]` section are the
//! engine's; they call [`crate::install::ollama::install`] with the built GGUF and Modelfile.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, workspace};
use crate::exec::{self, BuildOptions};
use crate::install::project::{self, Runtime};
use crate::install::{lmstudio, ollama};
use crate::plan;
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
        /// A built `MODEL` or `MODEL:QUANT` of the manifest (built first if stale), or a GGUF file.
        target: String,
        /// Ollama model name (model[:tag], namespace/model[:tag]); required for a GGUF file,
        /// default `ollama_name:quant` for a manifest model.
        #[arg(long)]
        name: Option<String>,
        /// Modelfile with TEMPLATE/SYSTEM/PARAMETER/LICENSE/MESSAGE (its FROM is ignored).
        #[arg(long, value_name = "PATH")]
        modelfile: Option<PathBuf>,
        /// Run `ollama create` instead of writing the store (needs the ollama binary).
        #[arg(long)]
        via_cli: bool,
    },
    /// Link or copy the GGUF into LM Studio's models folder.
    Lmstudio {
        /// A built `MODEL` or `MODEL:QUANT` of the manifest, or a GGUF file.
        target: String,
        /// Model name (folder `<name>-GGUF`); required for a GGUF file.
        #[arg(long)]
        name: Option<String>,
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
            target,
            name,
            modelfile,
            via_cli,
        } if !is_file(&target) => {
            if via_cli || modelfile.is_some() {
                return Err(Error::Usage(format!(
                    "`{target}` is not a GGUF file; --via-cli and --modelfile only apply to files \
                     (a manifest model uses the Modelfile tinylm built)"
                )));
            }
            manifest_install(g, Runtime::Ollama, &target, name.as_deref())
        }
        InstallTarget::Lmstudio { target, .. } if !is_file(&target) => {
            manifest_install(g, Runtime::Lmstudio, &target, None)
        }
        InstallTarget::Ollama {
            target,
            name,
            modelfile,
            via_cli,
        } => {
            let gguf = PathBuf::from(&target);
            let name = name.ok_or_else(|| {
                Error::Usage("--name is required when installing a GGUF file".into())
            })?;
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
            target,
            name,
            publisher,
            models_dir,
        } => {
            let gguf = PathBuf::from(&target);
            let name = name.ok_or_else(|| {
                Error::Usage("--name is required when installing a GGUF file".into())
            })?;
            let dir = match models_dir {
                Some(d) => d,
                None => lmstudio::models_dir()?,
            };
            let (path, linked) = lmstudio::install(&dir, &gguf, &publisher, &name, None)?;
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

fn is_file(target: &str) -> bool {
    std::path::Path::new(target).is_file()
}

/// Builds `target` (a manifest `MODEL` or `MODEL:QUANT`) if needed and installs its artifacts.
fn manifest_install(
    g: &GlobalOpts,
    runtime: Runtime,
    target: &str,
    name: Option<&str>,
) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let plan = plan::plan(&ws.project, Default::default())?;
    let (model, quant) = match target.split_once(':') {
        Some((m, q)) => (m, Some(q.to_lowercase())),
        None => (target, None),
    };
    let which: Vec<(String, Option<String>)> = plan
        .artifacts
        .iter()
        .filter(|a| a.model == model && (quant.is_none() || a.quant == quant))
        .map(|a| (a.model.clone(), a.quant.clone()))
        .collect();
    if which.is_empty() {
        let models: Vec<&str> = ws.project.models.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "`{target}` is neither a GGUF file nor a model of the manifest (models: {})",
            models.join(", ")
        )));
    }
    let _locks = workspace::lock_for_build(&ws)?;
    let opts = BuildOptions {
        targets: vec![target.to_string()],
        jobs: workspace::jobs(None)?,
        keep_going: false,
        dry_run: false,
        locked: false,
        progress: !g.quiet && !g.json,
        verbose_lines: !g.quiet && !g.json,
    };
    let report = exec::build(&ws, &plan, &opts, workspace::cancel_on_ctrl_c())?;
    if report.failed > 0 {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return Ok(ExitCode::from(1));
    }
    let done = project::install(&ws, &plan, runtime, &which, name)?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done).unwrap_or_default()
        );
    } else if !g.quiet {
        for i in &done {
            let what = if i.changed {
                "installed"
            } else {
                "up to date:"
            };
            println!("{what} {} ({})", i.name, i.location.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
