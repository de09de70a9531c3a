//! IQ3_XXS and IQ3_S: 3-bit quants as points of a 4-dimensional lattice (256 or 512 points),
//! with separate sign bits and 4-bit sub-block scales. Port of `quantize_row_iq3_xxs_impl`
//! and `quantize_row_iq3_s_impl`; both also run without an imatrix (weights `x²`).
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, WeightedBlock, le16};
use super::float::{f16v, fp16};
use super::iq_grid::{iq3s, iq3xxs};
use super::iq_search::{Prepared, Scan, grid_index_of, scale_code, search_all};
use super::iq_tables::{IQ3S_GRID, IQ3XXS_GRID, KMASK_IQ2XS, KSIGNS_IQ2XS};
use super::k_helpers::QK_K;
use crate::formats::gguf::GgmlType;

/// `GROUP_MAX_EPS_IQ3_XXS`.
const EPS_IQ3_XXS: f32 = 1e-8;

/// An IQ3_XXS block (98 bytes: `d: f16 | qs: u8[64] | scales_and_signs: u32[8]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ3XXS {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Grid indices (64) followed by eight `u32`: four 7-bit sign groups and a 4-bit scale.
    pub qs: [u8; 96],
}

/// An IQ3_S block (110 bytes: `d: f16 | qs: u8[64] | qh: u8[8] | signs: u8[32] | scales: u8[4]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIQ3S {
    /// Super-block scale, fp16 bits.
    pub d: u16,
    /// Low 8 bits of the grid indices.
    pub qs: [u8; 64],
    /// Ninth bits of the grid indices.
    pub qh: [u8; 8],
    /// Sign bits, one byte per 8 values.
    pub signs: [u8; 32],
    /// 4-bit sub-block scales, two per byte.
    pub scales: [u8; 4],
}

const SCAN_XXS: Scan = Scan {
    kmax: 8,
    bits: 3,
    range: 15,
    step: 0.2,
    on_grid_init: true,
    refit_all: false,
};

const SCAN_S: Scan = Scan {
    kmax: 8,
    bits: 3,
    range: 9,
    step: 0.2,
    on_grid_init: false,
    refit_all: true,
};

/// Sub-block weights of a super-block: `qw·sqrt(sigma2 + x²)` with an imatrix, `x²` without.
fn weights(x: &[f32], qw: Option<&[f32]>) -> [[f32; 32]; 8] {
    let sigma2 = super::q4k::sigma2_x2(x);
    let mut w = [[0f32; 32]; 8];
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => {
                for i in 0..32 {
                    w[ib][i] = qw[32 * ib + i] * (sigma2 + xb[i] * xb[i]).sqrt();
                }
            }
            None => {
                for i in 0..32 {
                    w[ib][i] = xb[i] * xb[i];
                }
            }
        }
    }
    w
}

impl BlockIQ3XXS {
    /// `quantize_row_iq3_xxs_impl` for one super-block; `fast` runs the sub-block searches in
    /// SIMD lanes where available (same bytes).
    pub(crate) fn quantize_impl(x: &[f32], qw: Option<&[f32]>, fast: bool) -> Self {
        let lat = iq3xxs();
        let prep = Prepared::<32, 8>::new(x, weights(x, qw), true);
        let active: [bool; 8] = std::array::from_fn(|ib| prep.max[ib] >= EPS_IQ3_XXS);
        let (found, levels) = search_all(lat, &SCAN_XXS, &prep, &active, fast);
        let mut q3 = [0u8; 96];
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
            for k in 0..8 {
                q3[8 * ib + k] = grid_index_of::<4>(lat, 3, &l[4 * k..4 * k + 4]) as u8;
            }
            let ss = u32::from(signs[0])
                | (u32::from(signs[1]) << 7)
                | (u32::from(signs[2]) << 14)
                | (u32::from(signs[3]) << 21);
            q3[64 + 4 * ib..68 + 4 * ib].copy_from_slice(&ss.to_le_bytes());
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return BlockIQ3XXS {
                d: fp16(0.0),
                qs: [0; 96],
            };
        }
        let d = max_scale / 31.0;
        let id = 1.0 / d;
        for ib in 0..8 {
            let l = scale_code(id, scales[ib], 15) as u32;
            let o = 64 + 4 * ib;
            let ss = u32::from_le_bytes([q3[o], q3[o + 1], q3[o + 2], q3[o + 3]]) | (l << 28);
            q3[o..o + 4].copy_from_slice(&ss.to_le_bytes());
        }
        BlockIQ3XXS {
            d: fp16(d * 1.0125),
            qs: q3,
        }
    }
}

impl BlockIQ3S {
    /// `quantize_row_iq3_s_impl` (block size 32) for one super-block; `fast` as in
    /// [`BlockIQ3XXS::quantize_impl`].
    pub(crate) fn quantize_impl(x: &[f32], qw: Option<&[f32]>, fast: bool) -> Self {
        let lat = iq3s();
        let prep = Prepared::<32, 8>::new(x, weights(x, qw), false);
        let active: [bool; 8] = std::array::from_fn(|ib| prep.max[ib] != 0.0);
        let (found, levels) = search_all(lat, &SCAN_S, &prep, &active, fast);
        let mut y = BlockIQ3S {
            d: fp16(0.0),
            qs: [0; 64],
            qh: [0; 8],
            signs: [0; 32],
            scales: [0; 4],
        };
        // The reference advances its `qs` and `signs` pointers only past sub-blocks it
        // quantized; an all-zero sub-block shifts the following ones down (qh is indexed
        // absolutely). Reproduced with explicit cursors.
        let mut qs_at = 0usize;
        let mut signs_at = 0usize;
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
                    *s = !*s;
                }
            }
            let l = &levels[ib];
            for k in 0..8 {
                let gi = grid_index_of::<4>(lat, 3, &l[4 * k..4 * k + 4]);
                y.qs[qs_at + k] = (gi & 255) as u8;
                y.qh[ib] |= ((gi >> 8) << k) as u8;
            }
            qs_at += 8;
            y.signs[signs_at..signs_at + 4].copy_from_slice(&signs);
            signs_at += 4;
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return y;
        }
        let d = max_scale / 31.0;
        y.d = fp16(d * 1.033);
        let id = 1.0 / d;
        for ib in (0..8).step_by(2) {
            let l1 = scale_code(id, scales[ib], 15);
            let l2 = scale_code(id, scales[ib + 1], 15);
            y.scales[ib / 2] = (l1 | (l2 << 4)) as u8;
        }
        y
    }
}

impl Block for BlockIQ3XXS {
    const TYPE: GgmlType = GgmlType::IQ3XXS;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 98;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None, false)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for ib in 0..8 {
            let o = 64 + 4 * ib;
            let aux =
                u32::from_le_bytes([self.qs[o], self.qs[o + 1], self.qs[o + 2], self.qs[o + 3]]);
            let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                let g1 = IQ3XXS_GRID[usize::from(self.qs[8 * ib + 2 * l])].to_le_bytes();
                let g2 = IQ3XXS_GRID[usize::from(self.qs[8 * ib + 2 * l + 1])].to_le_bytes();
                let y = &mut out[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                for j in 0..4 {
                    let s1 = if signs & KMASK_IQ2XS[j] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    let s2 = if signs & KMASK_IQ2XS[j + 4] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    y[j] = db * f32::from(g1[j]) * s1;
                    y[j + 4] = db * f32::from(g2[j]) * s2;
                }
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..98].copy_from_slice(&self.qs);
    }

    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; 96];
        qs.copy_from_slice(&b[2..98]);
        BlockIQ3XXS { d: le16(b, 0), qs }
    }
}

impl WeightedBlock for BlockIQ3XXS {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw), false)
    }
}

impl Block for BlockIQ3S {
    const TYPE: GgmlType = GgmlType::IQ3S;
    const ELEMS: usize = QK_K;
    const BYTES: usize = 110;

    fn quantize(x: &[f32]) -> Self {
        Self::quantize_impl(x, None, false)
    }

    fn dequantize(&self, out: &mut [f32]) {
        let d = f16v(self.d);
        for pair in 0..4 {
            let sc = self.scales[pair];
            let dbs = [
                d * (1 + 2 * i32::from(sc & 0xf)) as f32,
                d * (1 + 2 * i32::from(sc >> 4)) as f32,
            ];
            for half in 0..2 {
                let ib = 2 * pair + half;
                let db = dbs[half];
                let qh = u32::from(self.qh[ib]);
                for l in 0..4 {
                    let q1 = u32::from(self.qs[8 * ib + 2 * l]) | ((qh << (8 - 2 * l)) & 256);
                    let q2 = u32::from(self.qs[8 * ib + 2 * l + 1]) | ((qh << (7 - 2 * l)) & 256);
                    let g1 = IQ3S_GRID[q1 as usize].to_le_bytes();
                    let g2 = IQ3S_GRID[q2 as usize].to_le_bytes();
                    let signs = self.signs[4 * ib + l];
                    let y = &mut out[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                    for j in 0..4 {
                        let s1 = if signs & KMASK_IQ2XS[j] != 0 {
                            -1.0
                        } else {
                            1.0
                        };
                        let s2 = if signs & KMASK_IQ2XS[j + 4] != 0 {
                            -1.0
                        } else {
                            1.0
                        };
                        y[j] = db * f32::from(g1[j]) * s1;
                        y[j + 4] = db * f32::from(g2[j]) * s2;
                    }
                }
            }
        }
    }

    fn write(&self, out: &mut [u8]) {
        out[..2].copy_from_slice(&self.d.to_le_bytes());
        out[2..66].copy_from_slice(&self.qs);
        out[66..74].copy_from_slice(&self.qh);
        out[74..106].copy_from_slice(&self.signs);
        out[106..110].copy_from_slice(&self.scales);
    }

    fn read(b: &[u8]) -> Self {
        let mut y = BlockIQ3S {
            d: le16(b, 0),
            qs: [0; 64],
            qh: [0; 8],
            signs: [0; 32],
            scales: [0; 4],
        };
        y.qs.copy_from_slice(&b[2..66]);
        y.qh.copy_from_slice(&b[66..74]);
        y.signs.copy_from_slice(&b[74..106]);
        y.scales.copy_from_slice(&b[106..110]);
        y
    }
}

impl WeightedBlock for BlockIQ3S {
    fn quantize_weighted(x: &[f32], qw: &[f32], _: f32) -> Self {
        Self::quantize_impl(x, Some(qw), false)
    }
}
