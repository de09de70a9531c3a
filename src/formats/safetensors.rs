//! safetensors files: a deterministic writer and a zero-copy single-file reader.
//!
//! The writer produces exactly the bytes of Python's `safetensors.torch.save_file(tensors,
//! metadata={"format": "pt"})` (what transformers' `save_pretrained` writes): tensors sorted by
//! descending dtype then name, a compact JSON header with `__metadata__` first, padded with
//! spaces to a multiple of 8, then the data back to back. The order is a property of the
//! [`HfWeightFile`] (see [`sort_canonical`]); [`write`] keeps whatever order it is given so an
//! in-memory weight file and its file on disk always agree. Sharded indexes are handled by the
//! HF → GGUF converter, not here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::convert::hf::{HfTensor, HfWeightFile, TensorBytes};
use crate::formats::DType;

/// The `__metadata__` every file gets, as transformers writes it.
pub const METADATA: (&str, &str) = ("format", "pt");

/// Why a safetensors file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The contents are not valid.
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        msg: String,
    },
}

impl From<SafetensorsError> for crate::Error {
    fn from(e: SafetensorsError) -> Self {
        match e {
            SafetensorsError::Io { path, source } => crate::Error::Io { path, source },
            SafetensorsError::Invalid { path, msg } => crate::Error::Format { path, msg },
        }
    }
}

fn st_dtype(d: DType) -> safetensors::Dtype {
    use safetensors::Dtype as S;
    match d {
        DType::F32 => S::F32,
        DType::F16 => S::F16,
        DType::BF16 => S::BF16,
        DType::F64 => S::F64,
        DType::I64 => S::I64,
        DType::I32 => S::I32,
        DType::I16 => S::I16,
        DType::I8 => S::I8,
        DType::U8 => S::U8,
        DType::Bool => S::BOOL,
        DType::C64 => S::C64,
    }
}

fn from_st_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::F64 => DType::F64,
        S::I64 => DType::I64,
        S::I32 => DType::I32,
        S::I16 => DType::I16,
        S::I8 => DType::I8,
        S::U8 => DType::U8,
        S::BOOL => DType::Bool,
        S::C64 => DType::C64,
        _ => return None,
    })
}

/// Sorts tensors into the order the safetensors library writes them: descending dtype (its
/// enum order, widest types first), then name.
pub fn sort_canonical(tensors: &mut [HfTensor]) {
    tensors.sort_by(|a, b| {
        st_dtype(b.dtype)
            .cmp(&st_dtype(a.dtype))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The 8-byte length prefix plus the padded JSON header for `tensors` in their given order.
pub fn header(tensors: &[HfTensor]) -> Result<Vec<u8>, String> {
    let mut map = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    meta.insert(METADATA.0.into(), METADATA.1.into());
    map.insert("__metadata__".into(), meta.into());
    let mut offset = 0usize;
    for t in tensors {
        let len = t.data.as_bytes().len();
        let expected = t
            .shape
            .iter()
            .try_fold(t.dtype.size(), |a, &d| a.checked_mul(d));
        if expected != Some(len) {
            return Err(format!(
                "tensor {} has {len} bytes, but {} {:?} needs {expected:?}",
                t.name, t.dtype, t.shape
            ));
        }
        if map.contains_key(&t.name) {
            return Err(format!("tensor name {:?} appears twice", t.name));
        }
        let info = serde_json::json!({
            "dtype": t.dtype.safetensors_name(),
            "shape": t.shape,
            "data_offsets": [offset, offset + len],
        });
        map.insert(t.name.clone(), info);
        offset += len;
    }
    let mut json =
        serde_json::to_vec(&serde_json::Value::Object(map)).map_err(|e| e.to_string())?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// Writes `file` in safetensors format to `w`, tensors in the file's order.
pub fn write<W: Write>(w: &mut W, file: &HfWeightFile) -> std::io::Result<()> {
    let head = header(&file.tensors).map_err(std::io::Error::other)?;
    w.write_all(&head)?;
    for t in &file.tensors {
        w.write_all(t.data.as_bytes())?;
    }
    Ok(())
}

/// A temporary file in `dir` that becomes world-readable (0644) like a normally created file
/// once persisted (tempfile's default is 0600).
pub(crate) fn temp_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".tinylm-tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir)
}

/// Writes `file` to `path` atomically (temp file in the same directory, then rename).
pub fn write_file(path: &Path, file: &HfWeightFile) -> Result<(), SafetensorsError> {
    let io = |source| SafetensorsError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_file_in(dir).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    write(&mut w, file).map_err(io)?;
    let tmp = w.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Memory-maps a single `.safetensors` file; tensors come back in stored (offset) order and
/// borrow the mapping.
pub fn read(path: &Path) -> Result<HfWeightFile, SafetensorsError> {
    let invalid = |msg: String| SafetensorsError::Invalid {
        path: path.to_owned(),
        msg,
    };
    let map = crate::formats::pytorch::map_file(path).map_err(|source| SafetensorsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let (n, meta) = safetensors::SafeTensors::read_metadata(&map)
        .map_err(|e| invalid(format!("not a valid safetensors file: {e}")))?;
    let base = 8 + n;
    let mut tensors = Vec::new();
    for name in meta.offset_keys() {
        let info = meta
            .info(&name)
            .ok_or_else(|| invalid(format!("tensor {name} vanished from the header")))?;
        let dtype = from_st_dtype(info.dtype).ok_or_else(|| {
            invalid(format!(
                "tensor {name} has dtype {:?}, which tinylm does not handle",
                info.dtype
            ))
        })?;
        let (s, e) = info.data_offsets;
        tensors.push(HfTensor {
            name,
            dtype,
            shape: info.shape.clone(),
            data: TensorBytes::Mapped {
                map: Arc::clone(&map),
                range: base + s..base + e,
            },
        });
    }
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(HfWeightFile { file_name, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dtype: DType, shape: &[usize], fill: u8) -> HfTensor {
        let n: usize = shape.iter().product::<usize>() * dtype.size();
        HfTensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: TensorBytes::Owned(Arc::from(vec![fill; n])),
        }
    }

    fn sample() -> Vec<HfTensor> {
        vec![
            tensor("z.weight", DType::F16, &[3, 2], 1),
            tensor("a.bias", DType::F32, &[5], 2),
            tensor("m.idx", DType::I64, &[2], 3),
            tensor("b.mask", DType::Bool, &[4, 4], 1),
            tensor("ü.ñ\"quoted\"", DType::BF16, &[1, 3], 4),
            tensor("empty", DType::F32, &[0, 3], 0),
        ]
    }

    #[test]
    fn matches_the_safetensors_library_byte_for_byte() {
        let mut tensors = sample();
        sort_canonical(&mut tensors);
        let file = HfWeightFile {
            file_name: "model.safetensors".into(),
            tensors: tensors.clone(),
        };
        let mut ours = Vec::new();
        write(&mut ours, &file).unwrap();

        let unsorted = sample();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = unsorted
            .iter()
            .map(|t| {
                let v = safetensors::tensor::TensorView::new(
                    st_dtype(t.dtype),
                    t.shape.clone(),
                    t.data.as_bytes(),
                )
                .unwrap();
                (t.name.clone(), v)
            })
            .collect();
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        let theirs = safetensors::serialize(views, Some(meta)).unwrap();
        assert_eq!(ours, theirs);
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "m.idx",
                "a.bias",
                "empty",
                "ü.ñ\"quoted\"",
                "z.weight",
                "b.mask"
            ]
        );
    }

    #[test]
    fn round_trip_is_zero_copy_and_identical() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        let mut tensors = sample();
        sort_canonical(&mut tensors);
        let file = HfWeightFile {
            file_name: "model.safetensors".into(),
            tensors,
        };
        write_file(&p, &file).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.file_name, "model.safetensors");
        assert_eq!(back.tensors.len(), file.tensors.len());
        for (a, b) in back.tensors.iter().zip(&file.tensors) {
            assert_eq!(
                (&a.name, a.dtype, &a.shape, a.data.as_bytes()),
                (&b.name, b.dtype, &b.shape, b.data.as_bytes())
            );
            assert!(matches!(a.data, TensorBytes::Mapped { .. }));
        }
        let p2 = dir.path().join("again.safetensors");
        write_file(&p2, &back).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&p2).unwrap());
    }

    #[test]
    fn header_rejects_inconsistent_tensors() {
        let mut t = tensor("x", DType::F32, &[2], 0);
        t.shape = vec![3];
        assert!(header(&[t]).unwrap_err().contains("has 8 bytes"));
        let a = tensor("x", DType::F32, &[1], 0);
        assert!(header(&[a.clone(), a]).unwrap_err().contains("twice"));
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.safetensors");
        let mut ok = Vec::new();
        write(
            &mut ok,
            &HfWeightFile {
                file_name: String::new(),
                tensors: sample(),
            },
        )
        .unwrap();
        for n in [0, 7, 8, 20, ok.len() - 1] {
            std::fs::write(&p, &ok[..n]).unwrap();
            let msg = read(&p).unwrap_err().to_string();
            assert!(msg.contains("not a valid safetensors file"), "{msg}");
        }
        let missing = dir.path().join("missing.safetensors");
        assert!(matches!(read(&missing), Err(SafetensorsError::Io { .. })));
    }
}
