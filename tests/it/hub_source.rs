//! `source.hf = { repo, revision }`: resolution in the Hugging Face cache (refs, snapshots,
//! symlinked blobs), the commit in tinylm.lock and `--locked`, downloads from a local server that
//! speaks the Hub's `/api/models/{repo}/revision/{rev}` and `/{repo}/resolve/{rev}/{file}`
//! (resume, restart, bad sha256), offline mode.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use crate::support::{self, Project, count, sha256_hex};

const REPO: &str = "tiny-org/tiny-qwen3";
const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
/// Nothing listens here: a test that must stay offline fails loudly if it connects.
const NO_HUB: &str = "http://127.0.0.1:9";

/// The repository's files: a real small HF folder (a Qwen3 written by transformers).
fn repo_files() -> BTreeMap<String, Vec<u8>> {
    let dir = support::golden("infer/qwen3/hf");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Lays out `files` at `commit` in the hub cache under `root` as huggingface_hub does:
/// `blobs/<sha256>`, `snapshots/<commit>/<file>` → `../../blobs/<sha256>`, and `refs/<rev>`.
fn put_in_cache(root: &Path, commit: &str, files: &BTreeMap<String, Vec<u8>>, rev: Option<&str>) {
    let repo = root.join("models--tiny-org--tiny-qwen3");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for (name, bytes) in files {
        let sha = sha256_hex(bytes);
        let blob = repo.join("blobs").join(&sha);
        std::fs::write(&blob, bytes).unwrap();
        support::backdate(&blob);
        let link = snap.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&sha), &link).unwrap();
    }
    if let Some(rev) = rev {
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join(rev), commit).unwrap();
    }
}

fn manifest(source: &str) -> String {
    format!("[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\nsource.hf = {source}\n")
}

struct Hub {
    p: Project,
    cache: PathBuf,
}

impl Hub {
    fn new(source: &str) -> Hub {
        let p = Project::new();
        p.write("tinylm.toml", &manifest(source));
        let cache = p.path().join("hf-cache");
        std::fs::create_dir_all(&cache).unwrap();
        Hub { p, cache }
    }

    fn run(&self, args: &[&str], endpoint: &str, extra: &[(&str, &str)]) -> Output {
        let cache = self.cache.to_string_lossy().into_owned();
        let mut env = vec![
            ("HF_HUB_CACHE", cache.as_str()),
            ("HF_ENDPOINT", endpoint),
            ("HF_HUB_OFFLINE", "0"),
            ("HF_TOKEN", ""),
            ("HUGGING_FACE_HUB_TOKEN", ""),
            ("HF_TOKEN_PATH", "/nonexistent"),
        ];
        env.extend_from_slice(extra);
        self.p.run_env(args, &env)
    }

    fn build_json(&self, args: &[&str], endpoint: &str) -> serde_json::Value {
        let mut all = vec!["--json", "build"];
        all.extend_from_slice(args);
        let out = self.run(&all, endpoint, &[]);
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn lock(&self) -> String {
        std::fs::read_to_string(self.p.path().join("tinylm.lock")).unwrap()
    }

    fn repo_dir(&self) -> PathBuf {
        self.cache.join("models--tiny-org--tiny-qwen3")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_cached_revision_builds_like_the_folder_and_its_commit_is_locked() {
    let files = repo_files();
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\", revision = \"main\" }}"));
    put_in_cache(&hub.cache, COMMIT_A, &files, Some("main"));

    let r = hub.build_json(&[], NO_HUB);
    let built = std::fs::read(hub.p.path().join("dist/m/m-f16.gguf")).unwrap();

    // The same files as a plain folder named like the repo: the same GGUF, byte for byte
    // (general.name comes from the repo's name, not the snapshot's commit hash).
    let local = Project::new();
    for (name, bytes) in &files {
        local.write(&format!("tiny-qwen3/{name}"), "");
        std::fs::write(local.path().join("tiny-qwen3").join(name), bytes).unwrap();
    }
    local.write("tinylm.toml", &manifest("\"tiny-qwen3\""));
    local.build(&[]);
    let expected = std::fs::read(local.path().join("dist/m/m-f16.gguf")).unwrap();
    assert!(
        built == expected,
        "hub-cache build differs from the folder build"
    );
    assert!(count(&r, "hashed_files") >= files.len() as u64);

    // The lock names the source the same way on every machine: repo and commit.
    let lock = hub.lock();
    assert!(
        lock.contains(&format!("path = \"hf://{REPO}@{COMMIT_A}\"")),
        "{lock}"
    );
    assert!(
        !lock.contains("hf-cache"),
        "machine-specific path in the lock:\n{lock}"
    );

    // A no-op build rehashes nothing (the symlinked blobs are stat-cached).
    let again = hub.build_json(&[], NO_HUB);
    assert_eq!(count(&again, "hashed_files"), 0, "{again}");
    assert_eq!(count(&again, "run"), 0, "{again}");
    let ok = hub.run(&["build", "--locked"], NO_HUB, &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // `main` moves (same files, new commit): --locked fails, naming both commits, writing nothing.
    put_in_cache(&hub.cache, COMMIT_B, &files, Some("main"));
    let out = hub.run(&["build", "--locked"], NO_HUB, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--locked") && err.contains(COMMIT_A) && err.contains(COMMIT_B),
        "{err}"
    );
    assert!(hub.lock().contains(COMMIT_A));
    // A plain build follows the ref and records the new commit.
    hub.build_json(&[], NO_HUB);
    let lock = hub.lock();
    assert!(
        lock.contains(COMMIT_B) && !lock.contains(COMMIT_A),
        "{lock}"
    );

    // A commit as the revision needs no ref at all.
    std::fs::remove_dir_all(hub.repo_dir().join("refs")).unwrap();
    hub.p.write(
        "tinylm.toml",
        &manifest(&format!(
            "{{ repo = \"{REPO}\", revision = \"{COMMIT_A}\" }}"
        )),
    );
    let r = hub.build_json(&["--offline"], NO_HUB);
    assert_eq!(count(&r, "failed"), 0);
    assert!(hub.lock().contains(COMMIT_A));

    // Without HF_HUB_CACHE the cache is HF_HOME/hub.
    let home = hub.p.path().join("hf-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::rename(&hub.cache, home.join("hub")).unwrap();
    let out = hub.p.run_env(
        &["build", "--offline"],
        &[("HF_HUB_CACHE", ""), ("HF_HOME", home.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hub.p.run_env(
        &["build", "--offline"],
        &[
            ("HF_HUB_CACHE", ""),
            ("HF_HOME", hub.p.path().join("elsewhere").to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("elsewhere/hub"), "{}", stderr(&out));
}

#[test]
fn a_missing_or_dangling_file_is_listed_and_offline_never_downloads() {
    let mut files = repo_files();
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));

    // Nothing cached, offline: says so, names the ref, suggests downloading.
    let server = HubServer::start(files.clone(), COMMIT_A);
    for (args, env) in [
        (vec!["build", "--offline"], vec![]),
        (vec!["build"], vec![("HF_HUB_OFFLINE", "1")]),
    ] {
        let out = hub.run(&args, &server.url, &env);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("not in the Hugging Face cache") && err.contains("refs/main"),
            "{err}"
        );
        assert!(err.contains("offline"), "{err}");
    }
    assert_eq!(server.requests().len(), 0, "offline mode used the network");

    // A snapshot without its weights (and a status, which never downloads, either).
    files.remove("model.safetensors");
    put_in_cache(&hub.cache, COMMIT_A, &files, Some("main"));
    let out = hub.run(&["build", "--offline"], &server.url, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("missing model.safetensors") && err.contains(COMMIT_A),
        "{err}"
    );
    let st = hub.run(&["status", "--offline"], &server.url, &[]);
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    let shown = String::from_utf8_lossy(&st.stdout);
    assert!(
        shown.contains(&format!(
            "source not downloaded: {REPO}@main (commit {COMMIT_A}; 1 file missing from the Hugging Face cache: model.safetensors; offline"
        )),
        "{shown}"
    );
    assert_eq!(server.requests().len(), 0);

    // A symlink whose blob was deleted counts as missing.
    let all = repo_files();
    put_in_cache(&hub.cache, COMMIT_A, &all, Some("main"));
    let blob = hub
        .repo_dir()
        .join("blobs")
        .join(sha256_hex(&all["config.json"]));
    std::fs::remove_file(blob).unwrap();
    let out = hub.run(&["build", "--offline"], NO_HUB, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing config.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_files_download_into_the_cache_layout_with_the_token() {
    let files = repo_files();
    let server = HubServer::start(files.clone(), COMMIT_A);
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\", revision = \"main\" }}"));
    let out = hub.run(&["build"], &server.url, &[("HF_TOKEN", "hf_secret")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Downloading"), "{}", stderr(&out));

    // huggingface_hub's layout: the ref, the snapshot's relative symlinks, blobs by sha256.
    let repo = hub.repo_dir();
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT_A
    );
    for (name, bytes) in &files {
        let link = repo.join("snapshots").join(COMMIT_A).join(name);
        let target = std::fs::read_link(&link).unwrap();
        if name.ends_with(".safetensors") {
            assert_eq!(
                target,
                Path::new("../../blobs").join(sha256_hex(bytes)),
                "{name}"
            );
        }
        assert_eq!(&std::fs::read(&link).unwrap(), bytes, "{name}");
    }
    assert!(hub.lock().contains(&format!("hf://{REPO}@{COMMIT_A}")));
    let reqs = server.requests();
    assert!(
        reqs.iter().any(|r| r
            .path
            .starts_with(&format!("/api/models/{REPO}/revision/main"))),
        "{reqs:?}"
    );
    assert!(
        reqs.iter()
            .all(|r| r.auth.as_deref() == Some("Bearer hf_secret")),
        "{reqs:?}"
    );
    // Not wanted by a conversion: never downloaded.
    assert!(!reqs.iter().any(|r| r.path.contains("pytorch_model.bin")));

    // Cached now: the next build does not touch the network and runs nothing.
    let before = server.requests().len();
    let out = hub.run(&["build"], &server.url, &[]);
    assert!(out.status.success());
    assert_eq!(server.requests().len(), before);
}

#[test]
fn an_interrupted_download_resumes_and_a_server_ignoring_ranges_restarts() {
    for honour_range in [true, false] {
        let files = repo_files();
        let weights = files["model.safetensors"].clone();
        let server = HubServer::start(files.clone(), COMMIT_A);
        server.set(|s| {
            s.cut_after = Some(300_000);
            s.honour_range = honour_range;
        });
        let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
        let out = hub.run(&["build"], &server.url, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("model.safetensors") && err.contains("resumes"),
            "{err}"
        );
        // The partial file waits in blobs/; no link, no ref, no output.
        let part = hub
            .repo_dir()
            .join("blobs")
            .join(format!("{}.incomplete", sha256_hex(&weights)));
        let have = std::fs::metadata(&part).unwrap().len();
        assert!(have > 0 && have < weights.len() as u64, "{have}");
        assert!(
            !hub.repo_dir()
                .join("snapshots")
                .join(COMMIT_A)
                .join("model.safetensors")
                .exists()
        );
        assert!(!hub.repo_dir().join("refs/main").exists());
        assert!(!hub.p.path().join("dist").exists());

        server.set(|s| s.cut_after = None);
        let out = hub.run(&["build"], &server.url, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let got = std::fs::read(
            hub.repo_dir()
                .join("snapshots")
                .join(COMMIT_A)
                .join("model.safetensors"),
        )
        .unwrap();
        assert!(got == weights, "honour_range={honour_range}");
        assert!(!part.exists());
        let ranges: Vec<String> = server
            .requests()
            .into_iter()
            .filter_map(|r| r.range)
            .collect();
        assert_eq!(ranges, vec![format!("bytes={have}-")], "{honour_range}");
    }
}

#[test]
fn a_download_with_the_wrong_sha256_or_size_keeps_nothing() {
    for corrupt_size in [false, true] {
        let files = repo_files();
        let weights = files["model.safetensors"].clone();
        let server = HubServer::start(files.clone(), COMMIT_A);
        server.set(|s| {
            s.corrupt = Some(("model.safetensors".into(), corrupt_size));
        });
        let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
        let out = hub.run(&["build"], &server.url, &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("model.safetensors")
                && err.contains(&sha256_hex(&weights))
                && err.contains("nothing was kept"),
            "{err}"
        );
        let blobs = hub.repo_dir().join("blobs");
        let sha = sha256_hex(&weights);
        assert!(!blobs.join(&sha).exists());
        assert!(!blobs.join(format!("{sha}.incomplete")).exists());
        assert!(
            !hub.repo_dir()
                .join("snapshots")
                .join(COMMIT_A)
                .join("model.safetensors")
                .exists()
        );
        assert!(!hub.repo_dir().join("refs/main").exists());
    }
}

/// The files of `files` a conversion reads (what a download fetches), sorted.
fn wanted(files: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    files.keys().cloned().collect()
}

fn resolve_gets(server: &HubServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("/resolve/"))
        .collect()
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(o)
        )
    })
}

/// The status entry of action `id` in `tinylm --json status` output.
fn status_entry<'a>(st: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    st["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {st}"))
}

#[test]
fn status_and_dry_runs_report_a_source_not_downloaded_and_fetch_no_file() {
    let files = repo_files();
    let server = HubServer::start(files.clone(), COMMIT_A);
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
    let names = wanted(&files);
    let bytes: usize = files.values().map(Vec::len).sum();

    // Online: one API call lists the revision's files; nothing is downloaded or written.
    let st = hub.run(&["status"], &server.url, &[]);
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    let out = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(out.contains("   stale  gguf:m"), "{out}");
    let want = format!(
        "source not downloaded: {REPO}@main (commit {COMMIT_A}; {} files missing from the Hugging Face cache, ",
        names.len()
    );
    assert!(out.contains(&want), "{out}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert!(
        reqs[0]
            .path
            .starts_with(&format!("/api/models/{REPO}/revision/main"))
    );
    assert!(
        !hub.repo_dir().exists(),
        "status wrote into the Hugging Face cache"
    );

    // --json: a structured reason on the conversion, its dependents stale because of it.
    let st = json_of(&hub.run(&["--json", "status"], &server.url, &[]));
    let r = &status_entry(&st, "gguf:m")["reasons"][0];
    assert_eq!(r["reason"], "source_not_downloaded", "{st}");
    assert_eq!(r["repo"], REPO);
    assert_eq!(r["revision"], "main");
    assert_eq!(r["commit"], COMMIT_A);
    assert_eq!(r["bytes"], bytes as u64);
    let missing: Vec<String> = serde_json::from_value(r["missing"].clone()).unwrap();
    assert_eq!(missing, names);
    assert!(r["message"].as_str().unwrap().starts_with(&want), "{r}");
    assert_eq!(status_entry(&st, "gguf:m")["status"], "would_run");
    let modelfile = status_entry(&st, "modelfile:m:f16");
    assert_eq!(modelfile["reasons"][0]["reason"], "upstream_stale", "{st}");

    // --exit-code: stale.
    let st = hub.run(&["status", "--exit-code"], &server.url, &[]);
    assert_eq!(st.status.code(), Some(1), "{}", stderr(&st));

    // build -n: the same, on stderr and in --json; still no file fetched.
    let dry = hub.run(&["build", "-n"], &server.url, &[]);
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    let err = stderr(&dry);
    assert!(
        err.contains("would run gguf:m") && err.contains(&want),
        "{err}"
    );
    let dry = json_of(&hub.run(&["--json", "build", "-n"], &server.url, &[]));
    let gguf = dry["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "gguf:m")
        .unwrap();
    assert_eq!(gguf["status"], "would_run", "{dry}");
    assert_eq!(gguf["source_not_downloaded"]["commit"], COMMIT_A, "{dry}");
    assert!(resolve_gets(&server).is_empty(), "{:?}", server.requests());
    assert!(!hub.repo_dir().exists());
    assert!(!hub.p.path().join("tinylm.lock").exists());
    assert!(!hub.p.path().join("dist").exists());

    // Offline (flag or HF_HUB_OFFLINE): no request at all, the revision stays unresolved.
    let before = server.requests().len();
    for (args, env) in [
        (vec!["status"], vec![("HF_HUB_OFFLINE", "1")]),
        (vec!["status", "--offline"], vec![]),
        (vec!["build", "-n", "--offline"], vec![]),
    ] {
        let o = hub.run(&args, &server.url, &env);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        assert!(
            text.contains(&format!(
                "source not downloaded: {REPO}@main (not in the Hugging Face cache; revision unresolved: no refs/main in the cache, offline (--offline or HF_HUB_OFFLINE))"
            )),
            "{args:?}: {text}"
        );
    }
    assert_eq!(server.requests().len(), before, "offline used the network");

    // A Hub that cannot be reached: status still answers, saying why it knows so little.
    let o = hub.run(&["status"], NO_HUB, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(
            "revision unresolved: no refs/main in the cache, the Hub could not be asked: cannot reach the Hugging Face Hub at http://127.0.0.1:9"
        ) && !text.contains("use --offline"),
        "{text}"
    );

    // After a build downloaded it, status has nothing to say about the source.
    let b = hub.run(&["build"], &server.url, &[]);
    assert!(b.status.success(), "{}", stderr(&b));
    let before = server.requests().len();
    let st = json_of(&hub.run(&["--json", "status"], &server.url, &[]));
    assert!(
        st["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "up_to_date"),
        "{st}"
    );
    assert_eq!(server.requests().len(), before);
}

#[test]
fn an_incomplete_snapshot_lists_only_what_a_build_would_download() {
    let mut files = repo_files();
    let server = HubServer::start(files.clone(), COMMIT_A);
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
    let weights = files.remove("model.safetensors").unwrap();
    files.remove("tokenizer.json");
    put_in_cache(&hub.cache, COMMIT_A, &files, Some("main"));

    // Online, the API's list finds the tokenizer missing too (the cache alone knows only of
    // the weights) and sizes the download.
    let st = json_of(&hub.run(&["--json", "status"], &server.url, &[]));
    let r = &status_entry(&st, "gguf:m")["reasons"][0];
    let missing: Vec<String> = serde_json::from_value(r["missing"].clone()).unwrap();
    assert_eq!(missing, ["model.safetensors", "tokenizer.json"], "{r}");
    assert_eq!(
        r["bytes"],
        (weights.len() + repo_files()["tokenizer.json"].len()) as u64
    );
    assert!(resolve_gets(&server).is_empty());

    // Offline, the cache's own knowledge, saying it may be incomplete.
    let st = json_of(&hub.run(&["--json", "status", "--offline"], &server.url, &[]));
    let r = &status_entry(&st, "gguf:m")["reasons"][0];
    assert_eq!(
        r["missing"],
        serde_json::json!(["model.safetensors"]),
        "{r}"
    );
    assert!(r.get("bytes").is_none(), "{r}");
    assert!(
        r["unresolved"]
            .as_str()
            .unwrap()
            .contains("other files the Hub lists may be missing too"),
        "{r}"
    );
}

#[test]
fn downloads_show_one_line_per_file_off_a_terminal_and_nothing_in_json() {
    let files = repo_files();
    let server = HubServer::start(files.clone(), COMMIT_A);
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
    let out = hub.run(&["build"], &server.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("Downloading")).collect();
    assert_eq!(lines.len(), files.len(), "{err}");
    let w = files["model.safetensors"].len() as f64 / 1024.0;
    assert!(
        lines.contains(
            &format!(
                "{:>12} {REPO}/model.safetensors ({w:.1} KiB)",
                "Downloading"
            )
            .as_str()
        ),
        "{err}"
    );
    // No bar, no cursor movement, no colour, no carriage returns in a log.
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");

    // --json: stdout is the report alone and stderr says nothing of downloads.
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
    let out = hub.run(&["--json", "build"], &server.url, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json_of(&out);
    assert_eq!(count(&r, "failed"), 0);
    assert!(!stderr(&out).contains("Downloading"), "{}", stderr(&out));
    assert!(hub.p.path().join("dist/m/m-f16.gguf").exists());
}

#[test]
fn downloads_show_a_byte_bar_on_a_terminal() {
    let files = repo_files();
    let server = HubServer::start(files.clone(), COMMIT_A);
    server.set(|s| s.slow = true);
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}"));
    let (status, tty) = run_with_tty_stderr(&hub, &["build"], &server.url);
    assert!(status.success(), "{tty}");
    // An 80-column terminal: no line of the bar wraps (no cursor-up to redraw two lines).
    let downloads = &tty[..tty.rfind("  Downloaded ").unwrap_or(tty.len())];
    assert!(!downloads.contains("\x1b[1A"), "{tty:?}");
    // The bar (file name, bytes, rate, ETA) was drawn, then replaced by one line per file.
    assert!(
        tty.contains("Downloading model.safetensors [")
            && tty.contains("ETA")
            && tty.contains("/s"),
        "{tty:?}"
    );
    assert!(
        tty.contains(&format!(
            "  Downloaded {REPO}/model.safetensors (964.2 KiB in "
        )),
        "{tty:?}"
    );
    assert_eq!(
        std::fs::read(
            hub.repo_dir()
                .join("snapshots")
                .join(COMMIT_A)
                .join("model.safetensors")
        )
        .unwrap(),
        files["model.safetensors"]
    );
}

/// Runs tinylm with stderr on a pseudo-terminal (stdout piped) and returns what the terminal
/// showed.
fn run_with_tty_stderr(
    hub: &Hub,
    args: &[&str],
    endpoint: &str,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two new descriptors into the out-parameters.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both descriptors are fresh and owned here alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let cache = hub.cache.to_string_lossy().into_owned();
    let mut child = std::process::Command::new(support::bin())
        .current_dir(hub.p.path())
        .args(args)
        .env_remove("TINYLM_CACHE")
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .env("HF_HUB_CACHE", &cache)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HUB_OFFLINE", "0")
        .env("HF_TOKEN", "")
        .env("HF_TOKEN_PATH", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut reader = std::fs::File::from(master);
    let collect = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // Ends with EIO once the child (the only holder of the slave side) exits.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    let status = child.wait().unwrap();
    let tty = collect.join().unwrap();
    (status, String::from_utf8_lossy(&tty).into_owned())
}

#[test]
fn bad_hub_sources_are_manifest_errors_with_hints() {
    let cases = [
        ("{ repo = \"a/b/c\" }", "org/name"),
        ("{ repo = \"org/na me\" }", "not a Hugging Face repo id"),
        ("{ repo = \"org/x\", revision = \"a b\" }", "not a revision"),
        (
            "{ repo = \"org/x\", revison = \"main\" }",
            "did you mean `revision`",
        ),
        (
            "\"org/not-a-folder\"",
            "source.hf = { repo = \"org/not-a-folder\" }",
        ),
        ("{ revision = \"main\" }", "repo"),
    ];
    for (src, want) in cases {
        let hub = Hub::new(src);
        let out = hub.run(&["build"], NO_HUB, &[]);
        assert_eq!(out.status.code(), Some(2), "{src}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{src}: {}", stderr(&out));
    }
    // Conversion keys apply to hub sources.
    let hub = Hub::new(&format!("{{ repo = \"{REPO}\" }}\nouttype = \"f32\""));
    put_in_cache(&hub.cache, COMMIT_A, &repo_files(), Some("main"));
    hub.build_json(&[], NO_HUB);
    assert!(hub.p.path().join("dist/m/m-f32.gguf").exists());
}

// ---- A Hub stand-in on 127.0.0.1 --------------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, Vec<u8>>,
    commit: String,
    log: Vec<Request>,
    /// Send only this many bytes of a file body, then drop the connection.
    cut_after: Option<usize>,
    honour_range: bool,
    /// Serve this file with flipped bytes (`false`) or one byte short (`true`).
    corrupt: Option<(String, bool)>,
    /// Send file bodies in small pieces with pauses (a download that takes a while).
    slow: bool,
}

struct HubServer {
    url: String,
    state: Arc<Mutex<State>>,
}

impl HubServer {
    fn start(files: BTreeMap<String, Vec<u8>>, commit: &str) -> HubServer {
        let mut files = files;
        // A file a conversion does not need, which must not be downloaded.
        files.insert("pytorch_model.bin".into(), vec![0u8; 64]);
        let state = Arc::new(Mutex::new(State {
            files,
            commit: commit.to_string(),
            honour_range: true,
            ..Default::default()
        }));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        HubServer { url, state }
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(mut conn: TcpStream, st: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let req = Request {
            path: path.clone(),
            range: headers.get("range").cloned(),
            auth: headers.get("authorization").cloned(),
        };
        let mut s = st.lock().unwrap();
        s.log.push(req.clone());
        let repo_prefix = format!("/{REPO}/resolve/");
        if let Some(rest) = path.strip_prefix(&format!("/api/models/{REPO}/revision/")) {
            let rev = rest.split('?').next().unwrap_or("");
            if rev != "main" && rev != s.commit {
                respond(&mut conn, "404 Not Found", &[], b"{}")?;
                continue;
            }
            let siblings: Vec<serde_json::Value> = s
                .files
                .iter()
                .map(|(name, bytes)| {
                    let mut v = serde_json::json!({
                        "rfilename": name,
                        "blobId": format!("{:040x}", bytes.len()),
                        "size": bytes.len(),
                    });
                    if name.ends_with(".safetensors") || name.ends_with(".bin") {
                        v["lfs"] = serde_json::json!({
                            "sha256": sha256_hex(bytes),
                            "size": bytes.len(),
                            "pointerSize": 134,
                        });
                    }
                    v
                })
                .collect();
            let body = serde_json::json!({ "id": REPO, "sha": s.commit, "siblings": siblings });
            respond(&mut conn, "200 OK", &[], body.to_string().as_bytes())?;
        } else if let Some(rest) = path.strip_prefix(&repo_prefix) {
            let (_, file) = rest.split_once('/').unwrap_or(("", ""));
            let Some(mut body) = s.files.get(file).cloned() else {
                respond(&mut conn, "404 Not Found", &[], b"")?;
                continue;
            };
            if let Some((name, short)) = &s.corrupt
                && name == file
            {
                if *short {
                    body.pop();
                } else {
                    let mid = body.len() / 2;
                    body[mid] ^= 0xff;
                }
            }
            let total = body.len();
            let start = req
                .range
                .as_deref()
                .filter(|_| s.honour_range)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|r| r.parse::<usize>().ok());
            let (status, part, extra) = match start {
                Some(n) => (
                    "206 Partial Content",
                    body[n..].to_vec(),
                    vec![format!("Content-Range: bytes {n}-{}/{total}", total - 1)],
                ),
                None => ("200 OK", body, vec![]),
            };
            if let Some(cut) = s.cut_after.filter(|&c| c < part.len()) {
                drop(s);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
                    part.len(),
                    extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
                );
                conn.write_all(head.as_bytes())?;
                conn.write_all(&part[..cut])?;
                conn.flush()?;
                let _ = conn.shutdown(Shutdown::Both);
                return Ok(());
            }
            if s.slow {
                drop(s);
                respond_slowly(&mut conn, status, &extra, &part)?;
                continue;
            }
            respond(&mut conn, status, &extra, &part)?;
        } else {
            respond(&mut conn, "404 Not Found", &[], b"")?;
        }
    }
}

fn respond(
    conn: &mut TcpStream,
    status: &str,
    extra: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

fn respond_slowly(
    conn: &mut TcpStream,
    status: &str,
    extra: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    conn.write_all(head.as_bytes())?;
    for piece in body.chunks(32 << 10) {
        conn.write_all(piece)?;
        conn.flush()?;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}
