//! Downloads into the Hub cache: the revision's file list from `/api/models/{repo}/revision/{rev}`,
//! then each missing file from `/{repo}/resolve/{commit}/{file}`.
//!
//! A small client on the reqwest stack the remote cache already uses, not the `hf-hub` crate:
//! hf-hub 1.x pulls in the whole Xet storage client, and 0.4's blocking API brings ureq with a
//! second TLS stack, verifies neither sizes nor sha256, and cannot list what is missing offline.
//!
//! Like huggingface_hub: a file downloads to `blobs/<etag>.incomplete` under the lock
//! `.locks/models--org--name/<etag>.lock`, resumes with a `Range` request when a previous run
//! was interrupted (restarting if the server ignores the range), is checked against the size
//! and LFS sha256 the API lists, and is renamed to `blobs/<etag>` only when both match; then
//! `snapshots/<commit>/<file>` becomes a relative symlink to it. `refs/<revision>` is written
//! last, so an interrupted download never moves a ref to an incomplete snapshot.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_RANGE, RANGE};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::{HubCache, NotDownloaded, RepoId, Snapshot, is_commit, wanted_file};
use crate::fsutil::{lock, write_atomic};
use crate::{Error, IoContext, Result};

/// Where the Hub is and who we are: `HF_ENDPOINT` (default `https://huggingface.co`) and
/// `HF_TOKEN` (else the token file `hf auth login` writes).
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL without a trailing `/`.
    pub base: String,
    /// Bearer token.
    pub token: Option<String>,
}

impl Endpoint {
    /// From the environment, as huggingface_hub reads it.
    pub fn from_env() -> Endpoint {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
        let base = var("HF_ENDPOINT")
            .unwrap_or_else(|| "https://huggingface.co".into())
            .trim_end_matches('/')
            .to_string();
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                // huggingface_hub's HF_TOKEN_PATH default: $HF_HOME/token, HF_HOME defaulting to
                // $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
                let path = var("HF_TOKEN_PATH").map(PathBuf::from).or_else(|| {
                    var("HF_HOME")
                        .map(PathBuf::from)
                        .or_else(|| {
                            var("XDG_CACHE_HOME").map(|x| PathBuf::from(x).join("huggingface"))
                        })
                        .or_else(|| {
                            var("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
                        })
                        .map(|h| h.join("token"))
                })?;
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            })
            .map(|t| t.trim().to_string());
        Endpoint { base, token }
    }
}

#[derive(Debug, Deserialize)]
struct RevisionInfo {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(default, rename = "blobId")]
    blob_id: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Clone, Deserialize)]
struct LfsInfo {
    sha256: String,
    size: u64,
}

/// Hears about each file as it downloads (a progress bar on a terminal, a line per file in a
/// log, nothing for `--json`).
pub trait DownloadProgress {
    /// `file` (`org/name/file`) starts: `size` bytes in all when the Hub listed it, `done` of
    /// them already on disk from an interrupted run.
    fn start(&self, file: &str, size: Option<u64>, done: u64);
    /// `n` more bytes arrived.
    fn advance(&self, n: u64);
    /// The file is complete (`ok`) or its download failed.
    fn finish(&self, ok: bool);
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl DownloadProgress for Silent {
    fn start(&self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: bool) {}
}

/// One file to fetch, with what it must be.
#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    /// Blob file name: the LFS sha256, else the git blob id.
    etag: String,
    size: Option<u64>,
    sha256: Option<String>,
}

/// Downloads what the cache lacks of `repo` at `revision` and returns the snapshot.
/// `progress` hears about each file as it downloads.
pub fn fetch(
    cache: &HubCache,
    endpoint: &Endpoint,
    repo: &RepoId,
    revision: &str,
    progress: &dyn DownloadProgress,
) -> Result<Snapshot> {
    let (rt, client) = runtime(Duration::from_secs(15), None)?;
    rt.block_on(fetch_async(
        &client, cache, endpoint, repo, revision, progress,
    ))
}

/// What [`fetch`] would download, from the one API call that lists the revision's files (no
/// file is downloaded, nothing is written). Short timeouts: `status` must not hang on a Hub
/// it cannot reach.
pub fn preview(
    cache: &HubCache,
    endpoint: &Endpoint,
    repo: &RepoId,
    revision: &str,
) -> Result<NotDownloaded> {
    let (rt, client) = runtime(Duration::from_secs(5), Some(Duration::from_secs(20)))?;
    let (commit, wanted) = rt.block_on(revision_info(&client, endpoint, repo, revision))?;
    let dir = cache.snapshot_dir(repo, &commit);
    let todo: Vec<&Wanted> = wanted
        .iter()
        .filter(|w| {
            let dest = dir.join(&w.name);
            !(dest.is_file() && w.size.is_none_or(|s| file_len(&dest) == Some(s)))
        })
        .collect();
    let bytes = todo.iter().map(|w| w.size).sum::<Option<u64>>();
    Ok(NotDownloaded {
        repo: repo.to_string(),
        revision: revision.to_string(),
        commit: Some(commit),
        missing: Some(todo.iter().map(|w| w.name.clone()).collect()),
        bytes,
        unresolved: None,
    })
}

/// A one-thread runtime and an HTTP client with these timeouts.
fn runtime(
    connect: Duration,
    total: Option<Duration>,
) -> Result<(tokio::runtime::Runtime, reqwest::Client)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Build(format!("cannot start the download runtime: {e}")))?;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect)
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("tinylm/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = total {
        builder = builder.timeout(t);
    }
    let client = builder
        .build()
        .map_err(|e| Error::Build(format!("cannot create the HTTP client: {}", chain(&e))))?;
    Ok((rt, client))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Percent-encodes one URL path segment (a `/` in it too).
fn encode_segment(seg: &str) -> String {
    seg.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes a path, keeping the `/` between its segments.
fn encode_path(s: &str) -> String {
    s.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// The commit `revision` names on the Hub and the files of it a conversion may read.
async fn revision_info(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    repo: &RepoId,
    revision: &str,
) -> Result<(String, Vec<Wanted>)> {
    let what = format!("{repo}@{revision}");
    let url = format!(
        "{}/api/models/{}/revision/{}?blobs=true",
        endpoint.base,
        repo.as_str(),
        // The API takes a revision as one path segment (`refs%2Fpr%2F1`).
        encode_segment(revision)
    );
    let mut req = client.get(&url);
    if let Some(t) = &endpoint.token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = req.send().await.map_err(|e| {
        Error::Build(format!(
            "{what}: cannot reach the Hugging Face Hub at {} ({}); use --offline (or HF_HUB_OFFLINE=1) to build from the cache only",
            endpoint.base,
            chain(&e)
        ))
    })?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Error::Build(format!(
                "{what}: the Hub refused access (HTTP {}); for a gated or private repo, accept its terms and set HF_TOKEN",
                resp.status().as_u16()
            )));
        }
        StatusCode::NOT_FOUND => {
            return Err(Error::Build(format!(
                "{what}: no such repository or revision on {} (HTTP 404); check `repo` and `revision`",
                endpoint.base
            )));
        }
        s => {
            return Err(Error::Build(format!(
                "{what}: GET {url} answered HTTP {}",
                s.as_u16()
            )));
        }
    }
    let body = resp.bytes().await.map_err(|e| {
        Error::Build(format!(
            "{what}: reading the answer of {url}: {}",
            chain(&e)
        ))
    })?;
    let info: RevisionInfo = serde_json::from_slice(&body)
        .map_err(|e| Error::Build(format!("{what}: unreadable answer from {url}: {e}")))?;
    if !is_commit(&info.sha) {
        return Err(Error::Build(format!(
            "{what}: the Hub answered commit {:?}, not a 40-hex hash",
            info.sha
        )));
    }
    let commit = info.sha.clone();
    let wanted: Vec<Wanted> = info
        .siblings
        .iter()
        .filter(|s| wanted_file(&s.rfilename))
        .map(|s| Wanted {
            name: s.rfilename.clone(),
            etag: match (&s.lfs, &s.blob_id) {
                (Some(l), _) => l.sha256.clone(),
                (None, Some(b)) => b.clone(),
                // Without blob ids (a minimal API), name the blob after the file and commit.
                (None, None) => format!("{commit}-{}", s.rfilename),
            },
            size: s.lfs.as_ref().map(|l| l.size).or(s.size),
            sha256: s.lfs.as_ref().map(|l| l.sha256.to_ascii_lowercase()),
        })
        .collect();
    if wanted.is_empty() {
        return Err(Error::Build(format!(
            "{what}: the repository lists no config, tokenizer or safetensors files"
        )));
    }
    Ok((commit, wanted))
}

async fn fetch_async(
    client: &reqwest::Client,
    cache: &HubCache,
    endpoint: &Endpoint,
    repo: &RepoId,
    revision: &str,
    progress: &dyn DownloadProgress,
) -> Result<Snapshot> {
    let what = format!("{repo}@{revision}");
    let (commit, wanted) = revision_info(client, endpoint, repo, revision).await?;
    let snap = Snapshot {
        dir: cache.snapshot_dir(repo, &commit),
        commit: commit.clone(),
    };
    for w in &wanted {
        if w.etag.contains(['/', '\\']) || w.etag.starts_with('.') {
            return Err(Error::Build(format!(
                "{what}: the Hub listed a bad blob id {:?} for {}",
                w.etag, w.name
            )));
        }
        let dest = snap.dir.join(&w.name);
        if dest.is_file() && w.size.is_none_or(|s| file_len(&dest) == Some(s)) {
            continue;
        }
        let blob = cache.repo_dir(repo).join("blobs").join(&w.etag);
        if !(blob.is_file() && w.size.is_none_or(|s| file_len(&blob) == Some(s))) {
            let lock_path = cache
                .root
                .join(".locks")
                .join(repo.folder())
                .join(format!("{}.lock", w.etag));
            let _guard = lock::acquire(
                &lock_path,
                true,
                &format!("another download of {}/{}", repo, w.name),
            )?;
            // Another process may have finished it while we waited.
            if !(blob.is_file() && w.size.is_none_or(|s| file_len(&blob) == Some(s))) {
                let url = format!(
                    "{}/{}/resolve/{commit}/{}",
                    endpoint.base,
                    repo.as_str(),
                    encode_path(&w.name)
                );
                let shown = format!("{repo}/{}", w.name);
                let r =
                    download_blob(client, endpoint, &url, &blob, w, &what, &shown, progress).await;
                progress.finish(r.is_ok());
                r?;
            }
        }
        link_into_snapshot(&blob, &dest)?;
    }
    let missing = super::missing_files(&snap.dir);
    if !missing.is_empty() {
        return Err(Error::Build(format!(
            "{what} (commit {commit}) has no {}: not a safetensors model tinylm can convert",
            missing.join(", ")
        )));
    }
    if !is_commit(revision) {
        write_atomic(
            &cache.ref_path(repo, revision),
            commit.as_bytes(), // huggingface_hub writes the bare hash, no newline
        )?;
    }
    Ok(snap)
}

fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

/// Downloads `url` to `blob` through `blob.incomplete`, resuming what a previous run left;
/// `progress` hears about it as `shown`.
#[allow(clippy::too_many_arguments)]
async fn download_blob(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    url: &str,
    blob: &Path,
    w: &Wanted,
    what: &str,
    shown: &str,
    progress: &dyn DownloadProgress,
) -> Result<()> {
    let dir = crate::fsutil::parent(blob);
    std::fs::create_dir_all(dir).with_path(dir)?;
    let part = blob.with_file_name(format!("{}.incomplete", w.etag));
    let mut have = file_len(&part).unwrap_or(0);
    if w.size.is_some_and(|s| have > s) {
        // More than the whole file: not a prefix of it.
        std::fs::remove_file(&part).with_path(&part)?;
        have = 0;
    }
    let mut req = client.get(url);
    if let Some(t) = &endpoint.token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
    }
    let resp = req.send().await.map_err(|e| {
        Error::Build(format!(
            "{what}: downloading {}: {}; run again to retry",
            w.name,
            chain(&e)
        ))
    })?;
    let status = resp.status();
    let resumed = match status {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let start = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(have) {
                std::fs::remove_file(&part).with_path(&part)?;
                return Err(Error::Build(format!(
                    "{what}: downloading {}: the server resumed at a different offset; the partial file was removed, run again",
                    w.name
                )));
            }
            true
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            std::fs::remove_file(&part).with_path(&part)?;
            return Err(Error::Build(format!(
                "{what}: downloading {}: the server refused to resume (HTTP 416); the partial file was removed, run again",
                w.name
            )));
        }
        s if s.is_success() => false,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(Error::Build(format!(
                "{what}: downloading {}: access refused (HTTP {}); set HF_TOKEN for a gated or private repo",
                w.name,
                status.as_u16()
            )));
        }
        s => {
            return Err(Error::Build(format!(
                "{what}: downloading {}: GET {url} answered HTTP {}",
                w.name,
                s.as_u16()
            )));
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .with_path(&part)?;
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    if resumed {
        // Hash the kept prefix, then append.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).with_path(&part)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            written += n as u64;
        }
        tracing::info!("resuming {} at byte {written}", w.name);
    } else {
        file.set_len(0).with_path(&part)?;
        file.rewind().with_path(&part)?;
    }
    progress.start(shown, w.size, written);
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            let _ = file.sync_all();
            Error::Build(format!(
                "{what}: downloading {}: the connection broke after {} ({}); the partial download is kept in {} and resumes on the next run",
                w.name,
                match w.size {
                    Some(s) => format!("{written} of {s} bytes"),
                    None => format!("{written} bytes"),
                },
                chain(&e),
                part.display()
            ))
        })?;
        file.write_all(&chunk).with_path(&part)?;
        hasher.update(&chunk);
        written += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
        if w.size.is_some_and(|s| written > s) {
            break;
        }
    }
    file.sync_all().with_path(&part)?;
    drop(file);
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let size_bad = w.size.is_some_and(|s| s != written);
    let sha_bad = w.sha256.as_ref().is_some_and(|e| *e != sha);
    if size_bad || sha_bad {
        // Nothing of a wrong download is kept: not the partial file, not a blob, not a link.
        std::fs::remove_file(&part).with_path(&part)?;
        let expected = match (&w.size, &w.sha256) {
            (Some(s), Some(h)) => format!("{s} bytes with sha256 {h}"),
            (Some(s), None) => format!("{s} bytes"),
            (None, Some(h)) => format!("sha256 {h}"),
            (None, None) => String::new(),
        };
        return Err(Error::Build(format!(
            "{what}: downloaded {} is {written} bytes with sha256 {sha}, but the Hub lists {expected}; nothing was kept, run again (a repeated mismatch means a broken mirror or proxy at {})",
            w.name, endpoint.base
        )));
    }
    std::fs::rename(&part, blob).with_path(blob)?;
    crate::fsutil::sync_dir(dir);
    Ok(())
}

/// Points `dest` (`snapshots/<commit>/<file>`) at `blob` with a relative symlink, atomically;
/// a copy where symlinks are unavailable.
fn link_into_snapshot(blob: &Path, dest: &Path) -> Result<()> {
    let dir = crate::fsutil::parent(dest);
    std::fs::create_dir_all(dir).with_path(dir)?;
    let tmp = dest.with_file_name(format!(
        ".{}.tinylm-link-{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    {
        // snapshots/<commit>/<file> → ../../blobs/<etag>
        let target = Path::new("../../blobs").join(blob.file_name().unwrap_or_default());
        std::os::unix::fs::symlink(&target, &tmp).with_path(&tmp)?;
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(blob, &tmp).with_path(&tmp)?;
    }
    std::fs::rename(&tmp, dest).with_path(dest)?;
    Ok(())
}
