//! Describing a model or tokenizer file (`tinylm inspect`).
//!
//! The file kind is decided in one place, [`detect`], from the magic bytes (the extension only
//! breaks ties and feeds error messages); each kind has its own `describe_*` function that
//! returns a [`Report`] (text for people, JSON for `--json`).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

use serde_json::{Value as Json, json};

use crate::convert::tinylm_to_hf::{tokenizer, weights};
use crate::error::IoContext;
use crate::formats::pytorch::{Checkpoint, TensorRef, Value};
use crate::formats::safetensors;
use crate::formats::tiktoken::TiktokenEncoding;
use crate::{Error, Result};

/// What a file is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A torch zip archive (`.ckpt`, `.pt`, `.bin`).
    TorchZip,
    /// A pickle: a tiktoken tokenizer, or a legacy (pre-zip) torch file.
    Pickle,
    /// A `.safetensors` file.
    Safetensors,
    /// A GGUF file.
    Gguf,
}

/// Decides the kind of `path` from its magic bytes.
pub fn detect(path: &Path) -> Result<FileKind> {
    let mut head = [0u8; 16];
    let mut f = crate::fsutil::input::open(path).with_path(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).with_path(path)? {
            0 => break,
            k => n += k,
        }
    }
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(FileKind::TorchZip)
    } else if head.starts_with(b"GGUF") {
        Ok(FileKind::Gguf)
    } else if head.first() == Some(&0x80) {
        Ok(FileKind::Pickle)
    } else if head.len() > 8 && head[8] == b'{' {
        Ok(FileKind::Safetensors)
    } else {
        Err(Error::format(
            path,
            "unrecognized file: expected a torch checkpoint (.ckpt/.pt/.bin), a .safetensors \
             file, a GGUF file or a tiktoken tokenizer.pkl",
        ))
    }
}

/// A description of a file.
#[derive(Debug, Clone)]
pub struct Report {
    /// For people.
    pub text: String,
    /// For `--json`.
    pub json: Json,
}

/// Describes the file at `path`, whatever kind it is.
pub fn describe(path: &Path) -> Result<Report> {
    match detect(path)? {
        FileKind::TorchZip => describe_checkpoint(path),
        FileKind::Safetensors => describe_safetensors(path),
        FileKind::Pickle => describe_pickle(path),
        FileKind::Gguf => describe_gguf(path),
    }
}

fn describe_gguf(path: &Path) -> Result<Report> {
    let g = crate::formats::gguf::GgufFile::open(path)?;
    let text = format!(
        "{}: GGUF file, {} bytes\n{}",
        path.display(),
        file_size(path),
        g.describe_text()
    );
    Ok(Report {
        text,
        json: g.describe_json(),
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(", "))
}

/// Right-aligned tensor table lines.
fn tensor_lines(rows: &[(String, String, Vec<usize>)]) -> String {
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(n, d, s)| format!("  {n:<w$}  {d:<4}  {}\n", shape_str(s)))
        .collect()
}

fn describe_checkpoint(path: &Path) -> Result<Report> {
    let ckpt = Checkpoint::open(path)?;
    let mut text = format!(
        "{}: torch zip checkpoint, {} bytes\n",
        path.display(),
        file_size(path)
    );
    let mut top = serde_json::Map::new();
    match ckpt.root() {
        Value::Dict(entries) => {
            text += &format!("top level: dict with {} entries\n", entries.len());
            for (k, v) in entries {
                text += &format!("  {}: {}\n", key_str(k), v.summary());
                top.insert(key_str(k), json!(v.summary()));
            }
        }
        other => text += &format!("top level: {}\n", other.summary()),
    }
    let refs = ckpt.state_dict_refs()?;
    let mut rows = Vec::new();
    let mut tensors = Vec::new();
    let mut seen = BTreeSet::new();
    let (mut params, mut buffers) = (0usize, 0usize);
    for (name, t) in &refs {
        rows.push((
            name.to_string(),
            t.storage.dtype.to_string(),
            t.shape.clone(),
        ));
        tensors.push(json!({"name": name, "dtype": t.storage.dtype, "shape": t.shape}));
        if weights::is_buffer(name) {
            buffers += 1;
        } else if seen.insert(view_key(t)) {
            // Tied tensors (same storage view) are one parameter set.
            params += t.numel();
        }
    }
    let keys: BTreeSet<&str> = refs
        .iter()
        .map(|(n, _)| n.strip_prefix("model.").unwrap_or(n))
        .collect();
    let arch = weights::detect_arch(&keys);
    text += &format!(
        "state dict: {} tensors ({buffers} buffers), {params} parameters (tied tensors counted once)\n",
        refs.len()
    );
    if let Some(a) = arch {
        text += &format!("tiny-lm architecture: {a}\n");
    }
    text += &tensor_lines(&rows);
    Ok(Report {
        text,
        json: json!({
            "file": path,
            "kind": "torch",
            "top_level": top,
            "tensors": tensors,
            "parameters": params,
            "buffers": buffers,
            "tinylm_arch": arch,
        }),
    })
}

fn key_str(k: &Value) -> String {
    k.as_str().map_or_else(|| k.summary(), str::to_owned)
}

fn view_key(t: &TensorRef) -> (String, u64, Vec<usize>, Vec<usize>) {
    (
        t.storage.key.clone(),
        t.offset,
        t.shape.clone(),
        t.stride.clone(),
    )
}

fn describe_safetensors(path: &Path) -> Result<Report> {
    let file = safetensors::read_lazy(path)?;
    let mut rows = Vec::new();
    let mut tensors = Vec::new();
    let mut params = 0usize;
    for t in &file.tensors {
        rows.push((t.name.clone(), t.dtype.to_string(), t.shape.clone()));
        tensors.push(json!({"name": t.name, "dtype": t.dtype, "shape": t.shape}));
        params += t.shape.iter().product::<usize>();
    }
    let text = format!(
        "{}: safetensors, {} bytes\n{} tensors, {params} parameters\n{}",
        path.display(),
        file_size(path),
        file.tensors.len(),
        tensor_lines(&rows)
    );
    Ok(Report {
        text,
        json: json!({"file": path, "kind": "safetensors", "tensors": tensors, "parameters": params}),
    })
}

fn describe_pickle(path: &Path) -> Result<Report> {
    let bytes = crate::fsutil::input::read(path).with_path(path)?;
    // The legacy torch format also starts with a pickle; let the checkpoint reader explain it.
    const TORCH_LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";
    if bytes.starts_with(TORCH_LEGACY_MAGIC) {
        return Err(Checkpoint::open(path)
            .err()
            .map_or_else(|| Error::format(path, "legacy torch file"), Error::from));
    }
    let enc = TiktokenEncoding::from_pickle(&bytes).map_err(|msg| Error::format(path, msg))?;
    let merges = tokenizer::recover_merges(&enc);
    let merges_text = match &merges {
        Ok(m) => format!("{} recovered by BPE replay", m.len()),
        Err(e) => format!("NOT recoverable: {e}"),
    };
    let specials: Vec<String> = enc
        .special_tokens
        .iter()
        .map(|(s, i)| format!("{s}={i}"))
        .collect();
    let text = format!(
        "{}: tiktoken encoding {:?}\n  ids: {} ({} byte-level tokens + {} special)\n  \
         special tokens: {}\n  merges: {merges_text}\n  pattern: {}\n",
        path.display(),
        enc.name,
        enc.n_vocab(),
        enc.mergeable_ranks.len(),
        enc.special_tokens.len(),
        specials.join(", "),
        enc.pat_str
    );
    let special_json: serde_json::Map<String, Json> = enc
        .special_tokens
        .iter()
        .map(|(s, i)| (s.clone(), json!(i)))
        .collect();
    Ok(Report {
        text,
        json: json!({
            "file": path,
            "kind": "tiktoken",
            "name": enc.name,
            "pattern": enc.pat_str,
            "n_vocab": enc.n_vocab(),
            "mergeable_ranks": enc.mergeable_ranks.len(),
            "special_tokens": special_json,
            "merges": merges.as_ref().map(|m| m.len()).ok(),
            "merges_error": merges.err(),
        }),
    })
}
