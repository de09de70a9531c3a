//! The GGUF tokenizer gives llama-tokenize's ids for every pre-tokenizer tinylm implements, on a
//! torture text (unicode, digits, whitespace runs, code, special-token strings). Goldens:
//! scripts/golden/infer/make_tokenizer_goldens.py.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions};
use tinylm::formats::gguf::GgufFile;
use tinylm::infer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gpt2_vocab(dir: &Path) -> GgufFile {
    let xz = std::fs::read(root().join("tests/fixtures/vocab/ggml-vocab-gpt-2.gguf.xz")).unwrap();
    let mut raw = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut raw).unwrap();
    let p = dir.join("ggml-vocab-gpt-2.gguf");
    std::fs::write(&p, raw).unwrap();
    GgufFile::open(&p).unwrap()
}

fn tinylm_vocab(dir: &Path) -> GgufFile {
    let fx = root().join("tests/fixtures/tinylm-llama3");
    let inputs = crate::support::tinylm_inputs(&fx);
    let hf = tinylm_to_hf::export(
        &inputs,
        &ExportOptions {
            dir_name: "last".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let p = dir.join("last.gguf");
    let mut f = std::fs::File::create(&p).unwrap();
    let opts = GgufOptions {
        outtype: OutType::F32,
        ..Default::default()
    };
    hf_to_gguf::convert(&hf, &opts, &mut f).unwrap();
    GgufFile::open(&p).unwrap()
}

#[test]
fn ids_equal_llama_tokenize_for_every_pre_tokenizer() {
    let mut s = String::new();
    std::fs::File::open(root().join("tests/golden/infer/tokenizer.json"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    let g: Json = serde_json::from_str(&s).unwrap();
    let texts: Vec<&str> = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let gpt2 = gpt2_vocab(tmp.path());
    let tl = tinylm_vocab(tmp.path());
    let (mut total, mut equal, mut tokens) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for case in g["cases"].as_array().unwrap() {
        let pre = case["pre"].as_str().unwrap();
        let file = match case["vocab"].as_str().unwrap() {
            "gpt-2" => &gpt2,
            _ => &tl,
        };
        let tok = Tokenizer::from_gguf(file, Some(pre)).unwrap();
        if case["ids"].is_null() {
            // llama-tokenize aborts (a SentencePiece-style pre on a byte-level vocabulary).
            skipped.push(pre.to_string());
            continue;
        }
        let parse_special = case["parse_special"].as_bool().unwrap();
        for (text, want) in texts.iter().zip(case["ids"].as_array().unwrap()) {
            let want: Vec<u32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let got = tok.encode(text, true, parse_special);
            total += 1;
            tokens += want.len();
            if got == want {
                equal += 1;
            } else {
                failures.push(format!(
                    "{} pre={pre} special={parse_special} text={text:?}\n  want {want:?}\n  got  {got:?}",
                    case["vocab"]
                ));
            }
        }
    }
    eprintln!(
        "{equal}/{total} texts ({tokens} tokens) equal llama-tokenize; no golden for {skipped:?}"
    );
    assert!(skipped.len() <= 4, "{skipped:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn round_trips_text_and_reports_unknown_pre() {
    let tmp = tempfile::tempdir().unwrap();
    let gpt2 = gpt2_vocab(tmp.path());
    let tok = Tokenizer::from_gguf(&gpt2, None).unwrap();
    let text = "Ünïcödé 日本語 🚀  code {x: 1}\n";
    assert_eq!(tok.decode(&tok.encode(text, false, false), false), text);
    let e = Tokenizer::from_gguf(&gpt2, Some("no-such-pre"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("not implemented"), "{e}");
}

fn xz_vocab(dir: &Path, name: &str) -> GgufFile {
    let xz = std::fs::read(root().join(format!("tests/fixtures/vocab/ggml-vocab-{name}.gguf.xz")))
        .unwrap();
    let mut raw = Vec::new();
    lzma_rs::xz_decompress(&mut &xz[..], &mut raw).unwrap();
    let p = dir.join(format!("ggml-vocab-{name}.gguf"));
    std::fs::write(&p, raw).unwrap();
    GgufFile::open(&p).unwrap()
}

/// SentencePiece vocabularies (llama-spm, phi-3, baichuan): ids equal llama-tokenize's on the
/// torture texts with and without BOS and special parsing, and on llama.cpp's own test vectors;
/// decoding gives the text back. Goldens: scripts/golden/infer/make_spm_tokenizer_goldens.py.
#[test]
fn sentencepiece_ids_equal_llama_tokenize() {
    let s = std::fs::read_to_string(root().join("tests/golden/infer/tokenizer_spm.json")).unwrap();
    let g: Json = serde_json::from_str(&s).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut vocabs = std::collections::HashMap::new();
    let (mut total, mut tokens, mut round_trips) = (0, 0, 0);
    let mut failures = Vec::new();
    for case in g["cases"].as_array().unwrap() {
        let name = case["vocab"].as_str().unwrap();
        let tok = vocabs.entry(name.to_string()).or_insert_with(|| {
            let f = xz_vocab(tmp.path(), name);
            let t = Tokenizer::from_gguf(&f, None).unwrap();
            assert_eq!(t.model(), tinylm::infer::tokenizer::Model::Spm, "{name}");
            t
        });
        let add_special = case["add_special"].as_bool().unwrap();
        let parse_special = case["parse_special"].as_bool().unwrap();
        let texts = case["texts"].as_array().unwrap();
        for (text, want) in texts.iter().zip(case["ids"].as_array().unwrap()) {
            let text = text.as_str().unwrap();
            let want: Vec<u32> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let got = tok.encode(text, add_special, parse_special);
            total += 1;
            tokens += want.len();
            if got != want {
                failures.push(format!(
                    "{name} add_special={add_special} parse_special={parse_special} text={text:?}\n  want {want:?}\n  got  {got:?}"
                ));
            }
            // Without specials in play, SentencePiece decoding is lossless.
            // (llama.cpp too turns a literal U+2581 into a space.)
            if !add_special && !parse_special && !text.contains(['<', '\u{2581}']) {
                round_trips += 1;
                let back = tok.decode(&got, false);
                if back != text {
                    failures.push(format!("{name} decode {text:?} gave {back:?}"));
                }
            }
        }
    }
    eprintln!(
        "{}/{total} texts ({tokens} tokens) equal llama-tokenize; {round_trips} round trips",
        total - failures.len()
    );
    assert!(total > 250, "{total}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `tokenizer.ggml.model = "gemma4"` is BPE with the gemma4 pre-tokenizer whatever
/// `tokenizer.ggml.pre` says, as in llama.cpp: the GPT-2 vocabulary relabelled so gives the
/// golden ids of pre "gemma4".
#[test]
fn gemma4_model_implies_the_gemma4_pre_tokenizer() {
    use tinylm::formats::gguf::{GgufWriter, Value};
    let g: Json = serde_json::from_slice(
        &std::fs::read(root().join("tests/golden/infer/tokenizer.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let gpt2 = gpt2_vocab(tmp.path());
    assert!(gpt2.tensors.is_empty());
    let mut w = GgufWriter::new();
    for (k, v) in &gpt2.metadata {
        w.add_kv(k.clone(), v.clone());
    }
    w.add_kv("tokenizer.ggml.model", Value::String(b"gemma4".to_vec()));
    let p = tmp.path().join("gemma4.gguf");
    std::fs::write(&p, w.header_bytes()).unwrap();
    let tok = Tokenizer::from_gguf(&GgufFile::open(&p).unwrap(), None).unwrap();
    assert_eq!(tok.pre, "gemma4");
    let case = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["pre"] == "gemma4")
        .unwrap();
    for (text, want) in g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(case["ids"].as_array().unwrap())
    {
        let want: Vec<u32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            tok.encode(text.as_str().unwrap(), true, true),
            want,
            "{text}"
        );
    }
}
