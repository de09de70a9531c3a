//! Helpers shared by the integration tests: repository paths, the binary under test, temp
//! projects that drive it, small real GGUFs, hashes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use tinylm::formats::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};

/// Path of the binary under test: `TINYLM_TEST_BIN` if set (to show that a test fails on an
/// older build), else the one cargo built.
pub fn bin() -> PathBuf {
    std::env::var_os("TINYLM_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tinylm")))
}

/// `tests/fixtures/<rel>` in the repository.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// `tests/golden/<rel>` in the repository.
pub fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(rel)
}

/// The inputs of a tiny-lm run laid out like the fixtures: `last.ckpt`, `model.yaml`,
/// `tokenizer.pkl`, `tokenizer.yaml` in `dir`.
pub fn tinylm_inputs(dir: &Path) -> tinylm::convert::tinylm_to_hf::TinyLmInputs {
    tinylm::convert::tinylm_to_hf::TinyLmInputs {
        checkpoint: dir.join("last.ckpt"),
        config: dir.join("model.yaml"),
        tokenizer: dir.join("tokenizer.pkl"),
        tokenizer_config: Some(dir.join("tokenizer.yaml")),
        arch: None,
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A temp project directory.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        backdate(&p);
    }

    /// Runs tinylm in the project with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(bin());
        cmd.current_dir(self.path())
            .args(args)
            .env_remove("TINYLM_CACHE")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `tinylm --json build <args>`, asserting success; returns the parsed report.
    pub fn build(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json", "build"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "build failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every file under `rel` with its bytes, sorted by relative path.
    pub fn tree(&self, rel: &str) -> Vec<(String, Vec<u8>)> {
        let root = self.path().join(rel);
        let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(&root)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                (
                    e.path()
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }
}

/// Sets a file's mtime a minute in the past, like a file checked out earlier. Files modified
/// within the stat cache's racy window are (correctly) rehashed on the next build; tests that
/// assert "nothing is rehashed" model inputs that were not written in the last second.
pub fn backdate(p: &Path) {
    let t = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A small but real GGUF (a 2-layer llama-shaped header and F16/F32 tensors).
pub fn tiny_gguf(seed: u8) -> Vec<u8> {
    gguf_with_vocab(seed, &Vocab::default())
}

/// The vocabulary of a test GGUF.
pub struct Vocab {
    pub tokens: Vec<&'static str>,
    pub types: Vec<i32>,
    pub merges: Vec<&'static str>,
    pub eos: Option<u32>,
    pub chat_template: Option<&'static str>,
}

impl Default for Vocab {
    fn default() -> Self {
        Vocab {
            tokens: vec!["<s>", "</s>", "a", "b", "ab"],
            types: vec![3, 3, 1, 1, 1],
            merges: vec!["a b"],
            eos: Some(1),
            chat_template: None,
        }
    }
}

/// A GGUF with the given vocabulary (token_embd rows = vocab size).
pub fn gguf_with_vocab(seed: u8, v: &Vocab) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("general.name", Value::str("Tiny"));
    w.add_kv("llama.block_count", Value::U32(2));
    w.add_kv("general.file_type", Value::U32(1));
    w.add_kv("tokenizer.ggml.model", Value::str("gpt2"));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(&v.tokens)),
    );
    w.add_kv(
        "tokenizer.ggml.token_type",
        Value::Array(Array::I32(v.types.clone())),
    );
    if !v.merges.is_empty() {
        w.add_kv(
            "tokenizer.ggml.merges",
            Value::Array(Array::strings(&v.merges)),
        );
    }
    w.add_kv("tokenizer.ggml.bos_token_id", Value::U32(0));
    if let Some(e) = v.eos {
        w.add_kv("tokenizer.ggml.eos_token_id", Value::U32(e));
    }
    if let Some(t) = v.chat_template {
        w.add_kv("tokenizer.chat_template", Value::str(t));
    }
    let rows = v.tokens.len() as u64;
    w.add_tensor(TensorSpec {
        name: "token_embd.weight".into(),
        ne: vec![64, rows],
        ggml_type: GgmlType::F16,
    })
    .unwrap();
    w.add_tensor(TensorSpec {
        name: "output_norm.weight".into(),
        ne: vec![64],
        ggml_type: GgmlType::F32,
    })
    .unwrap();
    let mut out = Vec::new();
    w.write(&mut out, |i, t, o| {
        // Deterministic finite values in [-1, 1), different per seed and tensor.
        let n: u64 = t.ne.iter().product();
        let vals = (0..n)
            .map(|k| ((k * 37 + u64::from(seed) * 11 + i as u64 * 5) % 200) as f32 / 100.0 - 1.0);
        let bytes: Vec<u8> = match t.ggml_type {
            GgmlType::F16 => vals
                .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
            _ => vals.flat_map(f32::to_le_bytes).collect(),
        };
        o.write_all(&bytes).map_err(|e| tinylm::Error::io("mem", e))
    })
    .unwrap();
    out
}

pub fn write_gguf(p: &Project, rel: &str, seed: u8) {
    let path = p.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, tiny_gguf(seed)).unwrap();
    backdate(&path);
}

/// The demo project used by most engine tests: two models, a template, a release.
pub fn demo() -> Project {
    let p = Project::new();
    write_gguf(&p, "models/a.gguf", 1);
    write_gguf(&p, "models/b.gguf", 2);
    p.write(
        "tinylm.toml",
        r#"[project]
name = "demo"
version = "1.0.0"

[templates.chat]
template = "{{ .System }} {{ .Prompt }}"
system = "You are helpful."
parameters = { temperature = 0.7, stop = ["</s>"] }

[templates.plain]
template = "{{ .Prompt }}"

[models.a]
source.gguf = "models/a.gguf"
template = "chat"

[models.b]
source.gguf = "models/b.gguf"
template = "plain"

[releases.v1]
models = ["a", "b"]
"#,
    );
    p
}

pub fn count(report: &serde_json::Value, field: &str) -> u64 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{field}` in {report}"))
}

/// Ids of actions with the given status.
pub fn ids_with(report: &serde_json::Value, status: &str) -> Vec<String> {
    let mut v: Vec<String> = report["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == status)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Runs tinylm in `p` with `args` and `env`, killing it after `secs` seconds; returns its
/// output, or `None` if it had to be killed (it hung).
pub fn run_with_timeout(
    p: &Project,
    args: &[&str],
    env: &[(&str, &str)],
    secs: u64,
) -> Option<Output> {
    use std::process::Stdio;
    let mut cmd = Command::new(bin());
    cmd.current_dir(p.path())
        .args(args)
        .env_remove("TINYLM_CACHE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Read both pipes while waiting, so a chatty child cannot block on a full pipe.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().unwrap());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(out) => Some(out),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let _ = rx.recv();
            None
        }
    }
}

/// Asserts that `out` is not a panic (exit 101, "panicked at") and returns its stderr.
pub fn assert_no_panic(out: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(out.status.code(), Some(101), "{what} panicked:\n{err}");
    assert!(!err.contains("panicked at"), "{what} panicked:\n{err}");
    err
}

/// CRC-32 (IEEE), as zip entries carry it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A stored (uncompressed) zip archive, laid out as `torch.save` writes one.
pub fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let len = (data.len() as u32).to_le_bytes();
        let name_len = (name.len() as u16).to_le_bytes();
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&len);
        out.extend_from_slice(&len);
        out.extend_from_slice(&name_len);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&len);
        central.extend_from_slice(&len);
        central.extend_from_slice(&name_len);
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
