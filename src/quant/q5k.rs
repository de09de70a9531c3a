//! Q5_K: 256 values in 8 sub-blocks of 32, 5-bit quants (nibbles + high-bit plane) with 6-bit
//! scales and mins.

use super::block::{Block, le16};
use super::float::f16v;
use super::k_helpers::{QK_K, get_scale_min_k4, make_qkx2_quants};
use super::q4k::{finish_scales, weights32};
use crate::formats::gguf::GgmlType;

/// A Q5_K block (176 bytes: `d: f16 | dmin: f16 | scales: u8[12] | qh: u8[32] | qs: u8[128]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ5K {
    /// Super-block scale for the scales, fp16 bits.
    pub d: u16,
    /// Super-block scale for the mins, fp16 bits.
    pub dmin: u16,
    /// Eight 6-bit (scale, min) pairs.
    pub scales: [u8; 12],
    /// High bits: bit `2c` (`2c+1`) of byte l belongs to element `64c + l` (`64c + 32 + l`).
    pub qh: [u8; 32],
    /// Low nibbles, laid out as in Q4_K.
    pub qs: [u8; 128],
}

/// Packs 5-bit quants into (qh, qs).
pub(crate) fn pack_q5k(l: &[u8; QK_K]) -> ([u8; 32], [u8; 128]) {
    let mut qh = [0u8; 32];
    let mut qs = [0u8; 128];
    for c in 0..4 {
        for k in 0..32 {
            let mut l1 = l[64 * c + k];
            if l1 > 15 {
                l1 -= 16;
                qh[k] |= 1 << (2 * c);
            }
            let mut l2 = l[64 * c + 32 + k];
            if l2 > 15 {
                l2 -= 16;
                qh[k] |= 1 << (2 * c + 1);
            }
            qs[32 * c + k] = l1 | (l2 << 4);
        }
    }
    (qh, qs)
}

impl Block for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5K;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 176;

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
                31,
                &mut l[32 * j..32 * j + 32],
                -0.5,
                0.1,
                15,
                false,
            );
            scales[j] = s;
            mins[j] = m;
        }
        let (d, dmin, sc) = finish_scales(x, &scales, &mins, 31, &mut l);
        let (qh, qs) = pack_q5k(&l);
        BlockQ5K {
            d,
            dmin,
            scales: sc,
            qh,
            qs,
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
                let h1 = (self.qh[k] >> (2 * c)) & 1;
                let h2 = (self.qh[k] >> (2 * c + 1)) & 1;
                out[64 * c + k] = d1 * f32::from((q & 0xf) + 16 * h1) - m1;
                out[64 * c + 32 + k] = d2 * f32::from((q >> 4) + 16 * h2) - m2;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.dmin.to_le_bytes());
        out[4..16].copy_from_slice(&self.scales);
        out[16..48].copy_from_slice(&self.qh);
        out[48..176].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut scales = [0u8; 12];
        scales.copy_from_slice(&b[4..16]);
        let mut qh = [0u8; 32];
        qh.copy_from_slice(&b[16..48]);
        let mut qs = [0u8; 128];
        qs.copy_from_slice(&b[48..176]);
        BlockQ5K {
            d: le16(b, 0),
            dmin: le16(b, 2),
            scales,
            qh,
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
    super::block::quantize_blocks::<BlockQ5K>(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_x8(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<QK_K>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(176)) {
        let (d, dmin, scales, l) = super::q4k::superblock_x8(x, 31, -0.5, 15);
        let (qh, qs) = pack_q5k(&l);
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
        .write(out);
    }
}

impl super::block::WeightedBlock for BlockQ5K {
    /// `quantize_row_q5_K_impl` with importance weights.
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        let (d, dmin, scales, l) = super::q4k::superblock_weighted(x, qw, 31, true);
        let (qh, qs) = pack_q5k(&l);
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }
}
