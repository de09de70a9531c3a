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

/// The manifest path a command uses: `--manifest`, else `tinylm.toml` in the current directory.
pub fn manifest_path(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from(super::MANIFEST_FILE), Path::to_path_buf)
}
