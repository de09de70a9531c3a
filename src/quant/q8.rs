//! Q8_0: 32 values as an fp16 scale and 32 signed bytes.

#![allow(unsafe_code)]

use super::block::{Block, le16};
use super::float::{f16v, fp16, roundf};
use crate::formats::gguf::GgmlType;

/// A Q8_0 block (34 bytes: `d: f16 | qs: i8[32]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Quants.
    pub qs: [i8; 32],
}

impl Block for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    const ELEMS: usize = 32;
    const BYTES: usize = 34;

    fn quantize(x: &[f32]) -> Self {
        let mut amax = 0.0f32;
        for &v in &x[..32] {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = (roundf(v * id) as i32) as i8;
        }
        BlockQ8_0 { d: fp16(d), qs }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for (o, &q) in out[..32].iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, &q) in out[2..34].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(&b[2..34]) {
            *q = v as i8;
        }
        BlockQ8_0 { d: le16(b, 0), qs }
    }
}

/// Q8_0 over a whole row, written straight into `dst` without intermediate structs.
///
/// Same operations as [`BlockQ8_0::quantize`]; `roundf` is computed exactly through truncation
/// so the loop vectorises (|x·id| ≤ 127.x here, far inside i32).
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        unsafe { row_avx2(src, dst) };
        return;
    }
    row(src, dst);
}

/// [`row`] with explicit AVX2: the per-element operations are the same (one multiply, C
/// `roundf` via truncation, no FMA); only the block maximum is taken over 8 lanes, which gives
/// the same value for finite inputs (non-finite inputs are rejected before any output is kept).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn row_avx2(src: &[f32], dst: &mut [u8]) {
    use std::arch::x86_64::*;
    let (blocks, _) = src.as_chunks::<32>();
    let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let half = _mm256_set1_ps(0.5);
    let neg_half = _mm256_set1_ps(-0.5);
    // packs works within 128-bit halves; this puts the 32 bytes back in element order.
    let unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(34)) {
        // SAFETY: `x` is 32 readable f32; loadu has no alignment requirement.
        let v: [__m256; 4] =
            std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x[8 * i..].as_ptr()) });
        let m = _mm256_max_ps(
            _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
            _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)),
        );
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` is 8 writable f32; storeu has no alignment requirement.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        let amax = lanes
            .iter()
            .fold(0.0f32, |acc, &a| if acc > a { acc } else { a });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out[..2].copy_from_slice(&fp16(d).to_le_bytes());
        let idv = _mm256_set1_ps(id);
        let q: [__m256i; 4] = std::array::from_fn(|i| {
            let y = _mm256_mul_ps(v[i], idv);
            let t = _mm256_cvttps_epi32(y); // toward zero
            let frac = _mm256_sub_ps(y, _mm256_cvtepi32_ps(t)); // exact
            // Compare masks are -1 where true: t + (frac >= 0.5) - (frac <= -0.5).
            let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, half));
            let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, neg_half));
            _mm256_add_epi32(_mm256_sub_epi32(t, up), down)
        });
        // |q| <= 127, so the saturating packs are plain narrowing casts.
        let w = _mm256_packs_epi16(
            _mm256_packs_epi32(q[0], q[1]),
            _mm256_packs_epi32(q[2], q[3]),
        );
        let w = _mm256_permutevar8x32_epi32(w, unshuffle);
        // SAFETY: `out[2..34]` is 32 writable bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(out[2..34].as_mut_ptr().cast(), w) };
    }
}

#[inline(always)]
fn row(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<32>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(34)) {
        let mut amax = 0.0f32;
        for &v in x {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out[..2].copy_from_slice(&fp16(d).to_le_bytes());
        let mut qs = [0u8; 32];
        for (q, &v) in qs.iter_mut().zip(x) {
            let y = v * id;
            let t = y as i32; // toward zero
            let frac = y - t as f32; // exact
            let r = t + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
            *q = r as u8;
        }
        out[2..34].copy_from_slice(&qs);
    }
}
