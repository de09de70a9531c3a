//! A Hugging Face model folder as data ([`HfModel`]): the contract between the exporters and the
//! GGUF converter, and reading one from disk ([`HfModel::open`]).
//!
//! `tinylm_to_hf` produces an [`HfModel`] in memory (and can write it to disk); `hf_to_gguf`
//! consumes an [`HfModel`] whether it came from disk or from an exporter. Going
//! checkpoint → GGUF directly therefore sees exactly the bytes that checkpoint → HF folder → GGUF
//! would see, which is what makes the two paths byte-identical.
//!
//! Weights are memory-mapped, never copied (strided views in a torch pickle excepted). Weight files
//! are chosen as llama.cpp's converter chooses them: `model*.safetensors` (validated by
//! [`crate::formats::safetensors::read`]) whenever present, else `pytorch_model*.bin` torch
//! pickles (read by [`Checkpoint`], which never executes code). A sharded checkpoint must be
//! complete: every shard named by `model.safetensors.index.json` / `pytorch_model.bin.index.json`
//! present, every tensor it lists found in its shard, and no shard holding tensors the index does
//! not assign to it. A truncated file, a header that lies about offsets or sizes, or a missing
//! shard is an error that names the file and the tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::error::IoContext;
use crate::formats::pytorch::Checkpoint;
use crate::formats::safetensors;
use crate::formats::tensor::WeightFile;
use crate::{Error, Result};

/// A Hugging Face model folder: small text/JSON files plus weight files.
#[derive(Debug, Clone, Default)]
pub struct HfModel {
    /// The folder's name; the GGUF converter derives `general.name` from it like the reference.
    pub dir_name: String,
    /// Small files by name: `config.json`, `tokenizer.json`, `tokenizer_config.json`,
    /// `special_tokens_map.json`, `generation_config.json`, `chat_template.jinja`, `README.md`, …
    pub files: BTreeMap<String, Vec<u8>>,
    /// Weight files, in the order the reference converter reads them (sorted file names).
    pub weights: Vec<WeightFile>,
}

/// Small files the converters look at, read into [`HfModel::files`] when present.
pub const SMALL_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "README.md",
    "tokenizer.model",
    "merges.txt",
    "modules.json",
    "tekken.json",
];

impl HfModel {
    /// Reads the HF folder at `dir`: small files, then every weight file (mmap), checking that a
    /// sharded checkpoint is complete and that every safetensors header is consistent.
    pub fn open(dir: impl AsRef<Path>) -> Result<HfModel> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::Build(format!(
                "{}: not a directory (expected a Hugging Face model folder with config.json)",
                dir.display()
            )));
        }
        let canonical = dir.canonicalize().with_path(dir)?;
        let dir_name = canonical
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();

        let mut files = BTreeMap::new();
        for name in SMALL_FILES {
            let p = dir.join(name);
            if p.exists() {
                files.insert(
                    (*name).to_string(),
                    crate::fsutil::input::read(&p).with_path(&p)?,
                );
            }
        }
        let extra_templates = dir.join("additional_chat_templates");
        if extra_templates.is_dir() {
            let mut names: Vec<PathBuf> = std::fs::read_dir(&extra_templates)
                .with_path(&extra_templates)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "jinja"))
                .collect();
            names.sort();
            for p in names {
                let key = format!(
                    "additional_chat_templates/{}",
                    p.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                );
                files.insert(key, crate::fsutil::input::read(&p).with_path(&p)?);
            }
        }
        if !files.contains_key("config.json") {
            return Err(Error::format(
                dir.join("config.json"),
                "missing: a Hugging Face model folder needs config.json",
            ));
        }

        let weights = read_weights(dir)?;
        Ok(HfModel {
            dir_name,
            files,
            weights,
        })
    }
}

/// Which weight format a folder provides, chosen as the reference converter chooses it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WeightFormat {
    /// `model*.safetensors`, optionally with `model.safetensors.index.json`.
    Safetensors,
    /// `pytorch_model*.bin` torch pickles, optionally with `pytorch_model.bin.index.json`.
    PytorchBin,
}

impl WeightFormat {
    fn prefix(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "model",
            WeightFormat::PytorchBin => "pytorch_model",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => ".safetensors",
            WeightFormat::PytorchBin => ".bin",
        }
    }

    fn index_name(self) -> &'static str {
        match self {
            WeightFormat::Safetensors => "model.safetensors.index.json",
            WeightFormat::PytorchBin => "pytorch_model.bin.index.json",
        }
    }

    /// Reads one weight file of this format.
    fn read(self, path: &Path) -> Result<WeightFile> {
        match self {
            WeightFormat::Safetensors => Ok(safetensors::read(path)?),
            WeightFormat::PytorchBin => {
                let ckpt = Checkpoint::open(path)?;
                let tensors = ckpt.state_dict()?;
                Ok(WeightFile {
                    file_name: path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    tensors,
                })
            }
        }
    }
}

/// The weight files of `dir`, in the order the reference converter reads them: safetensors win
/// whenever any `model*.safetensors` or `model.safetensors.index.json` exists, else
/// `pytorch_model*.bin`. With an index, exactly the files it names (sorted); without, every
/// matching file (sorted).
fn read_weights(dir: &Path) -> Result<Vec<WeightFile>> {
    let mut listing: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).with_path(dir)? {
        let entry = entry.with_path(dir)?;
        listing.push(entry.file_name().to_string_lossy().into_owned());
    }
    listing.sort();
    let parts_of = |format: WeightFormat| -> Vec<&String> {
        listing
            .iter()
            .filter(|n| n.starts_with(format.prefix()) && n.ends_with(format.suffix()))
            .collect()
    };

    let mut format = WeightFormat::Safetensors;
    let mut parts = parts_of(format);
    if parts.is_empty() && !dir.join(format.index_name()).is_file() {
        format = WeightFormat::PytorchBin;
        parts = parts_of(format);
    }
    let index_path = dir.join(format.index_name());
    if index_path.is_file() {
        return read_sharded(dir, &index_path, format);
    }
    if parts.is_empty() {
        return Err(Error::format(
            dir,
            "no weights found: expected model.safetensors, model-*.safetensors with \
             model.safetensors.index.json, or pytorch_model*.bin",
        ));
    }
    parts
        .into_iter()
        .map(|name| format.read(&dir.join(name)))
        .collect()
}

fn read_sharded(dir: &Path, index_path: &Path, format: WeightFormat) -> Result<Vec<WeightFile>> {
    let index_name = format.index_name();
    let bytes = crate::fsutil::input::read(index_path).with_path(index_path)?;
    let index: Json = serde_json::from_slice(&bytes)
        .map_err(|e| Error::format(index_path, format!("invalid JSON: {e}")))?;
    let Some(map) = index.get("weight_map").and_then(Json::as_object) else {
        return Err(Error::format(
            index_path,
            "no \"weight_map\" object: cannot tell which shard holds which tensor",
        ));
    };
    let mut by_file: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (tensor, file) in map {
        let Some(file) = file.as_str() else {
            return Err(Error::format(
                index_path,
                format!("weight_map[\"{tensor}\"] is not a file name"),
            ));
        };
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(Error::format(
                index_path,
                format!("weight_map[\"{tensor}\"] = \"{file}\" points outside the model folder"),
            ));
        }
        by_file
            .entry(file.to_string())
            .or_default()
            .insert(tensor.clone());
    }
    let missing: Vec<&String> = by_file
        .keys()
        .filter(|f| !dir.join(f.as_str()).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(Error::format(
            index_path,
            format!(
                "missing shard file(s) {}: the checkpoint is incomplete (download them again)",
                missing
                    .iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let mut out = Vec::with_capacity(by_file.len());
    for (file, expected) in &by_file {
        let wf = format.read(&dir.join(file))?;
        let present: BTreeSet<&str> = wf.tensors.iter().map(|t| t.name.as_str()).collect();
        let absent: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(|t| !present.contains(t))
            .collect();
        if !absent.is_empty() {
            return Err(Error::format(
                dir.join(file),
                format!(
                    "shard is incomplete: the index lists {} tensor(s) it does not contain: {}",
                    absent.len(),
                    preview(&absent)
                ),
            ));
        }
        let unknown: Vec<&str> = wf
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .filter(|t| !expected.contains(*t))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::format(
                dir.join(file),
                format!(
                    "shard holds {} tensor(s) that {index_name} does not assign to it: {} (the \
                     index and the shards disagree)",
                    unknown.len(),
                    preview(&unknown)
                ),
            ));
        }
        out.push(wf);
    }
    Ok(out)
}

fn preview(names: &[&str]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| format!("'{n}'")).collect();
    if names.len() > 5 {
        format!("{}, … ({} more)", shown.join(", "), names.len() - 5)
    } else {
        shown.join(", ")
    }
}
