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
    requant_k(x, d, dmin, &packed, nmax, l);
    (d, dmin, packed)
}

/// Recomputes the quants of a Q4_K/Q5_K super-block from its packed scales and mins (clamped
/// to `0..=nmax`); sub-blocks whose scale is zero keep their search result.
pub(crate) fn requant_k(
    x: &[f32],
    d: u16,
    dmin: u16,
    packed: &[u8; 12],
    nmax: i32,
    l: &mut [u8; QK_K],
) {
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, packed);
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

/// Quantizes a row of whole super-blocks (fast path: lane-parallel sub-blocks on AVX2).
pub fn quantize_row(src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if super::lanes::available() {
        // SAFETY: AVX2 support was checked at run time.
        unsafe { quantize_row_x8(src, dst) };
        return;
    }
    super::block::quantize_blocks::<BlockQ4K>(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_x8(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<QK_K>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(144)) {
        let (d, dmin, scales, l) = superblock_x8(x, 15, -1.0, 20);
        BlockQ4K {
            d,
            dmin,
            scales,
            qs: pack_q4k(&l),
        }
        .write(out);
    }
}

/// The shared Q4_K/Q5_K super-block search with the eight sub-blocks in SIMD lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn superblock_x8(
    x: &[f32; QK_K],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    let mut w = [0f32; QK_K];
    let (wc, _) = w.as_chunks_mut::<32>();
    for (j, wj) in wc.iter_mut().enumerate() {
        weights32(&x[32 * j..32 * j + 32], wj);
    }
    let mut l = [0u8; QK_K];
    let (scales, mins) =
        super::lanes::make_qkx2_x8::<32>(x, &w, nmax, &mut l, rmin, 0.1, nstep, false);
    let (d, dmin, sc) = finish_scales(x, &scales, &mins, nmax, &mut l);
    (d, dmin, sc, l)
}

/// The imatrix weighting of Q4_K/Q5_K (and the IQ types): `qw * sqrt(sigma2 + x²)` for one
/// 32-element sub-block, plus the sum of those weights.
#[inline(always)]
pub(crate) fn imatrix_weights32(x: &[f32], qw: &[f32], sigma2: f32, w: &mut [f32; 32]) -> f32 {
    for l in 0..32 {
        w[l] = qw[l] * (sigma2 + x[l] * x[l]).sqrt();
    }
    let mut sumw = 0.0f32;
    for &v in w.iter() {
        sumw += v;
    }
    sumw
}

/// `2 * sum(x²) / 256` over a super-block, the `sigma2` of most imatrix quantizers.
#[inline(always)]
pub(crate) fn sigma2_x2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in &x[..QK_K] {
        sum_x2 += v * v;
    }
    2.0 * sum_x2 / QK_K as f32
}

/// The weighted Q4_K/Q5_K super-block search (`quantize_row_q{4,5}_K_impl`): per sub-block
/// `make_qkx3_quants`, then 6-bit scales and mins by `make_qp_quants`. `clamp63` is Q5_K's
/// `MIN(63, ·)` on the packed values, which Q4_K does not apply.
pub(crate) fn superblock_weighted(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    clamp63: bool,
) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    use super::k_helpers::{make_qkx3_quants, make_qp_quants};
    let sigma2 = sigma2_x2(x);
    let mut l = [0u8; QK_K];
    let mut w = [0f32; 32];
    let mut sw = [0f32; 8];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    for j in 0..8 {
        let r = 32 * j..32 * j + 32;
        sw[j] = imatrix_weights32(&x[r.clone()], &qw[r.clone()], sigma2, &mut w);
        let (s, m) = make_qkx3_quants(&x[r.clone()], &w, nmax, &mut l[r], -0.9, 0.05, 36, false);
        scales[j] = s;
        mins[j] = m;
    }
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(&scales, 63, &mut ls, &sw);
    let m_block = make_qp_quants(&mins, 63, &mut lm, &sw);
    if clamp63 {
        for j in 0..8 {
            ls[j] = ls[j].min(63);
            lm[j] = lm[j].min(63);
        }
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = fp16(d_block);
    let dmin = fp16(m_block);
    requant_k(x, d, dmin, &packed, nmax, &mut l);
    (d, dmin, packed, l)
}

impl super::block::WeightedBlock for BlockQ4K {
    /// `quantize_row_q4_K_impl` with importance weights.
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        let (d, dmin, scales, l) = superblock_weighted(x, qw, 15, false);
        BlockQ4K {
            d,
            dmin,
            scales,
            qs: pack_q4k(&l),
        }
    }
}
