//! Q6_K: 256 values in 16 sub-blocks of 16, 6-bit quants with signed 8-bit scales.

use super::block::{Block, le16};
use super::float::{f16v, fp16, nearest_int};
use super::k_helpers::{GROUP_MAX_EPS, QK_K, make_qx_quants};
use crate::formats::gguf::GgmlType;

/// A Q6_K block (210 bytes: `ql: u8[128] | qh: u8[64] | scales: i8[16] | d: f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ6K {
    /// Low nibbles.
    pub ql: [u8; 128],
    /// High 2-bit pairs.
    pub qh: [u8; 64],
    /// Per sub-block scales.
    pub scales: [i8; 16],
    /// Super-block scale, fp16 bits.
    pub d: u16,
}

impl BlockQ6K {
    const ZERO: BlockQ6K = BlockQ6K {
        ql: [0; 128],
        qh: [0; 64],
        scales: [0; 16],
        d: 0,
    };
}

/// Second half of the Q6_K quantizer, from the per-sub-block scales and quants.
pub(crate) fn finish(x: &[f32], scales: &[f32; 16], l: &mut [i8; QK_K]) -> BlockQ6K {
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for &s in scales {
        let a = s.abs();
        if a > max_abs_scale {
            max_abs_scale = a;
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        return BlockQ6K::ZERO;
    }
    let iscale = -128.0 / max_scale;
    let d = fp16(1.0 / iscale);
    let mut sc = [0i8; 16];
    for (s, &v) in sc.iter_mut().zip(scales) {
        *s = nearest_int(iscale * v).min(127) as i8;
    }
    for j in 0..16 {
        let dd = f16v(d) * f32::from(sc[j]);
        if dd == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / dd).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    let mut ql = [0u8; 128];
    let mut qh = [0u8; 64];
    for h in 0..2 {
        let (lb, qlb, qhb) = (128 * h, 64 * h, 32 * h);
        for k in 0..32 {
            let q = |o: usize| l[lb + k + o] as u8;
            ql[qlb + k] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
            ql[qlb + k + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
            qh[qhb + k] =
                (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
        }
    }
    BlockQ6K {
        ql,
        qh,
        scales: sc,
        d,
    }
}

impl Block for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6K;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 210;

    fn quantize(x: &[f32]) -> Self {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for j in 0..16 {
            scales[j] = make_qx_quants(&x[16 * j..16 * j + 16], 32, &mut l[16 * j..16 * j + 16]);
        }
        finish(x, &scales, &mut l)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for h in 0..2 {
            let (lb, qlb, qhb) = (128 * h, 64 * h, 32 * h);
            for k in 0..32 {
                let is = k / 16;
                let ql0 = self.ql[qlb + k];
                let ql1 = self.ql[qlb + k + 32];
                let qh = self.qh[qhb + k];
                let q1 = i32::from((ql0 & 0xf) | ((qh & 3) << 4)) - 32;
                let q2 = i32::from((ql1 & 0xf) | (((qh >> 2) & 3) << 4)) - 32;
                let q3 = i32::from((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32;
                let q4 = i32::from((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32;
                let sc = &self.scales[8 * h..8 * h + 8];
                out[lb + k] = d * f32::from(sc[is]) * q1 as f32;
                out[lb + k + 32] = d * f32::from(sc[is + 2]) * q2 as f32;
                out[lb + k + 64] = d * f32::from(sc[is + 4]) * q3 as f32;
                out[lb + k + 96] = d * f32::from(sc[is + 6]) * q4 as f32;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..128].copy_from_slice(&self.ql);
        out[128..192].copy_from_slice(&self.qh);
        for (o, &s) in out[192..208].iter_mut().zip(&self.scales) {
            *o = s as u8;
        }
        out[208..210].copy_from_slice(&self.d.to_le_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let mut ql = [0u8; 128];
        ql.copy_from_slice(&b[..128]);
        let mut qh = [0u8; 64];
        qh.copy_from_slice(&b[128..192]);
        let mut scales = [0i8; 16];
        for (s, &v) in scales.iter_mut().zip(&b[192..208]) {
            *s = v as i8;
        }
        BlockQ6K {
            ql,
            qh,
            scales,
            d: le16(b, 208),
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
    super::block::quantize_blocks::<BlockQ6K>(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_x8(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<QK_K>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(210)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for g in 0..2 {
            let r = 128 * g..128 * g + 128;
            let s = super::lanes::make_qx_x8(&x[r.clone()], 32, &mut l[r]);
            scales[8 * g..8 * g + 8].copy_from_slice(&s);
        }
        finish(x, &scales, &mut l).write(out);
    }
}

impl super::block::WeightedBlock for BlockQ6K {
    /// `quantize_row_q6_K_impl` with importance weights: the imatrix row itself weighs each
    /// sub-block's symmetric search.
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for (j, s) in scales.iter_mut().enumerate() {
            let r = 16 * j..16 * j + 16;
            *s = super::k_helpers::make_qx_quants_w(&x[r.clone()], 32, &mut l[r.clone()], &qw[r]);
        }
        finish(x, &scales, &mut l)
    }
}
