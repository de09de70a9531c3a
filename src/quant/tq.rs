//! TQ1_0 and TQ2_0: ternary (−1, 0, +1) super-blocks of 256 with one fp16 scale. Neither uses
//! an importance matrix.
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, le16};
use super::float::{f16v, fp16};
use super::k_helpers::QK_K;
use crate::formats::gguf::GgmlType;

/// A TQ1_0 block (54 bytes: `qs: u8[48] | qh: u8[4] | d: f16`): five trits per `qs` byte and
/// four per `qh` byte, stored as a base-3 fraction of 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTQ1_0 {
    /// Trits of elements 0..240.
    pub qs: [u8; 48],
    /// Trits of elements 240..256.
    pub qh: [u8; 4],
    /// Scale (the block's absolute maximum), fp16 bits.
    pub d: u16,
}

/// A TQ2_0 block (66 bytes: `qs: u8[64] | d: f16`): four 2-bit values per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTQ2_0 {
    /// 2-bit values (trit + 1).
    pub qs: [u8; 64],
    /// Scale, fp16 bits.
    pub d: u16,
}

/// `MAX(amax, |v|)` over the block, and `1/amax` (0 for an all-zero block).
fn absmax_inv(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in &x[..QK_K] {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    (amax, if amax != 0.0 { 1.0 / amax } else { 0.0 })
}

/// `(int)(lroundf(v * id) + 1)`: the trit in 0..=2 for finite inputs. Like x86-64's
/// `lroundf`, a NaN or out-of-range value becomes `LONG_MIN`, whose low 32 bits plus one are 1.
#[inline(always)]
fn trit(v: f32, id: f32) -> u8 {
    let r = v * id;
    let l = if r.is_nan() || r.abs() >= 9.223_372e18 {
        i64::MIN
    } else {
        r.round() as i64
    };
    (l.wrapping_add(1) as i32) as u8
}

/// Packs five (or four, then shifted) trits into a byte: `ceil(q * 256 / 243)`.
#[inline(always)]
fn pack_trits(q: u8) -> u8 {
    (u16::from(q) * 256).div_ceil(243) as u8
}

/// The trit stored at position `n` of a packed byte.
#[inline(always)]
fn unpack_trit(b: u8, n: usize) -> i32 {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let q = b.wrapping_mul(POW3[n]);
    i32::from((u16::from(q) * 3) >> 8)
}

impl Block for BlockTQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 54;

    fn quantize(x: &[f32]) -> Self {
        let (d, id) = absmax_inv(x);
        let mut qs = [0u8; 48];
        let mut qh = [0u8; 4];
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q.wrapping_mul(3).wrapping_add(trit(x[m + n * 32], id));
            }
            qs[m] = pack_trits(q);
        }
        let x2 = &x[160..];
        for m in 0..16 {
            let mut q = 0u8;
            for n in 0..5 {
                q = q.wrapping_mul(3).wrapping_add(trit(x2[m + n * 16], id));
            }
            qs[32 + m] = pack_trits(q);
        }
        let x3 = &x[240..];
        for (j, h) in qh.iter_mut().enumerate() {
            let mut q = 0u8;
            for m in 0..4 {
                q = q.wrapping_mul(3).wrapping_add(trit(x3[j + m * 4], id));
            }
            *h = pack_trits(q.wrapping_mul(3));
        }
        BlockTQ1_0 { qs, qh, d: fp16(d) }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        let mut o = 0;
        for n in 0..5 {
            for m in 0..32 {
                out[o] = (unpack_trit(self.qs[m], n) - 1) as f32 * d;
                o += 1;
            }
        }
        for n in 0..5 {
            for m in 0..16 {
                out[o] = (unpack_trit(self.qs[32 + m], n) - 1) as f32 * d;
                o += 1;
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                out[o] = (unpack_trit(self.qh[j], n) - 1) as f32 * d;
                o += 1;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..48].copy_from_slice(&self.qs);
        out[48..52].copy_from_slice(&self.qh);
        out[52..54].copy_from_slice(&self.d.to_le_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 48];
        qs.copy_from_slice(&b[..48]);
        let mut qh = [0u8; 4];
        qh.copy_from_slice(&b[48..52]);
        BlockTQ1_0 {
            qs,
            qh,
            d: le16(b, 52),
        }
    }
}

impl Block for BlockTQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 66;

    fn quantize(x: &[f32]) -> Self {
        let (d, id) = absmax_inv(x);
        let mut qs = [0u8; 64];
        for j in 0..2 {
            let xj = &x[128 * j..];
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    q = q.wrapping_add((trit(xj[m + n * 32], id) & 3) << (2 * n));
                }
                qs[32 * j + m] = q;
            }
        }
        BlockTQ2_0 { qs, d: fp16(d) }
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for j in 0..2 {
            for l in 0..4 {
                for m in 0..32 {
                    let q = i32::from((self.qs[32 * j + m] >> (2 * l)) & 3);
                    out[128 * j + 32 * l + m] = (q - 1) as f32 * d;
                }
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..64].copy_from_slice(&self.qs);
        out[64..66].copy_from_slice(&self.d.to_le_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 64];
        qs.copy_from_slice(&b[..64]);
        BlockTQ2_0 { qs, d: le16(b, 64) }
    }
}
