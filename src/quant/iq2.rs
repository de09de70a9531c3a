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
    Prepared, Scan, grid_index_of, project_group, scale_code, search_all, sums_q,
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

/// IQ2_XXS's scan (candidates `-6..=6` around `eff_max`; on-grid tracking is not used).
const SCAN_XXS: Scan = Scan {
    kmax: 3,
    bits: 2,
    range: 6,
    step: 0.1,
    on_grid_init: false,
    refit_all: true,
};

const SCAN_2: Scan = Scan {
    kmax: 3,
    bits: 2,
    range: 9,
    step: 0.1,
    on_grid_init: true,
    refit_all: false,
};

/// `sum(x²) / 256` (IQ2_XXS and IQ2_XS use the plain mean square).
#[inline(always)]
fn sigma2_mean(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in &x[..QK_K] {
        s += v * v;
    }
    s / QK_K as f32
}

/// `qw·sqrt(sigma2 + x²)` per sub-block of `B`.
fn imatrix_weights<const B: usize, const S: usize>(
    x: &[f32],
    qw: &[f32],
    sigma2: f32,
) -> [[f32; B]; S] {
    let mut w = [[0f32; B]; S];
    for s in 0..S {
        for i in 0..B {
            let v = x[B * s + i];
            w[s][i] = qw[B * s + i] * (sigma2 + v * v).sqrt();
        }
    }
    w
}

/// IQ2_XXS's search of one 32-value sub-block after `make_qp_quants` gave the starting scale
/// and levels (scalar port of the loop in `quantize_row_iq2_xxs_impl`).
fn iq2xxs_search(
    lat: &super::iq_grid::Lattice<8>,
    xval: &[f32; 32],
    w: &[f32; 32],
    waux: &[f32; 32],
    eff_max: f32,
    mut scale: f32,
    mut l: [i8; 32],
) -> (f32, [i8; 32]) {
    const KMAX: i32 = 3;
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
        let (sumqx, sumq2) = sums_q(w, xval, &laux);
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
        let (sumqx, sumq2) = sums_q(w, xval, &l);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    (scale, l)
}

impl BlockIQ2XXS {
    /// `quantize_row_iq2_xxs_impl` for one super-block; `fast` runs the searches in SIMD
    /// lanes where available (same bytes).
    pub(crate) fn quantize_impl(x: &[f32], qw: &[f32], fast: bool) -> Self {
        const KMAX: i32 = 3;
        let lat = iq2xxs();
        let prep = Prepared::<32, 8>::new(x, imatrix_weights::<32, 8>(x, qw, sigma2_mean(x)), true);
        // The starting scale comes from `make_qp_quants`, which writes its quants through a
        // `uint8_t` view of L; sub-blocks with a tiny max or no positive scale are skipped.
        let mut start = [0f32; 8];
        let mut eff = [0f32; 8];
        let mut l0 = [[0i8; 32]; 8];
        let mut active = [false; 8];
        for ib in 0..8 {
            if prep.max[ib] < GROUP_MAX_EPS {
                continue;
            }
            let mut lq = [0u8; 32];
            start[ib] = make_qp_quants(&prep.xval[ib], KMAX + 1, &mut lq, &prep.w[ib]);
            eff[ib] = start[ib] * KMAX as f32;
            if eff[ib] <= 0.0 {
                continue;
            }
            l0[ib] = std::array::from_fn(|i| lq[i] as i8);
            active[ib] = true;
        }
        let mut found = [0f32; 8];
        let mut levels = [[0i8; 32]; 8];
        let mut done = false;
        #[cfg(target_arch = "x86_64")]
        if fast && super::lanes::available() {
            let bits = active
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, &a)| b | (u8::from(a) << i));
            if bits != 0 {
                // SAFETY: AVX2 support was checked at run time.
                (found, levels) = unsafe {
                    super::lanes_iq::scan_and_refit_x8::<8, 32>(
                        lat,
                        &SCAN_XXS,
                        &prep.xval,
                        &prep.w,
                        &prep.waux,
                        eff,
                        bits,
                        super::lanes_iq::Start::Given(&start, &l0),
                    )
                };
            }
            done = true;
        }
        if !done {
            for ib in 0..8 {
                if active[ib] {
                    (found[ib], levels[ib]) = iq2xxs_search(
                        lat,
                        &prep.xval[ib],
                        &prep.w[ib],
                        &prep.waux[ib],
                        eff[ib],
                        start[ib],
                        l0[ib],
                    );
                }
            }
        }
        let mut q2 = [0u32; 16];
        let mut scales = [0f32; 8];
        let mut max_scale = 0.0f32;
        for ib in 0..8 {
            if !active[ib] {
                continue;
            }
            let mut signs = prep.signs[ib];
            let mut scale = found[ib];
            if scale < 0.0 {
                scale = -scale;
                for s in &mut signs {
                    *s = !*s & 127;
                }
            }
            let l = &levels[ib];
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

/// Folds a sub-block's sign flip into its sign bytes.
fn flip(signs: &mut [u8; 4], even_parity: bool) {
    for s in signs.iter_mut() {
        *s = if even_parity { !*s & 127 } else { !*s };
    }
}

impl BlockIQ2XS {
    /// `quantize_row_iq2_xs_impl` for one super-block.
    pub(crate) fn quantize_impl(x: &[f32], qw: &[f32], fast: bool) -> Self {
        let lat = iq2xs();
        let prep =
            Prepared::<16, 16>::new(x, imatrix_weights::<16, 16>(x, qw, sigma2_mean(x)), true);
        let active: [bool; 16] = std::array::from_fn(|ib| prep.max[ib] >= GROUP_MAX_EPS);
        let (found, levels) = search_all(lat, &SCAN_2, &prep, &active, fast);
        let mut y = BlockIQ2XS {
            d: fp16(0.0),
            qs: [0; 32],
            scales: [0; 8],
        };
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        for ib in 0..16 {
            if !active[ib] {
                continue;
            }
            let mut signs = prep.signs[ib];
            let mut scale = found[ib];
            if scale < 0.0 {
                scale = -scale;
                flip(&mut signs, true);
            }
            for k in 0..2 {
                let gi = grid_index_of::<8>(lat, 2, &levels[ib][8 * k..8 * k + 8]) as u16;
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
    /// `quantize_row_iq2_s_impl` for one super-block.
    pub(crate) fn quantize_impl(x: &[f32], qw: Option<&[f32]>, fast: bool) -> Self {
        let lat = iq2s();
        let sigma2 = super::q4k::sigma2_x2(x);
        let w = match qw {
            Some(qw) => imatrix_weights::<16, 16>(x, qw, sigma2),
            None => {
                let mut w = [[0f32; 16]; 16];
                for s in 0..16 {
                    for i in 0..16 {
                        let v = x[16 * s + i];
                        w[s][i] = 0.25 * sigma2 + v * v;
                    }
                }
                w
            }
        };
        let prep = Prepared::<16, 16>::new(x, w, false);
        let active: [bool; 16] = std::array::from_fn(|ib| prep.max[ib] >= EPS_IQ2_S);
        let (found, levels) = search_all(lat, &SCAN_2, &prep, &active, fast);
        let mut y = BlockIQ2S {
            d: fp16(0.0),
            qs: [0; 64],
            qh: [0; 8],
            scales: [0; 8],
        };
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        for ib in 0..16 {
            if !active[ib] {
                continue;
            }
            let mut signs = prep.signs[ib];
            let mut scale = found[ib];
            if scale < 0.0 {
                scale = -scale;
                flip(&mut signs, false);
            }
            for k in 0..2 {
                let gi = grid_index_of::<8>(lat, 2, &levels[ib][8 * k..8 * k + 8]);
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
        Self::quantize_impl(x, &[1.0; QK_K], false)
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
        Self::quantize_impl(x, qw, false)
    }
}

impl Block for BlockIQ2XS {
    const TYPE: GgmlType = GgmlType::IQ2XS;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 74;

    /// See [`BlockIQ2XXS::quantize`]: the reference requires an imatrix.
    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, &[1.0; QK_K], false)
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
        Self::quantize_impl(x, qw, false)
    }
}

impl Block for BlockIQ2S {
    const TYPE: GgmlType = GgmlType::IQ2S;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 82;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None, false)
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
        Self::quantize_impl(x, Some(qw), false)
    }
}
