//! The starter manifest `tinylm init` writes: the project plus every model found nearby.

use std::path::{Path, PathBuf};

use crate::fsutil::relative;
use crate::{Error, IoContext, Result};

/// Writes a starter manifest at `path` (which must not exist) for the project in its
/// directory, named `name` or after the directory, and checks it like any manifest.
pub fn init(path: &Path, name: Option<String>) -> Result<()> {
    if path.exists() {
        return Err(Error::Usage(format!("{} already exists", path.display())));
    }
    let dir = std::path::absolute(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .with_path(path)?;
    let name = name.unwrap_or_else(|| {
        dir.file_name()
            .map_or("my-models".into(), |n| n.to_string_lossy().into_owned())
    });
    let text = starter(&name, &dir);
    std::fs::write(path, &text).with_path(path)?;
    // What we write must be valid: check it like any manifest.
    super::validate(&super::load(path)?)?;
    Ok(())
}

/// The starter manifest text for project `name` in `dir`: a `completion` template and one
/// model per GGUF file or Hugging Face folder within three levels (outside `dist/`, `target/`
/// and dot-directories), or commented examples when there is none.
pub fn starter(name: &str, dir: &Path) -> String {
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
        let rel = relative(dir, e.path());
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
        } else if e.file_type().is_file()
            && file_name.ends_with(".ckpt")
            && let Some(m) = colocated_run(dir, e.path())
        {
            models.push(m);
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
    models.extend(tiny_lm_runs(dir));
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

/// A model name from a file or directory name: letters, digits and `-`.
fn model_name(s: &str) -> String {
    s.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
}

fn tinylm_entry(
    dir: &Path,
    name: &str,
    ckpt: &Path,
    config: &Path,
    tok: &Path,
    tok_cfg: Option<&Path>,
) -> String {
    let tok_cfg = tok_cfg
        .map(|p| format!(", tokenizer_config = {:?}", relative(dir, p)))
        .unwrap_or_default();
    format!(
        "[models.{name}]\nsource.tinylm = {{ checkpoint = {:?}, config = {:?}, tokenizer = {:?}{tok_cfg} }}\n\
         quants = [\"f16\", \"q8_0\"]\ntemplate = \"completion\"\n",
        relative(dir, ckpt),
        relative(dir, config),
        relative(dir, tok),
    )
}

/// A checkpoint with its `model.yaml` and `tokenizer.pkl` next to it (as tiny-lm's exported
/// runs and tinylm's examples are laid out).
fn colocated_run(dir: &Path, ckpt: &Path) -> Option<String> {
    let here = ckpt.parent()?;
    let config = here.join("model.yaml");
    let tok = here.join("tokenizer.pkl");
    if !config.is_file() || !tok.is_file() {
        return None;
    }
    let tok_cfg = here.join("tokenizer.yaml");
    let name = model_name(&here.file_name()?.to_string_lossy());
    Some(tinylm_entry(
        dir,
        &name,
        ckpt,
        &config,
        &tok,
        tok_cfg.is_file().then_some(tok_cfg.as_path()),
    ))
}

/// Files in `dir` (sorted) whose names end with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The one candidate whose stem the run name contains (the longest such), else the only one.
fn pick<'a>(run: &str, candidates: &'a [(String, PathBuf)]) -> Option<&'a PathBuf> {
    candidates
        .iter()
        .filter(|(stem, _)| run.contains(stem.as_str()))
        .max_by_key(|(stem, _)| stem.len())
        .or_else(|| (candidates.len() == 1).then(|| &candidates[0]))
        .map(|(_, p)| p)
}

/// Runs of a tiny-lm checkout: `runs/<run>/checkpoints/last.ckpt` with the model config in
/// `configs/models/<name>.yaml` and the tokenizer in `tokenizers/<name>/tokenizer.pkl` (and
/// `configs/tokenizers/<name>.yaml`), matched to the run by name (or the only one there is).
fn tiny_lm_runs(dir: &Path) -> Vec<String> {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let configs: Vec<(String, PathBuf)> = files_ending(&dir.join("configs/models"), ".yaml")
        .into_iter()
        .map(|p| (stem(&p), p))
        .collect();
    let mut tokenizers: Vec<(String, PathBuf)> = std::fs::read_dir(dir.join("tokenizers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("tokenizer.pkl"),
            )
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    tokenizers.sort();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    runs.sort();
    let mut out = Vec::new();
    for run in runs {
        let run_name = run
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ckpts = files_ending(&run.join("checkpoints"), ".ckpt");
        let Some(ckpt) = ckpts
            .iter()
            .find(|p| p.ends_with("last.ckpt"))
            .or_else(|| ckpts.last())
        else {
            continue;
        };
        let (Some(config), Some(tok)) = (pick(&run_name, &configs), pick(&run_name, &tokenizers))
        else {
            continue;
        };
        let tok_name = tok.parent().map(stem).unwrap_or_default();
        let tok_cfg = dir
            .join("configs/tokenizers")
            .join(format!("{tok_name}.yaml"));
        out.push(tinylm_entry(
            dir,
            &model_name(&run_name),
            ckpt,
            config,
            tok,
            tok_cfg.is_file().then_some(tok_cfg.as_path()),
        ));
    }
    out
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

/// The manifest path `init` writes: `--manifest`, else `tinylm.toml` in the current directory.
pub fn manifest_path(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from(super::MANIFEST_FILE), Path::to_path_buf)
}

/// The manifest other commands read: `--manifest`, else the nearest `tinylm.toml` in the
/// current directory or one of its parents (as cargo finds `Cargo.toml`), else `tinylm.toml`.
pub fn find_manifest(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_path_buf();
    }
    let here = PathBuf::from(super::MANIFEST_FILE);
    let Ok(cwd) = std::env::current_dir() else {
        return here;
    };
    cwd.ancestors()
        .map(|d| d.join(super::MANIFEST_FILE))
        .find(|p| p.is_file())
        .map_or(here, |p| {
            if p.parent() == Some(cwd.as_path()) {
                PathBuf::from(super::MANIFEST_FILE)
            } else {
                p
            }
        })
}
