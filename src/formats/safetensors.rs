//! safetensors files: a deterministic writer and a validated zero-copy single-file reader.
//!
//! The writer produces exactly the bytes of Python's `safetensors.torch.save_file(tensors,
//! metadata={"format": "pt"})` (what transformers' `save_pretrained` writes): tensors sorted by
//! descending dtype then name, a compact JSON header with `__metadata__` first, padded with
//! spaces to a multiple of 8, then the data back to back. The order is a property of the
//! [`WeightFile`] (see [`sort_canonical`]); [`write`] keeps whatever order it is given so an
//! in-memory weight file and its file on disk always agree.
//!
//! The reader ([`read`]) never trusts the header: it must fit the file, every tensor's byte range
//! must match its dtype and shape and lie inside the data section, and tensors must not overlap;
//! a violation is an error naming the tensor. Sharded checkpoints (`*.index.json`) are handled by
//! the HF folder reader (`convert::hf_read`), not here.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::formats::DType;
use crate::formats::tensor::{Tensor, TensorBytes, WeightFile};

/// The `__metadata__` every file gets, as transformers writes it.
pub const METADATA: (&str, &str) = ("format", "pt");

/// Why a safetensors file could not be read or written.
pub type SafetensorsError = super::FileError;

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

/// Sorts tensors into the order the safetensors library writes them: descending dtype (its
/// enum order, widest types first), then name.
pub fn sort_canonical(tensors: &mut [Tensor]) {
    tensors.sort_by(|a, b| {
        st_dtype(b.dtype)
            .cmp(&st_dtype(a.dtype))
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// The 8-byte length prefix plus the padded JSON header for `tensors` in their given order.
pub fn header(tensors: &[Tensor]) -> Result<Vec<u8>, String> {
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
pub fn write<W: Write>(w: &mut W, file: &WeightFile) -> std::io::Result<()> {
    let head = header(&file.tensors).map_err(std::io::Error::other)?;
    w.write_all(&head)?;
    for t in &file.tensors {
        w.write_all(t.data.as_bytes())?;
    }
    Ok(())
}

/// Writes `file` to `path` atomically (temp file in the same directory, then rename).
pub fn write_file(path: &Path, file: &WeightFile) -> Result<(), SafetensorsError> {
    let io = |source| SafetensorsError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = crate::fsutil::public_temp_file_in(dir).map_err(io)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    write(&mut w, file).map_err(io)?;
    let tmp = w.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Largest JSON header accepted (the format's own limit is 100 MB).
const MAX_HEADER: u64 = 100 * 1024 * 1024;

/// Maps and validates a `.safetensors` file; tensors come back in stored (data offset) order and
/// borrow the mapping. Pages are not pre-faulted: a reader streaming the data maps windows
/// ahead ([`TensorBytes::prefetch`]) and drops them behind ([`TensorBytes::release`]), so the
/// resident set stays a few windows whatever the file size.
pub fn read(path: &Path) -> Result<WeightFile, SafetensorsError> {
    read_mapped(path)
}

/// Same as [`read`] (kept for callers that only look at the header of a large file).
pub fn read_lazy(path: &Path) -> Result<WeightFile, SafetensorsError> {
    read_mapped(path)
}

fn read_mapped(path: &Path) -> Result<WeightFile, SafetensorsError> {
    let map = crate::formats::map_file(path).map_err(|source| SafetensorsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let entries = parse(&map).map_err(|msg| SafetensorsError::invalid(path, msg))?;
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tensors = entries
        .into_iter()
        .map(|e| Tensor {
            name: e.name,
            dtype: e.dtype,
            shape: e.shape,
            data: TensorBytes::Mapped {
                map: Arc::clone(&map),
                range: e.range,
            },
        })
        .collect();
    Ok(WeightFile { file_name, tensors })
}

/// One tensor of a parsed header.
struct Entry {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    /// Byte range in the whole file.
    range: Range<usize>,
}

/// Parses and checks a safetensors buffer: the header must fit the file, every tensor's byte
/// range must match its dtype and shape and lie inside the data section, and no two tensors may
/// overlap. Tensors come back in data offset order.
fn parse(buf: &[u8]) -> Result<Vec<Entry>, String> {
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
    let header: Json = serde_json::from_slice(&buf[8..data_start])
        .map_err(|e| format!("safetensors header is not valid JSON ({e}): truncated or corrupt"))?;
    let Some(obj) = header.as_object() else {
        return Err("safetensors header is not a JSON object".into());
    };
    let data_len = buf.len() - data_start;
    let mut out: Vec<Entry> = Vec::with_capacity(obj.len());
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let bad = |what: String| format!("tensor '{name}': {what}");
        let dtype_s = info
            .get("dtype")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no dtype in the header".into()))?;
        let dtype = DType::from_safetensors_name(dtype_s).ok_or_else(|| {
            bad(format!(
                "dtype {dtype_s} is not supported (F32, F16, BF16, F64 and integers are)"
            ))
        })?;
        let shape = info
            .get("shape")
            .ok_or_else(|| bad("no shape in the header".into()))?;
        let shape = usize_list(shape)
            .ok_or_else(|| bad("shape is not a list of non-negative integers".into()))?;
        let offs = info
            .get("data_offsets")
            .ok_or_else(|| bad("no data_offsets in the header".into()))?;
        let offs = usize_list(offs).ok_or_else(|| bad("data_offsets are not integers".into()))?;
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
        out.push(Entry {
            name: name.clone(),
            dtype,
            shape,
            range: data_start + begin..data_start + end,
        });
    }
    // Stable: empty tensors sharing an offset keep their header order.
    out.sort_by_key(|e| (e.range.start, e.range.end));
    for w in out.windows(2) {
        if let [a, b] = w
            && b.range.start < a.range.end
        {
            return Err(format!(
                "tensors '{}' and '{}' overlap in the data section: the header is corrupt",
                a.name, b.name
            ));
        }
    }
    Ok(out)
}

/// `v` as a list of `usize`; `None` unless it is a list of non-negative integers.
fn usize_list(v: &Json) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dtype: DType, shape: &[usize], fill: u8) -> Tensor {
        let n: usize = shape.iter().product::<usize>() * dtype.size();
        Tensor {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
            data: TensorBytes::Owned(Arc::from(vec![fill; n])),
        }
    }

    fn sample() -> Vec<Tensor> {
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
        let file = WeightFile {
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
        let file = WeightFile {
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
            &WeightFile {
                file_name: String::new(),
                tensors: sample(),
            },
        )
        .unwrap();
        for n in [0, 7, 8, 20, ok.len() - 1] {
            std::fs::write(&p, &ok[..n]).unwrap();
            let msg = read(&p).unwrap_err().to_string();
            assert!(
                msg.contains("bad.safetensors") && msg.contains("truncated"),
                "{n}: {msg}"
            );
        }
        let missing = dir.path().join("missing.safetensors");
        assert!(matches!(read(&missing), Err(SafetensorsError::Io { .. })));
    }

    /// A raw file whose header lists `entries` (name, dtype, shape, offsets) in the given order.
    fn raw_file(entries: &[(&str, &str, &[usize], [usize; 2])], data_len: usize) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        for (name, dtype, shape, offs) in entries {
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offs}),
            );
        }
        let h = serde_json::to_vec(&header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend((0..data_len).map(|i| i as u8));
        out
    }

    #[test]
    fn tensors_come_back_in_data_order_with_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        let bytes = raw_file(
            &[
                ("a", "F16", &[2], [8, 12]),
                ("b", "F32", &[2], [0, 8]),
                ("c", "C64", &[], [12, 20]),
            ],
            20,
        );
        std::fs::write(&p, &bytes).unwrap();
        let f = read(&p).unwrap();
        let got: Vec<(&str, DType, &[u8])> = f
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.dtype, t.data.as_bytes()))
            .collect();
        assert_eq!(
            got,
            [
                ("b", DType::F32, &[0u8, 1, 2, 3, 4, 5, 6, 7][..]),
                ("a", DType::F16, &[8, 9, 10, 11][..]),
                ("c", DType::C64, &[12, 13, 14, 15, 16, 17, 18, 19][..]),
            ]
        );
        assert_eq!(read_lazy(&p).unwrap().tensors.len(), 3);
    }

    /// (name, dtype, shape, data_offsets) of one header entry.
    type HeaderEntry<'a> = (&'a str, &'a str, &'a [usize], [usize; 2]);

    #[test]
    fn inconsistent_headers_name_the_tensor() {
        let cases: [(&[HeaderEntry], usize, &str); 5] = [
            (&[("w", "F32", &[4], [0, 12])], 16, "needs 16 bytes"),
            (&[("w", "F32", &[4], [0, 16])], 12, "truncated"),
            (
                &[("w", "F8_E4M3", &[4], [0, 4])],
                4,
                "dtype F8_E4M3 is not supported",
            ),
            (
                &[("w", "F32", &[2], [0, 8]), ("v", "F32", &[2], [4, 12])],
                12,
                "overlap",
            ),
            (&[("w", "F32", &[2], [8, 0])], 8, "inconsistent"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        for (entries, data_len, want) in cases {
            std::fs::write(&p, raw_file(entries, data_len)).unwrap();
            let msg = read(&p).unwrap_err().to_string();
            assert!(msg.contains(want) && msg.contains("'w'"), "{want}: {msg}");
        }
    }
}
