//! Installs into a temporary Ollama store: manifest JSON shape, every digest = sha256 of its
//! blob, sizes exact, params JSON typed, a second install writes nothing, uninstall keeps shared
//! blobs; and LM Studio's layout.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tinylm::formats::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};
use tinylm::install::{lmstudio, ollama};
use tinylm::template::families::builtin;
use tinylm::template::modelfile::Modelfile;
use tinylm::template::params::ParamValue;

fn tiny_gguf(dir: &Path, name: &str, seed: u8) -> PathBuf {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("general.file_type", Value::U32(7));
    w.add_kv("tokenizer.ggml.model", Value::str("gpt2"));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(["a", "b", "<|im_end|>"])),
    );
    w.add_tensor(TensorSpec {
        name: "token_embd.weight".into(),
        ne: vec![4, 3],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    w.write(&mut f, |_, spec, out| {
        out.write_all(&vec![seed; spec.nbytes() as usize])
            .map_err(|e| tinylm::Error::Build(e.to_string()))
    })
    .unwrap();
    path
}

fn modelfile() -> Modelfile {
    let t = builtin("chatml").unwrap();
    let mut mf = Modelfile::new("./ignored.gguf");
    mf.template = Some(t.template);
    mf.system = Some("Be brief & <polite>.".into());
    mf.parameters = vec![
        ("num_ctx".into(), ParamValue::Int(2048)),
        (
            "stop".into(),
            ParamValue::List(vec!["<|im_start|>".into(), "<|im_end|>".into()]),
        ),
        ("temperature".into(), ParamValue::Float(0.7)),
        ("use_mmap".into(), ParamValue::Bool(true)),
    ];
    mf.licenses = vec!["MIT".into()];
    mf.messages = vec![
        ("user".into(), "hi".into()),
        ("assistant".into(), "hello".into()),
    ];
    mf
}

fn sha(path: &Path) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(std::fs::read(path).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

fn blobs(store: &ollama::OllamaStore) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn store_layout_digests_sizes_and_types() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(tmp.path(), "m.gguf", 1);
    let store = ollama::OllamaStore::at(tmp.path().join("models"));
    let r = ollama::install(&store, &gguf, &modelfile(), "tinylm/tiny:q8_0").unwrap();
    assert_eq!(
        r.manifest,
        store
            .root
            .join("manifests/registry.ollama.ai/tinylm/tiny/q8_0")
    );
    let bytes = std::fs::read(&r.manifest).unwrap();
    assert!(bytes.ends_with(b"]}\n"));
    assert_eq!(r.manifest_digest, sha(&r.manifest));
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], ollama::MEDIA_MANIFEST);
    assert_eq!(m["config"]["mediaType"], ollama::MEDIA_CONFIG);
    let media: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        media,
        [
            ollama::MEDIA_MODEL,
            ollama::MEDIA_TEMPLATE,
            ollama::MEDIA_SYSTEM,
            ollama::MEDIA_LICENSE,
            ollama::MEDIA_PARAMS,
            ollama::MEDIA_MESSAGES
        ]
    );
    // Every digest is the sha256 of its blob, every size exact.
    for l in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
        let d = l["digest"].as_str().unwrap();
        let p = store.blob_path(d);
        assert_eq!(sha(&p), d, "{}", p.display());
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            l["size"].as_u64().unwrap()
        );
        assert_eq!(
            l.as_object().unwrap().len(),
            3,
            "mediaType, digest, size only"
        );
    }
    let blob = |media: &str| {
        let l = m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["mediaType"] == media)
            .unwrap();
        std::fs::read_to_string(store.blob_path(l["digest"].as_str().unwrap())).unwrap()
    };
    let params: serde_json::Value = serde_json::from_str(&blob(ollama::MEDIA_PARAMS)).unwrap();
    assert!(params["num_ctx"].is_u64());
    assert!(params["temperature"].is_f64());
    assert!(params["use_mmap"].is_boolean());
    assert_eq!(
        params["stop"],
        serde_json::json!(["<|im_start|>", "<|im_end|>"])
    );
    assert_eq!(
        blob(ollama::MEDIA_PARAMS),
        "{\"num_ctx\":2048,\"stop\":[\"\\u003c|im_start|\\u003e\",\"\\u003c|im_end|\\u003e\"],\"temperature\":0.7,\"use_mmap\":true}\n"
    );
    assert_eq!(
        blob(ollama::MEDIA_TEMPLATE),
        builtin("chatml").unwrap().template
    );
    assert_eq!(blob(ollama::MEDIA_SYSTEM), "Be brief & <polite>.");
    assert_eq!(
        blob(ollama::MEDIA_MESSAGES),
        "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]\n"
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(store.blob_path(m["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    assert_eq!(config["model_format"], "gguf");
    assert_eq!(config["model_family"], "llama");
    assert_eq!(config["file_type"], "Q8_0");
    assert_eq!(config["model_type"], "12");
    // The GGUF blob is a hardlink of the source (same filesystem).
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let model = store.blob_path(m["layers"][0]["digest"].as_str().unwrap());
        assert!(r.hardlinked);
        assert_eq!(
            std::fs::metadata(&model).unwrap().ino(),
            std::fs::metadata(&gguf).unwrap().ino()
        );
    }

    // A second install of the unchanged model writes nothing.
    let before: Vec<_> = blobs(&store)
        .iter()
        .map(|b| {
            std::fs::metadata(store.root.join("blobs").join(b))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    let mtime = std::fs::metadata(&r.manifest).unwrap().modified().unwrap();
    let r2 = ollama::install(&store, &gguf, &modelfile(), "tinylm/tiny:q8_0").unwrap();
    assert!(r2.written.is_empty(), "{:?}", r2.written);
    assert_eq!(
        std::fs::metadata(&r.manifest).unwrap().modified().unwrap(),
        mtime
    );
    let after: Vec<_> = blobs(&store)
        .iter()
        .map(|b| {
            std::fs::metadata(store.root.join("blobs").join(b))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    assert_eq!(before, after);
    assert!(
        blobs(&store)
            .iter()
            .all(|b| b.starts_with("sha256-") && b.len() == 71),
        "{:?}",
        blobs(&store)
    );
}

#[test]
fn reinstall_prunes_and_uninstall_keeps_shared_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(tmp.path(), "m.gguf", 2);
    let store = ollama::OllamaStore::at(tmp.path().join("models"));
    let mf = modelfile();
    ollama::install(&store, &gguf, &mf, "a").unwrap();
    ollama::install(&store, &gguf, &mf, "b:v1").unwrap();
    let n = blobs(&store).len();
    assert_eq!(n, 7, "6 layers + config, shared by both names");
    // Changing the system prompt of `a` replaces its system blob; `b` still uses the old one.
    let mut mf2 = mf.clone();
    mf2.system = Some("Different.".into());
    let r = ollama::install(&store, &gguf, &mf2, "a").unwrap();
    assert!(r.pruned.is_empty(), "old system blob still used by b");
    assert_eq!(blobs(&store).len(), 8);
    // Uninstall b: its blobs that `a` does not use go (the old system blob), the rest stay.
    let u = ollama::uninstall(&store, "b:v1").unwrap();
    assert_eq!(u.removed_blobs.len(), 1, "{:?}", u.removed_blobs);
    assert!(
        !store
            .root
            .join("manifests/registry.ollama.ai/library/b")
            .exists()
    );
    assert_eq!(blobs(&store).len(), 7);
    // Uninstall a: everything goes.
    let u = ollama::uninstall(&store, "a").unwrap();
    assert_eq!(u.removed_blobs.len(), 7);
    assert!(blobs(&store).is_empty());
    let e = ollama::uninstall(&store, "a").unwrap_err().to_string();
    assert!(e.contains("no model"), "{e}");
}

#[test]
fn names_are_case_insensitive_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(tmp.path(), "m.gguf", 3);
    let store = ollama::OllamaStore::at(tmp.path().join("models"));
    let r1 = ollama::install(&store, &gguf, &modelfile(), "Tiny").unwrap();
    let r2 = ollama::install(&store, &gguf, &modelfile(), "tiny").unwrap();
    assert_eq!(r1.manifest, r2.manifest);
    assert!(r2.written.is_empty());
}

#[test]
fn bad_inputs_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(tmp.path(), "m.gguf", 4);
    let store = ollama::OllamaStore::at(tmp.path().join("models"));
    let mut mf = modelfile();
    mf.template = Some("{{ if .System }}".into());
    assert!(ollama::install(&store, &gguf, &mf, "x").is_err());
    assert!(!store.root.exists());
    assert!(ollama::install(&store, &gguf, &modelfile(), "bad name").is_err());
    let e = ollama::create_via_cli(&tmp.path().join("missing/Modelfile"), "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn lmstudio_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tiny_gguf(tmp.path(), "tiny-q8_0.gguf", 5);
    let models = tmp.path().join("lms");
    let (p, linked) = lmstudio::install(&models, &gguf, "tinylm", "tiny", None).unwrap();
    assert_eq!(p, models.join("tinylm/tiny-GGUF/tiny-q8_0.gguf"));
    assert!(linked);
    assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&gguf).unwrap());
    let (_, linked) = lmstudio::install(&models, &gguf, "tinylm", "tiny", None).unwrap();
    assert!(!linked, "already there: untouched");
    assert!(lmstudio::install(&models, &gguf, "../x", "tiny", None).is_err());
}
