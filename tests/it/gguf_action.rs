//! The `gguf` action: tiny-lm and Hugging Face sources built from the manifest equal the one-shot
//! converter's output, feed quants, Modelfiles and releases, and are cached.

use std::path::{Path, PathBuf};

use tinylm::convert::hf::HfModel;
use tinylm::convert::hf_to_gguf::{self, GgufOptions, OutType};
use tinylm::convert::tinylm_to_hf::{self, ExportOptions, TinyLmInputs};
use tinylm::formats::DType;
use tinylm::formats::gguf::GgufFile;

use crate::support::{self, Project, tinylm_inputs};

fn fixture(arch: &str) -> PathBuf {
    support::fixture(&format!("tinylm-{arch}"))
}

fn tinylm_source(arch: &str) -> String {
    let f = fixture(arch);
    format!(
        "source.tinylm = {{ checkpoint = {:?}, config = {:?}, tokenizer = {:?}, tokenizer_config = {:?} }}\n",
        f.join("last.ckpt"),
        f.join("model.yaml"),
        f.join("tokenizer.pkl"),
        f.join("tokenizer.yaml"),
    )
}

fn inputs(arch: &str) -> TinyLmInputs {
    tinylm_inputs(&fixture(arch))
}

/// What `tinylm convert --to gguf` makes for `model` (named like the manifest model).
fn one_shot(model: &HfModel, outtype: OutType, pre: Option<&str>) -> Vec<u8> {
    let opts = GgufOptions {
        outtype,
        pre_override: pre.map(str::to_string),
        ..Default::default()
    };
    let mut out = Vec::new();
    hf_to_gguf::convert(model, &opts, &mut out).expect("one-shot conversion");
    out
}

fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    report["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn tinylm_source_builds_gguf_quants_modelfiles_and_release() {
    for arch in ["gpt2", "llama3"] {
        let p = Project::new();
        p.write(
            "tinylm.toml",
            &format!(
                "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.tiny]\nquants = [\"f16\", \"q8_0\"]\n\
                 template = \"completion\"\n{}\n\
                 [templates.completion]\ntemplate = \"{{{{ .Prompt }}}}\"\n\n\
                 [releases.r]\nmodels = [\"tiny\"]\n",
                tinylm_source(arch)
            ),
        );
        let report = p.build(&[]);
        let st = statuses(&report);
        assert!(
            st.iter().all(|(_, s)| s == "run"),
            "{arch}: first build should run everything: {st:?}"
        );
        assert!(st.iter().any(|(id, _)| id == "gguf:tiny"), "{st:?}");

        // The base GGUF equals the one-shot converter's, with the model name as folder name.
        let model = tinylm_to_hf::export(
            &inputs(arch),
            &ExportOptions {
                dtype: DType::F32,
                dir_name: "tiny".into(),
            },
        )
        .unwrap();
        let expected = one_shot(&model, OutType::F16, None);
        let f16 = read(&p.path().join("dist/tiny/tiny-f16.gguf"));
        assert!(
            f16 == expected,
            "{arch}: manifest GGUF differs from convert"
        );
        let g = GgufFile::open(p.path().join("dist/tiny/tiny-f16.gguf")).unwrap();
        assert_eq!(g.get_str("general.name").unwrap(), "Tiny");

        // The q8_0 quant is made from that base by the quantizer.
        let q8 = GgufFile::open(p.path().join("dist/tiny/tiny-q8_0.gguf")).unwrap();
        assert_eq!(q8.get_u64("general.file_type").unwrap(), 7);
        let modelfile =
            std::fs::read_to_string(p.path().join("dist/tiny/tiny-q8_0.Modelfile")).unwrap();
        assert!(
            modelfile.starts_with("FROM ./tiny-q8_0.gguf"),
            "{modelfile}"
        );
        let sums = std::fs::read_to_string(p.path().join("dist/releases/r-1/SHA256SUMS")).unwrap();
        assert!(
            sums.contains("tiny-f16.gguf") && sums.contains("tiny-q8_0.gguf"),
            "{sums}"
        );

        // Nothing changed: nothing runs.
        let again = statuses(&p.build(&[]));
        assert!(
            again.iter().all(|(_, s)| s != "run"),
            "{arch}: rebuild ran actions: {again:?}"
        );
    }
}

#[test]
fn hf_source_builds_like_the_converter_and_tracks_folder_name_and_pre() {
    let p = Project::new();
    let model = tinylm_to_hf::export(
        &inputs("gpt2"),
        &ExportOptions {
            dtype: DType::F32,
            dir_name: "my-model".into(),
        },
    )
    .unwrap();
    let dir = p.path().join("my-model");
    tinylm_to_hf::write_hf_dir(&model, &dir).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        support::backdate(&entry.unwrap().path());
    }
    let manifest = |folder: &str, pre: &str| {
        format!(
            "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\nsource.hf = \"{folder}\"\n\
             outtype = \"f32\"\n{pre}"
        )
    };
    p.write("tinylm.toml", &manifest("my-model", ""));
    p.build(&[]);
    let on_disk = HfModel::open(&dir).unwrap();
    let built = read(&p.path().join("dist/m/m-f32.gguf"));
    assert!(built == one_shot(&on_disk, OutType::F32, None));
    let g = GgufFile::open(p.path().join("dist/m/m-f32.gguf")).unwrap();
    assert_eq!(g.get_str("general.name").unwrap(), "My Model");

    // The folder's name is part of the output (general.name), so a rename rebuilds.
    std::fs::rename(&dir, p.path().join("other-name")).unwrap();
    p.write("tinylm.toml", &manifest("other-name", ""));
    let st = statuses(&p.build(&[]));
    assert!(st.contains(&("gguf:m".into(), "run".into())), "{st:?}");
    let g = GgufFile::open(p.path().join("dist/m/m-f32.gguf")).unwrap();
    assert_eq!(g.get_str("general.name").unwrap(), "Other Name");

    // `pre` overrides tokenizer.ggml.pre.
    p.write("tinylm.toml", &manifest("other-name", "pre = \"gpt-2\"\n"));
    let st = statuses(&p.build(&[]));
    assert!(st.contains(&("gguf:m".into(), "run".into())), "{st:?}");
    let g = GgufFile::open(p.path().join("dist/m/m-f32.gguf")).unwrap();
    assert_eq!(g.get_str("tokenizer.ggml.pre").unwrap(), "gpt-2");
}

#[test]
fn broken_hf_folder_fails_the_build_with_a_clear_error() {
    let p = Project::new();
    p.write("broken/tokenizer.json", "{}");
    p.write(
        "tinylm.toml",
        "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.m]\nsource.hf = \"broken\"\n",
    );
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gguf:m"), "{err}");
    assert!(err.contains("config.json"), "{err}");
    assert!(!p.path().join("dist/m/m-f16.gguf").exists());
}
