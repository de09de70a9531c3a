//! Every subcommand (and the `--help` of each) run on the repository's demo in a temp dir, the
//! way a newcomer tries them: exit codes as documented, and never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Project, assert_no_panic, bin};

/// A copy of the repository's demo (`tinylm.toml` and `examples/`) in a temp dir.
fn repo_demo() -> Project {
    let p = Project::new();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(repo.join("tinylm.toml"), p.path().join("tinylm.toml")).unwrap();
    for e in walkdir::WalkDir::new(repo.join("examples"))
        .into_iter()
        .flatten()
    {
        let rel = e.path().strip_prefix(repo).unwrap();
        let dest = p.path().join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
    p
}

/// The subcommands `tinylm <path> --help` lists (without `help`).
fn subcommands(path: &[String]) -> Vec<String> {
    let out = Command::new(bin())
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "{path:?} --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(start) = text.find("Commands:\n") else {
        return Vec::new();
    };
    text[start + "Commands:\n".len()..]
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn help_of_every_subcommand_exits_0() {
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        for sub in subcommands(&path) {
            let mut p = path.clone();
            p.push(sub);
            for help in ["--help", "-h"] {
                let out = Command::new(bin()).args(&p).arg(help).output().unwrap();
                assert_no_panic(&out, &format!("{p:?} {help}"));
                assert_eq!(out.status.code(), Some(0), "{p:?} {help}");
                assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: tinylm"));
            }
            seen += 1;
            todo.push(p);
        }
    }
    // 16 top-level commands plus the template/install/uninstall subcommands.
    assert!(seen >= 20, "only {seen} subcommands found");
}

#[test]
fn every_subcommand_runs_on_the_demo() {
    let p = repo_demo();
    let scratch = tempfile::tempdir().unwrap();
    let s = |rel: &str| -> String { scratch.path().join(rel).to_string_lossy().into_owned() };
    let ollama = s("ollama");
    let lmstudio = s("lmstudio");
    let gguf = "dist/tiny-gpt2/tiny-gpt2-f16.gguf";
    let conv_hf = s("hf");
    let conv_gguf = s("conv.gguf");
    let quant = s("q8.gguf");
    let man_dir = s("man");
    let steps: Vec<(Vec<&str>, i32)> = vec![
        (vec!["status"], 0),
        (vec!["build", "-n"], 0),
        (vec!["build"], 0),
        (vec!["--json", "build"], 0),
        (vec!["status"], 0),
        (vec!["--json", "status"], 0),
        (vec!["graph"], 0),
        (vec!["graph", "--format", "dot"], 0),
        (vec!["--json", "graph"], 0),
        (vec!["lint"], 0),
        (vec!["lint", "tiny-gpt2:q8_0"], 0),
        (vec!["lint", gguf], 0),
        (vec!["inspect", "examples/tiny-gpt2/last.ckpt"], 0),
        (vec!["inspect", "examples/tiny-gpt2/tokenizer.pkl"], 0),
        (vec!["inspect", gguf], 0),
        (vec!["--json", "inspect", gguf], 0),
        (
            vec![
                "convert",
                "--to",
                "hf",
                "-o",
                &conv_hf,
                "examples/tiny-gpt2/last.ckpt",
            ],
            0,
        ),
        (
            vec![
                "convert",
                "--to",
                "gguf",
                "-o",
                &conv_gguf,
                "examples/tiny-llama3/last.ckpt",
            ],
            0,
        ),
        (vec!["quantize", &conv_gguf, &quant, "q8_0"], 0),
        (vec!["quantize", &conv_gguf, &quant, "q9_9"], 2),
        (vec!["template", "list"], 0),
        (vec!["template", "show", "chatml"], 0),
        (vec!["template", "detect", gguf], 0),
        (vec!["install", "ollama", "tiny-gpt2:q8_0"], 0),
        (vec!["uninstall", "ollama", "tiny-gpt2:q8_0"], 0),
        (
            vec![
                "install",
                "lmstudio",
                "tiny-gpt2:q8_0",
                "--models-dir",
                &lmstudio,
            ],
            0,
        ),
        (
            vec![
                "install",
                "lmstudio",
                gguf,
                "--name",
                "tiny",
                "--models-dir",
                &lmstudio,
            ],
            0,
        ),
        (vec!["schema"], 0),
        (vec!["completions", "bash"], 0),
        (vec!["completions", "zsh"], 0),
        (vec!["completions", "fish"], 0),
        (vec!["man"], 0),
        (vec!["man", "--out-dir", &man_dir], 0),
        (vec!["verify"], 0),
        (vec!["--json", "verify"], 0),
        (vec!["gc"], 0),
        (vec!["--json", "gc"], 0),
        (vec!["build", "no-such-model"], 2),
        (vec!["--json", "clean"], 0),
        (vec!["clean"], 0),
        (vec!["clean", "--all"], 0),
        (vec!["build"], 0),
        (vec!["init"], 2),
    ];
    for (args, code) in &steps {
        let out = p.run_env(args, &[("OLLAMA_MODELS", &ollama), ("NO_COLOR", "1")]);
        let err = assert_no_panic(&out, &args.join(" "));
        assert_eq!(
            out.status.code(),
            Some(*code),
            "tinylm {}:\n{err}",
            args.join(" ")
        );
        if args.contains(&"--json") && *code == 0 {
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .unwrap_or_else(|e| panic!("tinylm {}: stdout is not JSON ({e})", args.join(" ")));
        }
    }
    assert!(Path::new(&man_dir).join("tinylm-build.1").is_file());
    // `init` in an empty directory writes a manifest that `status` then reads.
    let fresh = Project::new();
    for (args, code) in [(vec!["status"], 2), (vec!["init"], 0), (vec!["graph"], 0)] {
        let out = fresh.run(&args);
        let err = assert_no_panic(&out, &args.join(" "));
        assert_eq!(
            out.status.code(),
            Some(code),
            "fresh: tinylm {}:\n{err}",
            args.join(" ")
        );
    }
    let _: PathBuf = scratch.path().to_path_buf();
}

#[test]
fn clean_removes_outputs_and_clean_all_the_cache_too() {
    let p = repo_demo();
    let out = p.run(&["build"]);
    assert!(out.status.success());
    let out = p.run(&["clean"]);
    let err = assert_no_panic(&out, "clean");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!p.path().join("dist/tiny-gpt2/tiny-gpt2-f16.gguf").exists());
    assert!(p.path().join(".tinylm/cache/cas").is_dir());
    // The global --cache option and `clean --all` together (they used to collide).
    let other = tempfile::tempdir().unwrap();
    let cache = other.path().join("c");
    let cache_arg = cache.to_string_lossy().into_owned();
    let out = p.run(&["--cache", &cache_arg, "build"]);
    assert!(out.status.success());
    assert!(cache.join("cas").is_dir());
    let out = p.run(&["clean", "--all", "--cache", &cache_arg]);
    let err = assert_no_panic(&out, "clean --all --cache");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!cache.exists(), "the --cache directory was not removed");
    assert!(
        p.path().join(".tinylm/cache/cas").is_dir(),
        "the default cache was removed"
    );
    let out = p.run(&["clean", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!p.path().join(".tinylm/cache").exists());
    assert!(p.path().join("examples/tiny-gpt2/last.ckpt").exists());
}

#[test]
fn bash_completions_parse_and_the_man_page_is_roff() {
    let out = Command::new(bin())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    for sub in ["build", "verify", "completions", "clean"] {
        assert!(script.contains(sub), "{sub} missing from the completions");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tinylm.bash");
    std::fs::write(&path, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new(bin()).arg("man").output().unwrap();
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH tinylm"),
        "{}",
        &page[..200.min(page.len())]
    );
    assert!(page.contains("completions"));
}
