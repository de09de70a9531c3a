//! quantize_file behaviour beyond byte equality: refusals, validation, cancellation, reports
//! and the CLI.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tinylm::Error;
use tinylm::formats::gguf::{GgmlType, GgufFile, GgufWriter, TensorSpec, Value};
use tinylm::quant::{FileType, QuantizeOptions, quantize_file};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/quant")
        .join(name)
}

/// A one-layer llama GGUF with F32 tensors given as (name, ne, values).
fn write_model(path: &Path, tensors: &[(&str, Vec<u64>, Vec<f32>)], with_arch: bool) {
    let mut w = GgufWriter::new();
    if with_arch {
        w.add_kv("general.architecture", Value::str("llama"));
        w.add_kv("llama.block_count", Value::U32(1));
        w.add_kv("llama.attention.head_count", Value::U32(2));
    }
    for (name, ne, _) in tensors {
        w.add_tensor(TensorSpec {
            name: name.to_string(),
            ne: ne.clone(),
            ggml_type: GgmlType::F32,
        })
        .unwrap();
    }
    let mut f = std::fs::File::create(path).unwrap();
    w.write(&mut f, |i, _, out| {
        let bytes: Vec<u8> = tensors[i].2.iter().flat_map(|v| v.to_le_bytes()).collect();
        out.write_all(&bytes)
            .map_err(|e| Error::Build(e.to_string()))
    })
    .unwrap();
}

/// The message of a quantization that must fail.
fn quantize_error(input: &Path, out: &Path, ftype: FileType) -> String {
    quantize_file(input, out, &QuantizeOptions::new(ftype))
        .unwrap_err()
        .to_string()
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

#[test]
fn requantizing_is_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    let input = golden("llama-gqa.Q8_0.gguf");
    let err = quantize_file(&input, &out, &QuantizeOptions::new(FileType::Q4_0)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("requantizing from type q8_0 is disabled"),
        "{msg}"
    );
    assert!(msg.contains("--allow-requantize"), "{msg}");
    assert_eq!(err.exit_code(), 1);

    let mut opts = QuantizeOptions::new(FileType::Q4_0);
    opts.allow_requantize = true;
    let report = quantize_file(&input, &out, &opts).unwrap();
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(
        f.tensor("blk.0.attn_q.weight").unwrap().ggml_type,
        GgmlType::Q4_0
    );
    assert!(
        report
            .tensors
            .iter()
            .any(|t| t.source_type == "q8_0" && t.target_type == "q4_0")
    );
}

#[test]
fn same_type_tensors_are_copied_even_from_quantized_inputs() {
    // Q8_0 → Q8_0 keeps every tensor as it is, so no requantization happens.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    let input = golden("llama-gqa.Q8_0.gguf");
    let report = quantize_file(&input, &out, &QuantizeOptions::new(FileType::Q8_0)).unwrap();
    assert_eq!(report.converted_elements, 0);
    let a = GgufFile::open(&input).unwrap();
    let b = GgufFile::open(&out).unwrap();
    for t in &a.tensors {
        assert_eq!(a.tensor_data(t), b.tensor_data(b.tensor(&t.name).unwrap()));
    }
}

#[test]
fn non_finite_inputs_are_rejected_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("nan.gguf");
    let mut bad = ramp(512);
    bad[300] = f32::NAN;
    write_model(
        &input,
        &[
            ("blk.0.attn_q.weight", vec![256, 2], bad),
            ("blk.0.attn_norm.weight", vec![256], ramp(256)),
        ],
        true,
    );
    let out = tmp.path().join("out.gguf");
    let msg = quantize_error(&input, &out, FileType::Q4_K_M);
    assert!(msg.contains("blk.0.attn_q.weight"), "{msg}");
    assert!(msg.contains("NaN or infinity"), "{msg}");
    assert!(msg.contains("nan.gguf"), "{msg}");

    // Copied tensors are validated too.
    let mut inf = ramp(256);
    inf[3] = f32::INFINITY;
    write_model(
        &input,
        &[
            ("blk.0.attn_q.weight", vec![256, 2], ramp(512)),
            ("blk.0.attn_norm.weight", vec![256], inf),
        ],
        true,
    );
    let msg = quantize_error(&input, &out, FileType::Q8_0);
    assert!(msg.contains("blk.0.attn_norm.weight"), "{msg}");
}

#[test]
fn values_that_overflow_fp16_fail_validation() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.gguf");
    let mut v = ramp(512);
    v[0] = 1e9;
    write_model(&input, &[("blk.0.attn_q.weight", vec![256, 2], v)], true);
    let out = tmp.path().join("out.gguf");
    let msg = quantize_error(&input, &out, FileType::F16);
    assert!(msg.contains("validation failed"), "{msg}");
}

#[test]
fn missing_architecture_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("noarch.gguf");
    write_model(
        &input,
        &[("blk.0.attn_q.weight", vec![256, 2], ramp(512))],
        false,
    );
    let msg = quantize_error(&input, &tmp.path().join("o.gguf"), FileType::Q8_0);
    assert!(msg.contains("general.architecture"), "{msg}");
}

#[test]
fn input_and_output_must_differ() {
    let input = golden("llama-tied.gguf");
    let err = quantize_file(&input, &input, &QuantizeOptions::new(FileType::Q8_0)).unwrap_err();
    assert!(err.to_string().contains("same file"), "{err}");
}

#[test]
fn cancellation_stops_with_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = QuantizeOptions::new(FileType::Q4_K_M);
    opts.cancel = Some(Arc::new(AtomicBool::new(true)));
    let err =
        quantize_file(&golden("llama-gqa.gguf"), &tmp.path().join("o.gguf"), &opts).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
}

#[test]
fn report_has_per_tensor_statistics() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.gguf");
    let input = golden("llama-gqa.gguf");
    let q4 = quantize_file(&input, &out, &QuantizeOptions::new(FileType::Q4_K_M)).unwrap();
    let q8 = quantize_file(&input, &out, &QuantizeOptions::new(FileType::Q8_0)).unwrap();
    let src = GgufFile::open(&input).unwrap();
    assert_eq!(q4.tensors.len(), src.tensors.len());
    assert_eq!(q4.ftype, "Q4_K_M");
    assert_eq!(q4.file_type_id, 15);
    // Output order: non-block tensors first, then layers numerically.
    assert_eq!(q4.tensors[0].name, "output.weight");
    assert_eq!(q4.tensors[3].name, "blk.0.attn_k.weight");
    let norm = q4
        .tensors
        .iter()
        .find(|t| t.name == "output_norm.weight")
        .unwrap();
    assert_eq!((norm.rmse, norm.max_abs_error), (0.0, 0.0));
    let q = q4
        .tensors
        .iter()
        .find(|t| t.name == "blk.3.attn_q.weight")
        .unwrap();
    assert_eq!(q.target_type, "q4_K");
    assert!(q.rmse > 0.0 && q.max_abs_error >= q.rmse, "{q:?}");
    let down = q4
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .unwrap();
    assert!(down.fallback, "ffn_down rows of 96 need a fallback");
    assert!(q4.n_fallback >= 16);
    // More bits, less error.
    assert!(q8.rmse < q4.rmse / 4.0, "q8 {} vs q4 {}", q8.rmse, q4.rmse);
    assert!(q8.bits_per_weight > q4.bits_per_weight);
    // The 1-row attn_k of layer 5 is 1-D for ggml and is copied.
    let k5 = q4
        .tensors
        .iter()
        .find(|t| t.name == "blk.5.attn_k.weight")
        .unwrap();
    assert_eq!(
        (k5.target_type.as_str(), k5.shape.as_slice()),
        ("f16", &[256u64][..])
    );
    let json = serde_json::to_value(&q4).unwrap();
    assert_eq!(json["tensors"][0]["name"], "output.weight");
}

#[test]
fn cli_quantizes_and_refuses_bad_types() {
    let exe = env!("CARGO_BIN_EXE_tinylm");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sub.gguf");
    let input = golden("gpt2-tied.gguf");
    let st = std::process::Command::new(exe)
        .args(["-q", "quantize"])
        .arg(&input)
        .arg(&out)
        .args(["q5_k_m", "-j", "2"])
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("gpt2-tied.Q5_K_M.gguf")).unwrap()
    );
    // No temporary files are left behind.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1);

    let o = std::process::Command::new(exe)
        .arg("quantize")
        .arg(&input)
        .arg(&out)
        .arg("q4_k_x")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("did you mean Q4_K_M"), "{err}");
}
