//! Golden tests: tinylm's HF → GGUF output must be byte-identical to llama.cpp's
//! convert_hf_to_gguf.py for every fixture and outtype recorded by
//! scripts/golden/make_hf_goldens.py (tests/golden/hf_to_gguf/).
//!
//! Weights are not committed: both the generator and this test fill every tensor from the same
//! counter-based hash (`det_values`), so the inputs are identical by construction and only the
//! reference's output hash, KVs and per-tensor hashes need to be stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};
use serde_json::Value as Json;
use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType, PreSource};
use tinylm::formats::DType;
use tinylm::formats::gguf::{GgufFile, Value};
use tinylm::formats::tensor::{Tensor, TensorBytes, WeightFile};

use crate::support::sha256_hex;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hf_to_gguf")
}

fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Mirrors `det_values` in scripts/golden/make_hf_goldens.py.
fn det_values(name: &str, n: usize) -> Vec<f32> {
    let seed = fnv1a32(name);
    (0..n)
        .map(|i| {
            let mut h = seed ^ (i as u32).wrapping_mul(0x9E37_79B9);
            h ^= h >> 16;
            h = h.wrapping_mul(0x85EB_CA6B);
            h ^= h >> 13;
            h = h.wrapping_mul(0xC2B2_AE35);
            h ^= h >> 16;
            f32::from((h >> 16) as u16 as i16) / 65536.0
        })
        .collect()
}

fn tensor_bytes(name: &str, dtype: &str, n: usize) -> (DType, Vec<u8>) {
    let v = det_values(name, n);
    match dtype {
        "F32" => (DType::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        "F16" => (
            DType::F16,
            v.iter()
                .flat_map(|x| f16::from_f32(*x).to_bits().to_le_bytes())
                .collect(),
        ),
        "BF16" => (
            DType::BF16,
            v.iter()
                .flat_map(|x| bf16::from_f32(*x).to_bits().to_le_bytes())
                .collect(),
        ),
        other => panic!("unexpected dtype {other} in weights.json"),
    }
}

fn unxz(path: &Path) -> Vec<u8> {
    let xz = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut out).expect("valid xz");
    out
}

fn tokenizer_json(vocab: &str) -> Vec<u8> {
    unxz(
        &golden_dir()
            .join("tokenizers")
            .join(format!("{vocab}.json.xz")),
    )
}

struct Fixture {
    name: String,
    model: HfModel,
    expected: Json,
}

fn load_fixture(name: &str) -> Fixture {
    let dir = golden_dir().join(name);
    let expected: Json =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).expect("expected.json"))
            .expect("json");
    let weights: Json =
        serde_json::from_slice(&std::fs::read(dir.join("weights.json")).expect("weights.json"))
            .expect("json");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let p = entry.expect("entry").path();
        let fname = p.file_name().unwrap().to_string_lossy().into_owned();
        if fname == "expected.json" || fname == "weights.json" {
            continue;
        }
        if let Some(plain) = fname.strip_suffix(".xz") {
            // a fixture's own tokenizer.json (SentencePiece fixtures), compressed
            files.insert(plain.to_string(), unxz(&p));
            continue;
        }
        files.insert(fname, std::fs::read(&p).expect("read"));
    }
    if let Some(vocab) = expected["vocab"].as_str() {
        files.insert("tokenizer.json".into(), tokenizer_json(vocab));
    }
    if let Some(spm) = expected["spm"].as_str() {
        // a SentencePiece model shared between fixtures
        files.insert(
            "tokenizer.model".into(),
            unxz(
                &golden_dir()
                    .join("tokenizers")
                    .join(format!("{spm}.model.xz")),
            ),
        );
    }
    let mut wfs = Vec::new();
    for f in weights["files"].as_array().expect("files") {
        let mut tensors = Vec::new();
        for t in f["tensors"].as_array().expect("tensors") {
            let tname = t["name"].as_str().unwrap();
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let (dtype, bytes) =
                tensor_bytes(tname, t["dtype"].as_str().unwrap(), shape.iter().product());
            tensors.push(Tensor {
                name: tname.to_string(),
                dtype,
                shape,
                data: TensorBytes::Owned(Arc::from(bytes)),
            });
        }
        wfs.push(WeightFile {
            file_name: f["file"].as_str().unwrap().to_string(),
            tensors,
        });
    }
    Fixture {
        name: name.to_string(),
        model: HfModel {
            dir_name: expected["dir_name"].as_str().unwrap().to_string(),
            files,
            weights: wfs,
        },
        expected,
    }
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::String(_) => Json::String(v.as_str().unwrap_or("").to_string()),
        Value::Bool(b) => Json::Bool(*b),
        Value::F32(x) => serde_json::json!(*x as f64),
        other => serde_json::json!(other.as_u64().map(|x| x as i64).unwrap_or(-1)),
    }
}

/// Explains how `ours` differs from the reference description, for a readable failure.
fn describe_diff(ours: &[u8], want: &Json) -> String {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tmp.path(), ours).expect("write");
    let g = match GgufFile::open(tmp.path()) {
        Ok(g) => g,
        Err(e) => return format!("our output does not parse: {e}"),
    };
    let mut msgs = Vec::new();
    let want_kvs = want["kvs"].as_array().unwrap();
    let our_keys: Vec<&str> = g.metadata.iter().map(|(k, _)| k.as_str()).collect();
    let want_keys: Vec<&str> = want_kvs
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    if our_keys != want_keys {
        msgs.push(format!(
            "KV order/keys differ:\n ours: {our_keys:?}\n want: {want_keys:?}"
        ));
    }
    for wk in want_kvs {
        let key = wk["key"].as_str().unwrap();
        let Some((_, v)) = g.metadata.iter().find(|(k, _)| k == key) else {
            continue;
        };
        if wk["type"] == "array" {
            let Value::Array(a) = v else {
                msgs.push(format!("{key}: not an array"));
                continue;
            };
            if a.len() as u64 != wk["len"].as_u64().unwrap() {
                msgs.push(format!("{key}: {} elements, want {}", a.len(), wk["len"]));
            }
        } else {
            let ours = value_json(v);
            let same = match (&ours, &wk["value"]) {
                (Json::Number(a), Json::Number(b)) => {
                    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-12
                }
                (a, b) => a == b,
            };
            if !same {
                msgs.push(format!("{key}: ours {ours}, want {}", wk["value"]));
            }
        }
    }
    let want_t = want["tensors"].as_array().unwrap();
    for (i, wt) in want_t.iter().enumerate() {
        let Some(ot) = g.tensors.get(i) else {
            msgs.push(format!("missing tensor #{i} {}", wt["name"]));
            continue;
        };
        if ot.name != wt["name"].as_str().unwrap() {
            msgs.push(format!(
                "tensor #{i}: ours {}, want {}",
                ot.name, wt["name"]
            ));
            continue;
        }
        let start = (g.data_offset + ot.offset) as usize;
        let data = &ours[start..start + ot.nbytes as usize];
        if sha256_hex(data) != wt["sha256"].as_str().unwrap() {
            msgs.push(format!(
                "tensor {} data differs ({} {:?})",
                ot.name, ot.ggml_type, ot.ne
            ));
        }
    }
    if g.tensors.len() != want_t.len() {
        msgs.push(format!(
            "{} tensors, want {}",
            g.tensors.len(),
            want_t.len()
        ));
    }
    msgs.join("\n")
}

fn check_fixture(fx: &Fixture, model: &HfModel, label: &str) {
    for (outtype, want) in fx.expected["outputs"].as_object().expect("outputs") {
        let opts = GgufOptions {
            outtype: OutType::parse(outtype).expect("outtype"),
            ..Default::default()
        };
        let mut out = Vec::new();
        let report = hf_to_gguf::convert(model, &opts, &mut out)
            .unwrap_or_else(|e| panic!("{}/{label} {outtype}: {e}", fx.name));
        assert_eq!(report.file_size, out.len() as u64);
        assert_eq!(report.pre, fx.expected["pre"].as_str().unwrap());
        let want_source = if fx.expected["chkhsh"].is_null() {
            PreSource::Fixed
        } else {
            PreSource::Hash
        };
        assert_eq!(
            report.pre_source, want_source,
            "{}: where pre comes from",
            fx.name
        );
        assert_eq!(
            report.chkhsh.as_deref(),
            fx.expected["chkhsh"].as_str(),
            "{}: chkhsh",
            fx.name
        );
        let got = sha256_hex(&out);
        if got != want["sha256"].as_str().unwrap()
            || out.len() as u64 != want["size"].as_u64().unwrap()
        {
            panic!(
                "{}/{label} {outtype}: output differs from the reference ({} bytes, want {}):\n{}",
                fx.name,
                out.len(),
                want["size"],
                describe_diff(&out, want)
            );
        }
    }
}

#[test]
fn gpt2_matches_reference() {
    let fx = load_fixture("gpt2");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn gpt2_with_attention_mask_buffers_converts_like_without() {
    // The reference fails on these ("Can not map tensor 'h.0.attn.bias'"); older revisions and
    // tinylm drop them, giving the same file as a checkpoint without them.
    let fx = load_fixture("gpt2");
    let mut model = fx.model.clone();
    for l in 0..2 {
        for (suffix, len) in [("attn.bias", 64 * 64), ("attn.masked_bias", 1)] {
            model.weights[0].tensors.push(Tensor {
                name: format!("transformer.h.{l}.{suffix}"),
                dtype: DType::F32,
                shape: if len == 1 { vec![] } else { vec![1, 1, 64, 64] },
                data: TensorBytes::Owned(Arc::from(vec![0u8; len * 4])),
            });
        }
    }
    check_fixture(&fx, &model, "with attn.bias buffers");
}

#[test]
fn gpt2_without_n_ctx_uses_n_positions() {
    // The reference raises KeyError('n_ctx'); tinylm takes the context length from n_positions.
    let fx = load_fixture("gpt2");
    let mut model = fx.model.clone();
    let mut cfg: serde_json::Map<String, Json> =
        serde_json::from_slice(&model.files["config.json"]).unwrap();
    assert!(cfg.remove("n_ctx").is_some());
    model.files.insert(
        "config.json".into(),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    );
    check_fixture(&fx, &model, "without n_ctx");
}
#[test]
fn llama_matches_reference() {
    let fx = load_fixture("llama");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn mistral_matches_reference() {
    let fx = load_fixture("mistral");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn qwen2_matches_reference() {
    let fx = load_fixture("qwen2");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn qwen3_matches_reference() {
    let fx = load_fixture("qwen3");
    check_fixture(&fx, &fx.model, "as generated");
}

// ---- archs-more: gpt-neox, olmo2, smollm3, phi3

#[test]
fn gptneox_matches_reference() {
    let fx = load_fixture("gptneox");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn olmo2_matches_reference() {
    let fx = load_fixture("olmo2");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn smollm3_matches_reference() {
    let fx = load_fixture("smollm3");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn phi3_matches_reference() {
    let fx = load_fixture("phi3");
    check_fixture(&fx, &fx.model, "as generated");
}

/// Runs `tinylm convert` on a fixture written out as an HF folder, with `edit` applied to its
/// config.json; returns the exit code and stderr, and checks that no output was left behind.
fn convert_edited(
    fixture: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Json>),
) -> (Option<i32>, String) {
    let fx = load_fixture(fixture);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(fx.expected["dir_name"].as_str().unwrap());
    std::fs::create_dir(&dir).unwrap();
    for (name, bytes) in &fx.model.files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    for wf in &fx.model.weights {
        tinylm::formats::safetensors::write_file(&dir.join(&wf.file_name), wf).unwrap();
    }
    let mut cfg: serde_json::Map<String, Json> =
        serde_json::from_slice(&fx.model.files["config.json"]).unwrap();
    edit(&mut cfg);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let out = tmp.path().join("out.gguf");
    let o = std::process::Command::new(crate::support::bin())
        .args([
            "convert",
            dir.to_str().unwrap(),
            "--to",
            "gguf",
            "-o",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = crate::support::assert_no_panic(&o, fixture);
    assert!(
        !out.exists(),
        "{fixture}: a failed conversion left {}",
        out.display()
    );
    (o.status.code(), err)
}

#[test]
fn new_architectures_reject_bad_config_naming_file_and_key() {
    let cases: [(&str, &str, Json, &str); 5] = [
        (
            "gptneox",
            "rotary_pct",
            Json::from("quarter"),
            "rotary_pct must be a number",
        ),
        (
            "olmo2",
            "num_key_value_heads",
            Json::from(3),
            "num_key_value_heads = 3 must divide",
        ),
        (
            "smollm3",
            "vocab_size",
            Json::from("big"),
            "vocab_size must be a non-negative integer",
        ),
        (
            "phi3",
            "rope_scaling",
            serde_json::json!({"type": "longrope", "long_factor": [1.0, 2.0], "short_factor": [1.0, 1.0]}),
            "long_factor and short_factor must have 6 values each",
        ),
        (
            "phi3",
            "original_max_position_embeddings",
            Json::from(-1),
            "original_max_position_embeddings",
        ),
    ];
    for (fixture, key, value, want) in cases {
        let (code, err) = convert_edited(fixture, |c| {
            c.insert(key.to_string(), value);
        });
        assert_eq!(code, Some(1), "{fixture} {key}: {err}");
        assert!(
            err.contains("config.json") && err.contains(want),
            "{fixture} {key}: {err}"
        );
    }
    // A tensor the architecture does not have is named too.
    let (code, err) = convert_edited("olmo2", |c| {
        c.insert("num_hidden_layers".into(), Json::from(1));
    });
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("model.layers.1.") && err.contains("num_hidden_layers = 1"),
        "{err}"
    );
}

#[test]
fn phi3_with_a_bpe_tokenizer_json_of_another_class_converts_as_bpe() {
    // The reference requires tokenizer.model unless tokenizer_class is GPT2Tokenizer ("Missing
    // tokenizer.model"); tinylm converts the byte-level tokenizer.json it has, to the same bytes.
    let fx = load_fixture("phi3");
    let mut model = fx.model.clone();
    let mut tc: serde_json::Map<String, Json> =
        serde_json::from_slice(&model.files["tokenizer_config.json"]).unwrap();
    tc.insert(
        "tokenizer_class".into(),
        Json::from("PreTrainedTokenizerFast"),
    );
    model.files.insert(
        "tokenizer_config.json".into(),
        serde_json::to_vec_pretty(&tc).unwrap(),
    );
    check_fixture(&fx, &model, "tokenizer_class PreTrainedTokenizerFast");
}

// ---- archs: SentencePiece, llama 3.2, gemma family

#[test]
fn tinyllama_sentencepiece_matches_reference() {
    // tokenizer.model (Llama 2's) next to tokenizer.json: the reference reads tokenizer.model.
    let fx = load_fixture("tinyllama");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn mistral_v03_sentencepiece_matches_reference() {
    // tokenizer.model only, 768 control pieces after Llama 2's, added_tokens_decoder.
    let fx = load_fixture("mistral-spm");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn phi3_mini_sentencepiece_matches_reference() {
    // Phi-3-mini: Llama 2's tokenizer.model plus added_tokens.json (32000..32010), vocab padded
    // to 32064: Phi3MiniModel.set_vocab's SentencePiece branch, not the Llama one.
    let fx = load_fixture("phi3-spm");
    assert!(fx.model.files.contains_key("added_tokens.json"));
    check_fixture(&fx, &fx.model, "as generated");
    // The same folder on disk through `tinylm convert`: bf16 weights stored as they are are
    // copied file to file (copy_file_range) and the GGUF written by position; same bytes.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(fx.expected["dir_name"].as_str().unwrap());
    tinylm::convert::tinylm_to_hf::write_hf_dir(&fx.model, &dir).unwrap();
    for outtype in ["bf16", "f16", "f32"] {
        let out = tmp.path().join(format!("{outtype}.gguf"));
        let run = std::process::Command::new(crate::support::bin())
            .args([
                "convert",
                dir.to_str().unwrap(),
                "--to",
                "gguf",
                "--outtype",
                outtype,
                "-o",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let want = &fx.expected["outputs"][outtype]["sha256"];
        assert_eq!(
            sha256_hex(&std::fs::read(&out).unwrap()),
            want.as_str().unwrap(),
            "tinylm convert --outtype {outtype}"
        );
    }
}

#[test]
fn llama_hf_tokenizer_json_only_matches_reference() {
    // no tokenizer.model: an SPM-style tokenizer.json (BPE + byte fallback), _set_vocab_llama_hf.
    let fx = load_fixture("llama-hf");
    assert!(!fx.model.files.contains_key("tokenizer.model"));
    check_fixture(&fx, &fx.model, "as generated");
}

/// tinylm's GGUFs of the SentencePiece-style fixtures tokenize, in tinylm's own tokenizer, to
/// llama.cpp's ids (llama-tokenize on the same GGUF; the reference converter's GGUF gives the
/// same ids), not transformers': where the two differ is documented in docs/hf-to-gguf.md
/// ("Tokenization: llama.cpp vs transformers"). Golden: scripts/conformance/spm_tokenization.py.
#[test]
fn spm_fixture_vocabularies_tokenize_as_llama_cpp_does() {
    let g: Json = serde_json::from_slice(
        &std::fs::read(golden_dir().join("spm_tokenization.json")).expect("golden"),
    )
    .expect("json");
    let texts: Vec<&str> = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let ids = |v: &Json| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let mut differ = BTreeMap::new();
    for case in g["cases"].as_array().unwrap() {
        let name = case["fixture"].as_str().unwrap();
        let fx = load_fixture(name);
        let mut out = Vec::new();
        hf_to_gguf::convert(&fx.model, &GgufOptions::default(), &mut out).unwrap();
        let path = tmp.path().join(format!("{name}.gguf"));
        std::fs::write(&path, &out).unwrap();
        let tok = tinylm::infer::Tokenizer::from_gguf(&GgufFile::open(&path).unwrap(), None)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut failures = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let want = ids(&case["llama_cpp"][i]);
            let got = tok.encode(text, true, true);
            if got != want {
                failures.push(format!(
                    "{name} text {i} {text:?}\n  llama.cpp {want:?}\n  tinylm    {got:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        let n = (0..texts.len())
            .filter(|&i| ids(&case["llama_cpp"][i]) != ids(&case["transformers"][i]))
            .count();
        differ.insert(name.to_string(), n);
    }
    // The counts docs/hf-to-gguf.md quotes.
    let want: BTreeMap<String, usize> = [("llama-hf", 24), ("mistral-spm", 60), ("tinyllama", 20)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(differ, want, "of {} texts", texts.len());
}

#[test]
fn llama32_tied_rope_scaling_matches_reference() {
    // rope_type llama3 (rope_freqs), head_dim != hidden/heads, tied embeddings.
    let fx = load_fixture("llama32");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn gemma_matches_reference() {
    // tokenizer.model (a small trained Gemma-style BPE model), norms + 1, no lm_head, eot 107.
    let fx = load_fixture("gemma");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn gemma_lm_head_is_dropped_silently() {
    // AutoAWQ exports carry an unused lm_head.weight; the reference skips it: same output.
    let fx = load_fixture("gemma");
    let mut model = fx.model.clone();
    let emb = model.weights[0]
        .tensors
        .iter()
        .find(|t| t.name == "model.embed_tokens.weight")
        .expect("embedding")
        .clone();
    model.weights[0].tensors.push(Tensor {
        name: "lm_head.weight".into(),
        ..emb
    });
    check_fixture(&fx, &model, "with lm_head");
}

#[test]
fn gemma2_matches_reference() {
    // post-norms, soft-capping and sliding window KVs, F16 weights (norm + 1 rounded in F16).
    let fx = load_fixture("gemma2");
    check_fixture(&fx, &fx.model, "as generated");
}

#[test]
fn gemma3_matches_reference() {
    // text-only Gemma3ForCausalLM: q/k norms, linear rope scaling, local rope base, config
    // vocab_size larger than tokenizer.model ([PAD] tokens), BF16 weights.
    let fx = load_fixture("gemma3");
    check_fixture(&fx, &fx.model, "as generated");
}
