//! Whole-file quantization: llama-quantize's driver (`docs/quantization.md`) over a memory-mapped
//! input and the streaming GGUF writer, with per-tensor error statistics.
//!
//! Memory stays around one output tensor plus small per-thread scratch buffers. Work is split
//! into fixed row chunks that depend only on the row length, so both the bytes and the
//! statistics are identical for any thread count.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use super::block::{dequantize_row, is_supported, le16, quantize_row, quantize_rows_weighted};
use super::error::QuantError;
use super::ftype::FileType;
use super::imatrix::{Imatrix, ImatrixFormat};
use super::recipe::{CompiledRecipe, Recipe};
use super::select::{ModelParams, Plan, PlanOptions, plan_with};
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
    /// Per-tensor overrides (`--tensor-type`, `--pure`, …).
    pub recipe: Recipe,
    /// Importance weights (`--imatrix`).
    pub imatrix: Option<Arc<Imatrix>>,
}

impl QuantizeOptions {
    /// Options for `ftype` with every core, no requantization and no cancellation.
    pub fn new(ftype: FileType) -> QuantizeOptions {
        QuantizeOptions {
            ftype,
            threads: 0,
            allow_requantize: false,
            cancel: None,
            recipe: Recipe::default(),
            imatrix: None,
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
    /// Whether importance weights from the imatrix were used for this tensor.
    #[serde(default)]
    pub imatrix: bool,
}

/// Which importance matrix a quantization used (recorded in reports and releases).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ImatrixUse {
    /// The file as given (also written to the output as `quantize.imatrix.file`).
    pub file: String,
    /// blake3 of the imatrix file.
    pub digest: String,
    /// Its format.
    pub format: ImatrixFormat,
    /// The calibration datasets it records.
    pub datasets: Vec<String>,
    /// Chunks it was computed on (0 if unknown).
    pub chunk_count: i32,
    /// Tokens per chunk (0 if unknown).
    pub chunk_size: u32,
    /// Entries in the file.
    pub entries: usize,
    /// Entries left after `--include-weights` / `--exclude-weights`.
    pub entries_used: usize,
    /// Tensors quantized with importance weights.
    pub tensors_weighted: usize,
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
    /// The importance matrix used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imatrix: Option<ImatrixUse>,
    /// The per-tensor recipe, if it is not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub recipe: Option<Recipe>,
}

/// Quantizes the GGUF at `input` into `output` (written in full; the caller makes it atomic).
pub fn quantize_file(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<QuantReport> {
    let started = Instant::now();
    if crate::fsutil::same_file(input, output) {
        return Err(Error::Usage(
            QuantError::SameFile(output.to_path_buf()).to_string(),
        ));
    }
    let src = GgufFile::open(input)?;
    let fmt = |e: QuantError| match e {
        QuantError::Interrupted => Error::Interrupted,
        e => Error::format(input, e.to_string()),
    };
    let recipe = opts
        .recipe
        .compile()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let weights = ImatrixWeights::select(opts, &recipe)?;
    let params = ModelParams::from_gguf(&src).map_err(fmt)?;
    let plan = plan_with(
        &src.tensors,
        &params,
        opts.ftype,
        PlanOptions {
            recipe: &recipe,
            has_imatrix: weights.is_some(),
        },
    )
    .map_err(fmt)?;
    let tensor_weights = check_plan(&src, &plan, opts, weights.as_ref())?;
    let writer = output_writer(&src, &plan, opts.ftype, weights.as_ref())?;

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

    // Positioned writes: the header first, then every chunk at its final offset, from the
    // worker that produced it. Padding stays as the zeros of the pre-sized file.
    // The header (with its vocabulary arrays) is serialised once; sizes and offsets follow.
    let header = writer.header_bytes();
    let data_start = header.len() as u64;
    let output_bytes = data_start + writer.data_size();
    let file = File::create(output).map_err(|e| Error::io(output, e))?;
    file.set_len(output_bytes)
        .map_err(|e| Error::io(output, e))?;
    write_at(&file, &header, 0).map_err(|e| Error::io(output, e))?;
    let offsets: Vec<u64> = writer
        .data_offsets()
        .iter()
        .map(|o| data_start + o)
        .collect();
    let sink = Sink {
        file: &file,
        input,
        output,
    };
    let cancel = opts.cancel.as_deref();
    let n = plan.tensors.len();
    let mut reports: Vec<TensorReport> = Vec::with_capacity(n);
    for (i, (choice, spec)) in plan.tensors.iter().zip(writer.tensors()).enumerate() {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::Interrupted);
        }
        let t = &src.tensors[choice.input_index];
        let data = src.tensor_data(t);
        let qw = tensor_weights[i];
        let stats =
            pool.install(|| process_tensor(&sink, t, data, choice.target, qw, offsets[i], cancel))?;
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
            bytes: spec.nbytes(),
            fallback: choice.fallback,
            rmse: stats.rmse(),
            max_abs_error: stats.max_abs,
            imatrix: qw.is_some(),
        });
    }
    // No fsync here: the caller decides about durability (the engine renames into its cache).
    drop(file);

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
        imatrix: weights.as_ref().map(|w| ImatrixUse {
            file: w.imatrix.file.clone(),
            digest: w.imatrix.digest.clone(),
            format: w.imatrix.format,
            datasets: w.imatrix.datasets.clone(),
            chunk_count: w.imatrix.chunk_count,
            chunk_size: w.imatrix.chunk_size,
            entries: w.imatrix.entries.len(),
            entries_used: w.entries.len(),
            tensors_weighted: reports.iter().filter(|r| r.imatrix).count(),
        }),
        recipe: (!opts.recipe.is_default()).then(|| opts.recipe.clone()),
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

/// The imatrix entries in use after `--include-weights` / `--exclude-weights`.
struct ImatrixWeights<'a> {
    imatrix: &'a Imatrix,
    entries: std::collections::BTreeMap<&'a str, &'a [f32]>,
}

impl<'a> ImatrixWeights<'a> {
    /// llama-quantize's `prepare_imatrix` and its checks: metadata present, values finite.
    /// `None` when no imatrix is given or the filters leave nothing (then it is not used at all).
    fn select(opts: &'a QuantizeOptions, recipe: &CompiledRecipe) -> Result<Option<Self>> {
        let Some(m) = opts.imatrix.as_deref() else {
            return Ok(None);
        };
        let path = Path::new(&m.file);
        if m.format == ImatrixFormat::Gguf && !m.has_metadata {
            return Err(Error::format(
                path,
                "missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, \
                 imatrix.chunk_size); llama-quantize refuses such files",
            ));
        }
        let r = &recipe.recipe;
        let entries = m.select(&r.include_weights, &r.exclude_weights);
        if entries.is_empty() {
            return Ok(None);
        }
        for (name, v) in &entries {
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(Error::format(
                    path,
                    format!("imatrix contains non-finite value {x} (entry '{name}')"),
                ));
            }
        }
        Ok(Some(ImatrixWeights {
            imatrix: m,
            entries,
        }))
    }
}

/// How to get an importance matrix, for refusals.
const IMATRIX_HINT: &str = "compute one with `tinylm imatrix` (or llama.cpp's llama-imatrix) and \
     pass it with --imatrix FILE (tinylm.toml cannot name one yet)";

/// Refuses what llama-quantize refuses before writing anything (a missing or mismatched
/// imatrix, requantization, types that cannot be converted), in its order, and returns each
/// output tensor's importance weights.
fn check_plan<'a>(
    src: &GgufFile,
    plan: &Plan,
    opts: &QuantizeOptions,
    weights: Option<&ImatrixWeights<'a>>,
) -> Result<Vec<Option<&'a [f32]>>> {
    let usage = |name: &str, msg: String| Error::Usage(QuantError::tensor(name, msg).to_string());
    if weights.is_none() {
        for c in &plan.tensors {
            if c.quantizable && c.requires_imatrix {
                let t = &src.tensors[c.input_index];
                return Err(Error::Usage(format!(
                    "{} needs an importance matrix: tensor '{}' would be {}, which llama-quantize \
                     refuses to produce without one; {IMATRIX_HINT}",
                    opts.ftype, t.name, c.target
                )));
            }
        }
    }
    let mut out = Vec::with_capacity(plan.tensors.len());
    for c in &plan.tensors {
        let t = &src.tensors[c.input_index];
        if c.target == t.ggml_type {
            out.push(None);
            continue;
        }
        let mut qw = None;
        if let Some(w) = weights
            && let Some(&v) = w.entries.get(t.name.as_str())
        {
            let ne0 = t.ne.first().copied().unwrap_or(0);
            let ne2 = t.ne.get(2).copied().unwrap_or(1);
            let want = ne0.saturating_mul(ne2);
            if v.len() as u64 == want {
                qw = Some(v);
            } else if !(t.name == "token_embd.weight" || t.name == "per_layer_token_embd.weight") {
                return Err(usage(
                    &t.name,
                    format!(
                        "imatrix {} has {} values for it but the tensor needs {want} (ne0 {ne0} × \
                         {ne2} experts); the imatrix was computed for a different model",
                        w.imatrix.file,
                        v.len()
                    ),
                ));
            }
        }
        if qw.is_none() && c.requires_imatrix {
            return Err(usage(
                &t.name,
                format!(
                    "the importance matrix has no entry for it, and {} in a very low-bit \
                     quantization needs one (llama-quantize: 'Missing importance matrix'); use an \
                     imatrix computed on this model without --include-weights/--exclude-weights \
                     dropping it, or {IMATRIX_HINT}",
                    c.target
                ),
            ));
        }
        if qw.is_none() && super::block::requires_imatrix(c.target) {
            // ggml itself asserts here (token embeddings and output are exempt from the check
            // above, but their quantizer still needs weights).
            return Err(usage(
                &t.name,
                format!(
                    "type {} cannot be produced without importance weights and the imatrix has \
                     no entry for this tensor; choose another type for it",
                    c.target
                ),
            ));
        }
        if t.ggml_type.is_quantized() && !opts.allow_requantize {
            return Err(Error::format(
                &src.path,
                QuantError::tensor(
                    &t.name,
                    format!(
                        "requantizing from type {} is disabled; quantize the f16/bf16/f32 model \
                         instead, or pass --allow-requantize",
                        t.ggml_type
                    ),
                )
                .to_string(),
            ));
        }
        if !is_supported(t.ggml_type) {
            return Err(Error::format(
                &src.path,
                QuantError::tensor(
                    &t.name,
                    format!("cannot convert tensor type {} to {}", t.ggml_type, c.target),
                )
                .to_string(),
            ));
        }
        if !is_supported(c.target) {
            return Err(Error::format(
                &src.path,
                QuantError::tensor(&t.name, format!("tinylm cannot produce type {}", c.target))
                    .to_string(),
            ));
        }
        out.push(qw);
    }
    Ok(out)
}

/// Header of the output: the input's KVs in order, split keys removed, then
/// `general.quantization_version` and `general.file_type` moved to the end.
fn output_writer(
    src: &GgufFile,
    plan: &Plan,
    ftype: FileType,
    weights: Option<&ImatrixWeights<'_>>,
) -> Result<GgufWriter> {
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
    if let Some(iw) = weights {
        // llama-quantize passes these as KV overrides: strings cut to 127 bytes, integers as u32.
        let m = iw.imatrix;
        let cut = |s: &str| Value::String(s.as_bytes()[..s.len().min(127)].to_vec());
        w.set_kv_last("quantize.imatrix.file", cut(&m.file));
        if let Some(d) = m.datasets.first() {
            w.set_kv_last("quantize.imatrix.dataset", cut(d));
        }
        w.set_kv_last(
            "quantize.imatrix.entries_count",
            Value::U32(iw.entries.len() as u32),
        );
        if m.chunk_count > 0 {
            w.set_kv_last(
                "quantize.imatrix.chunks_count",
                Value::U32(m.chunk_count as u32),
            );
        }
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

/// Where tensor data goes, and the paths for error messages.
struct Sink<'a> {
    file: &'a File,
    input: &'a Path,
    output: &'a Path,
}

impl Sink<'_> {
    fn write(&self, buf: &[u8], offset: u64) -> Result<()> {
        write_at(self.file, buf, offset).map_err(|e| Error::io(self.output, e))
    }

    fn tensor_error(&self, t: &TensorInfo, msg: impl Into<String>) -> Error {
        Error::format(self.input, QuantError::tensor(&t.name, msg).to_string())
    }
}

/// Writes all of `buf` at `offset`.
#[cfg(unix)]
fn write_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(buf, offset)
}

/// Writes all of `buf` at `offset`.
#[cfg(windows)]
fn write_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = f.seek_write(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Converts or copies one tensor to `offset` in the output and returns its error statistics.
fn process_tensor(
    sink: &Sink<'_>,
    t: &TensorInfo,
    data: &[u8],
    target: GgmlType,
    qw: Option<&[f32]>,
    offset: u64,
    cancel: Option<&AtomicBool>,
) -> Result<Stats> {
    let ne0 = t.ne.first().copied().unwrap_or(1).max(1);
    let src_row = t.ggml_type.bytes_for(ne0).unwrap_or(0).max(1) as usize;
    let rows_per_chunk = MIN_CHUNK_ELEMS.div_ceil(ne0).max(1) as usize;
    let src_chunk = src_row * rows_per_chunk;
    let interrupted = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));

    if target == t.ggml_type {
        // Copied as is, but validated as llama.cpp's loader does (no NaN or infinity).
        data.par_chunks(src_chunk)
            .enumerate()
            .try_for_each(|(k, c)| {
                if interrupted() {
                    return Err(Error::Interrupted);
                }
                if !input_is_finite(t.ggml_type, c) {
                    return Err(sink.tensor_error(t, INVALID_INPUT));
                }
                sink.write(c, offset + (k * src_chunk) as u64)
            })?;
        return Ok(Stats::default());
    }

    let dst_row = target.bytes_for(ne0).ok_or_else(|| {
        sink.tensor_error(t, format!("row of {ne0} elements does not fit {target}"))
    })? as usize;
    let dst_chunk = dst_row * rows_per_chunk;
    let per_chunk: Vec<Result<Stats>> = data
        .par_chunks(src_chunk)
        .enumerate()
        .map_init(
            || Scratch::new(rows_per_chunk * ne0 as usize, dst_chunk),
            |scratch, (k, src)| {
                if interrupted() {
                    return Err(Error::Interrupted);
                }
                let rows = src.len() / src_row;
                let dst = &mut scratch.q[..rows * dst_row];
                let weights = qw.map(|w| RowWeights {
                    qw: w,
                    ne0: ne0 as usize,
                    rows_per_matrix: t.ne.get(1).copied().unwrap_or(1).max(1) as usize,
                    first_row: k * rows_per_chunk,
                });
                let st =
                    convert_chunk(t, target, weights, src, dst, &mut scratch.x, &mut scratch.y)
                        .map_err(|msg| sink.tensor_error(t, msg))?;
                sink.write(dst, offset + (k * dst_chunk) as u64)?;
                Ok(st)
            },
        )
        .collect();
    let mut total = Stats::default();
    for s in per_chunk {
        total = total.merge(s?);
    }
    Ok(total)
}

/// Per-thread buffers reused across chunks.
struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
    q: Vec<u8>,
}

impl Scratch {
    fn new(n: usize, bytes: usize) -> Scratch {
        Scratch {
            x: vec![0.0; n],
            y: vec![0.0; n],
            q: vec![0; bytes],
        }
    }
}

/// Adds the squared and largest absolute differences of `x` and `y` to `st`; returns whether
/// every `x` is finite (llama.cpp's loader rejects NaN and infinity).
///
/// Eight f32 partial sums per 256 elements, then f64: deterministic for a given chunking and
/// vectorisable.
fn accumulate_errors(x: &[f32], y: &[f32], st: &mut Stats) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        return unsafe { accumulate_errors_avx2(x, y, st) };
    }
    accumulate_errors_impl(x, y, st)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn accumulate_errors_avx2(x: &[f32], y: &[f32], st: &mut Stats) -> bool {
    accumulate_errors_impl(x, y, st)
}

#[inline(always)]
fn accumulate_errors_impl(x: &[f32], y: &[f32], st: &mut Stats) -> bool {
    let mut finite = true;
    for (xa, ya) in x.chunks(256).zip(y.chunks(256)) {
        let mut sq = [0.0f32; 8];
        let mut mx = [0.0f32; 8];
        let mut bad = [false; 8];
        let (xc, xr) = xa.as_chunks::<8>();
        let (yc, yr) = ya.as_chunks::<8>();
        for (a8, b8) in xc.iter().zip(yc) {
            for k in 0..8 {
                bad[k] |= !a8[k].is_finite();
                let d = (a8[k] - b8[k]).abs();
                sq[k] += d * d;
                mx[k] = if d > mx[k] { d } else { mx[k] };
            }
        }
        for (a, b) in xr.iter().zip(yr) {
            bad[0] |= !a.is_finite();
            let d = (a - b).abs();
            sq[0] += d * d;
            mx[0] = if d > mx[0] { d } else { mx[0] };
        }
        finite &= !bad.iter().any(|b| *b);
        st.sum_sq += sq.iter().map(|v| f64::from(*v)).sum::<f64>();
        st.max_abs = mx.iter().fold(st.max_abs, |m, v| m.max(f64::from(*v)));
    }
    finite
}

const INVALID_INPUT: &str = "has invalid data (NaN or infinity); llama.cpp refuses such files";

/// The importance weights of a chunk's rows: one `ne0` slice per matrix (expert) of
/// `rows_per_matrix` rows; the chunk starts at global row `first_row`.
#[derive(Clone, Copy)]
struct RowWeights<'a> {
    qw: &'a [f32],
    ne0: usize,
    rows_per_matrix: usize,
    first_row: usize,
}

/// Encodes rows with importance weights, switching weight slices at expert boundaries.
fn quantize_weighted_chunk(target: GgmlType, w: RowWeights<'_>, x: &[f32], dst: &mut [u8]) -> bool {
    let rows = x.len() / w.ne0;
    let row_bytes = dst.len() / rows.max(1);
    let mut r = 0;
    while r < rows {
        let g = w.first_row + r;
        let m = g / w.rows_per_matrix;
        let run = (w.rows_per_matrix - g % w.rows_per_matrix).min(rows - r);
        let qw = &w.qw[m * w.ne0..(m + 1) * w.ne0];
        if !quantize_rows_weighted(
            target,
            &x[r * w.ne0..(r + run) * w.ne0],
            qw,
            &mut dst[r * row_bytes..(r + run) * row_bytes],
        ) {
            return false;
        }
        r += run;
    }
    true
}

/// Decodes `src`, encodes it as `target` into `dst` and measures the error. Errors are
/// messages about the tensor.
fn convert_chunk(
    t: &TensorInfo,
    target: GgmlType,
    weights: Option<RowWeights<'_>>,
    src: &[u8],
    dst: &mut [u8],
    x: &mut [f32],
    y: &mut [f32],
) -> Result<Stats, String> {
    let n = src.len() / t.ggml_type.type_size() as usize * t.ggml_type.block_size() as usize;
    let x = &mut x[..n];
    let y = &mut y[..n];
    if !dequantize_row(t.ggml_type, src, x) {
        return Err(format!("cannot convert tensor type {}", t.ggml_type));
    }
    let ok = match weights {
        Some(w) => quantize_weighted_chunk(target, w, x, dst),
        None => quantize_row(target, x, dst),
    };
    if !ok {
        return Err(format!("tinylm cannot produce type {target}"));
    }
    if !output_is_finite(target, dst) {
        return Err(format!(
            "quantized data validation failed: values overflow {target} (scales or values \
             became infinite); the weights are too large for this type"
        ));
    }
    dequantize_row(target, dst, y);
    let mut st = Stats {
        n: n as u64,
        ..Stats::default()
    };
    let finite = accumulate_errors(x, y, &mut st);
    if !finite {
        return Err(INVALID_INPUT.into());
    }
    Ok(st)
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
        GgmlType::IQ4NL => (18, &[0]),
        GgmlType::IQ4XS => (136, &[0]),
        GgmlType::IQ3XXS => (98, &[0]),
        GgmlType::IQ3S => (110, &[0]),
        GgmlType::IQ2XXS => (66, &[0]),
        GgmlType::IQ2XS => (74, &[0]),
        GgmlType::IQ2S => (82, &[0]),
        GgmlType::IQ1S => (50, &[0]),
        GgmlType::TQ1_0 => (54, &[52]),
        GgmlType::TQ2_0 => (66, &[64]),
        GgmlType::IQ1M => {
            // The fp16 scale is spread over the top nibbles of the four scale words.
            return b.chunks_exact(56).all(|blk| {
                let w = |i: usize| le16(blk, 48 + 2 * i);
                let s = (w(0) >> 12)
                    | ((w(1) >> 8) & 0x00f0)
                    | ((w(2) >> 4) & 0x0f00)
                    | (w(3) & 0xf000);
                fp16_ok(s)
            });
        }
        _ => return true,
    };
    b.chunks_exact(bytes)
        .all(|blk| fields.iter().all(|&o| fp16_ok(le16(blk, o))))
}
