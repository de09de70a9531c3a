//! Q3_K: 256 values in 16 sub-blocks of 16, 3-bit quants (2 low bits + a high-bit mask) with
//! signed 6-bit scales.

use super::block::{Block, le16};
use super::float::{f16v, fp16, nearest_int};
use super::k_helpers::{QK_K, make_q3_quants, pack_2bit, unpack_2bit};
use crate::formats::gguf::GgmlType;

/// A Q3_K block (110 bytes: `hmask: u8[32] | qs: u8[64] | scales: u8[12] | d: f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockQ3K {
    /// Bit `j/32` of byte `j%32` is the high bit of element j (set means no −4 offset).
    pub hmask: [u8; 32],
    /// Low 2 bits of each quant, see [`pack_2bit`].
    pub qs: [u8; 64],
    /// Sixteen 6-bit scales (biased by 32), packed.
    pub scales: [u8; 12],
    /// Super-block scale, fp16 bits.
    pub d: u16,
}

/// Unpacks the 6-bit scale of sub-block `j` (still biased by 32).
#[inline(always)]
fn scale6(s: &[u8; 12], j: usize) -> u8 {
    let lo = if j < 8 { s[j] & 0xf } else { s[j - 8] >> 4 };
    lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)
}

/// Second half of the Q3_K quantizer, from the per-sub-block scales and quants.
pub(crate) fn finish(x: &[f32], scales: &[f32; 16], l: &mut [i8; QK_K]) -> BlockQ3K {
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for &s in scales {
        let a = s.abs();
        if a > amax {
            amax = a;
            max_scale = s;
        }
    }
    let mut sc = [0u8; 12];
    let d;
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            // `int8_t l = nearest_int(..)`: the int is narrowed before clamping.
            let q = i32::from(nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
            if j < 8 {
                sc[j] = (q & 0xf) as u8;
            } else {
                sc[j - 8] |= ((q & 0xf) << 4) as u8;
            }
            sc[j % 4 + 8] |= ((q >> 4) << (2 * (j / 4))) as u8;
        }
        d = fp16(1.0 / iscale);
    } else {
        d = fp16(0.0);
    }
    pack_with_scales(x, sc, d, l)
}

/// Recomputes the quants from packed 6-bit scales and `d` (sub-blocks with a zero scale keep
/// `l`) and packs the block.
pub(crate) fn pack_with_scales(x: &[f32], sc: [u8; 12], d: u16, l: &mut [i8; QK_K]) -> BlockQ3K {
    for j in 0..16 {
        let s = i32::from(scale6(&sc, j)) - 32;
        let dd = f16v(d) * s as f32;
        if dd == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / dd).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut low = [0u8; QK_K];
    for j in 0..QK_K {
        let mut q = l[j];
        if q > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            q -= 4;
        }
        low[j] = q as u8;
    }
    let mut qs = [0u8; 64];
    pack_2bit(&low, &mut qs);
    BlockQ3K {
        hmask,
        qs,
        scales: sc,
        d,
    }
}

impl Block for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3K;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 110;

    fn quantize(x: &[f32]) -> Self {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for j in 0..16 {
            scales[j] = make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut l[16 * j..16 * j + 16]);
        }
        finish(x, &scales, &mut l)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d_all = f16v(self.d);
        let low = unpack_2bit(&self.qs);
        for j in 0..16 {
            let dl = d_all * (i32::from(scale6(&self.scales, j)) - 32) as f32;
            for ii in 0..16 {
                let e = 16 * j + ii;
                let high = self.hmask[e % 32] >> (e / 32) & 1;
                let q = i32::from(low[e]) - if high != 0 { 0 } else { 4 };
                out[e] = dl * q as f32;
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.hmask);
        out[32..96].copy_from_slice(&self.qs);
        out[96..108].copy_from_slice(&self.scales);
        out[108..110].copy_from_slice(&self.d.to_le_bytes());
    }

    fn read(b: &[u8]) -> Self {
        let mut hmask = [0u8; 32];
        hmask.copy_from_slice(&b[..32]);
        let mut qs = [0u8; 64];
        qs.copy_from_slice(&b[32..96]);
        let mut scales = [0u8; 12];
        scales.copy_from_slice(&b[96..108]);
        BlockQ3K {
            hmask,
            qs,
            scales,
            d: le16(b, 108),
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
    super::block::quantize_blocks::<BlockQ3K>(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_row_x8(src: &[f32], dst: &mut [u8]) {
    let (blocks, _) = src.as_chunks::<QK_K>();
    for (x, out) in blocks.iter().zip(dst.chunks_exact_mut(110)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        for g in 0..2 {
            let r = 128 * g..128 * g + 128;
            let s = super::lanes::make_q3_x8(&x[r.clone()], 4, &mut l[r]);
            scales[8 * g..8 * g + 8].copy_from_slice(&s);
        }
        finish(x, &scales, &mut l).write(out);
    }
}

impl super::block::WeightedBlock for BlockQ3K {
    /// `quantize_row_q3_K_impl` with importance weights: weighted symmetric searches for the
    /// quants and again for the 6-bit scales.
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        use super::k_helpers::make_qx_quants_w;
        let sigma2 = super::q4k::sigma2_x2(x);
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut w = [0f32; 16];
        for j in 0..16 {
            let r = 16 * j..16 * j + 16;
            for (k, wk) in w.iter_mut().enumerate() {
                let v = x[16 * j + k];
                *wk = qw[16 * j + k] * (sigma2 + v * v).sqrt();
            }
            let mut sumw = 0.0f32;
            for &v in &w {
                sumw += v;
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants_w(&x[r.clone()], 4, &mut l[r], &w);
        }
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants_w(&scales, 32, &mut ls, &sw);
        let mut sc = [0u8; 12];
        for (j, &v) in ls.iter().enumerate() {
            let lv = i32::from(v);
            if j < 8 {
                sc[j] = (lv & 0xf) as u8;
            } else {
                sc[j - 8] |= ((lv & 0xf) << 4) as u8;
            }
            sc[j % 4 + 8] |= ((lv >> 4) << (2 * (j / 4))) as u8;
        }
        pack_with_scales(x, sc, fp16(d_block), &mut l)
    }
}
