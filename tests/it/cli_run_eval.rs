//! `tinylm eval` and `tinylm run` driven as a user would, checked against llama-perplexity /
//! llama-completion goldens (scripts/golden/infer/make_eval_goldens.py).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions};
use tinylm::quant::{FileType, QuantizeOptions, quantize_file};

use crate::support;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sha(p: &Path) -> String {
    crate::support::sha256_hex(&std::fs::read(p).unwrap())
}

fn write_gguf(hf: &HfModel, out: &Path) {
    let mut f = std::fs::File::create(out).unwrap();
    let opts = GgufOptions {
        outtype: OutType::F32,
        ..Default::default()
    };
    hf_to_gguf::convert(hf, &opts, &mut f).unwrap();
}

/// The tiny-lm llama3 fixture as an f32 GGUF (named `last` like `tinylm convert -o last.gguf`).
pub fn tinylm_llama_gguf(dir: &Path) -> PathBuf {
    let fx = root().join("tests/fixtures/tinylm-llama3");
    let inputs = crate::support::tinylm_inputs(&fx);
    let hf = tinylm_to_hf::export(
        &inputs,
        &ExportOptions {
            dir_name: "last".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let p = dir.join("last.gguf");
    write_gguf(&hf, &p);
    p
}

/// The committed random qwen3 as F32 and Q4_K_M GGUFs.
pub fn qwen3_ggufs(dir: &Path) -> (PathBuf, PathBuf) {
    let hf = HfModel::open(root().join("tests/golden/infer/qwen3/hf")).unwrap();
    let f32p = dir.join("qwen3.gguf");
    write_gguf(&hf, &f32p);
    let q4 = dir.join("qwen3-q4_k_m.gguf");
    quantize_file(
        &f32p,
        &q4,
        &QuantizeOptions::new("Q4_K_M".parse::<FileType>().unwrap()),
    )
    .unwrap();
    (f32p, q4)
}

fn golden() -> Json {
    serde_json::from_slice(&std::fs::read(root().join("tests/golden/infer/eval.json")).unwrap())
        .unwrap()
}

fn eval_json(p: &support::Project, args: &[&str]) -> Json {
    let mut all = vec!["--json", "eval"];
    all.extend_from_slice(args);
    let out = p.run(&all);
    assert!(
        out.status.success(),
        "tinylm eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

#[test]
fn eval_perplexity_matches_llama_perplexity() {
    let p = support::Project::new();
    let g = golden();
    let text = root().join("tests/fixtures/eval/sample.txt");
    let llama = tinylm_llama_gguf(p.path());
    let (qwen, _) = qwen3_ggufs(p.path());
    for case in g["cases"].as_array().unwrap() {
        let (model, args): (&Path, Vec<String>) = match case["model"].as_str().unwrap() {
            "llama" => (&llama, vec!["--ctx".into(), "32".into()]),
            "qwen3" => (
                &qwen,
                vec!["--ctx".into(), "64".into(), "--chunks".into(), "8".into()],
            ),
            _ => continue,
        };
        assert_eq!(sha(model), case["sha256"].as_str().unwrap());
        let mut a = vec![
            model.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
            "-t",
            "2",
        ];
        a.extend(args.iter().map(String::as_str));
        let r = eval_json(&p, &a);
        let (got, want) = (r["ppl"].as_f64().unwrap(), case["ppl"].as_f64().unwrap());
        eprintln!(
            "{}: PPL {got:.4} vs llama-perplexity {want:.4}",
            case["model"]
        );
        assert!(
            rel(got, want) < 0.005,
            "{}: PPL {got} vs {want}",
            case["model"]
        );
    }
}

#[test]
fn eval_kl_divergence_matches_llama_perplexity() {
    let p = support::Project::new();
    let g = golden();
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "qwen3-q4_k_m")
        .unwrap()
        .clone();
    let text = root().join("tests/fixtures/eval/sample.txt");
    let (base, q4) = qwen3_ggufs(p.path());
    assert_eq!(sha(&q4), case["sha256"].as_str().unwrap());
    let r = eval_json(
        &p,
        &[
            q4.to_str().unwrap(),
            "--base",
            base.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
            "--ctx",
            "64",
            "--chunks",
            "8",
        ],
    );
    let k = &r["kld"];
    let f = |j: &Json, key: &str| j[key].as_f64().unwrap();
    eprintln!(
        "KLD mean {} vs {}, median {} vs {}, p99 {} vs {}, max {} vs {}, same top {} vs {} %, PPL {} vs {}",
        f(k, "mean"),
        f(&case, "kld_mean"),
        f(k, "median"),
        f(&case, "kld_median"),
        f(k, "p99"),
        f(&case, "kld_p99"),
        f(k, "max"),
        f(&case, "kld_max"),
        100.0 * f(k, "same_top"),
        f(&case, "same_top_percent"),
        f(&r, "ppl"),
        f(&case, "ppl")
    );
    assert!(rel(f(&r, "ppl"), f(&case, "ppl")) < 0.005);
    assert!(rel(f(k, "ppl_base"), f(&case, "ppl_base")) < 0.005);
    // llama-perplexity stores base log-probs in 16 bits; everything else is the same numerics.
    assert!(rel(f(k, "mean"), f(&case, "kld_mean")) < 0.005);
    assert!(rel(f(k, "median"), f(&case, "kld_median")) < 0.01);
    assert!(rel(f(k, "p99"), f(&case, "kld_p99")) < 0.01);
    assert!(rel(f(k, "max"), f(&case, "kld_max")) < 0.01);
    assert!((100.0 * f(k, "same_top") - f(&case, "same_top_percent")).abs() < 3.0);
    assert!((100.0 * f(k, "rms_dp") - f(&case, "rms_dp_percent")).abs() < 0.01);
}

#[test]
fn eval_rejects_short_text_and_other_vocabularies() {
    let p = support::Project::new();
    let llama = tinylm_llama_gguf(p.path());
    let (qwen, _) = qwen3_ggufs(p.path());
    p.write("short.txt", "Only a few words.");
    let out = p.run(&["eval", llama.to_str().unwrap(), "--text", "short.txt"]);
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("needs at least 1024") && e.contains("smaller --ctx"),
        "{e}"
    );
    // The vocab-only GGUF has no weights: a clear message naming the missing tensor.
    let gpt2v = root().join("tests/fixtures/vocab/ggml-vocab-gpt-2.gguf.xz");
    let xz = std::fs::read(gpt2v).unwrap();
    let mut raw = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut raw).unwrap();
    std::fs::write(p.path().join("vocab.gguf"), raw).unwrap();
    let text = root().join("tests/fixtures/eval/sample.txt");
    let t = text.to_str().unwrap();
    let out = p.run(&[
        "eval",
        qwen.to_str().unwrap(),
        "--base",
        "vocab.gguf",
        "--text",
        t,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("vocab.gguf") && e.contains("token_embd.weight"),
        "{e}"
    );
    // A base with another vocabulary (tiny-lm gpt2: 512 tokens; qwen3 uses tiny-lm's 768).
    let gdir = p.path().join("gpt2");
    std::fs::create_dir_all(&gdir).unwrap();
    let gpt2 = gdir.join("last.gguf");
    write_gguf(&tinylm_hf("tinylm-gpt2"), &gpt2);
    let out = p.run(&[
        "eval",
        qwen.to_str().unwrap(),
        "--base",
        gpt2.to_str().unwrap(),
        "--text",
        t,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("768 tokens") && e.contains("512") && e.contains("same vocabulary"),
        "{e}"
    );
}

fn f16_gguf(hf: &HfModel, out: &Path) {
    let mut f = std::fs::File::create(out).unwrap();
    let opts = GgufOptions {
        outtype: OutType::F16,
        ..Default::default()
    };
    hf_to_gguf::convert(hf, &opts, &mut f).unwrap();
}

fn tinylm_hf(fixture: &str) -> HfModel {
    let fx = root().join("tests/fixtures").join(fixture);
    let inputs = crate::support::tinylm_inputs(&fx);
    tinylm_to_hf::export(
        &inputs,
        &ExportOptions {
            dir_name: "last".into(),
            ..Default::default()
        },
    )
    .unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `tinylm eval` gives the same figures, to the last bit, with the AVX-512 matmul kernel
/// (where the CPU has it) and with the AVX2 kernel alone: eval results go into release.json,
/// which must not depend on the machine that built it.
#[test]
fn eval_figures_do_not_depend_on_the_matmul_kernel() {
    let p = support::Project::new();
    let hf = tinylm_hf("tinylm-llama3");
    let base = p.path().join("base-f16.gguf");
    f16_gguf(&hf, &base);
    let model = tinylm_llama_gguf(p.path());
    let text = root().join("tests/fixtures/eval/sample.txt");
    let args = [
        "--json",
        "eval",
        model.to_str().unwrap(),
        "--base",
        base.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--ctx",
        "32",
        "-t",
        "2",
    ];
    let figures = |kernel: &str| {
        let out = p.run_env(&args, &[("TINYLM_KERNEL", kernel)]);
        assert!(
            out.status.success(),
            "tinylm eval failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut j: Json = serde_json::from_slice(&out.stdout).unwrap();
        let o = j.as_object_mut().unwrap();
        o.remove("seconds");
        o.remove("tokens_per_second");
        assert!(o["kld"]["mean"].as_f64().unwrap() > 0.0, "{j}");
        j.to_string()
    };
    assert_eq!(figures("auto"), figures("avx2"));
}

#[test]
fn run_greedy_equals_llama_completion_on_f16() {
    let p = support::Project::new();
    let g = golden();
    let mut paths = std::collections::BTreeMap::new();
    for (name, hf, file) in [
        ("llama", tinylm_hf("tinylm-llama3"), "last.gguf"),
        ("gpt2", tinylm_hf("tinylm-gpt2"), "last.gguf"),
        (
            "qwen3",
            HfModel::open(root().join("tests/golden/infer/qwen3/hf")).unwrap(),
            "hf.gguf",
        ),
    ] {
        let dir = p.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file);
        f16_gguf(&hf, &path);
        paths.insert(name.to_string(), path);
    }
    let mut checked = 0;
    for case in g["run"].as_array().unwrap() {
        let path = &paths[case["model"].as_str().unwrap()];
        assert_eq!(sha(path), case["sha256"].as_str().unwrap());
        let n = case["n"].as_u64().unwrap().to_string();
        let prompt = case["prompt"].as_str().unwrap();
        let out = p.run(&[
            "--json",
            "run",
            path.to_str().unwrap(),
            "-p",
            prompt,
            "-n",
            &n,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Json = serde_json::from_slice(&out.stdout).unwrap();
        let file = tinylm::formats::gguf::GgufFile::open(path).unwrap();
        let tok = tinylm::infer::Tokenizer::from_gguf(&file, None).unwrap();
        let ids: Vec<u32> = r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ours: Vec<u8> = ids
            .iter()
            .flat_map(|&i| tok.token_bytes(i, false))
            .collect();
        let theirs = unhex(case["stdout_hex"].as_str().unwrap());
        // llama-completion ends its output with a blank line.
        let theirs = theirs.strip_suffix(b"\n\n").unwrap_or(&theirs).to_vec();
        if ours != theirs {
            // Allowed only where greedy decoding was a near-tie.
            let first_diff = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
            let mut acc = 0;
            let k = ids
                .iter()
                .position(|&id| {
                    acc += tok.token_bytes(id, false).len();
                    acc > first_diff
                })
                .unwrap_or(ids.len() - 1);
            let gap = r["top2_gaps"][k].as_f64().unwrap();
            assert!(
                gap < 1e-3,
                "{} {prompt:?}: tinylm {:?} vs llama-completion {:?} (token {k}, top-2 gap {gap})",
                case["model"],
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs)
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
}

#[test]
fn run_chat_renders_the_template_and_sampling_is_seeded() {
    let p = support::Project::new();
    let path = p.path().join("last.gguf");
    f16_gguf(&tinylm_hf("tinylm-llama3"), &path);
    let m = path.to_str().unwrap();
    let out = p.run(&[
        "--json",
        "run",
        m,
        "-p",
        "Hello",
        "--chat",
        "--template",
        "chatml",
        "-n",
        "4",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Json = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        r["prompt"].as_str().unwrap(),
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    let sample = |seed: &str| {
        let out = p.run(&[
            "--json", "run", m, "-p", "The", "-n", "6", "--temp", "1.5", "--seed", seed,
        ]);
        assert!(out.status.success());
        let r: Json = serde_json::from_slice(&out.stdout).unwrap();
        r["tokens"].clone()
    };
    assert_eq!(sample("1"), sample("1"));
    assert_ne!(sample("1"), sample("2"));
    let out = p.run(&["run", m, "-p", "x", "--chat", "--template", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown template 'nope'"));
    let out = p.run(&["run", "missing.gguf", "-p", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.gguf"));
}

/// Legacy .dat: (name, ncall, values) per entry, then chunk count and dataset.
fn parse_dat(b: &[u8]) -> (Vec<(String, i32, Vec<f32>)>, i32) {
    let mut pos = 0;
    let i32_at = |pos: &mut usize| {
        let v = i32::from_le_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    };
    let n = i32_at(&mut pos);
    let mut out = Vec::new();
    for _ in 0..n {
        let len = i32_at(&mut pos) as usize;
        let name = String::from_utf8(b[pos..pos + len].to_vec()).unwrap();
        pos += len;
        let ncall = i32_at(&mut pos);
        let nval = i32_at(&mut pos) as usize;
        let vals = (0..nval)
            .map(|k| f32::from_le_bytes(b[pos + 4 * k..pos + 4 * k + 4].try_into().unwrap()))
            .collect();
        pos += 4 * nval;
        out.push((name, ncall, vals));
    }
    (out, i32_at(&mut pos))
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-3 * b.abs().max(1e-6)
}

#[test]
fn imatrix_matches_llama_imatrix_in_both_formats() {
    use tinylm::formats::gguf::GgufFile;
    let p = support::Project::new();
    let g = golden();
    let (qwen, _) = qwen3_ggufs(p.path());
    let gdir = p.path().join("gpt2");
    std::fs::create_dir_all(&gdir).unwrap();
    let gpt2 = gdir.join("last.gguf");
    write_gguf(&tinylm_hf("tinylm-gpt2"), &gpt2);
    let text = root().join("tests/fixtures/eval/sample.txt");
    let mut compared = 0;
    for case in g["imatrix"].as_array().unwrap() {
        assert!(
            case["llama_quantize_accepts_tinylm_file"]
                .as_bool()
                .unwrap()
        );
        let model = match case["model"].as_str().unwrap() {
            "qwen3" => &qwen,
            _ => &gpt2,
        };
        assert_eq!(sha(model), case["sha256"].as_str().unwrap());
        let fmt = case["format"].as_str().unwrap();
        let ours = p.path().join(format!("out.{fmt}"));
        let ctx = case["ctx"].to_string();
        let out = p.run(&[
            "imatrix",
            model.to_str().unwrap(),
            "--text",
            text.to_str().unwrap(),
            "-o",
            ours.to_str().unwrap(),
            "--ctx",
            &ctx,
            "--chunks",
            "8",
            "--process-output",
            "--format",
            fmt,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let refp = root().join(case["file"].as_str().unwrap());
        let mut worst = 0f32;
        if fmt == "gguf" {
            let a = GgufFile::open(&ours).unwrap();
            let b = GgufFile::open(&refp).unwrap();
            let keys = |f: &GgufFile| {
                f.metadata
                    .iter()
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&a), keys(&b));
            for k in ["general.type", "imatrix.chunk_count", "imatrix.chunk_size"] {
                assert_eq!(a.get(k), b.get(k), "{k}");
            }
            assert_eq!(a.tensors.len(), b.tensors.len());
            for (ta, tb) in a.tensors.iter().zip(&b.tensors) {
                assert_eq!((&ta.name, &ta.ne, ta.offset), (&tb.name, &tb.ne, tb.offset));
                let fa = a.tensor_data(ta);
                let fb = b.tensor_data(tb);
                for (x, y) in fa.chunks_exact(4).zip(fb.chunks_exact(4)) {
                    let (x, y) = (
                        f32::from_le_bytes(x.try_into().unwrap()),
                        f32::from_le_bytes(y.try_into().unwrap()),
                    );
                    assert!(close(x, y), "{}: {x} vs {y}", ta.name);
                    worst = worst.max((x - y).abs() / y.abs().max(1e-6));
                }
            }
        } else {
            let (ea, ca) = parse_dat(&std::fs::read(&ours).unwrap());
            let (eb, cb) = parse_dat(&std::fs::read(&refp).unwrap());
            assert_eq!(ca, cb);
            assert_eq!(ea.len(), eb.len());
            for ((na, ka, va), (nb, kb, vb)) in ea.iter().zip(&eb) {
                assert_eq!((na, ka, va.len()), (nb, kb, vb.len()));
                for (x, y) in va.iter().zip(vb) {
                    assert!(close(*x, *y), "{na}: {x} vs {y}");
                    worst = worst.max((x - y).abs() / y.abs().max(1e-6));
                }
            }
        }
        eprintln!(
            "{} {fmt}: worst relative difference {worst:.2e}",
            case["model"]
        );
        compared += 1;
    }
    assert_eq!(compared, 4);
}

#[test]
fn unsupported_architecture_is_a_clear_error() {
    use tinylm::formats::gguf::{GgufWriter, Value};
    let p = support::Project::new();
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str("mamba"));
    w.add_kv("tokenizer.ggml.model", Value::str("gpt2"));
    let mut f = std::fs::File::create(p.path().join("mamba.gguf")).unwrap();
    w.write(&mut f, |_, _, _| Ok(())).unwrap();
    drop(f);
    for args in [
        vec!["run", "mamba.gguf", "-p", "hi"],
        vec!["eval", "mamba.gguf", "--text", "mamba.gguf"],
    ] {
        let out = p.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains("mamba.gguf") && e.contains("'mamba' cannot be run by tinylm yet"),
            "{e}"
        );
        assert!(e.contains("gpt2, llama, qwen2, qwen3"), "{e}");
    }
}

/// A llama with a real SentencePiece vocabulary (trained by sentencepiece, converted by
/// convert_hf_to_gguf.py; scripts/golden/infer/make_spm_run_golden.py): the prompt's ids
/// equal llama-tokenize's and greedy output equals llama-completion --temp 0, byte tokens
/// included.
#[test]
fn run_greedy_on_a_sentencepiece_model_equals_llama_completion() {
    let p = support::Project::new();
    let dir = root().join("tests/golden/infer/llama-spm");
    let g: Json = serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
    let path = dir.join("model.gguf");
    assert_eq!(sha(&path), g["sha256"].as_str().unwrap());
    let file = tinylm::formats::gguf::GgufFile::open(&path).unwrap();
    let tok = tinylm::infer::Tokenizer::from_gguf(&file, None).unwrap();
    assert_eq!(tok.model(), tinylm::infer::tokenizer::Model::Spm);
    let mut checked = 0;
    for case in g["run"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let want: Vec<u32> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(tok.encode(prompt, true, true), want, "{prompt:?}");
        let n = case["n"].as_u64().unwrap().to_string();
        let out = p.run(&[
            "--json",
            "run",
            path.to_str().unwrap(),
            "-p",
            prompt,
            "-n",
            &n,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: Json = serde_json::from_slice(&out.stdout).unwrap();
        let ours: Vec<u8> = r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|v| tok.token_bytes(v.as_u64().unwrap() as u32, false))
            .collect();
        let theirs = unhex(case["stdout_hex"].as_str().unwrap());
        let theirs = theirs.strip_suffix(b"\n\n").unwrap_or(&theirs).to_vec();
        assert_eq!(
            ours,
            theirs,
            "{prompt:?}: tinylm {:?} vs llama-completion {:?}",
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
        // The plain-text output is the same bytes.
        let plain = p.run(&["run", path.to_str().unwrap(), "-p", prompt, "-n", &n]);
        assert!(plain.status.success());
        assert!(
            plain.stdout.windows(ours.len().max(1)).any(|w| w == ours),
            "{:?}",
            String::from_utf8_lossy(&plain.stdout)
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}
