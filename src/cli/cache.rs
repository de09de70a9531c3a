//! `tinylm cache push|pull|stats`: explicit sync with the remote cache, and cache statistics.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, workspace};
use crate::cache::remote::{self, Remote};
use crate::cache::{ActionRecord, Digest, StatCache, ac, lock, roots};
use crate::exec::Workspace;
use crate::exec::lockfile::{LockEntry, LockFile};
use crate::{Error, Result, plan};

/// Arguments of `tinylm cache`.
#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// `tinylm cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Upload the cached results of targets (default: everything in tinylm.lock) to the remote.
    Push(TargetArgs),
    /// Download the results tinylm.lock names from the remote into the local cache.
    Pull(TargetArgs),
    /// Local cache size, projects sharing it, and remote cache totals.
    Stats,
}

/// Targets of `cache push` / `cache pull`.
#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    /// `MODEL`, `MODEL:QUANT` or `RELEASE` (default: everything).
    pub targets: Vec<String>,
}

/// Runs `tinylm cache …`.
pub fn run(g: &GlobalOpts, args: CacheArgs) -> Result<ExitCode> {
    let ws = workspace::open(g)?;
    match args.command {
        CacheCommand::Push(t) => push(g, &ws, &t.targets),
        CacheCommand::Pull(t) => pull(g, &ws, &t.targets),
        CacheCommand::Stats => stats(g, &ws),
    }
}

fn remote_of(ws: &Workspace) -> Result<&Remote> {
    ws.store.remote().map(|r| r.as_ref()).ok_or_else(|| {
        Error::Usage(
            "no remote cache configured: set [cache] remote in tinylm.toml, --remote-cache URL \
             or TINYLM_REMOTE_CACHE"
                .into(),
        )
    })
}

/// Lock entries of the selected targets, by action id; ids missing from the lock are listed.
fn selected_entries(
    ws: &Workspace,
    targets: &[String],
) -> Result<(BTreeMap<String, LockEntry>, Vec<String>)> {
    let plan = plan::plan(&ws.project, Default::default())?;
    let sel = plan.select(targets)?;
    let lock = LockFile::read(&ws.lock_path())?;
    let mut entries = BTreeMap::new();
    let mut missing = Vec::new();
    for &ix in &sel.nodes {
        let id = &plan.graph[ix].id;
        match lock.actions.get(id) {
            Some(e) => {
                entries.insert(id.clone(), e.clone());
            }
            None => missing.push(id.clone()),
        }
    }
    missing.sort();
    Ok((entries, missing))
}

/// The local record of `key` if it and every object it names are intact.
fn intact(ws: &Workspace, stat: &StatCache, key: &Digest) -> Option<ActionRecord> {
    let rec = ac::read(&ws.store, key)?;
    rec.outputs
        .values()
        .all(|o| {
            stat.verify(&ws.store.object_path(&o.digest), &o.digest, o.size)
                .unwrap_or(false)
        })
        .then_some(rec)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn push(g: &GlobalOpts, ws: &Workspace, targets: &[String]) -> Result<ExitCode> {
    let remote = remote_of(ws)?;
    let _lock = lock::acquire(&ws.store.lock_path(), false, "a tinylm gc of the cache")?;
    let (entries, unlocked) = selected_entries(ws, targets)?;
    let stat = StatCache::load(&ws.store.stat_path());
    let mut records = Vec::new();
    let mut not_built = unlocked;
    for (id, e) in &entries {
        match intact(ws, &stat, &e.key) {
            Some(rec) => records.push(rec),
            None => not_built.push(id.clone()),
        }
    }
    let n = records.len();
    let pushed = remote.push(&ws.store, records);
    let report = remote.finish(&ws.store);
    stat.save()?;
    if g.json {
        print_json(&serde_json::json!({
            "pushed": pushed.pushed, "failed": pushed.failed, "not_built": not_built,
            "remote": report,
        }));
    } else if !g.quiet {
        eprintln!(
            "pushed {}/{n} actions to {}: {} objects uploaded ({:.1} MiB), {} already there",
            pushed.pushed,
            report.url,
            report.uploaded_objects,
            report.uploaded_bytes as f64 / 1048576.0,
            report.already_present
        );
        if !not_built.is_empty() {
            eprintln!(
                "not in the local cache (run `tinylm build` first): {}",
                not_built.join(", ")
            );
        }
    }
    Ok(if pushed.failed > 0 || report.unavailable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn pull(g: &GlobalOpts, ws: &Workspace, targets: &[String]) -> Result<ExitCode> {
    let remote = remote_of(ws)?;
    let _lock = lock::acquire(&ws.store.lock_path(), false, "a tinylm gc of the cache")?;
    let (entries, unlocked) = selected_entries(ws, targets)?;
    let stat = StatCache::load(&ws.store.stat_path());
    let cancel = workspace::cancel_on_ctrl_c();
    let (mut present, mut pulled) = (0usize, 0usize);
    let mut not_found = Vec::new();
    let mut differs = Vec::new();
    for (id, e) in &entries {
        if intact(ws, &stat, &e.key).is_some() {
            present += 1;
            continue;
        }
        let names: Vec<String> = e.outputs.keys().cloned().collect();
        match remote.fetch(&ws.store, &stat, &e.key, &names, &cancel) {
            Some((outputs, rec)) => {
                if outputs != e.outputs {
                    tracing::warn!(
                        "`{id}`: the remote's outputs differ from tinylm.lock (a non-reproducible \
                         build?); using the remote's"
                    );
                    differs.push(id.clone());
                }
                ac::write(
                    &ws.store,
                    &ActionRecord::new(e.key, &rec.kind, rec.preimage, outputs),
                )?;
                pulled += 1;
            }
            None => not_found.push(id.clone()),
        }
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
    }
    let report = remote.finish(&ws.store);
    stat.save()?;
    if g.json {
        print_json(&serde_json::json!({
            "pulled": pulled, "present": present, "not_found": not_found,
            "not_in_lock": unlocked, "differs_from_lock": differs, "remote": report,
        }));
    } else if !g.quiet {
        eprintln!(
            "pulled {pulled} actions from {} ({} objects, {:.1} MiB), {present} already local; \
             `tinylm build` places them",
            report.url,
            report.downloaded_objects,
            report.downloaded_bytes as f64 / 1048576.0
        );
        if !not_found.is_empty() {
            eprintln!("not on the remote: {}", not_found.join(", "));
        }
        if !unlocked.is_empty() {
            eprintln!(
                "not in tinylm.lock (build them once): {}",
                unlocked.join(", ")
            );
        }
    }
    Ok(if report.unavailable {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn stats(g: &GlobalOpts, ws: &Workspace) -> Result<ExitCode> {
    let root = ws.store.root();
    let count = |sub: &str| {
        walkdir::WalkDir::new(root.join(sub))
            .min_depth(2)
            .max_depth(2)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .fold((0u64, 0u64), |(n, b), e| {
                (n + 1, b + e.metadata().map_or(0, |m| m.len()))
            })
    };
    let (objects, bytes) = count("cas");
    let (records, _) = count("ac");
    let projects: Vec<String> = roots::list(&ws.store)
        .into_iter()
        .map(|r| r.project.display().to_string())
        .collect();
    let totals = remote::totals(&ws.store);
    let remote = ws.store.remote().map(|r| {
        let probe = r.probe();
        serde_json::json!({
            "url": r.url(),
            "upload": r.uploads(),
            "reachable": probe.is_ok(),
            "latency_ms": probe.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            "error": probe.as_ref().err(),
        })
    });
    if g.json {
        print_json(&serde_json::json!({
            "dir": root, "objects": objects, "bytes": bytes, "records": records,
            "projects": projects, "remote": remote, "totals": totals.remotes,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("cache     {}", root.display());
    println!(
        "local     {objects} objects ({:.1} MiB), {records} action records",
        mib(bytes)
    );
    println!("projects  {}", projects.len());
    for p in &projects {
        println!("          {p}");
    }
    match &remote {
        Some(r) => {
            let state = match (r["reachable"].as_bool(), r["latency_ms"].as_f64()) {
                (Some(true), Some(ms)) => format!("reachable ({ms:.0} ms)"),
                _ => format!("unreachable: {}", r["error"].as_str().unwrap_or("?")),
            };
            println!(
                "remote    {} (upload {}), {state}",
                r["url"].as_str().unwrap_or_default(),
                if r["upload"].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                }
            );
        }
        None => println!("remote    none (set [cache] remote or --remote-cache)"),
    }
    for (url, t) in &totals.remotes {
        println!(
            "totals    {url}: {} hits, {} misses; down {} objects ({:.1} MiB), up {} objects \
             ({:.1} MiB), {} errors",
            t.hits,
            t.misses,
            t.downloaded_objects,
            mib(t.downloaded_bytes),
            t.uploaded_objects,
            mib(t.uploaded_bytes),
            t.errors
        );
    }
    Ok(ExitCode::SUCCESS)
}
