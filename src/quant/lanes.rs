//! Lane-parallel K-quant helpers for x86-64 AVX2: eight independent sub-blocks run side by side,
//! one per SIMD lane, each lane executing exactly the scalar operation sequence of
//! [`super::k_helpers`] (same roundings, same order; branches become per-lane selects, and a
//! lane that the reference would have stopped early is frozen). No FMA is ever used.
//!
//! Used only when the CPU has AVX2 (checked once at run time); the scalar ports are the
//! fallback and the oracle in tests.

#![allow(unsafe_code)]
// Index loops walk several lane arrays in step, which reads better than zipped iterators.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

/// Whether the lane-parallel kernels can run on this CPU.
pub fn available() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::*;

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// Loads eight floats.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn load(a: &[f32; 8]) -> __m256 {
        // SAFETY: `a` is 8 readable f32; loadu has no alignment requirement.
        unsafe { _mm256_loadu_ps(a.as_ptr()) }
    }

    /// Stores eight floats.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn store(v: __m256) -> [f32; 8] {
        let mut a = [0f32; 8];
        // SAFETY: `a` is 8 writable f32; storeu has no alignment requirement.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        a
    }

    /// Stores eight i32.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn store_i(v: __m256i) -> [i32; 8] {
        let mut a = [0i32; 8];
        // SAFETY: `a` is 32 writable bytes; storeu has no alignment requirement.
        unsafe { _mm256_storeu_si256(a.as_mut_ptr().cast(), v) };
        a
    }

    /// ggml's `nearest_int` per lane (the 1.5·2^23 bit trick).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn nearest_int(v: __m256) -> __m256i {
        let t = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12_582_912.0)));
        _mm256_sub_epi32(
            _mm256_and_si256(t, _mm256_set1_epi32(0x007f_ffff)),
            _mm256_set1_epi32(0x0040_0000),
        )
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn clamp_i(v: __m256i, lo: i32, hi: i32) -> __m256i {
        _mm256_max_epi32(
            _mm256_min_epi32(v, _mm256_set1_epi32(hi)),
            _mm256_set1_epi32(lo),
        )
    }

    /// `mask ? a : b` per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn sel(mask: __m256, a: __m256, b: __m256) -> __m256 {
        _mm256_blendv_ps(b, a, mask)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn sel_i(mask: __m256, a: __m256i, b: __m256i) -> __m256i {
        _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(b),
            _mm256_castsi256_ps(a),
            mask,
        ))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn abs(v: __m256) -> __m256 {
        _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn gt(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_GT_OQ>(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn lt(a: __m256, b: __m256) -> __m256 {
        _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)
    }

    /// Transposes `G` sub-blocks of `N` values (`x[N*lane + i]`) into `N` lane vectors.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn transpose<const N: usize>(x: &[f32]) -> [__m256; N] {
        let mut t = [[0f32; 8]; N];
        for lane in 0..8 {
            let sub = &x[N * lane..N * lane + N];
            for i in 0..N {
                t[i][lane] = sub[i];
            }
        }
        let mut out = [_mm256_setzero_ps(); N];
        for i in 0..N {
            out[i] = load(&t[i]);
        }
        out
    }

    /// Writes lane quants back in element order: `l[N*lane + i]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn untranspose<const N: usize>(q: &[__m256i; N], l: &mut [u8]) {
        for i in 0..N {
            let v = store_i(q[i]);
            for lane in 0..8 {
                l[N * lane + i] = v[lane] as u8;
            }
        }
    }

    /// `make_qkx2_quants` on 8 sub-blocks of `N` values at once (`x[N*lane + i]`).
    ///
    /// Writes the quants to `l[N*lane + i]` and returns per-lane `(scale, the_min)`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(crate) fn make_qkx2_x8<const N: usize>(
        x: &[f32],
        w: &[f32],
        nmax: i32,
        l: &mut [u8],
        rmin: f32,
        rdelta: f32,
        nstep: i32,
        use_mad: bool,
    ) -> ([f32; 8], [f32; 8]) {
        if use_mad {
            qkx2_impl::<N, true>(x, w, nmax, l, rmin, rdelta, nstep)
        } else {
            qkx2_impl::<N, false>(x, w, nmax, l, rmin, rdelta, nstep)
        }
    }

    /// The error of one residual: absolute value (MAD) or square.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn err<const MAD: bool>(d: __m256) -> __m256 {
        if MAD { abs(d) } else { _mm256_mul_ps(d, d) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn qkx2_impl<const N: usize, const MAD: bool>(
        x: &[f32],
        w: &[f32],
        nmax: i32,
        l: &mut [u8],
        rmin: f32,
        rdelta: f32,
        nstep: i32,
    ) -> ([f32; 8], [f32; 8]) {
        let xt = transpose::<N>(x);
        let wt = transpose::<N>(w);
        let zero = _mm256_setzero_ps();

        let mut min = xt[0];
        let mut max = xt[0];
        let mut sum_w = wt[0];
        let mut sum_x = _mm256_mul_ps(sum_w, xt[0]);
        for i in 1..N {
            min = sel(lt(xt[i], min), xt[i], min);
            max = sel(gt(xt[i], max), xt[i], max);
            sum_w = _mm256_add_ps(sum_w, wt[i]);
            sum_x = _mm256_add_ps(sum_x, _mm256_mul_ps(wt[i], xt[i]));
        }
        min = sel(gt(min, zero), zero, min);
        let flat = _mm256_cmp_ps::<_CMP_EQ_OQ>(max, min);
        let flat_min = min;

        let nmaxf = nmax as f32;
        let range = _mm256_sub_ps(max, min);
        let iscale = _mm256_div_ps(_mm256_set1_ps(nmaxf), range);
        let mut scale = _mm256_div_ps(_mm256_set1_ps(1.0), iscale);
        let mut best = zero;
        let mut lq = [_mm256_setzero_si256(); N];
        for i in 0..N {
            let q = clamp_i(
                nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))),
                0,
                nmax,
            );
            lq[i] = q;
            let d = _mm256_sub_ps(
                _mm256_add_ps(_mm256_mul_ps(scale, _mm256_cvtepi32_ps(q)), min),
                xt[i],
            );
            best = _mm256_add_ps(best, _mm256_mul_ps(wt[i], err::<MAD>(d)));
        }
        if nstep >= 1 {
            let mut laux = [_mm256_setzero_si256(); N];
            for is in 0..=nstep {
                // The numerator is the same scalar expression for every lane.
                let num = rmin + rdelta * is as f32 + nmaxf;
                let iscale = _mm256_div_ps(_mm256_set1_ps(num), _mm256_sub_ps(max, min));
                let (mut sum_l, mut sum_l2, mut sum_xl) = (zero, zero, zero);
                for i in 0..N {
                    let q = clamp_i(
                        nearest_int(_mm256_mul_ps(iscale, _mm256_sub_ps(xt[i], min))),
                        0,
                        nmax,
                    );
                    laux[i] = q;
                    let wl = _mm256_mul_ps(wt[i], _mm256_cvtepi32_ps(q));
                    sum_l = _mm256_add_ps(sum_l, wl);
                    sum_l2 = _mm256_add_ps(sum_l2, _mm256_mul_ps(wl, _mm256_cvtepi32_ps(q)));
                    sum_xl = _mm256_add_ps(sum_xl, _mm256_mul_ps(wl, xt[i]));
                }
                let d = _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_l2), _mm256_mul_ps(sum_l, sum_l));
                let d_pos = gt(d, zero);
                if _mm256_movemask_ps(d_pos) == 0 {
                    continue;
                }
                let mut this_scale = _mm256_div_ps(
                    _mm256_sub_ps(_mm256_mul_ps(sum_w, sum_xl), _mm256_mul_ps(sum_x, sum_l)),
                    d,
                );
                let mut this_min = _mm256_div_ps(
                    _mm256_sub_ps(_mm256_mul_ps(sum_l2, sum_x), _mm256_mul_ps(sum_l, sum_xl)),
                    d,
                );
                let min_pos = gt(this_min, zero);
                this_scale = sel(min_pos, _mm256_div_ps(sum_xl, sum_l2), this_scale);
                this_min = sel(min_pos, zero, this_min);
                let mut cur = zero;
                for i in 0..N {
                    let dd = _mm256_sub_ps(
                        _mm256_add_ps(
                            _mm256_mul_ps(this_scale, _mm256_cvtepi32_ps(laux[i])),
                            this_min,
                        ),
                        xt[i],
                    );
                    cur = _mm256_add_ps(cur, _mm256_mul_ps(wt[i], err::<MAD>(dd)));
                }
                let better = _mm256_and_ps(d_pos, lt(cur, best));
                if _mm256_movemask_ps(better) == 0 {
                    continue;
                }
                for i in 0..N {
                    lq[i] = sel_i(better, laux[i], lq[i]);
                }
                best = sel(better, cur, best);
                scale = sel(better, this_scale, scale);
                min = sel(better, this_min, min);
            }
        }
        // Lanes with max == min returned early in the reference: zeros, scale 0, min as found.
        for q in lq.iter_mut() {
            *q = sel_i(flat, _mm256_setzero_si256(), *q);
        }
        scale = sel(flat, zero, scale);
        min = sel(flat, flat_min, min);
        untranspose::<N>(&lq, l);
        // `-min` flips the sign bit (0 - min would turn -0.0 into +0.0).
        let neg_min = _mm256_xor_ps(min, _mm256_set1_ps(-0.0));
        (store(scale), store(neg_min))
    }

    /// The signed value of largest magnitude per lane (first on ties) and its magnitude.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn signed_absmax<const N: usize>(xt: &[__m256; N]) -> (__m256, __m256) {
        let mut amax = _mm256_setzero_ps();
        let mut max = _mm256_setzero_ps();
        for x in xt {
            let ax = abs(*x);
            let m = gt(ax, amax);
            amax = sel(m, ax, amax);
            max = sel(m, *x, max);
        }
        (amax, max)
    }

    /// `make_qx_quants(16, nmax, x, L, rmse_type = 1, NULL)` on 8 sub-blocks of 16 at once.
    ///
    /// Writes quants (already offset by `nmax`) to `l[16*lane + i]`, returns per-lane scales.
    #[target_feature(enable = "avx2")]
    pub(crate) fn make_qx_x8(x: &[f32], nmax: i32, l: &mut [i8]) -> [f32; 8] {
        make_qx_w_x8::<16>(x, nmax, l, None)
    }

    /// `make_qx_quants(N, nmax, x, L, rmse_type = 1, qw)` on 8 sub-blocks of `N` at once, with
    /// importance weights `qw[N*lane + i]` (or `x²` without).
    #[target_feature(enable = "avx2")]
    pub(crate) fn make_qx_w_x8<const N: usize>(
        x: &[f32],
        nmax: i32,
        l: &mut [i8],
        qw: Option<&[f32]>,
    ) -> [f32; 8] {
        let xt = transpose::<N>(x);
        let zero = _mm256_setzero_ps();
        let (amax, max) = signed_absmax::<N>(&xt);
        let tiny = lt(amax, _mm256_set1_ps(super::super::k_helpers::GROUP_MAX_EPS));
        let nmaxf = nmax as f32;
        let (w, wx) = match qw {
            Some(qw) => {
                let w = transpose::<N>(qw);
                let mut wx = [zero; N];
                for i in 0..N {
                    wx[i] = _mm256_mul_ps(w[i], xt[i]);
                }
                (w, wx)
            }
            None => weights::<N>(&xt),
        };
        let mut lq = [_mm256_setzero_si256(); N];
        let iscale = _mm256_div_ps(_mm256_set1_ps(-nmaxf), max);
        let (sumlx, suml2) = qx_pass::<N>(&xt, &w, &wx, nmax, iscale, &mut lq);
        let nz = _mm256_cmp_ps::<_CMP_NEQ_UQ>(suml2, zero);
        let mut scale = sel(nz, _mm256_div_ps(sumlx, suml2), zero);
        let mut best = _mm256_mul_ps(scale, sumlx);
        let mut laux = [_mm256_setzero_si256(); N];
        for is in -9i32..=9 {
            if is == 0 {
                continue;
            }
            let num = -(nmaxf + 0.1 * is as f32);
            let iscale = _mm256_div_ps(_mm256_set1_ps(num), max);
            let (sumlx, suml2) = qx_pass::<N>(&xt, &w, &wx, nmax, iscale, &mut laux);
            let take = _mm256_and_ps(
                gt(suml2, zero),
                gt(_mm256_mul_ps(sumlx, sumlx), _mm256_mul_ps(best, suml2)),
            );
            if _mm256_movemask_ps(take) == 0 {
                continue;
            }
            for i in 0..N {
                lq[i] = sel_i(take, laux[i], lq[i]);
            }
            scale = sel(take, _mm256_div_ps(sumlx, suml2), scale);
            best = sel(take, _mm256_mul_ps(scale, sumlx), best);
        }
        finish_signed::<N>(&lq, nmax, tiny, scale, l)
    }

    /// The weights `x²` and `x³` of `make_qx_quants` / `make_q3_quants` (ggml's `w = x*x`,
    /// `w*x`), per element vector.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn weights<const N: usize>(xt: &[__m256; N]) -> ([__m256; N], [__m256; N]) {
        let mut w = [_mm256_setzero_ps(); N];
        let mut wx = [_mm256_setzero_ps(); N];
        for i in 0..N {
            w[i] = _mm256_mul_ps(xt[i], xt[i]);
            wx[i] = _mm256_mul_ps(w[i], xt[i]);
        }
        (w, wx)
    }

    /// The common ending of the symmetric searches: quants offset by `nmax` into `l`, except
    /// that all-zero (`tiny`) lanes get L = 0 and scale 0, as the reference's early return.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finish_signed<const N: usize>(
        lq: &[__m256i; N],
        nmax: i32,
        tiny: __m256,
        scale: __m256,
        l: &mut [i8],
    ) -> [f32; 8] {
        let off = _mm256_set1_epi32(nmax);
        let mut out = [_mm256_setzero_si256(); N];
        for i in 0..N {
            out[i] = sel_i(tiny, _mm256_setzero_si256(), _mm256_add_epi32(lq[i], off));
        }
        for i in 0..N {
            let v = store_i(out[i]);
            for lane in 0..8 {
                l[N * lane + i] = v[lane] as i8;
            }
        }
        store(sel(tiny, _mm256_setzero_ps(), scale))
    }

    /// One quantization pass of `make_qx_quants` / `make_q3_quants`: quants for `iscale` and
    /// the two weighted sums.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn qx_pass<const N: usize>(
        xt: &[__m256; N],
        w: &[__m256; N],
        wx: &[__m256; N],
        nmax: i32,
        iscale: __m256,
        q: &mut [__m256i; N],
    ) -> (__m256, __m256) {
        let zero = _mm256_setzero_ps();
        let (mut sumlx, mut suml2) = (zero, zero);
        for i in 0..N {
            let li = clamp_i(nearest_int(_mm256_mul_ps(iscale, xt[i])), -nmax, nmax - 1);
            q[i] = li;
            let lf = _mm256_cvtepi32_ps(li);
            sumlx = _mm256_add_ps(sumlx, _mm256_mul_ps(wx[i], lf));
            suml2 = _mm256_add_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], lf), lf));
        }
        (sumlx, suml2)
    }

    /// `make_q3_quants(16, nmax, x, L, do_rmse = true)` on 8 sub-blocks of 16 at once.
    #[target_feature(enable = "avx2")]
    pub(crate) fn make_q3_x8(x: &[f32], nmax: i32, l: &mut [i8]) -> [f32; 8] {
        const N: usize = 16;
        let xt = transpose::<N>(x);
        let zero = _mm256_setzero_ps();
        let (amax, max) = signed_absmax::<N>(&xt);
        let tiny = lt(amax, _mm256_set1_ps(super::super::k_helpers::GROUP_MAX_EPS));
        let iscale = _mm256_div_ps(_mm256_set1_ps(-(nmax as f32)), max);
        let (w, wx) = weights::<N>(&xt);
        let mut lq = [_mm256_setzero_si256(); N];
        let (mut sumlx, mut suml2) = qx_pass::<N>(&xt, &w, &wx, nmax, iscale, &mut lq);
        // Lanes still iterating; a lane stops after a round without changes, as in the
        // reference's `break`.
        let mut active = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for _ in 0..5 {
            let mut changed = _mm256_setzero_ps();
            for i in 0..N {
                let lf = _mm256_cvtepi32_ps(lq[i]);
                let slx = _mm256_sub_ps(sumlx, _mm256_mul_ps(wx[i], lf));
                let slx_pos = _mm256_and_ps(active, gt(slx, zero));
                if _mm256_movemask_ps(slx_pos) == 0 {
                    continue;
                }
                let sl2 = _mm256_sub_ps(suml2, _mm256_mul_ps(_mm256_mul_ps(w[i], lf), lf));
                let new_l = clamp_i(
                    nearest_int(_mm256_div_ps(_mm256_mul_ps(xt[i], sl2), slx)),
                    -nmax,
                    nmax - 1,
                );
                let differs = _mm256_xor_ps(
                    _mm256_castsi256_ps(_mm256_cmpeq_epi32(new_l, lq[i])),
                    _mm256_castsi256_ps(_mm256_set1_epi32(-1)),
                );
                let nf = _mm256_cvtepi32_ps(new_l);
                let slx2 = _mm256_add_ps(slx, _mm256_mul_ps(wx[i], nf));
                let sl2b = _mm256_add_ps(sl2, _mm256_mul_ps(_mm256_mul_ps(w[i], nf), nf));
                let better = gt(
                    _mm256_mul_ps(_mm256_mul_ps(slx2, slx2), suml2),
                    _mm256_mul_ps(_mm256_mul_ps(sumlx, sumlx), sl2b),
                );
                let take = _mm256_and_ps(
                    _mm256_and_ps(slx_pos, differs),
                    _mm256_and_ps(gt(sl2b, zero), better),
                );
                lq[i] = sel_i(take, new_l, lq[i]);
                sumlx = sel(take, slx2, sumlx);
                suml2 = sel(take, sl2b, suml2);
                changed = _mm256_or_ps(changed, take);
            }
            active = _mm256_and_ps(active, changed);
            if _mm256_movemask_ps(active) == 0 {
                break;
            }
        }
        let scale = sel(gt(suml2, zero), _mm256_div_ps(sumlx, suml2), zero);
        finish_signed::<N>(&lq, nmax, tiny, scale, l)
    }
}
