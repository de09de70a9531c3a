//! HF folders with `pytorch_model*.bin` weights (torch pickles): tinylm's GGUF must be
//! byte-identical to llama.cpp's convert_hf_to_gguf.py, and broken folders must fail clearly.
//!
//! The folders under tests/golden/hf_to_gguf/gpt2-bin/ and their expected.json were produced by
//! scripts/golden/make_bin_golden.py: `single` (one pytorch_model.bin saved by transformers),
//! `sharded` (two shards plus pytorch_model.bin.index.json) and `views` (plain torch.save with
//! transposed views, slices of a shared storage and a tied lm_head, in reversed dict order).

use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::formats::gguf::GgufFile;

use crate::support::sha256_hex;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hf_to_gguf/gpt2-bin")
}

fn expected() -> Json {
    let bytes = std::fs::read(golden().join("expected.json")).expect("expected.json");
    serde_json::from_slice(&bytes).expect("expected.json is JSON")
}

fn convert(model: &HfModel, outtype: &str) -> Vec<u8> {
    let opts = GgufOptions {
        outtype: OutType::parse(outtype).expect("outtype"),
        // The tokenizer is custom-trained; the generator patched the reference to 'llama-bpe'.
        pre_override: Some(expected()["pre"].as_str().expect("pre").to_string()),
        ..Default::default()
    };
    let mut out = Vec::new();
    hf_to_gguf::convert(model, &opts, &mut out).unwrap_or_else(|e| panic!("{outtype}: {e}"));
    out
}

/// Tensor names of `bytes` that differ in order or data from the reference description.
fn tensor_diff(bytes: &[u8], want: &Json) -> String {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(tmp.path(), bytes).expect("write");
    let g = GgufFile::open(tmp.path()).expect("our GGUF parses");
    let mut msgs = Vec::new();
    for (i, wt) in want["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .enumerate()
    {
        let Some(ot) = g.tensors.get(i) else {
            msgs.push(format!("missing tensor #{i} {}", wt["name"]));
            continue;
        };
        if ot.name != wt["name"].as_str().unwrap_or_default() {
            msgs.push(format!(
                "tensor #{i}: ours {}, want {}",
                ot.name, wt["name"]
            ));
        } else if sha256_hex(g.tensor_data(ot)) != wt["sha256"].as_str().unwrap_or_default() {
            msgs.push(format!("tensor {} data differs", ot.name));
        }
    }
    msgs.join("\n")
}

#[test]
fn bin_folders_match_the_reference_for_every_outtype() {
    let exp = expected();
    let variants = exp["variants"].as_object().expect("variants");
    assert_eq!(variants.len(), 3);
    for (variant, v) in variants {
        let model =
            HfModel::open(golden().join(variant)).unwrap_or_else(|e| panic!("{variant}: {e}"));
        assert!(model.weights.iter().all(|w| w.file_name.ends_with(".bin")));
        let outputs = v["outputs"].as_object().expect("outputs");
        assert_eq!(outputs.len(), 5, "f32, f16, bf16, q8_0 and auto");
        for (outtype, want) in outputs {
            let ours = convert(&model, outtype);
            assert!(
                sha256_hex(&ours) == want["sha256"].as_str().unwrap_or_default()
                    && ours.len() as u64 == want["size"].as_u64().unwrap_or_default(),
                "{variant} {outtype}: differs from the reference ({} bytes, want {}):\n{}",
                ours.len(),
                want["size"],
                tensor_diff(&ours, want)
            );
        }
    }
}

#[test]
fn pickle_tensors_keep_their_stored_order() {
    // The reference iterates a pickle's dict in stored order (safetensors: sorted by name), so
    // `views`, saved in reversed order, starts with the tied output head.
    let model = HfModel::open(golden().join("views")).unwrap();
    let names: Vec<&str> = model.weights[0]
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names.first(), Some(&"lm_head.weight"));
    assert_eq!(names.last(), Some(&"transformer.wte.weight"));
    let out = convert(&model, "f16");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &out).unwrap();
    let g = GgufFile::open(tmp.path()).unwrap();
    assert_eq!(g.tensors[0].name, "output.weight");
}

/// Copies one golden variant into a fresh temp dir for mutation.
fn copy_variant(variant: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(golden().join(variant)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

fn open_err(dir: &Path) -> String {
    match HfModel::open(dir) {
        Ok(_) => panic!("expected an error for {}", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn safetensors_win_over_bin_files_like_the_reference() {
    let tmp = copy_variant("single");
    // A one-tensor safetensors file: if it were ignored the model would open with 28 tensors.
    let header = br#"{"transformer.wte.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0u8; 4]);
    std::fs::write(tmp.path().join("model.safetensors"), st).unwrap();
    let model = HfModel::open(tmp.path()).unwrap();
    let files: Vec<&str> = model.weights.iter().map(|w| w.file_name.as_str()).collect();
    assert_eq!(files, vec!["model.safetensors"]);
}

#[test]
fn missing_bin_shard_is_an_error_naming_it() {
    let tmp = copy_variant("sharded");
    std::fs::remove_file(tmp.path().join("pytorch_model-00002-of-00002.bin")).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("missing shard") && e.contains("pytorch_model-00002-of-00002.bin"),
        "{e}"
    );
}

#[test]
fn bin_index_naming_an_absent_tensor_is_an_error() {
    let tmp = copy_variant("sharded");
    let path = tmp.path().join("pytorch_model.bin.index.json");
    let mut index: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    index["weight_map"]["transformer.h.9.mlp.c_fc.weight"] =
        Json::String("pytorch_model-00001-of-00002.bin".into());
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains("pytorch_model-00001-of-00002.bin")
            && e.contains("transformer.h.9.mlp.c_fc.weight"),
        "{e}"
    );
}

#[test]
fn bin_shard_holding_unlisted_tensors_is_an_error() {
    let tmp = copy_variant("sharded");
    let path = tmp.path().join("pytorch_model.bin.index.json");
    let mut index: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let map = index["weight_map"].as_object_mut().unwrap();
    let victim = map.keys().next().unwrap().clone();
    map.remove(&victim);
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    let e = open_err(tmp.path());
    assert!(
        e.contains(&victim) && e.contains("pytorch_model.bin.index.json") && e.contains("disagree"),
        "{e}"
    );
}

#[test]
fn truncated_or_garbage_bin_is_an_error_naming_the_file() {
    let tmp = copy_variant("single");
    let path = tmp.path().join("pytorch_model.bin");
    let bytes = std::fs::read(&path).unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 10, 100, 0] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = open_err(tmp.path());
        assert!(e.contains("pytorch_model.bin"), "cut at {cut}: {e}");
    }
    std::fs::write(&path, b"this is not a torch checkpoint").unwrap();
    let e = open_err(tmp.path());
    assert!(e.contains("pytorch_model.bin"), "{e}");
}
