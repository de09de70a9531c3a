//! GGUF reader: parses the header, metadata and tensor infos of a memory-mapped file.
//!
//! Everything is bounds-checked against the file size before allocating, so a truncated or lying
//! file produces a [`GgufError`] naming what was being read and where, never a panic or a huge
//! allocation.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::types::{Array, GgmlType, Value, ValueType};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::{Error, Result};

/// What is wrong with a GGUF file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: starts with {0:?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    /// A version other than 2 or 3.
    #[error("GGUF version {0} is not supported (tinylm reads versions 2 and 3)")]
    Version(u32),
    /// The file is big-endian.
    #[error("big-endian GGUF files are not supported; convert it to little-endian first")]
    BigEndian,
    /// The file ends in the middle of something.
    #[error(
        "file ends early while reading {what} at byte {offset}: the file is truncated or corrupt"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Byte offset where reading started.
        offset: u64,
    },
    /// Anything else that makes the file invalid.
    #[error("{0}")]
    Invalid(String),
}

impl GgufError {
    /// Says which entry was being read when the file ended or broke (computed only on error,
    /// so the hot parse loop formats nothing).
    fn within(self, entry: impl FnOnce() -> String) -> GgufError {
        match self {
            GgufError::Truncated { what, offset } => GgufError::Truncated {
                what: format!("{what} of {}", entry()),
                offset,
            },
            GgufError::Invalid(msg) => GgufError::Invalid(format!("{}: {msg}", entry())),
            other => other,
        }
    }
}

/// Where one tensor lives in the file and how it is shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Dimensions in ggml order: `ne[0]` is the innermost (contiguous) one.
    pub ne: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub nbytes: u64,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Shape in numpy order (outermost first), as the HF side sees it.
    pub fn shape(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }

    /// Number of dimensions as ggml counts them (trailing 1-sized dimensions dropped, minimum 1).
    pub fn ggml_n_dims(&self) -> usize {
        self.ne.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
    }
}

/// An open GGUF file: parsed metadata and tensor infos over a shared memory map.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// Path the file was opened from.
    pub path: PathBuf,
    /// Format version (2 or 3).
    pub version: u32,
    /// Data alignment (`general.alignment`, default 32).
    pub alignment: u64,
    /// Metadata key/value pairs in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    map: Arc<Mmap>,
}

impl GgufFile {
    /// Opens and parses `path` (memory-mapped; tensor data is not read).
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let file = crate::fsutil::input::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only; tinylm never writes to input files and the cache keeps its
        // objects read-only. A concurrent external truncation could still fault, as with any mmap.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Self::parse(path, Arc::new(map)).map_err(|e| Error::format(path, e.to_string()))
    }

    /// Parses an already-mapped file.
    pub fn parse(path: &Path, map: Arc<Mmap>) -> Result<GgufFile, GgufError> {
        let mut r = Cursor { buf: &map, pos: 0 };
        let magic: [u8; 4] = r.array("magic")?;
        if &magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic(magic));
        }
        let version = r.u32("version")?;
        if version & 0xFFFF == 0 && version != 0 {
            return Err(GgufError::BigEndian);
        }
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Every KV needs at least 12 bytes and every tensor info at least 24: reject lies early.
        if n_kv.saturating_mul(12) > r.remaining() || n_tensors.saturating_mul(24) > r.remaining() {
            return Err(GgufError::Invalid(format!(
                "header claims {n_kv} metadata entries and {n_tensors} tensors, more than a \
                 {}-byte file can hold",
                map.len()
            )));
        }
        // Duplicate checks borrow the names from the mapping: one hash lookup per entry, so a
        // header with hundreds of thousands of keys or tensors parses in linear time.
        let mut keys: HashSet<&str> = HashSet::with_capacity(n_kv as usize);
        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r
                .str_utf8("key")
                .map_err(|e| e.within(|| format!("metadata entry {i}")))?;
            if key.is_empty() {
                return Err(GgufError::Invalid(format!(
                    "metadata entry {i} has an empty key"
                )));
            }
            if !keys.insert(key) {
                return Err(GgufError::Invalid(format!(
                    "duplicate metadata key '{key}'"
                )));
            }
            let in_key = |e: GgufError| e.within(|| format!("metadata key '{key}'"));
            let type_id = r.u32("value type").map_err(in_key)?;
            let vt = ValueType::from_id(type_id).ok_or_else(|| {
                GgufError::Invalid(format!(
                    "metadata key '{key}' has invalid value type {type_id}"
                ))
            })?;
            let value = r.value(vt, key)?;
            metadata.push((key.to_owned(), value));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
            Some((_, v)) => {
                return Err(GgufError::Invalid(format!(
                    "general.alignment must be a power-of-two u32, found {v}"
                )));
            }
        };
        let mut names: HashSet<&str> = HashSet::with_capacity(n_tensors as usize);
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = r
                .str_utf8("name")
                .map_err(|e| e.within(|| format!("tensor {i}")))?;
            let in_tensor = |e: GgufError| e.within(|| format!("tensor '{name}'"));
            let n_dims = r.u32("dimension count").map_err(in_tensor)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Invalid(format!(
                    "tensor '{name}' has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(r.u64("shape").map_err(in_tensor)?);
            }
            let type_id = r.u32("type").map_err(in_tensor)?;
            let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| {
                GgufError::Invalid(format!("tensor '{name}' has unknown ggml type {type_id}"))
            })?;
            let offset = r.u64("offset").map_err(in_tensor)?;
            let n_elements = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            let ne0 = ne[0];
            let nbytes = match n_elements {
                Some(n) if ne0.is_multiple_of(ggml_type.block_size()) => ggml_type.bytes_for(n),
                Some(_) => {
                    return Err(GgufError::Invalid(format!(
                        "tensor '{name}': {ne0} elements per row is not a multiple of the {} block \
                         size {}",
                        ggml_type,
                        ggml_type.block_size()
                    )));
                }
                None => None,
            }
            .ok_or_else(|| {
                GgufError::Invalid(format!("tensor '{name}': shape {ne:?} overflows"))
            })?;
            if !names.insert(name) {
                return Err(GgufError::Invalid(format!(
                    "duplicate tensor name '{name}'"
                )));
            }
            tensors.push(TensorInfo {
                name: name.to_owned(),
                ne,
                ggml_type,
                offset,
                nbytes,
            });
        }
        let data_offset = pad(r.pos as u64, alignment);
        let file_len = map.len() as u64;
        for t in &tensors {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.nbytes));
            if end.is_none_or(|e| e > file_len) {
                return Err(GgufError::Invalid(format!(
                    "tensor '{}' data ({} bytes at offset {}) is beyond the end of the {file_len}-byte \
                     file: the file is truncated or corrupt",
                    t.name, t.nbytes, t.offset
                )));
            }
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            alignment,
            metadata,
            tensors,
            data_offset,
            map,
        })
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string value, or a format error saying what is missing or wrong.
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(v) => v
                .as_str()
                .ok_or_else(|| self.wrong_type(key, "a UTF-8 string", v)),
            None => Err(Error::format(
                &self.path,
                format!("missing metadata key '{key}'"),
            )),
        }
    }

    /// An unsigned integer value (any integer width), or a format error.
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        match self.get(key) {
            Some(v) => v
                .as_u64()
                .ok_or_else(|| self.wrong_type(key, "an unsigned integer", v)),
            None => Err(Error::format(
                &self.path,
                format!("missing metadata key '{key}'"),
            )),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Error {
        Error::format(
            &self.path,
            format!(
                "metadata key '{key}' should be {expected}, found {} {found}",
                found.value_type().name()
            ),
        )
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor (bounds were checked at parse time).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + t.offset) as usize;
        &self.map[start..start + t.nbytes as usize]
    }

    /// The architecture (`general.architecture`), if present.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(Value::as_str)
    }

    /// The whole mapped file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Rounds `x` up to a multiple of `align`.
pub fn pad(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.buf.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        let truncated = || GgufError::Truncated {
            what: what.to_string(),
            offset: self.pos as u64,
        };
        if n > self.remaining() {
            return Err(truncated());
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, GgufError> {
        Ok(self.slice(what)?.to_vec())
    }

    fn slice(&mut self, what: &str) -> Result<&'a [u8], GgufError> {
        let len = self.u64(what)?;
        self.take(len, what)
    }

    /// A length-prefixed UTF-8 string, borrowed from the buffer.
    fn str_utf8(&mut self, what: &str) -> Result<&'a str, GgufError> {
        let start = self.pos;
        let b = self.slice(what)?;
        std::str::from_utf8(b)
            .map_err(|_| GgufError::Invalid(format!("{what} at byte {start} is not valid UTF-8")))
    }

    fn value(&mut self, vt: ValueType, key: &str) -> Result<Value, GgufError> {
        Ok(match vt {
            ValueType::U8 => Value::U8(self.array::<1>(key)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(key)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(key)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(key)?)),
            ValueType::U32 => Value::U32(self.u32(key)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(key)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(key)?)),
            ValueType::Bool => Value::Bool(self.array::<1>(key)?[0] != 0),
            ValueType::String => Value::String(self.bytes(key)?),
            ValueType::U64 => Value::U64(self.u64(key)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(key)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(key)?)),
            ValueType::Array => Value::Array(self.array_value(key)?),
        })
    }

    fn array_value(&mut self, key: &str) -> Result<Array, GgufError> {
        let type_id = self.u32(key)?;
        let et = ValueType::from_id(type_id).ok_or_else(|| {
            GgufError::Invalid(format!("array '{key}' has invalid element type {type_id}"))
        })?;
        let n = self.u64(key)?;
        let min_elem = match et {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 | ValueType::String => 8,
            ValueType::Array => {
                return Err(GgufError::Invalid(format!(
                    "array '{key}' contains arrays, which llama.cpp rejects"
                )));
            }
        };
        if n.saturating_mul(min_elem) > self.remaining() {
            return Err(GgufError::Truncated {
                what: format!("{n} elements of array '{key}'"),
                offset: self.pos as u64,
            });
        }
        let n = n as usize;
        macro_rules! prim {
            ($variant:ident, $t:ty) => {{
                let raw = self.take((n * std::mem::size_of::<$t>()) as u64, key)?;
                Array::$variant(
                    raw.chunks_exact(std::mem::size_of::<$t>())
                        .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                        .collect(),
                )
            }};
        }
        Ok(match et {
            ValueType::U8 => Array::U8(self.take(n as u64, key)?.to_vec()),
            ValueType::I8 => prim!(I8, i8),
            ValueType::U16 => prim!(U16, u16),
            ValueType::I16 => prim!(I16, i16),
            ValueType::U32 => prim!(U32, u32),
            ValueType::I32 => prim!(I32, i32),
            ValueType::F32 => prim!(F32, f32),
            ValueType::U64 => prim!(U64, u64),
            ValueType::I64 => prim!(I64, i64),
            ValueType::F64 => prim!(F64, f64),
            ValueType::Bool => {
                Array::Bool(self.take(n as u64, key)?.iter().map(|&b| b != 0).collect())
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bytes(key)?);
                }
                Array::String(v)
            }
            ValueType::Array => unreachable!("rejected above"),
        })
    }
}
