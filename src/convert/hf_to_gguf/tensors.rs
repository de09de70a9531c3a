//! Tensor data: decoding HF dtypes, the layout transforms (GPT-2 Conv1D transpose, Llama Q/K
//! permutation) and encoding to the output type, streamed in row chunks so that peak memory stays
//! a few chunks whatever the model size.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use half::f16;
use rayon::prelude::*;

use super::error::{ConvertError, Result, tensor_err};
use crate::formats::DType;
use crate::formats::gguf::GgmlType;
use crate::formats::tensor::Tensor;

/// A layout change applied to an HF tensor on the way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Copied as is.
    None,
    /// 2-D transpose (GPT-2 Conv1D weights).
    Transpose,
    /// Llama's Q/K row permutation for `n_head` heads (`LlamaModel.permute`).
    Permute(usize),
    /// GPT-NeoX's fused QKV rows `(n_head, 3, head_dim)` regrouped as `(3, n_head, head_dim)`
    /// (`GPTNeoXModel.modify_tensors`).
    QkvByPart(usize),
    /// `x + 1` (Gemma's RMS norm weights), computed as the reference does: F16 sources add in
    /// F16 (torch keeps the type), BF16 ones arrive upcast to F32 and add there.
    AddOne,
}

impl Transform {
    /// For a row permutation, the input row that output row `r` (of `rows`) takes.
    fn src_row(self, r: usize, rows: usize) -> Option<usize> {
        match self {
            Transform::Permute(n_head) => Some(permute_src(r, rows, n_head)),
            Transform::QkvByPart(n_head) => Some(qkv_by_part_src(r, rows, n_head)),
            Transform::None | Transform::Transpose | Transform::AddOne => None,
        }
    }
}

/// `QkvByPart`: output row `r` = (part, head, j) takes input row (head, part, j).
fn qkv_by_part_src(r: usize, rows: usize, n_head: usize) -> usize {
    let hd = rows / (3 * n_head);
    let (part, rest) = (r / (n_head * hd), r % (n_head * hd));
    let (h, j) = (rest / hd, rest % hd);
    (h * 3 + part) * hd + j
}

/// Where a planned tensor's values come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An HF tensor, possibly transformed.
    Hf(Tensor, Transform),
    /// Values computed by the converter (`rope_freqs`).
    Values(Arc<[f32]>),
}

/// One output tensor.
#[derive(Debug, Clone)]
pub struct PlannedTensor {
    /// GGUF name.
    pub name: String,
    /// Output shape in numpy order (outermost first).
    pub shape: Vec<usize>,
    /// Output type.
    pub ggml_type: GgmlType,
    /// Values.
    pub source: Source,
    /// The source dtype, for reporting (`None` for generated tensors).
    pub src_dtype: Option<DType>,
}

impl PlannedTensor {
    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Decodes `n` elements starting at element `start` of `t` into `out`.
fn decode(t: &Tensor, start: usize, out: &mut [f32]) {
    let bytes = t.data.as_bytes();
    let sz = t.dtype.size();
    let src = &bytes[start * sz..(start + out.len()) * sz];
    match t.dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        DType::BF16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
            }
        }
        DType::F64 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                *o = f64::from_le_bytes(b) as f32;
            }
        }
        DType::I64 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(8)) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                *o = i64::from_le_bytes(b) as f32;
            }
        }
        DType::I32 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
                *o = i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32;
            }
        }
        DType::I16 => {
            for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
                *o = f32::from(i16::from_le_bytes([c[0], c[1]]));
            }
        }
        DType::I8 => {
            for (o, &c) in out.iter_mut().zip(src) {
                *o = f32::from(c as i8);
            }
        }
        DType::U8 | DType::Bool => {
            for (o, &c) in out.iter_mut().zip(src) {
                *o = f32::from(c);
            }
        }
        DType::C64 => out.fill(0.0),
    }
}

/// `LlamaModel.permute`: output row `r` (of `rows`) takes input row `perm_src(r)`.
fn permute_src(r: usize, rows: usize, n_head: usize) -> usize {
    let hd = rows / n_head;
    let half = hd / 2;
    let (h, within) = (r / hd, r % hd);
    let (i, odd) = (within / 2, within % 2);
    h * hd + odd * half + i
}

/// Fills output rows `first..first + out.len() / row_len` of a planned tensor as f32.
fn fill_rows(p: &PlannedTensor, first: usize, row_len: usize, out: &mut [f32]) {
    match &p.source {
        Source::Values(v) => {
            let start = first * row_len;
            out.copy_from_slice(&v[start..start + out.len()]);
        }
        Source::Hf(t, Transform::None) => decode(t, first * row_len, out),
        Source::Hf(t, Transform::AddOne) => {
            decode(t, first * row_len, out);
            // F16: f32 addition then F16 rounding equals torch's F16 addition (double rounding
            // is innocuous with 24 ≥ 2·11 + 2 bits). BF16: the reference's loader upcasts to
            // F32 before modify_tensors (verified against its Gemma 3 output), so no rounding.
            if t.dtype == DType::F16 {
                for v in out.iter_mut() {
                    *v = f16::from_f32(*v + 1.0).to_f32();
                }
            } else {
                for v in out.iter_mut() {
                    *v += 1.0;
                }
            }
        }
        Source::Hf(t, tr @ (Transform::Permute(_) | Transform::QkvByPart(_))) => {
            // Rows are along axis 0; for a 1-D bias a "row" is one element.
            let rows = t.shape.first().copied().unwrap_or(1);
            let inner: usize = t.shape.iter().skip(1).product();
            // out covers whole output rows of `row_len` elements; map in units of `inner`.
            let start_elem = first * row_len;
            let n = out.len();
            let mut done = 0;
            while done < n {
                let r = (start_elem + done) / inner;
                let off = (start_elem + done) % inner;
                let take = (inner - off).min(n - done);
                let src_r = tr.src_row(r, rows).unwrap_or(r);
                decode(t, src_r * inner + off, &mut out[done..done + take]);
                done += take;
            }
        }
        Source::Hf(t, Transform::Transpose) => {
            // input (a, b) → output (b, a): output row r is input column r.
            let a = t.shape.first().copied().unwrap_or(1);
            let b = t.shape.get(1).copied().unwrap_or(1);
            let n_rows = out.len() / row_len;
            let mut tmp = vec![0f32; b];
            // Walk input rows once per chunk, scattering into the chunk's output rows.
            for k in 0..a {
                decode(t, k * b + first, &mut tmp[..n_rows]);
                for (j, &v) in tmp[..n_rows].iter().enumerate() {
                    out[j * row_len + k] = v;
                }
            }
        }
    }
}

/// Output bytes per row of `row_len` elements.
pub fn row_bytes(t: GgmlType, row_len: usize) -> usize {
    match t {
        GgmlType::F32 => row_len * 4,
        GgmlType::F16 | GgmlType::BF16 => row_len * 2,
        GgmlType::Q8_0 => row_len / 32 * 34,
        _ => 0,
    }
}

/// Encodes f32 values as `t` with quant's row encoders, the same bytes gguf-py writes: numpy's
/// RNE for F16, ggml's rounding for BF16 (NaNs made quiet) and Q8_0.
fn encode(t: GgmlType, src: &[f32], dst: &mut [u8]) {
    // Only F32/F16/BF16/Q8_0 are planned; `row_bytes` rejected anything else already.
    crate::quant::quantize_row(t, src, dst);
}

/// Elements processed per parallel work item.
const ITEM_ELEMS: usize = 1 << 16;
/// Elements per chunk: converted in parallel, handed to the writer, and (for mapped sources)
/// dropped from memory, so the resident set stays a few chunks whatever the model size.
const CHUNK_ELEMS: usize = 1 << 21;
/// Chunk buffers in flight between the converting thread and the writing thread.
const BUFFERS: usize = 3;

/// How one planned tensor is cut into chunks of whole output rows.
struct Chunking {
    row_len: usize,
    n_rows: usize,
    /// Output bytes per row.
    rb: usize,
    rows_per_chunk: usize,
    /// Rows per parallel work item.
    item_rows: usize,
    /// Source bytes per element (mapped sources), for the window each chunk reads.
    elem: Option<usize>,
}

impl Chunking {
    fn new(p: &PlannedTensor) -> Result<Chunking> {
        let row_len = p.shape.last().copied().unwrap_or(1).max(1);
        let n_rows = p.n_elements() / row_len;
        let rb = row_bytes(p.ggml_type, row_len);
        if rb == 0 && n_rows > 0 {
            return Err(tensor_err(
                &p.name,
                format!("cannot encode {}", p.ggml_type),
            ));
        }
        // A chunk's output rows must read exactly the source rows of its window: any rows for a
        // plain copy, whole heads for the Q/K permutation, everything for a transpose (and for
        // layouts not listed here).
        let (align, whole) = match &p.source {
            Source::Hf(t, Transform::Permute(n_head)) if t.shape.len() == 2 => {
                ((n_rows / (*n_head).max(1)).max(1), false)
            }
            Source::Hf(_, Transform::None) | Source::Values(_) => (1, false),
            Source::Hf(..) => (n_rows.max(1), true),
        };
        let rows_per_item = (ITEM_ELEMS / row_len).max(1);
        let rows_per_chunk =
            ((CHUNK_ELEMS / row_len).max(1) / rows_per_item).max(1) * rows_per_item;
        let rows_per_chunk = rows_per_chunk.div_ceil(align) * align;
        // A transpose reads the whole input per chunk: one chunk, one work item.
        let item_rows = if whole { rows_per_chunk } else { rows_per_item };
        let elem = match &p.source {
            Source::Hf(t, _) => Some(t.dtype.size()),
            Source::Values(_) => None,
        };
        Ok(Chunking {
            row_len,
            n_rows,
            rb,
            rows_per_chunk,
            item_rows,
            elem,
        })
    }

    /// `(first row, rows)` of every chunk, in order.
    fn chunks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.n_rows)
            .step_by(self.rows_per_chunk.max(1))
            .map(|first| (first, self.rows_per_chunk.min(self.n_rows - first)))
    }

    /// Encodes rows `first..first + rows` of `p` into `buf` (resized to fit), in parallel: the
    /// source window is mapped in one call before and dropped from memory after.
    fn encode(
        &self,
        p: &PlannedTensor,
        (first, rows): (usize, usize),
        buf: &mut Vec<u8>,
        pool: Option<&rayon::ThreadPool>,
    ) {
        let window = self
            .elem
            .map(|e| first * self.row_len * e..(first + rows) * self.row_len * e);
        if let (Source::Hf(t, _), Some(w)) = (&p.source, &window) {
            t.data.prefetch(w.clone());
        }
        // Every byte is overwritten: only growth needs filling.
        buf.resize(rows * self.rb, 0);
        let work = |buf: &mut Vec<u8>| {
            buf.par_chunks_mut((self.item_rows * self.rb).max(1))
                .enumerate()
                .for_each(|(i, dst)| {
                    fill_encoded(p, first + i * self.item_rows, self.row_len, dst);
                });
        };
        match pool {
            Some(pool) => pool.install(|| work(buf)),
            None => work(buf),
        }
        if let (Source::Hf(t, _), Some(w)) = (&p.source, window) {
            t.data.release(w);
        }
    }
}

fn write_err(e: std::io::Error) -> ConvertError {
    ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}")))
}

fn cancelled(cancel: Option<&AtomicBool>) -> bool {
    cancel.is_some_and(|c| c.load(Ordering::Relaxed))
}

/// What the converting thread hands the writer.
enum Piece {
    /// Encoded bytes of the current tensor.
    Bytes(Vec<u8>),
    /// Bytes `range` of the current tensor's mapped source, which are already its output bytes:
    /// written from the mapping, so they never pass through a buffer.
    Raw(Range<usize>),
    /// Like `Raw`, for bytes the converting thread has just mapped and checked: written from
    /// the mapping, whose pages it brought in (and which are likely still in the CPU cache),
    /// instead of being read from the page cache a second time; dropped from memory after.
    Checked(Range<usize>),
    /// The current tensor is complete (or failed).
    End(Result<()>),
}

/// The writer's side of [`pipelined`]: tensors must be taken in order.
pub struct Pipeline<'a> {
    pieces: std::sync::mpsc::Receiver<Piece>,
    free: std::sync::mpsc::SyncSender<Vec<u8>>,
    tensors: &'a [PlannedTensor],
    /// Index of the tensor `write_next` writes.
    next: usize,
}

/// Where [`Pipeline`] puts a tensor's bytes.
pub enum Out<'a> {
    /// A stream; bytes stored as is are written from the source mapping.
    Stream(&'a mut dyn Write),
    /// A file at a position, advanced as bytes are written; bytes stored as is are copied file
    /// to file (`copy_file_range`), so they never pass through this process.
    #[cfg(unix)]
    At {
        /// The output file.
        file: &'a std::fs::File,
        /// Where the next byte goes.
        pos: &'a mut u64,
        /// Told how far the file is written, to start writeback behind the writer.
        writeback: Option<&'a crate::fsutil::writeback::Writeback>,
    },
}

impl Out<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Stream(w) => w.write_all(bytes),
            #[cfg(unix)]
            Out::At {
                file,
                pos,
                writeback,
            } => {
                use std::os::unix::fs::FileExt;
                file.write_all_at(bytes, **pos)?;
                **pos += bytes.len() as u64;
                if let Some(wb) = writeback {
                    wb.written_to(**pos);
                }
                Ok(())
            }
        }
    }

    /// Writes bytes `range` of `t` as stored: copied file to file where the system can,
    /// else from the mapping (dropped from memory after).
    fn stored(
        &mut self,
        t: &crate::formats::tensor::TensorBytes,
        range: Range<usize>,
    ) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Out::At {
            file,
            pos,
            writeback,
        } = self
            && let Some((src, at)) = t.file_range(&range)
            && copy_file_range(src, at, file, **pos, range.len())?
        {
            **pos += range.len() as u64;
            if let Some(wb) = writeback {
                wb.written_to(**pos);
            }
            return Ok(());
        }
        self.mapped(t, range)
    }

    /// Writes bytes `range` of `t` from its mapping, then drops them from memory.
    fn mapped(
        &mut self,
        t: &crate::formats::tensor::TensorBytes,
        range: Range<usize>,
    ) -> std::io::Result<()> {
        t.prefetch(range.clone());
        self.write_all(&t.as_bytes()[range.clone()])?;
        t.release(range);
        Ok(())
    }
}

/// Copies `len` bytes from `src` at `src_at` to `dst` at `dst_at` inside the kernel (page cache
/// to page cache, or a reflink where the file system shares blocks). `false` when the system
/// cannot copy between these files (other file systems, old kernels): nothing was written.
#[cfg(target_os = "linux")]
fn copy_file_range(
    src: &std::fs::File,
    src_at: u64,
    dst: &std::fs::File,
    dst_at: u64,
    len: usize,
) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let too_far = || std::io::Error::other("offset out of range");
    let mut off_in = libc::loff_t::try_from(src_at).map_err(|_| too_far())?;
    let mut off_out = libc::loff_t::try_from(dst_at).map_err(|_| too_far())?;
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open for the call; the offsets are our own locals.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            let unsupported = matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
            );
            if unsupported && left == len {
                return Ok(false);
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a weight file shrank while it was being converted",
            ));
        }
        left -= n as usize;
    }
    Ok(true)
}

impl Pipeline<'_> {
    /// The source bytes of the tensor being written, for pieces written as stored.
    fn stored_source(&self) -> Result<&crate::formats::tensor::TensorBytes> {
        match self.tensors.get(self.next).map(|p| &p.source) {
            Some(Source::Hf(t, _)) => Ok(&t.data),
            _ => Err(ConvertError::Write(crate::Error::Build(
                "internal error: raw bytes for a generated tensor".into(),
            ))),
        }
    }

    /// Writes the next tensor's bytes (they are being encoded ahead on another thread) to `out`.
    pub fn write_next(&mut self, out: &mut dyn Write) -> Result<()> {
        self.write_next_to(&mut Out::Stream(out))
    }

    /// [`Pipeline::write_next`] to any [`Out`].
    pub fn write_next_to(&mut self, out: &mut Out<'_>) -> Result<()> {
        loop {
            match self.pieces.recv() {
                Ok(Piece::Bytes(buf)) => {
                    out.write_all(&buf).map_err(write_err)?;
                    // The encoder may have stopped (error, cancel): a lost buffer is fine.
                    let _ = self.free.try_send(buf);
                }
                Ok(Piece::Raw(range)) => {
                    out.stored(self.stored_source()?, range)
                        .map_err(write_err)?;
                }
                Ok(Piece::Checked(range)) => {
                    out.mapped(self.stored_source()?, range)
                        .map_err(write_err)?;
                }
                Ok(Piece::End(r)) => {
                    self.next += 1;
                    return r;
                }
                Err(_) => {
                    return Err(ConvertError::Write(crate::Error::Build(
                        "internal error: the tensor encoder stopped early".into(),
                    )));
                }
            }
        }
    }
}

/// Runs `body` with a [`Pipeline`] that yields `tensors`' encoded bytes in order, encoded on a
/// background thread (in parallel on `pool`) at most [`BUFFERS`] chunks ahead of the writer:
/// encoding the next chunk overlaps writing the last one, and memory stays a few chunks.
pub fn pipelined<R>(
    tensors: &[PlannedTensor],
    cancel: Option<&AtomicBool>,
    pool: Option<&rayon::ThreadPool>,
    body: impl FnOnce(&mut Pipeline<'_>) -> R,
) -> R {
    let (piece_tx, piece_rx) = std::sync::mpsc::sync_channel::<Piece>(BUFFERS);
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = free_tx.try_send(Vec::new());
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            for p in tensors {
                let r = (|| -> std::result::Result<Result<()>, ()> {
                    if let Some((t, scan)) = stored_as_is(p) {
                        for w in raw_windows(t.data.as_bytes().len()) {
                            if cancelled(cancel) {
                                return Ok(Err(ConvertError::Cancelled));
                            }
                            if !scan {
                                piece_tx.send(Piece::Raw(w)).map_err(|_| ())?;
                                continue;
                            }
                            // Mapped and checked here, on the encoder's core, while the
                            // writer writes the previous window: the writer then copies bytes
                            // that are mapped and cached, and drops them.
                            t.data.prefetch(w.clone());
                            let src = &t.data.as_bytes()[w.clone()];
                            if bf16_is_quiet(src) {
                                piece_tx.send(Piece::Checked(w)).map_err(|_| ())?;
                                continue;
                            }
                            // A signaling NaN: ggml's encoding quiets it, so this window goes
                            // through the encoder like any converted bytes.
                            let mut buf = free_rx.recv().map_err(|_| ())?;
                            buf.resize(src.len(), 0);
                            crate::quant::convert_run(t.dtype, p.ggml_type, src, &mut buf);
                            t.data.release(w);
                            piece_tx.send(Piece::Bytes(buf)).map_err(|_| ())?;
                        }
                        return Ok(Ok(()));
                    }
                    let c = match Chunking::new(p) {
                        Ok(c) => c,
                        Err(e) => return Ok(Err(e)),
                    };
                    for chunk in c.chunks() {
                        if cancelled(cancel) {
                            return Ok(Err(ConvertError::Cancelled));
                        }
                        // Waits for the writer to hand a buffer back; an error means it is gone.
                        let mut buf = free_rx.recv().map_err(|_| ())?;
                        c.encode(p, chunk, &mut buf, pool);
                        piece_tx.send(Piece::Bytes(buf)).map_err(|_| ())?;
                    }
                    Ok(Ok(()))
                })();
                match r {
                    Ok(end) => {
                        let failed = end.is_err();
                        if piece_tx.send(Piece::End(end)).is_err() || failed {
                            return;
                        }
                    }
                    Err(()) => return,
                }
            }
        });
        let mut pipe = Pipeline {
            pieces: piece_rx,
            free: free_tx,
            tensors,
            next: 0,
        };
        let r = body(&mut pipe);
        // Dropping the channels unblocks an encoder still waiting to send or for a buffer.
        drop(pipe);
        r
    })
}

/// Bytes per window of a tensor written as stored: a few system calls per tensor, a few
/// windows in memory.
const RAW_WINDOW: usize = 4 << 20;

fn raw_windows(len: usize) -> impl Iterator<Item = Range<usize>> {
    (0..len)
        .step_by(RAW_WINDOW)
        .map(move |s| s..(s + RAW_WINDOW).min(len))
}

/// A mapped HF tensor whose output bytes are its stored bytes (no layout change, same type),
/// and whether it must be checked for signaling NaNs first (BF16, which ggml's encoding
/// quiets); `None` for everything that needs encoding.
fn stored_as_is(p: &PlannedTensor) -> Option<(&Tensor, bool)> {
    let Source::Hf(t, Transform::None) = &p.source else {
        return None;
    };
    if !matches!(t.data, crate::formats::tensor::TensorBytes::Mapped { .. }) {
        return None;
    }
    match (t.dtype, p.ggml_type) {
        (DType::F32, GgmlType::F32) | (DType::F16, GgmlType::F16) => Some((t, false)),
        (DType::BF16, GgmlType::BF16) => Some((t, true)),
        _ => None,
    }
}

/// Whether no bf16 value in `src` is a signaling NaN (exponent all ones, non-zero mantissa,
/// quiet bit clear). Branch-free over fixed blocks so it compiles to a vector loop.
fn bf16_is_quiet(src: &[u8]) -> bool {
    let signaling = |c: &[u8]| {
        let w = u16::from_le_bytes([c[0], c[1]]);
        (w & 0x7fff) > 0x7f80 && w & 0x40 == 0
    };
    let blocks = src.chunks_exact(64);
    let tail = blocks.remainder();
    for b in blocks {
        if b.chunks_exact(2).fold(false, |any, c| any | signaling(c)) {
            return false;
        }
    }
    !tail.chunks_exact(2).any(signaling)
}

/// Encodes output rows `first..` of `p` into `dst` (whole rows): bytes to bytes when the dtype
/// pair has a direct conversion, else through f32.
fn fill_encoded(p: &PlannedTensor, first: usize, row_len: usize, dst: &mut [u8]) {
    let n = dst.len() / row_bytes(p.ggml_type, row_len).max(1) * row_len;
    if let Source::Hf(t, transform) = &p.source {
        let sz = t.dtype.size();
        let bytes = t.data.as_bytes();
        match transform {
            Transform::None => {
                let src = &bytes[first * row_len * sz..(first * row_len + n) * sz];
                if crate::quant::convert_run(t.dtype, p.ggml_type, src, dst) {
                    return;
                }
            }
            tr @ (Transform::Permute(_) | Transform::QkvByPart(_))
                if t.shape.len() == 2 && n > 0 =>
            {
                let rows = t.shape[0];
                let (src_row, dst_row) = (row_len * sz, dst.len() / (n / row_len));
                let mut converted = true;
                for (j, d) in dst.chunks_mut(dst_row).enumerate() {
                    let r = tr.src_row(first + j, rows).unwrap_or(first + j);
                    let src = &bytes[r * src_row..(r + 1) * src_row];
                    // The pair is the same for every row: only the first can refuse.
                    if !crate::quant::convert_run(t.dtype, p.ggml_type, src, d) {
                        converted = false;
                        break;
                    }
                }
                if converted {
                    return;
                }
            }
            _ => {}
        }
    }
    let mut tmp = vec![0f32; n];
    fill_rows(p, first, row_len, &mut tmp);
    encode(p.ggml_type, &tmp, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of the straightforward path: every element decoded to f32 in output order,
    /// then one `quantize_row` over the whole tensor.
    fn naive(p: &PlannedTensor) -> Vec<u8> {
        let row_len = p.shape.last().copied().unwrap_or(1);
        let mut f = vec![0f32; p.n_elements()];
        fill_rows(p, 0, row_len, &mut f);
        let mut out = vec![0u8; p.n_elements() / row_len * row_bytes(p.ggml_type, row_len)];
        encode(p.ggml_type, &f, &mut out);
        out
    }

    #[test]
    fn tensors_of_many_windows_stream_the_bytes_of_a_single_pass() {
        use crate::formats::safetensors;
        use crate::formats::tensor::{TensorBytes, WeightFile};
        // 2.5 chunks of bf16 with every bit pattern (NaNs, subnormals, infinities) and an odd
        // start offset in the file (a small tensor stored first), so windows and pages never
        // line up; read back through a real mapping, so windows are mapped and dropped.
        let (rows, cols) = (640usize, 8192usize);
        let n = rows * cols;
        assert!(n > 2 * CHUNK_ELEMS);
        let bits: Vec<u8> = (0..n)
            .flat_map(|i| (((i as u32).wrapping_mul(2_654_435_761) >> 16) as u16).to_le_bytes())
            .collect();
        let small = Tensor {
            name: "a.small".into(),
            dtype: DType::BF16,
            shape: vec![3],
            data: TensorBytes::Owned(Arc::from(vec![1u8, 2, 3, 4, 5, 6])),
        };
        let big = Tensor {
            name: "b.big".into(),
            dtype: DType::BF16,
            shape: vec![rows, cols],
            data: TensorBytes::Owned(Arc::from(bits)),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let wf = WeightFile {
            file_name: "m.safetensors".into(),
            tensors: vec![small, big],
        };
        safetensors::write_file(&path, &wf).unwrap();
        let read = safetensors::read(&path).unwrap();
        let t = read
            .tensors
            .iter()
            .find(|t| t.name == "b.big")
            .unwrap()
            .clone();
        assert!(matches!(t.data, TensorBytes::Mapped { .. }));
        let mut planned = Vec::new();
        for ty in [GgmlType::F16, GgmlType::BF16, GgmlType::F32, GgmlType::Q8_0] {
            for tr in [Transform::None, Transform::Permute(8), Transform::Transpose] {
                let shape = if tr == Transform::Transpose {
                    vec![cols, rows]
                } else {
                    vec![rows, cols]
                };
                planned.push(PlannedTensor {
                    name: format!("{ty}/{tr:?}"),
                    shape,
                    ggml_type: ty,
                    source: Source::Hf(t.clone(), tr),
                    src_dtype: Some(DType::BF16),
                });
            }
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut got: Vec<Vec<u8>> = Vec::new();
        pipelined(&planned, None, Some(&pool), |pipe| {
            for _ in &planned {
                let mut out = Vec::new();
                pipe.write_next(&mut out).unwrap();
                got.push(out);
            }
        });
        for (p, got) in planned.iter().zip(&got) {
            assert!(*got == naive(p), "{} differs", p.name);
        }
    }

    #[cfg(unix)]
    #[test]
    fn tensors_stored_as_is_are_copied_file_to_file_with_signaling_nans_still_quieted() {
        use crate::formats::safetensors;
        use crate::formats::tensor::{TensorBytes, WeightFile};
        use std::os::unix::fs::FileExt;
        // bf16 over 2.5 copy windows with one signaling NaN in the middle window (which must
        // be re-encoded) and a quiet one in the last (copied as is), f16 and f32 tensors copied
        // unchanged (finite values: `naive` goes through f32, the copy keeps NaN payloads like
        // the reference), and a stored tensor written with a layout change; at odd offsets.
        let n = RAW_WINDOW * 5 / 4;
        let mut bf = vec![0u8; n * 2];
        for (i, c) in bf.chunks_exact_mut(2).enumerate() {
            let w = ((i as u32).wrapping_mul(2_654_435_761) >> 16) as u16 & 0x3fff;
            c.copy_from_slice(&w.to_le_bytes());
        }
        let snan = RAW_WINDOW / 2 + 3;
        bf[snan * 2..snan * 2 + 2].copy_from_slice(&0x7f81u16.to_le_bytes());
        let qnan = n - 5;
        bf[qnan * 2..qnan * 2 + 2].copy_from_slice(&0xffc1u16.to_le_bytes());
        let owned = |name: &str, dtype, shape: Vec<usize>, bytes: Vec<u8>| Tensor {
            name: name.into(),
            dtype,
            shape,
            data: TensorBytes::Owned(Arc::from(bytes)),
        };
        let wf = WeightFile {
            file_name: "m.safetensors".into(),
            tensors: vec![
                owned("a", DType::BF16, vec![3], vec![1, 2, 3, 4, 5, 6]),
                owned("b", DType::BF16, vec![n / 64, 64], bf),
                owned(
                    "c",
                    DType::F16,
                    vec![9, 32],
                    (0..576).map(|i| (i % 100) as u8).collect(),
                ),
                owned(
                    "d",
                    DType::F32,
                    vec![7],
                    (0..28).map(|i| 255 - i as u8).collect(),
                ),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        safetensors::write_file(&path, &wf).unwrap();
        let read = safetensors::read(&path).unwrap();
        let get = |name: &str| {
            read.tensors
                .iter()
                .find(|t| t.name == name)
                .unwrap()
                .clone()
        };
        let plan = |t: Tensor, ty, tr| PlannedTensor {
            name: format!("{}/{ty}/{tr:?}", t.name),
            shape: t.shape.clone(),
            ggml_type: ty,
            src_dtype: Some(t.dtype),
            source: Source::Hf(t, tr),
        };
        let planned = vec![
            plan(get("a"), GgmlType::BF16, Transform::None),
            plan(get("b"), GgmlType::BF16, Transform::None),
            plan(get("c"), GgmlType::F16, Transform::None),
            plan(get("d"), GgmlType::F32, Transform::None),
            plan(get("b"), GgmlType::BF16, Transform::Permute(4)),
            plan(get("c"), GgmlType::F32, Transform::None),
        ];
        assert!(stored_as_is(&planned[1]).is_some_and(|(_, scan)| scan));
        assert!(stored_as_is(&planned[2]).is_some() && stored_as_is(&planned[4]).is_none());
        let out = tempfile::tempfile().unwrap();
        let wb = crate::fsutil::writeback::Writeback::new(&out);
        let mut pos = 5u64;
        let mut ends = Vec::new();
        pipelined(&planned, None, None, |pipe| {
            for _ in &planned {
                let start = pos;
                pipe.write_next_to(&mut Out::At {
                    file: &out,
                    pos: &mut pos,
                    writeback: Some(&wb),
                })
                .unwrap();
                ends.push((start, pos));
            }
        });
        for (p, (start, end)) in planned.iter().zip(ends) {
            let mut got = vec![0u8; (end - start) as usize];
            out.read_exact_at(&mut got, start).unwrap();
            assert!(got == naive(p), "{} differs", p.name);
        }
        // The signaling NaN was quieted, the quiet one kept its payload.
        let mut two = [0u8; 2];
        out.read_exact_at(&mut two, 5 + 6 + snan as u64 * 2)
            .unwrap();
        assert_eq!(u16::from_le_bytes(two), 0x7fc1);
        out.read_exact_at(&mut two, 5 + 6 + qnan as u64 * 2)
            .unwrap();
        assert_eq!(u16::from_le_bytes(two), 0xffc1);
    }

    #[test]
    fn a_cancelled_or_unencodable_tensor_ends_the_stream_with_its_error() {
        let values = |ty| PlannedTensor {
            name: "v".into(),
            shape: vec![4, 64],
            ggml_type: ty,
            source: Source::Values(Arc::from(vec![0.5f32; 256])),
            src_dtype: None,
        };
        let planned = [
            values(GgmlType::F16),
            values(GgmlType::Q4K),
            values(GgmlType::F16),
        ];
        pipelined(&planned, None, None, |pipe| {
            let mut out = Vec::new();
            pipe.write_next(&mut out).unwrap();
            assert_eq!(out.len(), 512);
            let err = pipe.write_next(&mut out).unwrap_err();
            assert!(err.to_string().contains("cannot encode"), "{err}");
        });
        let cancel = AtomicBool::new(true);
        pipelined(&planned, Some(&cancel), None, |pipe| {
            let err = pipe.write_next(&mut Vec::new()).unwrap_err();
            assert!(matches!(err, ConvertError::Cancelled), "{err}");
        });
    }

    #[test]
    fn permutation_interleaves_the_two_halves_of_each_head() {
        // hd = 4: new[h*4 + 2i] = old[h*4 + i], new[h*4 + 2i + 1] = old[h*4 + 2 + i]
        let got: Vec<usize> = (0..8).map(|r| permute_src(r, 8, 2)).collect();
        assert_eq!(got, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn qkv_by_part_groups_queries_then_keys_then_values() {
        // 2 heads of 2: input rows (h0: q q k k v v, h1: q q k k v v).
        let got: Vec<usize> = (0..12).map(|r| qkv_by_part_src(r, 12, 2)).collect();
        assert_eq!(got, vec![0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
    }

    #[test]
    fn bf16_rounding_matches_ggml() {
        let bits = |x: f32| {
            let mut b = [0u8; 2];
            encode(GgmlType::BF16, &[x], &mut b);
            u16::from_le_bytes(b)
        };
        assert_eq!(bits(1.0), 0x3f80);
        // exactly halfway: ties to even
        assert_eq!(bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bits(f32::NAN) & 0x7fc0, 0x7fc0);
    }
}
