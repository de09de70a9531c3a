//! Whole-file byte equality with llama-quantize's output (goldens made by
//! scripts/golden/quant/make_goldens.py with the refkit), plus per-kernel `--pure` goldens.

use std::path::{Path, PathBuf};

use tinylm::formats::gguf::{GgmlType, GgufFile};
use tinylm::quant::{
    FileType, QuantizeOptions, dequantize_row, quantize_file, quantize_row, quantize_row_reference,
};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quant")
}

const MODELS: [&str; 3] = ["llama-gqa", "gpt2-tied", "llama-tied"];

/// The file types these goldens cover (the IQ/TQ types and imatrix runs are in
/// tests/quant_imatrix.rs).
const LEGACY_AND_K: [FileType; 17] = {
    use FileType::*;
    [
        Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K,
        Q8_0, F16, BF16, F32,
    ]
};

/// Explains the first difference between two GGUF files: which tensor or header byte.
fn describe_diff(ours: &Path, golden: &Path) -> String {
    let a = std::fs::read(ours).unwrap();
    let b = std::fs::read(golden).unwrap();
    let Some(pos) = a.iter().zip(&b).position(|(x, y)| x != y) else {
        return format!("lengths differ: ours {} vs golden {}", a.len(), b.len());
    };
    let g = GgufFile::open(golden).unwrap();
    let o = GgufFile::open(ours).ok();
    let types = |f: &GgufFile| -> Vec<String> {
        f.tensors
            .iter()
            .map(|t| format!("{}:{}", t.name, t.ggml_type))
            .collect()
    };
    if (pos as u64) < g.data_offset {
        return format!(
            "header differs at byte {pos}\n ours:   {:?}\n golden: {:?}",
            o.as_ref().map(types),
            types(&g)
        );
    }
    let rel = pos as u64 - g.data_offset;
    let t = g
        .tensors
        .iter()
        .find(|t| rel >= t.offset && rel < t.offset + t.nbytes)
        .map(|t| format!("{} ({}), byte {}", t.name, t.ggml_type, rel - t.offset))
        .unwrap_or_else(|| "padding".into());
    format!("data differs at byte {pos}: tensor {t}")
}

fn check_model(model: &str, threads: usize) {
    let dir = golden_dir();
    let tmp = tempfile::tempdir().unwrap();
    let input = dir.join(format!("{model}.gguf"));
    let mut failures = Vec::new();
    for ft in LEGACY_AND_K {
        let golden = dir.join(format!("{model}.{}.gguf", ft.name()));
        let out = tmp.path().join(format!("{model}.{}.gguf", ft.name()));
        let mut opts = QuantizeOptions::new(ft);
        opts.threads = threads;
        let report = quantize_file(&input, &out, &opts)
            .unwrap_or_else(|e| panic!("{model} {ft}: quantize failed: {e}"));
        let ours = std::fs::read(&out).unwrap();
        let want = std::fs::read(&golden).unwrap();
        if ours != want {
            failures.push(format!("{model} {ft}: {}", describe_diff(&out, &golden)));
        }
        assert_eq!(report.output_bytes, want.len() as u64, "{model} {ft}");
        assert_eq!(report.file_type_id, ft.id());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn llama_gqa_untied_f16_input_matches_llama_quantize() {
    check_model(MODELS[0], 2);
}

#[test]
fn gpt2_tied_f32_input_matches_llama_quantize() {
    check_model(MODELS[1], 1);
}

#[test]
fn llama_tied_bf16_input_matches_llama_quantize() {
    check_model(MODELS[2], 3);
}

#[test]
fn every_kernel_matches_llama_quantize_pure() {
    let dir = golden_dir();
    let src = GgufFile::open(dir.join("kernels.gguf")).unwrap();
    let t = &src.tensors[0];
    let mut x = vec![0f32; t.n_elements() as usize];
    assert!(dequantize_row(t.ggml_type, src.tensor_data(t), &mut x));
    let mut checked = 0;
    for name in [
        "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K",
    ] {
        let g = GgufFile::open(dir.join(format!("kernels.{name}.pure.gguf"))).unwrap();
        let gt = g.tensor(&t.name).unwrap();
        let want = g.tensor_data(gt);
        let bs = gt.ggml_type.type_size() as usize;
        // The fast path (SIMD lanes where the CPU has AVX2) and the plain scalar port must both
        // reproduce llama-quantize.
        for (path, quantize) in [
            (
                "fast",
                quantize_row as fn(GgmlType, &[f32], &mut [u8]) -> bool,
            ),
            ("scalar", quantize_row_reference),
        ] {
            let mut ours = vec![0u8; want.len()];
            assert!(quantize(gt.ggml_type, &x, &mut ours));
            if let Some(i) = ours.iter().zip(want).position(|(a, b)| a != b) {
                panic!(
                    "{} ({path} path): block {} (row {}) differs from llama-quantize",
                    gt.ggml_type,
                    i / bs,
                    i / bs / (256 / gt.ggml_type.block_size() as usize)
                );
            }
        }
        assert_ne!(gt.ggml_type, GgmlType::F32);
        checked += 1;
    }
    assert_eq!(checked, 10);
}
