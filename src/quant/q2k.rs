//! Q2_K: 256 values in 16 sub-blocks of 16, 2-bit quants with 4-bit scales and mins.

use super::block::{Block, le16};
use super::float::{f16v, fp16, nearest_int};
use super::k_helpers::{QK_K, make_qkx2_quants, pack_2bit, unpack_2bit};
use crate::formats::gguf::GgmlType;

/// A Q2_K block (84 bytes: `scales: u8[16] | qs: u8[64] | d: f16 | dmin: f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ2K {
    /// Per sub-block: scale in the low nibble, min in the high nibble.
    pub scales: [u8; 16],
    /// 2-bit quants, see [`pack_2bit`].
    pub qs: [u8; 64],
    /// Super-block scale for the scales, fp16 bits.
    pub d: u16,
    /// Super-block scale for the mins, fp16 bits.
    pub dmin: u16,
}

/// Second half of the Q2_K quantizer: given the per-sub-block (scale, min) pairs and the
/// initial quants `l`, packs the block. Shared by the scalar and the lane-parallel paths.
pub(crate) fn finish(
    x: &[f32],
    scales: &[f32; 16],
    mins: &[f32; 16],
    l: &mut [u8; QK_K],
) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..16 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let mut sc = [0u8; 16];
    let d;
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        d = fp16(max_scale / Q4SCALE);
    } else {
        d = fp16(0.0);
    }
    let dmin = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        fp16(max_min / Q4SCALE)
    } else {
        fp16(0.0)
    };
    for j in 0..16 {
        let dd = f16v(d) * f32::from(sc[j] & 0xf);
        if dd == 0.0 {
            continue;
        }
        let dm = f16v(dmin) * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / dd).clamp(0, 3);
            l[16 * j + ii] = q as u8;
        }
    }
    let mut qs = [0u8; 64];
    pack_2bit(l, &mut qs);
    BlockQ2K {
        scales: sc,
        qs,
        d,
        dmin,
    }
}

impl Block for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2K;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 84;

    fn quantize(x: &[f32]) -> Self {
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut w = [0f32; 16];
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            for (wi, xi) in w.iter_mut().zip(xs) {
                *wi = xi.abs();
            }
            let (s, m) =
                make_qkx2_quants(xs, &w, 3, &mut l[16 * j..16 * j + 16], -0.5, 0.1, 15, true);
            scales[j] = s;
            mins[j] = m;
        }
        finish(x, &scales, &mins, &mut l)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        let min = f16v(self.dmin);
        let q = unpack_2bit(&self.qs);
        for j in 0..16 {
            let sc = self.scales[j];
            let dl = d * f32::from(sc & 0xf);
            let ml = min * f32::from(sc >> 4);
            for ii in 0..16 {
                out[16 * j + ii] = dl * f32::from(q[16 * j + ii]) - ml;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..16].copy_from_slice(&self.scales);
        out[16..80].copy_from_slice(&self.qs);
        out[80..82].copy_from_slice(&self.d.to_le_bytes());
        out[82..84].copy_from_slice(&self.dmin.to_le_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let mut scales = [0u8; 16];
        scales.copy_from_slice(&b[..16]);
        let mut qs = [0u8; 64];
        qs.copy_from_slice(&b[16..80]);
        BlockQ2K {
            scales,
            qs,
            d: le16(b, 80),
            dmin: le16(b, 82),
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
    super::block::quantize_blocks::<BlockQ2K>(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_x8(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<QK_K>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(84)) {
        let mut w = [0f32; QK_K];
        for (wi, xi) in w.iter_mut().zip(x) {
            *wi = xi.abs();
        }
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        for g in 0..2 {
            let r = 128 * g..128 * g + 128;
            let (s, m) = super::lanes::make_qkx2_x8::<16>(
                &x[r.clone()],
                &w[r.clone()],
                3,
                &mut l[r],
                -0.5,
                0.1,
                15,
                true,
            );
            scales[8 * g..8 * g + 8].copy_from_slice(&s);
            mins[8 * g..8 * g + 8].copy_from_slice(&m);
        }
        finish(x, &scales, &mins, &mut l).write(out);
    }
}

impl super::block::WeightedBlock for BlockQ2K {
    /// `quantize_row_q2_K_impl`: weighted `make_qkx3_quants` per sub-block, then 4-bit scales
    /// and mins by `make_qp_quants`.
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        use super::k_helpers::{make_qkx3_quants, make_qp_quants};
        let mut sumx2 = 0.0f32;
        for &v in &x[..QK_K] {
            sumx2 += v * v;
        }
        let sigma2 = sumx2 / QK_K as f32;
        let mut l = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut w = [0f32; 16];
        for j in 0..16 {
            let r = 16 * j..16 * j + 16;
            for (k, wk) in w.iter_mut().enumerate() {
                let v = x[16 * j + k];
                *wk = qw[16 * j + k] * (sigma2 + v * v).sqrt();
            }
            for &v in &w {
                sw[j] += v;
            }
            let (s, m) = make_qkx3_quants(&x[r.clone()], &w, 3, &mut l[r], -0.9, 0.05, 36, false);
            scales[j] = s;
            mins[j] = m;
        }
        let mut ls = [0u8; 16];
        let mut lm = [0u8; 16];
        let dm = make_qp_quants(&scales, 15, &mut ls, &sw);
        let mm = make_qp_quants(&mins, 15, &mut lm, &sw);
        let d = fp16(dm);
        let dmin = fp16(mm);
        let (dm, mm) = (f16v(d), f16v(dmin));
        let mut sc = [0u8; 16];
        for j in 0..16 {
            sc[j] = ls[j] | (lm[j] << 4);
        }
        for j in 0..16 {
            let dj = dm * f32::from(sc[j] & 0xf);
            if dj == 0.0 {
                continue;
            }
            let mj = mm * f32::from(sc[j] >> 4);
            for ii in 0..16 {
                let q = nearest_int((x[16 * j + ii] + mj) / dj).clamp(0, 3);
                l[16 * j + ii] = q as u8;
            }
        }
        let mut qs = [0u8; 64];
        pack_2bit(&l, &mut qs);
        BlockQ2K {
            scales: sc,
            qs,
            d,
            dmin,
        }
    }
}
