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
        Source::Hf(t, Transform::Permute(n_head)) => {
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
                let src_r = permute_src(r, rows, *n_head);
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
/// Elements per chunk: converted in parallel, written, and then (for mapped sources) dropped
/// from memory, so the resident set stays a couple of chunks whatever the model size.
const CHUNK_ELEMS: usize = 1 << 22;

/// Streams the encoded bytes of `p` into `out`, chunk by chunk: each chunk's source pages are
/// mapped in one call, converted in parallel straight from bytes to bytes when the dtype pair
/// allows it ([`crate::quant::convert_run`]), written, and released.
pub fn write_tensor(
    p: &PlannedTensor,
    out: &mut dyn Write,
    cancel: Option<&AtomicBool>,
    pool: Option<&rayon::ThreadPool>,
) -> Result<()> {
    let row_len = p.shape.last().copied().unwrap_or(1).max(1);
    let n_rows = p.n_elements() / row_len;
    let rb = row_bytes(p.ggml_type, row_len);
    if rb == 0 && n_rows > 0 {
        return Err(tensor_err(
            &p.name,
            format!("cannot encode {}", p.ggml_type),
        ));
    }
    // Chunks whose output rows read exactly the same source rows: any rows for a plain copy,
    // whole heads for the Q/K permutation, everything for a transpose (and for layouts this
    // function does not know, which release their pages only at the end).
    let mapped = match &p.source {
        Source::Hf(t, tr) => Some((t, tr)),
        Source::Values(_) => None,
    };
    let (align, whole) = match mapped {
        Some((t, Transform::Permute(n_head))) if t.shape.len() == 2 => {
            ((n_rows / (*n_head).max(1)).max(1), false)
        }
        Some((_, Transform::None)) | None => (1, false),
        _ => (n_rows.max(1), true),
    };
    let rows_per_item = (ITEM_ELEMS / row_len).max(1);
    let rows_per_chunk = ((CHUNK_ELEMS / row_len).max(1) / rows_per_item).max(1) * rows_per_item;
    let rows_per_chunk = rows_per_chunk.div_ceil(align) * align;
    // A transpose reads the whole input per chunk: one chunk, one work item.
    let item_rows = if whole { rows_per_chunk } else { rows_per_item };
    let elem = mapped.map_or(4, |(t, _)| t.dtype.size());
    let mut buf: Vec<u8> = Vec::new();
    let mut first = 0;
    while first < n_rows {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(ConvertError::Cancelled);
        }
        let rows = rows_per_chunk.min(n_rows - first);
        let window = first * row_len * elem..(first + rows) * row_len * elem;
        if let Some((t, _)) = mapped {
            t.data.prefetch(window.clone());
        }
        buf.resize(rows * rb, 0);
        let work = |buf: &mut Vec<u8>| {
            buf.par_chunks_mut(item_rows * rb)
                .enumerate()
                .for_each(|(i, dst)| fill_encoded(p, first + i * item_rows, row_len, dst));
        };
        match pool {
            Some(pool) => pool.install(|| work(&mut buf)),
            None => work(&mut buf),
        }
        out.write_all(&buf)
            .map_err(|e| ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}"))))?;
        if let Some((t, _)) = mapped {
            t.data.release(window);
        }
        first += rows;
    }
    Ok(())
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
            Transform::Permute(n_head) if t.shape.len() == 2 && n > 0 => {
                let rows = t.shape[0];
                let (src_row, dst_row) = (row_len * sz, dst.len() / (n / row_len));
                let mut converted = true;
                for (j, d) in dst.chunks_mut(dst_row).enumerate() {
                    let r = permute_src(first + j, rows, *n_head);
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

    #[test]
    fn permutation_interleaves_the_two_halves_of_each_head() {
        // hd = 4: new[h*4 + 2i] = old[h*4 + i], new[h*4 + 2i + 1] = old[h*4 + 2 + i]
        let got: Vec<usize> = (0..8).map(|r| permute_src(r, 8, 2)).collect();
        assert_eq!(got, vec![0, 2, 1, 3, 4, 6, 5, 7]);
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
