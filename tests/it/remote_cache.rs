//! The remote cache over the Bazel HTTP cache protocol, against a real nginx WebDAV server:
//! machine A builds and uploads, machine B (empty cache) restores everything and runs nothing;
//! corrupt or truncated blobs are rejected and rebuilt; a server that dies mid-download or never
//! answers costs one warning and a local build; auth by header and netrc; push/pull/stats.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::servers::{
    Nginx, NginxOpts, assert_cache_clean, build, copy_lock, demo_copy, lines_with, tinylm, tree,
};
use sha2::Digest as _;
use tinylm::cache::remote::reapi::ActionResult;

fn n(v: &serde_json::Value, path: &str) -> u64 {
    let mut cur = v;
    for p in path.split('.') {
        cur = &cur[p];
    }
    cur.as_u64().unwrap_or_else(|| panic!("no `{path}` in {v}"))
}

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Blobs under `dir/cas`, largest first.
fn blobs_by_size(dir: &Path) -> Vec<(u64, std::path::PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("cas"))
        .unwrap()
        .flatten()
        .map(|e| (e.metadata().unwrap().len(), e.path()))
        .collect();
    v.sort_by(|a, b| b.cmp(a));
    v
}

#[test]
fn a_fresh_machine_restores_everything_from_nginx_and_builds_nothing() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));

    let (ra, _) = build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert_eq!(n(&ra, "run"), 20);
    assert!(n(&ra, "remote.uploaded_objects") >= 40, "{}", ra["remote"]);
    assert_eq!(n(&ra, "remote.hits"), 0);

    // What is on the server is what a Bazel client expects: every AC entry is an ActionResult
    // whose files are CAS blobs named by their sha256, and PUTs carried a Content-Length.
    let ac: Vec<_> = std::fs::read_dir(ngx.cache_dir().join("ac"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(ac.len(), 20);
    for e in &ac {
        let result = ActionResult::decode(&std::fs::read(e.path()).unwrap()).unwrap();
        assert!(result.file(".tinylm/record.json").is_some());
        for f in &result.output_files {
            let blob = std::fs::read(ngx.cache_dir().join("cas").join(&f.digest.hash)).unwrap();
            assert_eq!(sha256_hex(&blob), f.digest.hash, "{}", f.path);
            assert_eq!(blob.len() as u64, f.digest.size_bytes);
        }
    }
    let log = ngx.access_log();
    let puts: Vec<&str> = log.lines().filter(|l| l.starts_with("PUT ")).collect();
    assert!(!puts.is_empty());
    assert!(
        puts.iter().all(|l| {
            // 204 when two uploads of one blob race (same bytes).
            (l.contains(" 201 ") || l.contains(" 204 "))
                && !l.contains("len=- ")
                && l.contains("te=-")
        }),
        "{log}"
    );

    // Machine B: same project and lock, empty cache, the CI gate on.
    copy_lock(a.path(), b.path());
    let (rb, errb) = build(b.path(), &cb, &[], &["--locked", "--remote-cache", &url]);
    assert_eq!(
        (n(&rb, "run"), n(&rb, "from_cache"), n(&rb, "remote.hits")),
        (0, 20, 20),
        "{errb}"
    );
    assert!(n(&rb, "remote.downloaded_bytes") > 1_000_000);
    assert_eq!(
        n(&rb, "remote.uploaded_objects"),
        0,
        "upload is off by default"
    );
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_eq!(
        std::fs::read(a.path().join("tinylm.lock")).unwrap(),
        std::fs::read(b.path().join("tinylm.lock")).unwrap()
    );
    assert_cache_clean(&cb);
    assert_eq!(
        ngx.access_log()
            .lines()
            .filter(|l| l.starts_with("PUT "))
            .count(),
        puts.len(),
        "B uploaded nothing"
    );
    // Explain still works on B: the records carry the key preimages.
    let out = tinylm(b.path(), &cb, &[], &["status", "--explain"]);
    assert!(out.status.success());

    // A second build on B needs nothing from the remote.
    let (rb2, _) = build(b.path(), &cb, &[], &["--remote-cache", &url]);
    assert_eq!(n(&rb2, "up_to_date"), 20);
    assert_eq!(rb2["remote"]["contacted"], false);
}

#[test]
fn corrupt_and_truncated_blobs_on_the_server_are_rejected_rebuilt_and_repaired() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b, c) = (demo_copy(), demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let cache = |x: &str| caches.path().join(x);
    build(
        a.path(),
        &cache("a"),
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );

    // Flip one byte of the largest blob; cut the second largest in half.
    let blobs = blobs_by_size(&ngx.cache_dir());
    let (flipped, cut) = (&blobs[0].1, &blobs[1].1);
    let mut bytes = std::fs::read(flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(flipped, &bytes).unwrap();
    let whole = std::fs::read(cut).unwrap();
    std::fs::write(cut, &whole[..whole.len() / 2]).unwrap();

    // B uploads, so it also repairs the server.
    let (rb, err) = build(
        b.path(),
        &cache("b"),
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert!(n(&rb, "run") >= 2, "{err}");
    assert!(
        n(&rb, "remote.hits") >= 1,
        "the intact entries were used: {err}"
    );
    assert!(n(&rb, "remote.errors") >= 2, "{}", rb["remote"]);
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        err.contains(&name(flipped)) && err.contains("corrupt on the server"),
        "{err}"
    );
    assert!(
        err.contains(&name(cut)) && err.contains("the record says"),
        "{err}"
    );
    assert_eq!(lines_with(&err, "is unavailable"), 0, "{err}");
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_cache_clean(&cache("b"));

    // The bad blobs were uploaded again over the corrupt ones.
    for p in [flipped, cut] {
        assert_eq!(sha256_hex(&std::fs::read(p).unwrap()), name(p));
    }
    let (rc, _) = build(c.path(), &cache("c"), &[], &["--remote-cache", &url]);
    assert_eq!((n(&rc, "run"), n(&rc, "remote.errors")), (0, 0));
    assert_eq!(tree(&a.path().join("dist")), tree(&c.path().join("dist")));
}

#[test]
fn a_server_killed_mid_download_costs_one_warning_and_nothing_partial_enters_the_cache() {
    let Some(first) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &first.url(), "--remote-upload"],
    );

    // The same blobs served slowly, so the test can stop the server in the middle of a body.
    let mut slow = Nginx::start(NginxOpts {
        limit_rate: Some("100k"),
        root: Some(first.root()),
        ..Default::default()
    })
    .unwrap();
    let url = slow.url();
    let mut child = std::process::Command::new(crate::support::bin())
        .current_dir(b.path())
        .args(["--json", "--cache"])
        .arg(&cb)
        .args(["build", "-j", "1", "--remote-cache", &url])
        .env_remove("TINYLM_CACHE")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // A download's temp file exists from its first byte requested; its length stays 0 until
    // the first MiB arrives (downloads are written a MiB at a time), so wait for the file.
    loop {
        let found = std::fs::read_dir(cb.join("tmp")).ok().is_some_and(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".remote.tinylm-tmp-")
            })
        });
        if found {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the build ended before a download was seen: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no download started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    slow.stop();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(lines_with(&err, "is unavailable"), 1, "{err}");
    assert!(err.contains(&url), "the warning names the remote: {err}");
    assert!(n(&r, "run") > 0);
    assert_eq!(r["remote"]["unavailable"], true);
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    // The interrupted download is gone and every object in the CAS is whole.
    assert_cache_clean(&cb);
}

#[test]
fn an_unreachable_remote_costs_one_warning_and_never_fails_the_build() {
    let p = demo_copy();
    let cache = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/cache", crate::servers::free_port());
    let (r, err) = build(
        p.path(),
        cache.path(),
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert_eq!(n(&r, "run"), 20);
    assert_eq!(lines_with(&err, "is unavailable"), 1, "{err}");
    assert!(err.contains(&url));
    assert!(r["details"].as_array().unwrap().len() == 20);
}

#[test]
fn auth_comes_from_tinylm_remote_header_or_netrc() {
    let Some(ngx) = Nginx::start(NginxOpts {
        auth: vec!["Bearer s3cret", "Basic Y2k6cHc="],
        ..Default::default()
    }) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let cache = |x: &str| caches.path().join(x);

    let (r, err) = build(
        a.path(),
        &cache("a0"),
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert_eq!(n(&r, "run"), 20);
    assert_eq!(lines_with(&err, "is unavailable"), 1, "{err}");
    assert!(
        err.contains("401") && err.contains("authentication failed"),
        "{err}"
    );

    let header = vec![(
        "TINYLM_REMOTE_HEADER".to_string(),
        "Authorization: Bearer s3cret".to_string(),
    )];
    let (r, err) = build(
        a.path(),
        &cache("a"),
        &header,
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert!(n(&r, "remote.uploaded_objects") > 0, "{err}");

    let netrc = caches.path().join("netrc");
    std::fs::write(&netrc, "machine 127.0.0.1\n  login ci\n  password pw\n").unwrap();
    let env = vec![("NETRC".to_string(), netrc.display().to_string())];
    let (r, err) = build(b.path(), &cache("b"), &env, &["--remote-cache", &url]);
    assert_eq!((n(&r, "run"), n(&r, "remote.hits")), (0, 20), "{err}");
}

#[test]
fn push_pull_and_stats_sync_explicitly() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));

    let out = tinylm(a.path(), &ca, &[], &["cache", "push"]);
    assert_eq!(out.status.code(), Some(2), "no remote configured");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no remote cache configured"));

    build(a.path(), &ca, &[], &[]);
    copy_lock(a.path(), b.path());
    // Push one model first, then everything: the second push skips what is there.
    let out = tinylm(
        a.path(),
        &ca,
        &[],
        &[
            "--json",
            "cache",
            "push",
            "tiny-gpt2",
            "--remote-cache",
            &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pushed_first = n(&first, "pushed");
    assert!(pushed_first > 0 && pushed_first < 20, "{first}");
    let out = tinylm(
        a.path(),
        &ca,
        &[],
        &["--json", "cache", "push", "--remote-cache", &url],
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(n(&all, "pushed"), 20, "{all}");
    assert!(n(&all, "remote.already_present") > 0);

    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["--json", "cache", "pull", "--remote-cache", &url],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (n(&pulled, "pulled"), n(&pulled, "present")),
        (20, 0),
        "{pulled}"
    );
    assert_cache_clean(&cb);
    // Everything is local now: the build places it without asking the remote.
    let (r, _) = build(b.path(), &cb, &[], &["--locked", "--remote-cache", &url]);
    assert_eq!(n(&r, "run"), 0);
    assert_eq!(n(&r, "from_cache") + n(&r, "up_to_date"), 20);
    assert_eq!(r["remote"]["contacted"], false);
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));

    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["--json", "cache", "stats", "--remote-cache", &url],
    );
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["remote"]["reachable"], true, "{s}");
    assert!(n(&s, "objects") > 0 && n(&s, "records") == 20);
    assert!(
        s["totals"][&url]["downloaded_objects"].as_u64().unwrap() > 0,
        "{s}"
    );
    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["cache", "stats", "--remote-cache", &url],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reachable") && text.contains(&url), "{text}");
}

#[test]
fn the_manifest_can_name_the_remote_and_turn_uploads_on() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let with_remote = |dir: &Path| {
        let m = std::fs::read_to_string(dir.join("tinylm.toml")).unwrap();
        let m = m.replace(
            "[defaults]",
            &format!(
                "[cache]\nremote = \"{}\"\nupload = true\n\n[defaults]",
                ngx.url()
            ),
        );
        std::fs::write(dir.join("tinylm.toml"), m).unwrap();
    };
    with_remote(a.path());
    with_remote(b.path());
    let (r, _) = build(a.path(), &caches.path().join("a"), &[], &[]);
    assert!(n(&r, "remote.uploaded_objects") > 0);
    // `--remote-upload=false` overrides the manifest; TINYLM_REMOTE_CACHE=none turns it off.
    let (r, _) = build(
        b.path(),
        &caches.path().join("b"),
        &[],
        &["--remote-upload=false"],
    );
    assert_eq!((n(&r, "run"), n(&r, "remote.uploaded_objects")), (0, 0));
    let env = vec![("TINYLM_REMOTE_CACHE".to_string(), "none".to_string())];
    let (r, _) = build(b.path(), &caches.path().join("c"), &env, &[]);
    assert_eq!(n(&r, "run"), 20);
    assert!(r.get("remote").is_none());

    // A typo in the scheme is a manifest error with a suggestion.
    let m = std::fs::read_to_string(a.path().join("tinylm.toml")).unwrap();
    std::fs::write(
        a.path().join("tinylm.toml"),
        m.replace("remote = \"http://", "remote = \"htp://"),
    )
    .unwrap();
    let out = tinylm(a.path(), &caches.path().join("a"), &[], &["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("did you mean `http://`") && err.contains("tinylm.toml:"),
        "{err}"
    );
    let out = tinylm(
        b.path(),
        &caches.path().join("b"),
        &[],
        &["build", "--remote-cache", "ftp://x/y"],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// A TCP proxy in front of `target` that cuts the connection once, `after` response bytes
/// into the first request whose request line contains `needle` — or, with `stall`, stops
/// sending there and holds the connection open.
fn cutting_proxy(target: u16, needle: String, after: usize, stall: bool) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut_done = Arc::new(AtomicBool::new(false));
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let armed = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (needle, armed_w, done) = (needle.clone(), armed.clone(), cut_done.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if !done.load(Ordering::SeqCst)
                        && String::from_utf8_lossy(&buf[..n]).contains(&needle)
                    {
                        armed_w.store(true, Ordering::SeqCst);
                    }
                    if s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            let done = cut_done.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 16384];
                let mut sent_armed = 0usize;
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut n = n;
                    if armed.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
                        if sent_armed + n >= after {
                            n = after - sent_armed;
                            let _ = c_out.write_all(&buf[..n]);
                            done.store(true, Ordering::SeqCst);
                            if stall {
                                // Hold the connection open, silent, until the test ends.
                                loop {
                                    std::thread::sleep(Duration::from_secs(1));
                                }
                            }
                            let _ = c_out.shutdown(Shutdown::Both);
                            let _ = s_in.shutdown(Shutdown::Both);
                            return;
                        }
                        sent_armed += n;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn a_download_cut_mid_body_resumes_with_a_range_request() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &ngx.url(), "--remote-upload"],
    );
    let (size, biggest) = blobs_by_size(&ngx.cache_dir()).remove(0);
    let sha = biggest.file_name().unwrap().to_string_lossy().into_owned();
    assert!(size > 200_000, "{size}");
    // Cut 100 kB into the body of the largest blob (after the response head).
    let port = cutting_proxy(ngx.port, format!("GET /cache/cas/{sha}"), 100_000, false);
    let url = format!("http://127.0.0.1:{port}/cache");
    let (r, err) = build(b.path(), &cb, &[], &["-j", "1", "--remote-cache", &url]);
    assert_eq!((n(&r, "run"), n(&r, "remote.errors")), (0, 0), "{err}");
    assert_eq!(lines_with(&err, "is unavailable"), 0, "{err}");
    let log = ngx.access_log();
    let gets: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with(&format!("GET /cache/cas/{sha}")))
        .collect();
    assert_eq!(gets.len(), 2, "{log}");
    assert!(
        gets[1].contains(" 206 "),
        "the second request resumed: {log}"
    );
    // Every blob crossed the wire exactly once: the cut one was resumed, not restarted.
    let total: u64 = blobs_by_size(&ngx.cache_dir())
        .iter()
        .map(|(s, _)| *s)
        .sum();
    assert_eq!(n(&r, "remote.downloaded_bytes"), total);
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_cache_clean(&cb);
}

#[test]
fn status_and_dry_runs_report_remote_hits_without_downloading_anything() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    let (ra, _) = build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    assert_eq!(n(&ra, "run"), 20);
    copy_lock(a.path(), b.path());

    // Machine B, empty cache: every action is a remote hit, downstream ones included (their
    // keys come from the digests in the upstream records).
    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["--json", "--remote-cache", &url, "status", "--explain"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions = st["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 20);
    for a in actions {
        assert_eq!(a["status"], "remote_hit", "{a}");
        assert_eq!(a["reasons"][0]["reason"], "remote_hit", "{a}");
        assert_eq!(a["reasons"][0]["remote"], url.as_str(), "{a}");
    }
    let out = tinylm(b.path(), &cb, &[], &["--remote-cache", &url, "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(lines_with(&text, "  remote  "), 20, "{text}");
    assert!(
        text.contains("20 actions: 0 stale, 0 to restore from cache, 20 to download from the remote cache, 0 up to date"),
        "{text}"
    );
    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["--remote-cache", &url, "status", "--exit-code"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "downloads still to do are not clean"
    );

    let out = tinylm(b.path(), &cb, &[], &["--remote-cache", &url, "build", "-n"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let hits = err
        .lines()
        .filter(|l| l.trim_start().starts_with("remote hit "))
        .count();
    assert_eq!(hits, 20, "{err}");
    assert!(err.contains("20 remote hit"), "{err}");
    let (rn, _) = build(b.path(), &cb, &[], &["-n", "--remote-cache", &url]);
    assert_eq!(
        (n(&rn, "remote_hit"), n(&rn, "run"), n(&rn, "would_run")),
        (20, 0, 0)
    );

    // Looking is not restoring: B's cache holds no object and B has no outputs; the server
    // sent records (small) but never an output blob.
    let objects = walkdir::WalkDir::new(cb.join("cas"))
        .min_depth(2)
        .into_iter()
        .flatten()
        .count();
    assert_eq!(objects, 0);
    assert!(!b.path().join("dist").exists());
    let biggest = &blobs_by_size(&ngx.cache_dir())[0];
    let biggest_sha = biggest
        .1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let log = ngx.access_log();
    assert!(
        !log.lines()
            .any(|l| l.starts_with("GET ") && l.contains(&biggest_sha)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("HEAD ") && l.contains(&biggest_sha))
    );

    // A blob gone from the server: its action would run (not "remote hit"), and so would
    // everything downstream of it; without a remote, everything would run.
    std::fs::remove_file(&biggest.1).unwrap();
    let out = tinylm(
        b.path(),
        &cb,
        &[],
        &["--json", "--remote-cache", &url, "status"],
    );
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let count = |s: &str| {
        st["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == s)
            .count()
    };
    assert!(count("would_run") >= 1, "{st}");
    assert!(count("remote_hit") >= 1, "{st}");
    assert_eq!(count("would_run") + count("remote_hit"), 20);
    let out = tinylm(b.path(), &cb, &[], &["--json", "status"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        st["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "would_run"),
        "{st}"
    );
}

#[test]
fn a_locked_restore_downloads_up_front_and_still_rejects_corrupt_blobs_and_builds_misses() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    // One corrupt blob (a hit that must be rejected) and one action result gone (a miss).
    let blobs = blobs_by_size(&ngx.cache_dir());
    let flipped = &blobs[0].1;
    let mut bytes = std::fs::read(flipped).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x01;
    std::fs::write(flipped, &bytes).unwrap();
    let mut ac: Vec<_> = std::fs::read_dir(ngx.cache_dir().join("ac"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    ac.sort();
    std::fs::remove_file(&ac[0]).unwrap();

    // `--locked`: every key is known from the lock, so downloads start before anything is
    // hashed; what they bring is verified all the same, and what they miss is built.
    copy_lock(a.path(), b.path());
    let (rb, err) = build(b.path(), &cb, &[], &["--locked", "--remote-cache", &url]);
    assert!(n(&rb, "run") >= 2, "{err}");
    assert!(n(&rb, "remote.hits") >= 10, "{}", rb["remote"]);
    assert!(n(&rb, "remote.misses") >= 1, "{}", rb["remote"]);
    assert!(n(&rb, "remote.errors") >= 1, "{}", rb["remote"]);
    assert_eq!(
        n(&rb, "run") + n(&rb, "from_cache"),
        20,
        "every action ran or came from the remote: {err}"
    );
    assert!(err.contains("corrupt on the server"), "{err}");
    assert_eq!(lines_with(&err, "is unavailable"), 0, "{err}");
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_eq!(
        std::fs::read(a.path().join("tinylm.lock")).unwrap(),
        std::fs::read(b.path().join("tinylm.lock")).unwrap()
    );
    assert_cache_clean(&cb);
    // Nothing is left half-downloaded.
    let leftovers: Vec<_> = std::fs::read_dir(cb.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn ctrl_c_during_a_locked_restore_stops_at_once_and_leaves_nothing_partial() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &ngx.url(), "--remote-upload"],
    );
    let (size, biggest) = blobs_by_size(&ngx.cache_dir()).remove(0);
    let sha = biggest.file_name().unwrap().to_string_lossy().into_owned();
    // The largest blob stalls halfway: its download (a --locked prefetch) never ends by itself.
    let port = cutting_proxy(
        ngx.port,
        format!("GET /cache/cas/{sha}"),
        size as usize / 2,
        true,
    );
    copy_lock(a.path(), b.path());
    let mut child = std::process::Command::new(crate::support::bin())
        .current_dir(b.path())
        .args(["--cache"])
        .arg(&cb)
        .args(["build", "--locked", "--remote-cache"])
        .arg(format!("http://127.0.0.1:{port}/cache"))
        .env_remove("TINYLM_REMOTE_CACHE")
        .env_remove("RUST_LOG")
        .env("TINYLM_REMOTE_TIMEOUT", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let downloading = |cb: &Path| {
        std::fs::read_dir(cb.join("tmp"))
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(".remote.tinylm-tmp-")
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let t0 = Instant::now();
    while !ngx.access_log().contains(&format!("GET /cache/cas/{sha}")) || downloading(&cb) == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the download never started"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended before the stall: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "stuck on the stalled blob"
    );
    let sent = Instant::now();
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if sent.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("Ctrl-C did not stop a build waiting on a stalled download");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}: {err}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(downloading(&cb), 0, "a partial download was left behind");
    // Whatever did arrive is whole and verified; the stalled blob is not among it.
    for e in walkdir::WalkDir::new(cb.join("cas"))
        .min_depth(2)
        .into_iter()
        .flatten()
    {
        let d = tinylm::cache::hash_file(e.path()).unwrap();
        assert_eq!(d.to_hex(), e.file_name().to_string_lossy());
        assert_ne!(e.metadata().unwrap().len(), size, "{}", e.path().display());
    }
    assert!(
        !b.path().join("dist").exists()
            || tree(&b.path().join("dist")).len() < tree(&a.path().join("dist")).len()
    );
}

/// The objects under `cache/cas`, by digest.
fn cas_objects(cache: &Path) -> std::collections::BTreeSet<String> {
    walkdir::WalkDir::new(cache.join("cas"))
        .min_depth(2)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn without_lock_downloads_start_as_keys_become_known_and_a_kill_leaves_only_whole_objects() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &ngx.url(), "--remote-upload"],
    );
    let lock: toml::Table =
        toml::from_str(&std::fs::read_to_string(a.path().join("tinylm.lock")).unwrap()).unwrap();
    let actions = lock["actions"].as_table().unwrap();
    let outputs_of = |id: &str| -> Vec<(String, u64)> {
        actions[id]["outputs"]
            .as_table()
            .unwrap()
            .values()
            .map(|o| {
                (
                    o["digest"].as_str().unwrap().to_string(),
                    o["size"].as_integer().unwrap() as u64,
                )
            })
            .collect()
    };
    let downstream_of = |root: &str| -> Vec<String> {
        let mut down: Vec<String> = vec![root.to_string()];
        let mut i = 0;
        while i < down.len() {
            let up = format!("{}/", down[i]);
            for (id, e) in actions {
                let uses = e["inputs"].as_table().unwrap().values().any(|inp| {
                    inp.get("from")
                        .and_then(|f| f.as_str())
                        .is_some_and(|f| f.starts_with(&up))
                });
                if uses && !down.contains(id) {
                    down.push(id.clone());
                }
            }
            i += 1;
        }
        down.remove(0);
        down
    };
    // The largest output that other actions read stalls halfway, forever: the action it
    // belongs to never finishes.
    let (stalled, (digest, size)) = actions
        .keys()
        .filter(|id| !downstream_of(id).is_empty())
        .flat_map(|id| outputs_of(id).into_iter().map(move |o| (id.clone(), o)))
        .max_by_key(|(_, (_, size))| *size)
        .unwrap();
    let sha = sha256_hex(&std::fs::read(ca.join("cas").join(&digest[..2]).join(&digest)).unwrap());
    let downstream = downstream_of(&stalled);
    assert!(downstream.len() >= 3, "{stalled}: {downstream:?}");
    let wanted: Vec<String> = downstream
        .iter()
        .flat_map(|id| outputs_of(id))
        .map(|(d, _)| d)
        .filter(|d| *d != digest)
        .collect();
    let port = cutting_proxy(
        ngx.port,
        format!("GET /cache/cas/{sha}"),
        size as usize / 2,
        true,
    );
    // No lock and no --locked: keys are learned from hashed sources and from the records of
    // upstream actions, so what depends on the stalled action downloads while it stalls.
    let mut child = std::process::Command::new(crate::support::bin())
        .current_dir(b.path())
        .args(["--cache"])
        .arg(&cb)
        .args(["build", "--remote-cache"])
        .arg(format!("http://127.0.0.1:{port}/cache"))
        .env_remove("TINYLM_REMOTE_CACHE")
        .env_remove("RUST_LOG")
        .env("TINYLM_REMOTE_TIMEOUT", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let have = cas_objects(&cb);
        if wanted.iter().all(|d| have.contains(d)) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended while a download stalled: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the actions downstream of the stalled `{stalled}` were not downloaded meanwhile: \
             have {have:?}, want {wanted:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "stuck on the stall");
    // kill -9 mid-restore: whatever is visible in the CAS is whole.
    child.kill().unwrap();
    child.wait().unwrap();
    let have = cas_objects(&cb);
    for e in walkdir::WalkDir::new(cb.join("cas"))
        .min_depth(2)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
    {
        let d = tinylm::cache::hash_file(e.path()).unwrap();
        assert_eq!(d.to_hex(), e.file_name().to_string_lossy());
    }
    assert!(
        !have.contains(&digest),
        "the stalled object is not in the cache"
    );
    // The next build, straight to the server, finishes the restore: nothing runs, and the
    // result is byte for byte the first machine's.
    let (rb, err) = build(b.path(), &cb, &[], &["--remote-cache", &ngx.url()]);
    assert_eq!(n(&rb, "run"), 0, "{err}");
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_eq!(
        std::fs::read(a.path().join("tinylm.lock")).unwrap(),
        std::fs::read(b.path().join("tinylm.lock")).unwrap()
    );
    assert_cache_clean(&cb);
}

#[test]
fn without_lock_a_fresh_machine_restores_with_prefetch_and_runs_nothing() {
    let Some(ngx) = Nginx::start(NginxOpts::default()) else {
        return;
    };
    let url = ngx.url();
    let (a, b) = (demo_copy(), demo_copy());
    let caches = tempfile::tempdir().unwrap();
    let (ca, cb) = (caches.path().join("a"), caches.path().join("b"));
    build(
        a.path(),
        &ca,
        &[],
        &["--remote-cache", &url, "--remote-upload"],
    );
    // Several transfers at once and one at a time: the same result.
    for jobs in ["1", "8"] {
        let _ = std::fs::remove_dir_all(&cb);
        let _ = std::fs::remove_dir_all(b.path().join("dist"));
        let _ = std::fs::remove_file(b.path().join("tinylm.lock"));
        let env = [("TINYLM_REMOTE_JOBS".to_string(), jobs.to_string())];
        let ac_gets = || {
            ngx.access_log()
                .lines()
                .filter(|l| l.starts_with("GET /cache/ac/"))
                .count()
        };
        let before = ac_gets();
        let (rb, err) = build(b.path(), &cb, &env, &["--remote-cache", &url]);
        assert_eq!(
            (n(&rb, "run"), n(&rb, "from_cache"), n(&rb, "remote.hits")),
            (0, 20, 20),
            "{jobs} jobs: {err}"
        );
        assert_eq!(n(&rb, "remote.errors"), 0, "{err}");
        // Each action looked up once: the build found every key already prefetched.
        assert_eq!(ac_gets() - before, 20, "{jobs} jobs");
        assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
        assert_eq!(
            std::fs::read(a.path().join("tinylm.lock")).unwrap(),
            std::fs::read(b.path().join("tinylm.lock")).unwrap()
        );
        assert_cache_clean(&cb);
        assert!(std::fs::read_dir(cb.join("tmp")).unwrap().next().is_none());
    }
}
