//! Installing a project's built artifacts: the glue between the build and the runtime stores.
//!
//! Artifacts are found through `tinylm.lock` (which the build just wrote) and read straight
//! from the cache, so the Ollama store can hardlink the very same bytes.

use std::path::PathBuf;

use serde::Serialize;

use super::Workspace;
use crate::actions::MODELFILE;
use crate::exec::lockfile::LockFile;
use crate::install::{Runtime, lmstudio, ollama};
use crate::plan::{BuildPlan, artifact_stem};
use crate::template::modelfile::Modelfile;
use crate::{Error, Result};

/// What one install did.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    /// Runtime.
    pub runtime: Runtime,
    /// Model name in the manifest.
    pub model: String,
    /// Quant, if any.
    pub quant: Option<String>,
    /// Name in the runtime (`tiny:q8_0`, `publisher/model-GGUF/file.gguf`).
    pub name: String,
    /// Where it went.
    pub location: PathBuf,
    /// Whether anything was written (false when already installed unchanged).
    pub changed: bool,
}

impl Workspace {
    /// The `(model, quant)` artifacts a `MODEL` or `MODEL:QUANT` install target names.
    pub fn install_selection(
        &self,
        plan: &BuildPlan,
        target: &str,
    ) -> Vec<(String, Option<String>)> {
        let (model, quant) = match target.split_once(':') {
            Some((m, q)) => (m, Some(q.to_lowercase())),
            None => (target, None),
        };
        plan.artifacts
            .iter()
            .filter(|a| {
                a.model == model
                    && (quant.is_none() || a.quant.as_deref().map(str::to_lowercase) == quant)
            })
            .map(|a| (a.model.clone(), a.quant.clone()))
            .collect()
    }

    /// The manifest's `[install]` section, run after a complete, successful build of `targets`:
    /// installs the listed artifacts that this build covered.
    pub fn install_after_build(
        &self,
        plan: &BuildPlan,
        targets: &[String],
    ) -> Result<Vec<Installed>> {
        let mut installed = Vec::new();
        let sel = plan.select(targets)?;
        for (runtime, list) in [
            (Runtime::Ollama, &self.project.install_ollama),
            (Runtime::Lmstudio, &self.project.install_lmstudio),
        ] {
            let which: Vec<_> = list
                .iter()
                .filter(|(m, q)| {
                    plan.artifacts
                        .iter()
                        .any(|a| &a.model == m && &a.quant == q && sel.nodes.contains(&a.modelfile))
                })
                .cloned()
                .collect();
            if !which.is_empty() {
                installed.extend(self.install(plan, runtime, &which, None)?);
            }
        }
        Ok(installed)
    }

    /// Installs `(model, quant)` artifacts of a built project into `runtime`. `name` overrides
    /// the Ollama name of a single artifact.
    pub fn install(
        &self,
        plan: &BuildPlan,
        runtime: Runtime,
        which: &[(String, Option<String>)],
        name: Option<&str>,
    ) -> Result<Vec<Installed>> {
        install(
            self,
            plan,
            runtime,
            which,
            name,
            &LmStudioOptions::default(),
        )
    }

    /// Like [`Workspace::install`], with LM Studio's models folder and publisher given
    /// (`install lmstudio --models-dir/--publisher`).
    pub fn install_with(
        &self,
        plan: &BuildPlan,
        runtime: Runtime,
        which: &[(String, Option<String>)],
        name: Option<&str>,
        lmstudio: &LmStudioOptions,
    ) -> Result<Vec<Installed>> {
        install(self, plan, runtime, which, name, lmstudio)
    }
}

/// Where LM Studio installs go; unset fields take the defaults.
#[derive(Debug, Clone, Default)]
pub struct LmStudioOptions {
    /// Models folder (default `$LMSTUDIO_MODELS` or `~/.lmstudio/models`).
    pub models_dir: Option<PathBuf>,
    /// Publisher folder (default: the project name).
    pub publisher: Option<String>,
}

fn install(
    ws: &Workspace,
    plan: &BuildPlan,
    runtime: Runtime,
    which: &[(String, Option<String>)],
    name: Option<&str>,
    lms: &LmStudioOptions,
) -> Result<Vec<Installed>> {
    if name.is_some() && which.len() > 1 {
        return Err(Error::Usage(format!(
            "--name names one model, but {} artifacts were selected",
            which.len()
        )));
    }
    if runtime == Runtime::Ollama {
        // Two artifacts under one Ollama name would silently overwrite each other.
        let mut names = which
            .iter()
            .map(|(m, q)| ollama_name(ws, m, q.as_deref(), name))
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Usage(format!(
                "several artifacts would be installed as Ollama model `{}`; remove the tag from ollama_name",
                w[0]
            )));
        }
    }
    let lock = LockFile::read(&ws.layout.lock_path())?;
    let mut done = Vec::new();
    for (model, quant) in which {
        let quant = quant.as_deref();
        let art = plan
            .artifacts
            .iter()
            .find(|a| &a.model == model && a.quant.as_deref() == quant)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no artifact {model}{}",
                    quant.map(|q| format!(":{q}")).unwrap_or_default()
                ))
            })?;
        let output = |node: petgraph::graph::NodeIndex, out: &str| -> Result<PathBuf> {
            let id = &plan.graph[node].id;
            let digest = lock
                .actions
                .get(id)
                .and_then(|e| e.outputs.get(out))
                .map(|o| o.digest)
                .ok_or_else(|| {
                    Error::Build(format!(
                        "`{id}` has not been built; run `tinylm build {model}` first"
                    ))
                })?;
            let path = ws.store().object_path(&digest);
            if !path.is_file() {
                return Err(Error::Build(format!(
                    "the cache no longer holds `{id}`; run `tinylm build {model}`"
                )));
            }
            Ok(path)
        };
        let gguf = output(art.gguf.0, &art.gguf.1)?;
        let stem = artifact_stem(model, quant);
        match runtime {
            Runtime::Ollama => {
                let mf_path = output(art.modelfile, MODELFILE)?;
                let text = std::fs::read(&mf_path).map_err(|e| Error::io(&mf_path, e))?;
                let mf = Modelfile::parse(&text)?;
                let oname = ollama_name(ws, model, quant, name)?;
                let store = ollama::OllamaStore::from_env()?;
                let r = ollama::install(&store, &gguf, &mf, &oname)?;
                done.push(Installed {
                    runtime,
                    model: model.clone(),
                    quant: quant.map(str::to_string),
                    name: oname,
                    location: r.manifest,
                    changed: !r.written.is_empty(),
                });
            }
            Runtime::Lmstudio => {
                let dir = match &lms.models_dir {
                    Some(d) => d.clone(),
                    None => lmstudio::models_dir()?,
                };
                let publisher: String = lms
                    .publisher
                    .as_deref()
                    .unwrap_or(&ws.project.name)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                let file = format!("{stem}.gguf");
                let folder = name.unwrap_or(model);
                let (location, linked) =
                    lmstudio::install(&dir, &gguf, &publisher, folder, Some(&file))?;
                done.push(Installed {
                    runtime,
                    model: model.clone(),
                    quant: quant.map(str::to_string),
                    name: format!("{publisher}/{folder}-GGUF/{file}"),
                    location,
                    changed: linked,
                });
            }
        }
    }
    Ok(done)
}

/// The Ollama name of an artifact: `--name`, else `ollama_name` tagged with the quant (unless
/// `ollama_name` carries its own tag).
fn ollama_name(
    ws: &Workspace,
    model: &str,
    quant: Option<&str>,
    name: Option<&str>,
) -> Result<String> {
    let spec = ws
        .project
        .models
        .get(model)
        .ok_or_else(|| Error::Usage(format!("no model `{model}` in the manifest")))?;
    Ok(match (name, quant) {
        (Some(n), _) => n.to_string(),
        (None, _) if spec.ollama_name.contains(':') => spec.ollama_name.clone(),
        (None, Some(q)) => format!("{}:{q}", spec.ollama_name),
        (None, None) => spec.ollama_name.clone(),
    })
}
