//! Fast imatrix paths for the legacy and K-quant types on x86-64 AVX2: the per-sub-block
//! searches (`make_qkx3_quants`, weighted `make_qx_quants`) run eight sub-blocks side by side
//! in SIMD lanes (see [`super::lanes`]); weights, scale packing and the requantization stay the
//! scalar code. Every lane performs the reference's operation sequence, so the bytes equal
//! the scalar [`super::block::WeightedBlock`] ports (tests compare both).

#![cfg(target_arch = "x86_64")]
#![allow(unsafe_code)]
// Index loops walk several arrays in step, as the reference does.
#![allow(clippy::needless_range_loop)]

use super::block::{Block, WeightedBlock, row_sigma2};
use super::float::{f16v, fp16, nearest_int};
use super::k_helpers::{QK_K, make_qp_quants, make_qx_quants_w, pack_2bit, pack_scale_min_k4};
use super::lanes::avx2::{make_qkx2_x8, make_qx_w_x8};
use super::q2k::BlockQ2K;
use super::q3k::{BlockQ3K, pack_with_scales};
use super::q4::{BlockQ4_0, BlockQ4_1, legacy_weights};
use super::q4k::{BlockQ4K, pack_q4k, requant_k, sigma2_x2};
use super::q5::{BlockQ5_0, BlockQ5_1};
use super::q5k::{BlockQ5K, pack_q5k};
use super::q6k::{BlockQ6K, finish as finish_q6k};
use crate::formats::gguf::GgmlType;

/// Quantizes whole rows with importance weights through the lane kernels. Returns `false` for
/// types without a fast path (the caller uses the scalar port).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn quantize_rows(t: GgmlType, src: &[f32], qw: &[f32], dst: &mut [u8]) -> bool {
    let n = qw.len();
    let rows = src.len() / n;
    let rb = dst.len() / rows.max(1);
    for (row, out) in src.chunks_exact(n).zip(dst.chunks_exact_mut(rb)) {
        match t {
            GgmlType::Q4_0 => legacy_row::<BlockQ4_0>(row, qw, out, |x, w, l| {
                let s = make_qx_w_x8::<32>(x, 8, l, Some(w));
                (s, [0.0; 8])
            }),
            GgmlType::Q5_0 => legacy_row::<BlockQ5_0>(row, qw, out, |x, w, l| {
                let s = make_qx_w_x8::<32>(x, 16, l, Some(w));
                (s, [0.0; 8])
            }),
            GgmlType::Q4_1 => legacy_row::<BlockQ4_1>(row, qw, out, |x, w, l| qkx3_x8(x, w, 15, l)),
            GgmlType::Q5_1 => legacy_row::<BlockQ5_1>(row, qw, out, |x, w, l| qkx3_x8(x, w, 31, l)),
            GgmlType::Q2K => blocks(row, qw, out, 84, |x, q| q2k_block(x, q)),
            GgmlType::Q3K => blocks(row, qw, out, 110, |x, q| q3k_block(x, q)),
            GgmlType::Q4K => blocks(row, qw, out, 144, |x, q| {
                let (d, dmin, scales, l) = k_superblock(x, q, 15, false);
                BlockQ4K {
                    d,
                    dmin,
                    scales,
                    qs: pack_q4k(&l),
                }
                .write_vec()
            }),
            GgmlType::Q5K => blocks(row, qw, out, 176, |x, q| {
                let (d, dmin, scales, l) = k_superblock(x, q, 31, true);
                let (qh, qs) = pack_q5k(&l);
                BlockQ5K {
                    d,
                    dmin,
                    scales,
                    qh,
                    qs,
                }
                .write_vec()
            }),
            GgmlType::Q6K => blocks(row, qw, out, 210, |x, q| q6k_block(x, q)),
            _ => return false,
        }
    }
    true
}

/// Serialises a block into a fixed buffer.
trait WriteVec: Block {
    fn write_vec(&self) -> [u8; 256] {
        let mut b = [0u8; 256];
        self.write(&mut b[..Self::BYTES]);
        b
    }
}
impl<B: Block> WriteVec for B {}

/// Runs `f` on each 256-value super-block of a row.
#[inline(always)]
fn blocks(
    row: &[f32],
    qw: &[f32],
    out: &mut [u8],
    bytes: usize,
    f: impl Fn(&[f32], &[f32]) -> [u8; 256],
) {
    for ((x, q), o) in row
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(bytes))
    {
        o.copy_from_slice(&f(x, q)[..bytes]);
    }
}

/// `make_qkx3_quants(32, nmax, …, -0.9, 0.05, 36, false)` on eight 32-value blocks; returns
/// per-lane `(scale, the_min)` as the legacy searches' `(d, m)` pair.
#[target_feature(enable = "avx2")]
fn qkx3_x8(x: &[f32], w: &[f32], nmax: i32, l: &mut [i8]) -> ([f32; 8], [f32; 8]) {
    let mut lu = [0u8; 256];
    let r = make_qkx2_x8::<32>(x, w, nmax, &mut lu, -0.9, 0.05, 36, false);
    for (d, s) in l.iter_mut().zip(lu) {
        *d = s as i8;
    }
    r
}

/// Legacy types: eight 32-value blocks per lane pass, the row's `sigma2` for the weights; the
/// blocks that do not fill a pass use the scalar port.
#[inline(always)]
fn legacy_row<B: WeightedBlock + LegacyPack>(
    row: &[f32],
    qw: &[f32],
    out: &mut [u8],
    search: impl Fn(&[f32], &[f32], &mut [i8]) -> ([f32; 8], [f32; 8]),
) {
    let sigma2 = row_sigma2(row);
    let nb = row.len() / 32;
    let full = nb / 8 * 8;
    for g in (0..full).step_by(8) {
        let xs = &row[32 * g..32 * g + 256];
        let mut w = [0f32; 256];
        for b in 0..8 {
            let mut wb = [0f32; 32];
            legacy_weights(&xs[32 * b..], &qw[32 * (g + b)..], sigma2, &mut wb);
            w[32 * b..32 * b + 32].copy_from_slice(&wb);
        }
        let mut l = [0i8; 256];
        let (d, m) = search(xs, &w, &mut l);
        for b in 0..8 {
            let blk = B::pack(d[b], m[b], &l[32 * b..32 * b + 32]);
            blk.write(&mut out[B::BYTES * (g + b)..B::BYTES * (g + b + 1)]);
        }
    }
    for b in full..nb {
        B::quantize_weighted(&row[32 * b..32 * b + 32], &qw[32 * b..32 * b + 32], sigma2)
            .write(&mut out[B::BYTES * b..B::BYTES * (b + 1)]);
    }
}

/// Builds a legacy block from its search result (`d`, `m` = the_min, quants).
trait LegacyPack: Sized {
    fn pack(d: f32, the_min: f32, l: &[i8]) -> Self;
}

impl LegacyPack for BlockQ4_0 {
    fn pack(d: f32, _: f32, l: &[i8]) -> Self {
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = (l[j] as u8) | ((l[j + 16] as u8) << 4);
        }
        BlockQ4_0 { d: fp16(d), qs }
    }
}

impl LegacyPack for BlockQ4_1 {
    fn pack(d: f32, the_min: f32, l: &[i8]) -> Self {
        let mut qs = [0u8; 16];
        for (j, q) in qs.iter_mut().enumerate() {
            *q = (l[j] as u8) | ((l[j + 16] as u8) << 4);
        }
        BlockQ4_1 {
            d: fp16(d),
            m: fp16(-the_min),
            qs,
        }
    }
}

impl LegacyPack for BlockQ5_0 {
    fn pack(d: f32, _: f32, l: &[i8]) -> Self {
        let q: [u8; 32] = std::array::from_fn(|j| l[j] as u8);
        let (qh, qs) = super::q5::pack5(&q);
        BlockQ5_0 { d: fp16(d), qh, qs }
    }
}

impl LegacyPack for BlockQ5_1 {
    fn pack(d: f32, the_min: f32, l: &[i8]) -> Self {
        let q: [u8; 32] = std::array::from_fn(|j| l[j] as u8);
        let (qh, qs) = super::q5::pack5(&q);
        BlockQ5_1 {
            d: fp16(d),
            m: fp16(-the_min),
            qh,
            qs,
        }
    }
}

/// `quantize_row_q{4,5}_K_impl` for one super-block with the lane search.
#[target_feature(enable = "avx2")]
fn k_superblock(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    clamp63: bool,
) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    let sigma2 = sigma2_x2(x);
    let mut w = [0f32; QK_K];
    let mut sw = [0f32; 8];
    for j in 0..8 {
        let mut wj = [0f32; 32];
        sw[j] = super::q4k::imatrix_weights32(&x[32 * j..], &qw[32 * j..], sigma2, &mut wj);
        w[32 * j..32 * j + 32].copy_from_slice(&wj);
    }
    let mut l = [0u8; QK_K];
    let (scales, mins) = make_qkx2_x8::<32>(x, &w, nmax, &mut l, -0.9, 0.05, 36, false);
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(&scales, 63, &mut ls, &sw);
    let m_block = make_qp_quants(&mins, 63, &mut lm, &sw);
    if clamp63 {
        for j in 0..8 {
            ls[j] = ls[j].min(63);
            lm[j] = lm[j].min(63);
        }
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = fp16(d_block);
    let dmin = fp16(m_block);
    requant_k(x, d, dmin, &packed, nmax, &mut l);
    (d, dmin, packed, l)
}

/// `quantize_row_q6_K_impl` for one super-block: the imatrix row weighs the searches directly.
#[target_feature(enable = "avx2")]
fn q6k_block(x: &[f32], qw: &[f32]) -> [u8; 256] {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    for g in 0..2 {
        let r = 128 * g..128 * g + 128;
        let s = make_qx_w_x8::<16>(&x[r.clone()], 32, &mut l[r.clone()], Some(&qw[r]));
        scales[8 * g..8 * g + 8].copy_from_slice(&s);
    }
    let b: BlockQ6K = finish_q6k(x, &scales, &mut l);
    b.write_vec()
}

/// `quantize_row_q3_K_impl` for one super-block.
#[target_feature(enable = "avx2")]
fn q3k_block(x: &[f32], qw: &[f32]) -> [u8; 256] {
    let sigma2 = sigma2_x2(x);
    let mut w = [0f32; QK_K];
    let mut sw = [0f32; 16];
    for j in 0..16 {
        let mut sumw = 0.0f32;
        for k in 0..16 {
            let v = x[16 * j + k];
            w[16 * j + k] = qw[16 * j + k] * (sigma2 + v * v).sqrt();
        }
        for k in 0..16 {
            sumw += w[16 * j + k];
        }
        sw[j] = sumw;
    }
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    for g in 0..2 {
        let r = 128 * g..128 * g + 128;
        let s = make_qx_w_x8::<16>(&x[r.clone()], 4, &mut l[r.clone()], Some(&w[r]));
        scales[8 * g..8 * g + 8].copy_from_slice(&s);
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
    let b: BlockQ3K = pack_with_scales(x, sc, fp16(d_block), &mut l);
    b.write_vec()
}

/// `quantize_row_q2_K_impl` for one super-block.
#[target_feature(enable = "avx2")]
fn q2k_block(x: &[f32], qw: &[f32]) -> [u8; 256] {
    let mut sumx2 = 0.0f32;
    for &v in &x[..QK_K] {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    let mut w = [0f32; QK_K];
    let mut sw = [0f32; 16];
    for j in 0..16 {
        for k in 0..16 {
            let v = x[16 * j + k];
            w[16 * j + k] = qw[16 * j + k] * (sigma2 + v * v).sqrt();
        }
        for k in 0..16 {
            sw[j] += w[16 * j + k];
        }
    }
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let mut mins = [0f32; 16];
    for g in 0..2 {
        let r = 128 * g..128 * g + 128;
        let (s, m) = make_qkx2_x8::<16>(
            &x[r.clone()],
            &w[r.clone()],
            3,
            &mut l[r],
            -0.9,
            0.05,
            36,
            false,
        );
        scales[8 * g..8 * g + 8].copy_from_slice(&s);
        mins[8 * g..8 * g + 8].copy_from_slice(&m);
    }
    let mut ls = [0u8; 16];
    let mut lm = [0u8; 16];
    let dm = make_qp_quants(&scales, 15, &mut ls, &sw);
    let mm = make_qp_quants(&mins, 15, &mut lm, &sw);
    let d = fp16(dm);
    let dmin = fp16(mm);
    let (dm, mm) = (f16v(d), f16v(dmin));
    let mut sc = [0u8; 16];
    for j in 0..16 {
        sc[j] = ls[j] | (lm[j] << 4);
    }
    for j in 0..16 {
        let dj = dm * f32::from(sc[j] & 0xf);
        if dj == 0.0 {
            continue;
        }
        let mj = mm * f32::from(sc[j] >> 4);
        for ii in 0..16 {
            l[16 * j + ii] = nearest_int((x[16 * j + ii] + mj) / dj).clamp(0, 3) as u8;
        }
    }
    let mut qs = [0u8; 64];
    pack_2bit(&l, &mut qs);
    BlockQ2K {
        scales: sc,
        qs,
        d,
        dmin,
    }
    .write_vec()
}
