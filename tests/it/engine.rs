//! The build engine, end to end: incremental builds, cache integrity, crash safety, locking.

use crate::support::{self, Project, count, demo, ids_with, sha256_hex, write_gguf};

#[test]
fn first_build_runs_everything_second_runs_nothing_and_rehashes_nothing() {
    let p = demo();
    let r1 = p.build(&[]);
    // import + modelfile + lint per model, plus the release.
    assert_eq!(count(&r1, "actions"), 7);
    assert_eq!(count(&r1, "run"), 7);
    assert_eq!(count(&r1, "hashed_files"), 2, "the two source GGUFs");
    let files = p.tree("dist");
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "a/a.Modelfile",
            "a/a.gguf",
            "b/b.Modelfile",
            "b/b.gguf",
            "releases/v1-1.0.0/README.md",
            "releases/v1-1.0.0/SHA256SUMS",
            "releases/v1-1.0.0/a.Modelfile",
            "releases/v1-1.0.0/a.gguf",
            "releases/v1-1.0.0/b.Modelfile",
            "releases/v1-1.0.0/b.gguf",
            "releases/v1-1.0.0/release.json",
        ]
    );
    assert_eq!(
        std::fs::read(p.path().join("dist/a/a.gguf")).unwrap(),
        support::tiny_gguf(1)
    );

    let r2 = p.build(&[]);
    assert_eq!(
        (
            count(&r2, "run"),
            count(&r2, "from_cache"),
            count(&r2, "up_to_date")
        ),
        (0, 0, 7)
    );
    assert_eq!(count(&r2, "hashed_files"), 0);
    assert_eq!(count(&r2, "hashed_bytes"), 0);
    assert_eq!(count(&r2, "placed"), 0);
    assert_eq!(p.tree("dist"), files);
}

#[test]
fn editing_a_template_reruns_only_its_modelfiles_and_the_release() {
    let p = demo();
    p.build(&[]);
    let lock_before = std::fs::read_to_string(p.path().join("tinylm.lock")).unwrap();
    let manifest = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &manifest.replace("You are helpful.", "You are terse."),
    );
    let r = p.build(&[]);
    assert_eq!(ids_with(&r, "run"), ["lint:a", "modelfile:a", "release:v1"]);
    assert_eq!(
        ids_with(&r, "up_to_date"),
        ["import:a", "import:b", "lint:b", "modelfile:b"]
    );
    let mf = std::fs::read_to_string(p.path().join("dist/a/a.Modelfile")).unwrap();
    assert!(mf.contains("You are terse."), "{mf}");
    assert_eq!(
        std::fs::read(p.path().join("dist/releases/v1-1.0.0/a.Modelfile")).unwrap(),
        mf.as_bytes()
    );

    // The lock changed only in the tables of the actions that reran.
    let lock_after = std::fs::read_to_string(p.path().join("tinylm.lock")).unwrap();
    let table = |lock: &str, id: &str| -> String {
        let start = lock.find(&format!("[actions.\"{id}\"]")).unwrap();
        let rest = &lock[start + 1..];
        let end = rest
            .find("\n[actions.\"")
            .map(|e| e + 1)
            .unwrap_or(rest.len());
        // Include nested tables of the same action.
        let mut s = rest[..end].to_string();
        let mut more = &rest[end..];
        while more.starts_with(&format!("[actions.\"{id}\"")) {
            let e = more[1..]
                .find("\n[actions.\"")
                .map(|e| e + 2)
                .unwrap_or(more.len());
            s += &more[..e];
            more = &more[e..];
        }
        s
    };
    for id in ["import:a", "import:b", "modelfile:b", "lint:b"] {
        assert_eq!(
            table(&lock_before, id),
            table(&lock_after, id),
            "{id} changed in the lock"
        );
    }
    assert_ne!(
        table(&lock_before, "modelfile:a"),
        table(&lock_after, "modelfile:a")
    );
}

#[test]
fn replacing_a_gguf_reruns_its_downstream_only() {
    let p = demo();
    p.build(&[]);
    let modelfile = std::fs::read(p.path().join("dist/a/a.Modelfile")).unwrap();
    write_gguf(&p, "models/a.gguf", 9);
    let r = p.build(&[]);
    assert_eq!(
        ids_with(&r, "run"),
        ["import:a", "lint:a", "modelfile:a", "release:v1"]
    );
    // The Modelfile reads only the vocabulary, which did not change: it reran and came out
    // byte-identical, so its cache object (and anything keyed on it alone) is unchanged.
    assert_eq!(
        std::fs::read(p.path().join("dist/a/a.Modelfile")).unwrap(),
        modelfile
    );
    assert_eq!(count(&r, "hashed_files"), 1);
    assert_eq!(
        std::fs::read(p.path().join("dist/a/a.gguf")).unwrap(),
        support::tiny_gguf(9)
    );
    let sums = std::fs::read_to_string(p.path().join("dist/releases/v1-1.0.0/SHA256SUMS")).unwrap();
    assert!(sums.contains(&sha256_hex(&support::tiny_gguf(9))));
}

#[test]
fn deleting_an_output_restores_it_from_cache_without_running() {
    let p = demo();
    p.build(&[]);
    std::fs::remove_file(p.path().join("dist/b/b.gguf")).unwrap();
    std::fs::remove_file(p.path().join("dist/releases/v1-1.0.0/release.json")).unwrap();
    let r = p.build(&[]);
    assert_eq!(count(&r, "run"), 0);
    assert_eq!(ids_with(&r, "from_cache"), ["import:b", "release:v1"]);
    assert_eq!(count(&r, "placed"), 2);
    assert_eq!(
        std::fs::read(p.path().join("dist/b/b.gguf")).unwrap(),
        support::tiny_gguf(2)
    );
}

#[test]
fn a_corrupted_cache_object_is_detected_and_rebuilt() {
    let p = demo();
    p.build(&[]);
    let good = support::tiny_gguf(1);
    let digest = tinylm::cache::Digest::of(&good).to_hex();
    let obj = p
        .path()
        .join(".tinylm/cache/cas")
        .join(&digest[..2])
        .join(&digest);
    assert!(obj.is_file());
    // Flip a byte in place, as disk corruption or a stray write would.
    let mut perms = std::fs::metadata(&obj).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&obj, perms).unwrap();
    let mut bytes = std::fs::read(&obj).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&obj, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(2))
        .unwrap();

    let r = p.build(&[]);
    assert_eq!(ids_with(&r, "run"), ["import:a"], "{r}");
    assert_eq!(std::fs::read(&obj).unwrap(), good);
    assert_eq!(std::fs::read(p.path().join("dist/a/a.gguf")).unwrap(), good);
    assert_eq!(
        std::fs::read(p.path().join("dist/releases/v1-1.0.0/a.gguf")).unwrap(),
        good
    );
}

#[test]
fn concurrent_builds_wait_for_each_other_and_agree() {
    let reference = demo();
    reference.build(&[]);
    let p = demo();
    let bin = support::bin();
    let spawn = || {
        std::process::Command::new(&bin)
            .current_dir(p.path())
            .args(["--json", "build"])
            .env_remove("TINYLM_CACHE")
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let ra: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let rb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    // Exactly one did the work; the other found it done.
    assert_eq!(count(&ra, "run") + count(&rb, "run"), 7, "{ra}\n{rb}");
    assert_eq!(p.tree("dist"), reference.tree("dist"));
    assert_eq!(
        std::fs::read(p.path().join("tinylm.lock")).unwrap(),
        std::fs::read(reference.path().join("tinylm.lock")).unwrap()
    );
}

#[cfg(debug_assertions)]
#[test]
fn a_crash_at_any_point_leaves_no_partial_output_and_the_next_build_completes() {
    let reference = demo();
    reference.build(&[]);
    for fault in [
        "after-run:release:v1",
        "before-record:import:b",
        "before-materialize",
        "mid-materialize",
    ] {
        let p = demo();
        let out = p.run_env(&["build"], &[("TINYLM_FAULT", fault)]);
        assert!(
            !out.status.success(),
            "{fault}: the injected crash did not happen"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("fault injected"),
            "{fault}"
        );
        // Whatever is in dist/ is whole: every file there is byte-identical to a good build's.
        let good = reference.tree("dist");
        for (name, bytes) in p.tree("dist") {
            match good.iter().find(|(n, _)| *n == name) {
                Some((_, g)) => assert_eq!(&bytes, g, "{fault}: {name} is partial"),
                None => assert!(name.contains(".tinylm-tmp-"), "{fault}: unexpected {name}"),
            }
        }
        let r = p.build(&[]);
        assert_eq!(count(&r, "failed"), 0, "{fault}");
        assert_eq!(p.tree("dist"), good, "{fault}: second build differs");
        let tmp: Vec<_> = std::fs::read_dir(p.path().join(".tinylm/cache/tmp"))
            .unwrap()
            .collect();
        assert!(tmp.is_empty(), "{fault}: leftovers in the cache's tmp/");
    }
}

#[test]
fn locked_fails_without_writing_when_the_lock_would_change() {
    let p = demo();
    let out = p.run(&["build", "--locked"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no lock yet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!p.path().join("tinylm.lock").exists());
    assert!(!p.path().join("dist").exists());

    p.build(&[]);
    let r = p.build(&["--locked"]);
    assert_eq!(count(&r, "run"), 0);

    let lock = std::fs::read(p.path().join("tinylm.lock")).unwrap();
    let dist = p.tree("dist");
    let manifest = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &manifest.replace("You are helpful.", "Changed."),
    );
    let out = p.run(&["build", "--locked"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--locked") && err.contains("modelfile:a"),
        "{err}"
    );
    assert_eq!(std::fs::read(p.path().join("tinylm.lock")).unwrap(), lock);
    assert_eq!(p.tree("dist"), dist);
}

#[test]
fn thread_count_does_not_change_a_single_byte() {
    let one = demo();
    one.build(&["-j1"]);
    let eight = demo();
    eight.build(&["-j8"]);
    assert_eq!(one.tree("dist"), eight.tree("dist"));
    assert_eq!(
        std::fs::read(one.path().join("tinylm.lock")).unwrap(),
        std::fs::read(eight.path().join("tinylm.lock")).unwrap()
    );
}

#[test]
fn targets_build_subsets_and_unknown_targets_are_usage_errors() {
    let p = demo();
    let r = p.build(&["b"]);
    assert_eq!(ids_with(&r, "run"), ["import:b", "lint:b", "modelfile:b"]);
    assert!(!p.path().join("dist/a").exists());
    let r = p.build(&["v1"]);
    assert_eq!(
        ids_with(&r, "run"),
        ["import:a", "lint:a", "modelfile:a", "release:v1"]
    );
    let out = p.run(&["build", "vv1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `v1`"));
}

#[test]
fn dropping_a_model_removes_its_outputs_but_never_foreign_files() {
    let p = demo();
    p.build(&[]);
    std::fs::write(p.path().join("dist/b/notes.txt"), "mine").unwrap();
    let manifest = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    let without_b = manifest
        .replace(
            "[models.b]\nsource.gguf = \"models/b.gguf\"\ntemplate = \"plain\"\n",
            "",
        )
        .replace("models = [\"a\", \"b\"]", "models = [\"a\"]");
    p.write("tinylm.toml", &without_b);
    let r = p.build(&[]);
    assert_eq!(count(&r, "removed"), 4, "{r}");
    assert!(!p.path().join("dist/b/b.gguf").exists());
    assert!(!p.path().join("dist/releases/v1-1.0.0/b.gguf").exists());
    assert_eq!(
        std::fs::read_to_string(p.path().join("dist/b/notes.txt")).unwrap(),
        "mine"
    );
    let lock = std::fs::read_to_string(p.path().join("tinylm.lock")).unwrap();
    assert!(!lock.contains("import:b"));
}

#[test]
fn outputs_are_read_only_and_release_checksums_are_right() {
    let p = demo();
    p.build(&[]);
    for (name, bytes) in p.tree("dist") {
        let meta = std::fs::metadata(p.path().join("dist").join(&name)).unwrap();
        assert!(meta.permissions().readonly(), "{name} is writable");
        if !name.ends_with("SHA256SUMS")
            && !name.ends_with("release.json")
            && !name.ends_with("README.md")
            && name.starts_with("releases/")
        {
            let sums = std::fs::read_to_string(p.path().join("dist/releases/v1-1.0.0/SHA256SUMS"))
                .unwrap();
            let file = name.rsplit('/').next().unwrap();
            assert!(
                sums.contains(&format!("{}  {file}\n", sha256_hex(&bytes))),
                "{file} not in SHA256SUMS"
            );
        }
    }
    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/v1-1.0.0/release.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rel["name"], "v1");
    assert_eq!(rel["version"], "1.0.0");
    let a = &rel["artifacts"][0];
    assert_eq!(a["model"], "a");
    assert_eq!(a["gguf"]["sha256"], sha256_hex(&support::tiny_gguf(1)));
    assert_eq!(
        a["gguf"]["blake3"],
        tinylm::cache::Digest::of(&support::tiny_gguf(1)).to_hex()
    );
    assert_eq!(a["gguf"]["size"], support::tiny_gguf(1).len());
    assert_eq!(
        a["sources"]["gguf"],
        tinylm::cache::Digest::of(&support::tiny_gguf(1)).to_hex()
    );
}

#[test]
fn status_explains_what_changed() {
    let p = demo();
    p.build(&[]);
    let manifest = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &manifest.replace("You are helpful.", "You are brief."),
    );
    write_gguf(&p, "models/b.gguf", 7);
    let out = p.run(&["status", "--explain"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"params.template.system: "You are helpful." → "You are brief.""#),
        "{text}"
    );
    assert!(text.contains("input `source` changed"), "{text}");
    assert!(text.contains("stale  release:v1"), "{text}");
    // status writes nothing.
    let r = p.build(&["--dry-run"]);
    assert_eq!(
        ids_with(&r, "would_run"),
        [
            "import:b",
            "lint:a",
            "lint:b",
            "modelfile:a",
            "modelfile:b",
            "release:v1"
        ]
    );
}

#[test]
fn a_source_that_is_not_a_gguf_fails_the_build_with_its_name() {
    let p = demo();
    p.write("models/a.gguf", "not a gguf at all");
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("models/a.gguf") && err.contains("not a GGUF file"),
        "{err}"
    );
    assert!(!p.path().join("dist/a/a.gguf").exists());
    // Fail-fast still places what finished before the failure.
    let r = p.run(&["--json", "build", "--keep-going"]);
    let r: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(count(&r, "failed"), 1);
    assert!(p.path().join("dist/b/b.gguf").exists());
}

#[test]
fn a_project_can_be_built_from_another_directory() {
    let p = demo();
    let other = Project::new();
    let out = other.run(&["-C", p.path().to_str().unwrap(), "build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.path().join("dist/a/a.gguf").exists());
}

#[test]
fn quants_of_a_gguf_source_share_it_and_land_in_the_release() {
    let p = Project::new();
    write_gguf(&p, "m.gguf", 5);
    p.write(
        "tinylm.toml",
        "[project]\nname = \"q\"\nversion = \"2\"\n\n[models.m]\nsource.gguf = \"m.gguf\"\nquants = [\"f16\", \"q8_0\"]\n\n[releases.r]\nmodels = [\"m\"]\nquants = [\"q8_0\"]\n",
    );
    let r = p.build(&[]);
    assert_eq!(
        ids_with(&r, "run"),
        [
            "lint:m:f16",
            "lint:m:q8_0",
            "modelfile:m:f16",
            "modelfile:m:q8_0",
            "quantize:m:f16",
            "quantize:m:q8_0",
            "release:r"
        ]
    );
    // The source already is F16: used as is, byte for byte.
    assert_eq!(
        std::fs::read(p.path().join("dist/m/m-f16.gguf")).unwrap(),
        support::tiny_gguf(5)
    );
    let q8 = tinylm::formats::gguf::GgufFile::open(p.path().join("dist/m/m-q8_0.gguf")).unwrap();
    assert_eq!(q8.get_u64("general.file_type").unwrap(), 7);
    assert_eq!(
        q8.tensor("token_embd.weight").unwrap().ggml_type,
        tinylm::formats::gguf::GgmlType::Q8_0
    );
    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-2/release.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rel["artifacts"].as_array().unwrap().len(), 1);
    let q = &rel["artifacts"][0]["quantization"];
    assert_eq!(q["ftype"], "Q8_0");
    assert!(
        q["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "token_embd.weight" && t["rmse"].as_f64().unwrap() > 0.0)
    );
    let r = p.build(&["m:q8_0"]);
    assert_eq!(count(&r, "up_to_date"), 3);
}

/// The committed demo lock is what any build of this tree produces: the test binary (built with
/// the dev-dependencies' features) and `cargo run --release` must write the same bytes.
#[test]
fn the_committed_demo_builds_locked_from_a_fresh_copy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    for f in ["tinylm.toml", "tinylm.lock"] {
        std::fs::copy(root.join(f), p.path().join(f)).unwrap();
    }
    for e in walkdir::WalkDir::new(root.join("examples")) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap();
        if e.file_type().is_dir() {
            std::fs::create_dir_all(p.path().join(rel)).unwrap();
        } else {
            std::fs::copy(e.path(), p.path().join(rel)).unwrap();
        }
    }
    let out = p.run(&["build", "--locked", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(p.path().join("tinylm.lock")).unwrap(),
        std::fs::read(root.join("tinylm.lock")).unwrap()
    );
}
