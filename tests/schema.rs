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
