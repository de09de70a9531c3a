//! Streaming GGUF writer.
//!
//! The whole header (metadata and tensor infos) is known before any tensor data is produced, so
//! the file is written front to back in one pass: header, padding, then each tensor's bytes as a
//! caller-supplied closure produces them. Peak memory is one tensor, whatever the model size.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use super::reader::pad;
use super::types::{Array, GgmlType, Value};
use super::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};
use crate::{Error, Result};

/// A tensor to be written: name, ggml shape and type.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Tensor name (at most 63 bytes).
    pub name: String,
    /// Dimensions in ggml order (`ne[0]` innermost); `n_dims` is written as `ne.len()`.
    pub ne: Vec<u64>,
    /// Element type.
    pub ggml_type: GgmlType,
}

impl TensorSpec {
    /// Size of the tensor data in bytes.
    pub fn nbytes(&self) -> u64 {
        self.ggml_type
            .bytes_for(self.ne.iter().product())
            .unwrap_or(0)
    }
}

/// Collects metadata and tensor specs, then streams a GGUF v3 file.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    alignment: u64,
    kvs: Vec<(String, Value)>,
    tensors: Vec<TensorSpec>,
    /// Position of each key in `kvs` and the set of tensor names: linear-time building of
    /// files with hundreds of thousands of entries (quantizing such a file copies them all).
    kv_index: HashMap<String, usize>,
    tensor_names: HashSet<String>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty writer with the default 32-byte alignment.
    pub fn new() -> Self {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            kvs: Vec::new(),
            tensors: Vec::new(),
            kv_index: HashMap::new(),
            tensor_names: HashSet::new(),
        }
    }

    /// Adds or replaces a KV the way gguf-py does: a replaced key keeps its original position.
    pub fn add_kv(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        if key == "general.alignment"
            && let Value::U32(a) = value
        {
            self.alignment = u64::from(a);
        }
        match self.kv_index.get(&key) {
            Some(&i) => self.kvs[i].1 = value,
            None => {
                self.kv_index.insert(key.clone(), self.kvs.len());
                self.kvs.push((key, value));
            }
        }
    }

    /// Sets a KV the way ggml's C writer does: any existing entry is removed, the key goes last.
    pub fn set_kv_last(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        self.remove_kv(&key);
        self.add_kv(key, value);
    }

    /// Removes a KV if present.
    pub fn remove_kv(&mut self, key: &str) {
        if let Some(i) = self.kv_index.remove(key) {
            self.kvs.remove(i);
            for slot in self.kv_index.values_mut() {
                if *slot > i {
                    *slot -= 1;
                }
            }
        }
    }

    /// The KVs in write order.
    pub fn kvs(&self) -> &[(String, Value)] {
        &self.kvs
    }

    /// The tensors in write order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Appends a tensor, checking the constraints llama.cpp enforces when loading.
    pub fn add_tensor(&mut self, spec: TensorSpec) -> Result<()> {
        let bad = |msg: String| Error::Build(format!("cannot write tensor '{}': {msg}", spec.name));
        if spec.name.len() >= MAX_NAME_LEN {
            return Err(bad(format!(
                "name is {} bytes, llama.cpp allows at most 63",
                spec.name.len()
            )));
        }
        if spec.ne.is_empty() || spec.ne.len() > MAX_DIMS {
            return Err(bad(format!(
                "{} dimensions (1 to {MAX_DIMS} allowed)",
                spec.ne.len()
            )));
        }
        if !spec.ne[0].is_multiple_of(spec.ggml_type.block_size()) {
            return Err(bad(format!(
                "row of {} elements is not a multiple of the {} block size {}",
                spec.ne[0],
                spec.ggml_type,
                spec.ggml_type.block_size()
            )));
        }
        if !self.tensor_names.insert(spec.name.clone()) {
            return Err(bad("duplicate tensor name".into()));
        }
        self.tensors.push(spec);
        Ok(())
    }

    /// Size in bytes of everything before the data section (header, KVs, infos, padding).
    pub fn header_size(&self) -> u64 {
        let mut counter = CountingWriter {
            inner: io::sink(),
            count: 0,
        };
        // Writing into a sink cannot fail.
        let _ = self.write_header(&mut counter);
        counter.count
    }

    /// The header bytes (magic, KVs, tensor infos and padding), for writers that place tensor
    /// data themselves: tensor `i` starts at `header_bytes().len() + data_offsets()[i]`.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut counter = CountingWriter {
            inner: Vec::new(),
            count: 0,
        };
        // Writing into a Vec cannot fail.
        let _ = self.write_header(&mut counter);
        counter.inner
    }

    /// Offset of each tensor's data from the start of the data section, in write order (the
    /// offsets the tensor infos record).
    pub fn data_offsets(&self) -> Vec<u64> {
        let mut off = 0;
        self.tensors
            .iter()
            .map(|t| {
                let here = off;
                off += pad(t.nbytes(), self.alignment);
                here
            })
            .collect()
    }

    /// Size of the data section: every tensor padded to the alignment.
    pub fn data_size(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| pad(t.nbytes(), self.alignment))
            .sum()
    }

    /// Total size of the file that [`GgufWriter::write`] will produce.
    pub fn file_size(&self) -> u64 {
        self.header_size() + self.data_size()
    }

    /// Writes the file: header, then each tensor's data from `data(index, spec, out)`, which must
    /// write exactly `spec.nbytes()` bytes.
    pub fn write<W: Write>(
        &self,
        out: &mut W,
        mut data: impl FnMut(usize, &TensorSpec, &mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let io_err = |e: io::Error| Error::Build(format!("writing GGUF: {e}"));
        let mut w = CountingWriter {
            inner: out,
            count: 0,
        };
        self.write_header(&mut w).map_err(io_err)?;
        for (i, t) in self.tensors.iter().enumerate() {
            let start = w.count;
            data(i, t, &mut w)?;
            let written = w.count - start;
            if written != t.nbytes() {
                return Err(Error::Build(format!(
                    "internal error: tensor '{}' produced {written} bytes, expected {}",
                    t.name,
                    t.nbytes()
                )));
            }
            write_zeros(&mut w, pad(written, self.alignment) - written).map_err(io_err)?;
        }
        Ok(())
    }

    fn write_header<W: Write>(&self, w: &mut CountingWriter<W>) -> io::Result<()> {
        w.write_all(GGUF_MAGIC)?;
        w.write_all(&3u32.to_le_bytes())?;
        w.write_all(&(self.tensors.len() as u64).to_le_bytes())?;
        w.write_all(&(self.kvs.len() as u64).to_le_bytes())?;
        for (k, v) in &self.kvs {
            write_str(w, k.as_bytes())?;
            w.write_all(&(v.value_type() as u32).to_le_bytes())?;
            write_value(w, v)?;
        }
        for (t, offset) in self.tensors.iter().zip(self.data_offsets()) {
            write_str(w, t.name.as_bytes())?;
            w.write_all(&(t.ne.len() as u32).to_le_bytes())?;
            for d in &t.ne {
                w.write_all(&d.to_le_bytes())?;
            }
            w.write_all(&t.ggml_type.id().to_le_bytes())?;
            w.write_all(&offset.to_le_bytes())?;
        }
        let pos = w.count;
        write_zeros(w, pad(pos, self.alignment) - pos)
    }
}

fn write_zeros<W: Write>(w: &mut W, n: u64) -> io::Result<()> {
    const ZEROS: [u8; 64] = [0; 64];
    let mut left = n;
    while left > 0 {
        let k = left.min(64) as usize;
        w.write_all(&ZEROS[..k])?;
        left -= k as u64;
    }
    Ok(())
}

fn write_str<W: Write>(w: &mut W, s: &[u8]) -> io::Result<()> {
    w.write_all(&(s.len() as u64).to_le_bytes())?;
    w.write_all(s)
}

fn write_value<W: Write>(w: &mut W, v: &Value) -> io::Result<()> {
    match v {
        Value::U8(x) => w.write_all(&[*x]),
        Value::I8(x) => w.write_all(&x.to_le_bytes()),
        Value::U16(x) => w.write_all(&x.to_le_bytes()),
        Value::I16(x) => w.write_all(&x.to_le_bytes()),
        Value::U32(x) => w.write_all(&x.to_le_bytes()),
        Value::I32(x) => w.write_all(&x.to_le_bytes()),
        Value::F32(x) => w.write_all(&x.to_le_bytes()),
        Value::Bool(x) => w.write_all(&[u8::from(*x)]),
        Value::String(s) => write_str(w, s),
        Value::U64(x) => w.write_all(&x.to_le_bytes()),
        Value::I64(x) => w.write_all(&x.to_le_bytes()),
        Value::F64(x) => w.write_all(&x.to_le_bytes()),
        Value::Array(a) => write_array(w, a),
    }
}

fn write_array<W: Write>(w: &mut W, a: &Array) -> io::Result<()> {
    w.write_all(&(a.elem_type() as u32).to_le_bytes())?;
    w.write_all(&(a.len() as u64).to_le_bytes())?;
    macro_rules! each {
        ($v:expr) => {{
            let mut buf = Vec::with_capacity($v.len() * 8);
            for x in $v {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)
        }};
    }
    match a {
        Array::U8(v) => w.write_all(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => w.write_all(&v.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>()),
        Array::String(v) => {
            let mut buf = Vec::new();
            for s in v {
                buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
                buf.extend_from_slice(s);
            }
            w.write_all(&buf)
        }
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
