//! The build graph as users see it (`tinylm graph`): source files and actions as nodes, inputs
//! as labelled edges, rendered as Graphviz dot, a Mermaid flowchart or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{BuildPlan, Input};
use crate::fsutil::relative;

/// Output formats of [`Graph::render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON nodes and edges.
    Json,
}

/// A node: a source file (`file:<path>`) or an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphNode {
    /// `file:<path relative to the manifest>` or the action id.
    pub id: String,
    /// `file` or the action kind.
    pub kind: String,
    /// The file's path, for file nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// An edge from a producer (file or action) to the action that reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphEdge {
    /// Producer node id.
    pub from: String,
    /// Consumer node id.
    pub to: String,
    /// Input name, or `output → input` between actions.
    pub label: String,
}

/// The whole graph, files first (sorted), then actions in plan order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges, in input order of each action.
    pub edges: Vec<GraphEdge>,
}

impl Graph {
    /// The graph of `plan`; source paths are shown relative to `root`.
    pub fn of(plan: &BuildPlan, root: &Path) -> Graph {
        // Source files are nodes too, so the picture shows where everything comes from.
        let mut files: BTreeSet<String> = BTreeSet::new();
        let mut edges = Vec::new();
        // An action can read one source under one name through several of its parts (a
        // release lists a model's sources once per quant): one edge each.
        let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
        for ix in plan.graph.node_indices() {
            let node = &plan.graph[ix];
            for (name, input) in &node.inputs {
                let from = match input {
                    Input::File(p) | Input::Dir(p) => {
                        let f = relative(root, p);
                        files.insert(f.clone());
                        format!("file:{f}")
                    }
                    Input::Output { node: up, output } => {
                        let e = (
                            plan.graph[*up].id.clone(),
                            node.id.clone(),
                            format!("{output} → {name}"),
                        );
                        if seen.insert(e.clone()) {
                            edges.push(GraphEdge {
                                from: e.0,
                                to: e.1,
                                label: e.2,
                            });
                        }
                        continue;
                    }
                };
                if seen.insert((from.clone(), node.id.clone(), name.clone())) {
                    edges.push(GraphEdge {
                        from,
                        to: node.id.clone(),
                        label: name.clone(),
                    });
                }
            }
        }
        let nodes = files
            .into_iter()
            .map(|f| GraphNode {
                id: format!("file:{f}"),
                kind: "file".into(),
                path: Some(f),
            })
            .chain(plan.graph.node_weights().map(|n| GraphNode {
                id: n.id.clone(),
                kind: n.action.kind().to_string(),
                path: None,
            }))
            .collect();
        Graph { nodes, edges }
    }

    /// The graph as text in `format` (ends with a newline).
    pub fn render(&self, format: GraphFormat) -> String {
        let mut out = String::new();
        let files = self.nodes.iter().filter_map(|n| n.path.as_ref());
        let actions = self.nodes.iter().filter(|n| n.path.is_none());
        match format {
            GraphFormat::Dot => {
                out.push_str("digraph tinylm {\n  rankdir=LR;\n");
                for f in files {
                    let _ = writeln!(
                        out,
                        "  {} [shape=note, label={}];",
                        dot_quote(&format!("file:{f}")),
                        dot_quote(f)
                    );
                }
                for a in actions {
                    // `\n` is dot's line break inside a label: written raw, not escaped.
                    let _ = writeln!(
                        out,
                        "  {} [shape=box, label=\"{}\\n({})\"];",
                        dot_quote(&a.id),
                        dot_escape(&a.id),
                        dot_escape(&a.kind)
                    );
                }
                for e in &self.edges {
                    let _ = writeln!(
                        out,
                        "  {} -> {} [label={}];",
                        dot_quote(&e.from),
                        dot_quote(&e.to),
                        dot_quote(&e.label)
                    );
                }
                out.push_str("}\n");
            }
            GraphFormat::Mermaid => {
                let ids: BTreeMap<&str, String> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.id.as_str(), format!("n{i}")))
                    .collect();
                out.push_str("flowchart LR\n");
                for f in files {
                    let _ = writeln!(out, "  {}[/\"{f}\"/]", ids[format!("file:{f}").as_str()]);
                }
                for a in actions {
                    let _ = writeln!(out, "  {}[\"{} ({})\"]", ids[a.id.as_str()], a.id, a.kind);
                }
                for e in &self.edges {
                    let _ = writeln!(
                        out,
                        "  {} -->|\"{}\"| {}",
                        ids[e.from.as_str()],
                        e.label,
                        ids[e.to.as_str()]
                    );
                }
            }
            GraphFormat::Json => {
                out = serde_json::to_string_pretty(self).unwrap_or_default();
                out.push('\n');
            }
        }
        out
    }
}

/// `s` escaped for a double-quoted dot string (quotes, backslashes, newlines).
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as a double-quoted dot string.
fn dot_quote(s: &str) -> String {
    format!("\"{}\"", dot_escape(s))
}
