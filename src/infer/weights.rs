//! Weight matrices in any tensor type tinylm writes, read in place (memory-mapped) and decoded
//! a tile of rows at a time, and the matrix product the forward pass is built on.

use rayon::prelude::*;

use super::kernel;
use super::qdot;
use crate::formats::gguf::GgmlType;
use crate::formats::tensor::TensorBytes;
use crate::quant;

/// Weight rows decoded and multiplied per task. Fixed, so the work split (and the result)
/// does not depend on the number of threads; 64 rows × 4 KiB-wide f32 rows fit in L2.
const TILE_ROWS: usize = 64;

/// A 2-D weight `[rows, cols]` (ggml `ne = [cols, rows]`): `rows` outputs, `cols` inputs.
#[derive(Clone)]
pub struct Weight {
    /// Tensor name, for errors and importance-matrix keys.
    pub name: String,
    /// Storage type.
    pub ty: GgmlType,
    /// Output features (`ne[1]`).
    pub rows: usize,
    /// Input features (`ne[0]`).
    pub cols: usize,
    data: TensorBytes,
}

impl std::fmt::Debug for Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Weight({} {} [{}, {}])",
            self.name,
            self.ty.name(),
            self.rows,
            self.cols
        )
    }
}

impl Weight {
    /// Wraps `data`, checking the type is decodable and the byte size matches the shape.
    pub fn new(
        name: &str,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        data: TensorBytes,
    ) -> Result<Weight, String> {
        if !quant::block::is_supported(ty) {
            return Err(format!(
                "tensor type {} cannot be decoded by tinylm (supported: F32, F16, BF16, Q4_0, \
                 Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K)",
                ty.name()
            ));
        }
        if !(cols as u64).is_multiple_of(ty.block_size()) {
            return Err(format!(
                "{} elements per row is not a multiple of the {} block size {}",
                cols,
                ty.name(),
                ty.block_size()
            ));
        }
        let want = ty.bytes_for((rows * cols) as u64);
        if want != Some(data.as_bytes().len() as u64) {
            return Err(format!(
                "holds {} bytes but [{rows}, {cols}] {} needs {}",
                data.as_bytes().len(),
                ty.name(),
                want.unwrap_or(0)
            ));
        }
        Ok(Weight {
            name: name.to_string(),
            ty,
            rows,
            cols,
            data,
        })
    }

    /// An owned f32 weight (used for transposed HF layouts).
    pub fn from_f32(name: &str, rows: usize, cols: usize, values: &[f32]) -> Weight {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Weight {
            name: name.to_string(),
            ty: GgmlType::F32,
            rows,
            cols,
            data: TensorBytes::Owned(bytes.into()),
        }
    }

    fn row_bytes(&self) -> usize {
        (self.cols as u64 / self.ty.block_size() * self.ty.type_size()) as usize
    }

    /// Bytes of the stored data.
    pub fn nbytes(&self) -> usize {
        self.data.as_bytes().len()
    }

    /// The rows `r0..r0+n` as f32 without copying, when stored as aligned little-endian F32.
    fn f32_rows(&self, r0: usize, n: usize) -> Option<&[f32]> {
        if self.ty != GgmlType::F32 || cfg!(target_endian = "big") {
            return None;
        }
        let b = &self.data.as_bytes()[r0 * self.cols * 4..(r0 + n) * self.cols * 4];
        // SAFETY: every bit pattern is a valid f32; align_to only yields the aligned middle.
        let (pre, mid, post) = unsafe { b.align_to::<f32>() };
        (pre.is_empty() && post.is_empty()).then_some(mid)
    }

    /// Rows `r0..r0+n` in a storage the SIMD kernel reads in place (F32, F16, BF16), when the
    /// bytes are suitably aligned.
    fn direct_rows(&self, r0: usize, n: usize) -> Option<kernel::Rows<'_>> {
        if cfg!(target_endian = "big") {
            return None;
        }
        fn halves(b: &[u8]) -> Option<&[u16]> {
            // SAFETY: every bit pattern is a valid u16; align_to only yields the aligned middle.
            let (pre, mid, post) = unsafe { b.align_to::<u16>() };
            (pre.is_empty() && post.is_empty()).then_some(mid)
        }
        match self.ty {
            GgmlType::F32 => self.f32_rows(r0, n).map(kernel::Rows::F32),
            GgmlType::F16 | GgmlType::BF16 => {
                let b = &self.data.as_bytes()[r0 * self.cols * 2..(r0 + n) * self.cols * 2];
                let h = halves(b)?;
                Some(if self.ty == GgmlType::F16 {
                    kernel::Rows::F16(h)
                } else {
                    kernel::Rows::BF16(h)
                })
            }
            _ => None,
        }
    }

    /// Decodes rows `r0..r0+n` into `out` (`n * cols` values).
    pub fn dequant_rows(&self, r0: usize, n: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let src = &self.data.as_bytes()[r0 * rb..(r0 + n) * rb];
        let ok = quant::dequantize_row(self.ty, src, &mut out[..n * self.cols]);
        debug_assert!(ok, "type checked in Weight::new");
    }

    /// Row `r` as f32.
    pub fn row(&self, r: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.cols];
        self.dequant_rows(r, 1, &mut v);
        v
    }

    /// Every value as f32 (for 1-D tensors: norms, biases).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.rows * self.cols];
        self.dequant_rows(0, self.rows, &mut v);
        v
    }
}

/// `out[t × rows] = x[t × cols] · wᵀ` with ggml's numerics ([`super::Numerics::ggml_activations`]):
/// for the types with an integer dot product ([`qdot::ActFormat::for_weight`]) the activations
/// are quantized to Q8 blocks once and multiplied in integers like ggml's `vec_dot`; other types
/// see [`ggml_activation_roundtrip`]ed activations and the f32 kernels.
pub fn matmul_ggml(x: &[f32], t: usize, w: &Weight, out: &mut [f32]) {
    match qdot::ActFormat::for_weight(w.ty) {
        Some(_) => {
            assert_eq!(x.len(), t * w.cols, "{}: input width", w.name);
            let acts = qdot::QActs::quantize(w.ty, x, w.cols);
            matmul_q8(&acts, w, out);
        }
        None => {
            let mut xr = x.to_vec();
            xr.par_chunks_mut(w.cols)
                .for_each(|r| ggml_activation_roundtrip(w.ty, r));
            matmul(&xr, t, w, out);
            ggml_q8_1_correction(w, x, t, out);
        }
    }
}

/// The integer path of [`matmul_ggml`]: each task unpacks a tile of weight rows once and runs
/// every activation row over it; each output is computed on its own, so the result does not
/// depend on the tiling or the thread count.
fn matmul_q8(acts: &qdot::QActs, w: &Weight, out: &mut [f32]) {
    let (n, t) = (w.rows, acts.rows());
    assert_eq!(out.len(), t * n, "{}: output size", w.name);
    let dst = SendPtr(out.as_mut_ptr());
    let tile = dot_tile_rows(n);
    let rb = w.row_bytes();
    (0..n.div_ceil(tile))
        .into_par_iter()
        .for_each_init(qdot::QTile::default, |qt, ti| {
            let r0 = ti * tile;
            let nr = tile.min(n - r0);
            qt.decode(
                w.ty,
                &w.data.as_bytes()[r0 * rb..(r0 + nr) * rb],
                nr,
                w.cols,
            );
            // SAFETY: columns r0..r0+nr of every row of `out` (row stride n) belong to this
            // task alone.
            unsafe { qdot::tile_dot(acts, qt, dst.ptr().add(r0), n) };
        });
}

/// Rounds one activation row the way ggml's CPU dot products see it for a weight of type `ty`
/// (its `vec_dot_type`): f16/bf16 for F16/BF16 weights, Q8_0 blocks for the 32-element types
/// (Q8_1 differs only in an f16-rounded block sum), Q8_K blocks for the K-quants. Used to
/// reproduce llama.cpp's numbers; tinylm's own results keep f32 activations.
pub fn ggml_activation_roundtrip(ty: GgmlType, x: &mut [f32]) {
    use GgmlType::*;
    match ty {
        F16 => kernel::round_to_f16(x),
        BF16 => x
            .iter_mut()
            .for_each(|v| *v = quant::float::bf16_to_f32(quant::float::bf16_from_f32(*v))),
        Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 if x.len().is_multiple_of(32) => {
            let mut buf = vec![0u8; x.len() / 32 * 34];
            quant::quantize_row(Q8_0, x, &mut buf);
            quant::dequantize_row(Q8_0, &buf, x);
        }
        Q2K | Q3K | Q4K | Q5K | Q6K => {
            for b in x.chunks_exact_mut(256) {
                q8k_roundtrip(b);
            }
        }
        _ => {}
    }
}

/// For Q4_1/Q5_1 weights ggml's dot product adds `m · s` per block, where `s` is the Q8_1
/// block sum rounded to f16, not the sum of the rounded activations; adds that difference to
/// `out` (`t × rows`) after a matmul with [`ggml_activation_roundtrip`]ed inputs `x`.
pub fn ggml_q8_1_correction(w: &Weight, x: &[f32], t: usize, out: &mut [f32]) {
    let bb = match w.ty {
        GgmlType::Q4_1 => 20,
        GgmlType::Q5_1 => 24,
        _ => return,
    };
    let nb = w.cols / 32;
    let mut corr = vec![0f32; t * nb];
    for (xr, cr) in x.chunks_exact(w.cols).zip(corr.chunks_exact_mut(nb)) {
        for (blk, c) in xr.chunks_exact(32).zip(cr.iter_mut()) {
            let amax = blk.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let sum: i32 = blk
                .iter()
                .map(|v| quant::float::roundf(v * id) as i32)
                .sum();
            let s = half::f16::from_f32(d * sum as f32).to_f32();
            let dh = half::f16::from_f32(d).to_f32();
            *c = s - dh * sum as f32;
        }
    }
    let bytes = w.data.as_bytes();
    for r in 0..w.rows {
        let row = &bytes[r * nb * bb..(r + 1) * nb * bb];
        let m: Vec<f32> = (0..nb)
            .map(|b| quant::float::f16v(u16::from_le_bytes([row[b * bb + 2], row[b * bb + 3]])))
            .collect();
        for i in 0..t {
            let c = &corr[i * nb..(i + 1) * nb];
            out[i * w.rows + r] += m.iter().zip(c).map(|(a, b)| a * b).sum::<f32>();
        }
    }
}

/// `quantize_row_q8_K_ref` followed by its dequantization.
fn q8k_roundtrip(x: &mut [f32]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x.iter() {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let iscale = -127.0 / max;
    let d = 1.0 / iscale;
    for v in x.iter_mut() {
        let q = quant::float::nearest_int(iscale * *v).min(127);
        *v = d * q as f32;
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges of the output through this pointer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    // A method, so closures capture the whole (Send) wrapper, not the raw pointer field.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `C = scale · A · B` for row-major views given as (pointer, row stride, column stride), single
/// threaded (callers split the work). The `gemm` crate picks AVX-512/AVX2/FMA kernels at run
/// time; for a given machine the result depends only on the shapes, not on the thread count.
///
/// # Safety
/// The pointers must cover `m×k`, `k×n` and `m×n` elements at the given strides, and `c` must
/// not alias `a` or `b`.
pub unsafe fn sgemm(
    (m, k, n): (usize, usize, usize),
    scale: f32,
    a: (*const f32, isize, isize),
    b: (*const f32, isize, isize),
    c: (*mut f32, isize, isize),
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.0,
            c.2,
            c.1,
            false,
            a.0,
            a.2,
            a.1,
            b.0,
            b.2,
            b.1,
            0.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `out[t × rows] = x[t × cols] · wᵀ`. With the SIMD dot-product kernel (x86-64 AVX2), each
/// task takes a tile of weight rows (F32/F16/BF16 read in place, other types decoded once per
/// tile) and every output is one fixed-order dot product, so the result is the same for any
/// thread count; elsewhere the portable GEMM path.
pub fn matmul(x: &[f32], t: usize, w: &Weight, out: &mut [f32]) {
    if kernel::available() {
        matmul_dot(x, t, w, out);
    } else {
        matmul_gemm(x, t, w, out);
    }
}

/// Weight rows per task of [`matmul_dot`]: 48 (a multiple of both kernel block widths), halved
/// while there are fewer than four tasks per thread, so small matrices keep every core busy.
/// Only scheduling depends on it, never the values.
fn dot_tile_rows(n: usize) -> usize {
    let want = 4 * rayon::current_num_threads();
    let mut tile = 48;
    while tile > 6 && n.div_ceil(tile) < want {
        tile /= 2;
    }
    tile
}

fn matmul_dot(x: &[f32], t: usize, w: &Weight, out: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), t * k, "{}: input width", w.name);
    assert_eq!(out.len(), t * n, "{}: output size", w.name);
    let dst = SendPtr(out.as_mut_ptr());
    let tile = dot_tile_rows(n);
    (0..n.div_ceil(tile))
        .into_par_iter()
        .for_each_init(Vec::new, |scratch: &mut Vec<f32>, ti| {
            let r0 = ti * tile;
            let nr = tile.min(n - r0);
            let rows = match w.direct_rows(r0, nr) {
                Some(rows) => rows,
                None => {
                    scratch.resize(nr * k, 0.0);
                    w.dequant_rows(r0, nr, scratch);
                    kernel::Rows::F32(&scratch[..nr * k])
                }
            };
            // SAFETY: columns r0..r0+nr of every row of `out` (row stride n) belong to this
            // task alone.
            unsafe { kernel::dot_tile(x, t, k, rows, nr, dst.ptr().add(r0), n) };
        });
}

/// The portable path: each task decodes a fixed tile of weight rows (or uses F32 rows in
/// place) and runs an f32 GEMM on it.
fn matmul_gemm(x: &[f32], t: usize, w: &Weight, out: &mut [f32]) {
    let (n, k) = (w.rows, w.cols);
    assert_eq!(x.len(), t * k, "{}: input width", w.name);
    assert_eq!(out.len(), t * n, "{}: output size", w.name);
    let dst = SendPtr(out.as_mut_ptr());
    let tiles = n.div_ceil(TILE_ROWS);
    (0..tiles)
        .into_par_iter()
        .for_each_init(Vec::new, |scratch: &mut Vec<f32>, ti| {
            let r0 = ti * TILE_ROWS;
            let nr = TILE_ROWS.min(n - r0);
            let wt: &[f32] = match w.f32_rows(r0, nr) {
                Some(rows) => rows,
                None => {
                    scratch.resize(nr * k, 0.0);
                    w.dequant_rows(r0, nr, scratch);
                    &scratch[..nr * k]
                }
            };
            // SAFETY: a is t×k (row stride k), b is the k×nr transpose of the nr×k tile
            // (row stride 1, column stride k), c is the t×nr block of `out` starting at column
            // r0 with row stride n; tiles write disjoint columns.
            unsafe {
                sgemm(
                    (t, k, nr),
                    1.0,
                    (x.as_ptr(), k as isize, 1),
                    (wt.as_ptr(), 1, k as isize),
                    (dst.ptr().add(r0), n as isize, 1),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_for_every_layout() {
        let (t, k, n) = (5, 64, 130);
        let x: Vec<f32> = (0..t * k)
            .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5) % 11) as f32 * 0.05 - 0.25)
            .collect();
        let mut naive = vec![0f32; t * n];
        for i in 0..t {
            for j in 0..n {
                naive[i * n + j] = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum();
            }
        }
        let f32w = Weight::from_f32("w", n, k, &w);
        // F16 storage decodes exactly these values (multiples of 1/20 are not exact in f16,
        // so compare against the decoded weights); Q8_0 goes through the decode-a-tile path.
        let mut h = vec![0u8; n * k * 2];
        quant::float::f32_to_f16_bytes(&w, &mut h);
        let f16w = Weight::new("w", GgmlType::F16, n, k, TensorBytes::Owned(h.into())).unwrap();
        let mut q = vec![0u8; n * k / 32 * 34];
        quant::quantize_row(GgmlType::Q8_0, &w, &mut q);
        let q8w = Weight::new("w", GgmlType::Q8_0, n, k, TensorBytes::Owned(q.into())).unwrap();
        type MatmulFn = fn(&[f32], usize, &Weight, &mut [f32]);
        let paths: [(&str, MatmulFn); 3] = [
            ("default", matmul),
            ("gemm", matmul_gemm),
            ("dot", |x, t, w, o| {
                if kernel::available() {
                    matmul_dot(x, t, w, o)
                } else {
                    matmul_gemm(x, t, w, o)
                }
            }),
        ];
        for (path, f) in paths {
            let mut out = vec![0f32; t * n];
            f(&x, t, &f32w, &mut out);
            for (a, b) in out.iter().zip(&naive) {
                assert!((a - b).abs() < 1e-4, "{path}: {a} vs {b}");
            }
            for wq in [&f16w, &q8w] {
                let dec = wq.to_f32();
                f(&x, t, wq, &mut out);
                for i in 0..t {
                    for j in 0..n {
                        let want: f32 = (0..k).map(|l| x[i * k + l] * dec[j * k + l]).sum();
                        let got = out[i * n + j];
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{path} {:?}: {got} vs {want}",
                            wq.ty
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dot_path_gives_the_same_bits_for_any_batch_size() {
        // Decoding one token at a time must give the same values as the batched chunk.
        if !kernel::available() {
            return;
        }
        let (t, k, n) = (7, 96, 50);
        let x: Vec<f32> = (0..t * k).map(|i| (i as f32 * 0.31).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.17).cos()).collect();
        let mut h = vec![0u8; n * k * 2];
        quant::float::f32_to_f16_bytes(&w, &mut h);
        let wh = Weight::new("w", GgmlType::F16, n, k, TensorBytes::Owned(h.into())).unwrap();
        let mut all = vec![0f32; t * n];
        matmul_dot(&x, t, &wh, &mut all);
        for i in 0..t {
            let mut one = vec![0f32; n];
            matmul_dot(&x[i * k..(i + 1) * k], 1, &wh, &mut one);
            assert_eq!(one, all[i * n..(i + 1) * n], "row {i}");
        }
    }

    #[test]
    fn size_mismatch_is_reported() {
        let e = Weight::new(
            "w",
            GgmlType::F32,
            2,
            2,
            TensorBytes::Owned(vec![0u8; 12].into()),
        )
        .unwrap_err();
        assert!(e.contains("holds 12 bytes"), "{e}");
        let e = Weight::new(
            "w",
            GgmlType::Q8_0,
            1,
            16,
            TensorBytes::Owned(vec![0u8; 0].into()),
        )
        .unwrap_err();
        assert!(e.contains("block size"), "{e}");
    }
}

#[cfg(test)]
mod qdot_tests {
    use super::*;

    #[test]
    fn integer_path_gives_the_same_bits_for_any_thread_count() {
        // Tiles and tasks differ with the pool size (dot_tile_rows); outputs must not.
        let (t, n) = (70, 150);
        for (ty, k) in [(GgmlType::Q5_0, 576), (GgmlType::Q6K, 512)] {
            let x: Vec<f32> = (0..t * k).map(|i| ((i as f32) * 0.173).sin()).collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i as f32) * 0.091).cos() * 0.1)
                .collect();
            let mut q = vec![0u8; ty.bytes_for((n * k) as u64).unwrap() as usize];
            assert!(quant::quantize_row(ty, &w, &mut q));
            let wq = Weight::new("w", ty, n, k, TensorBytes::Owned(q.into())).unwrap();
            let runs: Vec<Vec<u32>> = [1, 3, 8]
                .iter()
                .map(|&threads| {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let mut out = vec![0f32; t * n];
                    pool.install(|| matmul_ggml(&x, t, &wq, &mut out));
                    out.iter().map(|v| v.to_bits()).collect()
                })
                .collect();
            assert_eq!(runs[0], runs[1], "{ty:?}: 1 vs 3 threads");
            assert_eq!(runs[0], runs[2], "{ty:?}: 1 vs 8 threads");
        }
    }

    #[test]
    fn integer_path_matches_the_roundtrip_f32_path() {
        let (t, n) = (133, 100);
        for (ty, k) in [
            (GgmlType::Q5_0, 576),
            (GgmlType::Q8_0, 576),
            (GgmlType::Q4_0, 576),
            (GgmlType::Q4K, 1536),
            (GgmlType::Q6K, 1536),
        ] {
            let x: Vec<f32> = (0..t * k)
                .map(|i| {
                    let v = ((i as f32) * 0.377).sin() * 0.3;
                    if i % 131 == 7 { v * 60.0 } else { v }
                })
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i as f32) * 0.211).cos() * 0.05)
                .collect();
            let mut q = vec![0u8; ty.bytes_for((n * k) as u64).unwrap() as usize];
            assert!(quant::quantize_row(ty, &w, &mut q));
            let wq = Weight::new("w", ty, n, k, TensorBytes::Owned(q.into())).unwrap();
            let mut got = vec![0f32; t * n];
            matmul_ggml(&x, t, &wq, &mut got);
            let mut xr = x.clone();
            xr.chunks_mut(k)
                .for_each(|r| ggml_activation_roundtrip(ty, r));
            let mut want = vec![0f32; t * n];
            matmul(&xr, t, &wq, &mut want);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{ty:?} {i}: {a} vs {b}"
                );
            }
        }
    }
}
