//! Q8_0: 32 values as an fp16 scale and 32 signed bytes.

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
