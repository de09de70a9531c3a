//! The block-format trait and row-level dispatch over every supported tensor type.

use std::fmt::Debug;

use super::float;
use super::{iq1, iq2, iq3, iq4, q2k, q3k, q4, q4k, q5, q5k, q6k, q8, tq};
use crate::formats::gguf::GgmlType;

/// One quantization block: a fixed number of f32 values stored in a fixed number of bytes.
pub trait Block: Sized + Copy + PartialEq + Debug {
    /// The ggml type this block belongs to.
    const TYPE: GgmlType;
    /// Elements per block.
    const ELEMS: usize;
    /// Bytes per block on disk.
    const BYTES: usize;

    /// Quantizes `x` (exactly [`Block::ELEMS`] values) like ggml's `quantize_row_*_ref`.
    fn quantize(x: &[f32]) -> Self;
    /// Writes the decoded values into `out` (exactly [`Block::ELEMS`] values).
    fn dequantize(&self, out: &mut [f32]);
    /// Serialises the block into `out` (exactly [`Block::BYTES`] bytes).
    fn write(&self, out: &mut [u8]);
    /// Parses a block from `b` (exactly [`Block::BYTES`] bytes).
    fn read(b: &[u8]) -> Self;
}

/// A block format with an importance-weighted quantizer: what ggml's `quantize_<type>` does
/// when it is given `quant_weights` (an imatrix row).
pub trait WeightedBlock: Block {
    /// A statistic of the whole row some formats weight by (the legacy 32-element types use
    /// the row's mean square); 0 for formats that compute theirs per block.
    fn row_stat(_row: &[f32]) -> f32 {
        0.0
    }
    /// Quantizes `x` (exactly [`Block::ELEMS`] values) with importance weights `qw` (as many)
    /// and the row statistic from [`WeightedBlock::row_stat`].
    fn quantize_weighted(x: &[f32], qw: &[f32], row_stat: f32) -> Self;
}

/// The legacy types' row statistic: `sum(x²) / n_per_row`, summed in order.
pub(crate) fn row_sigma2(row: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in row {
        sum_x2 += v * v;
    }
    sum_x2 / row.len() as f32
}

/// Quantizes one row with importance weights `qw` (one per column).
pub fn quantize_row_weighted<B: WeightedBlock>(row: &[f32], qw: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(row.len(), qw.len());
    debug_assert_eq!(row.len() / B::ELEMS * B::BYTES, dst.len());
    let stat = B::row_stat(row);
    for ((x, w), out) in row
        .chunks_exact(B::ELEMS)
        .zip(qw.chunks_exact(B::ELEMS))
        .zip(dst.chunks_exact_mut(B::BYTES))
    {
        B::quantize_weighted(x, w, stat).write(out);
    }
}

/// Quantizes whole blocks of `src` into `dst` with the scalar reference path.
pub fn quantize_blocks<B: Block>(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / B::ELEMS * B::BYTES, dst.len());
    for (x, out) in src
        .chunks_exact(B::ELEMS)
        .zip(dst.chunks_exact_mut(B::BYTES))
    {
        B::quantize(x).write(out);
    }
}

/// Dequantizes whole blocks of `src` into `dst`.
pub fn dequantize_blocks<B: Block>(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / B::BYTES * B::ELEMS, dst.len());
    for (b, out) in src
        .chunks_exact(B::BYTES)
        .zip(dst.chunks_exact_mut(B::ELEMS))
    {
        B::read(b).dequantize(out);
    }
}

/// Whether tinylm can produce `t` (and decode it).
pub fn is_supported(t: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        t,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q2K
            | Q3K
            | Q4K
            | Q5K
            | Q6K
            | IQ4NL
            | IQ4XS
            | IQ3XXS
            | IQ3S
            | IQ2XXS
            | IQ2XS
            | IQ2S
            | IQ1S
            | IQ1M
            | TQ1_0
            | TQ2_0
    )
}

/// Types ggml cannot quantize without importance weights (`ggml_quantize_requires_imatrix`).
pub fn requires_imatrix(t: GgmlType) -> bool {
    matches!(t, GgmlType::IQ2XXS | GgmlType::IQ2XS | GgmlType::IQ1S)
}

/// Encodes `rows` rows of `n_per_row` values with importance weights `qw` (one per column,
/// shared by every row), as ggml's `quantize_<type>(src, dst, nrow, n_per_row, qw)` does.
/// Types without a weighted path (Q8_0, TQ1_0, TQ2_0, floats) ignore `qw`.
///
/// Returns `false` for a type tinylm does not implement.
pub fn quantize_rows_weighted(t: GgmlType, src: &[f32], qw: &[f32], dst: &mut [u8]) -> bool {
    if !rows_fit(t, src, qw, dst) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        if unsafe { super::weighted_x8::quantize_rows(t, src, qw, dst) } {
            return true;
        }
    }
    if iq_rows(t, src, qw.len(), Some(qw), dst, true) {
        return true;
    }
    quantize_rows_weighted_reference(t, src, qw, dst)
}

/// Whether `src` is whole rows of `qw.len()` values and `dst` holds their encoding.
fn rows_fit(t: GgmlType, src: &[f32], qw: &[f32], dst: &[u8]) -> bool {
    let n = qw.len();
    n > 0
        && src.len().is_multiple_of(n)
        && t.bytes_for(n as u64)
            .is_some_and(|rb| rb as usize * (src.len() / n) == dst.len())
}

/// [`quantize_rows_weighted`] with the scalar reference ports only (to cross-check the fast
/// paths).
pub fn quantize_rows_weighted_reference(
    t: GgmlType,
    src: &[f32],
    qw: &[f32],
    dst: &mut [u8],
) -> bool {
    let n_per_row = qw.len();
    if n_per_row == 0 || !src.len().is_multiple_of(n_per_row) {
        return false;
    }
    let Some(row_bytes) = t.bytes_for(n_per_row as u64) else {
        return false;
    };
    fn rows<B: WeightedBlock>(src: &[f32], qw: &[f32], dst: &mut [u8], row_bytes: usize) {
        for (row, out) in src
            .chunks_exact(qw.len())
            .zip(dst.chunks_exact_mut(row_bytes))
        {
            quantize_row_weighted::<B>(row, qw, out);
        }
    }
    let rb = row_bytes as usize;
    use GgmlType::*;
    match t {
        Q4_0 => rows::<q4::BlockQ4_0>(src, qw, dst, rb),
        Q4_1 => rows::<q4::BlockQ4_1>(src, qw, dst, rb),
        Q5_0 => rows::<q5::BlockQ5_0>(src, qw, dst, rb),
        Q5_1 => rows::<q5::BlockQ5_1>(src, qw, dst, rb),
        Q2K => rows::<q2k::BlockQ2K>(src, qw, dst, rb),
        Q3K => rows::<q3k::BlockQ3K>(src, qw, dst, rb),
        Q4K => rows::<q4k::BlockQ4K>(src, qw, dst, rb),
        Q5K => rows::<q5k::BlockQ5K>(src, qw, dst, rb),
        Q6K => rows::<q6k::BlockQ6K>(src, qw, dst, rb),
        IQ4NL | IQ4XS | IQ3XXS | IQ3S | IQ2XXS | IQ2XS | IQ2S | IQ1S | IQ1M => {
            return iq_rows(t, src, n_per_row, Some(qw), dst, false);
        }
        _ => return quantize_row_reference(t, src, dst),
    }
    true
}

/// Rows of the IQ types (`n_per_row` values each), with or without importance weights; `fast`
/// selects the lane-parallel searches (same bytes). Returns `false` for other types and for
/// IQ2_XXS/IQ2_XS/IQ1_S without weights, which ggml cannot produce.
fn iq_rows(
    t: GgmlType,
    src: &[f32],
    n_per_row: usize,
    qw: Option<&[f32]>,
    dst: &mut [u8],
    fast: bool,
) -> bool {
    use GgmlType::*;
    if n_per_row == 0 || !src.len().is_multiple_of(n_per_row) {
        return false;
    }
    let Some(rb) = t.bytes_for(n_per_row as u64) else {
        return false;
    };
    let rb = rb as usize;
    fn each<B: Block>(
        src: &[f32],
        n_per_row: usize,
        qw: Option<&[f32]>,
        dst: &mut [u8],
        rb: usize,
        f: impl Fn(&[f32], Option<&[f32]>) -> B,
    ) {
        for (row, out) in src.chunks_exact(n_per_row).zip(dst.chunks_exact_mut(rb)) {
            for (k, o) in out.chunks_exact_mut(B::BYTES).enumerate() {
                let r = B::ELEMS * k..B::ELEMS * (k + 1);
                f(&row[r.clone()], qw.map(|q| &q[r])).write(o);
            }
        }
    }
    match (t, qw) {
        (IQ4NL, _) => iq4::quantize_nl_rows(src, n_per_row, qw, dst, fast),
        (IQ4XS, _) => each(src, n_per_row, qw, dst, rb, |x, w| {
            iq4::BlockIQ4XS::quantize_impl(x, w, fast)
        }),
        (IQ3XXS, _) => each(src, n_per_row, qw, dst, rb, |x, w| {
            iq3::BlockIQ3XXS::quantize_impl(x, w, fast)
        }),
        (IQ3S, _) => each(src, n_per_row, qw, dst, rb, |x, w| {
            iq3::BlockIQ3S::quantize_impl(x, w, fast)
        }),
        (IQ2S, _) => each(src, n_per_row, qw, dst, rb, |x, w| {
            iq2::BlockIQ2S::quantize_impl(x, w, fast)
        }),
        (IQ2XXS, Some(q)) => each(src, n_per_row, Some(q), dst, rb, |x, w| {
            iq2::BlockIQ2XXS::quantize_impl(x, w.unwrap_or(&[]), fast)
        }),
        (IQ2XS, Some(q)) => each(src, n_per_row, Some(q), dst, rb, |x, w| {
            iq2::BlockIQ2XS::quantize_impl(x, w.unwrap_or(&[]), fast)
        }),
        (IQ1S, Some(q)) => each(src, n_per_row, Some(q), dst, rb, |x, w| {
            <iq1::BlockIQ1S as WeightedBlock>::quantize_weighted(x, w.unwrap_or(&[]), 0.0)
        }),
        (IQ1M, _) => each(src, n_per_row, qw, dst, rb, |x, w| match w {
            Some(w) => <iq1::BlockIQ1M as WeightedBlock>::quantize_weighted(x, w, 0.0),
            None => iq1::BlockIQ1M::quantize(x),
        }),
        _ => return false,
    }
    true
}

/// Encodes `src` as type `t` into `dst`, which must hold exactly the encoded size.
///
/// Returns `false` for a type tinylm does not implement (see [`is_supported`]). `src.len()` must
/// be a multiple of the block size. Quantized types use the fast path, which is bit-identical to
/// the reference one.
pub fn quantize_row(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        return unsafe { quantize_row_avx2(t, src, dst) };
    }
    quantize_row_impl(t, src, dst)
}

/// [`quantize_row`] compiled for AVX2: the compiler may vectorise across elements and blocks,
/// never within a reduction (no reassociation, no FMA), so the bytes are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_avx2(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    quantize_row_impl(t, src, dst)
}

#[inline(always)]
fn quantize_row_impl(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    use GgmlType::*;
    match t {
        F32 => float::f32_to_f32_bytes(src, dst),
        F16 => float::f32_to_f16_bytes(src, dst),
        BF16 => float::f32_to_bf16_bytes(src, dst),
        Q4_0 => quantize_blocks::<q4::BlockQ4_0>(src, dst),
        Q4_1 => quantize_blocks::<q4::BlockQ4_1>(src, dst),
        Q5_0 => quantize_blocks::<q5::BlockQ5_0>(src, dst),
        Q5_1 => quantize_blocks::<q5::BlockQ5_1>(src, dst),
        Q8_0 => q8::quantize_row_q8_0(src, dst),
        Q2K => q2k::quantize_row(src, dst),
        Q3K => q3k::quantize_row(src, dst),
        Q4K => q4k::quantize_row(src, dst),
        Q5K => q5k::quantize_row(src, dst),
        Q6K => q6k::quantize_row(src, dst),
        IQ4NL | IQ4XS | IQ3XXS | IQ3S | IQ2S | IQ1M => {
            // Block-local without weights: a whole slice is one "row".
            return iq_rows(t, src, src.len(), None, dst, true);
        }
        TQ1_0 => quantize_blocks::<tq::BlockTQ1_0>(src, dst),
        TQ2_0 => quantize_blocks::<tq::BlockTQ2_0>(src, dst),
        // IQ2_XXS, IQ2_XS and IQ1_S exist only with importance weights.
        _ => return false,
    }
    true
}

/// Encodes with the scalar reference quantizers only (used to cross-check the fast path).
pub fn quantize_row_reference(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    use GgmlType::*;
    match t {
        Q4_0 => quantize_blocks::<q4::BlockQ4_0>(src, dst),
        Q4_1 => quantize_blocks::<q4::BlockQ4_1>(src, dst),
        Q5_0 => quantize_blocks::<q5::BlockQ5_0>(src, dst),
        Q5_1 => quantize_blocks::<q5::BlockQ5_1>(src, dst),
        Q8_0 => quantize_blocks::<q8::BlockQ8_0>(src, dst),
        Q2K => quantize_blocks::<q2k::BlockQ2K>(src, dst),
        Q3K => quantize_blocks::<q3k::BlockQ3K>(src, dst),
        Q4K => quantize_blocks::<q4k::BlockQ4K>(src, dst),
        Q5K => quantize_blocks::<q5k::BlockQ5K>(src, dst),
        Q6K => quantize_blocks::<q6k::BlockQ6K>(src, dst),
        IQ4NL | IQ4XS | IQ3XXS | IQ3S | IQ2S | IQ1M => {
            return iq_rows(t, src, src.len(), None, dst, false);
        }
        _ => return quantize_row_impl(t, src, dst),
    }
    true
}

/// Decodes `src` of type `t` into `dst`. Returns `false` for an unsupported type.
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        return unsafe { dequantize_row_avx2(t, src, dst) };
    }
    dequantize_row_impl(t, src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dequantize_row_avx2(t: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    dequantize_row_impl(t, src, dst)
}

#[inline(always)]
fn dequantize_row_impl(t: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
    use GgmlType::*;
    match t {
        F32 => float::f32_bytes_to_f32(src, dst),
        F16 => float::f16_bytes_to_f32(src, dst),
        BF16 => float::bf16_bytes_to_f32(src, dst),
        Q4_0 => dequantize_blocks::<q4::BlockQ4_0>(src, dst),
        Q4_1 => dequantize_blocks::<q4::BlockQ4_1>(src, dst),
        Q5_0 => dequantize_blocks::<q5::BlockQ5_0>(src, dst),
        Q5_1 => dequantize_blocks::<q5::BlockQ5_1>(src, dst),
        Q8_0 => dequantize_blocks::<q8::BlockQ8_0>(src, dst),
        Q2K => dequantize_blocks::<q2k::BlockQ2K>(src, dst),
        Q3K => dequantize_blocks::<q3k::BlockQ3K>(src, dst),
        Q4K => dequantize_blocks::<q4k::BlockQ4K>(src, dst),
        Q5K => dequantize_blocks::<q5k::BlockQ5K>(src, dst),
        Q6K => dequantize_blocks::<q6k::BlockQ6K>(src, dst),
        IQ4NL => dequantize_blocks::<iq4::BlockIQ4NL>(src, dst),
        IQ4XS => dequantize_blocks::<iq4::BlockIQ4XS>(src, dst),
        IQ3XXS => dequantize_blocks::<iq3::BlockIQ3XXS>(src, dst),
        IQ3S => dequantize_blocks::<iq3::BlockIQ3S>(src, dst),
        IQ2XXS => dequantize_blocks::<iq2::BlockIQ2XXS>(src, dst),
        IQ2XS => dequantize_blocks::<iq2::BlockIQ2XS>(src, dst),
        IQ2S => dequantize_blocks::<iq2::BlockIQ2S>(src, dst),
        IQ1S => dequantize_blocks::<iq1::BlockIQ1S>(src, dst),
        IQ1M => dequantize_blocks::<iq1::BlockIQ1M>(src, dst),
        TQ1_0 => dequantize_blocks::<tq::BlockTQ1_0>(src, dst),
        TQ2_0 => dequantize_blocks::<tq::BlockTQ2_0>(src, dst),
        _ => return false,
    }
    true
}

/// Reads a little-endian u16 at `i`.
#[inline(always)]
pub(crate) fn le16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
