//! The lattice search shared by IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S (and the pieces IQ2_XXS
//! reuses): sign folding, the scan over candidate inverse scales with nearest-neighbour
//! projection onto the grid, and the final refit. Every loop keeps the reference's operation
//! order (`quantize_row_iq{2,3}_*_impl` in ggml-quants.c).
// Index loops mirror the reference line for line, which keeps the port checkable.
#![allow(clippy::needless_range_loop)]

use super::float::nearest_int;
use super::iq_grid::Lattice;

/// Index of a packed point `l` (`bits` bits per coordinate) into the lattice map.
#[inline(always)]
pub(crate) fn pack_point<const N: usize>(l: &[i8], bits: u32) -> usize {
    let mut u = 0usize;
    for (i, &v) in l[..N].iter().enumerate() {
        u |= (v as usize) << (bits as usize * i);
    }
    u
}

/// `iq{2,3}_find_best_neighbour`: the neighbour minimising `sum w·(scale·q − x)²` (first on
/// ties); writes its levels to `l` and returns its grid index.
#[inline(always)]
pub(crate) fn find_best_neighbour<const N: usize>(
    lat: &Lattice<N>,
    neighbours: &[u16],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    l: &mut [i8],
) -> usize {
    let mut best_d2 = f32::MAX;
    let mut grid_index = usize::from(neighbours[0]);
    for &nb in neighbours {
        let pg = &lat.grid[usize::from(nb)];
        let mut d2 = 0.0f32;
        for i in 0..N {
            let q = f32::from(pg[i]);
            let diff = scale * q - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            grid_index = usize::from(nb);
        }
    }
    let pg = &lat.grid[grid_index];
    for i in 0..N {
        l[i] = (pg[i] - 1) / 2;
    }
    grid_index
}

/// Projects `xval` (one group of `N`) at inverse scale `id` onto levels `0..kmax`, then onto
/// the grid (through the nearest neighbour at `scale` when off-grid). Returns whether the
/// rounded point was on the grid.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn project_group<const N: usize>(
    lat: &Lattice<N>,
    bits: u32,
    kmax: i32,
    xval: &[f32],
    waux: &[f32],
    id: f32,
    scale: f32,
    l: &mut [i8],
) -> bool {
    for i in 0..N {
        let li = nearest_int(0.5 * (id * xval[i] - 1.0));
        l[i] = li.clamp(0, kmax - 1) as i8;
    }
    let u = pack_point::<N>(l, bits);
    let m = lat.map[u];
    if m >= 0 {
        return true;
    }
    find_best_neighbour(lat, lat.neighbours_of(m), xval, waux, scale, l);
    false
}

/// `sum w·x·q` and `sum w·q²` with `q = 2l + 1`.
#[inline(always)]
pub(crate) fn sums_q(weight: &[f32], xval: &[f32], l: &[i8]) -> (f32, f32) {
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for i in 0..l.len() {
        let w = weight[i];
        let q = (2 * i32::from(l[i]) + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// Folds signs out of groups of 8: `xval = |x|`, bit i of the returned byte set where `x` was
/// negative. With `even_parity` (IQ2_XXS, IQ2_XS, IQ3_XXS) an odd number of flips is made even
/// by un-flipping the element with the smallest `w·x²`, and the byte keeps 7 bits.
#[inline(always)]
pub(crate) fn fold_signs(xb: &[f32], weight: &[f32], even_parity: bool, xval: &mut [f32]) -> u8 {
    let mut nflip = 0;
    let mut s = 0u8;
    for i in 0..8 {
        if xb[i] >= 0.0 {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            nflip += 1;
            s |= 1 << i;
        }
    }
    if !even_parity {
        return s;
    }
    if nflip % 2 == 1 {
        let mut imin = 0;
        let mut min = weight[0] * xb[0] * xb[0];
        for i in 1..8 {
            let ax = weight[i] * xb[i] * xb[i];
            if ax < min {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= 1 << imin;
    }
    s & 127
}

/// `MAX(max, v)` over `x`, starting from `x[0]`.
#[inline(always)]
pub(crate) fn max_of(x: &[f32]) -> f32 {
    let mut max = x[0];
    for &v in &x[1..] {
        max = if max > v { max } else { v };
    }
    max
}

/// Parameters of the candidate-scale scan.
pub(crate) struct Scan {
    /// Levels per coordinate (`kMaxQ`).
    pub kmax: i32,
    /// Bits per coordinate in the packed point.
    pub bits: u32,
    /// Candidates `is` run over `-range..=range`.
    pub range: i32,
    /// Inverse scale step per candidate.
    pub step: f32,
    /// Initial on-grid flags (IQ3_S starts "off grid", forcing the refit).
    pub on_grid_init: bool,
    /// Refit every group, not only off-grid ones (IQ3_S).
    pub refit_all: bool,
}

/// The candidate scan and refit of IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S for one sub-block of
/// `xval.len()` values (`max > 0`). Fills `l` with levels and returns the scale (may be
/// negative in theory; callers flip signs then).
pub(crate) fn scan_and_refit<const N: usize>(
    lat: &Lattice<N>,
    p: &Scan,
    xval: &[f32],
    weight: &[f32],
    waux: &[f32],
    max: f32,
    l: &mut [i8],
) -> f32 {
    let n = xval.len();
    let groups = n / N;
    let mut laux = [0i8; 32];
    let mut on_grid = [p.on_grid_init; 8];
    let mut on_grid_aux = [true; 8];
    let mut best = 0.0f32;
    let mut scale = max / (2 * p.kmax - 1) as f32;
    let base = (2 * p.kmax - 1) as f32;
    for is in -p.range..=p.range {
        let id = (base + is as f32 * p.step) / max;
        let this_scale = 1.0 / id;
        for k in 0..groups {
            let r = N * k..N * k + N;
            on_grid_aux[k] = project_group::<N>(
                lat,
                p.bits,
                p.kmax,
                &xval[r.clone()],
                &waux[r.clone()],
                id,
                this_scale,
                &mut laux[r],
            );
        }
        let (sumqx, sumq2) = sums_q(weight, xval, &laux[..n]);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l[..n].copy_from_slice(&laux[..n]);
            on_grid[..groups].copy_from_slice(&on_grid_aux[..groups]);
        }
    }
    let n_not_on_grid = on_grid[..groups].iter().filter(|&&g| !g).count();
    if n_not_on_grid > 0 && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..groups {
            if on_grid[k] && !p.refit_all {
                continue;
            }
            let r = N * k..N * k + N;
            project_group::<N>(
                lat,
                p.bits,
                p.kmax,
                &xval[r.clone()],
                &waux[r.clone()],
                id,
                scale,
                &mut l[r],
            );
        }
        let (sumqx, sumq2) = sums_q(weight, xval, &l[..n]);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    scale
}

/// The grid index of levels `l` (a group of `N`). The reference aborts when the point is off
/// the grid, which its search never produces; index 0 stands in for that case.
#[inline(always)]
pub(crate) fn grid_index_of<const N: usize>(lat: &Lattice<N>, bits: u32, l: &[i8]) -> usize {
    let m = lat.map[pack_point::<N>(l, bits)];
    if m >= 0 { m as usize } else { 0 }
}

/// The 4-bit sub-block scale code `clamp(nearest_int((id·s − 1)/2), 0, 15)` (3 bits for IQ1).
#[inline(always)]
pub(crate) fn scale_code(id: f32, s: f32, max: i32) -> i32 {
    nearest_int(0.5 * (id * s - 1.0)).clamp(0, max)
}

/// A super-block's sub-blocks of `B` values (`S` of them) prepared for a lattice search: sign
/// folded values, weights, their square roots, sign bytes and maxima.
pub(crate) struct Prepared<const B: usize, const S: usize> {
    /// `|x|`, with one element re-negated for even-parity formats.
    pub xval: [[f32; B]; S],
    /// Weights.
    pub w: [[f32; B]; S],
    /// Square roots of the weights (the neighbour search's weights).
    pub waux: [[f32; B]; S],
    /// Sign bytes, one per 8 values.
    pub signs: [[u8; 4]; S],
    /// `MAX` over `xval`.
    pub max: [f32; S],
}

impl<const B: usize, const S: usize> Prepared<B, S> {
    /// Folds signs and takes maxima once the weights are set.
    pub(crate) fn new(x: &[f32], w: [[f32; B]; S], even_parity: bool) -> Self {
        let mut p = Prepared {
            xval: [[0.0; B]; S],
            waux: [[0.0; B]; S],
            w,
            signs: [[0; 4]; S],
            max: [0.0; S],
        };
        for s in 0..S {
            for i in 0..B {
                p.waux[s][i] = p.w[s][i].sqrt();
            }
            let xb = &x[B * s..B * s + B];
            for k in 0..B / 8 {
                let r = 8 * k..8 * k + 8;
                p.signs[s][k] = fold_signs(
                    &xb[r.clone()],
                    &p.w[s][r.clone()],
                    even_parity,
                    &mut p.xval[s][r],
                );
            }
            p.max[s] = max_of(&p.xval[s]);
        }
        p
    }
}

/// [`scan_and_refit`] on every sub-block where `active[s]`, eight at a time in SIMD lanes when
/// `fast` and the CPU allows. Returns scales and levels (zero for inactive sub-blocks).
pub(crate) fn search_all<const N: usize, const B: usize, const S: usize>(
    lat: &Lattice<N>,
    p: &Scan,
    prep: &Prepared<B, S>,
    active: &[bool; S],
    fast: bool,
) -> ([f32; S], [[i8; B]; S]) {
    let mut scales = [0f32; S];
    let mut l = [[0i8; B]; S];
    #[cfg(target_arch = "x86_64")]
    if fast && super::lanes::available() && S.is_multiple_of(8) {
        for g in (0..S).step_by(8) {
            let pick = |a: &[[f32; B]; S]| -> [[f32; B]; 8] { std::array::from_fn(|i| a[g + i]) };
            let mut bits = 0u8;
            for i in 0..8 {
                bits |= u8::from(active[g + i]) << i;
            }
            if bits == 0 {
                continue;
            }
            let den: [f32; 8] = std::array::from_fn(|i| prep.max[g + i]);
            // SAFETY: AVX2 support was checked at run time.
            let (s, ls) = unsafe {
                super::lanes_iq::scan_and_refit_x8::<N, B>(
                    lat,
                    p,
                    &pick(&prep.xval),
                    &pick(&prep.w),
                    &pick(&prep.waux),
                    den,
                    bits,
                    super::lanes_iq::Start::Max,
                )
            };
            for i in 0..8 {
                if active[g + i] {
                    scales[g + i] = s[i];
                    l[g + i] = ls[i];
                }
            }
        }
        return (scales, l);
    }
    let _ = fast;
    for s in 0..S {
        if active[s] {
            scales[s] = scan_and_refit(
                lat,
                p,
                &prep.xval[s],
                &prep.w[s],
                &prep.waux[s],
                prep.max[s],
                &mut l[s],
            );
        }
    }
    (scales, l)
}
