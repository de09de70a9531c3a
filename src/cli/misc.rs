//! Engine subcommands: status, graph, clean, gc, init, schema.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use petgraph::Direction;
use petgraph::visit::EdgeRef;

use super::{GlobalOpts, workspace};
use crate::cache::{Digest, ac, lock};
use crate::exec::lockfile::LockFile;
use crate::exec::materialize::{self, State};
use crate::exec::{self, BuildOptions, Status, Workspace};
use crate::plan::{self, Input, Plan};
use crate::{Error, IoContext, Result, manifest};

/// Arguments of `tinylm status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Targets to check (default: everything).
    pub targets: Vec<String>,
    /// Say why each stale action must run (which input or parameter changed).
    #[arg(long)]
    pub explain: bool,
}

/// Runs `tinylm status`.
pub fn status(g: &GlobalOpts, args: StatusArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let plan = plan::plan(&ws.project, Default::default())?;
    let opts = BuildOptions {
        targets: args.targets,
        jobs: workspace::jobs(None)?,
        keep_going: true,
        dry_run: true,
        locked: false,
        progress: false,
        verbose_lines: false,
    };
    let report = exec::build(&ws, &plan, &opts, Default::default())?;
    let lock = LockFile::read(&ws.lock_path())?;
    let status_of: BTreeMap<&str, Status> = report
        .details
        .iter()
        .map(|d| (d.id.as_str(), d.status))
        .collect();
    let mut entries = Vec::new();
    for d in &report.details {
        let reasons = match d.status {
            Status::WouldRun if args.explain || g.json => explain(&ws, &plan, &lock, d, &status_of),
            Status::FromCache => vec![format!(
                "cached; outputs missing or changed under {}",
                ws.project.out.display()
            )],
            _ => Vec::new(),
        };
        let template = (args.explain || g.json)
            .then(|| template_choice(&ws, &lock, d))
            .flatten();
        entries.push((d, reasons, template));
    }
    if g.json {
        let list: Vec<_> = entries
            .iter()
            .map(|(d, r, t)| {
                let mut v = serde_json::json!({ "id": d.id, "kind": d.kind, "status": d.status, "key": d.key, "reasons": r });
                if let Some(t) = t {
                    v["template"] = t.clone();
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "actions": list }))
                .unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut fresh = 0;
    for (d, reasons, template) in &entries {
        let label = match d.status {
            Status::WouldRun => "stale",
            Status::FromCache => "restore",
            _ => {
                fresh += 1;
                if let Some(t) = template {
                    println!("{:>8}  {}", "ok", d.id);
                    println!("{:>10}{}", "", describe_template(t));
                }
                continue;
            }
        };
        println!("{label:>8}  {}", d.id);
        for r in reasons {
            println!("{:>10}{r}", "");
        }
        if let Some(t) = template {
            println!("{:>10}{}", "", describe_template(t));
        }
    }
    println!(
        "{} actions: {} stale, {} to restore from cache, {fresh} up to date",
        report.actions, report.would_run, report.from_cache
    );
    Ok(ExitCode::SUCCESS)
}

/// The template a built Modelfile uses and why (its `template.json`, read from the cache).
fn template_choice(
    ws: &Workspace,
    lock: &LockFile,
    d: &exec::ActionReport,
) -> Option<serde_json::Value> {
    if d.kind != "modelfile" || d.status == Status::WouldRun {
        return None;
    }
    let out = lock.actions.get(&d.id)?.outputs.get("template.json")?;
    let bytes = std::fs::read(ws.store.object_path(&out.digest)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One line: `template chatml (detected: …); stops added: <|im_end|>`.
fn describe_template(t: &serde_json::Value) -> String {
    let name = t["template"].as_str();
    let family = t["family"].as_str();
    let evidence: Vec<&str> = t["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_default();
    let mut line = match (name, family) {
        (None, _) => "no template (bare FROM)".to_string(),
        (Some("auto"), Some(f)) => format!("template {f}, detected: {}", evidence.join("; ")),
        (Some(n), _) => format!("template {n} (from the manifest)"),
    };
    let stops: Vec<&str> = t["stops_added"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
        .unwrap_or_default();
    if !stops.is_empty() {
        line.push_str(&format!(
            "; stops added from the vocabulary: {}",
            stops.join(", ")
        ));
    }
    line
}

/// Why a stale action must run, from the lock and the previous action record.
fn explain(
    ws: &Workspace,
    plan: &Plan,
    lock: &LockFile,
    d: &exec::ActionReport,
    status_of: &BTreeMap<&str, Status>,
) -> Vec<String> {
    let Some(new) = &d.preimage else {
        // Its key is unknown until something upstream is rebuilt.
        let Some(ix) = plan.find(&d.id) else {
            return Vec::new();
        };
        let ups: BTreeSet<String> = plan
            .graph
            .edges_directed(ix, Direction::Incoming)
            .map(|e| plan.graph[e.source()].id.clone())
            .filter(|id| status_of.get(id.as_str()) == Some(&Status::WouldRun))
            .collect();
        return ups
            .into_iter()
            .map(|u| format!("needs `{u}`, which is stale"))
            .collect();
    };
    let Some(entry) = lock.actions.get(&d.id) else {
        return vec!["never built (not in tinylm.lock)".into()];
    };
    let new_key = d.key.as_deref().unwrap_or_default();
    if entry.key.to_hex() == new_key {
        return vec!["same key as tinylm.lock, but its outputs are no longer in the cache".into()];
    }
    if let Some(old) = ac::read(&ws.store, &entry.key) {
        let lines = plan::key::diff(&old.preimage, new);
        if !lines.is_empty() {
            return lines;
        }
    }
    // The previous record was garbage-collected: compare input digests from the lock.
    let mut lines = Vec::new();
    if let Some(inputs) = new.get("inputs").and_then(|v| v.as_array()) {
        for pair in inputs {
            let (Some(name), Some(digest)) = (
                pair.get(0).and_then(|v| v.as_str()),
                pair.get(1).and_then(|v| v.as_str()),
            ) else {
                continue;
            };
            match entry.inputs.get(name) {
                Some(old) if old.digest.to_hex() != digest => {
                    lines.push(format!("input `{name}` changed"))
                }
                None => lines.push(format!("input `{name}` added")),
                _ => {}
            }
        }
    }
    if lines.is_empty() {
        lines.push(
            "parameters or implementation version changed (previous record not in cache)".into(),
        );
    }
    lines
}

/// Output formats of `tinylm graph`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz dot.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
    /// JSON nodes and edges.
    Json,
}

/// Arguments of `tinylm graph`.
#[derive(Debug, clap::Args)]
pub struct GraphArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// Runs `tinylm graph`.
pub fn graph(g: &GlobalOpts, args: GraphArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let plan = plan::plan(&ws.project, Default::default())?;
    let root = &ws.project.root;
    // Source files are nodes too, so the picture shows where everything comes from.
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut edges: Vec<(String, String, String)> = Vec::new();
    for ix in plan.graph.node_indices() {
        let node = &plan.graph[ix];
        for (name, input) in &node.inputs {
            let from = match input {
                Input::File(p) | Input::Dir(p) => {
                    let f = exec::relative(root, p);
                    files.insert(f.clone());
                    format!("file:{f}")
                }
                Input::Output { node: up, output } => {
                    edges.push((
                        plan.graph[*up].id.clone(),
                        node.id.clone(),
                        format!("{output} → {name}"),
                    ));
                    continue;
                }
            };
            edges.push((from, node.id.clone(), name.clone()));
        }
    }
    let actions: Vec<(String, &str)> = plan
        .graph
        .node_weights()
        .map(|n| (n.id.clone(), n.action.kind()))
        .collect();
    let mut out = String::new();
    match args.format {
        GraphFormat::Dot => {
            out.push_str("digraph tinylm {\n  rankdir=LR;\n");
            for f in &files {
                let _ = writeln!(
                    out,
                    "  {:?} [shape=note, label={:?}];",
                    format!("file:{f}"),
                    f
                );
            }
            for (id, kind) in &actions {
                let _ = writeln!(
                    out,
                    "  {id:?} [shape=box, label={:?}];",
                    format!("{id}\\n({kind})")
                );
            }
            for (a, b, l) in &edges {
                let _ = writeln!(out, "  {a:?} -> {b:?} [label={l:?}];");
            }
            out.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            let ids: BTreeMap<String, String> = files
                .iter()
                .map(|f| format!("file:{f}"))
                .chain(actions.iter().map(|(id, _)| id.clone()))
                .enumerate()
                .map(|(i, id)| (id, format!("n{i}")))
                .collect();
            out.push_str("flowchart LR\n");
            for f in &files {
                let _ = writeln!(out, "  {}[/\"{f}\"/]", ids[&format!("file:{f}")]);
            }
            for (id, kind) in &actions {
                let _ = writeln!(out, "  {}[\"{id} ({kind})\"]", ids[id]);
            }
            for (a, b, l) in &edges {
                let _ = writeln!(out, "  {} -->|\"{l}\"| {}", ids[a], ids[b]);
            }
        }
        GraphFormat::Json => {
            let nodes: Vec<_> = files
                .iter()
                .map(
                    |f| serde_json::json!({ "id": format!("file:{f}"), "kind": "file", "path": f }),
                )
                .chain(
                    actions
                        .iter()
                        .map(|(id, kind)| serde_json::json!({ "id": id, "kind": kind })),
                )
                .collect();
            let edges: Vec<_> = edges
                .iter()
                .map(|(a, b, l)| serde_json::json!({ "from": a, "to": b, "label": l }))
                .collect();
            out = serde_json::to_string_pretty(
                &serde_json::json!({ "nodes": nodes, "edges": edges }),
            )
            .unwrap_or_default();
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `tinylm clean`.
#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Also delete the cache directory.
    #[arg(long)]
    pub cache: bool,
}

/// Runs `tinylm clean`: removes the outputs tinylm placed (never other files).
pub fn clean(g: &GlobalOpts, args: CleanArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let _locks = workspace::lock_for_build(&ws)?;
    let state_path = ws.state_path();
    let mut state = State::load(&state_path);
    let out = &ws.project.out;
    let mut removed = 0;
    let mut kept = Vec::new();
    for (rel, placed) in std::mem::take(&mut state.placed) {
        if materialize::remove_stale(out, &rel, &placed) {
            removed += 1;
        } else if out.join(&rel).exists() {
            kept.push(rel);
        }
    }
    let _ = std::fs::remove_dir(out.join("releases"));
    let _ = std::fs::remove_dir(out);
    state.save(&state_path)?;
    for k in &kept {
        eprintln!(
            "warning: kept {} (modified after tinylm placed it)",
            out.join(k).display()
        );
    }
    if args.cache {
        drop(_locks);
        let _gc = lock::acquire(
            &ws.store.lock_path(),
            true,
            "another tinylm process using the cache",
        )?;
        remove_tree(ws.store.root())?;
    }
    if !g.quiet {
        eprintln!("removed {removed} files from {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Arguments of `tinylm gc`.
#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Only delete unreachable objects (oldest first) until the cache is at most this size
    /// (`500M`, `20G`, bytes).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
}

/// Parses `123`, `10K`, `500M`, `2G`, `1.5T` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().trim_end_matches(['B', 'b']).trim_end_matches('i');
    let (num, mult) = match t.chars().last() {
        Some(c @ ('K' | 'k' | 'M' | 'm' | 'G' | 'g' | 'T' | 't')) => {
            let exp = "KMGT".find(c.to_ascii_uppercase()).unwrap_or(0) as i32 + 1;
            (&t[..t.len() - 1], 1024f64.powi(exp))
        }
        _ => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("invalid size `{s}` (try 500M, 20G)"))?;
    if v < 0.0 {
        return Err(format!("invalid size `{s}`"));
    }
    Ok((v * mult) as u64)
}

/// Runs `tinylm gc`.
pub fn gc(g: &GlobalOpts, args: GcArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    let _lock = lock::acquire(&ws.store.lock_path(), true, "running tinylm builds")?;
    let lock = LockFile::read(&ws.lock_path())?;
    let mut keep_keys: BTreeSet<Digest> = lock.actions.values().map(|e| e.key).collect();
    let mut keep_objects: BTreeSet<Digest> = lock
        .actions
        .values()
        .flat_map(|e| e.outputs.values().map(|o| o.digest))
        .collect();
    // A cache shared by several projects: keep what their locks need too.
    let others = crate::cache::roots::protected_by_others(&ws.store, &ws.project.root);
    keep_keys.extend(others.keys);
    keep_objects.extend(others.objects);
    for p in &others.dropped {
        tracing::info!("forgetting {} (its lock file is gone)", p.display());
    }

    let mut objects: Vec<(std::time::SystemTime, u64, PathBuf, bool)> = Vec::new();
    let mut total = 0u64;
    for entry in walkdir::WalkDir::new(ws.store.root().join("cas"))
        .min_depth(2)
        .max_depth(2)
    {
        let entry = entry.map_err(|e| Error::Build(format!("scanning cache: {e}")))?;
        let meta = entry
            .metadata()
            .map_err(|e| Error::Build(format!("scanning cache: {e}")))?;
        total += meta.len();
        let reachable = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Digest>().ok())
            .is_some_and(|d| keep_objects.contains(&d));
        objects.push((
            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
            meta.len(),
            entry.into_path(),
            reachable,
        ));
    }
    objects.sort();
    let mut freed = 0u64;
    let mut deleted = BTreeSet::new();
    for (_, size, path, reachable) in &objects {
        if *reachable || args.max_size.is_some_and(|max| total - freed <= max) {
            continue;
        }
        std::fs::remove_file(path).with_path(path)?;
        freed += size;
        if let Some(d) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<Digest>().ok())
        {
            deleted.insert(d);
        }
    }
    // Drop records that are not locked or that point at deleted objects, so no record ever
    // promises an output the cache no longer has.
    let mut records = 0;
    for entry in walkdir::WalkDir::new(ws.store.root().join("ac"))
        .min_depth(2)
        .max_depth(2)
        .into_iter()
        .flatten()
    {
        let Some(key) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<Digest>().ok())
        else {
            continue;
        };
        let dangling = ac::read(&ws.store, &key)
            .is_none_or(|r| r.outputs.values().any(|o| deleted.contains(&o.digest)));
        if (args.max_size.is_none() && !keep_keys.contains(&key)) || dangling {
            let _ = std::fs::remove_file(entry.path());
            records += 1;
        }
    }
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "objects_deleted": deleted.len(), "bytes_freed": freed, "records_deleted": records, "bytes_before": total, "other_projects": others.projects })
        );
    } else if !g.quiet {
        eprintln!(
            "deleted {} objects ({:.1} MiB) and {records} action records; cache now {:.1} MiB",
            deleted.len(),
            freed as f64 / 1048576.0,
            (total - freed) as f64 / 1048576.0
        );
        if !others.projects.is_empty() {
            eprintln!(
                "kept what {} other project(s) sharing this cache need",
                others.projects.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `tinylm init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Project name (default: the directory name).
    #[arg(long)]
    pub name: Option<String>,
}

/// Runs `tinylm init`: writes a starter manifest listing the models found nearby.
pub fn init(g: &GlobalOpts, args: InitArgs) -> Result<ExitCode> {
    let path = g
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from(manifest::MANIFEST_FILE));
    if path.exists() {
        return Err(Error::Usage(format!("{} already exists", path.display())));
    }
    let dir = std::path::absolute(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .with_path(&path)?;
    let name = args.name.unwrap_or_else(|| {
        dir.file_name()
            .map_or("my-models".into(), |n| n.to_string_lossy().into_owned())
    });
    let text = starter_manifest(&name, &dir);
    std::fs::write(&path, &text).with_path(&path)?;
    // What we write must be valid: check it like any manifest.
    manifest::validate(&manifest::load(&path)?)?;
    if !g.quiet {
        eprintln!("wrote {}; run `tinylm build`", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn starter_manifest(name: &str, dir: &Path) -> String {
    let mut s = format!(
        "# tinylm build manifest. Schema: `tinylm schema`; build with `tinylm build`.\n\n\
         [project]\nname = {name:?}\nversion = \"0.1.0\"\nout = \"dist\"\n\n\
         [templates.completion]\ntemplate = \"{{{{ .Prompt }}}}\"\n"
    );
    let mut models = Vec::new();
    for e in walkdir::WalkDir::new(dir)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
        .flatten()
    {
        let rel = exec::relative(dir, e.path());
        let file_name = e.file_name().to_string_lossy();
        if rel.starts_with("dist/") || rel.starts_with("target/") {
            continue;
        }
        let stem = |p: &Path| {
            p.file_stem().map_or("model".into(), |s| {
                s.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
            })
        };
        if e.file_type().is_file() && file_name.ends_with(".gguf") {
            models.push(format!(
                "[models.{}]\nsource.gguf = {rel:?}\ntemplate = \"completion\"\n",
                stem(e.path())
            ));
        } else if e.file_type().is_dir()
            && e.path().join("config.json").is_file()
            && has_weights(e.path())
        {
            models.push(format!(
                "[models.{}]\nsource.hf = {rel:?}\nquants = [\"f16\", \"q8_0\"]\n",
                stem(e.path())
            ));
        }
    }
    if models.is_empty() {
        s.push_str(
            "\n# Declare models, for example:\n#\n# [models.tiny]\n# source.gguf = \"tiny.gguf\"\n\
             # template = \"completion\"\n#\n# [models.mine]\n# source.tinylm = { checkpoint = \"runs/x/checkpoints/last.ckpt\", \
             config = \"configs/models/x.yaml\", tokenizer = \"tokenizers/x/tokenizer.pkl\" }\n\
             # quants = [\"f16\", \"q8_0\", \"q4_k_m\"]\n#\n# [releases.v1]\n# models = [\"mine\"]\n",
        );
    }
    for m in models {
        s.push('\n');
        s.push_str(&m);
    }
    s
}

fn has_weights(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".safetensors") || (n.starts_with("pytorch_model") && n.ends_with(".bin"))
        })
}

/// Arguments of `tinylm schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {}

/// Runs `tinylm schema`: prints the JSON schema of tinylm.toml.
pub fn schema(_g: &GlobalOpts, _args: SchemaArgs) -> Result<ExitCode> {
    print!("{}", manifest::json_schema());
    Ok(ExitCode::SUCCESS)
}
