//! Where a project may put its outputs and its cache.
//!
//! `tinylm clean` and `gc` delete inside these directories, so they must not be the project
//! itself, a directory holding sources, each other, or tinylm's own state (`.tinylm/`). The
//! output directory must also lie inside the project. Paths are compared after resolving `.`
//! and `..` and the symlinks of the parts that exist, so `out = "x/../examples"` is caught too.

use std::path::{Component, Path, PathBuf};

/// `p` absolute, with `.`/`..` resolved and its longest existing prefix canonicalized.
pub fn resolve(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut lexical = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    let mut existing = lexical.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canon) = existing.canonicalize() {
            let mut out = canon;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return lexical,
        }
    }
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// What is wrong with `out` as the output directory of the project at `root` whose sources
/// are `sources` (all resolved with [`resolve`]), if anything.
pub fn out_problem(root: &Path, out: &Path, sources: &[PathBuf]) -> Option<String> {
    if out == root {
        return Some(
            "the output directory must not be the project directory itself: tinylm deletes \
             outputs there; use a subdirectory such as \"dist\""
                .into(),
        );
    }
    if !out.starts_with(root) {
        return Some(format!(
            "the output directory must be inside the project directory ({}); it resolves to {}",
            root.display(),
            out.display()
        ));
    }
    if overlaps(out, &root.join(".tinylm")) {
        return Some("the output directory must not overlap tinylm's state in `.tinylm/`".into());
    }
    sources.iter().find(|s| overlaps(out, s)).map(|s| {
        format!(
            "the output directory overlaps the source {}: outputs and sources must be kept apart",
            s.display()
        )
    })
}

/// What is wrong with `cache` as the cache of the project at `root` with output directory
/// `out` and sources `sources` (all resolved with [`resolve`]), if anything.
pub fn cache_problem(root: &Path, cache: &Path, out: &Path, sources: &[PathBuf]) -> Option<String> {
    if root.starts_with(cache) {
        return Some(format!(
            "the cache directory {} contains the project; use a directory of its own \
             (default .tinylm/cache)",
            cache.display()
        ));
    }
    if overlaps(cache, out) {
        return Some(format!(
            "the cache directory {} overlaps the output directory {}",
            cache.display(),
            out.display()
        ));
    }
    if cache == root.join(".tinylm") {
        return Some(
            "the cache directory must not be `.tinylm/` itself (use .tinylm/cache)".into(),
        );
    }
    sources.iter().find(|s| overlaps(cache, s)).map(|s| {
        format!(
            "the cache directory {} overlaps the source {}",
            cache.display(),
            s.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_removes_dots_and_keeps_missing_tails() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        assert_eq!(resolve(&d.path().join("a/../b/./c")), root.join("b/c"));
        assert_eq!(resolve(&d.path().join("..")), root.parent().unwrap());
    }

    #[test]
    fn locations_that_overlap_are_refused() {
        let root = Path::new("/p");
        let src = vec![PathBuf::from("/p/examples/a.gguf")];
        assert!(out_problem(root, Path::new("/p/dist"), &src).is_none());
        for bad in [
            "/p",
            "/",
            "/q",
            "/p/examples",
            "/p/.tinylm/cache/cas",
            "/p/.tinylm",
        ] {
            assert!(out_problem(root, Path::new(bad), &src).is_some(), "{bad}");
        }
        let out = Path::new("/p/dist");
        assert!(cache_problem(root, Path::new("/p/.tinylm/cache"), out, &src).is_none());
        assert!(cache_problem(root, Path::new("/home/u/.cache/tinylm"), out, &src).is_none());
        for bad in [
            "/p",
            "/",
            "/p/dist",
            "/p/dist/c",
            "/p/examples",
            "/p/.tinylm",
        ] {
            assert!(
                cache_problem(root, Path::new(bad), out, &src).is_some(),
                "{bad}"
            );
        }
    }
}
