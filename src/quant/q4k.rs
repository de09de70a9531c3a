//! Q4_K: 256 values in 8 sub-blocks of 32, 4-bit quants with 6-bit scales and mins.

use super::block::{Block, le16};
use super::float::{f16v, fp16, nearest_int};
use super::k_helpers::{QK_K, get_scale_min_k4, make_qkx2_quants, pack_scale_min_k4};
use crate::formats::gguf::GgmlType;

/// A Q4_K block (144 bytes: `d: f16 | dmin: f16 | scales: u8[12] | qs: u8[128]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ4K {
    /// Super-block scale for the scales, fp16 bits.
    pub d: u16,
    /// Super-block scale for the mins, fp16 bits.
    pub dmin: u16,
    /// Eight 6-bit (scale, min) pairs, see [`get_scale_min_k4`].
    pub scales: [u8; 12],
    /// Nibbles: byte `32c + l` holds element `64c + l` (low) and `64c + 32 + l` (high).
    pub qs: [u8; 128],
}

/// The `av_x + |x|` weights of one 32-element sub-block (Q4_K and Q5_K).
#[inline(always)]
pub(crate) fn weights32(x: &[f32], w: &mut [f32; 32]) {
    let mut sum_x2 = 0.0f32;
    for &v in &x[..32] {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    for (wi, &v) in w.iter_mut().zip(x) {
        *wi = av_x + v.abs();
    }
}

/// Turns per-sub-block (scale, min) floats into the packed 6-bit form and the two fp16 super
/// scales, then recomputes the quants with those (clamped to `0..=nmax`). Shared by Q4_K and
/// Q5_K and by the scalar and lane-parallel paths.
pub(crate) fn finish_scales(
    x: &[f32],
    scales: &[f32; 8],
    mins: &[f32; 8],
    nmax: i32,
    l: &mut [u8; QK_K],
) -> (u16, u16, [u8; 12]) {
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        // `uint8_t ls = nearest_int(..)` wraps before the MIN(63, ..).
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = fp16(max_scale / 63.0);
    let dmin = fp16(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dd = f16v(d) * f32::from(sc);
        if dd == 0.0 {
            continue;
        }
        let dm = f16v(dmin) * f32::from(m);
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / dd).clamp(0, nmax);
            l[32 * j + ii] = q as u8;
        }
    }
    (d, dmin, packed)
}

/// Packs Q4_K nibbles.
pub(crate) fn pack_q4k(l: &[u8; QK_K]) -> [u8; 128] {
    let mut qs = [0u8; 128];
    for c in 0..4 {
        for k in 0..32 {
            qs[32 * c + k] = l[64 * c + k] | (l[64 * c + 32 + k] << 4);
        }
    }
    qs
}

impl Block for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4K;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 144;

    fn quantize(x: &[f32]) -> Self {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 8];
        let mut mins = [0f32; 8];
        let mut w = [0f32; 32];
        for j in 0..8 {
            let xs = &x[32 * j..32 * j + 32];
            weights32(xs, &mut w);
            let (s, m) = make_qkx2_quants(
                xs,
                &w,
                15,
                &mut l[32 * j..32 * j + 32],
                -1.0,
                0.1,
                20,
                false,
            );
            scales[j] = s;
            mins[j] = m;
        }
        let (d, dmin, sc) = finish_scales(x, &scales, &mins, 15, &mut l);
        BlockQ4K {
            d,
            dmin,
            scales: sc,
            qs: pack_q4k(&l),
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        let min = f16v(self.dmin);
        for c in 0..4 {
            let (sc1, m1) = get_scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = get_scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
            let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
            for k in 0..32 {
                let q = self.qs[32 * c + k];
                out[64 * c + k] = d1 * f32::from(q & 0xf) - m1;
                out[64 * c + 32 + k] = d2 * f32::from(q >> 4) - m2;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.dmin.to_le_bytes());
        out[4..16].copy_from_slice(&self.scales);
        out[16..144].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut scales = [0u8; 12];
        scales.copy_from_slice(&b[4..16]);
        let mut qs = [0u8; 128];
        qs.copy_from_slice(&b[16..144]);
        BlockQ4K {
            d: le16(b, 0),
            dmin: le16(b, 2),
            scales,
            qs,
        }
    }
}

/// Quantizes a row of whole super-blocks (fast path).
pub fn quantize_row(src: &[f32], dst: &mut [u8]) {
    super::block::quantize_blocks::<BlockQ4K>(src, dst);
}
