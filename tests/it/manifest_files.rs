//! Problems with the manifest file itself, and limits on what it may ask for: exit 2 with a
//! message naming the file (and line:col where there is one), never exit 1 or a hang.

use std::time::{Duration, Instant};

use crate::support::{assert_no_panic, demo, run_with_timeout};

#[test]
fn a_manifest_that_is_not_utf8_is_a_manifest_error_with_line_and_column() {
    let p = demo();
    let mut bytes = b"[project]\nname = \"d\xe9mo\"\nversion = \"1\"\n".to_vec();
    bytes.extend_from_slice(b"\n");
    std::fs::write(p.path().join("tinylm.toml"), bytes).unwrap();
    let out = p.run(&["build"]);
    let err = assert_no_panic(&out, "build");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("tinylm.toml:2:10"), "{err}");
    assert!(err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn a_directory_as_manifest_is_a_manifest_error() {
    let p = demo();
    for args in [
        &["--manifest", ".", "build"][..],
        &["--manifest", "models", "status"],
    ] {
        let out = p.run(args);
        let err = assert_no_panic(&out, &args.join(" "));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("is a directory"), "{err}");
    }
    let out = p.run(&["--manifest", ".", "build"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean"));
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_reported_as_loops() {
    let p = demo();
    std::os::unix::fs::symlink("loop.gguf", p.path().join("loop.gguf")).unwrap();
    std::os::unix::fs::symlink("gone.gguf", p.path().join("dangling.gguf")).unwrap();
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write("tinylm.toml", &m.replace("models/a.gguf", "loop.gguf"));
    let out = p.run(&["build"]);
    let err = assert_no_panic(&out, "build");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink loop"), "{err}");
    assert!(!err.contains("does not exist"), "{err}");
    p.write("tinylm.toml", &m.replace("models/a.gguf", "dangling.gguf"));
    let err = String::from_utf8_lossy(&p.run(&["build"]).stderr).into_owned();
    assert!(err.contains("symlink whose target does not exist"), "{err}");
    // The manifest itself.
    std::os::unix::fs::symlink("self.toml", p.path().join("self.toml")).unwrap();
    let out = p.run(&["--manifest", "self.toml", "build"]);
    let err = assert_no_panic(&out, "build");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("symlink loop"), "{err}");
}

#[test]
fn model_names_have_a_length_limit() {
    let p = demo();
    let long = "m".repeat(100_000);
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &m.replace("[models.b]", &format!("[models.{long}]"))
            .replace("models = [\"a\", \"b\"]", "models = [\"a\"]"),
    );
    let out = p.run(&["build"]);
    let err = assert_no_panic(&out, "build");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("at most 64"), "{err}");
    assert!(err.len() < 2_000, "a {} byte error", err.len());
    assert!(!p.path().join("dist").exists());
    // 64 is fine.
    let ok = "m".repeat(64);
    p.write(
        "tinylm.toml",
        &m.replace("[models.b]", &format!("[models.{ok}]")).replace(
            "models = [\"a\", \"b\"]",
            &format!("models = [\"a\", \"{ok}\"]"),
        ),
    );
    let out = p.run(&["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_huge_job_count_is_refused_at_once() {
    let p = demo();
    let t0 = Instant::now();
    let out = run_with_timeout(&p, &["build", "-j", "100000"], &[], 30).expect("-j 100000 hung");
    let err = assert_no_panic(&out, "build -j 100000");
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("at most 1024"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    let out = run_with_timeout(
        &p,
        &[
            "quantize",
            "-j",
            "100000",
            "models/a.gguf",
            "q.gguf",
            "q8_0",
        ],
        &[],
        30,
    )
    .expect("quantize -j 100000 hung");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!p.path().join("q.gguf").exists());
    let out = p.run(&["build", "-j", "1024"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
