//! Tensor data: decoding HF dtypes, the layout transforms (GPT-2 Conv1D transpose, Llama Q/K
//! permutation) and encoding to the output type, streamed in row chunks so that peak memory stays
//! a few chunks whatever the model size.

use std::io::Write;
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
/// Elements buffered before a write.
const CHUNK_ELEMS: usize = 1 << 22;

/// Streams the encoded bytes of `p` into `out`.
pub fn write_tensor(
    p: &PlannedTensor,
    out: &mut dyn Write,
    cancel: Option<&AtomicBool>,
    pool: Option<&rayon::ThreadPool>,
) -> Result<()> {
    if write_same_type(p, out, cancel)? {
        return Ok(());
    }
    let row_len = p.shape.last().copied().unwrap_or(1).max(1);
    let n_rows = p.n_elements() / row_len;
    let rb = row_bytes(p.ggml_type, row_len);
    if rb == 0 && n_rows > 0 {
        return Err(tensor_err(
            &p.name,
            format!("cannot encode {}", p.ggml_type),
        ));
    }
    let rows_per_item = (ITEM_ELEMS / row_len).max(1);
    let rows_per_chunk = ((CHUNK_ELEMS / row_len).max(1) / rows_per_item).max(1) * rows_per_item;
    // Transposes read the whole input per chunk: use bigger chunks to keep that cheap.
    let rows_per_chunk = if matches!(p.source, Source::Hf(_, Transform::Transpose)) {
        n_rows.max(1)
    } else {
        rows_per_chunk
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut first = 0;
    while first < n_rows {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(ConvertError::Cancelled);
        }
        let rows = rows_per_chunk.min(n_rows - first);
        buf.resize(rows * rb, 0);
        let item_rows = if matches!(p.source, Source::Hf(_, Transform::Transpose)) {
            rows
        } else {
            rows_per_item
        };
        let work = |buf: &mut Vec<u8>| {
            buf.par_chunks_mut(item_rows * rb)
                .enumerate()
                .for_each(|(i, dst)| {
                    let r0 = first + i * item_rows;
                    let nr = dst.len() / rb;
                    let mut tmp = vec![0f32; nr * row_len];
                    fill_rows(p, r0, row_len, &mut tmp);
                    encode(p.ggml_type, &tmp, dst);
                });
        };
        match pool {
            Some(pool) => pool.install(|| work(&mut buf)),
            None => work(&mut buf),
        }
        out.write_all(&buf)
            .map_err(|e| ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}"))))?;
        first += rows;
    }
    Ok(())
}

/// Whether the output encoding of `t` is its source dtype, bit for bit.
fn same_encoding(dtype: DType, t: GgmlType) -> bool {
    matches!(
        (dtype, t),
        (DType::F32, GgmlType::F32) | (DType::F16, GgmlType::F16) | (DType::BF16, GgmlType::BF16)
    )
}

/// A BF16 value that f32 → bf16 rounding would change: a NaN without the quiet bit.
fn bf16_needs_rounding(bytes: &[u8]) -> bool {
    // Branch-free per block so the scan vectorizes; blocks are checked in parallel.
    bytes.par_chunks(1 << 16).any(|blk| {
        let mut bad = false;
        for c in blk.chunks_exact(2) {
            let w = u16::from_le_bytes([c[0], c[1]]);
            bad |= ((w & 0x7fff) > 0x7f80) & ((w & 0x40) == 0);
        }
        bad
    })
}

/// Fast path: the output bytes are the source bytes (possibly with rows permuted), because
/// decoding to f32 and encoding back is the identity. Returns `false` when it does not apply.
fn write_same_type(
    p: &PlannedTensor,
    out: &mut dyn Write,
    cancel: Option<&AtomicBool>,
) -> Result<bool> {
    let Source::Hf(t, transform) = &p.source else {
        return Ok(false);
    };
    if !same_encoding(t.dtype, p.ggml_type)
        || matches!(transform, Transform::Transpose | Transform::AddOne)
    {
        return Ok(false);
    }
    let bytes = t.data.as_bytes();
    if t.dtype == DType::BF16 && bf16_needs_rounding(bytes) {
        return Ok(false);
    }
    let werr =
        |e: std::io::Error| ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}")));
    let check = || -> Result<()> {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(ConvertError::Cancelled);
        }
        Ok(())
    };
    match transform {
        Transform::Permute(_) | Transform::QkvByPart(_) => {
            let rows = t.shape.first().copied().unwrap_or(1);
            let row_bytes = bytes.len() / rows.max(1);
            for r in 0..rows {
                if r % 4096 == 0 {
                    check()?;
                }
                let src = transform.src_row(r, rows).unwrap_or(r);
                out.write_all(&bytes[src * row_bytes..(src + 1) * row_bytes])
                    .map_err(werr)?;
            }
        }
        _ => {
            for chunk in bytes.chunks(CHUNK_ELEMS * 4) {
                check()?;
                out.write_all(chunk).map_err(werr)?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

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
