//! The remote cache on an object store (`s3://`), against moto's real S3-compatible server:
//! the same scenarios as over HTTP, plus a blob large enough for a multipart upload.

use std::path::Path;

use crate::servers::{Moto, assert_cache_clean, build, demo_copy, http, lines_with, tree};
use tinylm::formats::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};

fn n(v: &serde_json::Value, path: &str) -> u64 {
    let mut cur = v;
    for p in path.split('.') {
        cur = &cur[p];
    }
    cur.as_u64().unwrap_or_else(|| panic!("no `{path}` in {v}"))
}

/// Adds a model whose GGUF is 12 MiB, so its upload is multipart (8 MiB parts).
fn add_big_model(dir: &Path) {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("general.name", Value::str("Big"));
    w.add_kv("llama.block_count", Value::U32(1));
    w.add_kv("tokenizer.ggml.model", Value::str("gpt2"));
    let tokens = ["<s>", "</s>", "a", "b", "ab"];
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(tokens)),
    );
    w.add_kv(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(vec![3, 3, 1, 1, 1])),
    );
    w.add_kv(
        "tokenizer.ggml.merges",
        Value::Array(Array::strings(["a b"])),
    );
    w.add_kv("tokenizer.ggml.bos_token_id", Value::U32(0));
    w.add_kv("tokenizer.ggml.eos_token_id", Value::U32(1));
    w.add_tensor(TensorSpec {
        name: "token_embd.weight".into(),
        ne: vec![64, 5],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    w.add_tensor(TensorSpec {
        name: "blk.0.ffn_up.weight".into(),
        ne: vec![1024, 3 * 1024],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    let mut bytes = Vec::new();
    w.write(&mut bytes, |_, t, o| {
        let n: u64 = t.ne.iter().product();
        let data: Vec<u8> = (0..n)
            .flat_map(|k| (((k * 2654435761) % 1000) as f32 / 1000.0).to_le_bytes())
            .collect();
        o.write_all(&data).map_err(|e| tinylm::Error::io("mem", e))
    })
    .unwrap();
    assert!(bytes.len() > 12 << 20);
    let path = dir.join("big.gguf");
    std::fs::write(&path, bytes).unwrap();
    crate::support::backdate(&path);
    let m = std::fs::read_to_string(dir.join("tinylm.toml")).unwrap();
    let m = m.replace(
        "[releases.demo]",
        "[models.big]\nsource.gguf = \"big.gguf\"\nquants = []\ntemplate = \"completion\"\n\n[releases.demo]",
    );
    std::fs::write(dir.join("tinylm.toml"), m).unwrap();
}

#[test]
fn s3_machine_b_restores_everything_corrupt_blobs_are_rebuilt_and_a_dead_store_is_one_warning() {
    let Some(mut moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("tinylm-ci");
    let url = "s3://tinylm-ci/team/cache";
    let env = moto.env();
    let (a, b, c, d) = (demo_copy(), demo_copy(), demo_copy(), demo_copy());
    for p in [&a, &b, &c, &d] {
        add_big_model(p.path());
    }
    let caches = tempfile::tempdir().unwrap();
    let cache = |x: &str| caches.path().join(x);

    let (ra, err) = build(
        a.path(),
        &cache("a"),
        &env,
        &["--remote-cache", url, "--remote-upload"],
    );
    let actions = n(&ra, "actions");
    assert_eq!(n(&ra, "run"), actions);
    assert!(n(&ra, "remote.uploaded_bytes") > 12 << 20, "{err}");
    assert_eq!(lines_with(&err, "is unavailable"), 0, "{err}");

    let (rb, err) = build(b.path(), &cache("b"), &env, &["--remote-cache", url]);
    assert_eq!(
        (n(&rb, "run"), n(&rb, "remote.hits")),
        (0, actions),
        "{err}"
    );
    assert_eq!(tree(&a.path().join("dist")), tree(&b.path().join("dist")));
    assert_cache_clean(&cache("b"));

    // Overwrite the big GGUF's blob on the store with same-size garbage.
    let big = std::fs::read(a.path().join("big.gguf")).unwrap();
    let sha: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&big)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let key = format!("/tinylm-ci/team/cache/cas/{sha}");
    let (status, body) = http(moto.port, "GET", &key, b"");
    assert_eq!(
        (status, body.len()),
        (200, big.len()),
        "the blob is where the layout says"
    );
    let mut bad = big.clone();
    bad[1000] ^= 1;
    assert_eq!(http(moto.port, "PUT", &key, &bad).0, 200);
    let (rc, err) = build(
        c.path(),
        &cache("c"),
        &env,
        &["--remote-cache", url, "--remote-upload"],
    );
    assert!(n(&rc, "run") >= 1, "{err}");
    assert!(
        err.contains("corrupt on the server") && err.contains(&sha),
        "{err}"
    );
    assert_eq!(tree(&a.path().join("dist")), tree(&c.path().join("dist")));
    assert_cache_clean(&cache("c"));
    // C repaired it.
    assert_eq!(http(moto.port, "GET", &key, b"").1, big);

    // The store goes away: one warning, a local build, the same bytes.
    moto.stop();
    let (rd, err) = build(
        d.path(),
        &cache("d"),
        &env,
        &["--remote-cache", url, "--remote-upload"],
    );
    assert_eq!(n(&rd, "run"), actions);
    assert_eq!(lines_with(&err, "is unavailable"), 1, "{err}");
    assert!(err.contains(url));
    assert_eq!(tree(&a.path().join("dist")), tree(&d.path().join("dist")));
}
