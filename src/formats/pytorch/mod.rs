//! Torch zip checkpoints (`.ckpt`, `.pt`, `.bin`) read through a restricted unpickler (never
//! executes code).
//!
//! A torch ≥ 1.6 file is a zip archive of stored entries: `<archive>/data.pkl` (the pickled
//! object graph), `<archive>/data/<key>` (one raw little-endian storage per key) and a few small
//! metadata entries. [`Checkpoint::open`] maps the file, unpickles `data.pkl` into a [`Value`]
//! tree whose tensors are [`TensorRef`]s, and [`Checkpoint::tensor_data`] hands out zero-copy
//! slices of the mapping for contiguous tensors (copies only for strided views).

pub mod pickle;
pub mod value;
pub mod zip;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use pickle::PickleError;
pub use value::{Object, StorageRef, TensorRef, Value};
pub use zip::ZipError;

use crate::formats::map_file;
use crate::formats::tensor::{Tensor, TensorBytes};

/// Why a checkpoint could not be read.
pub type PytorchError = super::FileError;

/// An opened torch zip checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    map: Arc<crate::formats::tensor::MappedFile>,
    index: zip::ZipIndex,
    prefix: String,
    big_endian: bool,
    root: Value,
}

impl Checkpoint {
    /// Opens and unpickles a torch checkpoint; tensor data stays in the mapping.
    pub fn open(path: &Path) -> Result<Checkpoint, PytorchError> {
        let map = map_file(path).map_err(|source| PytorchError::Io {
            path: path.to_owned(),
            source,
        })?;
        let bytes: &[u8] = &map;
        check_magic(path, bytes)?;
        let index = zip::ZipIndex::parse(bytes).map_err(|e| {
            PytorchError::invalid(path, format!("not a readable torch archive: {e}"))
        })?;
        let pickles: Vec<&str> = index
            .names()
            .filter(|n| {
                n.strip_suffix("/data.pkl")
                    .is_some_and(|prefix| !prefix.is_empty() && !prefix.contains('/'))
            })
            .collect();
        let data_pkl = match pickles.as_slice() {
            [one] => (*one).to_owned(),
            [] => {
                return Err(PytorchError::invalid(
                    path,
                    "zip archive has no <archive>/data.pkl entry: not a torch checkpoint",
                ));
            }
            _ => {
                return Err(PytorchError::invalid(
                    path,
                    format!("zip archive holds several torch archives: {pickles:?}"),
                ));
            }
        };
        let prefix = data_pkl.trim_end_matches("/data.pkl").to_owned();
        let entry = index
            .get(&data_pkl)
            .cloned()
            .ok_or_else(|| PytorchError::invalid(path, "data.pkl vanished"))?;
        let pkl = bytes.get(entry.range.clone()).unwrap_or_default();
        if zip::crc32(pkl) != entry.crc32 {
            return Err(PytorchError::invalid(
                path,
                format!("{data_pkl}: CRC mismatch (the file is corrupt)"),
            ));
        }
        let big_endian = match index.get(&format!("{prefix}/byteorder")) {
            None => false,
            Some(e) => match bytes.get(e.range.clone()).unwrap_or_default() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(PytorchError::invalid(
                        path,
                        format!(
                            "{prefix}/byteorder is {:?}, expected \"little\" or \"big\"",
                            String::from_utf8_lossy(other)
                        ),
                    ));
                }
            },
        };
        let root = pickle::unpickle(
            pkl,
            pickle::Options {
                torch_storages: true,
            },
        )
        .map_err(|e| PytorchError::invalid(path, format!("{data_pkl}: {e}")))?;
        let ckpt = Checkpoint {
            path: path.to_owned(),
            map,
            index,
            prefix,
            big_endian,
            root,
        };
        ckpt.check_storages()?;
        Ok(ckpt)
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The unpickled top-level object (a dict for Lightning checkpoints and state dicts).
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The model state dict: the `state_dict` entry of a Lightning checkpoint, or the top-level
    /// dict itself for plain `torch.save(model.state_dict())` files and HF `pytorch_model.bin`.
    /// Entries that are not tensors are skipped with a warning.
    pub fn state_dict_refs(&self) -> Result<Vec<(&str, &TensorRef)>, PytorchError> {
        let dict = match self.root.get("state_dict") {
            Some(Value::Dict(d)) => d,
            Some(other) => {
                return Err(PytorchError::invalid(
                    &self.path,
                    format!("`state_dict` is a {}, expected a dict", other.type_name()),
                ));
            }
            None => match &self.root {
                Value::Dict(d) if d.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) => d,
                other => {
                    let keys = describe_keys(other);
                    return Err(PytorchError::invalid(
                        &self.path,
                        format!(
                            "no state dict found: the checkpoint holds a {}{keys}; expected a \
                             Lightning checkpoint (with `state_dict`) or a dict of tensors",
                            other.type_name()
                        ),
                    ));
                }
            },
        };
        let mut out = Vec::with_capacity(dict.len());
        for (k, v) in dict {
            let Some(name) = k.as_str() else {
                return Err(PytorchError::invalid(
                    &self.path,
                    format!("state dict key {} is not a string", k.summary()),
                ));
            };
            match v {
                Value::Tensor(t) => out.push((name, t)),
                other => tracing::warn!(
                    "{}: skipping state dict entry {name:?}: a {}, not a tensor",
                    self.path.display(),
                    other.type_name()
                ),
            }
        }
        Ok(out)
    }

    /// The state dict as named tensors, in stored order; contiguous tensors are zero-copy.
    pub fn state_dict(&self) -> Result<Vec<Tensor>, PytorchError> {
        self.state_dict_refs()?
            .into_iter()
            .map(|(name, t)| {
                Ok(Tensor {
                    name: name.to_owned(),
                    dtype: t.storage.dtype,
                    shape: t.shape.clone(),
                    data: self.tensor_data(t)?,
                })
            })
            .collect()
    }

    /// The bytes of a tensor, row-major little-endian: a slice of the mapping when the view is
    /// contiguous, otherwise a materialized copy.
    pub fn tensor_data(&self, t: &TensorRef) -> Result<TensorBytes, PytorchError> {
        let range = self.storage_range(&t.storage)?;
        let elem = t.storage.dtype.size();
        let numel = t.numel();
        if numel == 0 {
            return Ok(TensorBytes::Owned(Arc::from(Vec::new())));
        }
        let bad = || {
            PytorchError::invalid(
                &self.path,
                format!(
                    "tensor view of storage {:?} is out of bounds",
                    t.storage.key
                ),
            )
        };
        if t.is_contiguous() && !self.big_endian {
            let start = usize::try_from(t.offset)
                .ok()
                .and_then(|o| o.checked_mul(elem))
                .and_then(|o| o.checked_add(range.start))
                .ok_or_else(bad)?;
            let end = start.checked_add(numel * elem).ok_or_else(bad)?;
            if end > range.end {
                return Err(bad());
            }
            return Ok(TensorBytes::Mapped {
                map: Arc::clone(&self.map),
                range: start..end,
            });
        }
        let src = self.map.get(range).ok_or_else(bad)?;
        let mut out = gather(src, t, elem).ok_or_else(bad)?;
        if self.big_endian {
            swap_bytes(&mut out, t.storage.dtype);
        }
        Ok(TensorBytes::Owned(Arc::from(out)))
    }

    fn storage_range(&self, s: &StorageRef) -> Result<Range<usize>, PytorchError> {
        let name = format!("{}/data/{}", self.prefix, s.key);
        let entry = self.index.get(&name).ok_or_else(|| {
            PytorchError::invalid(
                &self.path,
                format!("storage {:?} is referenced but {name} is missing", s.key),
            )
        })?;
        let need = usize::try_from(s.numel)
            .ok()
            .and_then(|n| n.checked_mul(s.dtype.size()));
        if need.is_none_or(|n| entry.range.len() < n) {
            return Err(PytorchError::invalid(
                &self.path,
                format!(
                    "storage {:?} holds {} bytes, but {} {} elements were declared (truncated?)",
                    s.key,
                    entry.range.len(),
                    s.numel,
                    s.dtype
                ),
            ));
        }
        Ok(entry.range.clone())
    }

    /// Checks up front that every storage any tensor references exists and is large enough.
    fn check_storages(&self) -> Result<(), PytorchError> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![&self.root];
        while let Some(v) = stack.pop() {
            match v {
                Value::Tensor(TensorRef { storage, .. }) | Value::Storage(storage)
                    if seen.insert(&storage.key) =>
                {
                    self.storage_range(storage)?;
                }
                Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
                    stack.extend(items);
                }
                Value::Dict(entries) => {
                    for (k, v) in entries {
                        stack.push(k);
                        stack.push(v);
                    }
                }
                Value::Object(o) => {
                    stack.extend(&o.args);
                    stack.extend(&o.state);
                    stack.extend(&o.items);
                    for (k, v) in &o.entries {
                        stack.push(k);
                        stack.push(v);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn describe_keys(v: &Value) -> String {
    match v {
        Value::Dict(d) => {
            let keys: Vec<String> = d.iter().take(12).map(|(k, _)| k.summary()).collect();
            format!(" with keys [{}]", keys.join(", "))
        }
        _ => String::new(),
    }
}

/// Recognizes legacy torch files and non-zip inputs before zip parsing.
fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), PytorchError> {
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Ok(());
    }
    let is_tar = bytes.get(257..262) == Some(b"ustar");
    if bytes.first() == Some(&0x80) || is_tar {
        return Err(PytorchError::invalid(
            path,
            "this is the legacy torch serialization format (written by torch < 1.6), which tinylm \
             does not read; re-save it with torch >= 1.6: \
             `torch.save(torch.load(old, weights_only=False), new)`",
        ));
    }
    let hint = if bytes.len() >= 8 && bytes.get(8) == Some(&b'{') {
        " (it looks like a .safetensors file)"
    } else if bytes.starts_with(b"GGUF") {
        " (it looks like a GGUF file)"
    } else {
        ""
    };
    Err(PytorchError::invalid(
        path,
        format!("not a torch checkpoint: expected a zip archive{hint}"),
    ))
}

/// Copies a strided view into a row-major buffer; `None` if an index leaves `src`.
fn gather(src: &[u8], t: &TensorRef, elem: usize) -> Option<Vec<u8>> {
    let offset = usize::try_from(t.offset).ok()?;
    let mut out = Vec::with_capacity(t.numel() * elem);
    let Some((&inner, outer)) = t.shape.split_last() else {
        // A scalar.
        out.extend_from_slice(src.get(offset * elem..(offset + 1) * elem)?);
        return Some(out);
    };
    let inner_stride = *t.stride.last()?;
    let outer_strides = &t.stride[..outer.len()];
    let mut idx = vec![0usize; outer.len()];
    loop {
        let base = offset
            + idx
                .iter()
                .zip(outer_strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(src.get(base * elem..(base + inner) * elem)?);
        } else {
            for j in 0..inner {
                let e = base + j * inner_stride;
                out.extend_from_slice(src.get(e * elem..(e + 1) * elem)?);
            }
        }
        // Advance the odometer over the outer dimensions.
        let mut d = outer.len();
        loop {
            if d == 0 {
                return Some(out);
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < outer[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Converts big-endian elements to little-endian in place.
fn swap_bytes(buf: &mut [u8], dtype: crate::formats::DType) {
    // Complex numbers are two independent floats.
    let unit = if dtype == crate::formats::DType::C64 {
        4
    } else {
        dtype.size()
    };
    if unit > 1 {
        for chunk in buf.chunks_exact_mut(unit) {
            chunk.reverse();
        }
    }
}

#[cfg(test)]
mod tests;
