//! Q5_0 and Q5_1: 32 values as 5-bit quants (low nibbles plus a 32-bit mask of high bits).

use super::block::{Block, le16};
use super::float::{f16v, fp16, trunc_i8};
use super::q4::{min_max, signed_absmax};
use crate::formats::gguf::GgmlType;

/// A Q5_0 block (22 bytes: `d: f16 | qh: u8[4] | qs: u8[16]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ5_0 {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Fifth bits: bit j belongs to element j.
    pub qh: u32,
    /// Low nibbles, packed as in Q4_0.
    pub qs: [u8; 16],
}

/// A Q5_1 block (24 bytes: `d: f16 | m: f16 | qh: u8[4] | qs: u8[16]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ5_1 {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Minimum, fp16 bits.
    pub m: u16,
    /// Fifth bits.
    pub qh: u32,
    /// Low nibbles.
    pub qs: [u8; 16],
}

/// Packs 32 five-bit quants: nibbles into `qs`, bit 4 of element j into bit j of `qh`.
#[inline(always)]
pub(crate) fn pack5(q: &[u8; 32]) -> (u32, [u8; 16]) {
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let (q0, q1) = (q[j], q[j + 16]);
        qs[j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
        qh |= u32::from((q0 & 0x10) >> 4) << j;
        qh |= u32::from((q1 & 0x10) >> 4) << (j + 16);
    }
    (qh, qs)
}

#[inline(always)]
fn unpack5(qh: u32, qs: &[u8; 16]) -> [u8; 32] {
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
        q[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
    }
    q
}

impl Block for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    const ELEMS: usize = 32;
    const BYTES: usize = 22;

    fn quantize(x: &[f32]) -> Self {
        let max = signed_absmax(&x[..32]);
        let d = max / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut q = [0u8; 32];
        for (qj, &v) in q.iter_mut().zip(x) {
            *qj = trunc_i8(v * id + 16.5).min(31) as u8;
        }
        let (qh, qs) = pack5(&q);
        BlockQ5_0 { d: fp16(d), qh, qs }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for (o, q) in out[..32].iter_mut().zip(unpack5(self.qh, &self.qs)) {
            *o = (i32::from(q) - 16) as f32 * d;
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..6].copy_from_slice(&self.qh.to_le_bytes());
        out[6..22].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[6..22]);
        BlockQ5_0 {
            d: le16(b, 0),
            qh: u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            qs,
        }
    }
}

impl Block for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    const ELEMS: usize = 32;
    const BYTES: usize = 24;

    fn quantize(x: &[f32]) -> Self {
        let (min, max) = min_max(&x[..32]);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut q = [0u8; 32];
        for (qj, &v) in q.iter_mut().zip(x) {
            // `(uint8_t)(float)`: truncation, no clamp.
            *qj = (((v - min) * id + 0.5) as i32) as u8;
        }
        let (qh, qs) = pack5(&q);
        BlockQ5_1 {
            d: fp16(d),
            m: fp16(min),
            qh,
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        let m = f16v(self.m);
        for (o, q) in out[..32].iter_mut().zip(unpack5(self.qh, &self.qs)) {
            *o = f32::from(q) * d + m;
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..8].copy_from_slice(&self.qh.to_le_bytes());
        out[8..24].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[8..24]);
        BlockQ5_1 {
            d: le16(b, 0),
            m: le16(b, 2),
            qh: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            qs,
        }
    }
}

impl super::block::WeightedBlock for BlockQ5_0 {
    fn row_stat(row: &[f32]) -> f32 {
        super::block::row_sigma2(row)
    }

    /// `quantize_row_q5_0_impl`: a weighted symmetric search (`make_qx_quants`, nmax 16).
    fn quantize_weighted(x: &[f32], qw: &[f32], sigma2: f32) -> Self {
        let mut w = [0f32; 32];
        super::q4::legacy_weights(x, qw, sigma2, &mut w);
        let mut l = [0i8; 32];
        let d = super::k_helpers::make_qx_quants_w(&x[..32], 16, &mut l, &w);
        let q: [u8; 32] = std::array::from_fn(|j| l[j] as u8);
        let (qh, qs) = pack5(&q);
        BlockQ5_0 { d: fp16(d), qh, qs }
    }
}

impl super::block::WeightedBlock for BlockQ5_1 {
    fn row_stat(row: &[f32]) -> f32 {
        super::block::row_sigma2(row)
    }

    /// `quantize_row_q5_1_impl`: a weighted asymmetric search (`make_qkx3_quants`, nmax 31).
    fn quantize_weighted(x: &[f32], qw: &[f32], sigma2: f32) -> Self {
        let mut w = [0f32; 32];
        super::q4::legacy_weights(x, qw, sigma2, &mut w);
        let mut l = [0u8; 32];
        let (d, the_min) =
            super::k_helpers::make_qkx3_quants(&x[..32], &w, 31, &mut l, -0.9, 0.05, 36, false);
        let (qh, qs) = pack5(&l);
        BlockQ5_1 {
            d: fp16(d),
            m: fp16(-the_min),
            qh,
            qs,
        }
    }
}
