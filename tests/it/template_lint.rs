//! Lint catches the seed's failure modes on crafted models: missing stops, missing merges,
//! markers not in the vocabulary, bad parameters and templates, size mismatches.

use tinylm::template::families::builtin;
use tinylm::template::lint::{lint, lint_modelfile_text};
use tinylm::template::modelfile::Modelfile;
use tinylm::template::params::ParamValue;
use tinylm::template::vocab::Vocab;

/// A small byte-level BPE vocabulary with ChatML control tokens.
fn chatml_vocab() -> Vocab {
    let mut tokens: Vec<String> = [
        "<", "|", ">", "im", "_", "start", "end", "a", "b", "Ġ", "Ċ", "User", ":",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut types = vec![1; tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.into());
        types.push(3);
    }
    let mut v = Vocab::new("gpt2", tokens, types);
    v.merges = Some(5);
    v.eos_id = Some(13); // <|endoftext|>
    v.bos_id = Some(13);
    v.embedding_rows = Some(16);
    v
}

fn chatml_modelfile(stops: &[&str]) -> Modelfile {
    let t = builtin("chatml").unwrap();
    let mut mf = Modelfile::new("./m.gguf");
    mf.template = Some(t.template);
    mf.parameters = vec![(
        "stop".into(),
        ParamValue::List(stops.iter().map(|s| s.to_string()).collect()),
    )];
    mf
}

#[test]
fn a_correct_model_is_clean() {
    let r = lint(
        &chatml_vocab(),
        &chatml_modelfile(&["<|im_start|>", "<|im_end|>", "<|endoftext|>"]),
    );
    assert_eq!(r.findings, vec![], "{r}");
}

#[test]
fn missing_eos_stop() {
    let r = lint(
        &chatml_vocab(),
        &chatml_modelfile(&["<|im_start|>", "<|im_end|>"]),
    );
    assert!(r.has("eos-not-stop"), "{r}");
    assert!(
        r.to_string().contains("add PARAMETER stop <|endoftext|>"),
        "{r}"
    );
    assert_eq!(r.errors(), 1);
}

#[test]
fn stop_that_can_never_match() {
    let r = lint(
        &chatml_vocab(),
        &chatml_modelfile(&["<|im_end|>", "<|endoftext|>", "<|eot_id|>"]),
    );
    assert!(r.has("stop-not-in-vocab"), "{r}");
    // Spellable text stops are fine ("User:" = User + :).
    let r = lint(
        &chatml_vocab(),
        &chatml_modelfile(&["<|im_end|>", "<|endoftext|>", "User:"]),
    );
    assert!(!r.has("stop-not-in-vocab"), "{r}");
}

#[test]
fn missing_merges() {
    let mut v = chatml_vocab();
    v.merges = None;
    let r = lint(&v, &chatml_modelfile(&["<|im_end|>", "<|endoftext|>"]));
    assert!(r.has("bpe-no-merges"), "{r}");
    v.merges = Some(0);
    assert!(lint(&v, &chatml_modelfile(&["<|im_end|>", "<|endoftext|>"])).has("bpe-no-merges"));
}

#[test]
fn marker_not_in_vocab() {
    // A Llama 3 template on a ChatML model.
    let t = builtin("llama3").unwrap();
    let mut mf = Modelfile::new("./m.gguf");
    mf.template = Some(t.template);
    mf.parameters = vec![(
        "stop".into(),
        ParamValue::List(vec!["<|endoftext|>".into()]),
    )];
    let r = lint(&chatml_vocab(), &mf);
    assert!(r.has("marker-not-in-vocab"), "{r}");
    assert!(r.to_string().contains("<|start_header_id|>"), "{r}");
}

#[test]
fn tokenizer_sanity() {
    let mut v = chatml_vocab();
    v.embedding_rows = Some(32);
    v.eos_id = Some(99);
    let r = lint(&v, &chatml_modelfile(&["<|im_end|>"]));
    assert!(r.has("vocab-size-mismatch"), "{r}");
    assert!(r.has("special-id-out-of-range"), "{r}");
}

#[test]
fn template_and_modelfile_problems() {
    let mut mf = chatml_modelfile(&["<|im_end|>", "<|endoftext|>"]);
    mf.template = Some("{{ if .System }}{{ .System }}".into());
    assert!(lint(&chatml_vocab(), &mf).has("template-syntax"));
    mf.template = Some("{{ range .Messages }}{{ .Text }}{{ end }}".into());
    assert!(lint(&chatml_vocab(), &mf).has("template-field"));
    let text = b"FROM ./m.gguf\nPARAMETER temperature 0.7 # hot\n";
    let r = lint_modelfile_text(&chatml_vocab(), text);
    assert!(r.has("modelfile"), "{r}");
    assert!(r.to_string().contains("temperature"), "{r}");
    let r = lint_modelfile_text(
        &chatml_vocab(),
        b"FROM x\nPARAMETER mirostat 1\nTEMPLATE {{ .Prompt }}\nPARAMETER stop <|endoftext|>\n",
    );
    assert!(r.has("parameter-deprecated"), "{r}");
    assert!(!r.has_errors(), "{r}");
    let r = lint_modelfile_text(&chatml_vocab(), b"FRM x\n");
    assert!(r.has("modelfile-syntax"), "{r}");
}
