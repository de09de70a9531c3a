//! Templates in builds: families, `auto`, automatic EOS stops, and lint gating releases.

use crate::support::{Project, Vocab, backdate, count, gguf_with_vocab, ids_with};

fn project(vocab: &Vocab, template: &str) -> Project {
    let p = Project::new();
    let path = p.path().join("m.gguf");
    std::fs::write(&path, gguf_with_vocab(1, vocab)).unwrap();
    backdate(&path);
    p.write(
        "tinylm.toml",
        &format!(
            "[project]\nname = \"t\"\nversion = \"1\"\n\n{template}\n\n[models.m]\nsource.gguf = \"m.gguf\"\n\n[releases.r]\nmodels = [\"m\"]\n"
        ),
    );
    p
}

fn chatml_vocab() -> Vocab {
    Vocab {
        tokens: vec![
            "<s>",
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "a",
            "b",
            "ab",
            "Ċ",
            "user",
            "assistant",
            "system",
        ],
        types: vec![3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1],
        merges: vec!["a b"],
        eos: Some(3),
        chat_template: Some(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ),
    }
}

#[test]
fn auto_detects_chatml_and_stops_at_the_models_own_end_token() {
    let p = project(&chatml_vocab(), "[defaults]\ntemplate = \"auto\"");
    let r = p.build(&[]);
    assert_eq!(count(&r, "failed"), 0);
    let mf = std::fs::read_to_string(p.path().join("dist/m/m.Modelfile")).unwrap();
    assert!(mf.contains("<|im_start|>assistant"), "{mf}");
    assert!(mf.contains("PARAMETER stop <|im_end|>"), "{mf}");
    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-1/release.json")).unwrap(),
    )
    .unwrap();
    let t = &rel["artifacts"][0]["template"];
    assert_eq!(t["family"], "chatml");
    assert!(
        t["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("im_start")),
        "{t}"
    );
    assert_eq!(rel["artifacts"][0]["lint"]["errors"], 0);

    // `status --explain` says what was chosen and why.
    let out = p.run(&["status", "--explain"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("template chatml, detected:"))
        .unwrap_or_else(|| panic!("no template line in:\n{text}"));
    assert!(line.contains("im_start"), "{line}");
    let out = p.run(&["--json", "status"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mf = st["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "modelfile")
        .unwrap();
    assert_eq!(mf["template"]["family"], "chatml", "{mf}");
}

#[test]
fn auto_without_evidence_asks_for_an_explicit_template() {
    let p = project(&Vocab::default(), "[defaults]\ntemplate = \"auto\"");
    // The default vocab has no chat markers: a base model. Detection says "completion".
    let r = p.build(&[]);
    let mf = std::fs::read_to_string(p.path().join("dist/m/m.Modelfile")).unwrap();
    assert!(mf.contains("TEMPLATE {{ .Prompt }}"), "{mf}\n{r}");
}

#[test]
fn a_builtin_family_whose_markers_the_vocab_lacks_fails_lint_and_blocks_the_release() {
    let p = project(&Vocab::default(), "[defaults]\ntemplate = \"chatml\"");
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lint:m failed") && err.contains("<|im_start|>"),
        "{err}"
    );
    assert!(
        !p.path().join("dist/releases").exists(),
        "a failing lint must not ship"
    );
    // The user can still force it, and the release records the findings.
    let r = p.build(&["--allow-lint"]);
    assert_eq!(count(&r, "failed"), 0);
    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-1/release.json")).unwrap(),
    )
    .unwrap();
    assert!(rel["artifacts"][0]["lint"]["errors"].as_u64().unwrap() > 0);
    // A lenient pass is not reused by a strict build.
    assert_eq!(p.run(&["build"]).status.code(), Some(1));
}

#[test]
fn a_tokenizer_without_merges_cannot_ship() {
    let v = Vocab {
        merges: vec![],
        ..Vocab::default()
    };
    let p = project(
        &v,
        "[templates.plain]\ntemplate = \"{{ .Prompt }}\"\n\n[defaults]\ntemplate = \"plain\"",
    );
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bpe-no-merges"));
}

#[test]
fn the_eos_token_is_always_a_stop_string() {
    let p = project(
        &Vocab::default(),
        "[templates.plain]\ntemplate = \"{{ .Prompt }}\"\nparameters = { stop = [\"b\"] }\n\n[defaults]\ntemplate = \"plain\"",
    );
    p.build(&[]);
    let mf = std::fs::read_to_string(p.path().join("dist/m/m.Modelfile")).unwrap();
    assert!(
        mf.contains("PARAMETER stop b\nPARAMETER stop </s>\n"),
        "{mf}"
    );
}

#[test]
fn a_template_that_does_not_parse_is_a_manifest_error() {
    let p = project(
        &Vocab::default(),
        "[templates.bad]\ntemplate = \"{{ if .System }}{{ .System }}\"\n\n[defaults]\ntemplate = \"bad\"",
    );
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tinylm.toml:6:12") && err.contains("{{if}} without {{end}}"),
        "{err}"
    );
}

#[test]
fn family_templates_can_be_customised() {
    let p = project(
        &chatml_vocab(),
        "[templates.assistant]\nfamily = \"chatml\"\nsystem = \"Be brief.\"\n\n[defaults]\ntemplate = \"assistant\"",
    );
    let r = p.build(&[]);
    assert_eq!(ids_with(&r, "failed"), Vec::<String>::new());
    let mf = std::fs::read_to_string(p.path().join("dist/m/m.Modelfile")).unwrap();
    assert!(
        mf.contains("SYSTEM Be brief.") && mf.contains("<|im_start|>"),
        "{mf}"
    );
}

#[test]
fn install_section_puts_built_models_into_ollama_and_lm_studio_once() {
    let p = project(
        &chatml_vocab(),
        "[defaults]\ntemplate = \"auto\"\nquants = [\"f16\", \"q8_0\"]\n\n[install]\nollama = true\nlmstudio = [\"m:q8_0\"]",
    );
    let ollama = p.path().join("ollama");
    let lms = p.path().join("lms");
    let env = [
        ("OLLAMA_MODELS", ollama.to_str().unwrap()),
        ("LMSTUDIO_MODELS", lms.to_str().unwrap()),
    ];
    let out = p.run_env(&["--json", "build"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = r["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m:f16", "m:q8_0", "t/m-GGUF/m-q8_0.gguf"]);
    assert!(
        ollama
            .join("manifests/registry.ollama.ai/library/m/q8_0")
            .is_file()
    );
    // The store's model blob is the cache object itself (hardlink), not a copy.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ollama.join("manifests/registry.ollama.ai/library/m/q8_0")).unwrap(),
    )
    .unwrap();
    let digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .replace(':', "-");
    let blob = std::fs::metadata(ollama.join("blobs").join(digest)).unwrap();
    let placed = std::fs::metadata(p.path().join("dist/m/m-q8_0.gguf")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(blob.ino(), placed.ino());
    assert!(lms.join("t/m-GGUF/m-q8_0.gguf").is_file());

    let out = p.run_env(&["--json", "build"], &env);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["installed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["changed"] == false),
        "{r}"
    );
}

#[test]
fn install_and_lint_accept_manifest_models() {
    let p = project(&chatml_vocab(), "[defaults]\ntemplate = \"auto\"");
    let ollama = p.path().join("ollama");
    let env = [("OLLAMA_MODELS", ollama.to_str().unwrap())];
    let out = p.run_env(&["install", "ollama", "m", "--name", "me/tiny:v1"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        ollama
            .join("manifests/registry.ollama.ai/me/tiny/v1")
            .is_file()
    );
    let out = p.run_env(&["install", "ollama", "nope"], &env);
    assert_eq!(out.status.code(), Some(2));

    let out = p.run(&["lint"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("m: 0 error(s)"));
    let broken = project(
        &Vocab {
            merges: vec![],
            ..chatml_vocab()
        },
        "[defaults]\ntemplate = \"auto\"",
    );
    let out = broken.run(&["lint", "m"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("bpe-no-merges"));
}
