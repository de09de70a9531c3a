//! The forward pass agrees with llama.cpp on small GGUFs of every architecture (gpt2, llama,
//! qwen2, qwen3, gemma, gemma2, gemma3) in every tensor type tinylm writes, and HF folders run directly agree with
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

/// Max |Δ| and the fraction of rows whose argmax agrees, counting only rows where `want`'s top
/// two logits are more than `tie` apart (0: every row).
fn compare(got: &[f32], want: &[f32], nv: usize) -> (f32, f64) {
    compare_beyond_ties(got, want, nv, 0.0)
}

fn compare_beyond_ties(got: &[f32], want: &[f32], nv: usize, tie: f32) -> (f32, f64) {
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
    let margin = |r: &[f32]| {
        let top = argmax(r);
        let second = r
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != top)
            .fold(f32::NEG_INFINITY, |m, (_, &v)| m.max(v));
        r[top] - second
    };
    let decisive: Vec<(&[f32], &[f32])> = got
        .chunks_exact(nv)
        .zip(want.chunks_exact(nv))
        .filter(|(_, b)| margin(b) > tie)
        .collect();
    let agree = decisive
        .iter()
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    if decisive.is_empty() {
        return (d, 1.0);
    }
    (d, agree as f64 / decisive.len() as f64)
}

/// Allowed max |Δlogit| against llama.cpp, relative to the largest |logit|, with
/// `Numerics::ggml_activations` (matmul inputs rounded to f16/bf16/Q8_0/Q8_K like ggml's dot
/// products). Most types then agree to ~3e-7; the rest is an activation landing on the other
/// side of a rounding boundary after a summation-order difference (up to ~2e-2 seen).
///
/// Gemma's F32 runs differ more (measured 2.0e-5 gemma, 1.7e-5 gemma2, 7.9e-5 gemma3, argmax
/// always equal) while its BF16/Q8_0 runs agree to ~1e-7, so the block is right and the gap is
/// in how ggml runs F32 weights; not traced yet, so their F32 bound is 1e-4 until it is.
///
/// Gemma 3's six-layer random model amplifies rounding more than the others: moving every F32
/// norm weight of llama.cpp's own GGUFs by ±1 ulp (scripts/golden/infer/ulp_sensitivity.py, 10
/// trials) moves llama.cpp's logits by up to 2.1e-4 (F32), 2.2e-3 (F16), 5.4e-3 (BF16), 2.0e-2
/// (Q8_0), 3.6e-2 (Q4_0), 9.7e-3 (Q4_1), 1.9e-2 (Q5_0) and 1.8e-2 (Q5_1), and flips Q5_1's
/// top-1 on row 13, whose top two logits are 0.0087 apart, in one trial of ten. A summation-order
/// difference is such a perturbation, so those quantized types get 5e-2 (measured 3.1e-2 for
/// Q4_0) and top-1 is not required on rows whose top two are closer than 2e-2 of max|logit|
/// (Q5_1's row 13: 1.0e-3; Q8_0's row 26: 1.3e-2; every other row of these types is checked).
fn tolerance(case: &str, ty: &str) -> f32 {
    match ty {
        "F32" if case.starts_with("gemma") => 1e-4,
        // GPT-NeoX's wide GELU FFN goes through ggml's f16 GELU table, where a summation-order
        // difference of one ulp in the input can move an activation to the next f16 entry
        // (llama.cpp vs transformers' exact GELU: 2.4e-4 relative; tinylm vs llama.cpp: 1.1e-4).
        "F32" if case == "gptneox" => 2e-4,
        "F32" => 1e-5,
        "F16" | "BF16" => 5e-3,
        "Q8_0" | "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1" if case == "gemma3" => 5e-2,
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
        // Gemma 3: top-1 may flip where llama.cpp's top two are closer than its own median
        // shift under 1-ulp perturbations (~2e-2 of max|logit| for these types).
        let tie = if tolerance(case, ty) > 3e-2 {
            2e-2 * scale
        } else {
            0.0
        };
        let (d, agree) = compare_beyond_ties(&got, &want, nv, tie);
        report.push(format!(
            "{ty} {:.1e} ({:.0}% top-1)",
            d / scale,
            agree * 100.0
        ));
        assert!(
            d <= tolerance(case, ty) * scale,
            "{case} {ty}: max |Δlogit| {d} vs llama.cpp (|logit| ≤ {scale}); {report:?}"
        );
        assert!(
            agree == 1.0,
            "{case} {ty}: argmax differs from llama.cpp; {report:?}"
        );
    }
    eprintln!(
        "{case} vs llama.cpp, max |Δ|/max|logit|: {}",
        report.join(", ")
    );
    if source == "hf" && g["hf_direct"].as_bool().unwrap_or(true) {
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

// ---- archs-more: gptneox, olmo2, smollm3, phi3

#[test]
fn gptneox_matches_llama_cpp_and_transformers() {
    check("gptneox");
}

#[test]
fn olmo2_matches_llama_cpp_and_transformers() {
    check("olmo2");
}

#[test]
fn smollm3_matches_llama_cpp_and_transformers() {
    check("smollm3");
}

#[test]
fn phi3_matches_llama_cpp_and_transformers() {
    check("phi3");
}

#[test]
fn gemma_matches_llama_cpp() {
    // GELU-gated FFN, sqrt(n_embd) embedding scale, norms stored as 1 + w.
    check("gemma");
}

#[test]
fn gemma2_matches_llama_cpp() {
    // + post-norms, attention and final logit soft-capping, an 8-token window on layer 0.
    check("gemma2");
}

#[test]
fn gemma3_matches_llama_cpp() {
    // + q/k norms, 8-token windows with their own rope base on five layers of six. BF16 and
    // Q8_0 agree to ~1e-7 while llama.cpp itself moves 5e-3 / 2e-2 under 1-ulp perturbations, so
    // the block is computed as llama.cpp computes it; the quantized gaps are rounding noise.
    check("gemma3");
}

#[test]
fn gemma3_gguf_matches_transformers() {
    // The same F32 GGUF with exact numerics against transformers' Gemma3ForCausalLM on the HF
    // folder: the embedding scale, sliding windows, local rope base, linear-scaled global rope,
    // query scaling and (1 + w) norms are transformers', not only llama.cpp's.
    let (dir, g) = golden("gemma3");
    let tokens: Vec<u32> = g["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect();
    let nv = g["n_vocab"].as_u64().unwrap() as usize;
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("F32.gguf");
    base_gguf("gemma3", "hf", &dir, &base);
    let model = Model::load(&base).unwrap();
    let numerics = Numerics {
        ggml_gelu: false,
        kv_f16: false,
        ggml_activations: false,
    };
    let mut s = model.session_with(tokens.len(), numerics);
    let got = s.eval(&tokens, 0).unwrap();
    let want = read_f32(&dir.join("transformers.bin"));
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let (d, agree) = compare(&got, &want, nv);
    eprintln!("gemma3 GGUF vs transformers: max |Δ| {d:.2e} (|logit| ≤ {scale})");
    assert!(
        d <= 1e-5 * scale && agree == 1.0,
        "gemma3 vs transformers: max |Δ| {d}"
    );
}
