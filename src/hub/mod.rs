//! The Hugging Face Hub cache that `huggingface_hub`, transformers and `hf download` share
//! (`models--org--name/{refs,snapshots,blobs}`), resolved locally and filled by [`download`].
//!
//! Layout (huggingface_hub's `file_download.py`): `refs/<revision>` holds a commit hash,
//! `snapshots/<commit>/<file>` is a relative symlink to `blobs/<etag>` (the sha256 of an LFS
//! file, the git blob id of any other). tinylm reads the snapshot folder like a local HF folder,
//! so the stat cache keeps a no-op build from rehashing it.

pub mod download;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{Error, Result};

/// The default revision of `source.hf = { repo }`.
pub const DEFAULT_REVISION: &str = "main";

/// A model repository id: `org/name` (or a legacy top-level `name` such as `gpt2`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RepoId(String);

impl RepoId {
    /// Checks `s` with the Hub's rules for repo ids: one or two parts of letters, digits, `-`,
    /// `_` and `.`, at most 96 characters each, no `--` or `..`, not starting or ending in `-`
    /// or `.`.
    pub fn parse(s: &str) -> std::result::Result<RepoId, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 2 {
            return Err(format!(
                "`{s}` has {} `/`; a repo id is `org/name`",
                parts.len() - 1
            ));
        }
        for p in &parts {
            let why = if p.is_empty() {
                Some("an empty part")
            } else if p.len() > 96 {
                Some("a part longer than 96 characters")
            } else if !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                Some("characters other than letters, digits, `-`, `_` and `.`")
            } else if p.contains("--") || p.contains("..") {
                Some("`--` or `..`")
            } else if p.starts_with(['-', '.']) || p.ends_with(['-', '.']) {
                Some("a part starting or ending with `-` or `.`")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(format!(
                    "`{s}` is not a Hugging Face repo id: it has {why} (expected `org/name`, e.g. `HuggingFaceTB/SmolLM2-135M`)"
                ));
            }
        }
        Ok(RepoId(s.to_string()))
    }

    /// The id as written (`org/name`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The repo's last part (`name`), which names the model like a downloaded folder would.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The cache folder name: `models--org--name`.
    pub fn folder(&self) -> String {
        format!("models--{}", self.0.replace('/', "--"))
    }
}

impl std::fmt::Display for RepoId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `rev` is a full commit hash (40 lower-case hex digits).
pub fn is_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a revision (branch, tag or commit): a git ref name that is also a safe relative path
/// under `refs/`.
pub fn check_revision(rev: &str) -> std::result::Result<(), String> {
    let bad = rev.is_empty()
        || rev.starts_with('/')
        || rev.ends_with('/')
        || rev
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        || rev
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\\~^:?*[".contains(c));
    if bad {
        return Err(format!(
            "`{rev}` is not a revision: use a branch or tag name (`main`, `v1.0`) or a 40-hex commit"
        ));
    }
    if rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()) && !is_commit(rev) {
        return Err(format!("commit `{rev}`: write commit hashes in lower case"));
    }
    Ok(())
}

/// Whether `HF_HUB_OFFLINE` asks for no network access (huggingface_hub's truthy values).
pub fn offline_from_env() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_uppercase().as_str(),
                "1" | "ON" | "YES" | "TRUE"
            )
        })
        .unwrap_or(false)
}

/// A Hub cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCache {
    /// The directory holding `models--*` folders.
    pub root: PathBuf,
}

/// A resolved revision: its commit and snapshot folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The commit the revision resolved to.
    pub commit: String,
    /// `snapshots/<commit>`.
    pub dir: PathBuf,
}

/// What the cache holds of one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A complete snapshot.
    Complete(Snapshot),
    /// The revision's commit is unknown (no `refs/<revision>`).
    NoRef,
    /// The snapshot lacks files the conversion needs (relative names).
    Incomplete(Snapshot, Vec<String>),
}

impl HubCache {
    /// The cache at `root`.
    pub fn at(root: impl Into<PathBuf>) -> HubCache {
        HubCache { root: root.into() }
    }

    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
    /// `~/.cache/huggingface/hub` (huggingface_hub's `constants.py`).
    pub fn from_env() -> Result<HubCache> {
        let var = |n: &str| {
            std::env::var_os(n)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = var("HF_HUB_CACHE") {
            return Ok(HubCache::at(p));
        }
        if let Some(p) = var("HF_HOME") {
            return Ok(HubCache::at(p.join("hub")));
        }
        if let Some(p) = var("XDG_CACHE_HOME") {
            return Ok(HubCache::at(p.join("huggingface").join("hub")));
        }
        let home = var("HOME").ok_or_else(|| {
            Error::Usage(
                "none of HF_HUB_CACHE, HF_HOME or HOME is set: where is the Hugging Face cache?"
                    .into(),
            )
        })?;
        Ok(HubCache::at(home.join(".cache/huggingface/hub")))
    }

    /// `models--org--name`.
    pub fn repo_dir(&self, repo: &RepoId) -> PathBuf {
        self.root.join(repo.folder())
    }

    /// `refs/<revision>`.
    pub fn ref_path(&self, repo: &RepoId, revision: &str) -> PathBuf {
        self.repo_dir(repo).join("refs").join(revision)
    }

    /// `snapshots/<commit>`.
    pub fn snapshot_dir(&self, repo: &RepoId, commit: &str) -> PathBuf {
        self.repo_dir(repo).join("snapshots").join(commit)
    }

    /// The commit `revision` points at in the cache, if known.
    pub fn commit_of(&self, repo: &RepoId, revision: &str) -> Result<Option<String>> {
        if is_commit(revision) {
            return Ok(Some(revision.to_string()));
        }
        let path = self.ref_path(repo, revision);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let commit = text.trim();
                if !is_commit(commit) {
                    return Err(Error::format(
                        &path,
                        format!("expected a 40-hex commit hash, found {commit:?}"),
                    ));
                }
                Ok(Some(commit.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// What the cache holds of `repo` at `revision`, without touching the network.
    pub fn lookup(&self, repo: &RepoId, revision: &str) -> Result<Lookup> {
        let Some(commit) = self.commit_of(repo, revision)? else {
            return Ok(Lookup::NoRef);
        };
        let snap = Snapshot {
            dir: self.snapshot_dir(repo, &commit),
            commit,
        };
        let missing = missing_files(&snap.dir);
        Ok(if missing.is_empty() {
            Lookup::Complete(snap)
        } else {
            Lookup::Incomplete(snap, missing)
        })
    }
}

/// The files a conversion needs that `dir` lacks: `config.json` and the weights
/// (`model.safetensors`, or every shard `model.safetensors.index.json` names). A symlink whose
/// blob is gone counts as missing.
pub fn missing_files(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !dir.join("config.json").is_file() {
        missing.push("config.json".to_string());
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let shards: Vec<String> = std::fs::read(&index)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                let map = v.get("weight_map")?.as_object()?;
                let mut s: Vec<String> = map
                    .values()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect();
                s.sort();
                s.dedup();
                Some(s)
            })
            .unwrap_or_default();
        missing.extend(shards.into_iter().filter(|s| !dir.join(s).is_file()));
    } else if !dir.join("model.safetensors").is_file() {
        missing.push("model.safetensors".to_string());
    }
    missing
}

/// A Hub source the cache lacks (wholly or in part), as `status` and `build -n` report it
/// without downloading: what a build would fetch, as far as is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotDownloaded {
    /// `org/name`.
    pub repo: String,
    /// The revision the manifest asks for.
    pub revision: String,
    /// The commit it resolves to, when the cache's `refs/` or the Hub said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Files a build would download (`None`: unknown without asking the Hub).
    pub missing: Option<Vec<String>>,
    /// Their total size, when the Hub listed sizes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why the commit or the file list is unknown (offline, Hub unreachable, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unresolved: Option<String>,
}

impl std::fmt::Display for NotDownloaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "source not downloaded: {}@{}", self.repo, self.revision)?;
        let mut parts: Vec<String> = Vec::new();
        if let Some(c) = self.commit.as_ref().filter(|c| **c != self.revision) {
            parts.push(format!("commit {c}"));
        }
        match &self.missing {
            Some(files) => {
                let n = files.len();
                let mut s = format!(
                    "{n} file{} missing from the Hugging Face cache",
                    if n == 1 { "" } else { "s" }
                );
                if let Some(b) = self.bytes {
                    s.push_str(&format!(", {} to download", human_bytes(b)));
                }
                const SHOWN: usize = 4;
                if n > 0 {
                    let mut names = files[..n.min(SHOWN)].join(", ");
                    if n > SHOWN {
                        names.push_str(&format!(", … {} more", n - SHOWN));
                    }
                    s.push_str(&format!(": {names}"));
                }
                parts.push(s);
            }
            None => parts.push("not in the Hugging Face cache".into()),
        }
        if let Some(why) = &self.unresolved {
            parts.push(why.clone());
        }
        write!(f, " ({})", parts.join("; "))
    }
}

/// `n` bytes for people: `1.5 GiB`, `312.0 KiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Whether a file of a repo is one a conversion may read: top-level JSON, safetensors,
/// tokenizer and template files and the model card (not PyTorch/TF/ONNX/GGUF weights).
pub fn wanted_file(name: &str) -> bool {
    if name.contains('/') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".json")
        || lower.ends_with(".safetensors")
        || lower.ends_with(".jinja")
        || lower.ends_with(".txt")
        || lower.ends_with(".tiktoken")
        || lower == "tokenizer.model"
        || lower == "readme.md"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        assert_eq!(
            RepoId::parse("HuggingFaceTB/SmolLM2-135M")
                .unwrap()
                .folder(),
            "models--HuggingFaceTB--SmolLM2-135M"
        );
        assert_eq!(RepoId::parse("gpt2").unwrap().name(), "gpt2");
        for bad in [
            "",
            "a/b/c",
            "a//b",
            "org/na me",
            "-org/x",
            "org/x.",
            "a--b/c",
        ] {
            assert!(RepoId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revisions() {
        assert!(check_revision("main").is_ok());
        assert!(check_revision("refs/pr/1").is_ok());
        assert!(check_revision(&"a".repeat(40)).is_ok());
        assert!(check_revision(&"A".repeat(40)).is_err());
        for bad in ["", "../x", "a b", "/x", "x/"] {
            assert!(check_revision(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn not_downloaded_wording() {
        let mut nd = NotDownloaded {
            repo: "org/m".into(),
            revision: "main".into(),
            commit: None,
            missing: None,
            bytes: None,
            unresolved: Some("revision unresolved: offline".into()),
        };
        assert_eq!(
            nd.to_string(),
            "source not downloaded: org/m@main (not in the Hugging Face cache; revision unresolved: offline)"
        );
        nd.commit = Some("c".repeat(40));
        nd.missing = Some((0..6).map(|i| format!("f{i}")).collect());
        nd.bytes = Some(3 << 20);
        nd.unresolved = None;
        assert_eq!(
            nd.to_string(),
            format!(
                "source not downloaded: org/m@main (commit {}; 6 files missing from the Hugging Face cache, 3.0 MiB to download: f0, f1, f2, f3, … 2 more)",
                "c".repeat(40)
            )
        );
    }

    #[test]
    fn wanted() {
        assert!(wanted_file("model-00001-of-00002.safetensors"));
        assert!(wanted_file("tokenizer.model"));
        assert!(!wanted_file("pytorch_model.bin"));
        assert!(!wanted_file("onnx/model.onnx"));
    }
}
