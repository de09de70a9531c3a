//! Whole-file quantization: llama-quantize's driver (notes §5.1, §5.5) over a memory-mapped
//! input and the streaming GGUF writer, with per-tensor error statistics.
//!
//! Memory stays around one output tensor plus small per-thread scratch buffers. Work is split
//! into fixed row chunks that depend only on the row length, so both the bytes and the
//! statistics are identical for any thread count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::block::{dequantize_row, is_supported, le16, quantize_row};
use super::error::QuantError;
use super::ftype::FileType;
use super::select::{ModelParams, Plan, plan};
use crate::formats::gguf::{GgmlType, GgufFile, GgufWriter, TensorInfo, TensorSpec, Value};
use crate::{Error, Result};

/// `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// Elements per work chunk (llama-quantize uses at least 32·512 per chunk; more amortises the
/// per-chunk overhead better).
const MIN_CHUNK_ELEMS: u64 = 64 * 1024;

/// How to quantize.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Target file type.
    pub ftype: FileType,
    /// Worker threads; 0 means every core.
    pub threads: usize,
    /// Re-quantize tensors that are already quantized (lossy twice), like `--allow-requantize`.
    pub allow_requantize: bool,
    /// Checked between tensors and chunks; when set, quantization stops with `Interrupted`.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl QuantizeOptions {
    /// Options for `ftype` with every core, no requantization and no cancellation.
    pub fn new(ftype: FileType) -> QuantizeOptions {
        QuantizeOptions {
            ftype,
            threads: 0,
            allow_requantize: false,
            cancel: None,
        }
    }
}

/// What happened to one tensor.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TensorReport {
    /// Tensor name.
    pub name: String,
    /// Dimensions in ggml order (`ne[0]` first), as written to the output.
    pub shape: Vec<u64>,
    /// Type in the input (`f16`, `bf16`, …).
    pub source_type: String,
    /// Type in the output (`q4_K`, `q6_K`, …).
    pub target_type: String,
    /// Number of elements.
    pub elements: u64,
    /// Bytes of data in the output (without padding).
    pub bytes: u64,
    /// Whether the rules' type did not fit the row length and a fallback type was used.
    pub fallback: bool,
    /// Root-mean-square error of the output's values against the input's (0 when copied).
    pub rmse: f64,
    /// Largest absolute error of any element (0 when copied).
    pub max_abs_error: f64,
}

/// Summary of a quantization run, serialisable into action records and `release.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct QuantReport {
    /// llama-quantize's name of the file type (`Q4_K_M`).
    pub ftype: String,
    /// `general.file_type` written to the output.
    pub file_type_id: u32,
    /// Tensors in output order.
    pub tensors: Vec<TensorReport>,
    /// Tensors that needed a shape fallback.
    pub n_fallback: usize,
    /// Size of the input file in bytes.
    pub input_bytes: u64,
    /// Size of the output file in bytes.
    pub output_bytes: u64,
    /// Elements in all tensors.
    pub elements: u64,
    /// Elements whose type changed.
    pub converted_elements: u64,
    /// RMSE over all elements (copied tensors count as exact).
    pub rmse: f64,
    /// Largest absolute error over all elements.
    pub max_abs_error: f64,
    /// Output bits per weight over all elements.
    pub bits_per_weight: f64,
}

/// Quantizes the GGUF at `input` into `output` (written in full; the caller makes it atomic).
pub fn quantize_file(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<QuantReport> {
    let started = Instant::now();
    if same_file(input, output) {
        return Err(Error::Usage(
            QuantError::SameFile(output.to_path_buf()).to_string(),
        ));
    }
    let src = GgufFile::open(input)?;
    let fmt = |e: QuantError| match e {
        QuantError::Interrupted => Error::Interrupted,
        e => Error::format(input, e.to_string()),
    };
    let params = ModelParams::from_gguf(&src).map_err(fmt)?;
    let plan = plan(&src.tensors, &params, opts.ftype).map_err(fmt)?;
    check_plan(&src, &plan, opts).map_err(fmt)?;
    let writer = output_writer(&src, &plan, opts.ftype)?;

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tinylm-quant-{i}"))
        .build()
        .map_err(|e| Error::Build(format!("cannot start {threads} quantization threads: {e}")))?;

    let file = File::create(output).map_err(|e| Error::io(output, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let cancel = opts.cancel.clone();
    let mut reports: Vec<TensorReport> = Vec::with_capacity(plan.tensors.len());
    let mut failure: Option<QuantError> = None;
    let n = plan.tensors.len();
    let write_result = writer.write(&mut out, |i, spec, w| {
        let choice = &plan.tensors[i];
        let t = &src.tensors[choice.input_index];
        if cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            failure = Some(QuantError::Interrupted);
            return Err(Error::Interrupted);
        }
        let data = src.tensor_data(t);
        let result = pool.install(|| process_tensor(t, data, choice.target, cancel.as_deref()));
        let (bytes, stats) = match result {
            Ok(r) => r,
            Err(e) => {
                let err = fmt(e.clone_shallow());
                failure = Some(e);
                return Err(err);
            }
        };
        let bytes_out: &[u8] = bytes.as_deref().unwrap_or(data);
        w.write_all(bytes_out).map_err(|e| Error::io(output, e))?;
        tracing::info!(
            "[{:>4}/{n}] {:<40} {:>6} -> {:<6} rmse {:.3e}",
            i + 1,
            t.name,
            t.ggml_type.name(),
            spec.ggml_type.name(),
            stats.rmse(),
        );
        reports.push(TensorReport {
            name: t.name.clone(),
            shape: spec.ne.clone(),
            source_type: t.ggml_type.name().to_string(),
            target_type: spec.ggml_type.name().to_string(),
            elements: t.n_elements(),
            bytes: bytes_out.len() as u64,
            fallback: choice.fallback,
            rmse: stats.rmse(),
            max_abs_error: stats.max_abs,
        });
        Ok(())
    });
    if let Err(e) = write_result {
        return Err(match failure {
            Some(QuantError::Interrupted) => Error::Interrupted,
            _ => e,
        });
    }
    out.flush().map_err(|e| Error::io(output, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(output, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(output, e))?;

    let output_bytes = writer.file_size();
    let elements: u64 = reports.iter().map(|r| r.elements).sum();
    let converted_elements = reports
        .iter()
        .filter(|r| r.source_type != r.target_type)
        .map(|r| r.elements)
        .sum();
    let sum_sq: f64 = reports
        .iter()
        .map(|r| r.rmse * r.rmse * r.elements as f64)
        .sum();
    let data_bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    let report = QuantReport {
        ftype: opts.ftype.name().to_string(),
        file_type_id: opts.ftype.id(),
        n_fallback: plan.n_fallback,
        input_bytes: src.bytes().len() as u64,
        output_bytes,
        elements,
        converted_elements,
        rmse: if elements > 0 {
            (sum_sq / elements as f64).sqrt()
        } else {
            0.0
        },
        max_abs_error: reports.iter().map(|r| r.max_abs_error).fold(0.0, f64::max),
        bits_per_weight: if elements > 0 {
            data_bytes as f64 * 8.0 / elements as f64
        } else {
            0.0
        },
        tensors: reports,
    };
    if plan.n_fallback > 0 {
        tracing::warn!(
            "{} of {} tensor(s) required fallback quantization",
            plan.n_fallback,
            plan.tensors.len()
        );
    }
    tracing::info!(
        "quantized {} to {} ({}) in {:.2}s",
        input.display(),
        output.display(),
        opts.ftype,
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}

impl QuantError {
    /// A copy for error reporting (the variants hold only strings and paths).
    fn clone_shallow(&self) -> QuantError {
        match self {
            QuantError::Metadata { key, msg } => QuantError::Metadata {
                key: key.clone(),
                msg: msg.clone(),
            },
            QuantError::Tensor { name, msg } => QuantError::Tensor {
                name: name.clone(),
                msg: msg.clone(),
            },
            QuantError::SameFile(p) => QuantError::SameFile(p.clone()),
            QuantError::Interrupted => QuantError::Interrupted,
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuses what llama-quantize refuses before writing anything: requantization and types that
/// cannot be converted.
fn check_plan(src: &GgufFile, plan: &Plan, opts: &QuantizeOptions) -> Result<(), QuantError> {
    for c in &plan.tensors {
        let t = &src.tensors[c.input_index];
        if c.target == t.ggml_type {
            continue;
        }
        if t.ggml_type.is_quantized() && !opts.allow_requantize {
            return Err(QuantError::tensor(
                &t.name,
                format!(
                    "requantizing from type {} is disabled; quantize the f16/bf16/f32 model \
                     instead, or pass --allow-requantize",
                    t.ggml_type
                ),
            ));
        }
        if !is_supported(t.ggml_type) {
            return Err(QuantError::tensor(
                &t.name,
                format!("cannot convert tensor type {} to {}", t.ggml_type, c.target),
            ));
        }
        if !is_supported(c.target) {
            return Err(QuantError::tensor(
                &t.name,
                format!("tinylm cannot produce type {}", c.target),
            ));
        }
    }
    Ok(())
}

/// Header of the output: the input's KVs in order, split keys removed, then
/// `general.quantization_version` and `general.file_type` moved to the end.
fn output_writer(src: &GgufFile, plan: &Plan, ftype: FileType) -> Result<GgufWriter> {
    let mut w = GgufWriter::new();
    for (k, v) in &src.metadata {
        w.add_kv(k.clone(), v.clone());
    }
    w.set_kv_last(
        "general.quantization_version",
        Value::U32(QUANTIZATION_VERSION),
    );
    w.set_kv_last("general.file_type", Value::U32(ftype.id()));
    for k in ["split.no", "split.count", "split.tensors.count"] {
        w.remove_kv(k);
    }
    for c in &plan.tensors {
        let t = &src.tensors[c.input_index];
        w.add_tensor(TensorSpec {
            name: t.name.clone(),
            ne: t.ne[..t.ggml_n_dims()].to_vec(),
            ggml_type: c.target,
        })
        .map_err(|e| Error::format(&src.path, e.to_string()))?;
    }
    Ok(w)
}

/// Error statistics of a tensor or chunk.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    sum_sq: f64,
    max_abs: f64,
    n: u64,
}

impl Stats {
    fn merge(self, o: Stats) -> Stats {
        Stats {
            sum_sq: self.sum_sq + o.sum_sq,
            max_abs: self.max_abs.max(o.max_abs),
            n: self.n + o.n,
        }
    }

    fn rmse(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.sum_sq / self.n as f64).sqrt()
        }
    }
}

/// Converts or copies one tensor. Returns the new bytes (`None` when copied unchanged) and the
/// error statistics.
fn process_tensor(
    t: &TensorInfo,
    data: &[u8],
    target: GgmlType,
    cancel: Option<&AtomicBool>,
) -> Result<(Option<Vec<u8>>, Stats), QuantError> {
    let ne0 = t.ne.first().copied().unwrap_or(1).max(1);
    let nrows = t.n_elements() / ne0;
    let src_row = t.ggml_type.bytes_for(ne0).unwrap_or(0) as usize;
    let rows_per_chunk = MIN_CHUNK_ELEMS.div_ceil(ne0).max(1) as usize;

    if target == t.ggml_type {
        // Copied as is, but validated like llama.cpp's loader does (non-finite values).
        let bad = data
            .par_chunks(src_row.max(1) * rows_per_chunk)
            .enumerate()
            .find_first(|(_, c)| !input_is_finite(t.ggml_type, c))
            .map(|(i, _)| i);
        if bad.is_some() {
            return Err(invalid_input(t));
        }
        return Ok((None, Stats::default()));
    }

    let dst_row = target.bytes_for(ne0).ok_or_else(|| {
        QuantError::tensor(
            &t.name,
            format!("row of {ne0} elements does not fit type {target}"),
        )
    })? as usize;
    let mut out = vec![0u8; dst_row * nrows as usize];
    let stats: Vec<Result<Stats, QuantError>> = out
        .par_chunks_mut(dst_row * rows_per_chunk)
        .zip(data.par_chunks(src_row * rows_per_chunk))
        .map_init(
            || Scratch::new(rows_per_chunk * ne0 as usize),
            |scratch, (dst, src)| {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(QuantError::Interrupted);
                }
                convert_chunk(t, target, src, dst, scratch)
            },
        )
        .collect();
    let mut total = Stats::default();
    for s in stats {
        total = total.merge(s?);
    }
    Ok((Some(out), total))
}

/// Per-thread buffers reused across chunks.
struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            x: vec![0.0; n],
            y: vec![0.0; n],
        }
    }
}

fn convert_chunk(
    t: &TensorInfo,
    target: GgmlType,
    src: &[u8],
    dst: &mut [u8],
    s: &mut Scratch,
) -> Result<Stats, QuantError> {
    if !input_is_finite(t.ggml_type, src) {
        return Err(invalid_input(t));
    }
    let n = src.len() / t.ggml_type.type_size() as usize * t.ggml_type.block_size() as usize;
    let x = &mut s.x[..n];
    let y = &mut s.y[..n];
    if !dequantize_row(t.ggml_type, src, x) {
        return Err(QuantError::tensor(
            &t.name,
            format!("cannot convert tensor type {}", t.ggml_type),
        ));
    }
    if !quantize_row(target, x, dst) {
        return Err(QuantError::tensor(
            &t.name,
            format!("tinylm cannot produce type {target}"),
        ));
    }
    if !output_is_finite(target, dst) {
        return Err(QuantError::tensor(
            &t.name,
            format!(
                "quantized data validation failed: values overflow {target} (scales or values \
                 became infinite); the weights are too large for this type"
            ),
        ));
    }
    dequantize_row(target, dst, y);
    let mut st = Stats {
        n: n as u64,
        ..Stats::default()
    };
    // Accumulate per 256 elements in f32, then in f64: fast and deterministic.
    for (xa, ya) in x.chunks(256).zip(y.chunks(256)) {
        let mut sq = 0.0f32;
        let mut mx = 0.0f32;
        for (a, b) in xa.iter().zip(ya) {
            let d = (a - b).abs();
            sq += d * d;
            mx = mx.max(d);
        }
        st.sum_sq += f64::from(sq);
        st.max_abs = st.max_abs.max(f64::from(mx));
    }
    Ok(st)
}

fn invalid_input(t: &TensorInfo) -> QuantError {
    QuantError::tensor(
        &t.name,
        "has invalid data (NaN or infinity); llama.cpp refuses such files",
    )
}

/// Whether the input bytes hold only finite values (`ggml_validate_row_data` on load).
fn input_is_finite(ty: GgmlType, b: &[u8]) -> bool {
    match ty {
        GgmlType::F32 => b
            .chunks_exact(4)
            .all(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7f80_0000 != 0x7f80_0000),
        GgmlType::F16 => b
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 != 0x7c00),
        GgmlType::BF16 => b
            .chunks_exact(2)
            .all(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7f80 != 0x7f80),
        t => output_is_finite(t, b),
    }
}

/// Whether the fp16 scales of quantized blocks (or fp16/bf16 values) are finite.
fn output_is_finite(ty: GgmlType, b: &[u8]) -> bool {
    let fp16_ok = |h: u16| h & 0x7c00 != 0x7c00;
    // Offsets of the fp16 fields inside each block.
    let (bytes, fields): (usize, &[usize]) = match ty {
        GgmlType::F16 => return b.chunks_exact(2).all(|c| fp16_ok(le16(c, 0))),
        GgmlType::BF16 => return b.chunks_exact(2).all(|c| le16(c, 0) & 0x7f80 != 0x7f80),
        GgmlType::F32 => return input_is_finite(GgmlType::F32, b),
        GgmlType::Q4_0 => (18, &[0]),
        GgmlType::Q4_1 => (20, &[0, 2]),
        GgmlType::Q5_0 => (22, &[0]),
        GgmlType::Q5_1 => (24, &[0, 2]),
        GgmlType::Q8_0 => (34, &[0]),
        GgmlType::Q2K => (84, &[80, 82]),
        GgmlType::Q3K => (110, &[108]),
        GgmlType::Q4K => (144, &[0, 2]),
        GgmlType::Q5K => (176, &[0, 2]),
        GgmlType::Q6K => (210, &[208]),
        _ => return true,
    };
    b.chunks_exact(bytes)
        .all(|blk| fields.iter().all(|&o| fp16_ok(le16(blk, o))))
}
