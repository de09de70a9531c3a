//! Lane-parallel IQ searches for x86-64 AVX2: eight sub-blocks in the eight SIMD lanes, each
//! lane executing exactly the scalar operation sequence of [`super::iq_search`] and
//! [`super::iq4`] (same roundings, same order). Grid lookups are gathers; the
//! nearest-neighbour searches for off-grid points (most points: the grids cover 4–16 % of the
//! reachable points) run per lane, eight neighbours at a time over [`NeighbourRows`].

#![cfg(target_arch = "x86_64")]
#![allow(unsafe_code)]
// Index loops walk several lane arrays in step, which reads better than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::iq_grid::{Lattice, NeighbourRows};
use super::iq_search::Scan;
use super::lanes::avx2::{
    clamp_i, gt, load, lt, nearest_int, sel, sel_i, store, store_i, transpose,
};

/// The 16 `kvalues_iq4nl` as floats in two vectors.
#[inline]
#[target_feature(enable = "avx2")]
fn iq4_table() -> (__m256, __m256) {
    let v = &super::iq_tables::KVALUES_IQ4NL;
    let lo: [f32; 8] = std::array::from_fn(|i| f32::from(v[i]));
    let hi: [f32; 8] = std::array::from_fn(|i| f32::from(v[i + 8]));
    (load(&lo), load(&hi))
}

/// `table[idx]` for indices 0..16.
#[inline]
#[target_feature(enable = "avx2")]
fn lookup16(t: (__m256, __m256), idx: __m256i) -> __m256 {
    let a = _mm256_permutevar8x32_ps(t.0, idx);
    let b = _mm256_permutevar8x32_ps(t.1, idx);
    let upper = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
    sel(upper, b, a)
}

/// `best_index_int8(16, kvalues_iq4nl, x)` per lane. The binary search's answer is the count
/// of table values `<= x` (the table is strictly increasing), then the nearer neighbour with
/// the reference's strict `<`.
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn best_index_x8(t: (__m256, __m256), x: __m256) -> __m256i {
    let v = &super::iq_tables::KVALUES_IQ4NL;
    let one = _mm256_set1_epi32(1);
    let mut c = _mm256_setzero_si256();
    for &vi in v.iter() {
        let le = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_set1_ps(f32::from(vi)), x);
        c = _mm256_add_epi32(c, _mm256_and_si256(_mm256_castps_si256(le), one));
    }
    let mu = clamp_i(c, 1, 15);
    let mu1 = _mm256_sub_epi32(mu, one);
    let vmu = lookup16(t, mu);
    let vmu1 = lookup16(t, mu1);
    let lower = lt(_mm256_sub_ps(x, vmu1), _mm256_sub_ps(vmu, x));
    let mut r = sel_i(lower, mu1, mu);
    let lo = _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_set1_ps(f32::from(v[0])));
    // `x >= v[15]`, or NaN (every comparison false: the scalar search ends at 15).
    let hi = _mm256_cmp_ps::<_CMP_NLT_UQ>(x, _mm256_set1_ps(f32::from(v[15])));
    r = sel_i(hi, _mm256_set1_epi32(15), r);
    sel_i(lo, _mm256_setzero_si256(), r)
}

/// One pass of the IQ4 search: indices for inverse scale `id`, and `sum w·q·x`, `sum w·q²`.
#[inline]
#[target_feature(enable = "avx2")]
fn iq4_pass(
    t: (__m256, __m256),
    xt: &[__m256; 32],
    wt: &[__m256; 32],
    id: __m256,
) -> (__m256, __m256) {
    let mut sumqx = _mm256_setzero_ps();
    let mut sumq2 = _mm256_setzero_ps();
    for j in 0..32 {
        let q = lookup16(t, best_index_x8(t, _mm256_mul_ps(id, xt[j])));
        let wq = _mm256_mul_ps(wt[j], q);
        sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wq, xt[j]));
        sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(wq, q));
    }
    (sumqx, sumq2)
}

/// The sub-block scale search of `quantize_row_iq4_nl_impl` (ntry = 7) on eight 32-value
/// sub-blocks (`x[32*lane + j]`, weights likewise). All-zero lanes get 0.
#[target_feature(enable = "avx2")]
pub(crate) fn iq4_search_x8(x: &[f32], w: &[f32]) -> [f32; 8] {
    let t = iq4_table();
    let xt = transpose::<32>(x);
    let wt = transpose::<32>(w);
    let zero = _mm256_setzero_ps();
    let mut amax = zero;
    let mut max = zero;
    for j in 0..32 {
        let ax = super::lanes::avx2::abs(xt[j]);
        let m = gt(ax, amax);
        amax = sel(m, ax, amax);
        max = sel(m, xt[j], max);
    }
    let tiny = lt(amax, _mm256_set1_ps(super::k_helpers::GROUP_MAX_EPS));
    let v0 = f32::from(super::iq_tables::KVALUES_IQ4NL[0]);
    let neg_max = _mm256_xor_ps(max, _mm256_set1_ps(-0.0));
    let d0 = _mm256_div_ps(neg_max, _mm256_set1_ps(v0));
    let id = _mm256_div_ps(_mm256_set1_ps(1.0), d0);
    let (sumqx, sumq2) = iq4_pass(t, &xt, &wt, id);
    let mut d = sel(gt(sumq2, zero), _mm256_div_ps(sumqx, sumq2), zero);
    let mut best = _mm256_mul_ps(d, sumqx);
    for itry in -7i32..=7 {
        let num = (itry + i32::from(super::iq_tables::KVALUES_IQ4NL[0])) as f32;
        let id = _mm256_div_ps(_mm256_set1_ps(num), max);
        let (sumqx, sumq2) = iq4_pass(t, &xt, &wt, id);
        let take = _mm256_and_ps(
            gt(sumq2, zero),
            gt(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2)),
        );
        d = sel(take, _mm256_div_ps(sumqx, sumq2), d);
        best = sel(take, _mm256_mul_ps(d, sumqx), best);
    }
    store(sel(tiny, zero, d))
}

/// `best_index_int8(idl · x)` for eight 32-value sub-blocks, one inverse scale per lane;
/// writes `l[32*lane + j]`.
#[target_feature(enable = "avx2")]
pub(crate) fn iq4_indices_x8(x: &[f32], idl: [f32; 8], l: &mut [u8]) {
    let t = iq4_table();
    let xt = transpose::<32>(x);
    let idv = load(&idl);
    for j in 0..32 {
        let v = store_i(best_index_x8(t, _mm256_mul_ps(idv, xt[j])));
        for lane in 0..8 {
            l[32 * lane + j] = v[lane] as u8;
        }
    }
}

/// Levels per lane and element, element-major (`[e][lane]`), so single lanes can be patched.
type LaneLevels<const B: usize> = [[i32; 8]; B];

#[inline]
#[target_feature(enable = "avx2")]
fn load_i(a: &[i32; 8]) -> __m256i {
    // SAFETY: `a` is 32 readable bytes; loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
}

/// [`super::iq_search::find_best_neighbour`] over [`NeighbourRows`]: eight neighbours per
/// step, one per lane, each `d2` with the scalar operation sequence; each lane keeps its first
/// strict minimum and the lanes are merged by (distance, list position), which is the scalar
/// scan's first strict minimum over the whole list (NaN distances never win in either).
/// Returns the winner's position in the list of packed point `u` (0 when nothing beats
/// `f32::MAX`, as the scalar scan keeps its first entry then).
#[inline]
#[target_feature(enable = "avx2")]
pub(crate) fn best_in_rows<const N: usize>(
    rows: &NeighbourRows,
    u: usize,
    xval: &[f32],
    weight: &[f32],
    scale: f32,
) -> usize {
    let [at, n] = rows.at[u];
    let (at, n) = (at as usize, n as i32);
    let sc = _mm256_set1_ps(scale);
    let xs: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(xval[i]));
    let ws: [__m256; N] = std::array::from_fn(|i| _mm256_set1_ps(weight[i]));
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let nv = _mm256_set1_epi32(n);
    let mut best = _mm256_set1_ps(f32::MAX);
    let mut best_pos = _mm256_set1_epi32(i32::MAX);
    let steps = (n as usize).div_ceil(8);
    let block = &rows.coords[at..at + 8 * N * steps];
    for step in 0..steps {
        let c = &block[8 * N * step..8 * N * (step + 1)];
        let mut d2 = _mm256_setzero_ps();
        for i in 0..N {
            // SAFETY: `c[8i..8i + 8]` is 8 readable bytes.
            let b = unsafe { _mm_loadl_epi64(c[8 * i..].as_ptr().cast()) };
            let q = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
            let diff = _mm256_sub_ps(_mm256_mul_ps(sc, q), xs[i]);
            d2 = _mm256_add_ps(d2, _mm256_mul_ps(_mm256_mul_ps(ws[i], diff), diff));
        }
        let pos = _mm256_add_epi32(_mm256_set1_epi32(8 * step as i32), lanes);
        let valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, pos));
        let take = _mm256_and_ps(valid, lt(d2, best));
        best = sel(take, d2, best);
        best_pos = sel_i(take, pos, best_pos);
    }
    // Smallest distance over the lanes (never NaN: only taken distances are kept), then the
    // smallest position holding it.
    let mut m = _mm256_min_ps(best, _mm256_permute2f128_ps::<1>(best, best));
    m = _mm256_min_ps(m, _mm256_permute_ps::<0b01_00_11_10>(m));
    m = _mm256_min_ps(m, _mm256_permute_ps::<0b10_11_00_01>(m));
    let at_min = _mm256_cmp_ps::<_CMP_EQ_OQ>(best, m);
    let mut p = sel_i(at_min, best_pos, _mm256_set1_epi32(i32::MAX));
    p = _mm256_min_epi32(p, _mm256_permute2x128_si256::<1>(p, p));
    p = _mm256_min_epi32(p, _mm256_shuffle_epi32::<0b01_00_11_10>(p));
    p = _mm256_min_epi32(p, _mm256_shuffle_epi32::<0b10_11_00_01>(p));
    let p = _mm256_cvtsi256_si32(p);
    if p == i32::MAX { 0 } else { p as usize }
}

/// Projects group `k` (`N` elements starting at `N*k`) at per-lane inverse scale `id` onto
/// levels and looks the packed points up in the lattice map. For lanes in `mask` the levels are
/// stored into `lv`; off-grid lanes get their nearest neighbour at `scale`.
/// Returns the on-grid mask.
#[inline]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn project_group_x8<const N: usize, const B: usize>(
    lat: &Lattice<N>,
    p: &Scan,
    xt: &[__m256; B],
    xval: &[[f32; B]; 8],
    waux: &[[f32; B]; 8],
    k: usize,
    id: __m256,
    scale: &[f32; 8],
    mask: __m256,
    lv: &mut LaneLevels<B>,
) -> __m256 {
    let half = _mm256_set1_ps(0.5);
    let one = _mm256_set1_ps(1.0);
    let mut u = _mm256_setzero_si256();
    let mut levels = [_mm256_setzero_si256(); N];
    for i in 0..N {
        let e = N * k + i;
        let v = _mm256_mul_ps(half, _mm256_sub_ps(_mm256_mul_ps(id, xt[e]), one));
        let l = clamp_i(nearest_int(v), 0, p.kmax - 1);
        levels[i] = l;
        u = _mm256_or_si256(
            u,
            _mm256_sllv_epi32(l, _mm256_set1_epi32((p.bits as usize * i) as i32)),
        );
    }
    // SAFETY: every packed point of levels below kmax indexes inside the map.
    let m = unsafe { _mm256_i32gather_epi32::<4>(lat.map.as_ptr(), u) };
    let on = _mm256_castsi256_ps(_mm256_cmpgt_epi32(m, _mm256_set1_epi32(-1)));
    let mi = _mm256_castps_si256(mask);
    for i in 0..N {
        let e = N * k + i;
        let old = load_i(&lv[e]);
        let new = _mm256_blendv_epi8(old, levels[i], mi);
        // SAFETY: `lv[e]` is 32 writable bytes.
        unsafe { _mm256_storeu_si256(lv[e].as_mut_ptr().cast(), new) };
    }
    let mut off = _mm256_movemask_ps(_mm256_andnot_ps(on, mask)) as u32;
    if off != 0 {
        let (ms, us) = (store_i(m), store_i(u));
        let rows = lat.rows();
        let r = N * k..N * k + N;
        while off != 0 {
            let lane = off.trailing_zeros() as usize;
            off &= off - 1;
            let (x, w) = (&xval[lane][r.clone()], &waux[lane][r.clone()]);
            let pos = best_in_rows::<N>(rows, us[lane] as usize, x, w, scale[lane]);
            let pg = &lat.grid[usize::from(lat.neighbours_of(ms[lane])[pos])];
            for i in 0..N {
                lv[N * k + i][lane] = i32::from((pg[i] - 1) / 2);
            }
        }
    }
    on
}

/// `sum w·x·q` and `sum w·q²` per lane with `q = 2l + 1`, in element order.
#[inline]
#[target_feature(enable = "avx2")]
fn sums_x8<const B: usize>(
    wt: &[__m256; B],
    wxt: &[__m256; B],
    lv: &LaneLevels<B>,
) -> (__m256, __m256) {
    let mut sumqx = _mm256_setzero_ps();
    let mut sumq2 = _mm256_setzero_ps();
    let one = _mm256_set1_epi32(1);
    for e in 0..B {
        let l = load_i(&lv[e]);
        let q = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_add_epi32(l, l), one));
        sumqx = _mm256_add_ps(sumqx, _mm256_mul_ps(wxt[e], q));
        sumq2 = _mm256_add_ps(sumq2, _mm256_mul_ps(_mm256_mul_ps(wt[e], q), q));
    }
    (sumqx, sumq2)
}

/// How a lane search starts.
pub(crate) enum Start<'a, const B: usize> {
    /// From `denom / (2·kmax − 1)` with all groups flagged by `Scan::on_grid_init`, the
    /// candidates running over `(2·kmax − 1 + is·step) / denom` (IQ2_XS, IQ2_S, IQ3_*).
    Max,
    /// From a given scale and levels, never tracking on-grid groups so the refit always runs
    /// when the scale is positive (IQ2_XXS, whose `denom` is `eff_max`).
    Given(&'a [f32; 8], &'a [[i8; B]; 8]),
}

/// [`super::iq_search::scan_and_refit`] (or IQ2_XXS's variant) on eight sub-blocks of `B`
/// values. `active` lanes are searched; the others are left alone. Returns per-lane scales and
/// levels.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_and_refit_x8<const N: usize, const B: usize>(
    lat: &Lattice<N>,
    p: &Scan,
    xval: &[[f32; B]; 8],
    weight: &[[f32; B]; 8],
    waux: &[[f32; B]; 8],
    denom: [f32; 8],
    active: u8,
    start: Start<'_, B>,
) -> ([f32; 8], [[i8; B]; 8]) {
    let groups = B / N;
    let flat = |a: &[[f32; B]; 8]| -> [__m256; B] {
        let mut t = [_mm256_setzero_ps(); B];
        for e in 0..B {
            let col: [f32; 8] = std::array::from_fn(|lane| a[lane][e]);
            t[e] = load(&col);
        }
        t
    };
    let xt = flat(xval);
    let wt = flat(weight);
    let mut wxt = [_mm256_setzero_ps(); B];
    for e in 0..B {
        wxt[e] = _mm256_mul_ps(wt[e], xt[e]);
    }
    let act_bits: [i32; 8] =
        std::array::from_fn(|lane| if active & (1 << lane) != 0 { -1 } else { 0 });
    let act = _mm256_castsi256_ps(load_i(&act_bits));
    let zero = _mm256_setzero_ps();
    let denv = load(&denom);
    let base = (2 * p.kmax - 1) as f32;
    let track = matches!(start, Start::Max);

    let mut l: LaneLevels<B> = [[0; 8]; B];
    let mut scale = match start {
        Start::Max => _mm256_div_ps(denv, _mm256_set1_ps(base)),
        Start::Given(s, ls) => {
            for e in 0..B {
                for lane in 0..8 {
                    l[e][lane] = i32::from(ls[lane][e]);
                }
            }
            load(s)
        }
    };
    let all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    let init_on = if track && p.on_grid_init { all } else { zero };
    let mut on_grid = [init_on; 8];
    let mut best = zero;
    let mut laux: LaneLevels<B> = [[0; 8]; B];
    for is in -p.range..=p.range {
        let id = _mm256_div_ps(_mm256_set1_ps(base + is as f32 * p.step), denv);
        let this_scale = store(_mm256_div_ps(_mm256_set1_ps(1.0), id));
        let mut on_aux = [zero; 8];
        for k in 0..groups {
            on_aux[k] = project_group_x8::<N, B>(
                lat,
                p,
                &xt,
                xval,
                waux,
                k,
                id,
                &this_scale,
                act,
                &mut laux,
            );
        }
        let (sumqx, sumq2) = sums_x8::<B>(&wt, &wxt, &laux);
        let take = _mm256_and_ps(
            act,
            _mm256_and_ps(
                gt(sumq2, zero),
                gt(_mm256_mul_ps(sumqx, sumqx), _mm256_mul_ps(best, sumq2)),
            ),
        );
        if _mm256_movemask_ps(take) == 0 {
            continue;
        }
        scale = sel(take, _mm256_div_ps(sumqx, sumq2), scale);
        best = sel(take, _mm256_mul_ps(scale, sumqx), best);
        let ti = _mm256_castps_si256(take);
        for e in 0..B {
            let v = _mm256_blendv_epi8(load_i(&l[e]), load_i(&laux[e]), ti);
            // SAFETY: `l[e]` is 32 writable bytes.
            unsafe { _mm256_storeu_si256(l[e].as_mut_ptr().cast(), v) };
        }
        if track {
            for k in 0..groups {
                on_grid[k] = sel(take, on_aux[k], on_grid[k]);
            }
        }
    }
    // Refit lanes with an off-grid group and a positive scale.
    let mut any_off = zero;
    for k in 0..groups {
        any_off = _mm256_or_ps(any_off, _mm256_xor_ps(on_grid[k], all));
    }
    let refit = _mm256_and_ps(act, _mm256_and_ps(any_off, gt(scale, zero)));
    if _mm256_movemask_ps(refit) != 0 {
        let id = _mm256_div_ps(_mm256_set1_ps(1.0), scale);
        let sc = store(scale);
        for k in 0..groups {
            let mask = if p.refit_all || !track {
                refit
            } else {
                _mm256_andnot_ps(on_grid[k], refit)
            };
            if _mm256_movemask_ps(mask) == 0 {
                continue;
            }
            project_group_x8::<N, B>(lat, p, &xt, xval, waux, k, id, &sc, mask, &mut l);
        }
        let (sumqx, sumq2) = sums_x8::<B>(&wt, &wxt, &l);
        scale = sel(
            _mm256_and_ps(refit, gt(sumq2, zero)),
            _mm256_div_ps(sumqx, sumq2),
            scale,
        );
    }
    let mut out = [[0i8; B]; 8];
    for e in 0..B {
        for lane in 0..8 {
            out[lane][e] = l[e][lane] as i8;
        }
    }
    (store(scale), out)
}

#[cfg(test)]
mod tests {
    use super::super::iq_grid::{Lattice, iq1s, iq2s, iq2xs, iq2xxs, iq3s, iq3xxs};
    use super::super::iq_search::find_best_neighbour;
    use super::*;

    /// Inputs for one neighbour search: `xval`, weights and scale. Every fourth case is built
    /// for exact ties (unit weights and scale, values halfway between grid coordinates), some
    /// have zero weights, and a few carry NaN or infinity.
    fn case(rng: &mut fastrand::Rng, n: usize, kmax: i32) -> (Vec<f32>, Vec<f32>, f32) {
        match rng.u32(0..16) {
            0..=3 => {
                let x = (0..n).map(|_| (2 * rng.i32(0..=kmax)) as f32).collect();
                (x, vec![1.0; n], 1.0)
            }
            4 => {
                let x = (0..n).map(|_| (2 * rng.i32(0..=kmax)) as f32).collect();
                let w = (0..n).map(|_| f32::from(rng.u8(0..2))).collect();
                (x, w, 1.0)
            }
            5 => {
                let mut x: Vec<f32> = (0..n).map(|_| rng.f32() * 8.0).collect();
                x[rng.usize(0..n)] = if rng.bool() { f32::NAN } else { f32::INFINITY };
                (x, vec![1.0; n], 0.7)
            }
            _ => {
                let x = (0..n).map(|_| rng.f32() * 2.0 * kmax as f32).collect();
                let w = (0..n)
                    .map(|_| {
                        if rng.u32(0..8) == 0 {
                            0.0
                        } else {
                            rng.f32() * 3.0
                        }
                    })
                    .collect();
                (x, w, 0.5 + rng.f32())
            }
        }
    }

    fn check<const N: usize>(lat: &Lattice<N>, kmax: i32, seed: u64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let rows = lat.rows();
        let mut checked = 0;
        for (u, &m) in lat.map.iter().enumerate() {
            if m >= 0 {
                continue;
            }
            let list = lat.neighbours_of(m);
            for _ in 0..3 {
                let (x, w, scale) = case(&mut rng, N, kmax);
                let mut l = [0i8; N];
                let want = find_best_neighbour(lat, list, &x, &w, scale, &mut l);
                // SAFETY: the test only runs where AVX2 is available.
                let pos = unsafe { best_in_rows::<N>(rows, u, &x, &w, scale) };
                assert_eq!(
                    usize::from(list[pos]),
                    want,
                    "point {u}: x {x:?} w {w:?} scale {scale}"
                );
                checked += 1;
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn row_search_picks_the_scalar_searchs_neighbour_including_ties() {
        if !super::super::lanes::available() {
            return;
        }
        check(iq3s(), 8, 1);
        check(iq3xxs(), 8, 2);
        check(iq2xxs(), 3, 3);
        check(iq2xs(), 3, 4);
        check(iq2s(), 3, 5);
        check(iq1s(), 3, 6);
    }
}
