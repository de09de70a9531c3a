//! Bad inputs to the HF reader and the GGUF converter: clear errors, no panics, no partial file.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType, PreSource};
use tinylm::formats::DType;
use tinylm::formats::tensor::{Tensor, TensorBytes, WeightFile};

/// A safetensors file with the given (name, shape) f32 tensors, all zeros.
fn safetensors(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (name, shape) in tensors {
        let n: usize = shape.iter().product::<usize>() * 4;
        header.insert(
            name.to_string(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}),
        );
        off += n;
    }
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend(std::iter::repeat_n(0u8, off));
    out
}

fn gpt2_config() -> serde_json::Value {
    json!({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 300
    })
}

fn write_dir(dir: &Path, config: &serde_json::Value, files: &[(&str, Vec<u8>)]) {
    std::fs::write(dir.join("config.json"), serde_json::to_vec(config).unwrap()).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn err_of(dir: &Path) -> String {
    match HfModel::open(dir) {
        Ok(_) => panic!("expected an error for {}", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_safetensors_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut st = safetensors(&[("wte.weight", vec![300, 8])]);
    st.truncate(st.len() - 100);
    write_dir(tmp.path(), &gpt2_config(), &[("model.safetensors", st)]);
    let e = err_of(tmp.path());
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    assert!(e.contains("wte.weight"), "{e}");
}

#[test]
fn header_longer_than_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut st = safetensors(&[("wte.weight", vec![4])]);
    st[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    write_dir(tmp.path(), &gpt2_config(), &[("model.safetensors", st)]);
    let e = err_of(tmp.path());
    assert!(e.contains("header claims"), "{e}");
}

#[test]
fn header_lying_about_sizes_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let header = json!({"wte.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 32]}});
    let h = serde_json::to_vec(&header).unwrap();
    let mut st = (h.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(&h);
    st.extend(std::iter::repeat_n(0u8, 64));
    write_dir(tmp.path(), &gpt2_config(), &[("model.safetensors", st)]);
    let e = err_of(tmp.path());
    assert!(
        e.contains("needs 64 bytes") && e.contains("inconsistent"),
        "{e}"
    );
}

#[test]
fn overlapping_tensors_are_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let header = json!({
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}
    });
    let h = serde_json::to_vec(&header).unwrap();
    let mut st = (h.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(&h);
    st.extend(std::iter::repeat_n(0u8, 24));
    write_dir(tmp.path(), &gpt2_config(), &[("model.safetensors", st)]);
    assert!(err_of(tmp.path()).contains("overlap"));
}

#[test]
fn garbage_is_not_safetensors() {
    let tmp = tempfile::tempdir().unwrap();
    write_dir(
        tmp.path(),
        &gpt2_config(),
        &[("model.safetensors", b"abc".to_vec())],
    );
    assert!(err_of(tmp.path()).contains("too short"));
    let tmp = tempfile::tempdir().unwrap();
    let mut st = 5u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{xx}!");
    write_dir(tmp.path(), &gpt2_config(), &[("model.safetensors", st)]);
    assert!(err_of(tmp.path()).contains("not valid JSON"));
}

fn sharded(dir: &Path, index: serde_json::Value, shards: &[(&str, Vec<u8>)]) {
    let mut files: Vec<(&str, Vec<u8>)> = shards.to_vec();
    files.push((
        "model.safetensors.index.json",
        serde_json::to_vec(&index).unwrap(),
    ));
    write_dir(dir, &gpt2_config(), &files);
}

#[test]
fn missing_shard_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    sharded(
        tmp.path(),
        json!({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}),
        &[(
            "model-00001-of-00002.safetensors",
            safetensors(&[("a", vec![2])]),
        )],
    );
    let e = err_of(tmp.path());
    assert!(
        e.contains("missing shard") && e.contains("model-00002-of-00002.safetensors"),
        "{e}"
    );
}

#[test]
fn shard_missing_a_tensor_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    sharded(
        tmp.path(),
        json!({"weight_map": {"a": "model-00001-of-00001.safetensors", "b": "model-00001-of-00001.safetensors"}}),
        &[(
            "model-00001-of-00001.safetensors",
            safetensors(&[("a", vec![2])]),
        )],
    );
    let e = err_of(tmp.path());
    assert!(e.contains("incomplete") && e.contains("'b'"), "{e}");
}

#[test]
fn shard_with_unlisted_tensor_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    sharded(
        tmp.path(),
        json!({"weight_map": {"a": "model-00001-of-00001.safetensors"}}),
        &[(
            "model-00001-of-00001.safetensors",
            safetensors(&[("a", vec![2]), ("zz", vec![2])]),
        )],
    );
    let e = err_of(tmp.path());
    assert!(e.contains("'zz'") && e.contains("disagree"), "{e}");
}

#[test]
fn sharded_folder_reads_parts_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    sharded(
        tmp.path(),
        json!({"weight_map": {"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors"}}),
        &[
            (
                "model-00001-of-00002.safetensors",
                safetensors(&[("a", vec![2, 3])]),
            ),
            (
                "model-00002-of-00002.safetensors",
                safetensors(&[("b", vec![4])]),
            ),
        ],
    );
    let m = HfModel::open(tmp.path()).unwrap();
    let names: Vec<(&str, &str)> = m
        .weights
        .iter()
        .flat_map(|w| {
            w.tensors
                .iter()
                .map(|t| (w.file_name.as_str(), t.name.as_str()))
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("model-00001-of-00002.safetensors", "a"),
            ("model-00002-of-00002.safetensors", "b")
        ]
    );
    assert_eq!(m.weights[0].tensors[0].shape, vec![2, 3]);
    assert_eq!(m.weights[0].tensors[0].data.as_bytes().len(), 24);
}

#[test]
fn missing_config_and_weights_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(err_of(tmp.path()).contains("config.json"));
    write_dir(tmp.path(), &gpt2_config(), &[]);
    assert!(err_of(tmp.path()).contains("no weights found"));
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"x").unwrap();
    assert!(err_of(tmp.path()).contains("pytorch_model"));
}

/// A tiny in-memory GPT-2 with a byte-level tokenizer of `n_vocab` tokens.
fn tiny_gpt2(config: serde_json::Value, emb_rows: usize) -> HfModel {
    let n_embd = 8usize;
    let mut tensors = Vec::new();
    let mut add = |name: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        tensors.push(Tensor {
            name: name.into(),
            dtype: DType::F32,
            shape,
            data: TensorBytes::Owned(Arc::from(vec![0u8; n * 4])),
        });
    };
    add("wte.weight", vec![emb_rows, n_embd]);
    add("wpe.weight", vec![16, n_embd]);
    add("ln_f.weight", vec![n_embd]);
    add("ln_f.bias", vec![n_embd]);
    add("h.0.ln_1.weight", vec![n_embd]);
    add("h.0.ln_1.bias", vec![n_embd]);
    add("h.0.attn.c_attn.weight", vec![n_embd, 3 * n_embd]);
    add("h.0.attn.c_attn.bias", vec![3 * n_embd]);
    add("h.0.attn.c_proj.weight", vec![n_embd, n_embd]);
    add("h.0.attn.c_proj.bias", vec![n_embd]);
    add("h.0.ln_2.weight", vec![n_embd]);
    add("h.0.ln_2.bias", vec![n_embd]);
    add("h.0.mlp.c_fc.weight", vec![n_embd, 4 * n_embd]);
    add("h.0.mlp.c_fc.bias", vec![4 * n_embd]);
    add("h.0.mlp.c_proj.weight", vec![4 * n_embd, n_embd]);
    add("h.0.mlp.c_proj.bias", vec![n_embd]);
    // 256 byte tokens in the GPT-2 alphabet + 44 merges-free extra tokens
    let mut vocab = serde_json::Map::new();
    let mut bs: Vec<u32> = (0x21..=0x7E)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    for (i, c) in cs.iter().enumerate() {
        vocab.insert(char::from_u32(*c).unwrap().to_string(), json!(i));
    }
    vocab.insert("Ġt".into(), json!(256));
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 257, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"},
             "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                  "vocab": vocab, "merges": [["Ġ", "t"]]}
    });
    let mut files = BTreeMap::new();
    files.insert("config.json".into(), serde_json::to_vec(&config).unwrap());
    files.insert(
        "tokenizer.json".into(),
        serde_json::to_vec(&tokenizer).unwrap(),
    );
    files.insert(
        "tokenizer_config.json".into(),
        serde_json::to_vec(
            &json!({"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}),
        )
        .unwrap(),
    );
    HfModel {
        dir_name: "tiny-custom".into(),
        files,
        weights: vec![WeightFile {
            file_name: "model.safetensors".into(),
            tensors,
        }],
    }
}

#[test]
fn vocab_size_must_match_embedding_rows() {
    let m = tiny_gpt2(gpt2_config(), 299);
    let e = hf_to_gguf::plan(&m, &GgufOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("vocab_size is 300") && e.contains("299 rows"),
        "{e}"
    );
}

#[test]
fn unsupported_architecture_fails_up_front_listing_supported_ones() {
    let mut cfg = gpt2_config();
    cfg["architectures"] = json!(["FalconForCausalLM"]);
    let m = tiny_gpt2(cfg, 300);
    let e = hf_to_gguf::plan(&m, &GgufOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("'FalconForCausalLM' is not supported"), "{e}");
    assert!(
        e.contains("GPT2LMHeadModel") && e.contains("Qwen2ForCausalLM"),
        "{e}"
    );
}

/// A tiny Llama folder on disk (zero weights, 300-token vocabulary) with `tokenizer_model`
/// as its `tokenizer.model`.
fn tiny_llama_dir(dir: &Path, arch: &str, model_type: &str, tokenizer_model: &[u8]) {
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![300, 8]),
        ("model.norm.weight".into(), vec![8]),
        ("lm_head.weight".into(), vec![300, 8]),
    ];
    for (n, shape) in [
        ("input_layernorm.weight", vec![8]),
        ("post_attention_layernorm.weight", vec![8]),
        ("self_attn.q_proj.weight", vec![8, 8]),
        ("self_attn.k_proj.weight", vec![8, 8]),
        ("self_attn.v_proj.weight", vec![8, 8]),
        ("self_attn.o_proj.weight", vec![8, 8]),
        ("mlp.gate_proj.weight", vec![16, 8]),
        ("mlp.up_proj.weight", vec![16, 8]),
        ("mlp.down_proj.weight", vec![8, 16]),
    ] {
        t.push((format!("model.layers.0.{n}"), shape));
    }
    let refs: Vec<(&str, Vec<usize>)> = t.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    let config = json!({
        "architectures": [arch], "model_type": model_type, "hidden_size": 8,
        "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2, "head_dim": 4, "vocab_size": 300, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6
    });
    write_dir(
        dir,
        &config,
        &[
            ("model.safetensors", safetensors(&refs)),
            ("tokenizer.model", tokenizer_model.to_vec()),
        ],
    );
}

#[test]
fn corrupt_tokenizer_model_fails_with_the_file_named_and_exit_1() {
    // A SentencePiece vocabulary is read from tokenizer.model; a damaged one must not panic or
    // leave an output, and the message must say which file and what is wrong with it.
    for (arch, model_type) in [("LlamaForCausalLM", "llama"), ("GemmaForCausalLM", "gemma")] {
        for (what, bytes) in [
            ("truncated", b"\x0a\x0b\x0a\x05<unk>".to_vec()),
            ("not protobuf", b"\xff\xff\xff\xff".to_vec()),
            // one NORMAL piece "a": decodes, but sentencepiece refuses a model without <unk>
            ("no unknown piece", b"\x0a\x03\x0a\x01a".to_vec()),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let model = tmp.path().join("model");
            std::fs::create_dir(&model).unwrap();
            tiny_llama_dir(&model, arch, model_type, &bytes);
            let out = tmp.path().join("out.gguf");
            let o = std::process::Command::new(crate::support::bin())
                .args(["convert", model.to_str().unwrap(), "--to", "gguf", "-o"])
                .arg(&out)
                .output()
                .unwrap();
            let stderr = crate::support::assert_no_panic(&o, &format!("{arch} {what}"));
            assert_eq!(o.status.code(), Some(1), "{arch} {what}: {stderr}");
            assert!(
                stderr.contains("tokenizer.model"),
                "{arch} {what}: {stderr}"
            );
            assert!(
                stderr.contains("SentencePiece") || stderr.contains("unknown piece"),
                "{arch} {what}: {stderr}"
            );
            assert!(!out.exists(), "{arch} {what}: no output on failure");
        }
    }
}

#[test]
fn gemma_without_tokenizer_model_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_llama_dir(tmp.path(), "GemmaForCausalLM", "gemma", b"");
    std::fs::remove_file(tmp.path().join("tokenizer.model")).unwrap();
    let m = HfModel::open(tmp.path()).unwrap();
    let e = hf_to_gguf::plan(&m, &GgufOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("tokenizer.model") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn custom_tokenizer_gets_structural_pre_with_warning_and_override() {
    let m = tiny_gpt2(gpt2_config(), 300);
    let r = hf_to_gguf::plan(&m, &GgufOptions::default())
        .unwrap()
        .report;
    assert_eq!(r.pre, "llama-bpe");
    assert!(
        matches!(r.pre_source, PreSource::Approximation(_)),
        "{:?}",
        r.pre_source
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("{1,2}")),
        "{:?}",
        r.warnings
    );
    let r = hf_to_gguf::plan(
        &m,
        &GgufOptions {
            pre_override: Some("qwen2".into()),
            ..Default::default()
        },
    )
    .unwrap()
    .report;
    assert_eq!(
        (r.pre.as_str(), r.pre_source),
        ("qwen2", PreSource::Override)
    );
}

#[test]
fn failed_conversion_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    let m = tiny_gpt2(gpt2_config(), 299);
    assert!(hf_to_gguf::convert_to_path(&m, &GgufOptions::default(), &out).is_err());
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temp file left"
    );
    // cancelled mid-write: no file either
    let m = tiny_gpt2(gpt2_config(), 300);
    let opts = GgufOptions {
        outtype: OutType::F32,
        cancel: Some(Arc::new(std::sync::atomic::AtomicBool::new(true))),
        ..Default::default()
    };
    let e = hf_to_gguf::convert_to_path(&m, &opts, &out).err().unwrap();
    assert!(matches!(e, hf_to_gguf::ConvertError::Cancelled), "{e}");
    assert!(!out.exists());
    // and a successful one does write it
    let r = hf_to_gguf::convert_to_path(&m, &GgufOptions::default(), &out).unwrap();
    assert_eq!(std::fs::metadata(&out).unwrap().len(), r.file_size);
    assert_eq!(r.arch, "gpt2");
}
