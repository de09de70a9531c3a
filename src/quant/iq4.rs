//! IQ4_NL and IQ4_XS: 4-bit indices into the non-linear `kvalues_iq4nl` table, with one fp16
//! scale per 32 values (IQ4_NL) or 6-bit scales under an fp16 super-scale (IQ4_XS).
//! Port of ggml's `quantize_row_iq4_nl_impl` (always called with `ntry = 7` by llama-quantize).
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, WeightedBlock, le16};
use super::float::{f16v, fp16, nearest_int};
use super::iq_tables::KVALUES_IQ4NL;
use super::k_helpers::{GROUP_MAX_EPS, QK_K};
use crate::formats::gguf::GgmlType;

/// An IQ4_NL block (18 bytes: `d: f16 | qs: u8[16]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ4NL {
    /// Scale, fp16 bits.
    pub d: u16,
    /// Table indices: element j in the low nibble of `qs[j]`, element j+16 in the high one.
    pub qs: [u8; 16],
}

/// An IQ4_XS block (136 bytes: `d: f16 | scales_h: u16 | scales_l: u8[4] | qs: u8[128]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ4XS {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// High 2 bits of the eight 6-bit sub-block scales.
    pub scales_h: u16,
    /// Low 4 bits of the sub-block scales, two per byte.
    pub scales_l: [u8; 4],
    /// Table indices, 16 bytes per 32-element sub-block as in IQ4_NL.
    pub qs: [u8; 128],
}

/// `best_index_int8`: the index of the table value nearest to `x` (ties to the upper one
/// except where the reference's strict `<` says otherwise).
#[inline(always)]
pub(crate) fn best_index_int8(val: &[i8; 16], x: f32) -> u8 {
    if x <= f32::from(val[0]) {
        return 0;
    }
    if x >= f32::from(val[15]) {
        return 15;
    }
    let mut ml = 0usize;
    let mut mu = 15usize;
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < f32::from(val[mav]) {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - f32::from(val[mu - 1]) < f32::from(val[mu]) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

const NTRY: i32 = 7;

/// The per-sub-block search of `quantize_row_iq4_nl_impl`: fills `lb` and returns the scale.
fn search_block(xb: &[f32], weight: &[f32], lb: &mut [u8]) -> f32 {
    let values = &KVALUES_IQ4NL;
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in &xb[..32] {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = f32::from(values[0]);
    let mut d = -max / v0;
    let mut id = 1.0 / d;
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for j in 0..32 {
        let al = id * xb[j];
        let l = best_index_int8(values, al);
        lb[j] = l;
        let q = f32::from(values[usize::from(l)]);
        let w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        id = (itry + i32::from(values[0])) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for j in 0..32 {
            let al = id * xb[j];
            let q = f32::from(values[usize::from(best_index_int8(values, al))]);
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Sub-block weights: `qw * sqrt(sigma2 + x²)` with an imatrix, else `x²`.
#[inline(always)]
fn weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32, w: &mut [f32; 32]) {
    match qw {
        Some(qw) => {
            for j in 0..32 {
                w[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
            }
        }
        None => {
            for j in 0..32 {
                w[j] = xb[j] * xb[j];
            }
        }
    }
}

/// `sum(x²) * (2 / n)` over `x`.
#[inline(always)]
fn sigma2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s * (2.0 / x.len() as f32)
}

/// Packs 32 indices per 16 bytes.
#[inline(always)]
fn pack_nibbles(l: &[u8], q4: &mut [u8]) {
    for i in 0..l.len() / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

impl BlockIQ4NL {
    fn quantize_impl(x: &[f32], qw: Option<&[f32]>) -> Self {
        let x = &x[..32];
        let s2 = sigma2(x);
        let mut w = [0f32; 32];
        weights(x, qw, s2, &mut w);
        let mut l = [0u8; 32];
        let scale = search_block(x, &w, &mut l);
        Self::finish(x, scale)
    }

    /// The block from its searched scale: indices at `1/scale`.
    fn finish(x: &[f32], scale: f32) -> Self {
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        let mut l = [0u8; 32];
        for j in 0..32 {
            l[j] = best_index_int8(&KVALUES_IQ4NL, id * x[j]);
        }
        let mut qs = [0u8; 16];
        pack_nibbles(&l, &mut qs);
        BlockIQ4NL { d: fp16(scale), qs }
    }
}

/// Quantizes IQ4_NL rows (`qw` one weight per column, or none); with `fast`, eight blocks at a
/// time run their searches in SIMD lanes where available (same bytes).
pub(crate) fn quantize_nl_rows(
    src: &[f32],
    n_per_row: usize,
    qw: Option<&[f32]>,
    dst: &mut [u8],
    fast: bool,
) {
    let row_bytes = n_per_row / 32 * 18;
    for (row, out) in src
        .chunks_exact(n_per_row)
        .zip(dst.chunks_exact_mut(row_bytes))
    {
        let nb = n_per_row / 32;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if fast && super::lanes::available() {
            while done + 8 <= nb {
                let xs = &row[32 * done..32 * done + 256];
                let mut w = [0f32; 256];
                for b in 0..8 {
                    let xb = &xs[32 * b..32 * b + 32];
                    let mut wb = [0f32; 32];
                    weights(
                        xb,
                        qw.map(|q| &q[32 * (done + b)..32 * (done + b) + 32]),
                        sigma2(xb),
                        &mut wb,
                    );
                    w[32 * b..32 * b + 32].copy_from_slice(&wb);
                }
                // SAFETY: AVX2 support was checked at run time.
                let scales = unsafe { super::lanes_iq::iq4_search_x8(xs, &w) };
                let mut l = [0u8; 256];
                let idl: [f32; 8] = std::array::from_fn(|b| {
                    if scales[b] != 0.0 {
                        1.0 / scales[b]
                    } else {
                        0.0
                    }
                });
                // SAFETY: as above.
                unsafe { super::lanes_iq::iq4_indices_x8(xs, idl, &mut l) };
                for b in 0..8 {
                    let mut qs = [0u8; 16];
                    pack_nibbles(&l[32 * b..32 * b + 32], &mut qs);
                    BlockIQ4NL {
                        d: fp16(scales[b]),
                        qs,
                    }
                    .write(&mut out[18 * (done + b)..18 * (done + b + 1)]);
                }
                done += 8;
            }
        }
        let _ = fast;
        for b in done..nb {
            let xb = &row[32 * b..32 * b + 32];
            BlockIQ4NL::quantize_impl(xb, qw.map(|q| &q[32 * b..32 * b + 32]))
                .write(&mut out[18 * b..18 * (b + 1)]);
        }
    }
}

impl BlockIQ4XS {
    /// `quantize_row_iq4_nl_impl(QK_K, 32, …, ntry = 7)` for one super-block; `fast` runs the
    /// sub-block searches in SIMD lanes where available (same bytes).
    pub(crate) fn quantize_impl(x: &[f32], qw: Option<&[f32]>, fast: bool) -> Self {
        let x = &x[..QK_K];
        let s2 = sigma2(x);
        let mut w = [0f32; QK_K];
        for ib in 0..8 {
            let mut wb = [0f32; 32];
            weights(
                &x[32 * ib..32 * ib + 32],
                qw.map(|q| &q[32 * ib..32 * ib + 32]),
                s2,
                &mut wb,
            );
            w[32 * ib..32 * ib + 32].copy_from_slice(&wb);
        }
        let mut scales = [0f32; 8];
        let mut l = [0u8; QK_K];
        let mut searched = false;
        #[cfg(target_arch = "x86_64")]
        if fast && super::lanes::available() {
            // SAFETY: AVX2 support was checked at run time.
            scales = unsafe { super::lanes_iq::iq4_search_x8(x, &w) };
            searched = true;
        }
        if !searched {
            for ib in 0..8 {
                let r = 32 * ib..32 * ib + 32;
                scales[ib] = search_block(&x[r.clone()], &w[r.clone()], &mut l[r]);
            }
        }
        let mut max_scale = 0.0f32;
        let mut amax_scale = 0.0f32;
        for &d in &scales {
            if d.abs() > amax_scale {
                amax_scale = d.abs();
                max_scale = d;
            }
        }
        let d = -max_scale / 32.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut scales_h = 0u16;
        let mut scales_l = [0u8; 4];
        let mut idl = [0f32; 8];
        for ib in 0..8 {
            let mut ls = nearest_int(id * scales[ib]).clamp(-32, 31);
            let dl = d * ls as f32;
            idl[ib] = if dl != 0.0 { 1.0 / dl } else { 0.0 };
            ls += 32;
            let (lo, hi) = ((ls & 0xf) as u8, (ls >> 4) as u16);
            if ib % 2 == 0 {
                scales_l[ib / 2] = lo;
            } else {
                scales_l[ib / 2] |= lo << 4;
            }
            scales_h |= hi << (2 * (ib % 8));
        }
        let mut indexed = false;
        #[cfg(target_arch = "x86_64")]
        if fast && super::lanes::available() {
            // SAFETY: AVX2 support was checked at run time.
            unsafe { super::lanes_iq::iq4_indices_x8(x, idl, &mut l) };
            indexed = true;
        }
        if !indexed {
            for ib in 0..8 {
                for j in 0..32 {
                    l[32 * ib + j] = best_index_int8(&KVALUES_IQ4NL, idl[ib] * x[32 * ib + j]);
                }
            }
        }
        let mut qs = [0u8; 128];
        pack_nibbles(&l, &mut qs);
        BlockIQ4XS {
            d: fp16(d),
            scales_h,
            scales_l,
            qs,
        }
    }
}

impl Block for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4NL;
    const ELEMS: usize = 32;
    const BYTES: usize = 18;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = d * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
            out[j + 16] = d * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..18].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[2..18]);
        BlockIQ4NL { d: le16(b, 0), qs }
    }
}

impl WeightedBlock for BlockIQ4NL {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw))
    }
}

impl Block for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4XS;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 136;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None, false)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let ls = ((self.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
                | ((((self.scales_h >> (2 * ib)) & 3) as i32) << 4);
            let dl = d * (ls - 32) as f32;
            for j in 0..16 {
                let q = self.qs[16 * ib + j];
                out[32 * ib + j] = dl * f32::from(KVALUES_IQ4NL[usize::from(q & 0xf)]);
                out[32 * ib + j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(q >> 4)]);
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..4].copy_from_slice(&self.scales_h.to_le_bytes());
        out[4..8].copy_from_slice(&self.scales_l);
        out[8..136].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut scales_l = [0u8; 4];
        scales_l.copy_from_slice(&b[4..8]);
        let mut qs = [0u8; 128];
        qs.copy_from_slice(&b[8..136]);
        BlockIQ4XS {
            d: le16(b, 0),
            scales_h: le16(b, 2),
            scales_l,
            qs,
        }
    }
}

impl WeightedBlock for BlockIQ4XS {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw), false)
    }
}
