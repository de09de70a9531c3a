//! Issue 11: hostile and malformed inputs a user or an attacker hands to the real binary get a
//! clear error (exit 1 or 2), never a panic, a hang or an allocation the size of a lie.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use tinylm::formats::gguf::{GgmlType, GgufWriter, TensorSpec, Value};

use crate::support;

fn tinylm_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(support::bin())
        .current_dir(dir)
        .args(args)
        .env_remove("TINYLM_CACHE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts `o` failed with `code` and a message containing every needle, without a panic.
#[track_caller]
fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
}

fn gguf_bytes(w: &GgufWriter) -> Vec<u8> {
    let mut out = Vec::new();
    w.write(&mut out, |_, t, o| {
        o.write_all(&vec![0u8; t.nbytes() as usize])
            .map_err(|e| tinylm::Error::io("mem", e))
    })
    .unwrap();
    out
}

fn replace_once(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + to.len()].copy_from_slice(to);
}

#[test]
fn inspect_reports_duplicate_gguf_tensors_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("dup.key.one", Value::U32(1));
    w.add_kv("dup.key.two", Value::U32(2));
    for name in ["blk.0.a", "blk.0.b"] {
        w.add_tensor(TensorSpec {
            name: name.into(),
            ne: vec![8],
            ggml_type: GgmlType::F32,
        })
        .unwrap();
    }
    let good = gguf_bytes(&w);
    let mut bad_key = good.clone();
    replace_once(&mut bad_key, b"dup.key.two", b"dup.key.one");
    let mut bad_tensor = good;
    replace_once(&mut bad_tensor, b"blk.0.b", b"blk.0.a");
    std::fs::write(dir.path().join("k.gguf"), bad_key).unwrap();
    std::fs::write(dir.path().join("t.gguf"), bad_tensor).unwrap();
    let o = tinylm_in(dir.path(), &["inspect", "k.gguf"]);
    assert_fails(&o, 1, &["k.gguf", "duplicate metadata key 'dup.key.one'"]);
    let o = tinylm_in(dir.path(), &["inspect", "t.gguf"]);
    assert_fails(&o, 1, &["t.gguf", "duplicate tensor name 'blk.0.a'"]);
}
