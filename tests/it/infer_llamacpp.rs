//! The forward pass agrees with llama.cpp on small GGUFs of every architecture (gpt2, llama,
//! qwen2, qwen3) in every tensor type tinylm writes, and HF folders run directly agree with
//! transformers. Goldens: scripts/golden/infer/make_goldens.py (llama.cpp with an f32 KV cache).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions};
use tinylm::infer::{self, Model, Numerics};
use tinylm::quant::{FileType, QuantizeOptions, quantize_file};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(case: &str) -> (PathBuf, Json) {
    let dir = root().join("tests/golden/infer").join(case);
    let j: Json = serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    (dir, j)
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn sha(p: &Path) -> String {
    let d = Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The f32 GGUF of a case, built with tinylm's converter.
fn base_gguf(case: &str, source: &str, dir: &Path, out: &Path) {
    let hf = if source == "hf" {
        HfModel::open(dir.join("hf")).unwrap()
    } else {
        let fx = root().join("tests/fixtures").join(source);
        let inputs = crate::support::tinylm_inputs(&fx);
        tinylm_to_hf::export(
            &inputs,
            &ExportOptions {
                dir_name: "last".into(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mut f = std::fs::File::create(out).unwrap();
    let opts = GgufOptions {
        outtype: OutType::F32,
        ..Default::default()
    };
    hf_to_gguf::convert(&hf, &opts, &mut f).unwrap_or_else(|e| panic!("{case}: {e}"));
}

/// Max |Δ| and the fraction of rows whose argmax agrees.
fn compare(got: &[f32], want: &[f32], nv: usize) -> (f32, f64) {
    assert_eq!(got.len(), want.len());
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0
    };
    let rows = got.len() / nv;
    let agree = got
        .chunks_exact(nv)
        .zip(want.chunks_exact(nv))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    (d, agree as f64 / rows as f64)
}

/// Allowed max |Δlogit| against llama.cpp, relative to the largest |logit|, with
/// `Numerics::ggml_activations` (matmul inputs rounded to f16/bf16/Q8_0/Q8_K like ggml's dot
/// products). Most types then agree to ~3e-7; the rest is an activation landing on the other
/// side of a rounding boundary after a summation-order difference (up to ~2e-2 seen).
fn tolerance(ty: &str) -> f32 {
    match ty {
        "F32" => 1e-5,
        "F16" | "BF16" => 5e-3,
        _ => 3e-2,
    }
}

fn check(case: &str) {
    let (dir, g) = golden(case);
    let source = g["source"].as_str().unwrap();
    let tokens: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let rows: Vec<usize> = g["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as usize)
        .collect();
    let nv = g["n_vocab"].as_u64().unwrap() as usize;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("F32.gguf");
    base_gguf(case, source, &dir, &base);
    let mut report = Vec::new();
    for (ty, info) in g["types"].as_object().unwrap() {
        let path = if ty == "F32" {
            base.clone()
        } else {
            let p = tmp.path().join(format!("{ty}.gguf"));
            let ft: FileType = ty.parse().unwrap();
            let mut opts = QuantizeOptions::new(ft);
            opts.threads = 1;
            quantize_file(&base, &p, &opts).unwrap();
            p
        };
        assert_eq!(
            sha(&path),
            info["sha256"].as_str().unwrap(),
            "{case} {ty}: tinylm's GGUF differs from the one llama.cpp ran"
        );
        let model = Model::load(&path).unwrap();
        assert_eq!(model.config.n_vocab, nv);
        // llama.cpp's GELU goes through an f16 table; mirror it for the comparison.
        let numerics = Numerics {
            ggml_gelu: true,
            kv_f16: false,
            ggml_activations: true,
        };
        let mut s = model.session_with(tokens.len(), numerics);
        let all = s.eval(&tokens, 0).unwrap();
        let got: Vec<f32> = if info["all_rows"].as_bool().unwrap() {
            all
        } else {
            rows.iter()
                .flat_map(|&r| all[r * nv..(r + 1) * nv].to_vec())
                .collect()
        };
        let want = read_f32(&dir.join(format!("llamacpp-{ty}.bin")));
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (d, agree) = compare(&got, &want, nv);
        report.push(format!(
            "{ty} {:.1e} ({:.0}% top-1)",
            d / scale,
            agree * 100.0
        ));
        assert!(
            d <= tolerance(ty) * scale,
            "{case} {ty}: max |Δlogit| {d} vs llama.cpp (|logit| ≤ {scale}); {report:?}"
        );
        assert!(agree == 1.0, "{case} {ty}: argmax differs from llama.cpp");
    }
    eprintln!(
        "{case} vs llama.cpp, max |Δ|/max|logit|: {}",
        report.join(", ")
    );
    if source == "hf" {
        let m = infer::load_hf_dir(&dir.join("hf")).unwrap();
        let got = m.logits(&tokens).unwrap();
        let want = read_f32(&dir.join("transformers.bin"));
        let (d, agree) = compare(&got, &want, nv);
        eprintln!("{case} HF folder vs transformers: max |Δ| {d:.2e}");
        assert!(d <= 1e-4 && agree == 1.0, "{case}: HF logits off by {d}");
    }
}

#[test]
fn gpt2_matches_llama_cpp() {
    check("gpt2");
}

#[test]
fn llama_matches_llama_cpp() {
    check("llama");
}

#[test]
fn qwen2_matches_llama_cpp_and_transformers() {
    check("qwen2");
}

#[test]
fn qwen3_matches_llama_cpp_and_transformers() {
    check("qwen3");
}
