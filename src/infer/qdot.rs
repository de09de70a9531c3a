//! Integer dot products of quantized weights with activations quantized to Q8 blocks, the way
//! ggml's CPU backend multiplies them (`ggml_vec_dot_<type>_q8_0` / `_q8_K`, llamafile's
//! tinyBLAS): the activations of a matmul are quantized once (Q8_0 for the 32-element types,
//! Q8_K for the K-quants), a tile of weight rows is unpacked once into bytes, and every output
//! is a sum of exact integer products scaled per block.
//!
//! Exactness and order: integer sums are exact and kept in 8 lanes of 32 bits (the lane layout
//! of `maddubs`+`madd` and of VNNI `dpbusd`: lane `l` of a 32-byte vector sums bytes `4l..4l+4`).
//! K-quants: lane `l` of a 256-value block sums its bytes `32s + 4l..+4` over the 8 steps `s`,
//! and accumulates `lane · d·dx` (and the mins term) with fused multiply-adds, block by block.
//! 32-value types: both operands are stored with their blocks interleaved in groups of 8 (then
//! 4, 2, 1 at the end of a row) so that each lane belongs to one block: a group of 8 blocks is 8
//! vectors whose lane `l` holds block `l`, so one float multiply-add per lane finishes 8 blocks
//! (instead of 8 per block). Every lane accumulates in group order and the 8 lanes are summed
//! with a fixed tree at the end. The scalar fallback performs the same
//! operations on the same lanes, so AVX2, AVX-512 VNNI and scalar results are bit-identical,
//! whatever the tiling or thread count.

use crate::formats::gguf::GgmlType;
use crate::quant::Block;
use crate::quant::float::{f16v, nearest_int};
use crate::quant::k_helpers::get_scale_min_k4;
use crate::quant::q4::BlockQ4_0;
use crate::quant::q4k::BlockQ4K;
use crate::quant::q5::BlockQ5_0;
use crate::quant::q5k::BlockQ5K;
use crate::quant::q6k::BlockQ6K;
use crate::quant::q8::BlockQ8_0;
use rayon::prelude::*;

/// The block format activations are quantized to for a weight type (ggml's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActFormat {
    /// 32 values: an f16-rounded scale and 32 signed bytes.
    Q8_0,
    /// 256 values: an f32 scale, 256 signed bytes and 16 sums of 16.
    Q8K,
}

impl ActFormat {
    /// Values per block.
    pub const fn block(self) -> usize {
        match self {
            ActFormat::Q8_0 => 32,
            ActFormat::Q8K => 256,
        }
    }

    /// The format `ty`'s integer dot product takes, for the types implemented here.
    pub fn for_weight(ty: GgmlType) -> Option<ActFormat> {
        use GgmlType::*;
        match ty {
            Q4_0 | Q5_0 | Q8_0 => Some(ActFormat::Q8_0),
            Q4K | Q5K | Q6K => Some(ActFormat::Q8K),
            _ => None,
        }
    }
}

/// The offset a 32-value type's unsigned quants carry (`value = d · (u - offset)`).
fn legacy_offset(ty: GgmlType) -> i32 {
    match ty {
        GgmlType::Q4_0 => 8,
        GgmlType::Q5_0 => 16,
        _ => 128,
    }
}

/// The groups of 32-value blocks of a row of `nb` blocks: `(first block, blocks)`, 8 blocks
/// each, then 4, 2 and 1 for the rest.
fn groups(nb: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = nb / 8;
    let rest = nb % 8;
    (0..full)
        .map(|g| (8 * g, 8))
        .chain(
            [4, 2, 1]
                .into_iter()
                .filter(move |p| rest & p != 0)
                .scan(8 * full, |b0, p| {
                    let g = (*b0, p);
                    *b0 += p;
                    Some(g)
                }),
        )
}

/// Where quad `q` (bytes `4q..4q+4`) of block `p` of a group of `np` blocks starting at block
/// `b0` is stored: vector `q / (8/np)`, lane `p·(8/np) + q % (8/np)` of the group.
fn slot(b0: usize, np: usize, p: usize, q: usize) -> usize {
    let per = 8 / np;
    32 * b0 + 32 * (q / per) + 4 * (p * per + q % per)
}

/// Rows of activations quantized to Q8 blocks.
pub struct QActs {
    fmt: ActFormat,
    k: usize,
    rows: usize,
    /// Q8_K: row-major; Q8_0: blocks interleaved per group (see [`slot`]).
    q: Vec<i8>,
    /// Q8_K: one scale per block; Q8_0: per group, the scale of each lane's block.
    d: Vec<f32>,
    /// Sums of each 16 consecutive values (Q8_K only).
    bsums: Vec<i16>,
    /// Q8_0: per group and lane, `-offset · Σ` of the lane's values (the weights are stored
    /// unsigned, `u = q + offset`).
    corr: Vec<i32>,
}

impl QActs {
    /// Quantizes `x` (rows of `k` values; `k` a multiple of the block) like ggml's
    /// `quantize_row_q8_0` / `quantize_row_q8_K` for multiplying weights of type `ty`, one row
    /// per task. Panics for a type without [`ActFormat::for_weight`].
    pub fn quantize(ty: GgmlType, x: &[f32], k: usize) -> QActs {
        let fmt = ActFormat::for_weight(ty).expect("QActs: type without an integer dot product");
        let bl = fmt.block();
        assert!(
            k > 0 && k.is_multiple_of(bl) && x.len().is_multiple_of(k),
            "QActs: {} values are not rows of {k} (a multiple of {bl})",
            x.len()
        );
        let rows = x.len() / k;
        let nb = k / bl;
        let mut q = vec![0i8; rows * k];
        let mut d = vec![0f32; rows * nb];
        let mut bsums = Vec::new();
        let mut corr = Vec::new();
        match fmt {
            ActFormat::Q8_0 => {
                let ng = groups(nb).count();
                d = vec![0f32; rows * ng * 8];
                corr = vec![0i32; rows * ng * 8];
                let off = legacy_offset(ty);
                q.par_chunks_mut(k)
                    .zip(d.par_chunks_mut(ng * 8))
                    .zip(corr.par_chunks_mut(ng * 8))
                    .zip(x.par_chunks(k))
                    .for_each(|(((q, d), c), x)| quantize_q8_0_row(x, off, q, d, c));
            }
            ActFormat::Q8K => {
                bsums = vec![0i16; rows * k / 16];
                q.par_chunks_mut(k)
                    .zip(d.par_chunks_mut(nb))
                    .zip(bsums.par_chunks_mut(k / 16))
                    .zip(x.par_chunks(k))
                    .for_each(|(((q, d), s), x)| quantize_q8k_row(x, q, d, s));
            }
        }
        QActs {
            fmt,
            k,
            rows,
            q,
            d,
            bsums,
            corr,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The values the integers stand for (`d · q`), row after row, in their natural order.
    pub fn dequantize(&self) -> Vec<f32> {
        let k = self.k;
        let mut out = vec![0f32; self.rows * k];
        match self.fmt {
            ActFormat::Q8K => {
                for ((o, q), &d) in out
                    .chunks_exact_mut(256)
                    .zip(self.q.chunks_exact(256))
                    .zip(&self.d)
                {
                    for (o, &v) in o.iter_mut().zip(q) {
                        *o = d * f32::from(v);
                    }
                }
            }
            ActFormat::Q8_0 => {
                let nb = k / 32;
                let ng = groups(nb).count();
                for r in 0..self.rows {
                    let (o, q) = (&mut out[r * k..(r + 1) * k], &self.q[r * k..(r + 1) * k]);
                    for (g, (b0, np)) in groups(nb).enumerate() {
                        for p in 0..np {
                            let d = self.d[(r * ng + g) * 8 + p * (8 / np)];
                            for qd in 0..8 {
                                let src = slot(b0, np, p, qd);
                                for t in 0..4 {
                                    o[32 * (b0 + p) + 4 * qd + t] = d * f32::from(q[src + t]);
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// ggml's reference Q8_0 quantizer (through tinylm's byte-exact one), stored interleaved with
/// per-lane scales and offset corrections.
fn quantize_q8_0_row(x: &[f32], off: i32, q: &mut [i8], dl: &mut [f32], corr: &mut [i32]) {
    let mut buf = vec![0u8; x.len() / 32 * 34];
    let ok = crate::quant::quantize_row(GgmlType::Q8_0, x, &mut buf);
    debug_assert!(ok);
    let blocks: Vec<BlockQ8_0> = buf.chunks_exact(34).map(BlockQ8_0::read).collect();
    for (g, (b0, np)) in groups(blocks.len()).enumerate() {
        let per = 8 / np;
        for p in 0..np {
            let blk = &blocks[b0 + p];
            let d = f16v(blk.d);
            for qd in 0..8 {
                let dst = slot(b0, np, p, qd);
                q[dst..dst + 4].copy_from_slice(&blk.qs[4 * qd..4 * qd + 4]);
                let lane = p * per + qd % per;
                let sum: i32 = blk.qs[4 * qd..4 * qd + 4]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum();
                corr[8 * g + lane] -= off * sum;
            }
            dl[8 * g + p * per..8 * g + (p + 1) * per].fill(d);
        }
    }
}

/// `quantize_row_q8K_ref`: the value of largest magnitude maps to -127.
fn quantize_q8k_row(x: &[f32], q: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (((xb, qb), db), bs) in x
        .chunks_exact(256)
        .zip(q.chunks_exact_mut(256))
        .zip(d.iter_mut())
        .zip(bsums.chunks_exact_mut(16))
    {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *db = 0.0;
            qb.fill(0);
            bs.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (o, &v) in qb.iter_mut().zip(xb) {
            *o = nearest_int(iscale * v).clamp(-128, 127) as i8;
        }
        *db = 1.0 / iscale;
        for (s, c) in bs.iter_mut().zip(qb.chunks_exact(16)) {
            *s = c.iter().map(|&v| i16::from(v)).sum();
        }
    }
}

/// A tile of weight rows unpacked for the kernels.
///
/// 32-element types: unsigned values (`q + offset`, so `value = d·(u - offset)`) interleaved
/// like the activations (see [`slot`]) and per group the scale of each lane. K-quants: unsigned
/// values (0..64), per 32 values a vector of 16 `i16` sub-block scales (entries `2l`, `2l+1`
/// belong to the 4-byte lane `l`), 16 `i16` "mins" per block that multiply the activations'
/// 16-value sums, and the block's `d` and `dmin` (`value = d·sc·q - dmin·mn`).
#[derive(Default)]
pub struct QTile {
    k: usize,
    nr: usize,
    kquant: bool,
    /// 32-value types: the quants' offset (128 for Q8_0: stored as `q + 128`).
    off: i32,
    vals: Vec<i8>,
    scales: Vec<i16>,
    mins: Vec<i16>,
    d: Vec<f32>,
    dmin: Vec<f32>,
}

impl QTile {
    /// Unpacks `nr` rows of `k` values of type `ty` from their bytes `src`. Panics for a type
    /// without [`ActFormat::for_weight`].
    pub fn decode(&mut self, ty: GgmlType, src: &[u8], nr: usize, k: usize) {
        let fmt = ActFormat::for_weight(ty).expect("QTile: type without an integer dot product");
        let bl = fmt.block();
        assert!(k.is_multiple_of(bl), "QTile: row length");
        let nb = nr * k / bl;
        self.k = k;
        self.nr = nr;
        self.kquant = fmt == ActFormat::Q8K;
        self.vals.resize(nr * k, 0);
        let bytes = ty.type_size() as usize;
        assert_eq!(src.len(), nb * bytes, "QTile: byte size");
        if !self.kquant {
            self.decode_legacy(ty, src, nr, k);
            return;
        }
        self.d.resize(nb, 0.0);
        self.scales.resize(nr * k / 2, 0);
        self.mins.resize(nr * k / 16, 0);
        self.dmin.resize(nb, 0.0);
        for (b, raw) in src.chunks_exact(bytes).enumerate() {
            let v = &mut self.vals[b * bl..(b + 1) * bl];
            match ty {
                GgmlType::Q4K | GgmlType::Q5K => {
                    let (d, dmin, scales, qs, qh) = if ty == GgmlType::Q4K {
                        let blk = BlockQ4K::read(raw);
                        (blk.d, blk.dmin, blk.scales, blk.qs, [0u8; 32])
                    } else {
                        let blk = BlockQ5K::read(raw);
                        (blk.d, blk.dmin, blk.scales, blk.qs, blk.qh)
                    };
                    self.d[b] = f16v(d);
                    self.dmin[b] = f16v(dmin);
                    for c in 0..4 {
                        for l in 0..32 {
                            let q = qs[32 * c + l];
                            let h = qh[l];
                            v[64 * c + l] = ((q & 15) | (((h >> (2 * c)) & 1) << 4)) as i8;
                            v[64 * c + 32 + l] = ((q >> 4) | (((h >> (2 * c + 1)) & 1) << 4)) as i8;
                        }
                    }
                    let sc = &mut self.scales[b * 128..(b + 1) * 128];
                    let mn = &mut self.mins[b * 16..(b + 1) * 16];
                    for s in 0..8 {
                        let (ls, lm) = get_scale_min_k4(s, &scales);
                        sc[16 * s..16 * s + 16].fill(i16::from(ls));
                        mn[2 * s..2 * s + 2].fill(i16::from(lm));
                    }
                }
                GgmlType::Q6K => {
                    let blk = BlockQ6K::read(raw);
                    self.d[b] = f16v(blk.d);
                    self.dmin[b] = self.d[b];
                    for n in 0..2 {
                        for l in 0..32 {
                            let (ql0, ql1) = (blk.ql[64 * n + l], blk.ql[64 * n + l + 32]);
                            let h = blk.qh[32 * n + l];
                            let e = 128 * n + l;
                            v[e] = ((ql0 & 15) | ((h & 3) << 4)) as i8;
                            v[e + 32] = ((ql1 & 15) | (((h >> 2) & 3) << 4)) as i8;
                            v[e + 64] = ((ql0 >> 4) | (((h >> 4) & 3) << 4)) as i8;
                            v[e + 96] = ((ql1 >> 4) | (((h >> 6) & 3) << 4)) as i8;
                        }
                    }
                    // value = d·sc·(q - 32): the offset goes through the 16-value sums.
                    let sc = &mut self.scales[b * 128..(b + 1) * 128];
                    let mn = &mut self.mins[b * 16..(b + 1) * 16];
                    for g in 0..16 {
                        let s = i16::from(blk.scales[g]);
                        sc[8 * g..8 * g + 8].fill(s);
                        mn[g] = 32 * s;
                    }
                }
                _ => unreachable!("checked by ActFormat::for_weight"),
            }
        }
    }

    /// [`QTile::decode`] for the 32-value types.
    fn decode_legacy(&mut self, ty: GgmlType, src: &[u8], nr: usize, k: usize) {
        let nb = k / 32;
        let ng = groups(nb).count();
        let bytes = ty.type_size() as usize;
        self.off = legacy_offset(ty);
        self.d.resize(nr * ng * 8, 0.0);
        for r in 0..nr {
            let row = &src[r * nb * bytes..(r + 1) * nb * bytes];
            let vals = &mut self.vals[r * k..(r + 1) * k];
            let dl = &mut self.d[r * ng * 8..(r + 1) * ng * 8];
            for (g, (b0, np)) in groups(nb).enumerate() {
                let per = 8 / np;
                for p in 0..np {
                    let raw = &row[(b0 + p) * bytes..(b0 + p + 1) * bytes];
                    let mut u = [0u8; 32];
                    let d = match ty {
                        GgmlType::Q4_0 => {
                            let blk = BlockQ4_0::read(raw);
                            for (j, &q) in blk.qs.iter().enumerate() {
                                u[j] = q & 15;
                                u[j + 16] = q >> 4;
                            }
                            blk.d
                        }
                        GgmlType::Q5_0 => {
                            let blk = BlockQ5_0::read(raw);
                            for (j, &q) in blk.qs.iter().enumerate() {
                                let h0 = ((blk.qh >> j) & 1) as u8;
                                let h1 = ((blk.qh >> (j + 16)) & 1) as u8;
                                u[j] = (q & 15) | (h0 << 4);
                                u[j + 16] = (q >> 4) | (h1 << 4);
                            }
                            blk.d
                        }
                        _ => {
                            let blk = BlockQ8_0::read(raw);
                            for (o, &q) in u.iter_mut().zip(&blk.qs) {
                                *o = (q as u8) ^ 0x80;
                            }
                            blk.d
                        }
                    };
                    for qd in 0..8 {
                        let dst = slot(b0, np, p, qd);
                        for t in 0..4 {
                            vals[dst + t] = u[4 * qd + t] as i8;
                        }
                    }
                    dl[8 * g + p * per..8 * g + (p + 1) * per].fill(f16v(d));
                }
            }
        }
    }
}

/// Which kernel runs on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA (`maddubs`/`madd`).
    Avx2,
    /// AVX-512 VNNI on 256-bit vectors (`dpbusd`/`dpwssd`).
    Vnni,
}

/// The best kernel the CPU supports (detected once).
pub fn best_isa() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if avx2
                && std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                Isa::Vnni
            } else if avx2 {
                Isa::Avx2
            } else {
                Isa::Scalar
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Isa::Scalar
    }
}

/// `out[i·ldo + j] = Σ_l x[i][l] · w[j][l]` for every activation row `i` and tile row `j`,
/// with the best kernel for this CPU.
///
/// # Safety
/// `out` must be valid for writes at every `i·ldo + j` above, and no other thread may access
/// those elements during the call.
pub unsafe fn tile_dot(acts: &QActs, tile: &QTile, out: *mut f32, ldo: usize) {
    // SAFETY: forwarded.
    unsafe { tile_dot_with(best_isa(), acts, tile, out, ldo) }
}

/// [`tile_dot`] with a chosen kernel; panics if the CPU lacks it.
///
/// # Safety
/// As [`tile_dot`].
pub unsafe fn tile_dot_with(isa: Isa, acts: &QActs, tile: &QTile, out: *mut f32, ldo: usize) {
    assert_eq!(acts.k, tile.k, "tile_dot: row lengths differ");
    assert_eq!(
        acts.fmt == ActFormat::Q8K,
        tile.kquant,
        "tile_dot: activation format"
    );
    assert!(
        isa == Isa::Scalar || best_isa() == Isa::Vnni || best_isa() == isa,
        "tile_dot: {isa:?} is not available"
    );
    match isa {
        Isa::Scalar => {
            for i in 0..acts.rows {
                for j in 0..tile.nr {
                    // SAFETY: the caller's contract.
                    unsafe { *out.add(i * ldo + j) = scalar_pair(acts, i, tile, j) };
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU features were checked; bounds follow from the asserted shapes.
        Isa::Avx2 => unsafe { x86::run_avx2(acts, tile, out, ldo) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Vnni => unsafe { x86::run_vnni(acts, tile, out, ldo) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("only the scalar kernel exists here"),
    }
}

/// The 8-lane sum in the order of the SIMD reduction: halves, then pairs, then the last two.
fn hsum8(f: [f32; 8]) -> f32 {
    let a = [f[0] + f[4], f[1] + f[5], f[2] + f[6], f[3] + f[7]];
    let b = [a[0] + a[2], a[1] + a[3]];
    b[0] + b[1]
}

/// One output with the portable kernel: the SIMD kernels' operations lane by lane.
fn scalar_pair(a: &QActs, i: usize, t: &QTile, j: usize) -> f32 {
    let k = a.k;
    let bl = a.fmt.block();
    let nb = k / bl;
    let x = &a.q[i * k..(i + 1) * k];
    let w = &t.vals[j * k..(j + 1) * k];
    let dot4 = |e: usize| -> i32 { (e..e + 4).map(|e| i32::from(w[e]) * i32::from(x[e])).sum() };
    let mut f = [0f32; 8];
    if !t.kquant {
        // Unsigned weights: Σ u·x per lane, then the activations' `-offset·Σx`.
        let udot4 = |e: usize| -> i32 {
            (e..e + 4)
                .map(|e| i32::from(w[e] as u8) * i32::from(x[e]))
                .sum()
        };
        let ng = groups(nb).count();
        for (g, (b0, np)) in groups(nb).enumerate() {
            let (dx, dw) = (&a.d[(i * ng + g) * 8..], &t.d[(j * ng + g) * 8..]);
            let c = &a.corr[(i * ng + g) * 8..];
            for (l, fl) in f.iter_mut().enumerate() {
                let mut acc = c[l];
                for v in 0..np {
                    acc += udot4(32 * (b0 + v) + 4 * l);
                }
                *fl = (acc as f32).mul_add(dx[l] * dw[l], *fl);
            }
        }
        return hsum8(f);
    }
    for b in 0..nb {
        let dx = a.d[i * nb + b];
        let dw = t.d[j * nb + b];
        {
            let da = dx * dw;
            let dm = -(dx * t.dmin[j * nb + b]);
            let sc = &t.scales[(j * k + 256 * b) / 2..];
            let mn = &t.mins[(j * k + 256 * b) / 16..];
            let bs = &a.bsums[(i * k + 256 * b) / 16..];
            for (l, fl) in f.iter_mut().enumerate() {
                let mut acc = 0i32;
                for s in 0..8 {
                    acc += i32::from(sc[16 * s + 2 * l]) * dot4(256 * b + 32 * s + 4 * l);
                }
                let m = i32::from(mn[2 * l]) * i32::from(bs[2 * l])
                    + i32::from(mn[2 * l + 1]) * i32::from(bs[2 * l + 1]);
                *fl = (acc as f32).mul_add(da, *fl);
                *fl = (m as f32).mul_add(dm, *fl);
            }
        }
    }
    hsum8(f)
}

#[cfg(target_arch = "x86_64")]
// Register blocks index several parallel arrays by weight row; index loops say that best.
#[allow(clippy::needless_range_loop)]
mod x86 {
    use super::{QActs, QTile};
    // The 8-lane sum in [`super::hsum8`]'s order.
    use crate::infer::kernel::hsum;
    use std::arch::x86_64::*;

    /// The integer multiply-accumulate steps, per instruction set.
    trait Ops {
        /// `acc + Σ` of 4 consecutive `u8 · i8` products per 32-bit lane.
        unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;
        /// `acc + Σ` of 2 consecutive `i16 · i16` products per 32-bit lane.
        unsafe fn dot_i16(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
    }

    struct Avx2;
    impl Ops for Avx2 {
        #[inline(always)]
        unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
            // |u| ≤ 128 and |s| ≤ 127 here, so the pairwise i16 sums cannot saturate.
            unsafe {
                let p = _mm256_maddubs_epi16(u, s);
                _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
            }
        }
        #[inline(always)]
        unsafe fn dot_i16(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)) }
        }
    }

    struct Vnni;
    impl Ops for Vnni {
        #[inline(always)]
        unsafe fn dot_u8i8(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
            unsafe { _mm256_dpbusd_epi32(acc, u, s) }
        }
        #[inline(always)]
        unsafe fn dot_i16(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            unsafe { _mm256_dpwssd_epi32(acc, a, b) }
        }
    }

    /// Raw views of both operands.
    #[derive(Clone, Copy)]
    struct View {
        k: usize,
        nb: usize,
        /// Groups per row (32-value types).
        ng: usize,
        xc: *const i32,
        xq: *const i8,
        xd: *const f32,
        xs: *const i16,
        wq: *const i8,
        wd: *const f32,
        wdm: *const f32,
        wsc: *const i16,
        wmn: *const i16,
        out: *mut f32,
        ldo: usize,
    }

    /// `RM` activation rows from `i` × `RN` weight rows from `j` of a 32-element type; with
    /// `SIGNED` (AVX2 and Q8_0 weights, whose `u = q + 128` would saturate `maddubs`) the
    /// products are formed as `|q|·(x·sign q)` instead of `u·x - 128·x`.
    #[inline(always)]
    unsafe fn block_q8_0<O: Ops, const RM: usize, const RN: usize, const SIGNED: bool>(
        v: View,
        i: usize,
        j: usize,
    ) {
        unsafe {
            let mut f = [[_mm256_setzero_ps(); RN]; RM];
            for (g, (b0, np)) in super::groups(v.nb).enumerate() {
                let mut acc = [[_mm256_setzero_si256(); RN]; RM];
                if !SIGNED {
                    for (r, ar) in acc.iter_mut().enumerate() {
                        let c = _mm256_loadu_si256(v.xc.add(((i + r) * v.ng + g) * 8).cast());
                        *ar = [c; RN];
                    }
                }
                for vi in 0..np {
                    let off = 32 * (b0 + vi);
                    let mut wv = [_mm256_setzero_si256(); RN];
                    for c in 0..RN {
                        wv[c] = _mm256_loadu_si256(v.wq.add((j + c) * v.k + off).cast());
                        if SIGNED {
                            wv[c] = _mm256_xor_si256(wv[c], _mm256_set1_epi8(-128));
                        }
                    }
                    for (r, ar) in acc.iter_mut().enumerate() {
                        let xv = _mm256_loadu_si256(v.xq.add((i + r) * v.k + off).cast());
                        for c in 0..RN {
                            ar[c] = if SIGNED {
                                let s = _mm256_sign_epi8(xv, wv[c]);
                                O::dot_u8i8(ar[c], _mm256_abs_epi8(wv[c]), s)
                            } else {
                                O::dot_u8i8(ar[c], wv[c], xv)
                            };
                        }
                    }
                }
                let mut dw = [_mm256_setzero_ps(); RN];
                for c in 0..RN {
                    dw[c] = _mm256_loadu_ps(v.wd.add(((j + c) * v.ng + g) * 8));
                }
                for (r, (fr, ar)) in f.iter_mut().zip(&acc).enumerate() {
                    let dx = _mm256_loadu_ps(v.xd.add(((i + r) * v.ng + g) * 8));
                    for c in 0..RN {
                        let d = _mm256_mul_ps(dx, dw[c]);
                        fr[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ar[c]), d, fr[c]);
                    }
                }
            }
            for (r, fr) in f.iter().enumerate() {
                for (c, fc) in fr.iter().enumerate() {
                    *v.out.add((i + r) * v.ldo + j + c) = hsum(*fc);
                }
            }
        }
    }

    /// `RM` activation rows from `i` × `RN` weight rows from `j` of a K-quant.
    #[inline(always)]
    unsafe fn block_q8k<O: Ops, const RM: usize, const RN: usize>(v: View, i: usize, j: usize) {
        unsafe {
            let mut f = [[_mm256_setzero_ps(); RN]; RM];
            for b in 0..v.nb {
                let mut acc = [[_mm256_setzero_si256(); RN]; RM];
                for s in 0..8 {
                    let off = 256 * b + 32 * s;
                    let mut wv = [_mm256_setzero_si256(); RN];
                    let mut sc = [_mm256_setzero_si256(); RN];
                    for c in 0..RN {
                        wv[c] = _mm256_loadu_si256(v.wq.add((j + c) * v.k + off).cast());
                        sc[c] = _mm256_loadu_si256(v.wsc.add(((j + c) * v.k + off) / 2).cast());
                    }
                    for (r, ar) in acc.iter_mut().enumerate() {
                        let xv = _mm256_loadu_si256(v.xq.add((i + r) * v.k + off).cast());
                        for c in 0..RN {
                            // Weights are 0..64: pairwise sums stay below 2·63·128.
                            let p = _mm256_maddubs_epi16(wv[c], xv);
                            ar[c] = O::dot_i16(ar[c], p, sc[c]);
                        }
                    }
                }
                let mut mn = [_mm256_setzero_si256(); RN];
                let mut dw = [0f32; RN];
                let mut dm = [0f32; RN];
                for c in 0..RN {
                    mn[c] = _mm256_loadu_si256(v.wmn.add(((j + c) * v.k + 256 * b) / 16).cast());
                    dw[c] = *v.wd.add((j + c) * v.nb + b);
                    dm[c] = *v.wdm.add((j + c) * v.nb + b);
                }
                for (r, (fr, ar)) in f.iter_mut().zip(&acc).enumerate() {
                    let bs = _mm256_loadu_si256(v.xs.add(((i + r) * v.k + 256 * b) / 16).cast());
                    let dx = *v.xd.add((i + r) * v.nb + b);
                    for c in 0..RN {
                        let m = _mm256_madd_epi16(mn[c], bs);
                        let da = _mm256_set1_ps(dx * dw[c]);
                        let dmin = _mm256_set1_ps(-(dx * dm[c]));
                        fr[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ar[c]), da, fr[c]);
                        fr[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dmin, fr[c]);
                    }
                }
            }
            for (r, fr) in f.iter().enumerate() {
                for (c, fc) in fr.iter().enumerate() {
                    *v.out.add((i + r) * v.ldo + j + c) = hsum(*fc);
                }
            }
        }
    }

    /// Activation rows per cache block: their bytes stay in L1/L2 while the tile passes.
    const XBLOCK: usize = 64;

    /// Every block of the tile: `RM × RN` register blocks, narrower ones at the edges.
    #[inline(always)]
    unsafe fn run<O: Ops, const RM: usize, const RN: usize, const KQ: bool, const SIGNED: bool>(
        a: &QActs,
        t: &QTile,
        out: *mut f32,
        ldo: usize,
    ) {
        let nb = a.k / a.fmt.block();
        let v = View {
            k: a.k,
            nb,
            ng: super::groups(nb).count(),
            xc: a.corr.as_ptr(),
            xq: a.q.as_ptr(),
            xd: a.d.as_ptr(),
            xs: a.bsums.as_ptr(),
            wq: t.vals.as_ptr(),
            wd: t.d.as_ptr(),
            wdm: t.dmin.as_ptr(),
            wsc: t.scales.as_ptr(),
            wmn: t.mins.as_ptr(),
            out,
            ldo,
        };
        macro_rules! blk {
            ($rm:tt, $rn:tt, $i:expr, $j:expr) => {
                if KQ {
                    block_q8k::<O, $rm, $rn>(v, $i, $j)
                } else if SIGNED {
                    block_q8_0::<O, $rm, $rn, true>(v, $i, $j)
                } else {
                    block_q8_0::<O, $rm, $rn, false>(v, $i, $j)
                }
            };
        }
        let (m, nr) = (a.rows, t.nr);
        // SAFETY (whole body): blocks read rows < m of the activations and < nr of the tile,
        // and write out[i·ldo + j] inside the caller's range.
        unsafe {
            let mut i0 = 0;
            while i0 < m {
                let mb = XBLOCK.min(m - i0);
                let mut j = 0;
                while j < nr {
                    let nbw = RN.min(nr - j);
                    let mut i = i0;
                    while i + RM <= i0 + mb {
                        if nbw == RN {
                            blk!(RM, RN, i, j);
                        } else {
                            for c in 0..nbw {
                                blk!(RM, 1, i, j + c);
                            }
                        }
                        i += RM;
                    }
                    while i < i0 + mb {
                        for c in 0..nbw {
                            blk!(1, 1, i, j + c);
                        }
                        i += 1;
                    }
                    j += nbw;
                }
                i0 += mb;
            }
        }
    }

    /// AVX2 kernels (16 vector registers: small register blocks).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2(a: &QActs, t: &QTile, out: *mut f32, ldo: usize) {
        unsafe {
            if t.kquant {
                run::<Avx2, 2, 2, true, false>(a, t, out, ldo)
            } else if t.off > 16 {
                run::<Avx2, 2, 2, false, true>(a, t, out, ldo)
            } else {
                run::<Avx2, 2, 2, false, false>(a, t, out, ldo)
            }
        }
    }

    /// AVX-512 VNNI kernels on 256-bit vectors (32 vector registers: larger blocks).
    #[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512vnni")]
    pub(super) unsafe fn run_vnni(a: &QActs, t: &QTile, out: *mut f32, ldo: usize) {
        unsafe {
            if t.kquant {
                run::<Vnni, 4, 2, true, false>(a, t, out, ldo)
            } else {
                run::<Vnni, 4, 3, false, false>(a, t, out, ldo)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-1, 1) with a few large outliers.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|i| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((s >> 40) as f32) / (1u64 << 24) as f32 * 2.0 - 1.0;
                if i % 97 == 5 { u * 8.0 } else { u }
            })
            .collect()
    }

    const TYPES: [GgmlType; 6] = [
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];

    /// A row length with every group size of the 32-value layout (23 = 16 + 4 + 2 + 1 blocks;
    /// three rows of it: 69 = 64 + 4 + 1), or two K-quant blocks.
    fn row_len(ty: GgmlType) -> usize {
        if ActFormat::for_weight(ty) == Some(ActFormat::Q8_0) {
            23 * 32
        } else {
            512
        }
    }

    #[test]
    fn groups_cover_every_block_once() {
        for nb in 0..40 {
            let mut seen = vec![0; 32 * nb];
            for (b0, np) in groups(nb) {
                assert!([1, 2, 4, 8].contains(&np));
                for p in 0..np {
                    for q in 0..8 {
                        let s = slot(b0, np, p, q);
                        assert!(s >= 32 * b0 && s + 4 <= 32 * (b0 + np), "{nb}: {s}");
                        seen[s..s + 4].iter_mut().for_each(|v| *v += 1);
                    }
                }
            }
            assert!(seen.iter().all(|&v| v == 1), "{nb}");
        }
    }

    fn quantized(ty: GgmlType, w: &[f32]) -> Vec<u8> {
        let mut q = vec![0u8; ty.bytes_for(w.len() as u64).unwrap() as usize];
        assert!(crate::quant::quantize_row(ty, w, &mut q));
        q
    }

    fn run(isa: Isa, a: &QActs, t: &QTile) -> Vec<f32> {
        let mut out = vec![f32::NAN; a.rows() * t.nr];
        // SAFETY: out holds rows × nr values.
        unsafe { tile_dot_with(isa, a, t, out.as_mut_ptr(), t.nr) };
        out
    }

    #[test]
    fn integer_dot_products_match_the_dequantized_f32_products() {
        let (m, n) = (5, 7);
        for ty in TYPES {
            let k = row_len(ty);
            let x = values(m * k, 1);
            let w = values(n * k, 2);
            let q = quantized(ty, &w);
            let mut wd = vec![0f32; n * k];
            assert!(crate::quant::dequantize_row(ty, &q, &mut wd));
            let acts = QActs::quantize(ty, &x, k);
            let xd = acts.dequantize();
            let mut tile = QTile::default();
            tile.decode(ty, &q, n, k);
            let got = run(Isa::Scalar, &acts, &tile);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|l| f64::from(xd[i * k + l]) * f64::from(wd[j * k + l]))
                        .sum();
                    let g = f64::from(got[i * n + j]);
                    let scale: f64 = (0..k)
                        .map(|l| f64::from((xd[i * k + l] * wd[j * k + l]).abs()))
                        .sum();
                    assert!(
                        (g - want).abs() <= 1e-5 * scale + 1e-6,
                        "{ty:?} [{i},{j}]: {g} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn q8_activations_equal_the_ggml_roundtrip() {
        for ty in [GgmlType::Q8_0, GgmlType::Q6K] {
            let k = row_len(ty);
            let x = values(3 * k, 3);
            let acts = QActs::quantize(ty, &x, k);
            let mut want = x.clone();
            for r in want.chunks_exact_mut(k) {
                super::super::weights::ggml_activation_roundtrip(ty, r);
            }
            let got = acts.dequantize();
            let (g, w): (Vec<u32>, Vec<u32>) = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a.to_bits(), b.to_bits()))
                .unzip();
            assert_eq!(g, w, "{ty:?}");
        }
    }

    #[test]
    fn simd_kernels_give_the_scalar_bits() {
        // Odd shapes exercise the edge blocks; zero rows the all-zero scale.
        let (m, n) = (11, 13);
        let mut isas = vec![];
        if best_isa() != Isa::Scalar {
            isas.push(Isa::Avx2);
        }
        if best_isa() == Isa::Vnni {
            isas.push(Isa::Vnni);
        }
        for ty in TYPES {
            let k = 3 * row_len(ty);
            let mut x = values(m * k, 4);
            x[3 * k..4 * k].fill(0.0);
            let w = values(n * k, 5);
            let acts = QActs::quantize(ty, &x, k);
            let mut tile = QTile::default();
            tile.decode(ty, &quantized(ty, &w), n, k);
            let want: Vec<u32> = run(Isa::Scalar, &acts, &tile)
                .iter()
                .map(|v| v.to_bits())
                .collect();
            for &isa in &isas {
                let got: Vec<u32> = run(isa, &acts, &tile).iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{ty:?} {isa:?}");
            }
        }
    }
}
