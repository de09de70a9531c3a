//! `tinylm install`: a manifest model (built first if stale, see
//! [`crate::workspace::Workspace::install`]) or a GGUF file, into Ollama or LM Studio.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{GlobalOpts, open, print_json};
use crate::install::{Runtime, lmstudio, ollama};
use crate::plan::PlanOptions;
use crate::template::modelfile::Modelfile;
use crate::workspace::{BuildRequest, LmStudioOptions};
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
        /// Model name (folder `<name>-GGUF`); required for a GGUF file, default the model's
        /// name for a manifest model.
        #[arg(long)]
        name: Option<String>,
        /// Publisher folder (default `tinylm` for a GGUF file, the project name for a manifest
        /// model).
        #[arg(long)]
        publisher: Option<String>,
        /// Models folder (default $LMSTUDIO_MODELS or ~/.lmstudio/models).
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
    },
}

/// Runs `tinylm install`.
pub fn run(g: &GlobalOpts, args: InstallArgs) -> Result<ExitCode> {
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
            manifest_install(
                g,
                Runtime::Ollama,
                &target,
                name.as_deref(),
                &LmStudioOptions::default(),
            )
        }
        InstallTarget::Lmstudio {
            target,
            name,
            publisher,
            models_dir,
        } if !is_file(&target) => {
            let lms = LmStudioOptions {
                models_dir,
                publisher,
            };
            manifest_install(g, Runtime::Lmstudio, &target, name.as_deref(), &lms)
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
                Some(p) => Modelfile::parse(&crate::fsutil::input::read(p).with_path(p)?)
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
            let publisher = publisher.unwrap_or_else(|| "tinylm".into());
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

fn is_file(target: &str) -> bool {
    std::path::Path::new(target).is_file()
}

/// Builds `target` (a manifest `MODEL` or `MODEL:QUANT`) if needed and installs its artifacts.
fn manifest_install(
    g: &GlobalOpts,
    runtime: Runtime,
    target: &str,
    name: Option<&str>,
    lms: &LmStudioOptions,
) -> Result<ExitCode> {
    let ws = open(g)?;
    let plan = ws.plan(PlanOptions::default())?;
    let which = ws.install_selection(&plan, target);
    if which.is_empty() {
        let models: Vec<&str> = ws.project().models.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "`{target}` is neither a GGUF file nor a model of the manifest (models: {})",
            models.join(", ")
        )));
    }
    let req = BuildRequest {
        targets: vec![target.to_string()],
        progress: !g.quiet && !g.json,
        interruptible: true,
        ..Default::default()
    };
    let report = ws.build(&plan, &req)?;
    if report.failed > 0 {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return Ok(ExitCode::from(1));
    }
    let done = ws.install_with(&plan, runtime, &which, name, lms)?;
    if g.json {
        print_json(&done);
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
