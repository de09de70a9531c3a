//! IQ2_XXS, IQ2_XS and IQ2_S: 2-bit quants as points of an 8-dimensional lattice (256, 512 or
//! 1024 points) with sign bits and 4-bit sub-block scales. Port of
//! `quantize_row_iq2_{xxs,xs,s}_impl`. IQ2_XXS and IQ2_XS need an importance matrix (the
//! reference asserts); IQ2_S also runs without one.
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, WeightedBlock, le16};
use super::float::{f16v, fp16};
use super::iq_grid::{iq2s, iq2xs, iq2xxs};
use super::iq_search::{
    Scan, fold_signs, grid_index_of, max_of, project_group, scale_code, scan_and_refit, sums_q,
};
use super::iq_tables::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, KMASK_IQ2XS, KSIGNS_IQ2XS};
use super::k_helpers::{GROUP_MAX_EPS, QK_K, make_qp_quants};
use crate::formats::gguf::GgmlType;

/// `GROUP_MAX_EPS_IQ2_S`.
const EPS_IQ2_S: f32 = 1e-8;

/// An IQ2_XXS block (66 bytes: `d: f16 | qs: u16[32]`): per 32 values, four 8-bit grid
/// indices, then four 7-bit sign groups and a 4-bit scale in one `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ2XXS {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Eight pairs of `u32`: grid indices, then signs and scale.
    pub qs: [u32; 16],
}

/// An IQ2_XS block (74 bytes: `d: f16 | qs: u16[32] | scales: u8[8]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ2XS {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Per 8 values: a 9-bit grid index and 7 sign bits.
    pub qs: [u16; 32],
    /// 4-bit scales of the sixteen 16-value sub-blocks.
    pub scales: [u8; 8],
}

/// An IQ2_S block (82 bytes: `d: f16 | qs: u8[64] | qh: u8[8] | scales: u8[8]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ2S {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Low 8 bits of 32 grid indices, then 32 sign bytes.
    pub qs: [u8; 64],
    /// High 2 bits of the grid indices.
    pub qh: [u8; 8],
    /// 4-bit sub-block scales.
    pub scales: [u8; 8],
}

const SCAN_2: Scan = Scan {
    kmax: 3,
    bits: 2,
    range: 9,
    step: 0.1,
    on_grid_init: true,
    refit_all: false,
};

/// `qw·sqrt(sigma2 + x²)` for `n` values, and the square roots.
#[inline(always)]
fn imatrix_weights(xb: &[f32], qw: &[f32], sigma2: f32, w: &mut [f32], waux: &mut [f32]) {
    for i in 0..xb.len() {
        w[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
    }
    for i in 0..xb.len() {
        waux[i] = w[i].sqrt();
    }
}

/// `sum(x²) / 256` (IQ2_XXS and IQ2_XS use the plain mean square).
#[inline(always)]
fn sigma2_mean(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in &x[..QK_K] {
        s += v * v;
    }
    s / QK_K as f32
}

impl BlockIQ2XXS {
    fn quantize_impl(x: &[f32], qw: &[f32]) -> Self {
        const KMAX: i32 = 3;
        let lat = iq2xxs();
        let sigma2 = sigma2_mean(x);
        let mut q2 = [0u32; 16];
        let mut scales = [0f32; 8];
        let mut max_scale = 0.0f32;
        let mut w = [0f32; 32];
        let mut waux = [0f32; 32];
        let mut xval = [0f32; 32];
        for ib in 0..8 {
            let r = 32 * ib..32 * ib + 32;
            let xb = &x[r.clone()];
            imatrix_weights(xb, &qw[r], sigma2, &mut w, &mut waux);
            let mut signs = [0u8; 4];
            for (k, s) in signs.iter_mut().enumerate() {
                let g = 8 * k..8 * k + 8;
                *s = fold_signs(&xb[g.clone()], &w[g.clone()], true, &mut xval[g]);
            }
            let max = max_of(&xval);
            if max < GROUP_MAX_EPS {
                scales[ib] = 0.0;
                continue;
            }
            // The initial scale comes from `make_qp_quants`, which writes its (discarded) quants
            // through a `uint8_t` view of L.
            let mut lq = [0u8; 32];
            let mut scale = make_qp_quants(&xval, KMAX + 1, &mut lq, &w);
            let eff_max = scale * KMAX as f32;
            if eff_max <= 0.0 {
                scales[ib] = 0.0;
                continue;
            }
            let mut l: [i8; 32] = std::array::from_fn(|i| lq[i] as i8);
            let mut laux = [0i8; 32];
            let mut best = 0.0f32;
            for is in -6..=6 {
                let id = ((2 * KMAX - 1) as f32 + is as f32 * 0.1) / eff_max;
                let this_scale = 1.0 / id;
                for k in 0..4 {
                    let g = 8 * k..8 * k + 8;
                    project_group::<8>(
                        lat,
                        2,
                        KMAX,
                        &xval[g.clone()],
                        &waux[g.clone()],
                        id,
                        this_scale,
                        &mut laux[g],
                    );
                }
                let (sumqx, sumq2) = sums_q(&w, &xval, &laux);
                if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    l = laux;
                }
            }
            if scale > 0.0 {
                let id = 1.0 / scale;
                for k in 0..4 {
                    let g = 8 * k..8 * k + 8;
                    project_group::<8>(
                        lat,
                        2,
                        KMAX,
                        &xval[g.clone()],
                        &waux[g.clone()],
                        id,
                        scale,
                        &mut l[g],
                    );
                }
                let (sumqx, sumq2) = sums_q(&w, &xval, &l);
                if sumq2 > 0.0 {
                    scale = sumqx / sumq2;
                }
            }
            if scale < 0.0 {
                scale = -scale;
                for s in &mut signs {
                    *s = !*s & 127;
                }
            }
            for k in 0..4 {
                let gi = grid_index_of::<8>(lat, 2, &l[8 * k..8 * k + 8]) as u32;
                q2[2 * ib] |= gi << (8 * k);
                q2[2 * ib + 1] |= u32::from(signs[k]) << (7 * k);
            }
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return BlockIQ2XXS {
                d: fp16(0.0),
                qs: [0; 16],
            };
        }
        let d = max_scale / 31.0;
        let id = 1.0 / d;
        for ib in 0..8 {
            q2[2 * ib + 1] |= (scale_code(id, scales[ib], 15) as u32) << 28;
        }
        BlockIQ2XXS { d: fp16(d), qs: q2 }
    }
}

/// Shared by IQ2_XS and IQ2_S: the search of one 16-value sub-block, returning the scale and
/// the two groups' levels and signs (`None` for an all-zero sub-block).
fn search16(
    lat: &super::iq_grid::Lattice<8>,
    xb: &[f32],
    w: &[f32; 16],
    waux: &[f32; 16],
    even_parity: bool,
    eps: f32,
) -> Option<(f32, [i8; 16], [u8; 2])> {
    let mut xval = [0f32; 16];
    let mut signs = [0u8; 2];
    for (k, s) in signs.iter_mut().enumerate() {
        let g = 8 * k..8 * k + 8;
        *s = fold_signs(&xb[g.clone()], &w[g.clone()], even_parity, &mut xval[g]);
    }
    let max = max_of(&xval);
    if max < eps {
        return None;
    }
    let mut l = [0i8; 16];
    let mut scale = scan_and_refit(lat, &SCAN_2, &xval, w, waux, max, &mut l);
    if scale < 0.0 {
        scale = -scale;
        for s in &mut signs {
            *s = if even_parity { !*s & 127 } else { !*s };
        }
    }
    Some((scale, l, signs))
}

impl BlockIQ2XS {
    fn quantize_impl(x: &[f32], qw: &[f32]) -> Self {
        let lat = iq2xs();
        let sigma2 = sigma2_mean(x);
        let mut y = BlockIQ2XS {
            d: fp16(0.0),
            qs: [0; 32],
            scales: [0; 8],
        };
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        let mut w = [0f32; 16];
        let mut waux = [0f32; 16];
        for ib in 0..16 {
            let r = 16 * ib..16 * ib + 16;
            imatrix_weights(&x[r.clone()], &qw[r.clone()], sigma2, &mut w, &mut waux);
            let Some((scale, l, signs)) = search16(lat, &x[r], &w, &waux, true, GROUP_MAX_EPS)
            else {
                scales[ib] = 0.0;
                continue;
            };
            for k in 0..2 {
                let gi = grid_index_of::<8>(lat, 2, &l[8 * k..8 * k + 8]) as u16;
                y.qs[2 * ib + k] = gi | (u16::from(signs[k]) << 9);
            }
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            y.qs = [0; 32];
            return y;
        }
        let d = max_scale / 31.0;
        y.d = fp16(d);
        let id = 1.0 / d;
        for ib in 0..16 {
            let l = scale_code(id, scales[ib], 15) as u8;
            if ib % 2 == 0 {
                y.scales[ib / 2] = l;
            } else {
                y.scales[ib / 2] |= l << 4;
            }
        }
        y
    }
}

impl BlockIQ2S {
    fn quantize_impl(x: &[f32], qw: Option<&[f32]>) -> Self {
        let lat = iq2s();
        let sigma2 = super::q4k::sigma2_x2(x);
        let mut y = BlockIQ2S {
            d: fp16(0.0),
            qs: [0; 64],
            qh: [0; 8],
            scales: [0; 8],
        };
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        let mut w = [0f32; 16];
        let mut waux = [0f32; 16];
        for ib in 0..16 {
            let r = 16 * ib..16 * ib + 16;
            let xb = &x[r.clone()];
            match qw {
                Some(qw) => imatrix_weights(xb, &qw[r], sigma2, &mut w, &mut waux),
                None => {
                    for i in 0..16 {
                        w[i] = 0.25 * sigma2 + xb[i] * xb[i];
                    }
                    for i in 0..16 {
                        waux[i] = w[i].sqrt();
                    }
                }
            }
            let Some((scale, l, signs)) = search16(lat, xb, &w, &waux, false, EPS_IQ2_S) else {
                scales[ib] = 0.0;
                continue;
            };
            for k in 0..2 {
                let gi = grid_index_of::<8>(lat, 2, &l[8 * k..8 * k + 8]);
                let i8 = 2 * ib + k;
                y.qs[i8] = (gi & 255) as u8;
                y.qh[i8 / 4] |= ((gi >> 8) << (2 * (i8 % 4))) as u8;
                y.qs[QK_K / 8 + i8] = signs[k];
            }
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return y;
        }
        let d = max_scale / 31.0;
        y.d = fp16(d * 0.9875);
        let id = 1.0 / d;
        for ib in 0..16 {
            let l = scale_code(id, scales[ib], 15) as u8;
            if ib % 2 == 0 {
                y.scales[ib / 2] = l;
            } else {
                y.scales[ib / 2] |= l << 4;
            }
        }
        y
    }
}

/// Writes `db·grid[j]·(±1)` for one group of 8 decoded from a grid row and a sign byte.
#[inline(always)]
fn put8(out: &mut [f32], db: f32, grid: u64, signs: u8) {
    let g = grid.to_le_bytes();
    for j in 0..8 {
        let s = if signs & KMASK_IQ2XS[j] != 0 {
            -1.0
        } else {
            1.0
        };
        out[j] = db * f32::from(g[j]) * s;
    }
}

impl Block for BlockIQ2XXS {
    const TYPE: GgmlType = GgmlType::IQ2XXS;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 66;

    /// The reference has no quantizer without an importance matrix (it asserts); uniform
    /// weights stand in. The file quantizer refuses IQ2_XXS without an imatrix before this.
    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, &[1.0; QK_K])
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let a0 = self.qs[2 * ib].to_le_bytes();
            let a1 = self.qs[2 * ib + 1];
            let db = d * (0.5 + (a1 >> 28) as f32) * 0.25;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((a1 >> (7 * l)) & 127) as usize];
                let o = 32 * ib + 8 * l;
                put8(
                    &mut out[o..o + 8],
                    db,
                    IQ2XXS_GRID[usize::from(a0[l])],
                    signs,
                );
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        for (i, q) in self.qs.iter().enumerate() {
            out[2 + 4 * i..6 + 4 * i].copy_from_slice(&q.to_le_bytes());
        }
    }

    fn read(b: &[u8]) -> Self {
        let qs = std::array::from_fn(|i| {
            u32::from_le_bytes([b[2 + 4 * i], b[3 + 4 * i], b[4 + 4 * i], b[5 + 4 * i]])
        });
        BlockIQ2XXS { d: le16(b, 0), qs }
    }
}

impl WeightedBlock for BlockIQ2XXS {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, qw)
    }
}

impl Block for BlockIQ2XS {
    const TYPE: GgmlType = GgmlType::IQ2XS;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 74;

    /// See [`BlockIQ2XXS::quantize`]: the reference requires an imatrix.
    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, &[1.0; QK_K])
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let sc = self.scales[ib];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            for l in 0..4 {
                let q = self.qs[4 * ib + l];
                let signs = KSIGNS_IQ2XS[usize::from(q >> 9)];
                let o = 32 * ib + 8 * l;
                put8(
                    &mut out[o..o + 8],
                    db[l / 2],
                    IQ2XS_GRID[usize::from(q & 511)],
                    signs,
                );
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        for (i, q) in self.qs.iter().enumerate() {
            out[2 + 2 * i..4 + 2 * i].copy_from_slice(&q.to_le_bytes());
        }
        out[66..74].copy_from_slice(&self.scales);
    }

    fn read(b: &[u8]) -> Self {
        let qs = std::array::from_fn(|i| le16(b, 2 + 2 * i));
        let mut scales = [0u8; 8];
        scales.copy_from_slice(&b[66..74]);
        BlockIQ2XS {
            d: le16(b, 0),
            qs,
            scales,
        }
    }
}

impl WeightedBlock for BlockIQ2XS {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, qw)
    }
}

impl Block for BlockIQ2S {
    const TYPE: GgmlType = GgmlType::IQ2S;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 82;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let sc = self.scales[ib];
            let db = [
                d * (0.5 + f32::from(sc & 0xf)) * 0.25,
                d * (0.5 + f32::from(sc >> 4)) * 0.25,
            ];
            let qh = usize::from(self.qh[ib]);
            for l in 0..4 {
                let idx = usize::from(self.qs[4 * ib + l]) | ((qh << (8 - 2 * l)) & 0x300);
                let signs = self.qs[QK_K / 8 + 4 * ib + l];
                let o = 32 * ib + 8 * l;
                put8(&mut out[o..o + 8], db[l / 2], IQ2S_GRID[idx], signs);
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..66].copy_from_slice(&self.qs);
        out[66..74].copy_from_slice(&self.qh);
        out[74..82].copy_from_slice(&self.scales);
    }

    fn read(b: &[u8]) -> Self {
        let mut y = BlockIQ2S {
            d: le16(b, 0),
            qs: [0; 64],
            qh: [0; 8],
            scales: [0; 8],
        };
        y.qs.copy_from_slice(&b[2..66]);
        y.qh.copy_from_slice(&b[66..74]);
        y.scales.copy_from_slice(&b[74..82]);
        y
    }
}

impl WeightedBlock for BlockIQ2S {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw))
    }
}
