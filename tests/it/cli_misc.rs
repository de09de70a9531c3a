//! Small things a newcomer hit on the command line, each checked the way they met it.

use crate::support::{assert_no_panic, demo};

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
