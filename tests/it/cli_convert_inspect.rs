//! `tinylm convert` and `tinylm inspect` as a user runs them.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::support;

fn fixtures() -> PathBuf {
    support::fixture("")
}

fn tinylm(args: &[&str]) -> Output {
    Command::new(support::bin()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn convert_to_hf_with_side_files_found_next_to_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny-llama");
    let ckpt = fixtures().join("tinylm-llama3/last.ckpt");
    let o = tinylm(&[
        "convert",
        ckpt.to_str().unwrap(),
        "--to",
        "hf",
        "-o",
        out.to_str().unwrap(),
        "--dtype",
        "f16",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["tensors"], 28);
    assert_eq!(report["dtype"], "f16");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"dtype\": \"float16\""), "{config}");
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
}

#[test]
fn convert_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = fixtures().join("tinylm-gpt2/last.ckpt");
    let out = dir.path().join("x");
    // `--to gguf` writes a file: an existing directory as output is a usage error.
    std::fs::create_dir(&out).unwrap();
    let o = tinylm(&[
        "convert",
        ckpt.to_str().unwrap(),
        "--to",
        "gguf",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("is a directory"));
    std::fs::remove_dir(&out).unwrap();
    // No model.yaml next to a checkpoint elsewhere: --config is required.
    let lone = dir.path().join("last.ckpt");
    std::fs::copy(&ckpt, &lone).unwrap();
    let o = tinylm(&[
        "convert",
        lone.to_str().unwrap(),
        "--to",
        "hf",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--config is required"),
        "{}",
        text(&o.stderr)
    );
    let o = tinylm(&[
        "convert",
        ckpt.to_str().unwrap(),
        "--to",
        "hf",
        "-o",
        out.to_str().unwrap(),
        "--arch",
        "llama3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("--arch llama3 was given"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn inspect_checkpoint_safetensors_and_tokenizer() {
    let ckpt = fixtures().join("tinylm-gpt2/last.ckpt");
    let o = tinylm(&["inspect", ckpt.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("134528 parameters"), "{s}");
    assert!(s.contains("tiny-lm architecture: gpt2"), "{s}");
    assert!(s.contains("model.pos_emb.pos_emb.weight"), "{s}");

    let o = tinylm(&["inspect", "--json", ckpt.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["kind"], "torch");
    assert_eq!(j["tensors"].as_array().unwrap().len(), 33);
    assert_eq!(j["tensors"][0]["shape"], serde_json::json!([512, 64]));
    assert_eq!(j["top_level"]["global_step"], "4");

    let tok = fixtures().join("tinylm-llama3/tokenizer.pkl");
    let o = tinylm(&["inspect", "--json", tok.to_str().unwrap()]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["n_vocab"], 768);
    assert_eq!(j["special_tokens"]["<bos>"], 766);
    assert_eq!(j["merges"], 508);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hf");
    let o = tinylm(&[
        "convert",
        ckpt.to_str().unwrap(),
        "--to",
        "hf",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success());
    let st = out.join("model.safetensors");
    let o = tinylm(&["inspect", st.to_str().unwrap()]);
    let s = text(&o.stdout);
    // 134528 tiny-lm parameters + the zero c_attn biases HF GPT-2 needs (2 x 192).
    assert!(s.contains("28 tensors, 134912 parameters"), "{s}");
    assert!(
        s.contains("transformer.h.0.attn.c_attn.weight  f32   [64, 192]"),
        "{s}"
    );
}

#[test]
fn inspect_rejects_unknown_and_hostile_files() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"just some text").unwrap();
    let o = tinylm(&["inspect", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("unrecognized file"));
    let evil = dir.path().join("tokenizer.pkl");
    std::fs::write(&evil, b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.").unwrap();
    let o = tinylm(&["inspect", evil.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("refusing to load"),
        "{}",
        text(&o.stderr)
    );
    let legacy = fixtures().join("pytorch/legacy.pt");
    let o = tinylm(&["inspect", legacy.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("re-save"), "{}", text(&o.stderr));
}

#[test]
fn convert_to_gguf_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = fixtures().join("tinylm-llama3/last.ckpt");
    let out = dir.path().join("tiny.gguf");
    let o = tinylm(&[
        "--json",
        "convert",
        ckpt.to_str().unwrap(),
        "--to",
        "gguf",
        "--outtype",
        "q8_0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["arch"], "llama");
    assert_eq!(report["outtype"], "q8_0");
    assert_eq!(report["pre"], "llama-bpe");
    assert_eq!(
        report["bytes"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );
    let o = tinylm(&["--json", "inspect", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["format"], "gguf");
    assert_eq!(j["metadata"]["general.architecture"], "llama");
    assert_eq!(j["metadata"]["general.file_type"], 7);
    assert!(j["tensor_types"]["q8_0"].as_u64().unwrap() > 0);
    let o = tinylm(&["inspect", out.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("tokenizer.ggml.pre"));
}
