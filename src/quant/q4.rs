//! Q4_0 and Q4_1: 32 values as 4-bit quants with a scale (and a min for Q4_1).

use super::block::{Block, le16};
use super::float::{f16v, fp16, trunc_i8};
use crate::formats::gguf::GgmlType;

/// A Q4_0 block (18 bytes: `d: f16 | qs: u8[16]`); low nibbles hold elements 0..16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ4_0 {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Packed nibbles: element j in the low nibble of `qs[j]`, element j+16 in the high one.
    pub qs: [u8; 16],
}

/// A Q4_1 block (20 bytes: `d: f16 | m: f16 | qs: u8[16]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ4_1 {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Minimum, fp16 bits.
    pub m: u16,
    /// Packed nibbles as in Q4_0.
    pub qs: [u8; 16],
}

/// The value with the largest magnitude, the first one on ties (sign kept).
#[inline(always)]
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Minimum and maximum starting from ±FLT_MAX, as the reference does.
#[inline(always)]
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

impl Block for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    const ELEMS: usize = 32;
    const BYTES: usize = 18;

    fn quantize(x: &[f32]) -> Self {
        let max = signed_absmax(&x[..32]);
        let d = max / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = x[j] * id;
            let x1 = x[j + 16] * id;
            let q0 = trunc_i8(x0 + 8.5).min(15) as u8;
            let q1 = trunc_i8(x1 + 8.5).min(15) as u8;
            *q = q0 | (q1 << 4);
        }
        BlockQ4_0 { d: fp16(d), qs }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = (i32::from(q & 0xf) - 8) as f32 * d;
            out[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..18].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[2..18]);
        BlockQ4_0 { d: le16(b, 0), qs }
    }
}

impl Block for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    const ELEMS: usize = 32;
    const BYTES: usize = 20;

    fn quantize(x: &[f32]) -> Self {
        let (min, max) = min_max(&x[..32]);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + 16] - min) * id;
            let q0 = trunc_i8(x0 + 0.5).min(15) as u8;
            let q1 = trunc_i8(x1 + 0.5).min(15) as u8;
            *q = q0 | (q1 << 4);
        }
        BlockQ4_1 {
            d: fp16(d),
            m: fp16(min),
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        let m = f16v(self.m);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = f32::from(q & 0xf) * d + m;
            out[j + 16] = f32::from(q >> 4) * d + m;
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.m.to_le_bytes());
        out[4..20].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[4..20]);
        BlockQ4_1 {
            d: le16(b, 0),
            m: le16(b, 2),
            qs,
        }
    }
}

/// `weight[j] = qw[j] * sqrt(sigma2 + x[j]²)`, the imatrix weighting of the legacy types.
#[inline(always)]
pub(crate) fn legacy_weights(x: &[f32], qw: &[f32], sigma2: f32, w: &mut [f32; 32]) {
    for j in 0..32 {
        w[j] = qw[j] * (sigma2 + x[j] * x[j]).sqrt();
    }
}

impl super::block::WeightedBlock for BlockQ4_0 {
    fn row_stat(row: &[f32]) -> f32 {
        super::block::row_sigma2(row)
    }

    /// `quantize_row_q4_0_impl`: a weighted symmetric search (`make_qx_quants`, nmax 8).
    fn quantize_weighted(x: &[f32], qw: &[f32], sigma2: f32) -> Self {
        let mut w = [0f32; 32];
        legacy_weights(x, qw, sigma2, &mut w);
        let mut l = [0i8; 32];
        let d = super::k_helpers::make_qx_quants_w(&x[..32], 8, &mut l, &w);
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = (l[j] as u8) | ((l[j + 16] as u8) << 4);
        }
        BlockQ4_0 { d: fp16(d), qs }
    }
}

impl super::block::WeightedBlock for BlockQ4_1 {
    fn row_stat(row: &[f32]) -> f32 {
        super::block::row_sigma2(row)
    }

    /// `quantize_row_q4_1_impl`: a weighted asymmetric search (`make_qkx3_quants`, nmax 15).
    fn quantize_weighted(x: &[f32], qw: &[f32], sigma2: f32) -> Self {
        let mut w = [0f32; 32];
        legacy_weights(x, qw, sigma2, &mut w);
        let mut l = [0u8; 32];
        let (d, the_min) =
            super::k_helpers::make_qkx3_quants(&x[..32], &w, 15, &mut l, -0.9, 0.05, 36, false);
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = l[j] | (l[j + 16] << 4);
        }
        BlockQ4_1 {
            d: fp16(d),
            m: fp16(-the_min),
            qs,
        }
    }
}
