//! Dot-product matmul kernels: `out[i][j] = Σ_l x[i][l] · w[j][l]` with both operands read
//! along their contiguous rows, like llamafile's tinyBLAS in llama.cpp. F16 and BF16 weights
//! are widened in registers (F16C / a shift), so they are never decoded to f32 in memory.
//!
//! Every output is one dot product summed in a fixed order (8 lanes along `l`, a fixed
//! reduction tree, then the scalar tail), so the result does not depend on how rows are split
//! into tiles or threads. x86-64 with AVX2+FMA+F16C only (checked at run time); elsewhere
//! [`available`] is false and callers use the portable GEMM path.

/// A block of weight rows, each `k` values, in the storage the kernel can read directly.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// IEEE half bits.
    F16(&'a [u16]),
    /// bfloat16 bits.
    BF16(&'a [u16]),
}

impl Rows<'_> {
    fn len(&self) -> usize {
        match self {
            Rows::F32(s) => s.len(),
            Rows::F16(s) | Rows::BF16(s) => s.len(),
        }
    }
}

/// Whether the SIMD kernel runs on this machine (AVX2, FMA and F16C, detected once).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[i * ldo + j] = Σ_l x[i * k + l] · w[j * k + l]` for `i < m`, `j < nr` (`w` holds `nr`
/// rows). Panics unless [`available`] and the inputs are large enough.
///
/// # Safety
/// `out` must be valid for writes at every `i * ldo + j` above, and no other thread may
/// access those elements during the call.
pub unsafe fn dot_tile(
    x: &[f32],
    m: usize,
    k: usize,
    w: Rows<'_>,
    nr: usize,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: forwarded.
    unsafe { dot_tile_strided(x, k, m, k, w, k, nr, out, ldo) }
}

/// [`dot_tile`] with row strides: x row `i` starts at `x[i * ldx]`, w row `j` at `w[j * ldw]`
/// (per-head views of q/k/v).
///
/// # Safety
/// As [`dot_tile`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_tile_strided(
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    w: Rows<'_>,
    ldw: usize,
    nr: usize,
    out: *mut f32,
    ldo: usize,
) {
    assert!(available(), "dot_tile needs AVX2/FMA/F16C");
    if m == 0 || nr == 0 {
        return;
    }
    assert!(
        ldx >= k && ldw >= k && x.len() >= (m - 1) * ldx + k && w.len() >= (nr - 1) * ldw + k,
        "dot_tile: inputs too short"
    );
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU features were checked and the input bounds asserted above; the output
    // is the caller's contract.
    unsafe {
        match w {
            Rows::F32(s) => avx2::tile::<f32>(x.as_ptr(), ldx, m, k, s.as_ptr(), ldw, nr, out, ldo),
            Rows::F16(s) => {
                avx2::tile::<avx2::F16>(x.as_ptr(), ldx, m, k, s.as_ptr().cast(), ldw, nr, out, ldo)
            }
            Rows::BF16(s) => avx2::tile::<avx2::BF16>(
                x.as_ptr(),
                ldx,
                m,
                k,
                s.as_ptr().cast(),
                ldw,
                nr,
                out,
                ldo,
            ),
        }
    }
}

/// Rounds every value to the nearest f16 (ties to even) and back, like storing it in an f16
/// tensor: F16C eight at a time where available, the same results otherwise.
pub fn round_to_f16(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: F16C was detected.
        unsafe { avx2::round_to_f16(x) };
        return;
    }
    for v in x.iter_mut() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// A weight element type the kernel widens to f32 eight at a time.
    pub trait Elem: Copy {
        /// Eight values from `p` as f32.
        ///
        /// # Safety
        /// `p` must point to 8 readable elements; AVX2/F16C must be available.
        unsafe fn load8(p: *const Self) -> __m256;
        /// One value as f32.
        ///
        /// # Safety
        /// `p` must point to a readable element.
        unsafe fn load1(p: *const Self) -> f32;
    }

    impl Elem for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn load1(p: *const f32) -> f32 {
            unsafe { *p }
        }
    }

    /// IEEE half bits.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct F16(#[allow(dead_code)] u16);

    impl Elem for F16 {
        #[inline(always)]
        unsafe fn load8(p: *const F16) -> __m256 {
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
        #[inline(always)]
        unsafe fn load1(p: *const F16) -> f32 {
            unsafe { half::f16::from_bits(p.cast::<u16>().read_unaligned()).to_f32() }
        }
    }

    /// bfloat16 bits.
    #[derive(Clone, Copy)]
    #[repr(transparent)]
    pub struct BF16(#[allow(dead_code)] u16);

    impl Elem for BF16 {
        #[inline(always)]
        unsafe fn load8(p: *const BF16) -> __m256 {
            unsafe {
                let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.cast()));
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h))
            }
        }
        #[inline(always)]
        unsafe fn load1(p: *const BF16) -> f32 {
            unsafe { f32::from_bits(u32::from(p.cast::<u16>().read_unaligned()) << 16) }
        }
    }

    /// See [`super::round_to_f16`].
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_to_f16(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c holds 8 values; F16C is enabled. Rounding mode 0: nearest even.
            unsafe {
                let v = _mm256_loadu_ps(c.as_ptr());
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        for v in chunks.into_remainder() {
            *v = half::f16::from_f32(*v).to_f32();
        }
    }

    /// Sum of the 8 lanes in a fixed order.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }
    }

    /// Operand layout of one call: row strides and the dot-product length.
    #[derive(Clone, Copy)]
    struct Shape {
        ldx: usize,
        ldw: usize,
        k: usize,
        ldo: usize,
    }

    /// One `RM × RN` block of dot products: x rows `x0 + i·ldx`, w rows `w0 + j·ldw`. With
    /// `PF`, the `RN` contiguous weight rows that follow are prefetched as these are read
    /// (matrix-vector products stream the weights once; their rows are short streams the
    /// hardware prefetcher barely ramps up on).
    #[inline(always)]
    unsafe fn block<E: Elem, const RM: usize, const RN: usize, const PF: bool>(
        x0: *const f32,
        w0: *const E,
        sh: Shape,
        out: *mut f32,
    ) {
        let Shape { ldx, ldw, k, ldo } = sh;
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); RN]; RM];
            let k8 = k / 8 * 8;
            let mut l = 0;
            // Bytes of the next rows to prefetch per step of 8 columns.
            let step = RN * 8 * std::mem::size_of::<E>();
            let next = w0.wrapping_add(RN * ldw).cast::<i8>();
            while l < k8 {
                if PF {
                    let p = next.wrapping_add(l / 8 * step);
                    let mut off = 0;
                    while off < step {
                        // Prefetches never fault, whatever the address.
                        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
                        off += 64;
                    }
                }
                let mut wv = [_mm256_setzero_ps(); RN];
                for (j, v) in wv.iter_mut().enumerate() {
                    *v = E::load8(w0.add(j * ldw + l));
                }
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(x0.add(i * ldx + l));
                    for (aj, wj) in a.iter_mut().zip(&wv) {
                        *aj = _mm256_fmadd_ps(xv, *wj, *aj);
                    }
                }
                l += 8;
            }
            for (i, a) in acc.iter().enumerate() {
                for (j, aj) in a.iter().enumerate() {
                    let mut s = hsum(*aj);
                    for ll in k8..k {
                        s += *x0.add(i * ldx + ll) * E::load1(w0.add(j * ldw + ll));
                    }
                    *out.add(i * ldo + j) = s;
                }
            }
        }
    }

    /// Rows of x per cache block: 128 rows of up to ~2k floats stay in L2 while every weight
    /// row of the tile passes over them.
    const XBLOCK: usize = 128;

    /// The whole `m × nr` tile, 4×3 blocks (12 accumulators + 3 weight vectors + 1 input
    /// vector fill the 16 registers) and smaller ones at the edges.
    ///
    /// # Safety
    /// AVX2/FMA/F16C available; `m` x rows and `nr` w rows of `k` values at their strides are
    /// readable, `out[i·ldo + j]` writable.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile<E: Elem>(
        xp: *const f32,
        ldx: usize,
        m: usize,
        k: usize,
        w: *const E,
        ldw: usize,
        nr: usize,
        op: *mut f32,
        ldo: usize,
    ) {
        let sh = Shape { ldx, ldw, k, ldo };
        // SAFETY (whole body): every block reads rows inside x[..m] / w[..nr] and writes
        // out[i·ldo + j] for i < m, j < nr, as the caller guarantees.
        unsafe {
            if m == 1 {
                // Matrix-vector: more weight rows per pass keep several FMA chains in flight.
                let mut j = 0;
                while j + 8 <= nr {
                    if ldw == k {
                        block::<E, 1, 8, true>(xp, w.add(j * ldw), sh, op.add(j));
                    } else {
                        block::<E, 1, 8, false>(xp, w.add(j * ldw), sh, op.add(j));
                    }
                    j += 8;
                }
                while j < nr {
                    block::<E, 1, 1, false>(xp, w.add(j * ldw), sh, op.add(j));
                    j += 1;
                }
                return;
            }
            let mut i0 = 0;
            while i0 < m {
                let mb = XBLOCK.min(m - i0);
                let mut j = 0;
                while j < nr {
                    let nb = 3.min(nr - j);
                    let wj = w.add(j * ldw);
                    let mut i = i0;
                    while i + 4 <= i0 + mb {
                        let (x0, o) = (xp.add(i * ldx), op.add(i * ldo + j));
                        match nb {
                            3 => block::<E, 4, 3, false>(x0, wj, sh, o),
                            2 => block::<E, 4, 2, false>(x0, wj, sh, o),
                            _ => block::<E, 4, 1, false>(x0, wj, sh, o),
                        }
                        i += 4;
                    }
                    while i < i0 + mb {
                        let (x0, o) = (xp.add(i * ldx), op.add(i * ldo + j));
                        match nb {
                            3 => block::<E, 1, 3, false>(x0, wj, sh, o),
                            2 => block::<E, 1, 2, false>(x0, wj, sh, o),
                            _ => block::<E, 1, 1, false>(x0, wj, sh, o),
                        }
                        i += 1;
                    }
                    j += nb;
                }
                i0 += mb;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
        let mut o = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                o[i * n + j] = (0..k)
                    .map(|l| x[i * k + l] as f64 * w[j * k + l] as f64)
                    .sum::<f64>() as f32;
            }
        }
        o
    }

    #[test]
    fn tiles_match_naive_dot_products_for_every_storage() {
        if !available() {
            return;
        }
        for &(m, k, n) in &[
            (1, 8, 1),
            (1, 37, 19),
            (5, 64, 7),
            (9, 131, 10),
            (130, 16, 4),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7) % 13) as f32 * 0.125 - 0.75)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.25)
                .collect();
            let want = naive(&x, m, k, &w, n);
            let h: Vec<u16> = w
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            let b: Vec<u16> = w.iter().map(|&v| (v.to_bits() >> 16) as u16).collect();
            for rows in [Rows::F32(&w), Rows::F16(&h), Rows::BF16(&b)] {
                // Write into a wider output to check the row stride.
                let ldo = n + 3;
                let mut out = vec![f32::NAN; m * ldo];
                // SAFETY: out holds m rows of ldo ≥ n.
                unsafe { dot_tile(&x, m, k, rows, n, out.as_mut_ptr(), ldo) };
                for i in 0..m {
                    for j in 0..n {
                        let (a, b) = (out[i * ldo + j], want[i * n + j]);
                        assert!(
                            (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                            "{m}x{k}x{n} [{i},{j}]: {a} vs {b}"
                        );
                    }
                    assert!(out[i * ldo + n].is_nan(), "wrote past the tile");
                }
            }
        }
    }

    #[test]
    fn f16_rounding_matches_the_scalar_conversion() {
        let mut x: Vec<f32> = (0..1000)
            .map(|i| ((i as f32) * 0.731).sin() * 10f32.powi(i % 12 - 6))
            .collect();
        x.extend([
            65504.0,
            65520.0,
            1e9,
            -1e9,
            5.96e-8,
            2.98e-8,
            f32::INFINITY,
            -0.0,
        ]);
        let want: Vec<u32> = x
            .iter()
            .map(|&v| half::f16::from_f32(v).to_f32().to_bits())
            .collect();
        round_to_f16(&mut x);
        let got: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn each_output_is_independent_of_the_tile_it_is_computed_in() {
        if !available() {
            return;
        }
        let (m, k, n) = (11, 200, 9);
        let x: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i as f32) * 0.11).cos()).collect();
        let mut whole = vec![0f32; m * n];
        // SAFETY: whole is m×n.
        unsafe { dot_tile(&x, m, k, Rows::F32(&w), n, whole.as_mut_ptr(), n) };
        for i in 0..m {
            for j in 0..n {
                let mut one = [0f32];
                let (xi, wj) = (&x[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
                // SAFETY: one output.
                unsafe { dot_tile(xi, 1, k, Rows::F32(wj), 1, one.as_mut_ptr(), 1) };
                assert_eq!(one[0].to_bits(), whole[i * n + j].to_bits(), "[{i},{j}]");
            }
        }
    }
}
