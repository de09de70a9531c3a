//! The cache and the output directory hold only what tinylm made: it never deletes what it did
//! not create, refuses locations that overlap, and leaves no temp files behind.

use std::path::Path;

use crate::support::{Project, count, demo};

fn run_code(p: &Project, args: &[&str]) -> (Option<i32>, String) {
    let out = p.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_foreign_directory_as_cache_is_refused_and_left_untouched() {
    let p = demo();
    std::fs::create_dir_all(p.path().join("d/tmp")).unwrap();
    std::fs::write(p.path().join("d/tmp/keep"), "x").unwrap();
    let (code, err) = run_code(&p, &["build", "--cache", "d"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not a tinylm cache"), "{err}");
    assert_eq!(
        std::fs::read_to_string(p.path().join("d/tmp/keep")).unwrap(),
        "x"
    );
    assert!(!p.path().join("d/tinylm-cache.json").exists());
    // The same through the environment.
    let out = p.run_env(&["build"], &[("TINYLM_CACHE", "d")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(p.path().join("d/tmp/keep").exists());
}

#[test]
fn an_empty_or_new_directory_becomes_a_marked_cache() {
    let p = demo();
    std::fs::create_dir(p.path().join("empty")).unwrap();
    for dir in ["empty", "new/cache"] {
        let (code, err) = run_code(&p, &["build", "--cache", dir]);
        assert_eq!(code, Some(0), "{dir}: {err}");
        let marker = p.path().join(dir).join("tinylm-cache.json");
        assert!(marker.is_file(), "{dir}: no marker");
        assert!(p.path().join(dir).join("CACHEDIR.TAG").is_file());
    }
}

#[test]
fn files_tinylm_did_not_create_survive_builds_gc_and_clean() {
    let p = demo();
    p.build(&[]);
    let cache = p.path().join(".tinylm/cache");
    let foreign = [
        cache.join("tmp/keep"),
        cache.join("cas/notes.txt"),
        cache.join("cas/00/mine"),
        cache.join("ac/zz"),
        cache.join("README"),
    ];
    for f in &foreign {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, "mine").unwrap();
    }
    p.build(&[]);
    let (code, err) = run_code(&p, &["gc"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = run_code(&p, &["clean", "--all"]);
    assert_eq!(code, Some(0), "{err}");
    for f in &foreign {
        assert_eq!(
            std::fs::read_to_string(f).unwrap(),
            "mine",
            "{}",
            f.display()
        );
    }
    assert!(err.contains("tinylm did not create"), "{err}");
    // What tinylm made is gone.
    assert!(!cache.join("stat.json").exists());
    let objects = walkdir::WalkDir::new(cache.join("cas"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name().len() == 64)
        .count();
    assert_eq!(objects, 0);
}

fn demo_with(project_extra: &str, tail: &str) -> Project {
    let p = demo();
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    let m = m.replacen(
        "version = \"1.0.0\"\n",
        &format!("version = \"1.0.0\"\n{project_extra}"),
        1,
    );
    p.write("tinylm.toml", &format!("{m}{tail}"));
    p
}

fn assert_manifest_error(p: &Project, line: usize, needle: &str) {
    let (code, err) = run_code(p, &["build"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("tinylm.toml:{line}:")),
        "expected line {line}:\n{err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

#[test]
fn output_directories_that_overlap_are_manifest_errors() {
    for (out, needle) in [
        (".", "project directory itself"),
        ("", "project directory itself"),
        ("..", "inside the project directory"),
        ("../elsewhere", "inside the project directory"),
        ("models", "overlaps the source"),
        ("x/../models", "overlaps the source"),
        (".tinylm/cache/cas/x", "`.tinylm/`"),
    ] {
        let p = demo_with(&format!("out = {out:?}\n"), "");
        std::fs::write(p.path().join("notes.txt"), "mine").unwrap();
        assert_manifest_error(&p, 4, needle);
        assert!(p.path().join("notes.txt").exists());
        assert!(p.path().join("models/a.gguf").exists());
    }
}

#[test]
fn cache_directories_that_overlap_are_manifest_or_usage_errors() {
    for (dir, needle) in [
        (".", "contains the project"),
        ("..", "contains the project"),
        ("dist", "overlaps the output directory"),
        ("dist/cache", "overlaps the output directory"),
        ("models", "overlaps the source"),
        (".tinylm", "`.tinylm/` itself"),
    ] {
        let p = demo_with("", &format!("\n[cache]\ndir = {dir:?}\n"));
        std::fs::create_dir_all(p.path().join("tmp")).unwrap();
        std::fs::write(p.path().join("tmp/keep"), "x").unwrap();
        let lines = std::fs::read_to_string(p.path().join("tinylm.toml"))
            .unwrap()
            .lines()
            .count();
        assert_manifest_error(&p, lines, needle);
        assert!(
            p.path().join("tmp/keep").exists(),
            "{dir}: tmp/keep deleted"
        );
        // On the command line it is a usage error, with the same reason.
        let p = demo();
        let (code, err) = run_code(&p, &["build", "--cache", dir]);
        assert_eq!(code, Some(2), "{dir}: {err}");
        assert!(err.contains(needle), "{dir}: {err}");
    }
}

#[test]
fn gc_after_a_good_build_keeps_every_placed_output() {
    let p = demo();
    p.build(&[]);
    let before = p.tree("dist");
    let (code, err) = run_code(&p, &["gc"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(p.tree("dist"), before);
}

fn temp_names(dir: &Path) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tinylm-tmp-") || n.starts_with(".tmp-"))
        .collect()
}

#[test]
fn no_temp_file_stays_in_dist_when_the_state_file_is_missing_or_corrupt() {
    let p = demo();
    p.build(&[]);
    let state = p.path().join(".tinylm/state.json");
    std::fs::remove_file(&state).unwrap();
    p.build(&[]);
    assert_eq!(temp_names(&p.path().join("dist")), Vec::<String>::new());
    std::fs::write(&state, "{ not json").unwrap();
    p.build(&[]);
    assert_eq!(temp_names(&p.path().join("dist")), Vec::<String>::new());
    assert_eq!(temp_names(p.path()), Vec::<String>::new());
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn temp_files_of_killed_builds_are_removed_and_nothing_else() {
    let p = demo();
    p.build(&[]);
    let dead = dead_pid();
    let root = p.path();
    let lock_text = std::fs::read(root.join("tinylm.lock")).unwrap();
    let stale = [
        (root.join(".tinylm/.tmp-a1B2c3"), b"{}".to_vec()),
        (
            root.join(format!(".tinylm/.state.json.tinylm-tmp-{dead}-Ab12Cd")),
            b"{}".to_vec(),
        ),
        (root.join(".tinylm/cache/.tmp-x9Y8z7"), b"{}".to_vec()),
        (
            root.join(format!(".tinylm/cache/.stat.json.tinylm-tmp-{dead}-q1w2e3")),
            b"{}".to_vec(),
        ),
        (root.join(".tmp-LoCk01"), lock_text.clone()),
        (
            root.join(format!(".tinylm.lock.tinylm-tmp-{dead}-zzzzzz")),
            lock_text.clone(),
        ),
        (
            root.join(format!("dist/a/.a.gguf.tinylm-tmp-{dead}")),
            b"x".to_vec(),
        ),
    ];
    let kept = [
        // Not a lock file: someone else's `.tmp-` file in the project.
        (root.join(".tmp-other1"), b"mine".to_vec()),
        // A live process's temp file (ours, running now).
        (
            root.join(format!(".x.tinylm-tmp-{}", std::process::id())),
            b"x".to_vec(),
        ),
        (root.join("dist/a/notes.tinylm-tmp-1"), b"x".to_vec()),
    ];
    for (f, bytes) in stale.iter().chain(&kept) {
        std::fs::write(f, bytes).unwrap();
    }
    let (code, err) = run_code(&p, &["gc"]);
    assert_eq!(code, Some(0), "{err}");
    for (f, _) in &stale {
        assert!(!f.exists(), "{} was left", f.display());
    }
    for (f, bytes) in &kept {
        assert_eq!(
            &std::fs::read(f).unwrap(),
            bytes,
            "{} was touched",
            f.display()
        );
    }
    // A build removes the ones in the project and the cache's tmp/ (where records are staged).
    let again = [
        root.join(format!("dist/b/.b.gguf.tinylm-tmp-{dead}")),
        root.join(format!(
            ".tinylm/cache/tmp/.{}.tinylm-tmp-{dead}-Ab12Cd",
            "7".repeat(64)
        )),
    ];
    for f in &again {
        std::fs::write(f, "x").unwrap();
    }
    let r = p.build(&[]);
    assert_eq!(count(&r, "failed"), 0);
    for f in &again {
        assert!(!f.exists(), "{} was left", f.display());
    }
    // Records are written through tmp/, never beside themselves.
    let beside: Vec<_> = walkdir::WalkDir::new(root.join(".tinylm/cache/ac"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tinylm-tmp"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn a_full_disk_names_the_file_being_written_and_leaves_no_temp_file() {
    let p = demo();
    let out = p.run_env(&["build"], &[("TINYLM_FAULT", "enospc-place")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("dist/"), "{err}");
    assert!(
        !err.contains("tinylm-tmp"),
        "the error names the temp file:\n{err}"
    );
    assert_eq!(temp_names(&p.path().join("dist")), Vec::<String>::new());
    // With space again, the build completes.
    let r = p.build(&[]);
    assert_eq!(count(&r, "failed"), 0);
}

#[test]
fn verify_rehashes_every_object_and_reports_corrupt_ones() {
    let p = demo();
    p.build(&[]);
    let out = p.run(&["--json", "verify"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["objects"].as_u64().unwrap() > 0, "{v}");
    assert!(v["outputs"].as_u64().unwrap() > 0, "{v}");
    // Corrupt one object in place, keeping its size and mtime (the stat cache would not see it).
    let object = walkdir::WalkDir::new(p.path().join(".tinylm/cache/cas"))
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file() && e.file_name().len() == 64)
        .unwrap()
        .into_path();
    let meta = std::fs::metadata(&object).unwrap();
    let mut perms = meta.permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&object, perms).unwrap();
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&object, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&object)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    let out = p.run(&["--json", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["corrupt"].as_array().unwrap().len(), 1, "{v}");
}

/// Runs `script` (with `$TINYLM` set) as root of a private mount namespace, where it may mount
/// a small tmpfs; `None` when this machine cannot (no user namespaces).
fn in_mount_namespace(p: &Project, script: &str) -> Option<std::process::Output> {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /tmp"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs in a user namespace here");
        return None;
    }
    Some(
        std::process::Command::new("unshare")
            .current_dir(p.path())
            .env("TINYLM", crate::support::bin())
            .env_remove("TINYLM_CACHE")
            .args(["-rm", "sh", "-c", script])
            .output()
            .unwrap(),
    )
}

#[test]
fn a_real_full_disk_names_the_output_or_the_cache_and_leaves_no_temp_file() {
    // The output directory on a full filesystem: the copy into dist/ fails.
    let p = demo();
    std::fs::create_dir(p.path().join("dist")).unwrap();
    let Some(out) = in_mount_namespace(
        &p,
        "mount -t tmpfs -o size=12k tmpfs dist && \"$TINYLM\" build; rc=$?; \
         find dist -name '*tinylm-tmp*'; exit $rc",
    ) else {
        return;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("/dist/"), "{err}");
    assert!(!err.contains("tinylm-tmp"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "temp files left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The cache on a full filesystem: the action's output cannot be written.
    let p = demo();
    std::fs::create_dir(p.path().join("small")).unwrap();
    let out = in_mount_namespace(
        &p,
        "mount -t tmpfs -o size=8k tmpfs small && \"$TINYLM\" build --cache small/c; rc=$?; \
         find small -name '*tinylm-tmp*'; exit $rc",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    // Whichever write hits the limit first (an action's output, the stat cache), the error
    // names the cache, not a temp file.
    assert!(err.contains("small/c"), "{err}");
    assert!(!err.contains("tinylm-tmp"), "{err}");
    assert!(
        out.stdout.is_empty(),
        "temp files left: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}
