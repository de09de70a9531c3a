//! `gs://` and `az://` remotes, without an emulator (none installs from the registries here):
//! a bad URL is a usage error (exit 2) with a did-you-mean, and a store whose credentials are
//! missing or unusable costs one warning naming the store and the environment variables to
//! set, and the build goes on locally.

use std::path::Path;
use std::process::{Command, Output};

use crate::servers::demo_copy;
use crate::support::assert_no_panic;

/// `tinylm --cache DIR/CACHE ARGS` in `dir`, with no store credentials but `env`.
fn run_in(dir: &Path, cache: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::support::bin());
    cmd.current_dir(dir).arg("--cache").arg(dir.join(cache));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("GOOGLE_")
            || k.starts_with("AZURE_")
            || k.starts_with("AWS_")
            || k.starts_with("TINYLM_")
            || k == "RUST_LOG"
        {
            cmd.env_remove(&k);
        }
    }
    // Never wait on a cloud metadata endpoint.
    cmd.env("TINYLM_REMOTE_CONNECT_TIMEOUT", "2")
        .env("TINYLM_REMOTE_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    run_in(dir, "cache", env, args)
}

#[test]
fn bad_object_store_urls_are_usage_errors_with_a_hint() {
    let p = demo_copy();
    for (url, needle) in [
        ("gs://", "names no host or bucket"),
        ("gcs://bucket/ci", "did you mean `gs://`?"),
        ("az:///ci", "names no host or bucket"),
        ("abs://container/ci", "supported: http, https, s3, gs, az"),
        ("gs://bucket/ci?user=x", "must not have a query or fragment"),
    ] {
        for args in [
            vec!["build", "-n", "--remote-cache", url],
            vec!["status", "--remote-cache", url],
        ] {
            let out = run(p.path(), &[], &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{url}: {err}");
            assert!(err.contains(needle), "{url}: {err}");
            assert!(err.contains("--remote-cache"), "{url}: {err}");
            assert_no_panic(&out, url);
        }
        let out = run(p.path(), &[("TINYLM_REMOTE_CACHE", url)], &["build", "-n"]);
        assert_eq!(out.status.code(), Some(2), "TINYLM_REMOTE_CACHE={url}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle));
    }
    // In the manifest: a manifest error naming the key.
    let text = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    std::fs::write(
        p.path().join("tinylm.toml"),
        format!("[cache]\nremote = \"gcs://bucket/ci\"\n\n{text}"),
    )
    .unwrap();
    let out = run(p.path(), &[], &["build", "-n"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("remote") && err.contains("did you mean `gs://`?"),
        "{err}"
    );
}

/// Environment variables of one case.
type Env<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn gs_and_az_without_usable_credentials_cost_one_warning_and_build_locally() {
    let p = demo_copy();
    let bad_key = p.path().join("bad-key.json");
    std::fs::write(&bad_key, "{}").unwrap();
    let bad_key = bad_key.to_string_lossy().into_owned();
    let cases: [(&str, Env, &str); 4] = [
        (
            "gs://tinylm-ci/cache",
            vec![("GOOGLE_SERVICE_ACCOUNT", "/nonexistent/key.json")],
            "GOOGLE_SERVICE_ACCOUNT",
        ),
        (
            "gs://tinylm-ci/cache",
            vec![("GOOGLE_SERVICE_ACCOUNT", bad_key.as_str())],
            "private_key",
        ),
        ("az://tinylm-ci/cache", vec![], "AZURE_STORAGE_ACCOUNT_NAME"),
        (
            "az://tinylm-ci/cache",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", "tinylmci"),
                ("AZURE_STORAGE_ACCOUNT_KEY", "not base64 at all!"),
            ],
            "Invalid Access Key",
        ),
    ];
    for (i, (url, env, needle)) in cases.iter().enumerate() {
        let check = |out: &Output, what: &str| {
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(0), "{what} {url} {env:?}: {err}");
            assert_no_panic(out, what);
            let warnings: Vec<&str> = err.lines().filter(|l| l.contains("unavailable")).collect();
            assert_eq!(warnings.len(), 1, "{what} {url} {env:?}: {err}");
            assert!(warnings[0].starts_with("warning: remote cache"), "{err}");
            assert!(warnings[0].contains(url), "{err}");
            assert!(warnings[0].contains(needle), "{what} {url} {env:?}: {err}");
            assert!(warnings[0].contains("building locally"), "{err}");
            // Secrets never reach the output.
            assert!(!err.contains("not base64 at all"), "{err}");
        };
        // A real build of one small model with an empty cache: it runs locally, and succeeds.
        let out = run_in(
            p.path(),
            &format!("cache-{i}"),
            env,
            &["--json", "build", "tiny-gpt2", "--remote-cache", url],
        );
        check(&out, "build");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["remote"]["unavailable"], true, "{r}");
        assert_eq!(r["remote"]["url"], *url);
        assert_eq!(
            (r["failed"].as_u64(), r["run"].as_u64()),
            (Some(0), Some(10))
        );

        // Status (a dry run asking the remote) degrades the same way: everything is stale.
        let out = run_in(
            p.path(),
            &format!("cache-status-{i}"),
            env,
            &["--json", "status", "tiny-gpt2", "--remote-cache", url],
        );
        check(&out, "status");
        let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let actions = st["actions"].as_array().unwrap();
        assert_eq!(actions.len(), 10);
        assert!(actions.iter().all(|a| a["status"] == "would_run"), "{st}");
    }
    // With everything in the local cache the store is never contacted, so never complained
    // about.
    let out = run_in(
        p.path(),
        "cache-0",
        &[],
        &[
            "--json",
            "build",
            "tiny-gpt2",
            "--remote-cache",
            "az://tinylm-ci/cache",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("unavailable"))
            .count(),
        0
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["run"], 0, "{r}");
    assert_eq!(r["remote"]["contacted"], false, "{r}");
}
