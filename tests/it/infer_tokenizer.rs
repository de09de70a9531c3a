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
    for case in g["cases"].as_array().unwrap() {
        let pre = case["pre"].as_str().unwrap();
        let file = match case["vocab"].as_str().unwrap() {
            "gpt-2" => &gpt2,
            _ => &tl,
        };
        let tok = Tokenizer::from_gguf(file, Some(pre)).unwrap();
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
    eprintln!("{equal}/{total} texts ({tokens} tokens) equal llama-tokenize");
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
