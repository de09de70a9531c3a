//! IQ1_S and IQ1_M: ternary-ish quants (−1, 0, +1 shifted by ±1/8) as points of an
//! 8-dimensional 2048-point lattice. Port of `quantize_row_iq1_{s,m}_impl`: an exhaustive
//! search over the two split points of the sorted values, then projection onto the grid.
//! IQ1_S needs an importance matrix (the reference asserts); IQ1_M also runs without one.
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, WeightedBlock, le16};
use super::float::{f16v, fp16, nearest_int};
use super::iq_grid::{Lattice, iq1s};
use super::iq_search::pack_point;
use super::iq_tables::IQ1S_GRID;
use super::k_helpers::QK_K;
use crate::formats::gguf::GgmlType;

/// `IQ1S_DELTA` and `IQ1M_DELTA`.
const DELTA: f32 = 0.125;
/// `GROUP_MAX_EPS_IQ1_S`.
const EPS_IQ1_S: f32 = 1e-12;
/// `GROUP_MAX_EPS_IQ1_M`.
const EPS_IQ1_M: f32 = 1e-7;
const X_P: [f32; 3] = [-1.0 + DELTA, DELTA, 1.0 + DELTA];
const X_M: [f32; 3] = [-1.0 - DELTA, -DELTA, 1.0 - DELTA];

/// An IQ1_S block (50 bytes: `d: f16 | qs: u8[32] | qh: u16[8]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ1S {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Low 8 bits of the grid indices.
    pub qs: [u8; 32],
    /// Per 32 values: 3 high bits of four grid indices, a 3-bit scale and the shift sign.
    pub qh: [u16; 8],
}

/// An IQ1_M block (56 bytes: `qs: u8[32] | qh: u8[16] | scales: u8[8]`); the fp16 super-scale
/// is spread over the top nibbles of the four `u16` scale words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ1M {
    /// Low 8 bits of the grid indices.
    pub qs: [u8; 32],
    /// Per 16 values: two 3-bit index extensions and two shift-sign bits.
    pub qh: [u8; 16],
    /// Sixteen 3-bit scales and the super-scale, as four little-endian `u16`.
    pub scales: [u8; 8],
}

/// The values of a sub-block sorted ascending, ties in index order (glibc's `qsort` is a
/// stable merge sort for arrays this small), as original indices.
fn sorted_indices<const B: usize>(xb: &[f32]) -> [usize; B] {
    let mut idx: [usize; B] = std::array::from_fn(|i| i);
    // `iq1_sort_helper` compares only the values: a stable sort keeps equal values in index
    // order, as the reference's merge sort does.
    idx.sort_by(|&a, &b| {
        let (x, y) = (xb[a], xb[b]);
        if x < y {
            std::cmp::Ordering::Less
        } else if x > y {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    idx
}

/// `iq1_find_best_neighbour2`: the neighbour minimising `sum w·(scale·xg[l] − x)²` (first on
/// ties); writes its levels to `l` and returns its grid index.
fn find_best_neighbour2(
    lat: &Lattice<8>,
    neighbours: &[u16],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    xg: &[f32; 3],
    l: &mut [i8],
) -> usize {
    let mut best = f32::MAX;
    let mut grid_index = usize::from(neighbours[0]);
    for &nb in neighbours {
        let pg = &lat.grid[usize::from(nb)];
        let mut d2 = 0.0f32;
        for i in 0..8 {
            let q = xg[((pg[i] - 1) / 2) as usize];
            let w = weight[i];
            let diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        if d2 < best {
            best = d2;
            grid_index = usize::from(nb);
        }
    }
    let pg = &lat.grid[grid_index];
    for i in 0..8 {
        l[i] = (pg[i] - 1) / 2;
    }
    grid_index
}

/// Grid indices for the groups of 8 in `l`, projecting off-grid groups onto their best
/// neighbour (`xx(k)` gives each group's shifted levels). Returns whether all were on the grid.
fn grid_indices(
    lat: &Lattice<8>,
    xb: &[f32],
    weight: &[f32],
    scale: f32,
    xx: impl Fn(usize) -> &'static [f32; 3],
    l: &mut [i8],
    index: &mut [u16],
) -> bool {
    let mut all_on_grid = true;
    for k in 0..index.len() {
        let g = 8 * k..8 * k + 8;
        let m = lat.map[pack_point::<8>(&l[g.clone()], 2)];
        let gi = if m >= 0 {
            m as usize
        } else {
            all_on_grid = false;
            find_best_neighbour2(
                lat,
                lat.neighbours_of(m),
                &xb[g.clone()],
                &weight[g.clone()],
                scale,
                xx(k),
                &mut l[g],
            )
        };
        index[k] = gi as u16;
    }
    all_on_grid
}

/// The refit `sum w·q·x / sum w·q²` over the chosen grid points, if both sums are positive.
fn refit(
    lat: &Lattice<8>,
    xb: &[f32],
    weight: &[f32],
    xx: impl Fn(usize) -> &'static [f32; 3],
    index: &[u16],
) -> Option<f32> {
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for (k, &gi) in index.iter().enumerate() {
        let pg = &lat.grid[usize::from(gi)];
        let xs = xx(k);
        for j in 0..8 {
            let w = weight[8 * k + j];
            let q = xs[((pg[j] - 1) / 2) as usize];
            sumqx += w * q * xb[8 * k + j];
            sumq2 += w * q * q;
        }
    }
    (sumqx > 0.0 && sumq2 > 0.0).then(|| sumqx / sumq2)
}

/// Sub-block weights: `qw·sqrt(sigma2 + x²)`, or `x²` without an imatrix.
#[inline(always)]
fn weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32, w: &mut [f32]) {
    match qw {
        Some(qw) => {
            for i in 0..xb.len() {
                w[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
            }
        }
        None => {
            for i in 0..xb.len() {
                w[i] = xb[i] * xb[i];
            }
        }
    }
}

fn abs_max(xb: &[f32]) -> f32 {
    let mut max = xb[0].abs();
    for &v in &xb[1..] {
        let a = v.abs();
        max = if max > a { max } else { a };
    }
    max
}

static XP: [f32; 3] = X_P;
static XM: [f32; 3] = X_M;

impl BlockIQ1S {
    fn quantize_impl(x: &[f32], qw: &[f32]) -> Self {
        let lat = iq1s();
        let sigma2 = super::q4k::sigma2_x2(x);
        let mut y = BlockIQ1S {
            d: fp16(0.0),
            qs: [0; 32],
            qh: [0; 8],
        };
        let mut scales = [0f32; 8];
        let mut shifts = [0i8; 8];
        let mut max_scale = 0.0f32;
        let mut weight = [0f32; 32];
        for ib in 0..8 {
            let r = 32 * ib..32 * ib + 32;
            let xb = &x[r.clone()];
            weights(xb, Some(&qw[r]), sigma2, &mut weight);
            let max = abs_max(xb);
            if max < EPS_IQ1_S {
                scales[ib] = 0.0;
                shifts[ib] = 1;
                continue;
            }
            let idx = sorted_indices::<32>(xb);
            let mut sumx = [0f32; 33];
            let mut sumw = [0f32; 33];
            for j in 0..32 {
                let i = idx[j];
                sumx[j + 1] = sumx[j] + weight[i] * xb[i];
                sumw[j + 1] = sumw[j] + weight[i];
            }
            let mut best_score = -f32::MAX;
            let mut scale = max;
            let (mut besti1, mut besti2, mut best_shift) = (-1i32, -1i32, 0i32);
            for i1 in 0..=32 {
                for i2 in i1..=32 {
                    for (xs, shift) in [(&X_P, 1), (&X_M, -1)] {
                        let sumqx = (sumx[i1] - sumx[0]) * xs[0]
                            + (sumx[i2] - sumx[i1]) * xs[1]
                            + (sumx[32] - sumx[i2]) * xs[2];
                        let sumq2 = (sumw[i1] - sumw[0]) * xs[0] * xs[0]
                            + (sumw[i2] - sumw[i1]) * xs[1] * xs[1]
                            + (sumw[32] - sumw[i2]) * xs[2] * xs[2];
                        if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                            scale = sumqx / sumq2;
                            best_score = scale * sumqx;
                            besti1 = i1 as i32;
                            besti2 = i2 as i32;
                            best_shift = shift;
                        }
                    }
                }
            }
            if besti1 < 0 || besti2 < 0 || best_shift == 0 {
                scales[ib] = 0.0;
                shifts[ib] = 1;
                continue;
            }
            let mut l = [0i8; 32];
            for (j, &i) in idx.iter().enumerate() {
                l[i] = if (j as i32) < besti1 {
                    0
                } else if (j as i32) < besti2 {
                    1
                } else {
                    2
                };
            }
            if scale < 0.0 {
                for v in &mut l {
                    *v = 2 - *v;
                }
                scale = -scale;
                best_shift = -best_shift;
            }
            let xx: &'static [f32; 3] = if best_shift == 1 { &XP } else { &XM };
            let mut index = [0u16; 4];
            let on_grid = grid_indices(lat, xb, &weight, scale, |_| xx, &mut l, &mut index);
            if !on_grid && let Some(s) = refit(lat, xb, &weight, |_| xx, &index) {
                scale = s;
            }
            let mut h = 0u16;
            for k in 0..4 {
                y.qs[4 * ib + k] = (index[k] & 255) as u8;
                h |= (index[k] >> 8) << (3 * k);
            }
            y.qh[ib] = h;
            scales[ib] = scale;
            shifts[ib] = best_shift as i8;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return y;
        }
        let d = max_scale / 15.0;
        y.d = fp16(d * 1.125);
        let id = 1.0 / d;
        for ib in 0..8 {
            let mut l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7);
            if shifts[ib] == -1 {
                l |= 8;
            }
            y.qh[ib] |= (l << 12) as u16;
        }
        y
    }
}

impl BlockIQ1M {
    fn quantize_impl(x: &[f32], qw: Option<&[f32]>) -> Self {
        const MASKS: [u8; 4] = [0x00, 0x80, 0x08, 0x88];
        let lat = iq1s();
        let sigma2 = super::q4k::sigma2_x2(x);
        let mut y = BlockIQ1M {
            qs: [0; 32],
            qh: [0; 16],
            scales: [0; 8],
        };
        let mut scales = [0f32; 16];
        let mut shifts = [0i8; 16];
        let mut max_scale = 0.0f32;
        let mut weight = [0f32; 16];
        // Group k of a sub-block uses x_p or x_m depending on the chosen sign combination.
        let shifted = |best_k: i32| {
            move |k: usize| -> &'static [f32; 3] {
                let plus = if k == 0 { best_k < 2 } else { best_k % 2 == 0 };
                if plus { &XP } else { &XM }
            }
        };
        for ib in 0..16 {
            let r = 16 * ib..16 * ib + 16;
            let xb = &x[r.clone()];
            weights(xb, qw.map(|q| &q[r]), sigma2, &mut weight);
            let max = abs_max(xb);
            if max < EPS_IQ1_M {
                scales[ib] = 0.0;
                shifts[ib] = 0;
                continue;
            }
            let idx = sorted_indices::<16>(xb);
            // Prefix sums per half of the sub-block (each half may use its own shift).
            let mut px = [[0f32; 17]; 2];
            let mut pw = [[0f32; 17]; 2];
            for j in 0..16 {
                let i = idx[j];
                let h = usize::from(i >= 8);
                px[h][j + 1] = px[h][j] + weight[i] * xb[i];
                px[1 - h][j + 1] = px[1 - h][j];
                pw[h][j + 1] = pw[h][j] + weight[i];
                pw[1 - h][j + 1] = pw[1 - h][j];
            }
            let txs = [px[0][16], px[1][16]];
            let tws = [pw[0][16], pw[1][16]];
            let (p2, m2) = (X_P[2], X_M[2]);
            let cp1 = X_P[0] * X_P[0] - X_P[1] * X_P[1];
            let cp2 = X_P[1] * X_P[1] - X_P[2] * X_P[2];
            let cm1 = X_M[0] * X_M[0] - X_M[1] * X_M[1];
            let cm2 = X_M[1] * X_M[1] - X_M[2] * X_M[2];
            let mut best_score = -f32::MAX;
            let mut scale = max;
            let (mut besti1, mut besti2, mut best_k) = (-1i32, -1i32, -1i32);
            for i1 in 0..=16 {
                for i2 in i1..=16 {
                    let mut qx_p = [0f32; 2];
                    let mut qx_m = [0f32; 2];
                    let mut q2_p = [0f32; 2];
                    let mut q2_m = [0f32; 2];
                    for h in 0..2 {
                        let sx = px[h][i1] + px[h][i2];
                        qx_p[h] = txs[h] * p2 - sx;
                        qx_m[h] = txs[h] * m2 - sx;
                        q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                        q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                    }
                    let sumqx = [
                        qx_p[0] + qx_p[1],
                        qx_p[0] + qx_m[1],
                        qx_m[0] + qx_p[1],
                        qx_m[0] + qx_m[1],
                    ];
                    let sumq2 = [
                        q2_p[0] + q2_p[1],
                        q2_p[0] + q2_m[1],
                        q2_m[0] + q2_p[1],
                        q2_m[0] + q2_m[1],
                    ];
                    for k in 0..4 {
                        if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                            scale = sumqx[k] / sumq2[k];
                            best_score = scale * sumqx[k];
                            besti1 = i1 as i32;
                            besti2 = i2 as i32;
                            best_k = k as i32;
                        }
                    }
                }
            }
            if besti1 < 0 || besti2 < 0 || best_k < 0 {
                scales[ib] = 0.0;
                shifts[ib] = 0;
                continue;
            }
            let mut l = [0i8; 16];
            for (j, &i) in idx.iter().enumerate() {
                l[i] = if (j as i32) < besti1 {
                    0
                } else if (j as i32) < besti2 {
                    1
                } else {
                    2
                };
            }
            if scale < 0.0 {
                for v in &mut l {
                    *v = 2 - *v;
                }
                scale = -scale;
                best_k = 3 - best_k;
            }
            let mut index = [0u16; 2];
            let on_grid =
                grid_indices(lat, xb, &weight, scale, shifted(best_k), &mut l, &mut index);
            if !on_grid && let Some(s) = refit(lat, xb, &weight, shifted(best_k), &index) {
                scale = s;
            }
            y.qs[2 * ib] = (index[0] & 255) as u8;
            y.qs[2 * ib + 1] = (index[1] & 255) as u8;
            y.qh[ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
            scales[ib] = scale;
            shifts[ib] = best_k as i8;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return y;
        }
        let mut sc = [0u16; 4];
        let mut d = max_scale / 15.0;
        let id = 1.0 / d;
        let mut sumqx = 0.0f32;
        let mut sumq2 = 0.0f32;
        for ib in 0..16 {
            let l = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 7);
            sc[ib / 4] |= (l << (3 * (ib % 4))) as u16;
            y.qh[ib] |= MASKS[shifts[ib] as usize];
            let xb = &x[16 * ib..16 * ib + 16];
            weights(
                xb,
                qw.map(|q| &q[16 * ib..16 * ib + 16]),
                sigma2,
                &mut weight,
            );
            let xx = shifted(i32::from(shifts[ib]));
            for k in 0..2 {
                let gi = usize::from(y.qs[2 * ib + k])
                    + ((usize::from(y.qh[ib]) << (8 - 4 * k)) & 0x700);
                let pg = &lat.grid[gi];
                let xs = xx(k);
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xs[((pg[j] - 1) / 2) as usize] * (2 * l + 1) as f32;
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
        }
        if sumq2 > 0.0 {
            d = sumqx / sumq2;
        }
        let s = fp16(d * 1.1125);
        sc[0] |= (s & 0x000f) << 12;
        sc[1] |= (s & 0x00f0) << 8;
        sc[2] |= (s & 0x0f00) << 4;
        sc[3] |= s & 0xf000;
        for (i, v) in sc.iter().enumerate() {
            y.scales[2 * i..2 * i + 2].copy_from_slice(&v.to_le_bytes());
        }
        y
    }

    fn scale_words(&self) -> [u16; 4] {
        std::array::from_fn(|i| le16(&self.scales, 2 * i))
    }
}

impl Block for BlockIQ1S {
    const TYPE: GgmlType = GgmlType::IQ1S;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 50;

    /// The reference requires an imatrix for IQ1_S (it asserts); uniform weights stand in.
    /// The file quantizer refuses IQ1_S without an imatrix before this.
    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, &[1.0; QK_K])
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let qh = self.qh[ib];
            let dl = d * (2 * i32::from((qh >> 12) & 7) + 1) as f32;
            let delta = if qh & 0x8000 != 0 { -DELTA } else { DELTA };
            for l in 0..4 {
                let gi = usize::from(self.qs[4 * ib + l]) | (usize::from((qh >> (3 * l)) & 7) << 8);
                let g = IQ1S_GRID[gi].to_le_bytes();
                for j in 0..8 {
                    out[32 * ib + 8 * l + j] = dl * (f32::from(g[j] as i8) + delta);
                }
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..34].copy_from_slice(&self.qs);
        for (i, h) in self.qh.iter().enumerate() {
            out[34 + 2 * i..36 + 2 * i].copy_from_slice(&h.to_le_bytes());
        }
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 32];
        qs.copy_from_slice(&b[2..34]);
        BlockIQ1S {
            d: le16(b, 0),
            qs,
            qh: std::array::from_fn(|i| le16(b, 34 + 2 * i)),
        }
    }
}

impl WeightedBlock for BlockIQ1S {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, qw)
    }
}

impl Block for BlockIQ1M {
    const TYPE: GgmlType = GgmlType::IQ1M;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 56;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let sc = self.scale_words();
        let s =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = f16v(s);
        for ib in 0..8 {
            let w = sc[ib / 2];
            let dl1 = d * (2 * i32::from((w >> (6 * (ib % 2))) & 7) + 1) as f32;
            let dl2 = d * (2 * i32::from((w >> (6 * (ib % 2) + 3)) & 7) + 1) as f32;
            let qs = &self.qs[4 * ib..4 * ib + 4];
            let qh = [
                usize::from(self.qh[2 * ib]),
                usize::from(self.qh[2 * ib + 1]),
            ];
            let idx = [
                usize::from(qs[0]) | ((qh[0] << 8) & 0x700),
                usize::from(qs[1]) | ((qh[0] << 4) & 0x700),
                usize::from(qs[2]) | ((qh[1] << 8) & 0x700),
                usize::from(qs[3]) | ((qh[1] << 4) & 0x700),
            ];
            let delta = [
                if qh[0] & 0x08 != 0 { -DELTA } else { DELTA },
                if qh[0] & 0x80 != 0 { -DELTA } else { DELTA },
                if qh[1] & 0x08 != 0 { -DELTA } else { DELTA },
                if qh[1] & 0x80 != 0 { -DELTA } else { DELTA },
            ];
            for l in 0..4 {
                let dl = if l < 2 { dl1 } else { dl2 };
                let g = IQ1S_GRID[idx[l]].to_le_bytes();
                for j in 0..8 {
                    out[32 * ib + 8 * l + j] = dl * (f32::from(g[j] as i8) + delta[l]);
                }
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.qs);
        out[32..48].copy_from_slice(&self.qh);
        out[48..56].copy_from_slice(&self.scales);
    }

    fn read(b: &[u8]) -> Self {
        let mut y = BlockIQ1M {
            qs: [0; 32],
            qh: [0; 16],
            scales: [0; 8],
        };
        y.qs.copy_from_slice(&b[..32]);
        y.qh.copy_from_slice(&b[32..48]);
        y.scales.copy_from_slice(&b[48..56]);
        y
    }
}

impl WeightedBlock for BlockIQ1M {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw))
    }
}
