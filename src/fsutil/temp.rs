//! Names of tinylm's temporary files, and removing the ones a killed process left behind.
//!
//! Every temporary file or directory tinylm creates is named `.<final name>.tinylm-tmp-<pid>`,
//! optionally followed by `-<random>`: hidden, recognisably ours, and carrying the id of the
//! process that writes it. A `kill -9` or a power loss can leave one behind; the next build (or
//! `gc`) removes those it finds in the directories it owns, and only those: a name that does not
//! follow the pattern exactly is never deleted, and neither is one whose process is still alive
//! and that is younger than [`MAX_AGE`].

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The tag in the name of every temporary file tinylm creates.
pub const MARKER: &str = ".tinylm-tmp-";

/// A temp file older than this is stale even if a process with its pid is running (pids are
/// reused; no write takes a day).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Longest part of the final name kept in a temp name (file names are limited to 255 bytes).
const MAX_STEM: usize = 100;

/// `.<final name>.tinylm-tmp-<pid>`: the temp name this process uses for `final_name`.
pub fn temp_name(final_name: &OsStr) -> String {
    let name = final_name.to_string_lossy();
    let stem: String = name.chars().take(MAX_STEM).collect();
    format!(".{stem}{MARKER}{}", std::process::id())
}

/// The prefix of a temp name with a random suffix (for `tempfile::Builder::prefix`).
pub fn temp_prefix(final_name: &OsStr) -> String {
    format!("{}-", temp_name(final_name))
}

/// The pid in a name made by [`temp_name`] or [`temp_prefix`], if `name` is one.
pub fn owner_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, rest) = name.rsplit_once(MARKER)?;
    let (pid, random) = match rest.split_once('-') {
        Some((pid, random)) => (pid, Some(random)),
        None => (rest, None),
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if random.is_some_and(|r| r.is_empty() || !r.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `name` is a temp file of tinylm versions before 0.2, which named the temp copies
/// of `tinylm.lock`, `state.json`, `stat.json` and action records `.tmp-XXXXXX` (six random
/// letters or digits). Only ever removed from directories tinylm owns.
pub fn is_legacy_atomic_temp(name: &str) -> bool {
    name.len() == 11
        && name.starts_with(".tmp-")
        && name[5..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether the process `pid` is running (on this machine; `true` when it cannot be told).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists; it sends nothing.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Whether the temp entry at `path` of process `pid` is stale: its process is gone or it is
/// older than [`MAX_AGE`].
pub fn is_stale(path: &Path, pid: u32) -> bool {
    if !process_alive(pid) {
        return true;
    }
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > MAX_AGE)
}

/// Removes stale temp files (and, with `dirs`, stale temp directories) tinylm left directly in
/// `dir`; `legacy` also removes pre-0.2 `.tmp-XXXXXX` files for which it returns true. Returns
/// how many entries it removed. Never follows symlinks, never touches any other name.
pub fn remove_stale_in(dir: &Path, dirs: bool, legacy: &dyn Fn(&Path) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = e.path();
        let Ok(ft) = e.file_type() else { continue };
        let ours = match owner_pid(name) {
            Some(pid) => is_stale(&path, pid),
            None => ft.is_file() && is_legacy_atomic_temp(name) && legacy(&path),
        };
        if !ours {
            continue;
        }
        let r = if ft.is_dir() && dirs {
            std::fs::remove_dir_all(&path)
        } else if ft.is_file() || ft.is_symlink() {
            std::fs::remove_file(&path)
        } else {
            continue;
        };
        if r.is_ok() {
            tracing::debug!("removed leftover temp {}", path.display());
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid_and_are_recognised() {
        let n = temp_name(OsStr::new("tinylm.lock"));
        assert_eq!(n, format!(".tinylm.lock.tinylm-tmp-{}", std::process::id()));
        assert_eq!(owner_pid(&n), Some(std::process::id()));
        assert_eq!(owner_pid(&format!("{n}-aB3xYz")), Some(std::process::id()));
        for not_ours in [
            "tinylm.lock",
            ".tinylm.lock.tinylm-tmp-",
            ".x.tinylm-tmp-12a",
            ".x.tinylm-tmp-12-",
            ".x.tinylm-tmp-12-a/b",
            "x.tinylm-tmp-12",
            ".tinylm-tmp-abcdef",
        ] {
            assert_eq!(owner_pid(not_ours), None, "{not_ours}");
        }
        assert!(is_legacy_atomic_temp(".tmp-a1B2c3"));
        assert!(!is_legacy_atomic_temp(".tmp-a1B2c"));
        assert!(!is_legacy_atomic_temp(".tmp-a1B2c3d"));
        assert!(!is_legacy_atomic_temp(".tmp-a1B2-3"));
    }

    #[test]
    fn only_stale_temps_of_ours_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let keep = [
            "notes.txt".to_string(),
            ".tmp-keep00".to_string(),
            temp_name(OsStr::new("live")),
            ".x.tinylm-tmp-nope".to_string(),
        ];
        let gone = [
            format!(".a.gguf.tinylm-tmp-{dead}"),
            format!(".b.tinylm-tmp-{dead}-Zx81Qa"),
            ".tmp-legacy".to_string(),
        ];
        for n in keep.iter().chain(&gone) {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let n = remove_stale_in(dir.path(), false, &|p: &Path| p.ends_with(".tmp-legacy"));
        assert_eq!(n, gone.len());
        for k in &keep {
            assert!(dir.path().join(k).exists(), "{k} was removed");
        }
        for g in &gone {
            assert!(!dir.path().join(g).exists(), "{g} was kept");
        }
    }
}
