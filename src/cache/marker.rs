//! How a directory is recognised as a tinylm cache, and what in it tinylm created.
//!
//! A cache is a directory holding `tinylm-cache.json` (the format version), written by tinylm
//! when it first used the directory, plus a `CACHEDIR.TAG` so backup tools skip it
//! (<https://bford.info/cachedir/>). tinylm only adopts an empty or new directory (or the
//! layout of a cache written before the marker existed); anything else is an error, and
//! tinylm never deletes a path in a cache that its own naming rules did not produce.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::temp;
use crate::{Error, IoContext, Result};

/// The marker file naming a directory as a tinylm cache.
pub(super) const MARKER_FILE: &str = "tinylm-cache.json";
/// The cache directory tag.
pub(super) const TAG_FILE: &str = "CACHEDIR.TAG";
/// Layout version of the cache; bumped when the layout changes incompatibly.
const FORMAT: u32 = 1;

const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by tinylm.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Top-level entries tinylm creates in a cache.
pub(super) const OWN_ENTRIES: [&str; 9] = [
    "cas",
    "ac",
    "tmp",
    "roots",
    "remote",
    "stat.json",
    "lock",
    MARKER_FILE,
    TAG_FILE,
];

#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// Always "tinylm cache".
    kind: String,
    /// Layout version.
    format: u32,
}

/// Makes sure `root` is a tinylm cache: accepts a marked one, marks a new or empty directory
/// (or a cache from before markers existed), refuses anything else.
pub(super) fn ensure(root: &Path) -> Result<()> {
    let marker = root.join(MARKER_FILE);
    match std::fs::read(&marker) {
        Ok(bytes) => {
            return match serde_json::from_slice::<Marker>(&bytes) {
                Ok(m) if m.kind == "tinylm cache" && m.format == FORMAT => Ok(()),
                Ok(m) => Err(Error::Usage(format!(
                    "{} is a tinylm cache of format {} (this tinylm uses format {FORMAT}); \
                     use another cache directory",
                    root.display(),
                    m.format
                ))),
                Err(e) => Err(Error::Usage(format!(
                    "{}: unreadable cache marker ({e}); if this directory is a tinylm cache, \
                     delete it and rebuild",
                    marker.display()
                ))),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(not_a_dir(root));
        }
        Err(e) => return Err(Error::io(&marker, e)),
    }
    match std::fs::metadata(root) {
        Ok(m) if !m.is_dir() => return Err(not_a_dir(root)),
        Ok(_) => {
            let foreign = foreign_entries(root)?;
            if !foreign.is_empty() {
                let shown: Vec<String> = foreign.iter().take(3).cloned().collect();
                return Err(Error::Usage(format!(
                    "{} is not a tinylm cache: it holds files tinylm did not create ({}{}) and no \
                     {MARKER_FILE}. tinylm never deletes what it did not create; choose an empty \
                     or new directory with --cache, TINYLM_CACHE or [cache] dir",
                    root.display(),
                    shown.join(", "),
                    if foreign.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(root).with_path(root)?;
        }
        Err(e) => return Err(Error::io(root, e)),
    }
    // The marker first: a concurrent first use then finds either nothing, our temp file
    // (ignored) or the marker, never a half-made cache without one.
    let bytes = serde_json::to_vec_pretty(&Marker {
        kind: "tinylm cache".into(),
        format: FORMAT,
    })
    .map_err(|e| Error::Build(format!("serializing the cache marker: {e}")))?;
    crate::fsutil::write_atomic(&marker, &bytes)?;
    let tag = root.join(TAG_FILE);
    if !tag.exists() {
        crate::fsutil::write_atomic(&tag, TAG.as_bytes())?;
    }
    Ok(())
}

fn not_a_dir(root: &Path) -> Error {
    Error::Usage(format!(
        "{} is not a directory; the cache must be a directory",
        root.display()
    ))
}

/// Entries of an unmarked `root` that would stop tinylm from adopting it. A cache written
/// before markers existed (only tinylm's own entries, with `cas/`) is adopted; so is a
/// directory holding nothing but another process's marker being written.
fn foreign_entries(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(root).with_path(root)? {
        let e = e.with_path(root)?;
        names.push(e.file_name().to_string_lossy().into_owned());
    }
    let own = |n: &str| {
        OWN_ENTRIES.contains(&n) || temp::owner_pid(n).is_some() || temp::is_legacy_atomic_temp(n)
    };
    let legacy_cache = root.join("cas").is_dir() && names.iter().all(|n| own(n));
    let only_temps = names.iter().all(|n| temp::owner_pid(n).is_some());
    if legacy_cache || only_temps {
        return Ok(Vec::new());
    }
    names.retain(|n| !own(n));
    if names.is_empty() {
        // Only names tinylm uses, but not the layout of a cache (no `cas/`): someone else's
        // `tmp/` or `lock`, for all we know.
        names = std::fs::read_dir(root)
            .with_path(root)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    }
    names.sort();
    Ok(names)
}

/// Whether `name` (in `cas/<2 hex>/` or `ac/<2 hex>/`) names an object or record: 64
/// lower-case hex digits starting with the directory's two.
pub(super) fn is_digest_name(dir: &str, name: &str) -> bool {
    name.len() == 64
        && name.starts_with(dir)
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` is `len` lowercase hex digits.
pub(super) fn is_hex_name(name: &str, len: usize) -> bool {
    name.len() == len
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` is a two-hex-digit fan-out directory of `cas/` or `ac/`.
pub(super) fn is_fanout_name(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `name` in `tmp/` is a staging directory tinylm created: the current naming
/// (`.stage.tinylm-tmp-<pid>-<random>`) or the one before it (`<pid>-<random>`).
pub(super) fn is_staging_name(name: &str) -> bool {
    if temp::owner_pid(name).is_some() {
        return true;
    }
    match name.split_once('-') {
        Some((pid, random)) => {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && random.len() == 6
                && random.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}
