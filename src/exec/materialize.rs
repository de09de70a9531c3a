//! Putting cache objects into the output directory, and remembering what we put there.
//!
//! Outputs are reflinked (copy-on-write) where the filesystem can, else hardlinked, else copied;
//! always under a temp name and renamed into place, always read-only. The project state file
//! (`.tinylm/state.json`) records each file's digest and stat, so an intact output is left alone
//! (no hashing) and a deleted or modified one is restored from the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::stat::FileStat;
use crate::cache::{Digest, atomic, cas};
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
        atomic::write(path, &bytes)
    }

    /// Whether `rel` is in place with `digest` and untouched since we placed it.
    pub fn is_current(&self, out: &Path, rel: &Path, digest: &Digest) -> bool {
        self.placed.get(rel).is_some_and(|p| {
            p.digest == *digest && FileStat::of(&out.join(rel)).is_ok_and(|s| s == p.stat)
        })
    }
}

/// Marker in the names of files being placed; a crash can leave one behind.
const TEMP_MARKER: &str = ".tinylm-tmp-";

/// Removes temp files a crashed placement left in the output directory.
pub fn remove_leftover_temps(out: &Path) {
    for e in walkdir::WalkDir::new(out)
        .max_depth(4)
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() && e.file_name().to_string_lossy().contains(TEMP_MARKER) {
            tracing::debug!("removing leftover {}", e.path().display());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Places `object` at `dest` (replacing whatever is there) and returns the new file's stat.
pub fn place(object: &Path, dest: &Path) -> Result<FileStat> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_path(dir)?;
    let tmp = dir.join(format!(
        ".{}{TEMP_MARKER}{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let linked = match reflink_copy::reflink(object, &tmp) {
        Ok(()) => false,
        Err(_) => match std::fs::hard_link(object, &tmp) {
            Ok(()) => true,
            Err(_) => {
                std::fs::copy(object, &tmp).with_path(&tmp)?;
                false
            }
        },
    };
    if !linked {
        // A hard link shares the object's read-only inode; copies get their own protection.
        cas::set_readonly(&tmp)?;
    }
    super::fault::point("mid-materialize", &dest.to_string_lossy());
    std::fs::rename(&tmp, dest).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(dest, e)
    })?;
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
