//! The JSON schema of tinylm.toml: in sync with the Rust types, and every manifest in the
//! repository validates against it.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schema_matches_the_types() {
    let committed = std::fs::read_to_string(repo().join("schemas/tinylm.schema.json")).unwrap();
    let generated = tinylm::manifest::json_schema();
    assert!(
        committed == generated,
        "schemas/tinylm.schema.json is stale: run `cargo run -- schema > schemas/tinylm.schema.json`"
    );
}

fn manifests() -> Vec<PathBuf> {
    let mut v = vec![repo().join("tinylm.toml")];
    for e in walkdir::WalkDir::new(repo().join("examples"))
        .into_iter()
        .flatten()
    {
        if e.file_name() == "tinylm.toml" {
            v.push(e.into_path());
        }
    }
    v.retain(|p| p.exists());
    v
}

fn validate(path: &Path) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/tinylm.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let json = serde_json::to_value(doc).unwrap();
    validator
        .iter_errors(&json)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn every_manifest_in_the_repo_validates() {
    let all = manifests();
    assert!(!all.is_empty());
    for m in all {
        let errors = validate(&m);
        assert!(errors.is_empty(), "{}: {errors:?}", m.display());
        // And the real parser agrees.
        let loaded = tinylm::manifest::load(&m).unwrap();
        tinylm::manifest::validate(&loaded).unwrap();
    }
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tinylm.toml");
    std::fs::write(&bad, "[project]\nname = \"x\"\nversion = \"1\"\n[models.a]\nsource.gguf = \"a.gguf\"\nqaunts = [\"f16\"]\n").unwrap();
    assert!(!validate(&bad).is_empty());
    std::fs::write(&bad, "[project]\nname = \"x\"\n").unwrap();
    assert!(!validate(&bad).is_empty(), "missing version");
}

/// The manifest example in the README, so the docs cannot drift from what tinylm accepts.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("## The manifest\n\n```toml\n")
        .expect("README has a manifest example")
        + "## The manifest\n\n```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    readme[start..start + len].to_string()
}

#[test]
fn the_readme_manifest_example_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tinylm.toml");
    let text = readme_example();
    std::fs::write(&path, &text).unwrap();
    assert_eq!(validate(&path), Vec::<String>::new());
    // Validation checks that sources exist: stub every path the example names.
    let doc: toml::Value = toml::from_str(&text).unwrap();
    for (_, model) in doc["models"].as_table().unwrap() {
        let source = model["source"].as_table().unwrap();
        let paths: Vec<&str> = match source.iter().next().unwrap() {
            (_, toml::Value::String(p)) => vec![p.as_str()],
            (_, toml::Value::Table(t)) => t.values().filter_map(|v| v.as_str()).collect(),
            other => panic!("unexpected source {other:?}"),
        };
        for p in paths {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if source.contains_key("hf") {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::write(&p, b"").unwrap();
            }
        }
    }
    // And the texts and imatrix files it names.
    let mut texts: Vec<&str> = Vec::new();
    if let Some(t) = doc.get("eval").and_then(|e| e["text"].as_str()) {
        texts.push(t);
    }
    for (_, model) in doc["models"].as_table().unwrap() {
        if let Some(im) = model.get("imatrix").and_then(|i| i.as_table()) {
            texts.extend(im.values().filter_map(|v| v.as_str()));
        }
    }
    for t in texts {
        let p = dir.path().join(t);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
    }
    let loaded = tinylm::manifest::load(&path).unwrap();
    let project = tinylm::manifest::validate(&loaded).unwrap();
    assert_eq!(project.models.len(), 3);
    assert!(project.eval.is_some());
    assert_eq!(project.models["qwen"].quants.len(), 4);
    assert!(!project.models["qwen"].quality.is_empty());
}
