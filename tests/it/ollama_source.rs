//! `source.ollama = "name:tag"`: a model pulled with Ollama, read from the store
//! (`$OLLAMA_MODELS`): its GGUF blob is the source, its template/system/params/license layers are
//! the defaults of our Modelfiles, and the lock names it by name and digest.

use std::path::Path;

use tinylm::formats::gguf::GgufFile;

use crate::support::{self, Project, sha256_hex};

const TEMPLATE: &str = "<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n";

/// Writes `blob` into the store and returns its layer JSON.
fn layer(store: &Path, media: &str, blob: &[u8]) -> serde_json::Value {
    let hex = sha256_hex(blob);
    std::fs::create_dir_all(store.join("blobs")).unwrap();
    std::fs::write(store.join("blobs").join(format!("sha256-{hex}")), blob).unwrap();
    support::backdate(&store.join("blobs").join(format!("sha256-{hex}")));
    serde_json::json!({ "mediaType": media, "digest": format!("sha256:{hex}"), "size": blob.len() })
}

/// A store holding `tiny:1b` as `ollama pull` leaves it; returns the GGUF's sha256.
fn fake_store(store: &Path, gguf: &[u8]) -> String {
    let config = layer(
        store,
        "application/vnd.docker.container.image.v1+json",
        b"{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"file_type\":\"F16\"}\n",
    );
    let layers = vec![
        layer(store, "application/vnd.ollama.image.model", gguf),
        layer(
            store,
            "application/vnd.ollama.image.template",
            TEMPLATE.as_bytes(),
        ),
        layer(
            store,
            "application/vnd.ollama.image.system",
            b"You are tiny.",
        ),
        layer(
            store,
            "application/vnd.ollama.image.params",
            b"{\"stop\":[\"<|im_end|>\"],\"temperature\":0.5,\"num_ctx\":1024}\n",
        ),
        layer(store, "application/vnd.ollama.image.license", b"MIT"),
    ];
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config,
        "layers": layers,
    });
    let dir = store.join("manifests/registry.ollama.ai/library/tiny");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1b"), manifest.to_string()).unwrap();
    sha256_hex(gguf)
}

/// A small real GGUF whose vocabulary has the ChatML markers the store's template uses.
fn chatml_gguf(seed: u8) -> Vec<u8> {
    support::gguf_with_vocab(
        seed,
        &support::Vocab {
            tokens: vec!["<s>", "</s>", "a", "b", "ab", "<|im_start|>", "<|im_end|>"],
            types: vec![3, 3, 1, 1, 1, 3, 3],
            merges: vec!["a b"],
            eos: Some(6),
            chat_template: None,
        },
    )
}

fn manifest(model: &str) -> String {
    format!("[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\n{model}\n")
}

fn run(p: &Project, store: &Path, args: &[&str]) -> std::process::Output {
    p.run_env(args, &[("OLLAMA_MODELS", store.to_str().unwrap())])
}

#[test]
fn a_pulled_model_is_requantized_with_the_stores_template_and_locked_by_digest() {
    let p = Project::new();
    let store = p.path().join("ollama-store");
    let gguf = chatml_gguf(3);
    let hex = fake_store(&store, &gguf);
    p.write(
        "tinylm.toml",
        &manifest("source.ollama = \"tiny:1b\"\nquants = [\"q8_0\"]"),
    );
    let out = run(&p, &store, &["--json", "build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let q8 = GgufFile::open(p.path().join("dist/m/m-q8_0.gguf")).unwrap();
    assert_eq!(q8.get_u64("general.file_type").unwrap(), 7);
    let mf = std::fs::read_to_string(p.path().join("dist/m/m-q8_0.Modelfile")).unwrap();
    assert!(mf.starts_with("FROM ./m-q8_0.gguf"), "{mf}");
    for want in [
        "TEMPLATE \"\"\"<|im_start|>user",
        "SYSTEM You are tiny.",
        "PARAMETER stop <|im_end|>",
        "PARAMETER temperature 0.5",
        "PARAMETER num_ctx 1024",
        "LICENSE MIT",
    ] {
        assert!(mf.contains(want), "missing {want:?} in\n{mf}");
    }
    let lock = std::fs::read_to_string(p.path().join("tinylm.lock")).unwrap();
    assert!(
        lock.contains(&format!("path = \"ollama://tiny:1b@sha256:{hex}\"")),
        "{lock}"
    );
    assert!(!lock.contains("ollama-store"), "{lock}");

    // Nothing changed: nothing runs, nothing is rehashed.
    let again = run(&p, &store, &["--json", "build"]);
    let r: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(support::count(&r, "run"), 0, "{r}");
    assert_eq!(support::count(&r, "hashed_files"), 0, "{r}");

    // The manifest's own settings win over the store's; the rest still comes from the store.
    p.write(
        "tinylm.toml",
        &manifest(
            "source.ollama = \"tiny:1b\"\nquants = [\"q8_0\"]\ntemplate = \"t\"\n\n\
             [templates.t]\nsystem = \"Mine.\"",
        ),
    );
    let out = run(&p, &store, &["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mf = std::fs::read_to_string(p.path().join("dist/m/m-q8_0.Modelfile")).unwrap();
    assert!(
        mf.contains("SYSTEM Mine.") && !mf.contains("You are tiny"),
        "{mf}"
    );
    assert!(mf.contains("PARAMETER stop <|im_end|>"), "{mf}");

    // Pulled again with new weights: --locked fails, naming both digests.
    let new = chatml_gguf(4);
    let new_hex = fake_store(&store, &new);
    let out = run(&p, &store, &["build", "--locked"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&hex) && err.contains(&new_hex), "{err}");
}

#[test]
fn a_pulled_model_without_quants_is_used_as_is() {
    let p = Project::new();
    let store = p.path().join("store");
    let gguf = chatml_gguf(5);
    fake_store(&store, &gguf);
    p.write("tinylm.toml", &manifest("source.ollama = \"tiny:1b\""));
    let out = run(&p, &store, &["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(p.path().join("dist/m/m.gguf")).unwrap(), gguf);
    let mf = std::fs::read_to_string(p.path().join("dist/m/m.Modelfile")).unwrap();
    assert!(mf.contains("SYSTEM You are tiny."), "{mf}");

    // A store that keeps the manifest under manifests-v2/ only (newer Ollama releases).
    std::fs::rename(store.join("manifests"), store.join("manifests-v2")).unwrap();
    let out = run(&p, &store, &["build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn missing_models_and_bad_names_get_clear_errors() {
    let p = Project::new();
    let store = p.path().join("store");
    fake_store(&store, &chatml_gguf(6));

    p.write("tinylm.toml", &manifest("source.ollama = \"tiny:1c\""));
    let out = run(&p, &store, &["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not in the Ollama store") && err.contains("did you mean `tiny:1b`"),
        "{err}"
    );
    assert!(err.contains("ollama pull tiny:1c"), "{err}");

    // A blob that is gone.
    for e in std::fs::read_dir(store.join("blobs")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    p.write("tinylm.toml", &manifest("source.ollama = \"tiny:1b\""));
    let out = run(&p, &store, &["build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (src, want) in [
        ("source.ollama = \"bad name!\"", "invalid Ollama model name"),
        (
            "source.ollama = \"tiny:1b\"\nouttype = \"f16\"",
            "`outtype` only applies",
        ),
        ("source.olama = \"tiny:1b\"", "did you mean `ollama`"),
    ] {
        p.write("tinylm.toml", &manifest(src));
        let out = run(&p, &store, &["build"]);
        assert_eq!(out.status.code(), Some(2), "{src}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{src}: {err}");
    }
}
