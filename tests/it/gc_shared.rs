//! `tinylm gc` on a cache shared by several projects (`TINYLM_CACHE`) keeps what the other
//! projects' locks need; a project whose lock file is gone stops protecting anything.

use crate::support::{Project, count, demo, write_gguf};

fn other_project() -> Project {
    let p = Project::new();
    write_gguf(&p, "m/x.gguf", 7);
    p.write(
        "tinylm.toml",
        "[project]\nname = \"other\"\nversion = \"2.0.0\"\n\n[templates.plain]\ntemplate = \"{{ .Prompt }}\"\n\n\
         [models.x]\nsource.gguf = \"m/x.gguf\"\ntemplate = \"plain\"\n",
    );
    p
}

fn run(p: &Project, cache: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "--cache", cache.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = p.run(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gc_in_one_project_keeps_what_another_project_sharing_the_cache_needs() {
    let cache = tempfile::tempdir().unwrap();
    let (one, two) = (demo(), other_project());
    run(&one, cache.path(), &["build"]);
    let r = run(&two, cache.path(), &["build"]);
    assert_eq!(count(&r, "run"), 3);

    // `one` changes a source: its old objects become garbage, `two`'s must stay.
    write_gguf(&one, "models/a.gguf", 42);
    run(&one, cache.path(), &["build"]);
    let gc = run(&one, cache.path(), &["gc"]);
    assert!(count(&gc, "objects_deleted") > 0, "{gc}");
    assert_eq!(gc["other_projects"].as_array().unwrap().len(), 1, "{gc}");

    // `two` loses its output directory: everything comes back from the cache, nothing runs.
    std::fs::remove_dir_all(two.path().join("dist")).unwrap();
    let r = run(&two, cache.path(), &["build"]);
    assert_eq!((count(&r, "run"), count(&r, "from_cache")), (0, 2), "{r}");

    // gc from `two` also keeps `one`'s current objects.
    run(&two, cache.path(), &["gc"]);
    std::fs::remove_dir_all(one.path().join("dist")).unwrap();
    let r = run(&one, cache.path(), &["build"]);
    assert_eq!(count(&r, "run"), 0, "{r}");

    // A project whose lock is gone (deleted) protects nothing any more: gc may take its objects.
    std::fs::remove_file(two.path().join("tinylm.lock")).unwrap();
    let gc = run(&one, cache.path(), &["gc"]);
    assert_eq!(gc["other_projects"].as_array().unwrap().len(), 0, "{gc}");
    assert!(count(&gc, "objects_deleted") > 0);
    std::fs::remove_dir_all(two.path().join("dist")).unwrap();
    let r = run(&two, cache.path(), &["build"]);
    assert!(count(&r, "run") > 0, "its objects were collected: {r}");
}
