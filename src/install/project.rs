//! Installing a project's built artifacts: the glue between the build and the runtime stores.
//!
//! Artifacts are found through `tinylm.lock` (which the build just wrote) and read straight
//! from the cache, so the Ollama store can hardlink the very same bytes.

use std::path::PathBuf;

use serde::Serialize;

use super::{lmstudio, ollama};
use crate::exec::Workspace;
use crate::exec::lockfile::LockFile;
use crate::plan::{Plan, artifact_stem};
use crate::template::modelfile::Modelfile;
use crate::{Error, Result};

/// A local runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// The Ollama store.
    Ollama,
    /// LM Studio's models folder.
    Lmstudio,
}

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

/// Installs `(model, quant)` artifacts of a built project into `runtime`. `name` overrides the
/// Ollama name of a single artifact.
pub fn install(
    ws: &Workspace,
    plan: &Plan,
    runtime: Runtime,
    which: &[(String, Option<String>)],
    name: Option<&str>,
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
    let lock = LockFile::read(&ws.lock_path())?;
    let mut done = Vec::new();
    for (model, quant) in which {
        let art = plan
            .artifacts
            .iter()
            .find(|a| &a.model == model && &a.quant == quant)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no artifact {model}{}",
                    quant.as_ref().map(|q| format!(":{q}")).unwrap_or_default()
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
            let path = ws.store.object_path(&digest);
            if !path.is_file() {
                return Err(Error::Build(format!(
                    "the cache no longer holds `{id}`; run `tinylm build {model}`"
                )));
            }
            Ok(path)
        };
        let gguf = output(art.gguf.0, &art.gguf.1)?;
        let stem = artifact_stem(model, quant.as_deref());
        match runtime {
            Runtime::Ollama => {
                let mf_path = output(art.modelfile, "Modelfile")?;
                let text = std::fs::read(&mf_path).map_err(|e| Error::io(&mf_path, e))?;
                let mf = Modelfile::parse(&text)?;
                let oname = ollama_name(ws, model, quant.as_deref(), name)?;
                let store = ollama::OllamaStore::from_env()?;
                let r = ollama::install(&store, &gguf, &mf, &oname)?;
                done.push(Installed {
                    runtime,
                    model: model.clone(),
                    quant: quant.clone(),
                    name: oname,
                    location: r.manifest,
                    changed: !r.written.is_empty(),
                });
            }
            Runtime::Lmstudio => {
                let dir = lmstudio::models_dir()?;
                let publisher: String = ws
                    .project
                    .name
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
                let (location, linked) =
                    lmstudio::install(&dir, &gguf, &publisher, model, Some(&file))?;
                done.push(Installed {
                    runtime,
                    model: model.clone(),
                    quant: quant.clone(),
                    name: format!("{publisher}/{model}-GGUF/{file}"),
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
