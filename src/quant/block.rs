//! The block-format trait and row-level dispatch over every supported tensor type.

use std::fmt::Debug;

use super::float;
use super::{q2k, q3k, q4, q4k, q5, q5k, q6k, q8};
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
        F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K
    )
}

/// Encodes `src` as type `t` into `dst`, which must hold exactly the encoded size.
///
/// Returns `false` for a type tinylm does not implement (see [`is_supported`]). `src.len()` must
/// be a multiple of the block size. Quantized types use the fast path, which is bit-identical to
/// the reference one.
pub fn quantize_row(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
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
        _ => return false,
    }
    true
}

/// Encodes with the scalar reference quantizers only (used to cross-check the fast path).
pub fn quantize_row_reference(t: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    use GgmlType::*;
    match t {
        Q8_0 => quantize_blocks::<q8::BlockQ8_0>(src, dst),
        Q2K => quantize_blocks::<q2k::BlockQ2K>(src, dst),
        Q3K => quantize_blocks::<q3k::BlockQ3K>(src, dst),
        Q4K => quantize_blocks::<q4k::BlockQ4K>(src, dst),
        Q5K => quantize_blocks::<q5k::BlockQ5K>(src, dst),
        Q6K => quantize_blocks::<q6k::BlockQ6K>(src, dst),
        _ => return quantize_row(t, src, dst),
    }
    true
}

/// Decodes `src` of type `t` into `dst`. Returns `false` for an unsupported type.
pub fn dequantize_row(t: GgmlType, src: &[u8], dst: &mut [f32]) -> bool {
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
        _ => return false,
    }
    true
}

/// Reads a little-endian u16 at `i`.
#[inline(always)]
pub(crate) fn le16(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
