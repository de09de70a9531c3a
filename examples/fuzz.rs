//! A stable-Rust mutation fuzzer for tinylm's parsers of untrusted input (issue 11).
//!
//! Each target starts from real seed files (the repository's fixtures, or files built here with
//! tinylm's own writers), mutates them (bit flips, interesting integers, inserted/deleted/
//! duplicated chunks, splices between seeds, structural tokens for text formats) and feeds the
//! result to the parser the way tinylm reads user files. A panic is a finding: the input is
//! saved under `fuzz/findings/` and the run fails. Errors are the expected outcome.
//!
//! Inputs are a pure function of (target, seed, execution number), so a finding that kills the
//! process (an abort, out of memory) is reproduced with `--seed S --from N --execs 1`.
//!
//! ```text
//! cargo run --release --example fuzz -- TARGET [--secs N] [--execs N] [--seed S] [--from N]
//! cargo run --release --example fuzz -- list
//! ```
//! `scripts/fuzz.sh` runs every target for a given time.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions, TinyLmInputs};
use tinylm::formats::gguf::{Array, GgmlType, GgufFile, GgufWriter, TensorSpec, Value};

const TARGETS: &[&str] = &[
    "gguf",
    "safetensors",
    "checkpoint",
    "tiktoken",
    "tokenizer-json",
    "manifest",
    "modelfile",
];

/// What one target parses and where its seeds come from.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    /// Text formats also get structural-token mutations.
    text: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> Vec<u8> {
    let p = root().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("seed {}: {e}", p.display()))
}

fn gpt2_inputs() -> TinyLmInputs {
    let d = root().join("tests/fixtures/tinylm-gpt2");
    TinyLmInputs {
        checkpoint: d.join("last.ckpt"),
        config: d.join("model.yaml"),
        tokenizer: d.join("tokenizer.pkl"),
        tokenizer_config: Some(d.join("tokenizer.yaml")),
        arch: None,
    }
}

/// The tiny-lm GPT-2 fixture as an in-memory HF model.
fn gpt2_hf() -> HfModel {
    tinylm_to_hf::export(&gpt2_inputs(), &ExportOptions::default()).expect("export fixture")
}

fn small_gguf() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("llama"));
    w.add_kv("llama.block_count", Value::U32(1));
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(["a", "b", "<s>"])),
    );
    w.add_kv(
        "tokenizer.ggml.scores",
        Value::Array(Array::F32(vec![0.0, -1.0, 0.5])),
    );
    w.add_kv("general.alignment", Value::U32(32));
    for (name, ne, t) in [
        ("token_embd.weight", vec![32, 3], GgmlType::Q8_0),
        ("output_norm.weight", vec![4], GgmlType::F32),
        ("blk.0.attn_q.weight", vec![256, 1], GgmlType::Q4K),
    ] {
        w.add_tensor(TensorSpec {
            name: name.into(),
            ne,
            ggml_type: t,
        })
        .expect("tensor");
    }
    let mut out = Vec::new();
    w.write(&mut out, |_, t, o| {
        o.write_all(&vec![7u8; t.nbytes() as usize])
            .map_err(|e| tinylm::Error::io("mem", e))
    })
    .expect("write");
    out
}

fn converted_gguf(model: &HfModel) -> Vec<u8> {
    let mut out = Vec::new();
    hf_to_gguf::convert(model, &GgufOptions::default(), &mut out).expect("convert fixture");
    out
}

fn small_safetensors() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let f32s: Vec<u8> = (0..12u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let halfs = vec![0x3cu8; 8];
    let ints: Vec<u8> = (0..3i64).flat_map(i64::to_le_bytes).collect();
    let views = vec![
        (
            "a.weight",
            TensorView::new(Dtype::F32, vec![3, 4], &f32s).expect("view"),
        ),
        (
            "b.bias",
            TensorView::new(Dtype::F16, vec![4], &halfs).expect("view"),
        ),
        (
            "c.bf16",
            TensorView::new(Dtype::BF16, vec![2, 2], &halfs).expect("view"),
        ),
        (
            "d.ids",
            TensorView::new(Dtype::I64, vec![3], &ints).expect("view"),
        ),
    ];
    safetensors::serialize(views, None).expect("serialize")
}

fn targets(name: &str) -> Target {
    let (seeds, text) = match name {
        "gguf" => (vec![small_gguf(), converted_gguf(&gpt2_hf())], false),
        "safetensors" => (vec![small_safetensors()], false),
        "checkpoint" => (
            vec![
                read("tests/fixtures/pytorch/mixed-p2.pt"),
                read("tests/fixtures/pytorch/mixed-p4.pt"),
                read("tests/fixtures/pytorch/state-dict.bin"),
                read("tests/fixtures/pytorch/legacy.pt"),
            ],
            false,
        ),
        "tiktoken" => (
            vec![
                read("tests/fixtures/tinylm-gpt2/tokenizer.pkl"),
                read("tests/fixtures/tinylm-llama3/tokenizer.pkl"),
            ],
            false,
        ),
        "tokenizer-json" => (vec![gpt2_hf().files["tokenizer.json"].clone()], true),
        "manifest" => (vec![read("tinylm.toml")], true),
        "modelfile" => {
            let dir = root().join("tests/golden/modelfile");
            let mut v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
                .expect("modelfile goldens")
                .flatten()
                .map(|e| std::fs::read(e.path()).expect("read"))
                .collect();
            v.sort();
            (v, true)
        }
        // Checks the harness itself: panics on any input holding a 0xFF byte, so a run must
        // report findings (`fuzz selftest --secs 2` exits 1).
        "selftest" => (vec![b"hello, fuzzer".to_vec()], false),
        other => panic!("unknown target {other}; targets: {}", TARGETS.join(", ")),
    };
    Target {
        name: TARGETS
            .iter()
            .chain(&["selftest"])
            .find(|t| **t == name)
            .copied()
            .unwrap_or("?"),
        seeds,
        text,
    }
}

/// Runs one input through the target's parser (the way tinylm reads that kind of file).
struct Runner {
    scratch: PathBuf,
    hf: Option<HfModel>,
}

impl Runner {
    fn new(target: &str) -> Runner {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let scratch = base.join(format!("tinylm-fuzz-{}-{target}", std::process::id()));
        Runner {
            scratch,
            hf: (target == "tokenizer-json").then(gpt2_hf),
        }
    }

    fn file(&self, bytes: &[u8]) -> &Path {
        std::fs::write(&self.scratch, bytes).expect("scratch file");
        &self.scratch
    }

    fn run(&self, target: &str, input: &[u8]) {
        match target {
            "gguf" => {
                if let Ok(g) = GgufFile::open(self.file(input)) {
                    let _ = g.describe_text();
                    let _ = g.describe_json();
                    for t in &g.tensors {
                        let _ = g.tensor_data(t);
                    }
                }
            }
            "safetensors" => {
                if let Ok(w) = tinylm::formats::safetensors::read(self.file(input)) {
                    for t in &w.tensors {
                        let _ = t.data.as_bytes().len();
                    }
                }
            }
            "checkpoint" => {
                let p = self.file(input);
                if let Ok(c) = tinylm::formats::pytorch::Checkpoint::open(p) {
                    let _ = c.state_dict();
                }
                let _ = tinylm::inspect::describe(p);
            }
            "tiktoken" => {
                let _ = tinylm::formats::tiktoken::TiktokenEncoding::from_pickle(input);
            }
            "tokenizer-json" => {
                let mut m = self.hf.clone().expect("model");
                m.files.insert("tokenizer.json".into(), input.to_vec());
                let _ = hf_to_gguf::plan(&m, &GgufOptions::default());
            }
            "manifest" => {
                if let Ok(text) = std::str::from_utf8(input)
                    && let Ok(manifest) = tinylm::manifest::parse(Path::new("tinylm.toml"), text)
                {
                    let loaded = tinylm::manifest::Loaded {
                        path: root().join("tinylm.toml"),
                        text: text.to_string(),
                        manifest,
                    };
                    let _ = tinylm::manifest::validate(&loaded);
                }
            }
            "modelfile" => {
                let _ = tinylm::template::modelfile::Modelfile::parse(input);
            }
            "selftest" => assert!(!input.contains(&0xFF), "selftest finding"),
            _ => unreachable!(),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.scratch);
    }
}

/// xorshift64*: inputs must be a pure function of (seed, execution).
struct Rng(u64);

impl Rng {
    fn new(seed: u64, exec: u64) -> Rng {
        let mut r = Rng(seed ^ exec.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    1 << 32,
    1 << 40,
    u64::MAX,
    u64::MAX / 2,
];

const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "=",
    "\\",
    "\n",
    "null",
    "0",
    "-1",
    "1e309",
    "\"\"",
    "[[",
    "]]",
    "\u{0}",
    "\u{feff}",
    "FROM",
    "TEMPLATE",
    "PARAMETER",
    "\"\"\"",
    "{{",
    "}}",
    "#",
    "'",
    "true",
    "99999999999999999999",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut d = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let n = d.len();
        match rng.below(if text { 9 } else { 8 }) {
            0 if n > 0 => {
                let i = rng.below(n);
                d[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n);
                d[i] = [0u8, 0xFF, 0x7F, 0x80, b'0', b' '][rng.below(6)];
            }
            2 if n >= 8 => {
                // An interesting integer, 1/2/4/8 bytes little-endian, where a length or
                // count may be.
                let w = [1usize, 2, 4, 8][rng.below(4)];
                let i = rng.below(n - w + 1);
                let v = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                d[i..i + w].copy_from_slice(&v[..w]);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                let len = 1 + rng.below(16.min(n - i));
                d.drain(i..i + len);
            }
            4 => {
                let i = rng.below(n + 1);
                let len = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                d.splice(i..i, bytes);
            }
            5 if n > 0 => {
                // Duplicate a chunk (repeated entries, duplicate keys).
                let i = rng.below(n);
                let len = 1 + rng.below(256.min(n - i));
                let chunk = d[i..i + len].to_vec();
                let at = rng.below(n + 1);
                d.splice(at..at, chunk);
            }
            6 => {
                // Splice the tail of another seed.
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(n + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(at);
                d.extend_from_slice(&other[from..]);
            }
            7 if n > 0 => {
                d.truncate(rng.below(n));
            }
            8 => {
                let i = rng.below(n + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                d.splice(i..i, t.iter().copied());
            }
            _ => {}
        }
    }
    d
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().cloned() else {
        eprintln!("usage: fuzz TARGET [--secs N] [--execs N] [--seed S] [--from N]; fuzz list");
        std::process::exit(2);
    };
    if target == "list" {
        println!("{}", TARGETS.join("\n"));
        return;
    }
    let opt = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let secs = opt("--secs", 60);
    let max_execs = opt("--execs", u64::MAX);
    let seed = opt("--seed", 1);
    let from = opt("--from", 0);

    let t = targets(&target);
    let runner = Runner::new(t.name);
    // Seeds must parse cleanly: a panic there is a finding too.
    for s in &t.seeds {
        runner.run(t.name, s);
    }
    // Panics are the findings; keep the default hook quiet and report them ourselves.
    panic::set_hook(Box::new(|_| {}));
    let findings_dir = root().join("fuzz/findings");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut execs, mut findings) = (0u64, 0u64);
    let mut seen = std::collections::HashSet::new();
    let mut exec = from;
    while execs < max_execs && Instant::now() < deadline {
        let mut rng = Rng::new(seed, exec);
        let input = mutate(&mut rng, &t.seeds, t.text);
        let res = panic::catch_unwind(AssertUnwindSafe(|| runner.run(t.name, &input)));
        if let Err(p) = res {
            findings += 1;
            // One saved input per distinct panic message (the location is in the message of
            // index/unwrap panics only; good enough to tell bugs apart).
            if !seen.insert(panic_message(p.as_ref())) {
                execs += 1;
                exec += 1;
                continue;
            }
            std::fs::create_dir_all(&findings_dir).expect("findings dir");
            let file = findings_dir.join(format!("{}-seed{seed}-exec{exec}", t.name));
            std::fs::write(&file, &input).expect("save finding");
            eprintln!(
                "FINDING {}: panic \"{}\" at exec {exec} (seed {seed}); input saved to {}",
                t.name,
                panic_message(p.as_ref()),
                file.display()
            );
        }
        execs += 1;
        exec += 1;
        // A process-killing finding (abort, out of memory) leaves this as the last word:
        // replay from here with --from.
        if execs.is_multiple_of(5000) {
            eprintln!("progress {}: exec {exec} (seed {seed})", t.name);
        }
    }
    drop(runner);
    println!(
        "{}: {execs} execs in {secs} s budget (seed {seed}, execs {from}..{exec}), {} seeds, {findings} findings",
        t.name,
        t.seeds.len()
    );
    if findings > 0 {
        std::process::exit(1);
    }
}
