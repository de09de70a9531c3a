//! Quantization with importance matrices, the IQ/TQ types and per-tensor recipes against
//! llama-quantize (goldens made by scripts/golden/quant/make_imatrix_goldens.py with the
//! refkit's llama-quantize and llama-imatrix).
//!
//! `tests/golden/quant_imatrix/cases.json` lists every reference run: its input, file type and
//! flags, and either the output's sha256 (with per-tensor digests to locate a mismatch) or the
//! refusal. Kernel cases also keep the whole output file and the digest of llama.cpp's own
//! dequantization of it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tinylm::formats::gguf::GgufFile;
use tinylm::quant::{
    FileType, Imatrix, QuantizeOptions, Recipe, dequantize_row, parse_ggml_type, parse_tensor_type,
    quantize_file,
};

use crate::support;

fn dir() -> PathBuf {
    support::golden("quant_imatrix")
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(b: &[u8]) -> String {
    hex(Sha256::digest(b))
}

fn cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["cases"].as_array().unwrap().clone()
}

/// llama-quantize's flags of a case as our options. The imatrix is loaded from the golden
/// directory but recorded under the name the reference was given (it ran there).
fn options(c: &serde_json::Value, threads: usize) -> QuantizeOptions {
    let ftype: FileType = c["ftype"].as_str().unwrap().parse().unwrap();
    let mut o = QuantizeOptions::new(ftype);
    o.threads = threads;
    let mut r = Recipe::default();
    let flags: Vec<&str> = c["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut it = flags.into_iter();
    while let Some(f) = it.next() {
        let mut val = || it.next().unwrap();
        match f {
            "--imatrix" => {
                let name = val();
                let mut m = Imatrix::load(&dir().join(name)).unwrap();
                m.file = name.to_string();
                o.imatrix = Some(Arc::new(m));
            }
            "--pure" => r.pure = true,
            "--leave-output-tensor" => r.leave_output_tensor = true,
            "--allow-requantize" => o.allow_requantize = true,
            "--tensor-type" => r.tensor_types.push(parse_tensor_type(val()).unwrap()),
            "--token-embedding-type" => {
                r.token_embedding_type = Some(parse_ggml_type(val()).unwrap())
            }
            "--output-tensor-type" => r.output_tensor_type = Some(parse_ggml_type(val()).unwrap()),
            "--include-weights" => r.include_weights.push(val().to_string()),
            "--exclude-weights" => r.exclude_weights.push(val().to_string()),
            other => panic!("flag {other} not mapped"),
        }
    }
    o.recipe = r;
    o
}

/// Names the first difference between our output and the recorded digests.
fn describe_mismatch(ours: &Path, expect: &serde_json::Value) -> String {
    let bytes = std::fs::read(ours).unwrap();
    let g = GgufFile::open(ours).unwrap();
    let mut msg = format!(
        "size {} (want {}), ",
        bytes.len(),
        expect["size"].as_u64().unwrap()
    );
    let header = sha(&bytes[..g.data_offset as usize]);
    if !expect["header_sha256"]
        .as_str()
        .unwrap()
        .starts_with(&header[..16])
    {
        msg += "header differs; ";
    }
    for (t, e) in g.tensors.iter().zip(expect["tensors"].as_array().unwrap()) {
        let d = sha(g.tensor_data(t));
        let (en, et, es) = (
            e["name"].as_str().unwrap(),
            e["type"].as_str().unwrap(),
            e["sha256"].as_str().unwrap(),
        );
        if t.name != en || !t.ggml_type.name().eq_ignore_ascii_case(et) || !d.starts_with(es) {
            msg += &format!(
                "first differing tensor: {} {} (want {en} {et})",
                t.name,
                t.ggml_type.name()
            );
            return msg;
        }
    }
    msg + "tensors equal"
}

/// Runs every case whose name passes `filter` and returns the failures.
fn check_cases(filter: impl Fn(&str) -> bool, threads: usize) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut n = 0;
    for c in cases() {
        let name = c["name"].as_str().unwrap();
        if !filter(name) {
            continue;
        }
        n += 1;
        let input = dir().join(c["input"].as_str().unwrap());
        let out = tmp.path().join(format!("{name}.gguf"));
        let got = quantize_file(&input, &out, &options(&c, threads));
        match (&c.get("error"), got) {
            (Some(e), Ok(_)) => failures.push(format!(
                "{name}: llama-quantize refused ({}) but we quantized",
                e["message"]
            )),
            (Some(_), Err(err)) => {
                // Every refusal in the goldens is about a missing importance matrix (or, where
                // llama-quantize aborts in ggml, missing weights for a type that needs them): a
                // usage error that says what is needed.
                let msg = err.to_string();
                let explains =
                    msg.contains("importance matrix") || msg.contains("importance weights");
                if err.exit_code() != 2 || !explains {
                    failures.push(format!("{name}: refusal should be a usage error (2) about the imatrix, got {}: {msg}", err.exit_code()));
                }
            }
            (None, Err(err)) => failures.push(format!("{name}: failed: {err}")),
            (None, Ok(report)) => {
                let expect = &c["expect"];
                let bytes = std::fs::read(&out).unwrap();
                if sha(&bytes) != expect["sha256"].as_str().unwrap() {
                    failures.push(format!("{name}: {}", describe_mismatch(&out, expect)));
                } else if report.output_bytes != expect["size"].as_u64().unwrap() {
                    failures.push(format!("{name}: report size"));
                }
            }
        }
    }
    assert!(n > 0, "no case matched");
    failures
}

fn assert_cases(filter: impl Fn(&str) -> bool, threads: usize) {
    let f = check_cases(filter, threads);
    assert!(f.is_empty(), "{} failure(s):\n{}", f.len(), f.join("\n"));
}

#[test]
fn kernels_with_imatrix_match_llama_quantize_for_every_type() {
    assert_cases(|n| n.starts_with("kernels.") && n.ends_with(".imat"), 2);
}

#[test]
fn unweighted_iq_and_tq_kernels_match_llama_quantize() {
    assert_cases(|n| n.starts_with("kernels-out."), 1);
}

#[test]
fn kernel_goldens_are_whole_files_and_decode_like_llama_cpp() {
    for c in cases() {
        let Some(file) = c["file"].as_str() else {
            continue;
        };
        let golden = dir().join(file);
        let bytes = std::fs::read(&golden).unwrap();
        assert_eq!(
            sha(&bytes),
            c["expect"]["sha256"].as_str().unwrap(),
            "{file}"
        );
        // Dequantization: the same f32 values llama.cpp's to_float gives.
        let g = GgufFile::open(&golden).unwrap();
        let t = &g.tensors[0];
        let mut y = vec![0f32; t.n_elements() as usize];
        assert!(
            dequantize_row(t.ggml_type, g.tensor_data(t), &mut y),
            "{file}"
        );
        let raw: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            sha(&raw),
            c["dequant_sha256"].as_str().unwrap(),
            "{file}: dequantization of {} differs from llama.cpp's",
            t.ggml_type
        );
    }
}

#[test]
fn every_file_type_with_a_llama_imatrix_matches() {
    assert_cases(|n| n.starts_with("tiny.") && n.ends_with(".imat"), 2);
}

#[test]
fn new_types_without_imatrix_match_or_are_refused_alike() {
    assert_cases(
        |n| n.strip_prefix("tiny.").is_some_and(|r| !r.contains('.')),
        2,
    );
}

#[test]
fn legacy_dat_imatrices_match_llama_quantize() {
    assert_cases(|n| n.ends_with(".dat") || n.ends_with(".c96dat"), 2);
}

#[test]
fn dat_and_gguf_of_the_same_data_quantize_identically() {
    // tiny.imatrix.dat holds the same data as tiny.imatrix.gguf with ncall = 32 (a power of
    // two), so the tensor data must be identical; only the recorded imatrix KVs differ.
    let tmp = tempfile::tempdir().unwrap();
    let input = dir().join("tiny.gguf");
    for ft in [
        FileType::Q4_K_M,
        FileType::IQ2_XXS,
        FileType::IQ1_M,
        FileType::Q4_0,
    ] {
        let mut data = Vec::new();
        for name in ["tiny.imatrix.gguf", "tiny.imatrix.dat"] {
            let mut o = QuantizeOptions::new(ft);
            o.imatrix = Some(Arc::new(Imatrix::load(&dir().join(name)).unwrap()));
            let out = tmp.path().join(format!("{ft}.{name}.gguf"));
            quantize_file(&input, &out, &o).unwrap();
            let g = GgufFile::open(&out).unwrap();
            data.push(g.bytes()[g.data_offset as usize..].to_vec());
        }
        assert!(data[0] == data[1], "{ft}: .dat and GGUF differ");
    }
    let a = Imatrix::load(&dir().join("tiny.imatrix.gguf")).unwrap();
    let b = Imatrix::load(&dir().join("tiny.imatrix.dat")).unwrap();
    assert_eq!(a.entries, b.entries);
}

#[test]
fn recipe_flags_match_llama_quantize() {
    assert_cases(|n| n.starts_with("tiny.recipe."), 2);
}

#[test]
fn rule_fixtures_with_imatrix_match_llama_quantize() {
    assert_cases(
        |n| n.starts_with("gqa.") || n.starts_with("gpt2.") || n.starts_with("ltied."),
        3,
    );
}

#[test]
fn moe_expert_imatrices_match_llama_quantize() {
    assert_cases(|n| n.starts_with("moe."), 2);
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "tiny.IQ2_XS.imat")
        .unwrap();
    let input = dir().join("tiny.gguf");
    let mut outs = Vec::new();
    for threads in [1, 2, 5] {
        let out = tmp.path().join(format!("{threads}.gguf"));
        quantize_file(&input, &out, &options(&c, threads)).unwrap();
        outs.push(std::fs::read(out).unwrap());
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(sha(&outs[0]), c["expect"]["sha256"].as_str().unwrap());
}

#[test]
fn report_records_the_imatrix() {
    let tmp = tempfile::tempdir().unwrap();
    let c = cases()
        .into_iter()
        .find(|c| c["name"] == "tiny.recipe.include")
        .unwrap();
    let o = options(&c, 2);
    let report = quantize_file(&dir().join("tiny.gguf"), &tmp.path().join("o.gguf"), &o).unwrap();
    let m = report.imatrix.as_ref().unwrap();
    assert_eq!(m.file, "tiny.imatrix.gguf");
    assert_eq!(m.datasets, ["calib.txt"]);
    assert_eq!(m.chunk_count, 32);
    assert_eq!(m.chunk_size, 128);
    let bytes = std::fs::read(dir().join("tiny.imatrix.gguf")).unwrap();
    assert_eq!(m.digest, blake3::hash(&bytes).to_hex().to_string());
    assert!(m.entries_used < m.entries);
    // --include-weights ffn_ --include-weights output: only those tensors are weighted.
    for t in &report.tensors {
        let wanted = t.name.contains("ffn_") || t.name.contains("output");
        assert!(!t.imatrix || wanted, "{} used the imatrix", t.name);
    }
    assert_eq!(
        m.tensors_weighted,
        report.tensors.iter().filter(|t| t.imatrix).count()
    );
    assert!(m.tensors_weighted > 0);
    assert_eq!(
        report.recipe.as_ref().unwrap().include_weights,
        ["ffn_", "output"]
    );
}

/// Runs the real binary in the golden directory (so `--imatrix NAME` is recorded as NAME, as
/// llama-quantize recorded it there).
fn tinylm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(support::bin())
        .current_dir(dir())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn case_sha(name: &str) -> String {
    let c = cases().into_iter().find(|c| c["name"] == name).unwrap();
    c["expect"]["sha256"].as_str().unwrap().to_string()
}

#[test]
fn cli_recipe_flags_match_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    for (case, args) in [
        (
            "tiny.recipe.tt-regex",
            vec![
                "Q4_K_M",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--tensor-type",
                "ffn_down=q6_k",
                "--tensor-type",
                "attn_(q|k)=IQ4_XS",
            ],
        ),
        (
            "tiny.recipe.embd-out",
            vec![
                "Q4_K_M",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--token-embedding-type",
                "q8_0",
                "--output-tensor-type",
                "iq4_nl",
            ],
        ),
        (
            "tiny.recipe.exclude",
            vec![
                "Q3_K_M",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--exclude-weights",
                "attn_v",
                "--exclude-weights",
                "blk.0.",
            ],
        ),
        (
            "tiny.recipe.pure",
            vec!["iq3_m", "--imatrix", "tiny.imatrix.gguf", "--pure"],
        ),
        (
            "tiny.recipe.leave-output",
            vec![
                "Q5_K_M",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--leave-output-tensor",
            ],
        ),
        (
            "tiny.IQ2_XXS.dat",
            vec!["IQ2_XXS", "--imatrix", "tiny.imatrix.dat"],
        ),
        ("tiny.IQ4_XS", vec!["30"]),
    ] {
        let out = tmp.path().join(format!("{case}.gguf"));
        let out_s = out.to_str().unwrap();
        let mut argv = vec!["-q", "quantize", "tiny.gguf", out_s];
        argv.extend(&args);
        argv.extend(["-j", "2"]);
        let o = tinylm(&argv);
        assert!(
            o.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(sha(&std::fs::read(&out).unwrap()), case_sha(case), "{case}");
    }
}

#[test]
fn cli_refuses_types_that_need_an_imatrix() {
    let tmp = tempfile::tempdir().unwrap();
    for ft in [
        "IQ2_XXS", "iq2_xs", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M", "IQ3_XXS", "Q2_K_S",
    ] {
        let out = tmp.path().join("o.gguf");
        let o = tinylm(&["quantize", "tiny.gguf", out.to_str().unwrap(), ft]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{ft}: {err}");
        assert!(
            err.contains("needs an importance matrix")
                && err.contains("tinylm imatrix")
                && err.contains("--imatrix FILE"),
            "{ft}: {err}"
        );
        assert!(!out.exists(), "{ft}: no output on refusal");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "no temp file left"
        );
    }
    // An imatrix that lacks a needed tensor is refused the same way, naming the tensor.
    let o = tinylm(&[
        "quantize",
        "tiny.gguf",
        tmp.path().join("o.gguf").to_str().unwrap(),
        "IQ2_XXS",
        "--imatrix",
        "tiny.imatrix.gguf",
        "--exclude-weights",
        "ffn_down",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("blk.0.ffn_down.weight") && err.contains("no entry"),
        "{err}"
    );
}

#[test]
fn cli_json_report_records_the_imatrix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.gguf");
    let o = tinylm(&[
        "--json",
        "quantize",
        "tiny.gguf",
        out.to_str().unwrap(),
        "IQ4_XS",
        "--imatrix",
        "tiny.imatrix.gguf",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["ftype"], "IQ4_XS");
    assert_eq!(r["imatrix"]["file"], "tiny.imatrix.gguf");
    assert_eq!(r["imatrix"]["format"], "gguf");
    assert_eq!(r["imatrix"]["datasets"][0], "calib.txt");
    assert_eq!(r["imatrix"]["chunk_count"], 32);
    assert_eq!(r["imatrix"]["digest"].as_str().unwrap().len(), 64);
    assert!(
        r["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["imatrix"] == true)
    );
    assert_eq!(
        sha(&std::fs::read(&out).unwrap()),
        case_sha("tiny.IQ4_XS.imat")
    );
}

#[test]
fn cli_rejects_bad_recipes_and_imatrices_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("junk.dat"),
        b"\x02\x00\x00\x00\xff\xff\xff\x7f",
    )
    .unwrap();
    let out = tmp.path().join("o.gguf");
    let out = out.to_str().unwrap();
    let junk = tmp.path().join("junk.dat");
    let junk = junk.to_str().unwrap();
    for (args, code, want) in [
        (vec!["--tensor-type", "ffn("], 2, "PATTERN=TYPE"),
        (
            vec!["--tensor-type", "ffn(=q4_0"],
            2,
            "not a valid regular expression",
        ),
        (
            vec!["--tensor-type", "ffn=q9_9"],
            2,
            "invalid ggml type 'q9_9'",
        ),
        (
            vec!["--output-tensor-type", "mxfp4"],
            2,
            "cannot produce tensor type mxfp4",
        ),
        (
            vec!["--token-embedding-type", "nope"],
            2,
            "--token-embedding-type",
        ),
        (vec!["--include-weights", "ffn"], 2, "--imatrix"),
        (
            vec![
                "--imatrix",
                "tiny.imatrix.gguf",
                "--include-weights",
                "a",
                "--exclude-weights",
                "b",
            ],
            2,
            "cannot be used with",
        ),
        (vec!["--imatrix", "no-such.imatrix"], 1, "no-such.imatrix"),
        (vec!["--imatrix", junk], 1, "junk.dat"),
        // An imatrix of another model: sizes do not match.
        (vec!["--imatrix", "gqa.imatrix.gguf"], 2, "different model"),
    ] {
        let mut argv = vec!["quantize", "tiny.gguf", out, "Q4_K_M"];
        argv.extend(&args);
        let o = tinylm(&argv);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
