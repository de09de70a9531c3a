//! Projects sharing one cache directory (`TINYLM_CACHE`), so `gc` in one keeps what the others
//! still need.
//!
//! Every build registers its project under `roots/<blake3 of the project path>.json`: where its
//! lock file is, plus a snapshot of the action keys and objects that lock names. `gc` keeps, for
//! every other registered project, what its lock file names *now* (a branch switch may have
//! changed it) and what the snapshot named. A root whose lock file is gone belongs to a deleted
//! project and is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Digest, Store};
use crate::Result;

/// One project registered in a cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Project directory.
    pub project: PathBuf,
    /// Its lock file.
    pub lock: PathBuf,
    /// Action keys its lock named at its last build.
    pub keys: BTreeSet<Digest>,
    /// Objects its lock named at its last build.
    pub objects: BTreeSet<Digest>,
}

fn dir(store: &Store) -> PathBuf {
    store.root().join("roots")
}

fn file_of(store: &Store, project: &Path) -> PathBuf {
    let id = Digest::of(project.to_string_lossy().as_bytes()).to_hex();
    dir(store).join(format!("{}.json", &id[..32]))
}

/// Records that `project` (whose lock is `lock`) needs `keys` and `objects`; writes only when
/// something changed, so no-op builds stay write-free.
pub fn register(
    store: &Store,
    project: &Path,
    lock: &Path,
    keys: BTreeSet<Digest>,
    objects: BTreeSet<Digest>,
) -> Result<()> {
    let root = Root {
        project: project.to_path_buf(),
        lock: lock.to_path_buf(),
        keys,
        objects,
    };
    let path = file_of(store, project);
    if read(&path).is_some_and(|old| old == root) {
        return Ok(());
    }
    let bytes = serde_json::to_vec_pretty(&root)
        .map_err(|e| crate::Error::Build(format!("serializing cache root: {e}")))?;
    crate::fsutil::write_atomic(&path, &bytes)
}

fn read(path: &Path) -> Option<Root> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Every project registered in `store`.
pub fn list(store: &Store) -> Vec<Root> {
    let mut v: Vec<Root> = std::fs::read_dir(dir(store))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| read(&e.path()))
        .collect();
    v.sort_by(|a, b| a.project.cmp(&b.project));
    v
}

/// What other projects need.
#[derive(Debug, Default)]
pub struct Protected {
    /// Action keys.
    pub keys: BTreeSet<Digest>,
    /// Objects.
    pub objects: BTreeSet<Digest>,
    /// Projects that contributed.
    pub projects: Vec<PathBuf>,
    /// Roots dropped because their project is gone.
    pub dropped: Vec<PathBuf>,
}

/// The subset of `tinylm.lock` that names cache entries.
#[derive(Deserialize)]
struct LockKeys {
    #[serde(default)]
    actions: BTreeMap<String, LockKeysEntry>,
}

#[derive(Deserialize)]
struct LockKeysEntry {
    key: Digest,
    #[serde(default)]
    outputs: BTreeMap<String, LockKeysOutput>,
}

#[derive(Deserialize)]
struct LockKeysOutput {
    digest: Digest,
}

/// What every project but `own` needs; drops roots of projects whose lock file is gone.
pub fn protected_by_others(store: &Store, own: &Path) -> Protected {
    let mut p = Protected::default();
    for e in std::fs::read_dir(dir(store))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = e.path();
        let Some(root) = read(&path) else { continue };
        if root.project == own {
            continue;
        }
        match std::fs::read_to_string(&root.lock) {
            Ok(text) => {
                if let Ok(lock) = toml::from_str::<LockKeys>(&text) {
                    for entry in lock.actions.into_values() {
                        p.keys.insert(entry.key);
                        p.objects
                            .extend(entry.outputs.into_values().map(|o| o.digest));
                    }
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_file(&path);
                p.dropped.push(root.project);
                continue;
            }
            // Unreadable for now (permissions, a network filesystem): the snapshot still counts.
            Err(_) => {}
        }
        p.keys.extend(root.keys);
        p.objects.extend(root.objects);
        p.projects.push(root.project);
    }
    p.projects.sort();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_projects_are_protected_and_gone_ones_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cache")).unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        for p in [&a, &b] {
            std::fs::create_dir_all(p).unwrap();
        }
        let k = |s: &str| Digest::of(s.as_bytes());
        // b's lock now names k2/o2 although its last build registered k1/o1.
        std::fs::write(
            b.join("tinylm.lock"),
            format!(
                "version = 1\n[actions.\"x\"]\nkind = \"import\"\nkey = \"{}\"\n[actions.\"x\".inputs]\n\
                 [actions.\"x\".outputs.\"m.gguf\"]\ndigest = \"{}\"\nsize = 3\n",
                k("k2"),
                k("o2")
            ),
        )
        .unwrap();
        let set = |v: &[&str]| v.iter().map(|s| k(s)).collect::<BTreeSet<_>>();
        register(
            &store,
            &a,
            &a.join("tinylm.lock"),
            set(&["ka"]),
            set(&["oa"]),
        )
        .unwrap();
        register(
            &store,
            &b,
            &b.join("tinylm.lock"),
            set(&["k1"]),
            set(&["o1"]),
        )
        .unwrap();
        register(
            &store,
            &c,
            &c.join("tinylm.lock"),
            set(&["kc"]),
            set(&["oc"]),
        )
        .unwrap();
        let p = protected_by_others(&store, &a);
        assert_eq!(p.keys, set(&["k1", "k2"]));
        assert_eq!(p.objects, set(&["o1", "o2"]));
        assert_eq!(p.projects, vec![b.clone()]);
        assert_eq!(p.dropped, vec![c.clone()]);
        assert_eq!(list(&store).len(), 2, "c's root was removed");
    }
}
