//! Manifest errors: exit code 2, file:line:column, the snippet, and a suggestion.

use crate::support::{self, Project, demo};

fn check(manifest: &str, line: usize, needles: &[&str]) {
    let p = demo();
    p.write("tinylm.toml", manifest);
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
}

#[test]
fn syntax_errors_point_at_the_line() {
    check(
        "[project]\nname = \"x\"\nversion = \"1\"\n[models.a\n",
        4,
        &["[models.a"],
    );
}

#[test]
fn unknown_keys_get_did_you_mean() {
    check(
        "[project]\nname = \"x\"\nversion = \"1\"\n\n[models.a]\nsource.gguf = \"models/a.gguf\"\nqaunts = [\"f16\"]\n",
        7,
        &["unknown field `qaunts`", "did you mean `quants`?"],
    );
}

#[test]
fn bad_values_are_checked_with_spans() {
    let base =
        "[project]\nname = \"x\"\nversion = \"1\"\n\n[models.a]\nsource.gguf = \"models/a.gguf\"\n";
    check(
        &format!("{base}quants = [\"q4_km\"]\n"),
        7,
        &["unknown quant `q4_km`", "did you mean `q4_k_m`?"],
    );
    check(
        &format!("{base}template = \"nope\"\n"),
        7,
        &["unknown template `nope`"],
    );
    check(
        "[project]\nname = \"x\"\nversion = \"1\"\n\n[models.a]\nsource.gguf = \"missing.gguf\"\n",
        6,
        &["`missing.gguf` does not exist"],
    );
    check(
        "[project]\nname = \"x\"\nversion = \"1\"\n\n[models.a]\nsource = { gguf = \"models/a.gguf\", hf = \"x\" }\n",
        6,
        &["exactly one source"],
    );
    check(
        &format!("{base}\n[releases.r]\nmodels = [\"aa\"]\n"),
        9,
        &["unknown model `aa`", "did you mean `a`?"],
    );
    check(
        &format!("{base}\n[templates.t]\nmessages = [{{ role = \"tool\", content = \"x\" }}]\n"),
        9,
        &["message role must be one of"],
    );
}

#[test]
fn modelfile_parameters_are_checked_against_ollamas_table() {
    let base = "[project]\nname = \"x\"\nversion = \"1\"\n\n[templates.t]\n";
    check(
        &format!("{base}parameters = {{ temprature = 0.7 }}\n"),
        6,
        &[
            "unknown PARAMETER `temprature`",
            "did you mean `temperature`?",
        ],
    );
    check(
        &format!("{base}parameters = {{ num_ctx = 4096.0 }}\n"),
        6,
        &["num_ctx"],
    );
    check(
        &format!("{base}parameters = {{ TEMPERATURE = 0.5 }}\n"),
        6,
        &["TEMPERATURE"],
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let p = Project::new();
    p.write(
        "tinylm.toml",
        "[project]\nname = \"x\"\nversion = \"1\"\n\n[models.a]\nsource.gguf = \"a.gguf\"\n\n[models.b]\nsource.gguf = \"b.gguf\"\n",
    );
    let out = p.run(&["build"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tinylm.toml:6:") && err.contains("tinylm.toml:9:"),
        "{err}"
    );
}

#[test]
fn a_missing_manifest_is_a_usage_error_with_a_hint() {
    let p = Project::new();
    let out = p.run(&["build"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tinylm init"));
}

#[test]
fn init_writes_a_manifest_that_builds() {
    let p = Project::new();
    support::write_gguf(&p, "weights/tiny.gguf", 3);
    let out = p.run(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    assert!(
        text.contains("source.gguf = \"weights/tiny.gguf\""),
        "{text}"
    );
    let r = p.build(&[]);
    assert_eq!(support::count(&r, "failed"), 0);
    assert!(p.path().join("dist/tiny/tiny.gguf").exists());
    assert_eq!(
        p.run(&["init"]).status.code(),
        Some(2),
        "init must not overwrite"
    );
}
