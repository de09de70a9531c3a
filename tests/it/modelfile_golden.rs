//! Golden Modelfiles: the writer's bytes are pinned in tests/golden/modelfile/, and every golden
//! parses back (with the port of Ollama's parser) to the struct it was written from.
//!
//! Regenerate after an intended change with `scripts/golden/modelfile.sh`
//! (`TINYLM_BLESS=1 cargo test --test it modelfile_golden`).

use std::path::PathBuf;

use tinylm::template::modelfile::Modelfile;
use tinylm::template::params::{ParamValue, params_blob};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/modelfile")
}

fn check(name: &str, mf: &Modelfile) {
    let text = mf.render().expect("renders");
    let path = golden_dir().join(name);
    if std::env::var_os("TINYLM_BLESS").is_some() {
        std::fs::write(&path, &text).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/golden/modelfile.sh)", path.display()));
    assert_eq!(text, golden, "{name} differs from its golden file");
    let back = Modelfile::parse(golden.as_bytes()).expect("golden parses");
    assert_eq!(&back, mf, "{name} does not round-trip");
}

#[test]
fn bare_from() {
    check("bare.Modelfile", &Modelfile::new("./model-f16.gguf"));
}

#[test]
fn completion_with_params() {
    let mut mf = Modelfile::new("./tiny-gpt2-q8_0.gguf");
    mf.template = Some("{{ .Prompt }}".into());
    mf.parameters = vec![
        ("num_ctx".into(), ParamValue::Int(1024)),
        ("num_predict".into(), ParamValue::Int(-1)),
        ("repeat_penalty".into(), ParamValue::Float(1.1)),
        (
            "stop".into(),
            ParamValue::List(vec!["<|endoftext|>".into()]),
        ),
        ("temperature".into(), ParamValue::Float(0.8)),
    ];
    check("completion-params.Modelfile", &mf);
}

#[test]
fn chatml_everything() {
    let mut mf = Modelfile::new("./tiny llama3/model-q4_k_m.gguf");
    mf.template = Some(
        "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}\
{{- if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}\
<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
            .into(),
    );
    mf.system = Some(
        "You are a tiny model.\n# Rules\n- be brief\n- say \"I don't know\" when unsure".into(),
    );
    mf.parameters = vec![
        ("num_ctx".into(), ParamValue::Int(2048)),
        ("seed".into(), ParamValue::Int(42)),
        (
            "stop".into(),
            ParamValue::List(vec![
                "<|im_end|>".into(),
                "<|im_start|>".into(),
                " User:".into(),
            ]),
        ),
        ("top_p".into(), ParamValue::Float(0.95)),
        ("use_mmap".into(), ParamValue::Bool(false)),
    ];
    mf.licenses = vec!["MIT License\n\nCopyright (c) tinylm".into()];
    mf.messages = vec![
        ("user".into(), "What is 2+2?".into()),
        ("assistant".into(), "4".into()),
    ];
    check("chatml-everything.Modelfile", &mf);

    // The params blob Ollama would store for the same parameters.
    let blob = params_blob(&mf.parameters).unwrap();
    assert_eq!(
        blob,
        "{\"num_ctx\":2048,\"seed\":42,\"stop\":[\"\\u003c|im_end|\\u003e\",\"\\u003c|im_start|\\u003e\",\" User:\"],\"top_p\":0.95,\"use_mmap\":false}\n"
    );
}

/// One golden per built-in template: FROM, TEMPLATE and the family's stop strings.
#[test]
fn every_builtin_family() {
    use tinylm::template::families::{builtin, builtin_names};
    for name in builtin_names() {
        let t = builtin(&name).unwrap();
        let mut mf = Modelfile::new("./model.gguf");
        mf.template = Some(t.template.clone());
        mf.parameters = t.parameters();
        check(&format!("family-{name}.Modelfile"), &mf);
    }
}
