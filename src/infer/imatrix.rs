//! Importance matrices like `llama-imatrix`: for every `blk.*` weight (and `output.weight` with
//! `process_output`), the sum over evaluated tokens of the squared input activations per
//! column, and the number of tokens. Written in llama.cpp's GGUF imatrix format
//! (`<name>.in_sum2` / `<name>.counts`, `imatrix.*` keys) or its legacy `.dat` format
//! (`tools/imatrix/imatrix.cpp`, `save_imatrix` / `save_imatrix_legacy`).

use std::collections::BTreeMap;
use std::io::Write;

use super::InferError;
use super::eval::{EvalOptions, plan_chunks};
use super::model::{MatmulObserver, Model};
use super::weights::Weight;
use crate::formats::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};

/// Statistics of one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Per input column, Σ x².
    pub in_sum2: Vec<f32>,
    /// Tokens (activation rows) accumulated.
    pub count: u64,
}

/// A collected importance matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Imatrix {
    /// Entries by weight name (sorted, as llama-imatrix writes them).
    pub entries: BTreeMap<String, Entry>,
    /// Chunks evaluated (`imatrix.chunk_count`).
    pub chunk_count: u32,
    /// Tokens per chunk (`imatrix.chunk_size`).
    pub chunk_size: u32,
    /// Text files it was computed on (`imatrix.datasets`).
    pub datasets: Vec<String>,
}

struct Collector {
    process_output: bool,
    entries: BTreeMap<String, Entry>,
}

impl MatmulObserver for Collector {
    fn observe(&mut self, w: &Weight, x: &[f32], rows: usize) {
        // llama-imatrix skips matmuls of fewer than 16 rows (single-token decoding).
        if rows < 16 {
            return;
        }
        if !(w.name.starts_with("blk.") || (self.process_output && w.name == "output.weight")) {
            return;
        }
        let e = self.entries.entry(w.name.clone()).or_insert_with(|| Entry {
            in_sum2: vec![0.0; w.cols],
            count: 0,
        });
        // Row by row in f32, in token order, like llama-imatrix's accumulation.
        for row in x.chunks_exact(w.cols) {
            for (a, &v) in e.in_sum2.iter_mut().zip(row) {
                *a += v * v;
            }
        }
        e.count += rows as u64;
    }
}

/// Runs `model` over `tokens` in chunks like llama-imatrix (same tokenization, chunking and BOS
/// replacement as [`super::eval::perplexity`]) and collects the statistics. `dataset` is
/// recorded in the file.
pub fn collect(
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &EvalOptions,
    process_output: bool,
    dataset: &str,
    progress: &mut dyn FnMut(usize),
) -> Result<Imatrix, InferError> {
    let n_chunks = plan_chunks(tokens.len(), opts)?;
    let n_ctx = opts.n_ctx;
    let mut c = Collector {
        process_output,
        entries: BTreeMap::new(),
    };
    let mut session = model.session_with(n_ctx, opts.numerics);
    // The output rows are only needed when the output matmul is collected.
    let first_logit = if process_output { 0 } else { n_ctx };
    for i in 0..n_chunks {
        let mut chunk = tokens[i * n_ctx..(i + 1) * n_ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.clear();
        session.eval_observed(&chunk, first_logit, Some(&mut c))?;
        progress((i + 1) * n_ctx);
    }
    for (name, e) in &c.entries {
        if e.in_sum2.iter().any(|v| !v.is_finite()) {
            return Err(InferError::Input(format!(
                "non-finite activations in {name}: the model produces inf/NaN on this text"
            )));
        }
    }
    Ok(Imatrix {
        entries: c.entries,
        chunk_count: n_chunks as u32,
        chunk_size: n_ctx as u32,
        datasets: vec![dataset.to_string()],
    })
}

impl Imatrix {
    /// The GGUF imatrix file: `general.type = imatrix`, `imatrix.datasets`,
    /// `imatrix.chunk_count`, `imatrix.chunk_size`, then per weight (sorted) `<name>.in_sum2`
    /// (F32, one value per column) and `<name>.counts` (F32, one value).
    pub fn write_gguf(&self, out: &mut dyn Write) -> crate::Result<()> {
        let mut w = GgufWriter::new();
        w.add_kv("general.type", Value::str("imatrix"));
        w.add_kv(
            "imatrix.datasets",
            Value::Array(Array::strings(&self.datasets)),
        );
        w.add_kv("imatrix.chunk_count", Value::U32(self.chunk_count));
        w.add_kv("imatrix.chunk_size", Value::U32(self.chunk_size));
        let mut data: Vec<Vec<f32>> = Vec::new();
        for (name, e) in &self.entries {
            // ggml writes n_dims without trailing 1s: [cols] and [1].
            w.add_tensor(TensorSpec {
                name: format!("{name}.in_sum2"),
                ne: vec![e.in_sum2.len() as u64],
                ggml_type: GgmlType::F32,
            })?;
            data.push(e.in_sum2.clone());
            w.add_tensor(TensorSpec {
                name: format!("{name}.counts"),
                ne: vec![1],
                ggml_type: GgmlType::F32,
            })?;
            data.push(vec![e.count as f32]);
        }
        let mut out = out;
        w.write(&mut out, |i, _, o| {
            let bytes: Vec<u8> = data[i].iter().flat_map(|v| v.to_le_bytes()).collect();
            o.write_all(&bytes)
                .map_err(|e| crate::Error::Build(format!("writing imatrix: {e}")))
        })
    }

    /// The legacy `.dat` format: entry count, then per weight (sorted) name, `ncall` (chunks,
    /// rounded up), value count and the per-column means scaled by `ncall`; then the chunk
    /// count and the dataset name.
    pub fn write_dat(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let cs = self.chunk_size.max(1) as u64;
        out.write_all(&(self.entries.len() as i32).to_le_bytes())?;
        for (name, e) in &self.entries {
            out.write_all(&(name.len() as i32).to_le_bytes())?;
            out.write_all(name.as_bytes())?;
            let ncall = e.count.div_ceil(cs) as i32;
            out.write_all(&ncall.to_le_bytes())?;
            out.write_all(&(e.in_sum2.len() as i32).to_le_bytes())?;
            let (count, ones) = if e.count == 0 {
                (1.0f32, true)
            } else {
                (e.count as f32, false)
            };
            for &v in &e.in_sum2 {
                let v = if ones { 1.0 } else { v };
                out.write_all(&((v / count) * ncall as f32).to_le_bytes())?;
            }
        }
        out.write_all(&(self.chunk_count as i32).to_le_bytes())?;
        let ds = self.datasets.last().map_or("", String::as_str);
        out.write_all(&(ds.len() as i32).to_le_bytes())?;
        out.write_all(ds.as_bytes())
    }
}
