//! The native forward pass reproduces tiny-lm's own logits (from the checkpoint directly and
//! through f32 GGUF), runs every tensor type, and its KV cache agrees with batched evaluation.

use std::path::{Path, PathBuf};

use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions, TinyLmInputs};
use tinylm::infer::{self, Model};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn inputs(name: &str) -> TinyLmInputs {
    let dir = fixture(name);
    crate::support::tinylm_inputs(&dir)
}

/// A little-endian, C-order .npy array (`<f4`, `<i8` or `<i4`) as f64 values and its shape.
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_str
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data = &b[start + hlen..];
    let vals: Vec<f64> = if header.contains("'<f4'") {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else if header.contains("'<i8'") {
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else if header.contains("'<i4'") {
        data.chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    } else {
        panic!("unsupported dtype in {header}");
    };
    assert_eq!(vals.len(), shape.iter().product::<usize>());
    (shape, vals)
}

fn reference(name: &str) -> (Vec<u32>, Vec<f64>) {
    let (_, toks) = read_npy(&fixture(name).join("reference_tokens.npy"));
    let (_, logits) = read_npy(&fixture(name).join("reference_logits.npy"));
    (toks.iter().map(|&t| t as u32).collect(), logits)
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn gguf_of(name: &str, outtype: OutType, dir: &Path) -> PathBuf {
    let hf = tinylm_to_hf::export(
        &inputs(name),
        &ExportOptions {
            dir_name: name.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let path = dir.join(format!("{name}-{}.gguf", outtype.name()));
    let mut f = std::fs::File::create(&path).unwrap();
    hf_to_gguf::convert(
        &hf,
        &GgufOptions {
            outtype,
            ..Default::default()
        },
        &mut f,
    )
    .unwrap();
    path
}

fn check_reference(name: &str) {
    let (tokens, want) = reference(name);
    let direct = infer::load_tinylm(&inputs(name)).unwrap();
    let got = direct.logits(&tokens).unwrap();
    let d_direct = max_abs_diff(&got, &want);
    let tmp = tempfile::tempdir().unwrap();
    let gguf = Model::load(gguf_of(name, OutType::F32, tmp.path())).unwrap();
    let got = gguf.logits(&tokens).unwrap();
    let d_gguf = max_abs_diff(&got, &want);
    eprintln!("{name}: max |Δlogit| checkpoint {d_direct:.2e}, f32 GGUF {d_gguf:.2e}");
    assert!(
        d_direct <= 1e-4,
        "{name}: checkpoint logits off by {d_direct}"
    );
    assert!(d_gguf <= 1e-4, "{name}: f32 GGUF logits off by {d_gguf}");
}

#[test]
fn gpt2_checkpoint_and_gguf_reproduce_tinylm_logits() {
    check_reference("tinylm-gpt2");
}

#[test]
fn llama3_checkpoint_and_gguf_reproduce_tinylm_logits() {
    check_reference("tinylm-llama3");
}

#[test]
fn kv_cache_matches_batched_evaluation() {
    let (tokens, _) = reference("tinylm-llama3");
    let m = infer::load_tinylm(&inputs("tinylm-llama3")).unwrap();
    let all = m.logits(&tokens).unwrap();
    let nv = m.config.n_vocab;
    let mut s = m.session(tokens.len());
    let first = s.eval(&tokens[..10], 0).unwrap();
    let mut inc = first;
    for &t in &tokens[10..] {
        inc.extend(s.eval(&[t], 0).unwrap());
    }
    assert_eq!(inc.len(), all.len());
    let d = inc
        .iter()
        .zip(&all)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(d < 1e-5, "incremental vs batched: {d}");
    // Only the requested rows come back.
    let mut s = m.session(tokens.len());
    let tail = s.eval(&tokens, tokens.len() - 2).unwrap();
    assert_eq!(tail.len(), 2 * nv);
    // Same rows up to GEMM blocking (the kernel's blocking depends on the row count).
    for (a, b) in tail.iter().zip(&all[all.len() - 2 * nv..]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn context_overflow_and_bad_tokens_are_errors() {
    let m = infer::load_tinylm(&inputs("tinylm-gpt2")).unwrap();
    let mut s = m.session(4);
    let e = s.eval(&[1, 2, 3, 4, 5], 0).unwrap_err().to_string();
    assert!(e.contains("context full"), "{e}");
    let e = s.eval(&[100_000], 0).unwrap_err().to_string();
    assert!(e.contains("outside the vocabulary"), "{e}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let (tokens, _) = reference("tinylm-gpt2");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q.gguf");
    let f32p = gguf_of("tinylm-gpt2", OutType::F32, tmp.path());
    let ft: tinylm::quant::FileType = "Q4_K_M".parse().unwrap();
    tinylm::quant::quantize_file(&f32p, &path, &tinylm::quant::QuantizeOptions::new(ft)).unwrap();
    let m = Model::load(&path).unwrap();
    let run = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| m.logits(&tokens).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(3));
}
