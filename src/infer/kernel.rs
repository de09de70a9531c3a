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
        if m >= avx512::MIN_ROWS && k >= 8 && avx512::available() {
            avx512::tile(x.as_ptr(), ldx, m, k, w, ldw, nr, out, ldo);
            return;
        }
        avx2_tile(x, ldx, m, k, w, ldw, nr, out, ldo);
    }
}

/// The AVX2 kernel on any row storage.
///
/// # Safety
/// As [`dot_tile_strided`], with the bounds already checked.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx2_tile(
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
    // SAFETY: forwarded.
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

/// Weight rows packed once for many [`dot_tile_packed`] calls (attention reuses each KV
/// head's keys and values for every block of queries). Empty where the AVX-512 kernel does
/// not run.
#[derive(Default)]
pub struct Packed {
    buf: Vec<f32>,
    nr: usize,
    k8: usize,
}

impl Packed {
    /// Packs the first `k / 8 · 8` columns of `nr` rows of `w` (row stride `ldw`).
    pub fn pack(&mut self, w: Rows<'_>, ldw: usize, nr: usize, k: usize) {
        self.nr = 0;
        self.k8 = 0;
        #[cfg(target_arch = "x86_64")]
        if nr > 0 && k >= 8 && avx512::available() {
            assert!(
                ldw >= k && w.len() >= (nr - 1) * ldw + k,
                "Packed::pack: rows too short"
            );
            let k8 = k / 8 * 8;
            // SAFETY: the CPU features were detected and the bounds asserted above.
            unsafe {
                match w {
                    Rows::F32(s) => avx512::pack(s.as_ptr(), ldw, nr, k8, &mut self.buf),
                    Rows::F16(s) => {
                        avx512::pack::<avx2::F16>(s.as_ptr().cast(), ldw, nr, k8, &mut self.buf)
                    }
                    Rows::BF16(s) => {
                        avx512::pack::<avx2::BF16>(s.as_ptr().cast(), ldw, nr, k8, &mut self.buf)
                    }
                }
            }
            self.nr = nr;
            self.k8 = k8;
        }
    }
}

/// [`dot_tile_strided`] over the first `nr` rows of `w`, which `packed` holds (packed from
/// the same rows with at least `k / 8 · 8` columns) unless it is empty: the same bits,
/// without packing the rows again.
///
/// # Safety
/// As [`dot_tile`]; `packed` must have been packed from `w`'s rows.
#[allow(clippy::too_many_arguments)]
pub unsafe fn dot_tile_packed(
    x: &[f32],
    ldx: usize,
    m: usize,
    k: usize,
    w: Rows<'_>,
    ldw: usize,
    nr: usize,
    packed: &Packed,
    out: *mut f32,
    ldo: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if m > 0 && nr > 0 && k >= 8 && nr <= packed.nr && k / 8 * 8 <= packed.k8 {
        assert!(
            ldx >= k && ldw >= k && x.len() >= (m - 1) * ldx + k && w.len() >= (nr - 1) * ldw + k,
            "dot_tile_packed: inputs too short"
        );
        let (xp, k8, ps) = (x.as_ptr(), k / 8 * 8, 2 * packed.k8);
        // SAFETY: a non-empty `packed` means AVX-512 was detected; the bounds were asserted
        // above and `packed` holds nr ≥ these rows with k8 ≥ these columns.
        unsafe {
            avx512::lanes(xp, ldx, m, k8, packed.buf.as_ptr(), ps, nr, out, ldo);
            match w {
                Rows::F32(s) => avx512::tail(xp, ldx, m, k, s.as_ptr(), ldw, nr, out, ldo),
                Rows::F16(s) => {
                    avx512::tail::<avx2::F16>(xp, ldx, m, k, s.as_ptr().cast(), ldw, nr, out, ldo)
                }
                Rows::BF16(s) => {
                    avx512::tail::<avx2::BF16>(xp, ldx, m, k, s.as_ptr().cast(), ldw, nr, out, ldo)
                }
            }
        }
        return;
    }
    // SAFETY: forwarded.
    unsafe { dot_tile_strided(x, ldx, m, k, w, ldw, nr, out, ldo) }
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
pub(super) use avx2::hsum;

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

    /// Sum of the 8 lanes in a fixed order (the quantized kernels in `qdot` use it too, so
    /// every f32 reduction in the forward pass has one order).
    #[inline(always)]
    pub(in crate::infer) unsafe fn hsum(v: __m256) -> f32 {
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

/// The same dot products as [`avx2`], bit for bit, with AVX-512's 32 registers: each zmm
/// accumulator holds the 8-lane accumulators of two outputs (two weight rows in its halves,
/// the x row broadcast to both), so every output sees exactly the AVX2 kernel's FMA sequence,
/// lane sums and scalar tail, while a 6×8 register tile needs 10 loads per 24 FMAs instead of
/// 7 per 12. Weight rows are first packed as f32 pairs, interleaved 8 columns at a time, so
/// the inner loop reads one stream and never converts; that costs one pass over the tile's
/// weights, which only pays off with enough x rows ([`MIN_ROWS`]).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    use super::Rows;
    use super::avx2::{BF16, Elem, F16, hsum};

    /// Fewest x rows for which packing the weights pays off.
    pub const MIN_ROWS: usize = 8;

    /// x rows per register tile.
    const RM: usize = 6;
    /// Weight row pairs per register tile (6×4 accumulators + 4 weights + 1 x of 32 zmm).
    const RP: usize = 4;
    /// x rows per cache block, as in the AVX2 kernel.
    const XBLOCK: usize = 128;

    thread_local! {
        /// Packed weights of the current tile, reused across calls on this thread.
        static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    /// Whether AVX-512 F/DQ/VL run here, on top of the AVX2 kernel's features, and
    /// `TINYLM_KERNEL=avx2` does not ask for the AVX2 kernel alone (to check that both give
    /// the same bytes).
    pub fn available() -> bool {
        use std::sync::OnceLock;
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            super::available()
                && std::env::var_os("TINYLM_KERNEL").is_none_or(|v| v != "avx2")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
        })
    }

    /// Packs the first `k8` columns of `nr` rows: pair `p` (rows 2p, 2p+1; a missing odd row
    /// is zeros) occupies `dst[p·2·k8..]`, 16 values per 8 columns, row 2p's first.
    ///
    /// # Safety
    /// AVX2/F16C available; `nr` rows of `k8` values at stride `ldw` readable from `w`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn pack<E: Elem>(
        w: *const E,
        ldw: usize,
        nr: usize,
        k8: usize,
        dst: &mut Vec<f32>,
    ) {
        let np = nr.div_ceil(2);
        // Every value used is written below, so old contents need no clearing (zeroing
        // the whole buffer per tile cost as much as packing it).
        if dst.len() < np * 2 * k8 {
            dst.resize(np * 2 * k8, 0.0);
        }
        let d = dst.as_mut_ptr();
        if nr % 2 == 1 {
            let base = (nr / 2) * 2 * k8 + 8;
            for s in 0..k8 / 8 {
                dst[base + 16 * s..base + 16 * s + 8].fill(0.0);
            }
        }
        for j in 0..nr {
            let base = (j / 2) * 2 * k8 + (j % 2) * 8;
            let mut l = 0;
            while l < k8 {
                // SAFETY: row j has k8 readable values; dst holds np·2·k8 ≥ base + 2l + 8.
                unsafe { _mm256_storeu_ps(d.add(base + 2 * l), E::load8(w.add(j * ldw + l))) };
                l += 8;
            }
        }
    }

    /// `R × P` pairs of accumulators over the packed pairs at `pk` (`ps` values apart);
    /// writes the lane sums over `k8` columns of the first `ncols` outputs of each x row.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const P: usize>(
        x0: *const f32,
        ldx: usize,
        pk: *const f32,
        ps: usize,
        k8: usize,
        out: *mut f32,
        ldo: usize,
        ncols: usize,
    ) {
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); P]; R];
            let mut l = 0;
            while l < k8 {
                let mut wv = [_mm512_setzero_ps(); P];
                for (p, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(pk.add(p * ps + 2 * l));
                }
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_broadcast_f32x8(_mm256_loadu_ps(x0.add(i * ldx + l)));
                    for (ap, wp) in a.iter_mut().zip(&wv) {
                        *ap = _mm512_fmadd_ps(xv, *wp, *ap);
                    }
                }
                l += 8;
            }
            if P == 4 && ncols == 8 {
                // Full 8-output rows: the lane sums of two rows at once.
                let mut i = 0;
                while i < R {
                    let i2 = (i + 1).min(R - 1);
                    let r = sums16(&acc[i], &acc[i2]);
                    _mm256_storeu_ps(out.add(i * ldo), _mm512_castps512_ps256(r));
                    if i2 > i {
                        _mm256_storeu_ps(out.add(i2 * ldo), _mm512_extractf32x8_ps::<1>(r));
                    }
                    i += 2;
                }
                return;
            }
            for (i, a) in acc.iter().enumerate() {
                for (p, ap) in a.iter().enumerate() {
                    let j = 2 * p;
                    if j < ncols {
                        *out.add(i * ldo + j) = hsum(_mm512_castps512_ps256(*ap));
                    }
                    if j + 1 < ncols {
                        *out.add(i * ldo + j + 1) = hsum(_mm512_extractf32x8_ps::<1>(*ap));
                    }
                }
            }
        }
    }

    /// The 16 lane sums of two rows' 4 accumulators each (8 outputs per row): row `a`'s then
    /// row `b`'s outputs in order. Each sum is [`hsum`]'s tree exactly, lane for lane
    /// (`(v0+v4) + (v2+v6)`, `(v1+v5) + (v3+v7)`, then their sum), just computed for 16
    /// outputs in the same vectors.
    #[inline(always)]
    unsafe fn sums16(a: &[__m512], b: &[__m512]) -> __m512 {
        unsafe {
            let ta = halves(quarters(a[0], a[1]), quarters(a[2], a[3]));
            let tb = halves(quarters(b[0], b[1]), quarters(b[2], b[3]));
            // Lane k: row a's outputs k, k + 4, row b's outputs k, k + 4.
            let r = _mm512_add_ps(
                _mm512_shuffle_ps::<0b10_00_10_00>(ta, tb),
                _mm512_shuffle_ps::<0b11_01_11_01>(ta, tb),
            );
            let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
            _mm512_permutexvar_ps(idx, r)
        }
    }

    /// Per 128-bit lane: `v0..3 + v4..7` of one output (x's two, then y's two).
    #[inline(always)]
    unsafe fn quarters(x: __m512, y: __m512) -> __m512 {
        unsafe {
            let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(x, y);
            let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(x, y);
            _mm512_add_ps(lo, hi)
        }
    }

    /// Lane k: `[s0+s2, s1+s3]` of x's lane k, then of y's lane k.
    #[inline(always)]
    unsafe fn halves(x: __m512, y: __m512) -> __m512 {
        unsafe {
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(x, y),
                _mm512_shuffle_ps::<0b11_10_11_10>(x, y),
            )
        }
    }

    /// [`block`] with `R` rows and `pb ≤ RP` pairs.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block_r<const R: usize>(
        pb: usize,
        x0: *const f32,
        ldx: usize,
        pk: *const f32,
        ps: usize,
        k8: usize,
        out: *mut f32,
        ldo: usize,
        ncols: usize,
    ) {
        unsafe {
            match pb {
                4 => block::<R, 4>(x0, ldx, pk, ps, k8, out, ldo, ncols),
                3 => block::<R, 3>(x0, ldx, pk, ps, k8, out, ldo, ncols),
                2 => block::<R, 2>(x0, ldx, pk, ps, k8, out, ldo, ncols),
                _ => block::<R, 1>(x0, ldx, pk, ps, k8, out, ldo, ncols),
            }
        }
    }

    /// The lane sums over the first `k8` columns of every output from packed weights whose
    /// pairs are `ps ≥ 2·k8` values apart.
    ///
    /// # Safety
    /// AVX-512 F/DQ/VL available; `pk` is [`pack`]'s output for at least `nr` rows and `k8`
    /// columns; x and out as in [`tile`].
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512dq,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn lanes(
        xp: *const f32,
        ldx: usize,
        m: usize,
        k8: usize,
        pk: *const f32,
        ps: usize,
        nr: usize,
        op: *mut f32,
        ldo: usize,
    ) {
        let np = nr.div_ceil(2);
        // SAFETY (whole body): blocks read x rows < m, pairs < np and write out[i·ldo + j]
        // for i < m, j < nr.
        unsafe {
            let mut i0 = 0;
            while i0 < m {
                let mb = XBLOCK.min(m - i0);
                let mut p = 0;
                while p < np {
                    let pb = RP.min(np - p);
                    let ncols = (nr - 2 * p).min(2 * pb);
                    let pkp = pk.add(p * ps);
                    let mut i = i0;
                    while i + RM <= i0 + mb {
                        let (x0, o) = (xp.add(i * ldx), op.add(i * ldo + 2 * p));
                        block_r::<RM>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols);
                        i += RM;
                    }
                    let (x0, o) = (xp.add(i * ldx), op.add(i * ldo + 2 * p));
                    match i0 + mb - i {
                        0 => {}
                        1 => block_r::<1>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols),
                        2 => block_r::<2>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols),
                        3 => block_r::<3>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols),
                        4 => block_r::<4>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols),
                        _ => block_r::<5>(pb, x0, ldx, pkp, ps, k8, o, ldo, ncols),
                    }
                    p += pb;
                }
                i0 += mb;
            }
        }
    }

    /// Packs, sums the lanes, then adds the scalar tail `k8..k` in the AVX2 kernel's order.
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_of<E: Elem>(
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
        let k8 = k / 8 * 8;
        PACKED.with(|buf| {
            let mut buf = buf.borrow_mut();
            // SAFETY: the caller's bounds and features, forwarded.
            unsafe {
                pack(w, ldw, nr, k8, &mut buf);
                lanes(xp, ldx, m, k8, buf.as_ptr(), 2 * k8, nr, op, ldo);
                tail(xp, ldx, m, k, w, ldw, nr, op, ldo);
            }
        });
    }

    /// Adds the columns `k / 8 · 8..k` to the lane sums in `out`, in the AVX2 kernel's order.
    ///
    /// # Safety
    /// x rows < m and w rows < nr hold k values at their strides; out[i·ldo + j] is ours.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tail<E: Elem>(
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
        let k8 = k / 8 * 8;
        if k8 == k {
            return;
        }
        // SAFETY: the caller's bounds.
        unsafe {
            for i in 0..m {
                for j in 0..nr {
                    let o = op.add(i * ldo + j);
                    let mut s = *o;
                    for ll in k8..k {
                        s += *xp.add(i * ldx + ll) * E::load1(w.add(j * ldw + ll));
                    }
                    *o = s;
                }
            }
        }
    }

    /// The AVX-512 kernel on any row storage.
    ///
    /// # Safety
    /// [`available`]; `m` x rows and `nr` w rows of `k ≥ 8` values at their strides are
    /// readable, `out[i·ldo + j]` writable.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile(
        xp: *const f32,
        ldx: usize,
        m: usize,
        k: usize,
        w: Rows<'_>,
        ldw: usize,
        nr: usize,
        op: *mut f32,
        ldo: usize,
    ) {
        // SAFETY: forwarded.
        unsafe {
            match w {
                Rows::F32(s) => tile_of::<f32>(xp, ldx, m, k, s.as_ptr(), ldw, nr, op, ldo),
                Rows::F16(s) => tile_of::<F16>(xp, ldx, m, k, s.as_ptr().cast(), ldw, nr, op, ldo),
                Rows::BF16(s) => {
                    tile_of::<BF16>(xp, ldx, m, k, s.as_ptr().cast(), ldw, nr, op, ldo)
                }
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

    /// Random values over many binades (a fixed LCG), so that any change in the order of
    /// the sums would show in the low bits.
    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut st = seed;
        (0..n)
            .map(|_| {
                st = st
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let u = (st >> 40) as f32 / (1u64 << 24) as f32;
                let e = ((st >> 20) % 9) as i32 - 4;
                (u - 0.5) * 2f32.powi(e)
            })
            .collect()
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_tiles_give_the_avx2_kernels_bits() {
        if !avx512::available() {
            return;
        }
        // Awkward sizes: x rows that are no multiple of the 6-row tile, odd weight rows
        // (a half-empty pair), k with a scalar tail, strides wider than k.
        for &(m, k, n, pad) in &[
            (8, 8, 1, 0),
            (9, 13, 3, 1),
            (13, 64, 7, 0),
            (17, 131, 10, 5),
            (31, 200, 9, 3),
            (134, 576, 19, 0),
            (40, 1543, 17, 2),
        ] {
            let (ldx, ldw) = (k + pad, k + 2 * pad);
            let x = noise(m * ldx, (m * 31 + k) as u64);
            let w = noise(n * ldw, (n * 17 + k) as u64);
            let h: Vec<u16> = w
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            let b: Vec<u16> = w.iter().map(|&v| (v.to_bits() >> 16) as u16).collect();
            for rows in [Rows::F32(&w), Rows::F16(&h), Rows::BF16(&b)] {
                let ldo = n + 2;
                let mut wide = vec![f32::NAN; m * ldo];
                let mut narrow = vec![f32::NAN; m * ldo];
                // SAFETY: both outputs hold m rows of ldo ≥ n; the features were detected
                // and the inputs hold m (n) rows at their strides.
                unsafe {
                    avx512::tile(x.as_ptr(), ldx, m, k, rows, ldw, n, wide.as_mut_ptr(), ldo);
                    avx2_tile(&x, ldx, m, k, rows, ldw, n, narrow.as_mut_ptr(), ldo);
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&wide), bits(&narrow), "{m}x{k}x{n}");
                for i in 0..m {
                    assert!(wide[i * ldo + n].is_nan(), "wrote past the tile");
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn packed_rows_give_the_unpacked_kernels_bits() {
        if !available() {
            return;
        }
        // Keys/values as attention uses them: packed once with every column, then used with
        // fewer rows and shorter dot products (a scalar tail past the packed 8-column steps).
        let (rows, cols, ldw) = (37, 77, 80);
        let w = noise(rows * ldw, 7);
        let mut packed = Packed::default();
        packed.pack(Rows::F32(&w), ldw, rows, cols);
        for &(m, k, nr) in &[(4, 77, 37), (3, 64, 20), (1, 9, 1), (4, 23, 36), (2, 8, 8)] {
            let ldx = k + 3;
            let x = noise(m * ldx, (m * k + nr) as u64);
            let ldo = nr + 1;
            let mut got = vec![f32::NAN; m * ldo];
            let mut want = vec![f32::NAN; m * ldo];
            // SAFETY: both outputs hold m rows of ldo ≥ nr; the inputs hold m (nr) rows of k
            // values at their strides; `packed` was packed from w.
            unsafe {
                dot_tile_packed(
                    &x,
                    ldx,
                    m,
                    k,
                    Rows::F32(&w),
                    ldw,
                    nr,
                    &packed,
                    got.as_mut_ptr(),
                    ldo,
                );
                avx2_tile(
                    &x,
                    ldx,
                    m,
                    k,
                    Rows::F32(&w),
                    ldw,
                    nr,
                    want.as_mut_ptr(),
                    ldo,
                );
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m}x{k}x{nr}");
        }
    }
}
