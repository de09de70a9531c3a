//! Reading a Hugging Face model folder from disk into an [`HfModel`].
//!
//! Weights are memory-mapped, never copied. Every safetensors header is validated against the file
//! size before any tensor is exposed, and a sharded checkpoint must be complete: every shard named
//! by `model.safetensors.index.json` present, every tensor it lists found in its shard, and no
//! shard holding tensors the index does not know. A truncated file, a header that lies about
//! offsets or sizes, or a missing shard is an error that names the file and the tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;

use super::hf::{HfModel, HfTensor, HfWeightFile, TensorBytes};
use crate::error::IoContext;
use crate::formats::DType;
use crate::{Error, Result};

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

/// Largest safetensors JSON header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

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
            if p.is_file() {
                files.insert((*name).to_string(), std::fs::read(&p).with_path(&p)?);
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
                files.insert(key, std::fs::read(&p).with_path(&p)?);
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

/// The weight files of `dir`, in the order the reference converter reads them.
fn read_weights(dir: &Path) -> Result<Vec<HfWeightFile>> {
    let index_path = dir.join("model.safetensors.index.json");
    let mut listing: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(dir).with_path(dir)? {
        let entry = entry.with_path(dir)?;
        listing.push(entry.file_name().to_string_lossy().into_owned());
    }
    listing.sort();

    if index_path.is_file() {
        return read_sharded(dir, &index_path);
    }
    let parts: Vec<&String> = listing
        .iter()
        .filter(|n| n.starts_with("model") && n.ends_with(".safetensors"))
        .collect();
    if parts.is_empty() {
        if listing
            .iter()
            .any(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
        {
            return Err(Error::format(
                dir,
                "only pytorch_model*.bin weights found; tinylm reads safetensors here \
                 (re-save the model with safe_serialization=True)",
            ));
        }
        return Err(Error::format(
            dir,
            "no weights found: expected model.safetensors, model-*.safetensors with \
             model.safetensors.index.json, or pytorch_model*.bin",
        ));
    }
    parts
        .into_iter()
        .map(|name| read_safetensors(&dir.join(name), name))
        .collect()
}

fn read_sharded(dir: &Path, index_path: &Path) -> Result<Vec<HfWeightFile>> {
    let bytes = std::fs::read(index_path).with_path(index_path)?;
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
        let wf = read_safetensors(&dir.join(file), file)?;
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
                    "shard holds {} tensor(s) that model.safetensors.index.json does not assign to \
                     it: {} (the index and the shards disagree)",
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

/// The dtype named `s` in a safetensors header.
pub fn parse_st_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "I32" => DType::I32,
        "I16" => DType::I16,
        "I8" => DType::I8,
        "U8" => DType::U8,
        "BOOL" => DType::Bool,
        _ => return None,
    })
}

/// Maps and validates one safetensors file.
pub fn read_safetensors(path: &Path, file_name: &str) -> Result<HfWeightFile> {
    let file = File::open(path).with_path(path)?;
    // SAFETY: read-only map of an input file; tinylm never writes its inputs. Populating up
    // front replaces hundreds of thousands of page faults by one sequential read-ahead.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.with_path(path)?;
    let map = Arc::new(map);
    let tensors = parse_safetensors(&map).map_err(|msg| Error::format(path, msg))?;
    Ok(HfWeightFile {
        file_name: file_name.to_string(),
        tensors: tensors
            .into_iter()
            .map(|(name, dtype, shape, range)| HfTensor {
                name,
                dtype,
                shape,
                data: TensorBytes::Mapped {
                    map: map.clone(),
                    range,
                },
            })
            .collect(),
    })
}

type ParsedTensor = (String, DType, Vec<usize>, std::ops::Range<usize>);

/// Parses and checks a safetensors buffer; tensors come back in header order.
pub fn parse_safetensors(buf: &[u8]) -> std::result::Result<Vec<ParsedTensor>, String> {
    let len = buf.len() as u64;
    let Some(head) = buf.get(..8) else {
        return Err(format!(
            "file is {len} bytes, too short for a safetensors header: truncated or not safetensors"
        ));
    };
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(head);
    let n = u64::from_le_bytes(n8);
    if n > MAX_HEADER || n > len - 8 {
        return Err(format!(
            "header claims {n} bytes but the file has only {len}: truncated or not safetensors"
        ));
    }
    let data_start = 8 + n as usize;
    let header_bytes = &buf[8..data_start];
    let header: Json = serde_json::from_slice(header_bytes)
        .map_err(|e| format!("safetensors header is not valid JSON ({e}): truncated or corrupt"))?;
    let Some(obj) = header.as_object() else {
        return Err("safetensors header is not a JSON object".into());
    };
    let data_len = (len - data_start as u64) as usize;
    let mut out = Vec::with_capacity(obj.len());
    let mut ranges: Vec<(usize, usize, String)> = Vec::new();
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: String| format!("tensor '{name}': {what}");
        let dtype_s = info
            .get("dtype")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no dtype in the header".into()))?;
        let dtype = parse_st_dtype(dtype_s).ok_or_else(|| {
            bad(format!(
                "dtype {dtype_s} is not supported (F32, F16, BF16, F64 and integers are)"
            ))
        })?;
        let shape: Vec<usize> = info
            .get("shape")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("no shape in the header".into()))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("shape is not a list of non-negative integers".into()))?;
        let offs: Vec<usize> = info
            .get("data_offsets")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("no data_offsets in the header".into()))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("data_offsets are not integers".into()))?;
        let [begin, end] = offs[..] else {
            return Err(bad("data_offsets must be [begin, end]".into()));
        };
        let nbytes = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        if end < begin || end - begin != nbytes {
            return Err(bad(format!(
                "header says bytes {begin}..{end} but a {dtype} tensor of shape {shape:?} needs \
                 {nbytes} bytes: the header is inconsistent"
            )));
        }
        if end > data_len {
            return Err(bad(format!(
                "data ends at byte {end} of the data section, but the file holds only {data_len} \
                 data bytes: the file is truncated"
            )));
        }
        ranges.push((begin, end, name.clone()));
        out.push((
            name.clone(),
            dtype,
            shape,
            data_start + begin..data_start + end,
        ));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        if let [(_, e0, n0), (b1, _, n1)] = w
            && b1 < e0
        {
            return Err(format!(
                "tensors '{n0}' and '{n1}' overlap in the data section: the header is corrupt"
            ));
        }
    }
    Ok(out)
}
