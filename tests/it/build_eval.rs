//! `[eval]` and `quality` in `tinylm build`: an eval action per quant (cached like every
//! action), the quality gate after it, `--allow-quality`, and the figures in `release.json`
//! and the release's README.md model card. The figures themselves are checked against
//! `tinylm eval` (whose agreement with llama-perplexity `cli_run_eval` establishes).

use crate::support::{self, Project};

fn count(report: &serde_json::Value, what: &str) -> u64 {
    report[what].as_u64().unwrap()
}

fn ran(report: &serde_json::Value, kind: &str) -> Vec<String> {
    let mut v: Vec<String> = report["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "run" && d["kind"] == kind)
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The tiny-lm GPT-2 fixture with f16, q8_0 and q4_0, `[eval]` on the committed sample text.
fn project(quality: &str) -> Project {
    let p = Project::new();
    let fx = support::fixture("tinylm-gpt2");
    for f in ["last.ckpt", "model.yaml", "tokenizer.pkl", "tokenizer.yaml"] {
        std::fs::copy(fx.join(f), p.path().join(f)).unwrap();
        support::backdate(&p.path().join(f));
    }
    std::fs::copy(
        support::fixture("eval/sample.txt"),
        p.path().join("eval.txt"),
    )
    .unwrap();
    support::backdate(&p.path().join("eval.txt"));
    write_manifest(&p, quality);
    p
}

fn write_manifest(p: &Project, quality: &str) {
    p.write(
        "tinylm.toml",
        &format!(
            r#"[project]
name = "t"
version = "1.0.0"

[eval]
text = "eval.txt"
ctx = 32
chunks = 6

[models.g]
source.tinylm = {{ checkpoint = "last.ckpt", config = "model.yaml", tokenizer = "tokenizer.pkl", tokenizer_config = "tokenizer.yaml" }}
pre = "llama-bpe"
quants = ["f16", "q8_0", "q4_0"]
{quality}

[releases.r]
models = ["g"]
"#
        ),
    );
}

fn release_json(p: &Project) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(p.path().join("dist/releases/r-1.0.0/release.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn eval_figures_are_cached_and_land_in_the_release_and_its_model_card() {
    let p = project("");
    let r = p.build(&[]);
    assert_eq!(
        ran(&r, "eval"),
        ["eval:g:f16", "eval:g:q4_0", "eval:g:q8_0"]
    );
    assert!(ran(&r, "quality").is_empty(), "no budgets, no gate");
    // Conversion parity of the tiny-lm source against its f16 GGUF, once per model.
    assert_eq!(ran(&r, "parity"), ["parity:g"]);

    // The build's figures are `tinylm eval`'s on the same files.
    let out = p.run(&[
        "--json",
        "eval",
        "dist/g/g-q4_0.gguf",
        "--text",
        "eval.txt",
        "--base",
        "dist/g/g-f16.gguf",
        "--ctx",
        "32",
        "--chunks",
        "6",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rel = release_json(&p);
    let art = |q: &str| {
        rel["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["quant"] == q)
            .unwrap()
            .clone()
    };
    let ev = art("q4_0")["eval"].clone();
    assert_eq!(ev["ppl"], cli["ppl"]);
    assert_eq!(ev["kld"]["mean"], cli["kld"]["mean"]);
    assert_eq!(ev["kld"]["same_top"], cli["kld"]["same_top"]);
    assert_eq!(ev["kld"]["ppl_base"], cli["kld"]["ppl_base"]);
    assert_eq!(ev["chunks"], 6);
    assert_eq!(ev["ctx"], 32);
    let kld = ev["kld"]["mean"].as_f64().unwrap();
    assert!(kld > 0.0 && kld < 1.0, "q4_0 KLD {kld}");
    let q8 = art("q8_0")["eval"]["kld"]["mean"].as_f64().unwrap();
    assert!(q8 < kld, "q8_0 ({q8}) is closer to f16 than q4_0 ({kld})");
    for a in rel["artifacts"].as_array().unwrap() {
        let parity = &a["parity"];
        assert_eq!(parity["prompts"], 3, "{a}");
        assert!(parity["tokens"].as_u64().unwrap() > 30, "{parity}");
        for e in parity["nmse"].as_array().unwrap() {
            let e = e.as_f64().unwrap();
            // f16 weights against the f32 checkpoint: rounding only.
            assert!(e > 0.0 && e < 1e-4, "{parity}");
        }
    }
    // The base is scored, not compared with itself.
    assert!(art("f16")["eval"]["kld"].is_null());
    assert_eq!(art("f16")["eval"]["ppl"], cli["kld"]["ppl_base"]);
    let size = std::fs::metadata(p.path().join("dist/g/g-q4_0.gguf"))
        .unwrap()
        .len();
    assert_eq!(ev["size"], size);
    let bpw = ev["bits_per_weight"].as_f64().unwrap();
    assert!(bpw > 4.0 && bpw < 16.0, "q4_0 bpw {bpw}");
    assert!(art("f16")["eval"]["bits_per_weight"].as_f64().unwrap() > 15.9);

    // The model card: one row per quant with size, bpw, PPL, KLD and same-top.
    let card = std::fs::read_to_string(p.path().join("dist/releases/r-1.0.0/README.md")).unwrap();
    assert!(card.starts_with("# r 1.0.0\n"), "{card}");
    let row = card
        .lines()
        .find(|l| l.contains("`g-q4_0.gguf`"))
        .unwrap_or_else(|| panic!("no q4_0 row in\n{card}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[1..4], ["g", "q4_0", "q4_0"]);
    assert_eq!(cells[6], format!("{bpw:.2}"));
    assert!(
        cells[7].starts_with(&format!("{:.4} ± ", ev["ppl"].as_f64().unwrap())),
        "{row}"
    );
    assert_eq!(cells[8], format!("{kld:.6}"));
    assert_eq!(
        cells[9],
        format!("{:.2} %", 100.0 * ev["kld"]["same_top"].as_f64().unwrap())
    );
    let f16_row = card.lines().find(|l| l.contains("`g-f16.gguf`")).unwrap();
    assert!(f16_row.ends_with("| — | — |"), "{f16_row}");
    assert_eq!(
        card.lines().filter(|l| l.starts_with("| g |")).count(),
        3,
        "{card}"
    );
    assert!(card.contains("`eval.txt` (6 chunks of 32 tokens"), "{card}");

    // Cached: the second build runs nothing; a changed text reruns only the evals.
    let r2 = p.build(&[]);
    assert_eq!(count(&r2, "run"), 0);
    let mut text = std::fs::read_to_string(p.path().join("eval.txt")).unwrap();
    text.insert_str(0, "A new first line changes every chunk.\n");
    p.write("eval.txt", &text);
    let r3 = p.build(&[]);
    assert_eq!(ran(&r3, "eval").len(), 3);
    assert!(ran(&r3, "quantize").is_empty() && ran(&r3, "gguf").is_empty());
}

#[test]
fn the_quality_gate_fails_tight_budgets_passes_loose_ones_and_can_be_allowed() {
    let p = project("quality = { max_kld = { q4_0 = 0.0000001 }, min_same_top = { q8_0 = 0.5 } }");
    let out = p.run(&["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in [
        "model `g` quant `q4_0`",
        "mean KL-divergence",
        "max_kld = 0.0000001",
        "--allow-quality",
    ] {
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains("quant `q8_0`"),
        "q8_0 is within budget:\n{err}"
    );
    // The release refuses to ship it.
    assert!(!p.path().join("dist/releases").exists());

    // --allow-quality: a warning naming the same, and a release whose record says so.
    let out = p.run(&["build", "--allow-quality"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: quality budget exceeded (allowed by --allow-quality)")
            && err.contains("quant `q4_0`: mean KL-divergence"),
        "{err}"
    );
    // Still said on the next build, when nothing runs.
    let r = p.build(&["--allow-quality"]);
    assert_eq!(count(&r, "run"), 0);
    let warnings = r["quality_warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap().contains("max_kld"));
    let rel = release_json(&p);
    let q4 = rel["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["quant"] == "q4_0")
        .unwrap()
        .clone();
    assert_eq!(q4["quality"]["passed"], false);
    assert_eq!(q4["quality"]["checks"][0]["metric"], "max_kld");
    assert_eq!(
        q4["quality"]["checks"][0]["value"],
        q4["eval"]["kld"]["mean"]
    );

    // Loosened: passes, and the evals are not rerun (only the gates are).
    write_manifest(
        &p,
        "quality = { max_kld = { q4_0 = 1.0 }, min_same_top = { q8_0 = 0.5 }, max_ppl_ratio = { q8_0 = 1.5 } }",
    );
    let r = p.build(&[]);
    assert!(ran(&r, "eval").is_empty(), "{:?}", ran(&r, "eval"));
    assert_eq!(ran(&r, "quality"), ["quality:g:q4_0", "quality:g:q8_0"]);
    let rel = release_json(&p);
    let q8 = rel["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["quant"] == "q8_0")
        .unwrap()
        .clone();
    let checks = q8["quality"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{checks:?}");
    let ratio = checks
        .iter()
        .find(|c| c["metric"] == "max_ppl_ratio")
        .unwrap();
    let want =
        q8["eval"]["ppl"].as_f64().unwrap() / q8["eval"]["kld"]["ppl_base"].as_f64().unwrap();
    assert_eq!(ratio["value"].as_f64().unwrap(), want);
    assert_eq!(ratio["ok"], true);
    for a in rel["artifacts"].as_array().unwrap() {
        if a["quant"] != "f16" {
            assert_eq!(a["quality"]["passed"], true, "{a}");
        }
    }
    assert_eq!(count(&p.build(&[]), "run"), 0);
}

#[test]
fn quality_and_eval_mistakes_are_manifest_errors() {
    let check = |manifest_tail: &str, line: usize, needles: &[&str]| {
        let p = project("");
        let text = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
        let text = text.replace("[releases.r]\nmodels = [\"g\"]\n", manifest_tail);
        p.write("tinylm.toml", &text);
        let out = p.run(&["build"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("tinylm.toml:{line}:")),
            "line {line}:\n{err}"
        );
        for n in needles {
            assert!(err.contains(n), "expected {n:?} in:\n{err}");
        }
    };
    check(
        "quality = { max_kld = { q4_k_m = 0.1 } }\n",
        16,
        &["names quant `q4_k_m`", "it builds [f16, q8_0, q4_0]"],
    );
    check(
        "quality = { max_kld = { f16 = 0.1 } }\n",
        16,
        &["quant `f16` is model `g`'s base GGUF"],
    );
    check(
        "quality = { min_same_top = { q4_0 = 1.5 } }\n",
        16,
        &["expected a rate between 0 and 1"],
    );
    check(
        "quality = { max_kl = { q4_0 = 0.1 } }\n",
        16,
        &["unknown field `max_kl`", "did you mean `max_kld`?"],
    );
    // Budgets without [eval] have nothing to check.
    let p = project("quality = { max_kld = { q4_0 = 0.1 } }");
    let text = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &text.replace("[eval]\ntext = \"eval.txt\"\nctx = 32\nchunks = 6\n", ""),
    );
    let out = p.run(&["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("quality budgets need an `[eval]` section"),
        "{err}"
    );
}

#[test]
fn eval_imatrix_and_parity_outputs_do_not_depend_on_the_thread_count() {
    let with_imatrix = |p: &Project| {
        std::fs::copy(p.path().join("eval.txt"), p.path().join("calib.txt")).unwrap();
        support::backdate(&p.path().join("calib.txt"));
        let text = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
        p.write(
            "tinylm.toml",
            &text.replace(
                "quants = [\"f16\", \"q8_0\", \"q4_0\"]",
                "imatrix = { text = \"calib.txt\", ctx = 32, chunks = 3 }\n\
                 quants = [\"f16\", { name = \"q4_k_m-imat\", type = \"q4_k_m\", imatrix = true }]",
            ),
        );
    };
    let one = project("");
    with_imatrix(&one);
    let r = one.build(&["-j1"]);
    assert_eq!(ran(&r, "imatrix"), ["imatrix:g"]);
    let two = project("");
    with_imatrix(&two);
    two.build(&["-j3"]);
    assert_eq!(one.tree("dist"), two.tree("dist"));
    assert_eq!(
        std::fs::read(one.path().join("tinylm.lock")).unwrap(),
        std::fs::read(two.path().join("tinylm.lock")).unwrap()
    );
    // A target by quant name builds that artifact and what it needs.
    let three = project("");
    with_imatrix(&three);
    let r = three.build(&["g:q4_k_m-imat"]);
    assert!(ran(&r, "quantize") == ["quantize:g:q4_k_m-imat"], "{r}");
    assert!(three.path().join("dist/g/g-q4_k_m-imat.gguf").exists());
    assert!(!three.path().join("dist/releases").exists());
}
