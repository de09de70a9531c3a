//! Imports go one way: a module of `src/` may use the modules of lower layers only.
//!
//! Every `crate::<module>` path in `src/` (in `use` lines and inline, comments aside) is checked
//! against the declared order below, so a change that makes, say, `formats` import `convert` or
//! `exec` import `manifest` fails here with the file and line. A new top-level module must be
//! given a layer first.

use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may import modules of lower layers only
/// (modules of the same layer are independent of each other). The crate root's items
/// (`Error`, `Result`, `IoContext`, `VERSION`) are the `error` layer.
const LAYERS: &[&[&str]] = &[
    // The error type (and the crate root's items); did-you-mean suggestions for messages.
    &["error", "suggest"],
    // File-system helpers: atomic writes, locks, link-or-copy.
    &["fsutil"],
    // File formats; the content-addressed cache.
    &["formats", "cache"],
    // Libraries over formats: quantization, chat templates.
    &["quant", "template"],
    // Conversions (use quant for encoding); runtime stores (use template for Modelfiles).
    &["convert", "install"],
    // Tools over the conversions: describing files, running models.
    &["inspect", "infer"],
    // The manifest: typed vocabularies come from the libraries below.
    &["manifest"],
    // Action kinds: adapters over the libraries.
    &["actions"],
    // Manifest → DAG of actions.
    &["plan"],
    // Running a plan.
    &["exec"],
    // A project's engine operations.
    &["workspace"],
    // The command line.
    &["cli"],
];

/// Imports the layer order would allow but the design does not: (from, to, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "exec",
        "manifest",
        "the executor sees a plan and a ProjectLayout, never the manifest",
    ),
    (
        "actions",
        "manifest",
        "actions build key parameters from their own types, so manifest edits cannot change keys",
    ),
];

/// Items of the crate root, re-exported from `error` (and the version constant).
const ROOT_ITEMS: &[&str] = &["Error", "Result", "IoContext", "VERSION"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// One import of a higher (or same-layer) module.
#[derive(Debug)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
    /// Set for a [`FORBIDDEN`] edge.
    why: Option<&'static str>,
}

/// The top-level module a file under `src/` belongs to (`src/formats/gguf/reader.rs` →
/// `formats`, `src/inspect.rs` → `inspect`); `None` for the crate root and the binary.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The code of `text` with `//` comments removed, line by line (string literals are not
/// parsed; a `//` inside one only hides the rest of its line, never an import).
fn strip_comments(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect()
}

/// The top-level names a file refers to through `crate::`, with the line of each reference:
/// `crate::a::b` gives `a`, `use crate::{a::x, b, C}` gives `a`, `b` and `C`.
fn crate_refs(lines: &[String]) -> Vec<(usize, String)> {
    let code = lines.join("\n");
    let line_at = |offset: usize| code[..offset].matches('\n').count() + 1;
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `crate::` must start a path (not `mycrate::`).
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            // A brace group: split its top level on commas.
            let mut depth = 0usize;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            items.push(item);
            for it in items {
                let name: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((line_at(at), name));
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((line_at(at), name));
            }
        }
    }
    out
}

/// Every upward or sideways import under `src`.
fn violations(src: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(src)
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "rs"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let rel = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        let Some(own) = layer_of(&module) else {
            out.push(Violation {
                file: rel.display().to_string(),
                line: 0,
                from: module.clone(),
                to: "(no layer: add the module to LAYERS in tests/it/layers.rs)".into(),
                why: None,
            });
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name) in crate_refs(&strip_comments(&text)) {
            let target = if ROOT_ITEMS.contains(&name.as_str()) {
                "error".to_string()
            } else {
                name
            };
            if target == module {
                continue;
            }
            let forbidden = FORBIDDEN
                .iter()
                .find(|(f, t, _)| *f == module && *t == target);
            if let Some((_, _, why)) = forbidden {
                out.push(Violation {
                    file: rel.display().to_string(),
                    line,
                    from: module.clone(),
                    to: target,
                    why: Some(why),
                });
                continue;
            }
            let ok = layer_of(&target).is_some_and(|l| l < own);
            if !ok {
                out.push(Violation {
                    file: rel.display().to_string(),
                    line,
                    from: module.clone(),
                    to: target,
                    why: None,
                });
            }
        }
    }
    out
}

fn describe(v: &[Violation]) -> String {
    let layer = |m: &str| layer_of(m).map_or("?".to_string(), |l| l.to_string());
    v.iter()
        .map(|v| match v.why {
            Some(why) => format!(
                "{}:{}: `{}` imports `{}`: {why}",
                v.file, v.line, v.from, v.to
            ),
            None => format!(
                "{}:{}: `{}` (layer {}) imports `{}` (layer {})",
                v.file,
                v.line,
                v.from,
                layer(&v.from),
                v.to,
                layer(&v.to)
            ),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let v = violations(&src);
    assert!(
        v.is_empty(),
        "{} import(s) against the layer order (lowest first: {}):\n{}",
        v.len(),
        LAYERS
            .iter()
            .map(|l| l.join("+"))
            .collect::<Vec<_>>()
            .join(" < "),
        describe(&v)
    );
}

#[test]
fn the_checker_sees_use_groups_inline_paths_and_skips_comments() {
    let src = tempfile::tempdir().unwrap();
    let dir = src.path().join("formats");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("x.rs"),
        "//! Mentions [`crate::workspace`] in a doc comment only.\n\
         use crate::{Error, fsutil::write_atomic,\n    formats::DType};\n\
         fn f() { let _ = crate::convert::hf::HfModel::default(); } // crate::cli\n\
         use crate::{\n    quant::FileType,\n};\n",
    )
    .unwrap();
    std::fs::write(src.path().join("lib.rs"), "pub mod cli;\n").unwrap();
    let v = violations(src.path());
    let got: Vec<(usize, &str)> = v.iter().map(|v| (v.line, v.to.as_str())).collect();
    assert_eq!(got, [(4, "convert"), (5, "quant")], "{}", describe(&v));
    // A module nobody placed is reported too.
    std::fs::create_dir_all(src.path().join("newmod")).unwrap();
    std::fs::write(src.path().join("newmod/mod.rs"), "").unwrap();
    assert!(
        violations(src.path())
            .iter()
            .any(|v| v.from == "newmod" && v.to.contains("no layer"))
    );
}
