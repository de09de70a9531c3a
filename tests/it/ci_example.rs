//! `examples/ci/github-actions.yml` parses, caches what the README says it caches, and only runs
//! tinylm subcommands and flags that exist.

use std::path::PathBuf;

fn workflow() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/ci/github-actions.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn steps(w: &serde_json::Value) -> Vec<serde_json::Value> {
    w["jobs"]["build"]["steps"]
        .as_array()
        .expect("jobs.build.steps")
        .clone()
}

#[test]
fn the_workflow_caches_by_lock_hash_and_uploads_from_a_secret() {
    let w = workflow();
    assert!(w["on"].is_object(), "{w}");
    let env = &w["jobs"]["build"]["env"];
    assert_eq!(
        env["TINYLM_REMOTE_CACHE"],
        "${{ secrets.TINYLM_REMOTE_CACHE }}"
    );
    assert_eq!(env["TINYLM_REMOTE_UPLOAD"], "true");
    let steps = steps(&w);
    let cache = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .expect("an actions/cache step");
    let key = cache["with"]["key"].as_str().unwrap();
    assert!(key.contains("hashFiles('tinylm.lock')"), "{key}");
    let restore = cache["with"]["restore-keys"].as_str().unwrap().trim();
    assert!(
        key.starts_with(restore),
        "restore prefix {restore} of {key}"
    );
    // The cached path is the one TINYLM_CACHE points at.
    let path = cache["with"]["path"].as_str().unwrap();
    assert!(env["TINYLM_CACHE"].as_str().unwrap().ends_with(path));
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter().any(|r| r.contains("tinylm build --locked")),
        "{runs:?}"
    );
}

#[test]
fn every_tinylm_command_in_the_workflow_exists() {
    let w = workflow();
    let mut checked = 0;
    for step in steps(&w) {
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        for line in run.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("tinylm ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let sub: Vec<&str> = words
                .iter()
                .take_while(|w| !w.starts_with('-'))
                .copied()
                .collect();
            let flags: Vec<&str> = words
                .iter()
                .filter(|w| w.starts_with("--"))
                .map(|w| w.split('=').next().unwrap())
                .collect();
            let out = std::process::Command::new(crate::support::bin())
                .args(&sub)
                .arg("--help")
                .output()
                .unwrap();
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "`tinylm {}` does not exist",
                sub.join(" ")
            );
            for f in flags {
                assert!(
                    help.contains(f),
                    "`tinylm {}` has no {f}:\n{help}",
                    sub.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} tinylm commands found");
}
