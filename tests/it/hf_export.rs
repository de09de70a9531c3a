//! tiny-lm → HF export compared byte for byte with goldens made by the reference tools
//! (`scripts/conformance/hf_export.py --update-golden`: transformers / tokenizers
//! `save_pretrained` on an independent Python export, sha256 per tensor, tiktoken ids).

use std::path::{Path, PathBuf};

use tinylm::convert::hf::HfModel;
use tinylm::convert::tinylm_to_hf::{
    ExportOptions, TinyLmArch, TinyLmInputs, export, write_hf_dir,
};
use tinylm::formats::tensor::TensorBytes;
use tinylm::formats::{DType, safetensors};

use crate::support::{self, sha256_hex as hex};

const FIXTURES: &[&str] = &[
    "tinylm-gpt2",
    "tinylm-llama3",
    "synthetic-gpt2-bias",
    "synthetic-llama3-bias",
    "synthetic-llama3-nobias",
];
const DTYPES: &[(DType, &str)] = &[
    (DType::F32, "f32"),
    (DType::F16, "f16"),
    (DType::BF16, "bf16"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inputs(fx: &str) -> TinyLmInputs {
    support::tinylm_inputs(&support::fixture(fx))
}

fn golden(fx: &str, file: &str) -> Vec<u8> {
    let p = root().join("tests/golden/hf_export").join(fx).join(file);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn export_fx(fx: &str, dtype: DType) -> HfModel {
    let opts = ExportOptions {
        dtype,
        dir_name: fx.into(),
    };
    export(&inputs(fx), &opts).unwrap_or_else(|e| panic!("{fx}: {e}"))
}

fn safetensors_bytes(model: &HfModel) -> Vec<u8> {
    let mut out = Vec::new();
    safetensors::write(&mut out, &model.weights[0]).unwrap();
    out
}

/// `name dtype [shape] sha256` per tensor in stored order, then the whole file's sha256.
fn tensor_lines(model: &HfModel) -> String {
    let mut s = String::new();
    for t in &model.weights[0].tensors {
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        s += &format!(
            "{} {} [{}] {}\n",
            t.name,
            t.dtype.safetensors_name(),
            dims.join(","),
            hex(t.data.as_bytes())
        );
    }
    s += &format!("<file> - - {}\n", hex(&safetensors_bytes(model)));
    s
}

#[test]
fn exports_match_reference_goldens_byte_for_byte() {
    for fx in FIXTURES {
        for (dtype, tag) in DTYPES {
            let model = export_fx(fx, *dtype);
            let names: Vec<&str> = model.files.keys().map(String::as_str).collect();
            assert_eq!(
                names,
                [
                    "config.json",
                    "generation_config.json",
                    "special_tokens_map.json",
                    "tokenizer.json",
                    "tokenizer_config.json"
                ],
                "{fx}"
            );
            for (name, bytes) in &model.files {
                let want = if name == "config.json" {
                    golden(fx, &format!("config.{tag}.json"))
                } else {
                    golden(fx, name)
                };
                assert!(
                    *bytes == want,
                    "{fx} {tag} {name} differs from the reference:\n--- ours\n{}\n--- reference\n{}",
                    String::from_utf8_lossy(bytes),
                    String::from_utf8_lossy(&want)
                );
            }
            assert_eq!(model.weights.len(), 1);
            assert_eq!(model.weights[0].file_name, "model.safetensors");
            let want = String::from_utf8(golden(fx, &format!("tensors.{tag}.txt"))).unwrap();
            assert_eq!(tensor_lines(&model), want, "{fx} {tag} tensors");
        }
    }
}

#[test]
fn unchanged_tensors_stay_zero_copy() {
    let model = export_fx("tinylm-llama3", DType::F32);
    let t = |n: &str| {
        model.weights[0]
            .tensors
            .iter()
            .find(|t| t.name == n)
            .unwrap()
    };
    assert!(matches!(
        t("model.embed_tokens.weight").data,
        TensorBytes::Mapped { .. }
    ));
    assert!(matches!(
        t("model.layers.0.self_attn.v_proj.weight").data,
        TensorBytes::Mapped { .. }
    ));
    // q is permuted, so it is a new buffer.
    assert!(matches!(
        t("model.layers.0.self_attn.q_proj.weight").data,
        TensorBytes::Owned(_)
    ));
}

#[test]
fn written_folder_equals_the_in_memory_model_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    for fx in ["tinylm-gpt2", "synthetic-llama3-nobias"] {
        let out = dir.path().join(fx);
        let model = export_fx(fx, DType::BF16);
        write_hf_dir(&model, &out).unwrap();
        for (name, bytes) in &model.files {
            assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
        }
        let on_disk = std::fs::read(out.join("model.safetensors")).unwrap();
        assert_eq!(on_disk, safetensors_bytes(&model));
        // Reading the folder back gives the same tensors in the same order.
        let back = safetensors::read(&out.join("model.safetensors")).unwrap();
        let a: Vec<(&str, &[u8])> = back
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.data.as_bytes()))
            .collect();
        let b: Vec<(&str, &[u8])> = model.weights[0]
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.data.as_bytes()))
            .collect();
        assert_eq!(a, b);
        // A second export and write gives identical bytes.
        let again = dir.path().join(format!("{fx}-again"));
        write_hf_dir(&export_fx(fx, DType::BF16), &again).unwrap();
        for name in std::fs::read_dir(&out).unwrap() {
            let name = name.unwrap().file_name();
            assert_eq!(
                std::fs::read(out.join(&name)).unwrap(),
                std::fs::read(again.join(&name)).unwrap(),
                "{name:?}"
            );
        }
    }
}

/// Our tokenizer.json, run by the HF `tokenizers` engine (pure-Rust fancy-regex backend),
/// must give tiktoken's ids on the torture texts.
#[test]
fn tokenizer_json_reproduces_tiktoken_ids() {
    for fx in ["tinylm-gpt2", "tinylm-llama3"] {
        let model = export_fx(fx, DType::F32);
        let tok = tokenizers::Tokenizer::from_bytes(&model.files["tokenizer.json"]).unwrap();
        let torture: serde_json::Value =
            serde_json::from_slice(&golden(fx, "torture.json")).unwrap();
        let texts = torture["texts"].as_array().unwrap();
        let ids = torture["tiktoken_ids"].as_array().unwrap();
        assert!(texts.len() >= 5);
        for (text, want) in texts.iter().zip(ids) {
            let text = text.as_str().unwrap();
            let want: Vec<u32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let enc = tok.encode(text, false).unwrap();
            assert_eq!(enc.get_ids(), want.as_slice(), "{fx}: {text:?}");
            assert_eq!(tok.decode(&want, false).unwrap(), text, "{fx}");
        }
        // With special tokens on, <bos> is prepended (TemplateProcessing).
        let bos = tok.token_to_id("<bos>").unwrap();
        assert_eq!(tok.encode("hi", true).unwrap().get_ids()[0], bos);
    }
}

#[test]
fn arch_is_inferred_and_mismatch_is_an_error() {
    let mut i = inputs("tinylm-gpt2");
    i.arch = Some(TinyLmArch::Gpt2);
    assert!(export(&i, &ExportOptions::default()).is_ok());
    i.arch = Some(TinyLmArch::Llama3);
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("--arch llama3 was given"), "{msg}");
    assert!(msg.contains("tiny-lm gpt2 model"), "{msg}");
}

#[test]
fn mismatched_config_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(root().join("tests/fixtures/tinylm-llama3/model.yaml"))
        .unwrap()
        .replace("n_layers: 2", "n_layers: 3");
    let p = dir.path().join("model.yaml");
    std::fs::write(&p, yaml).unwrap();
    let mut i = inputs("tinylm-llama3");
    i.config = p.clone();
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing tensors [model.blocks.2."), "{msg}");
    assert!(msg.contains("model.blocks.2.attn.W_q.weight"), "{msg}");
    assert!(
        msg.contains("expected exactly [model.token_emb.weight"),
        "{msg}"
    );

    let yaml = std::fs::read_to_string(root().join("tests/fixtures/tinylm-llama3/model.yaml"))
        .unwrap()
        .replace("n_kv_heads: 2", "n_kv_heads: 4");
    std::fs::write(&p, yaml).unwrap();
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("model.blocks.0.attn.W_k.weight has shape [32, 64], expected [64, 64]"),
        "{msg}"
    );

    let yaml = std::fs::read_to_string(root().join("tests/fixtures/tinylm-llama3/model.yaml"))
        .unwrap()
        .replace("vocab_size: 768", "vocab_size: 700");
    std::fs::write(&p, yaml).unwrap();
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("the tokenizer has 768 ids"), "{msg}");

    std::fs::write(&p, "d_model: [").unwrap();
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.yaml"), "{msg}");
}

#[test]
fn wrong_inputs_are_reported_with_their_path() {
    let mut i = inputs("tinylm-gpt2");
    i.tokenizer = root().join("tests/fixtures/tinylm-gpt2/model.yaml");
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("model.yaml"), "{msg}");
    let mut i = inputs("tinylm-gpt2");
    i.checkpoint = root().join("tests/fixtures/pytorch/legacy.pt");
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("legacy.pt") && msg.contains("re-save"),
        "{msg}"
    );
    let mut i = inputs("tinylm-gpt2");
    i.checkpoint = Path::new("/nonexistent/last.ckpt").into();
    let msg = export(&i, &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/last.ckpt"), "{msg}");
    let opts = ExportOptions {
        dtype: DType::I64,
        ..Default::default()
    };
    let msg = export(&inputs("tinylm-gpt2"), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("choose f32, f16 or bf16"), "{msg}");
}
