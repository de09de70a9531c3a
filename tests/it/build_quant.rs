//! Quants with recipes and importance matrices in `tinylm build`: named quant tables, a given
//! imatrix file, an imatrix computed by the build, and the manifest's refusals.
//!
//! The oracle for bytes is llama-quantize: `tests/golden/quant_imatrix/cases.json` records the
//! sha256 of its output for the same input, imatrix and flags. The CLI (`tinylm quantize`) is
//! the second oracle: the build must write what a user running it by hand would get.

use std::path::Path;

use crate::support::{self, Project, sha256_hex};

fn golden_case(name: &str) -> serde_json::Value {
    let text =
        std::fs::read_to_string(support::golden("quant_imatrix").join("cases.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    j["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no golden case {name}"))
        .clone()
}

fn golden_sha(name: &str) -> String {
    golden_case(name)["expect"]["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

fn file_sha(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).unwrap())
}

fn count(report: &serde_json::Value, what: &str) -> u64 {
    report[what].as_u64().unwrap()
}

/// A project around the golden `tiny.gguf` and its llama-imatrix file.
fn tiny_project(quants: &str) -> Project {
    let p = Project::new();
    for f in ["tiny.gguf", "tiny.imatrix.gguf"] {
        std::fs::copy(support::golden("quant_imatrix").join(f), p.path().join(f)).unwrap();
        support::backdate(&p.path().join(f));
    }
    p.write(
        "tinylm.toml",
        &format!(
            r#"[project]
name = "t"
version = "1.0.0"

[models.tiny]
source.gguf = "tiny.gguf"
imatrix = {{ file = "tiny.imatrix.gguf" }}
quants = {quants}

[releases.r]
models = ["tiny"]
"#
        ),
    );
    p
}

#[test]
fn imatrix_file_quants_match_llama_quantize_and_the_cli() {
    let p = tiny_project(
        r#"[
  "q4_k_m",
  { name = "q4_k_m-imat", type = "q4_k_m", imatrix = true },
  "iq2_xxs",
  { name = "embd-out", type = "q4_k_m", imatrix = true, token_embedding = "q8_0", output = "iq4_nl" },
  { name = "tt", type = "q4_k_m", imatrix = true, tensor_types = { "ffn_down" = "q6_k", "attn_(q|k)" = "IQ4_XS" } },
]"#,
    );
    let r = p.build(&[]);
    assert_eq!(count(&r, "failed"), 0);
    let dist = p.path().join("dist/tiny");
    // llama-quantize's bytes for the same input, imatrix and flags.
    for (artifact, case) in [
        ("q4_k_m-imat", "tiny.Q4_K_M.imat"),
        ("iq2_xxs", "tiny.IQ2_XXS.imat"),
        ("embd-out", "tiny.recipe.embd-out"),
        ("tt", "tiny.recipe.tt-regex"),
    ] {
        assert_eq!(
            file_sha(&dist.join(format!("tiny-{artifact}.gguf"))),
            golden_sha(case),
            "{artifact} differs from llama-quantize's {case}"
        );
    }
    // The plain q4_k_m is the no-imatrix quantization, not the imatrix one.
    let plain = file_sha(&dist.join("tiny-q4_k_m.gguf"));
    assert_ne!(plain, golden_sha("tiny.Q4_K_M.imat"));

    // The CLI with the same flags writes the same bytes.
    for (artifact, args) in [
        (
            "q4_k_m-imat",
            vec!["q4_k_m", "--imatrix", "tiny.imatrix.gguf"],
        ),
        ("q4_k_m", vec!["q4_k_m"]),
        (
            "embd-out",
            vec![
                "q4_k_m",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--token-embedding-type",
                "q8_0",
                "--output-tensor-type",
                "iq4_nl",
            ],
        ),
        (
            "tt",
            vec![
                "q4_k_m",
                "--imatrix",
                "tiny.imatrix.gguf",
                "--tensor-type",
                "ffn_down=q6_k",
                "--tensor-type",
                "attn_(q|k)=IQ4_XS",
            ],
        ),
    ] {
        let mut all = vec!["-q", "quantize", "tiny.gguf", "cli.gguf"];
        all.extend(args);
        let out = p.run(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            file_sha(&p.path().join("cli.gguf")),
            file_sha(&dist.join(format!("tiny-{artifact}.gguf"))),
            "{artifact}: build and `tinylm quantize` differ"
        );
    }

    // The release says which imatrix each quant used.
    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-1.0.0/release.json")).unwrap(),
    )
    .unwrap();
    let arts = rel["artifacts"].as_array().unwrap();
    let art = |q: &str| arts.iter().find(|a| a["quant"] == q).unwrap().clone();
    let imat_digest = blake3::hash(&std::fs::read(p.path().join("tiny.imatrix.gguf")).unwrap())
        .to_hex()
        .to_string();
    for q in ["q4_k_m-imat", "iq2_xxs", "embd-out", "tt"] {
        let im = &art(q)["imatrix"];
        assert_eq!(im["blake3"], imat_digest.as_str(), "{q}");
        assert_eq!(im["file"], "tiny.imatrix.gguf", "{q}");
        assert_eq!(im["computed"], false, "{q}");
        assert!(im["chunks"].as_i64().unwrap() > 0, "{q}: {im}");
        assert_eq!(
            art(q)["type"],
            if q == "iq2_xxs" { "iq2_xxs" } else { "q4_k_m" }
        );
    }
    assert!(art("q4_k_m")["imatrix"].is_null());
    assert!(
        p.path()
            .join("dist/releases/r-1.0.0/tiny-q4_k_m-imat.gguf")
            .exists(),
        "release bundles use the quant's name"
    );

    // Nothing to do the second time; a changed imatrix reruns only the quants using it.
    let r2 = p.build(&[]);
    assert_eq!(count(&r2, "run"), 0);
    std::fs::copy(
        support::golden("quant_imatrix").join("tiny.imatrix.dat"),
        p.path().join("tiny.imatrix.gguf"),
    )
    .unwrap();
    let r3 = p.build(&[]);
    let mut ran: Vec<String> = r3["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "run" && d["kind"] == "quantize")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            "quantize:tiny:embd-out",
            "quantize:tiny:iq2_xxs",
            "quantize:tiny:q4_k_m-imat",
            "quantize:tiny:tt"
        ]
        .map(String::from)
        .to_vec(),
        "only the quants that use the imatrix rerun"
    );
}

#[test]
fn a_computed_imatrix_is_cached_and_equals_the_cli() {
    let p = Project::new();
    let fx = support::fixture("tinylm-gpt2");
    for f in ["last.ckpt", "model.yaml", "tokenizer.pkl", "tokenizer.yaml"] {
        std::fs::copy(fx.join(f), p.path().join(f)).unwrap();
        support::backdate(&p.path().join(f));
    }
    std::fs::copy(
        support::fixture("eval/sample.txt"),
        p.path().join("calib.txt"),
    )
    .unwrap();
    support::backdate(&p.path().join("calib.txt"));
    p.write(
        "tinylm.toml",
        r#"[project]
name = "t"
version = "1.0.0"

[defaults]
imatrix = { text = "calib.txt", ctx = 32, chunks = 4 }

[models.g]
source.tinylm = { checkpoint = "last.ckpt", config = "model.yaml", tokenizer = "tokenizer.pkl", tokenizer_config = "tokenizer.yaml" }
pre = "llama-bpe"
quants = ["f16", { name = "q4_0-imat", type = "q4_0", imatrix = true }]

[releases.r]
models = ["g"]
"#,
    );
    let r = p.build(&[]);
    let kinds: Vec<&str> = r["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "imatrix").count(), 1);

    // The imatrix the build computed is what `tinylm imatrix` writes by hand.
    let out = p.run(&[
        "-q",
        "imatrix",
        "dist/g/g-f16.gguf",
        "--text",
        "calib.txt",
        "--ctx",
        "32",
        "--chunks",
        "4",
        "-o",
        "g.imatrix.gguf",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = std::fs::read(p.path().join("dist/g/g.imatrix.gguf")).unwrap();
    assert_eq!(
        built,
        std::fs::read(p.path().join("g.imatrix.gguf")).unwrap()
    );

    // And the quant is the CLI's quantization with it.
    let out = p.run(&[
        "-q",
        "quantize",
        "dist/g/g-f16.gguf",
        "cli.gguf",
        "q4_0",
        "--imatrix",
        "g.imatrix.gguf",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        file_sha(&p.path().join("cli.gguf")),
        file_sha(&p.path().join("dist/g/g-q4_0-imat.gguf"))
    );

    let rel: serde_json::Value = serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-1.0.0/release.json")).unwrap(),
    )
    .unwrap();
    let art = rel["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["quant"] == "q4_0-imat")
        .unwrap()
        .clone();
    assert_eq!(art["imatrix"]["computed"], true);
    assert_eq!(art["imatrix"]["datasets"], serde_json::json!(["calib.txt"]));
    assert_eq!(art["imatrix"]["chunks"], 4);
    assert_eq!(art["imatrix"]["chunk_size"], 32);
    assert_eq!(
        art["imatrix"]["blake3"],
        blake3::hash(&built).to_hex().as_str()
    );

    // Cached: nothing runs the second time; a fresh output dir takes it from the cache.
    let r2 = p.build(&[]);
    assert_eq!(count(&r2, "run"), 0);
    std::fs::remove_dir_all(p.path().join("dist")).unwrap();
    let r3 = p.build(&[]);
    assert_eq!(count(&r3, "run"), 0);
    assert_eq!(
        std::fs::read(p.path().join("dist/g/g.imatrix.gguf")).unwrap(),
        built
    );

    // Other chunks: a new imatrix, and the imatrix quant follows it.
    let toml = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write("tinylm.toml", &toml.replace("chunks = 4", "chunks = 3"));
    let r4 = p.build(&[]);
    let ran: Vec<&str> = r4["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "run")
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ran.contains(&"imatrix:g"), "{ran:?}");
    assert!(ran.contains(&"quantize:g:q4_0-imat"), "{ran:?}");
    assert!(!ran.iter().any(|id| id.starts_with("gguf:")), "{ran:?}");
}

/// Manifest errors about quants and imatrices: exit 2, `tinylm.toml:LINE:`, a useful message.
fn refused(quants_and_imatrix: &str, line: usize, needles: &[&str]) -> String {
    let p = tiny_project("[]");
    p.write(
        "tinylm.toml",
        &format!(
            "[project]\nname = \"t\"\nversion = \"1\"\n\n[models.tiny]\nsource.gguf = \"tiny.gguf\"\n{quants_and_imatrix}"
        ),
    );
    let out = p.run(&["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("tinylm.toml:{line}:")),
        "expected line {line}:\n{err}"
    );
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
    assert!(!p.path().join("dist").exists());
    err.into_owned()
}

#[test]
fn quant_and_imatrix_mistakes_are_refused_with_spans() {
    // A type that needs an imatrix, without one: how to get one.
    refused(
        "quants = [\"iq2_xxs\"]\n",
        7,
        &[
            "needs an importance matrix",
            "imatrix = { text",
            "tinylm imatrix",
        ],
    );
    refused(
        "quants = [{ name = \"x\", type = \"q4_k_m\", imatrix = true }]\n",
        7,
        &["wants an importance matrix", "model `tiny` has none"],
    );
    refused(
        "imatrix = { file = \"tiny.imatrix.gguf\" }\nquants = [{ name = \"x\", type = \"iq1_s\", imatrix = false }]\n",
        8,
        &["cannot be made without an importance matrix"],
    );
    // Typos in types, keys and tensor types.
    let line = "quants = [{ name = \"x\", type = \"q4_km\" }]";
    let err = refused(
        &format!("{line}\n"),
        7,
        &["unknown quant `q4_km`", "did you mean `q4_k_m`?"],
    );
    // The column is the type's value, underlined.
    let col = line.find("\"q4_km\"").unwrap() + 1;
    assert!(err.contains(&format!("tinylm.toml:7:{col}: ")), "{err}");
    assert!(
        err.contains(&format!("{}^^^^^^^", " ".repeat(col - 1))),
        "{err}"
    );
    refused(
        "quants = [{ name = \"x\", type = \"q4_k_m\", tensor_type = { a = \"q8_0\" } }]\n",
        7,
        &[
            "unknown field `tensor_type`",
            "did you mean `tensor_types`?",
        ],
    );
    refused(
        "quants = [{ name = \"x\", type = \"q4_k_m\",\n  tensor_types = { ffn_down = \"q6_kk\" } }]\n",
        8,
        &["invalid ggml type 'q6_kk'"],
    );
    refused(
        "quants = [{ name = \"x\", type = \"q4_k_m\", output = \"q9\" }]\n",
        7,
        &["`output`", "invalid ggml type 'q9'"],
    );
    // Names: unique and safe for file names.
    refused(
        "quants = [\"q8_0\", { name = \"q8_0\", type = \"q4_0\" }]\n",
        7,
        &["listed twice"],
    );
    refused(
        "quants = [{ name = \"a/b\", type = \"q4_0\" }]\n",
        7,
        &["quant name `a/b` may only contain"],
    );
    // The imatrix table itself.
    refused(
        "imatrix = { file = \"tiny.imatrix.gguf\", text = \"x.txt\" }\nquants = [\"q8_0\"]\n",
        7,
        &["exactly one of `file"],
    );
    refused(
        "imatrix = { file = \"missing.imatrix\" }\nquants = [\"q8_0\"]\n",
        7,
        &["imatrix file `missing.imatrix` does not exist"],
    );
    refused(
        "imatrix = { file = \"tiny.imatrix.gguf\", chunks = 3 }\nquants = [\"q8_0\"]\n",
        7,
        &["`chunks` applies to a computed imatrix"],
    );
    // A release naming a quant the model does not build.
    refused(
        "quants = [{ name = \"q8-small\", type = \"q8_0\" }]\n[releases.r]\nmodels = [\"tiny\"]\nquants = [\"q8-smal\"]\n",
        10,
        &["wants quant `q8-smal`", "did you mean `q8-small`?"],
    );
}
