//! Putting cache objects into the output directory, and remembering what we put there.
//!
//! Outputs are reflinked (copy-on-write) where the filesystem can, else hardlinked, else copied;
//! always under a temp name and renamed into place, always read-only. The project state file
//! (`.tinylm/state.json`) records each file's digest and stat, so an intact output is left alone
//! (no hashing) and a deleted or modified one is restored from the cache.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::scheduler::NodeState;
use super::{ProjectLayout, fault};
use crate::cache::Digest;
use crate::cache::stat::FileStat;
use crate::fsutil::{self, Linked};
use crate::plan::{BuildPlan, Selection};
use crate::{Error, IoContext, Result};

const FORMAT_VERSION: u32 = 1;

/// What tinylm last put at one output path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// Content digest.
    pub digest: Digest,
    /// The file's stat right after placing it.
    pub stat: FileStat,
    /// Cleanup group (`model:<name>` / `release:<name>`).
    pub group: String,
}

/// Per-project state: outputs placed under `out/`, keyed by path relative to it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    version: u32,
    /// Placed outputs.
    pub placed: BTreeMap<PathBuf, Placed>,
}

impl State {
    /// Loads the state; missing or unreadable state is empty (outputs are then re-placed).
    pub fn load(path: &Path) -> State {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<State>(&b).ok())
            .filter(|s| s.version == FORMAT_VERSION)
            .unwrap_or(State {
                version: FORMAT_VERSION,
                placed: BTreeMap::new(),
            })
    }

    /// Saves the state atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Build(e.to_string()))?;
        fsutil::write_atomic(path, &bytes)
    }

    /// Whether `rel` is in place with `digest` and untouched since we placed it.
    pub fn is_current(&self, out: &Path, rel: &Path, digest: &Digest) -> bool {
        self.placed.get(rel).is_some_and(|p| {
            p.digest == *digest && FileStat::of(&out.join(rel)).is_ok_and(|s| s == p.stat)
        })
    }
}

/// Removes temp files a killed placement left in the output directory: only names of the
/// form `.<file>.tinylm-tmp-<pid>` whose process is gone (see [`fsutil::temp`]).
pub fn remove_leftover_temps(out: &Path) {
    for e in walkdir::WalkDir::new(out)
        .max_depth(4)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_dir() {
            fsutil::temp::remove_stale_in(e.path(), false, &|_| false);
        }
    }
}

/// Places `object` at `dest` (replacing whatever is there) and returns the new file's stat.
///
/// Errors name `dest`, and never leave the temp file behind.
pub fn place(object: &Path, dest: &Path) -> Result<FileStat> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_path(dir)?;
    let tmp = dir.join(fsutil::temp::temp_name(
        dest.file_name().unwrap_or_default(),
    ));
    let _ = std::fs::remove_file(&tmp);
    let cleanup = |e: Error| {
        let _ = std::fs::remove_file(&tmp);
        match e {
            Error::Io { source, .. } => Error::io(dest, source),
            other => other,
        }
    };
    let linked = fsutil::link_or_copy(object, &tmp).map_err(cleanup)?;
    fault::io_point("place", &dest.to_string_lossy()).map_err(|e| cleanup(Error::io(&tmp, e)))?;
    if linked != Linked::Hardlink {
        // A hard link shares the object's read-only inode; copies get their own protection.
        fsutil::set_readonly(&tmp).map_err(cleanup)?;
    }
    fault::point("mid-materialize", &dest.to_string_lossy());
    std::fs::rename(&tmp, dest).map_err(|e| cleanup(Error::io(&tmp, e)))?;
    // Renaming a hard link onto another link to the same inode succeeds without doing
    // anything (POSIX), leaving the temp name in place: drop it.
    if std::fs::symlink_metadata(&tmp).is_ok() {
        let _ = std::fs::remove_file(&tmp);
    }
    FileStat::of(dest).with_path(dest)
}

/// Removes a previously placed file if it is still what we placed; returns whether it did.
pub fn remove_stale(out: &Path, rel: &Path, placed: &Placed) -> bool {
    let path = out.join(rel);
    match FileStat::of(&path) {
        Ok(s) if s == placed.stat => {
            if std::fs::remove_file(&path).is_err() {
                return false;
            }
            // Tidy now-empty directories up to (not including) the output root.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == out || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            true
        }
        Ok(_) => {
            tracing::warn!(
                "leaving {}: it was modified after tinylm placed it",
                path.display()
            );
            false
        }
        Err(_) => false,
    }
}

/// Ids of owners whose outputs are cached but not in place (what a build would restore).
pub(super) fn unplaced_owners(
    layout: &ProjectLayout,
    plan: &BuildPlan,
    sel: &Selection,
    states: &[NodeState],
) -> BTreeSet<String> {
    let state = State::load(&layout.state_path());
    let mut out = BTreeSet::new();
    for m in plan
        .materializations
        .iter()
        .filter(|m| sel.nodes.contains(&m.owner))
    {
        if let NodeState::Done { outputs, .. } = &states[m.node.index()]
            && let Some(o) = outputs.get(&m.output)
            && !state.is_current(&layout.out, &m.dest, &o.digest)
        {
            out.insert(plan.graph[m.owner].id.clone());
        }
    }
    out
}

/// Places outputs of finished nodes and removes stale ones; returns (placed, removed, ids of
/// owners that had something placed).
pub(super) fn place_outputs(
    layout: &ProjectLayout,
    plan: &BuildPlan,
    sel: &Selection,
    states: &[NodeState],
) -> Result<(usize, usize, BTreeSet<String>)> {
    let out = &layout.out;
    let state_path = layout.state_path();
    let mut state = State::load(&state_path);
    remove_leftover_temps(out);
    let mut placed = 0;
    let mut touched = BTreeSet::new();
    let mut current: BTreeSet<PathBuf> = BTreeSet::new();
    let mut mats: Vec<_> = plan
        .materializations
        .iter()
        .filter(|m| sel.nodes.contains(&m.owner))
        .collect();
    mats.sort_by(|a, b| a.dest.cmp(&b.dest));
    for m in mats {
        current.insert(m.dest.clone());
        let NodeState::Done { outputs, .. } = &states[m.node.index()] else {
            continue;
        };
        if !matches!(states[m.owner.index()], NodeState::Done { .. }) {
            continue;
        }
        let Some(o) = outputs.get(&m.output) else {
            continue;
        };
        if state.is_current(out, &m.dest, &o.digest) {
            continue;
        }
        fault::point("before-materialize", &plan.graph[m.owner].id);
        let stat = place(&layout.store.object_path(&o.digest), &out.join(&m.dest))?;
        state.placed.insert(
            m.dest.clone(),
            Placed {
                digest: o.digest,
                stat,
                group: m.group.clone(),
            },
        );
        placed += 1;
        touched.insert(plan.graph[m.owner].id.clone());
        // Save as we go: a crash between placements must not forget what is already there.
        if placed % 16 == 0 {
            state.save(&state_path)?;
        }
    }
    // Everything ever placed for the cleaned groups that this plan no longer produces.
    let all_dests: BTreeSet<&PathBuf> = plan.materializations.iter().map(|m| &m.dest).collect();
    let stale: Vec<PathBuf> = state
        .placed
        .iter()
        .filter(|(p, pl)| {
            (sel.all || sel.groups.contains(&pl.group))
                && !current.contains(*p)
                && !all_dests.contains(p)
        })
        .map(|(p, _)| p.clone())
        .collect();
    let mut removed = 0;
    for p in stale {
        if let Some(pl) = state.placed.remove(&p)
            && remove_stale(out, &p, &pl)
        {
            removed += 1;
        }
    }
    // A no-op build writes nothing (and pays for no fsync).
    if placed > 0 || removed > 0 {
        state.save(&state_path)?;
    }
    Ok((placed, removed, touched))
}
