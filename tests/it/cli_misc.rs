//! Small things a newcomer hit on the command line, each checked the way they met it.

use std::path::Path;
use std::process::Command;

use crate::support::{Project, assert_no_panic, bin, demo};

#[test]
fn graph_dot_has_real_line_breaks_and_no_duplicate_edges() {
    let p = demo();
    let out = p.run(&["graph", "--format", "dot"]);
    assert_no_panic(&out, "graph");
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    // One backslash before `n` (dot's line break), never an escaped backslash.
    assert!(dot.contains("\\n(import)"), "{dot}");
    assert!(!dot.contains("\\\\n"), "{dot}");
    let edges: Vec<&str> = dot.lines().filter(|l| l.contains(" -> ")).collect();
    let mut unique = edges.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(edges.len(), unique.len(), "duplicate edges:\n{dot}");
    assert!(!edges.is_empty());
}

#[test]
fn json_graph_is_json() {
    let p = demo();
    let out = p.run(&["--json", "graph"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["nodes"].as_array().is_some_and(|n| !n.is_empty()), "{v}");
    assert!(v["edges"].as_array().is_some_and(|n| !n.is_empty()), "{v}");
    // An explicit --format still wins.
    let out = p.run(&["--json", "graph", "--format", "mermaid"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("flowchart"));
}

/// A copy of `examples/<name>` of the repository at `dest`.
fn copy_example(name: &str, dest: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    std::fs::create_dir_all(dest).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
    }
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn install_lmstudio_honours_models_dir_publisher_and_name_for_manifest_models() {
    let p = demo();
    p.build(&[]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_string_lossy().into_owned();
    let out = p.run_env(
        &[
            "install",
            "lmstudio",
            "a",
            "--models-dir",
            &d,
            "--publisher",
            "me",
            "--name",
            "alpha",
        ],
        &[("LMSTUDIO_MODELS", "/nonexistent/should-not-be-used")],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let files: Vec<_> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .flatten()
        .collect();
    assert!(
        dir.path().join("me/alpha-GGUF/a.gguf").is_file(),
        "{files:?}"
    );
}

#[test]
fn init_finds_tiny_lm_runs_and_the_manifest_it_writes_builds() {
    // A tiny-lm checkout: runs/<run>/checkpoints/last.ckpt, configs/models/<name>.yaml,
    // tokenizers/<name>/tokenizer.pkl, configs/tokenizers/<name>.yaml.
    let p = Project::new();
    let ex = p.path().join("ex");
    copy_example("tiny-gpt2", &ex);
    let mv = |from: &str, to: &str| {
        let to = p.path().join(to);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(ex.join(from), to).unwrap();
    };
    mv("last.ckpt", "runs/gpt2-small-run1/checkpoints/last.ckpt");
    mv("model.yaml", "configs/models/gpt2-small.yaml");
    mv("tokenizer.pkl", "tokenizers/bpe4k/tokenizer.pkl");
    mv("tokenizer.yaml", "configs/tokenizers/bpe4k.yaml");
    // And a run exported next to its config and tokenizer, as in examples/.
    copy_example("tiny-llama3", &p.path().join("export/tiny-llama3"));
    let out = p.run(&["init"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    assert!(m.contains("[models.gpt2-small-run1]"), "{m}");
    assert!(
        m.contains("checkpoint = \"runs/gpt2-small-run1/checkpoints/last.ckpt\""),
        "{m}"
    );
    assert!(
        m.contains("config = \"configs/models/gpt2-small.yaml\""),
        "{m}"
    );
    assert!(
        m.contains("tokenizer = \"tokenizers/bpe4k/tokenizer.pkl\""),
        "{m}"
    );
    assert!(
        m.contains("tokenizer_config = \"configs/tokenizers/bpe4k.yaml\""),
        "{m}"
    );
    assert!(m.contains("[models.tiny-llama3]"), "{m}");
    let out = p.run(&["build", "--allow-lint"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{m}", stderr_of(&out));
    assert!(
        p.path()
            .join("dist/gpt2-small-run1/gpt2-small-run1-q8_0.gguf")
            .is_file()
    );
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn convert_quantize_and_the_lock_file_get_normal_permissions() {
    let p = demo();
    copy_example("tiny-gpt2", &p.path().join("ex"));
    let sh = |cmd: &str| {
        let out = Command::new("sh")
            .current_dir(p.path())
            .env("TINYLM", bin())
            .args(["-c", &format!("umask 022 && {cmd}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {}", stderr_of(&out));
    };
    sh("\"$TINYLM\" convert --to gguf -o conv.gguf ex/last.ckpt");
    sh("\"$TINYLM\" convert --to hf -o hf ex/last.ckpt");
    sh("\"$TINYLM\" quantize conv.gguf q8.gguf q8_0");
    sh("\"$TINYLM\" build");
    // Rewritten by a changed build.
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &m.replace(
            "[releases.v1]\nmodels = [\"a\", \"b\"]",
            "[releases.v1]\nmodels = [\"a\"]",
        ),
    );
    sh("\"$TINYLM\" build");
    for f in [
        "conv.gguf",
        "q8.gguf",
        "hf/config.json",
        "hf/model.safetensors",
        "tinylm.lock",
    ] {
        assert_eq!(mode(&p.path().join(f)), 0o644, "{f}");
    }
}

#[test]
fn quant_typos_suggest_the_quant_meant() {
    let p = demo();
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &m.replace(
            "template = \"plain\"",
            "template = \"plain\"\nquants = [\"q4km\"]",
        ),
    );
    let err = stderr_of(&p.run(&["build"]));
    assert!(err.contains("did you mean `q4_k_m`?"), "{err}");
    let out = p.run(&["quantize", "models/a.gguf", "x.gguf", "q4km"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("did you mean Q4_K_M?"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_error_in_defaults_is_reported_once_and_a_failed_action_once() {
    let p = demo();
    let m = std::fs::read_to_string(p.path().join("tinylm.toml")).unwrap();
    p.write(
        "tinylm.toml",
        &format!("{m}\n[defaults]\nquants = [\"q9_9\"]\n"),
    );
    let err = stderr_of(&p.run(&["build"]));
    assert_eq!(err.matches("unknown quant `q9_9`").count(), 1, "{err}");
    let p = demo();
    std::fs::write(p.path().join("models/b.gguf"), "not a gguf").unwrap();
    let out = p.run(&["build", "-k"]);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.matches("not a GGUF file").count(), 1, "{err}");
}

/// The repository demo without its `pre` lines: the build warns about the pre-tokenizer.
fn warning_demo() -> Project {
    let p = Project::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let m = std::fs::read_to_string(repo.join("tinylm.toml")).unwrap();
    p.write("tinylm.toml", &m.replace("pre = \"llama-bpe\"", ""));
    copy_example("tiny-gpt2", &p.path().join("examples/tiny-gpt2"));
    copy_example("tiny-llama3", &p.path().join("examples/tiny-llama3"));
    p
}

#[test]
fn warnings_read_as_warnings_and_colour_follows_no_color() {
    let p = warning_demo();
    let out = p.run_env(
        &["build", "tiny-gpt2"],
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: gguf:tiny-gpt2: llama.cpp has no pre-tokenizer"),
        "{err}"
    );
    assert!(!err.contains("WARN") && !err.contains("action{"), "{err}");
    assert!(!err.contains('\x1b'), "NO_COLOR ignored: {err:?}");
    std::fs::remove_dir_all(p.path().join(".tinylm")).unwrap();
    let out = p.run_env(&["build", "tiny-gpt2"], &[("CLICOLOR_FORCE", "1")]);
    assert!(
        stderr_of(&out).contains("\x1b[1;33mwarning\x1b[0m"),
        "{:?}",
        stderr_of(&out)
    );
    let out = p.run(&["--color", "always", "build", "nope"]);
    assert!(stderr_of(&out).contains("\x1b[1;31merror\x1b[0m"));
}

#[test]
fn json_mode_reports_errors_on_stdout_and_sorts_details() {
    let p = demo();
    p.write("tinylm.toml", "[project]\nname = 1\n");
    let out = p.run(&["--json", "build"]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["error"].as_str().unwrap().contains("tinylm.toml:2:"),
        "{v}"
    );
    let p = demo();
    for j in ["1", "4"] {
        std::fs::remove_dir_all(p.path().join(".tinylm")).ok();
        let r = p.build(&["-j", j]);
        let ids: Vec<&str> = r["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}

#[test]
fn the_manifest_is_found_from_a_subdirectory() {
    let p = demo();
    let sub = p.path().join("models");
    let out = Command::new(bin())
        .current_dir(&sub)
        .args(["build"])
        .env_remove("TINYLM_CACHE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(p.path().join("dist/a/a.gguf").is_file());
    assert!(!sub.join("dist").exists());
}

#[test]
fn status_exit_code_fails_when_stale() {
    let p = demo();
    assert_eq!(p.run(&["status", "--exit-code"]).status.code(), Some(1));
    assert_eq!(p.run(&["status"]).status.code(), Some(0));
    p.build(&[]);
    assert_eq!(p.run(&["status", "--exit-code"]).status.code(), Some(0));
    std::fs::remove_file(p.path().join("dist/a/a.gguf")).unwrap();
    assert_eq!(
        p.run(&["--json", "status", "--exit-code"]).status.code(),
        Some(1)
    );
}

#[test]
fn gc_says_when_max_size_cannot_be_reached() {
    let p = demo();
    p.build(&[]);
    let out = p.run(&["gc", "--max-size", "1K"]);
    assert_eq!(out.status.code(), Some(0));
    let err = stderr_of(&out);
    assert!(err.contains("above --max-size"), "{err}");
}
