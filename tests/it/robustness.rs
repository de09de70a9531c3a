//! Bugs and broken pipes end cleanly: a panicking action is that action's failure (exit 1, no
//! hang, the lock released), and a closed stdout ends the process quietly.

use std::process::{Command, Stdio};

use crate::support::{assert_no_panic, bin, count, demo, run_with_timeout};

#[test]
fn a_panicking_action_fails_the_build_instead_of_hanging_it() {
    let p = demo();
    let out = run_with_timeout(
        &p,
        &["--json", "build", "--keep-going"],
        &[("TINYLM_FAULT", "panic-in-action:import:b")],
        60,
    )
    .expect("the build hung after a panic in an action");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("import:b"), "{err}");
    assert!(err.contains("panicked"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(count(&r, "failed") >= 1, "{r}");
    // Model a still built (--keep-going), and the lock is free: the next build completes.
    assert!(p.path().join("dist/a/a.gguf").exists());
    let out = run_with_timeout(&p, &["--json", "build"], &[], 60).expect("second build hung");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_panic_without_keep_going_also_ends_with_exit_1() {
    let p = demo();
    let out = run_with_timeout(
        &p,
        &["build", "-j", "1"],
        &[("TINYLM_FAULT", "panic-in-action")],
        60,
    )
    .expect("the build hung after a panic in an action");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let p = demo();
    p.build(&[]);
    for args in [
        &["schema"][..],
        &["template", "list"],
        &["--json", "status"],
        &["graph"],
        &["--json", "build"],
    ] {
        // The reader is gone before tinylm writes, as with `tinylm … | head -0`.
        let mut child = Command::new(bin())
            .current_dir(p.path())
            .args(args)
            .env_remove("TINYLM_CACHE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = assert_no_panic(&out, &args.join(" "));
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert!(err.trim().is_empty(), "{args:?} printed: {err}");
    }
}
