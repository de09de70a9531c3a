//! Issue 11: hostile and malformed inputs a user or an attacker hands to the real binary get a
//! clear error (exit 1 or 2), never a panic, a hang or an allocation the size of a lie.

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

/// Runs tinylm in `dir`, failing the test (instead of hanging it) if it runs over 60 s.
fn tinylm_deadline(dir: &Path, args: &[&str]) -> Output {
    use std::time::{Duration, Instant};
    let mut child = Command::new(support::bin())
        .current_dir(dir)
        .args(args)
        .env_remove("TINYLM_CACHE")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("`tinylm {}` hung (killed after 60 s)", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// A copy of the tiny-lm GPT-2 fixture inputs in `dir` with `replace` (one of the file names)
/// swapped for a FIFO or a symlink to a device.
fn tinylm_run_with(dir: &Path, replace: &str, with: &str) {
    let src = support::fixture("tinylm-gpt2");
    for f in ["last.ckpt", "model.yaml", "tokenizer.pkl", "tokenizer.yaml"] {
        let to = dir.join(f);
        if f == replace {
            if with == "fifo" {
                mkfifo(&to);
            } else {
                std::os::unix::fs::symlink(with, &to).unwrap();
            }
        } else {
            std::fs::copy(src.join(f), &to).unwrap();
        }
    }
}

#[test]
fn fifos_and_devices_as_inputs_are_refused_not_read() {
    for replace in ["last.ckpt", "model.yaml", "tokenizer.pkl", "tokenizer.yaml"] {
        for with in ["fifo", "/dev/zero"] {
            let dir = tempfile::tempdir().unwrap();
            tinylm_run_with(dir.path(), replace, with);
            let kind = if with == "fifo" {
                "named pipe (FIFO)"
            } else {
                "character device"
            };
            let o = tinylm_deadline(
                dir.path(),
                &["convert", "last.ckpt", "--to", "hf", "-o", "out"],
            );
            assert_fails(&o, 1, &[replace, kind, "not a regular file"]);
            // inspect and quantize read their input directly.
            let o = tinylm_deadline(dir.path(), &["inspect", replace]);
            assert_fails(&o, 1, &[replace, kind]);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    mkfifo(&dir.path().join("in.gguf"));
    let o = tinylm_deadline(dir.path(), &["quantize", "in.gguf", "out.gguf", "q8_0"]);
    assert_fails(&o, 1, &["in.gguf", "named pipe"]);
    let o = tinylm_deadline(dir.path(), &["template", "detect", "in.gguf"]);
    assert_fails(&o, 1, &["in.gguf", "named pipe"]);
    let o = tinylm_deadline(dir.path(), &["inspect", "/dev/zero"]);
    assert_fails(&o, 1, &["/dev/zero", "character device"]);
}

#[test]
fn manifest_sources_and_templates_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    tinylm_run_with(dir.path(), "last.ckpt", "fifo");
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("chat.tmpl")).unwrap();
    std::fs::write(
        dir.path().join("tinylm.toml"),
        "[project]\nname = \"t\"\nversion = \"1\"\n\n\
         [templates.chat]\nfile = \"chat.tmpl\"\n\n\
         [models.m]\ntemplate = \"chat\"\n\
         source.tinylm = { checkpoint = \"last.ckpt\", config = \"model.yaml\", tokenizer = \"tokenizer.pkl\" }\n",
    )
    .unwrap();
    for cmd in ["build", "lint"] {
        let o = tinylm_deadline(dir.path(), &[cmd]);
        assert_fails(
            &o,
            2,
            &[
                "tinylm.toml:",
                "checkpoint `last.ckpt` is a named pipe (FIFO), not a regular file",
                "chat.tmpl",
                "character device",
            ],
        );
    }
    // The manifest itself.
    mkfifo(&dir.path().join("fifo.toml"));
    let o = tinylm_deadline(dir.path(), &["--manifest", "fifo.toml", "build"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("named pipe"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn modelfile_and_hf_folder_files_must_be_regular() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.gguf"), support::tiny_gguf(1)).unwrap();
    mkfifo(&dir.path().join("Modelfile"));
    let o = tinylm_deadline(dir.path(), &["lint", "m.gguf", "--modelfile", "Modelfile"]);
    assert_fails(&o, 1, &["Modelfile", "named pipe"]);
    // An HF folder whose tokenizer.json is a FIFO.
    let hf = dir.path().join("hf");
    std::fs::create_dir(&hf).unwrap();
    std::fs::write(hf.join("config.json"), "{}").unwrap();
    mkfifo(&hf.join("tokenizer.json"));
    let o = tinylm_deadline(
        dir.path(),
        &["convert", "hf", "--to", "gguf", "-o", "x.gguf"],
    );
    assert_fails(&o, 1, &["tokenizer.json", "named pipe"]);
}

/// `tinylm convert --to hf` of the tiny-lm fixture `arch` into `dir/hf`.
fn hf_export(dir: &Path, arch: &str) -> std::path::PathBuf {
    let ckpt = support::fixture(&format!("tinylm-{arch}/last.ckpt"));
    let out = dir.join("hf");
    let o = tinylm_in(
        dir,
        &["convert", ckpt.to_str().unwrap(), "--to", "hf", "-o", "hf"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    out
}

/// Rewrites `hf/model.safetensors` keeping the tensors `keep` accepts.
fn drop_tensors(hf: &Path, keep: impl Fn(&str) -> bool) {
    let path = hf.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView<'_>)> =
        st.tensors().into_iter().filter(|(n, _)| keep(n)).collect();
    let out = safetensors::serialize(kept, None).unwrap();
    std::fs::write(&path, out).unwrap();
}

/// Edits `hf/config.json` with `edit`.
fn edit_config(hf: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = hf.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// `tinylm convert hf --to gguf`: asserts exit 1, the needles, and no output file.
#[track_caller]
fn assert_gguf_refused(dir: &Path, needles: &[&str]) {
    let o = tinylm_in(dir, &["convert", "hf", "--to", "gguf", "-o", "out.gguf"]);
    assert_fails(&o, 1, needles);
    assert!(!dir.join("out.gguf").exists(), "partial output left behind");
}

#[test]
fn hf_folder_missing_a_tensor_is_refused() {
    let cases: [(&str, &str, &str); 3] = [
        ("gpt2", "h.1.mlp.c_proj.bias", "blk.1.ffn_down.bias"),
        ("gpt2", "wpe.weight", "position_embd.weight"),
        (
            "llama3",
            "model.layers.1.mlp.down_proj.weight",
            "blk.1.ffn_down.weight",
        ),
    ];
    for (arch, drop, gguf) in cases {
        let dir = tempfile::tempdir().unwrap();
        let hf = hf_export(dir.path(), arch);
        // Without the edit the folder converts: the check accepts complete models.
        let o = tinylm_in(
            dir.path(),
            &["convert", "hf", "--to", "gguf", "-o", "ok.gguf"],
        );
        assert!(o.status.success(), "{}", text(&o.stderr));
        drop_tensors(&hf, |n| !n.ends_with(drop));
        assert_gguf_refused(dir.path(), &[drop, gguf, "missing"]);
    }
}

#[test]
fn inconsistent_gpt2_hparams_are_refused_naming_the_key() {
    type Edit = fn(&mut serde_json::Map<String, serde_json::Value>);
    let cases: [(Edit, &[&str]); 5] = [
        (
            |c| drop(c.insert("n_head".into(), 0.into())),
            &["n_head is 0"],
        ),
        (
            |c| drop(c.insert("n_head".into(), 3.into())),
            &["n_head = 3 does not divide n_embd = 64"],
        ),
        (
            |c| drop(c.insert("n_layer".into(), 3.into())),
            &["h.2.", "missing", "n_layer = 3"],
        ),
        (
            |c| drop(c.insert("n_layer".into(), 1.into())),
            &["h.1.", "block 1", "n_layer = 1"],
        ),
        (
            |c| drop(c.insert("n_ctx".into(), 64.into())),
            &["wpe.weight", "has shape [32, 64]", "[64, 64]"],
        ),
    ];
    for (edit, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let hf = hf_export(dir.path(), "gpt2");
        edit_config(&hf, edit);
        assert_gguf_refused(dir.path(), needles);
    }
}

#[test]
fn inconsistent_llama_and_qwen_hparams_are_refused_naming_the_key() {
    type Edit = fn(&mut serde_json::Map<String, serde_json::Value>);
    let cases: [(Edit, &[&str]); 6] = [
        (
            |c| drop(c.insert("head_dim".into(), 0.into())),
            &["head_dim is 0"],
        ),
        (
            |c| drop(c.insert("num_key_value_heads".into(), 8.into())),
            &["num_key_value_heads = 8", "num_attention_heads = 4"],
        ),
        (
            |c| drop(c.insert("rope_theta".into(), (-10000.0).into())),
            &["rope_theta must be a positive number"],
        ),
        (
            |c| drop(c.insert("intermediate_size".into(), 128.into())),
            &["mlp.", "has shape", "intermediate_size = 128"],
        ),
        // Same tensor names as Llama: Qwen2 converts, Qwen3 needs its q/k norms.
        (
            |c| {
                c.insert(
                    "architectures".into(),
                    serde_json::json!(["Qwen3ForCausalLM"]),
                );
                c.insert("model_type".into(), "qwen3".into());
            },
            &["model.layers.0.self_attn.q_norm.weight", "missing", "qwen3"],
        ),
        (
            |c| drop(c.insert("num_attention_heads".into(), 0.into())),
            &["num_attention_heads is 0"],
        ),
    ];
    for (edit, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        let hf = hf_export(dir.path(), "llama3");
        edit_config(&hf, edit);
        assert_gguf_refused(dir.path(), needles);
    }
}

#[test]
fn unknown_pre_tokenizer_names_are_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let f = support::fixture("tinylm-gpt2");
    std::fs::write(
        dir.path().join("tinylm.toml"),
        format!(
            "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\npre = \"llama-bp\"\n\
             source.tinylm = {{ checkpoint = {:?}, config = {:?}, tokenizer = {:?} }}\n",
            f.join("last.ckpt"),
            f.join("model.yaml"),
            f.join("tokenizer.pkl"),
        ),
    )
    .unwrap();
    for cmd in ["build", "lint"] {
        let o = tinylm_in(dir.path(), &[cmd]);
        assert_fails(
            &o,
            2,
            &[
                "tinylm.toml:6:7",
                "unknown pre-tokenizer `llama-bp`",
                "did you mean `llama-bpe`?",
            ],
        );
    }
    let ckpt = f.join("last.ckpt");
    let convert = |pre: &str| {
        tinylm_in(
            dir.path(),
            &[
                "convert",
                ckpt.to_str().unwrap(),
                "--to",
                "gguf",
                "-o",
                "m.gguf",
                "--pre",
                pre,
            ],
        )
    };
    let o = convert("nonsense");
    assert_fails(
        &o,
        2,
        &["--pre", "unknown pre-tokenizer `nonsense`", "llama-bpe"],
    );
    assert!(!dir.path().join("m.gguf").exists());
    let o = convert("qwen2");
    assert!(o.status.success(), "{}", text(&o.stderr));
}

fn binunicode(p: &mut Vec<u8>, s: &str) {
    p.push(b'X');
    p.extend_from_slice(&(s.len() as u32).to_le_bytes());
    p.extend_from_slice(s.as_bytes());
}

/// A 1-element float storage viewed as 100000 x 100000 with strides (0, 0): 40 GB if read.
fn stride0_checkpoint() -> Vec<u8> {
    let mut p = b"\x80\x02}".to_vec();
    binunicode(&mut p, "w");
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    binunicode(&mut p, "storage");
    p.extend_from_slice(b"ctorch\nFloatStorage\n");
    binunicode(&mut p, "0");
    binunicode(&mut p, "cpu");
    p.extend_from_slice(b"K\x01tQK\x00(J");
    p.extend_from_slice(&100_000i32.to_le_bytes());
    p.push(b'J');
    p.extend_from_slice(&100_000i32.to_le_bytes());
    p.extend_from_slice(b"t(K\x00K\x00t\x89ccollections\nOrderedDict\n)RtRs.");
    support::stored_zip(&[
        ("archive/data.pkl", &p),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &[0u8; 4]),
    ])
}

#[test]
fn stride0_views_are_refused_by_inspect_and_convert() {
    let dir = tempfile::tempdir().unwrap();
    tinylm_run_with(dir.path(), "none", "");
    std::fs::write(dir.path().join("last.ckpt"), stride0_checkpoint()).unwrap();
    let o = tinylm_deadline(dir.path(), &["inspect", "last.ckpt"]);
    assert_fails(
        &o,
        1,
        &["last.ckpt", "overlapping", "storage \"0\" holds only 1"],
    );
    let o = tinylm_deadline(
        dir.path(),
        &["convert", "last.ckpt", "--to", "gguf", "-o", "x.gguf"],
    );
    assert_fails(&o, 1, &["last.ckpt", "overlapping"]);
}

#[test]
fn pickle_bombs_of_shared_references_are_refused() {
    // A 1 MiB bytes object referenced 100k times: ~1 MB of pickle, 100 GB if copied.
    let mut p = b"\x80\x02](B".to_vec();
    p.extend_from_slice(&(1u32 << 20).to_le_bytes());
    p.extend(std::iter::repeat_n(b'x', 1 << 20));
    p.extend_from_slice(b"q\x00");
    for _ in 1..100_000 {
        p.extend_from_slice(b"h\x00");
    }
    p.extend_from_slice(b"e.");
    let dir = tempfile::tempdir().unwrap();
    tinylm_run_with(dir.path(), "none", "");
    std::fs::write(dir.path().join("tokenizer.pkl"), &p).unwrap();
    let o = tinylm_deadline(dir.path(), &["inspect", "tokenizer.pkl"]);
    assert_fails(&o, 1, &["tokenizer.pkl", "too many bytes"]);
    let o = tinylm_deadline(
        dir.path(),
        &["convert", "last.ckpt", "--to", "hf", "-o", "hf"],
    );
    assert_fails(&o, 1, &["tokenizer.pkl", "too many bytes"]);
}

#[test]
fn tokenizers_library_panics_become_errors() {
    let dir = tempfile::tempdir().unwrap();
    let hf = hf_export(dir.path(), "gpt2");
    let path = hf.join("tokenizer.json");
    let mut tj: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // The template names a special token its `special_tokens` map lacks: the tokenizers crate
    // indexes the map unchecked (processors/template.rs) and panics on the first encode.
    tj["post_processor"]["special_tokens"] = serde_json::json!({});
    std::fs::write(&path, serde_json::to_vec(&tj).unwrap()).unwrap();
    let o = tinylm_in(
        dir.path(),
        &["convert", "hf", "--to", "gguf", "-o", "out.gguf"],
    );
    assert_fails(
        &o,
        1,
        &[
            "tokenizer.json",
            "the tokenizers library failed",
            "malformed",
        ],
    );
    assert!(!dir.path().join("out.gguf").exists());
}

#[test]
fn exported_tokenizer_config_declares_model_input_names() {
    // Without model_input_names, transformers' tok(text) adds token_type_ids:
    // model(**tok(text)) then gives GPT-2 wrong logits and Llama's generate() raises
    // (scripts/conformance/hf_export.py runs transformers that way).
    let want = serde_json::json!(["input_ids", "attention_mask"]);
    for arch in ["gpt2", "llama3"] {
        let dir = tempfile::tempdir().unwrap();
        let hf = hf_export(dir.path(), arch);
        let tc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(hf.join("tokenizer_config.json")).unwrap())
                .unwrap();
        assert_eq!(tc["model_input_names"], want, "{arch}: {tc}");
    }
    // The manifest's export_hf output too.
    let f = support::fixture("tinylm-gpt2");
    let p = support::Project::new();
    p.write(
        "tinylm.toml",
        &format!(
            "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\nexport_hf = true\n\
             source.tinylm = {{ checkpoint = {:?}, config = {:?}, tokenizer = {:?} }}\n",
            f.join("last.ckpt"),
            f.join("model.yaml"),
            f.join("tokenizer.pkl"),
        ),
    );
    p.build(&["m"]);
    let found: Vec<std::path::PathBuf> = walkdir::WalkDir::new(p.path().join("dist"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "tokenizer_config.json")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let tc: serde_json::Value = serde_json::from_slice(&std::fs::read(&found[0]).unwrap()).unwrap();
    assert_eq!(tc["model_input_names"], want);
}
