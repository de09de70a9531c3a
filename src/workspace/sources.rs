//! Resolving sources kept outside the project before planning: Hub repositories to snapshot
//! folders of the Hugging Face cache (downloading what is missing, unless offline), Ollama
//! models to their GGUF blob plus Modelfile defaults from their layers.

use std::path::Path;

use crate::exec::lockfile::LockFile;
use crate::hub::download::{self, DownloadProgress, Endpoint};
use crate::hub::{HubCache, Lookup, NotDownloaded};
use crate::install::ollama::{OllamaStore, StoredModel, read_model};
use crate::manifest::{
    HubSpec, ModelSpec, Project, RawValue, SourceOrigin, SourceSpec, TemplateSpec,
};
use crate::template::params;
use crate::{Error, Result};

/// Whether resolving may use the network, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Download what the Hub cache lacks.
    Allowed,
    /// `--offline` or `HF_HUB_OFFLINE=1`.
    Offline,
    /// A command that never downloads and needs every source (graph, lint, …): a source the
    /// cache lacks is an error.
    ReadOnly,
    /// `status` and `build -n`: a source the cache lacks is reported as what a build would
    /// download ([`NotDownloaded`]), found with one API call for its file list unless `offline`.
    Preview {
        /// `--offline` or `HF_HUB_OFFLINE`: no network at all.
        offline: bool,
    },
}

/// Whether `project` has sources left to resolve.
pub(super) fn needs_resolving(project: &Project) -> bool {
    project
        .models
        .values()
        .any(|m| matches!(m.source, SourceSpec::HfHub(_) | SourceSpec::Ollama(_)))
}

/// `project` with its Hub and Ollama sources resolved; `progress` hears about each download.
pub(super) fn resolve(
    project: &Project,
    net: Network,
    progress: &dyn DownloadProgress,
) -> Result<Project> {
    let mut out = project.clone();
    for m in out.models.values_mut() {
        match m.source.clone() {
            SourceSpec::HfHub(h) => resolve_hub(m, &h, net, progress)?,
            SourceSpec::Ollama(name) => resolve_ollama(m, &name)?,
            _ => {}
        }
    }
    Ok(out)
}

fn resolve_hub(
    m: &mut ModelSpec,
    h: &HubSpec,
    net: Network,
    progress: &dyn DownloadProgress,
) -> Result<()> {
    let cache = HubCache::from_env()?;
    let what = format!("model `{}`: {}@{}", m.name, h.repo, h.revision);
    let snap = match cache.lookup(&h.repo, &h.revision)? {
        Lookup::Complete(s) => s,
        missing if matches!(net, Network::Preview { .. }) => {
            let offline = net == (Network::Preview { offline: true });
            let nd = not_downloaded(&cache, h, missing, offline);
            tracing::info!("model `{}`: {nd}", m.name);
            let commit = nd.commit.clone();
            let at = commit.as_deref().unwrap_or(&h.revision);
            m.origin = Some(SourceOrigin {
                path: cache.snapshot_dir(&h.repo, at),
                locator: format!("hf://{}@{at}", h.repo),
                name: h.repo.name().to_string(),
                not_downloaded: Some(nd),
            });
            m.source = SourceSpec::Hf(cache.snapshot_dir(&h.repo, at));
            return Ok(());
        }
        missing if net != Network::Allowed => {
            let why = match net {
                Network::Offline => "offline (--offline or HF_HUB_OFFLINE)",
                _ => "this command never downloads",
            };
            let todo = "run `tinylm build` (without --offline) to download it";
            return Err(Error::Build(match missing {
                Lookup::Incomplete(s, files) => format!(
                    "{what} (commit {}) is incomplete in the Hugging Face cache: missing {} in {}; {why}: {todo}",
                    s.commit,
                    files.join(", "),
                    s.dir.display()
                ),
                _ => format!(
                    "{what} is not in the Hugging Face cache ({} has no {}); {why}: {todo}",
                    cache.repo_dir(&h.repo).display(),
                    Path::new("refs").join(&h.revision).display()
                ),
            }));
        }
        _ => download::fetch(
            &cache,
            &Endpoint::from_env(),
            &h.repo,
            &h.revision,
            progress,
        )?,
    };
    m.origin = Some(SourceOrigin {
        path: snap.dir.clone(),
        locator: format!("hf://{}@{}", h.repo, snap.commit),
        name: h.repo.name().to_string(),
        not_downloaded: None,
    });
    m.source = SourceSpec::Hf(snap.dir);
    Ok(())
}

/// What a build would download of a source the cache lacks. Unless `offline`, one API call
/// lists the revision's files (a few KB; never a weights file); offline, or when the Hub
/// cannot be asked, the cache's own `refs/` and snapshot say what they can.
fn not_downloaded(cache: &HubCache, h: &HubSpec, found: Lookup, offline: bool) -> NotDownloaded {
    let asked = if offline {
        Err("offline (--offline or HF_HUB_OFFLINE)".to_string())
    } else {
        download::preview(cache, &Endpoint::from_env(), &h.repo, &h.revision).map_err(|e| {
            let msg = e.to_string();
            // The error already names `org/name@revision`, and its hint to build offline is
            // for builds.
            let prefix = format!("{}@{}: ", h.repo, h.revision);
            let msg = msg.strip_prefix(&prefix).unwrap_or(&msg);
            let msg = msg.split("; use --offline").next().unwrap_or(msg);
            format!("the Hub could not be asked: {msg}")
        })
    };
    let why = match asked {
        Ok(nd) => return nd,
        Err(why) => why,
    };
    let mut nd = NotDownloaded {
        repo: h.repo.to_string(),
        revision: h.revision.clone(),
        commit: None,
        missing: None,
        bytes: None,
        unresolved: None,
    };
    match found {
        Lookup::Incomplete(snap, files) => {
            nd.commit = Some(snap.commit);
            nd.missing = Some(files);
            nd.unresolved = Some(format!(
                "{why}: other files the Hub lists may be missing too"
            ));
        }
        _ if crate::hub::is_commit(&h.revision) => {
            nd.commit = Some(h.revision.clone());
            nd.unresolved = Some(format!("{why}: the file list is unknown"));
        }
        _ => {
            nd.unresolved = Some(format!(
                "revision unresolved: no refs/{} in the cache, {why}",
                h.revision
            ));
        }
    }
    nd
}

fn resolve_ollama(m: &mut ModelSpec, name: &str) -> Result<()> {
    let store = OllamaStore::from_env()?;
    let stored = read_model(&store, name).map_err(|e| match e {
        Error::Build(msg) => Error::Build(format!("model `{}`: {msg}", m.name)),
        other => other,
    })?;
    m.origin = Some(SourceOrigin {
        path: stored.gguf.clone(),
        locator: format!("ollama://{name}@{}", stored.digest),
        name: name.to_string(),
        not_downloaded: None,
    });
    m.source = SourceSpec::Gguf(stored.gguf.clone());
    apply_store_defaults(m, &stored);
    Ok(())
}

/// The store's TEMPLATE, SYSTEM, PARAMETERs, LICENSE and MESSAGEs fill what the manifest's
/// template for the model leaves unset (all of them when it names none).
fn apply_store_defaults(m: &mut ModelSpec, stored: &StoredModel) {
    let mut stored_params = Vec::new();
    for (k, v) in &stored.params {
        let raw = match v {
            serde_json::Value::Bool(b) => Some(RawValue::Bool(*b)),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(RawValue::Int)
                .or_else(|| n.as_f64().map(RawValue::Float)),
            serde_json::Value::String(s) => Some(RawValue::Str(s.clone())),
            serde_json::Value::Array(a) => Some(RawValue::List(
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            )),
            _ => None,
        };
        match raw.map(|r| params::validate(k, &r)) {
            Some(Ok(p)) => stored_params.push((k.clone(), p)),
            Some(Err(e)) => tracing::warn!(
                "model `{}`: ignoring parameter {k} of the Ollama store: {e}",
                m.name
            ),
            None => tracing::warn!(
                "model `{}`: ignoring parameter {k} of the Ollama store: not a value",
                m.name
            ),
        }
    }
    stored_params.sort_by(|a, b| a.0.cmp(&b.0));
    let t = m.template.get_or_insert_with(|| TemplateSpec {
        name: "ollama".into(),
        ..Default::default()
    });
    // `auto` detects from the GGUF; the store's template is what Ollama already runs it with.
    if t.template.is_none() {
        if t.family.as_deref() == Some("auto") {
            t.family = None;
        }
        t.template = stored.template.clone().or(t.template.take());
    }
    if t.system.is_none() {
        t.system = stored.system.clone();
    }
    if t.parameters.is_empty() {
        t.parameters = stored_params;
    }
    if t.license.is_none() && !stored.licenses.is_empty() {
        t.license = Some(stored.licenses.join("\n\n"));
    }
    if t.messages.is_empty() {
        t.messages = stored.messages.clone();
    }
}

/// With `--locked`: a Hub source whose revision now resolves to another commit than
/// `tinylm.lock` records (or an Ollama model whose weights changed) is an error that names both.
pub(super) fn check_locked<'a>(
    locators: impl Iterator<Item = &'a String>,
    lock_path: &Path,
) -> Result<()> {
    let lock = LockFile::read(lock_path)?;
    for locator in locators {
        let Some((scheme_repo, _)) = locator.rsplit_once('@') else {
            continue;
        };
        let prefix = format!("{scheme_repo}@");
        let locked: Vec<&str> = lock
            .actions
            .values()
            .flat_map(|e| e.inputs.values())
            .filter_map(|i| i.path.as_deref())
            .filter(|p| p.starts_with(&prefix) && *p != locator)
            .collect();
        if let Some(old) = locked.first() {
            let old_at = &old[prefix.len()..];
            let new_at = &locator[prefix.len()..];
            let pin = if scheme_repo.starts_with("hf://") {
                format!(" (or pin `revision = \"{old_at}\"`)")
            } else {
                String::new()
            };
            return Err(Error::Build(format!(
                "--locked: {scheme_repo} now resolves to {new_at}, but tinylm.lock was built from {old_at}; \
                 run `tinylm build` and commit the lock{pin}"
            )));
        }
    }
    Ok(())
}
