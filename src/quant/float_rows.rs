//! Whole-run float conversions between the weight dtypes a checkpoint stores (F32, F16, BF16) and
//! the float GGUF types, straight from bytes to bytes, vectorized (AVX2 + F16C where the CPU has
//! them).
//!
//! Each conversion gives exactly the bytes of decoding to f32 and encoding with
//! [`crate::quant::quantize_row`] (F16: `vcvtps2ph` with round-to-nearest-even, the instruction
//! `half` uses; BF16: ggml's rounding, which for a value that already is a bf16 only sets the
//! quiet bit of signaling NaNs), without the f32 round trip through memory.

use super::float::{bf16_from_f32, bf16_to_f32, fp16};
use crate::formats::DType;
use crate::formats::gguf::GgmlType;

/// Converts `src` (little-endian elements of `from`) into `dst` (elements of `to`). Returns
/// `false`, touching nothing, when there is no direct conversion for the pair; the caller then
/// decodes to f32 and encodes with [`crate::quant::quantize_row`].
pub fn convert_run(from: DType, to: GgmlType, src: &[u8], dst: &mut [u8]) -> bool {
    let n = src.len() / from.size().max(1);
    let out_size = match to {
        GgmlType::F32 => 4,
        GgmlType::F16 | GgmlType::BF16 => 2,
        _ => return false,
    };
    if dst.len() != n * out_size || src.len() != n * from.size() {
        return false;
    }
    match (from, to) {
        // Decoding and re-encoding is the identity (NaN payloads included).
        (DType::F32, GgmlType::F32) | (DType::F16, GgmlType::F16) => dst.copy_from_slice(src),
        (DType::BF16, GgmlType::BF16) => bf16_quiet(src, dst),
        (DType::BF16, GgmlType::F16) => bf16_to_f16(src, dst),
        (DType::F32, GgmlType::F16) => f32_to_f16(src, dst),
        (DType::BF16, GgmlType::F32) => bf16_to_f32_bytes(src, dst),
        (DType::F32, GgmlType::BF16) => f32_to_bf16(src, dst),
        _ => return false,
    }
    true
}

/// bf16 → bf16 as ggml encodes a decoded bf16: unchanged, except that a signaling NaN gets its
/// quiet bit. Branch-free so it compiles to a vector loop.
fn bf16_quiet(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(2)) {
        let w = u16::from_le_bytes([s[0], s[1]]);
        let nan = u16::from((w & 0x7fff) > 0x7f80);
        d.copy_from_slice(&(w | (nan << 6)).to_le_bytes());
    }
}

fn bf16_to_f32_bytes(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(4)) {
        let w = u32::from(u16::from_le_bytes([s[0], s[1]])) << 16;
        d.copy_from_slice(&w.to_le_bytes());
    }
}

fn f32_to_bf16(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(2)) {
        let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        d.copy_from_slice(&bf16_from_f32(x).to_le_bytes());
    }
}

fn bf16_to_f16(src: &[u8], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: AVX2 and F16C were detected at run time.
        let done = unsafe { x86::bf16_to_f16(src, dst) };
        return bf16_to_f16_scalar(&src[done * 2..], &mut dst[done * 2..]);
    }
    bf16_to_f16_scalar(src, dst)
}

fn bf16_to_f16_scalar(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(2)) {
        let x = bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
        d.copy_from_slice(&fp16(x).to_le_bytes());
    }
}

fn f32_to_f16(src: &[u8], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if x86::available() {
        // SAFETY: AVX2 and F16C were detected at run time.
        let done = unsafe { x86::f32_to_f16(src, dst) };
        return f32_to_f16_scalar(&src[done * 4..], &mut dst[done * 2..]);
    }
    f32_to_f16_scalar(src, dst)
}

fn f32_to_f16_scalar(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(2)) {
        let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
        d.copy_from_slice(&fp16(x).to_le_bytes());
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m128i, __m256i, _MM_FROUND_TO_NEAREST_INT, _mm_loadu_si128, _mm_storeu_si128,
        _mm256_castsi256_ps, _mm256_cvtepu16_epi32, _mm256_cvtps_ph, _mm256_loadu_ps,
        _mm256_slli_epi32,
    };
    use std::sync::OnceLock;

    /// Whether the CPU has AVX2 and F16C.
    pub fn available() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
        })
    }

    /// Converts the first multiple of 8 elements; returns how many it converted.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `dst` must be as long (in bytes) as `src`.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn bf16_to_f16(src: &[u8], dst: &mut [u8]) -> usize {
        let n = (src.len() / 2).min(dst.len() / 2) / 8 * 8;
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n elements, so bytes [2i, 2i + 16) are inside both slices.
            unsafe {
                let v = _mm_loadu_si128(s.add(i * 2).cast::<__m128i>());
                let w: __m256i = _mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(v));
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_castsi256_ps(w));
                _mm_storeu_si128(d.add(i * 2).cast::<__m128i>(), h);
            }
            i += 8;
        }
        n
    }

    /// Converts the first multiple of 8 elements; returns how many it converted.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; `dst` must hold half as many bytes as `src`.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn f32_to_f16(src: &[u8], dst: &mut [u8]) -> usize {
        let n = (src.len() / 4).min(dst.len() / 2) / 8 * 8;
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n elements: bytes [4i, 4i + 32) of src, [2i, 2i + 16) of dst.
            unsafe {
                let v = _mm256_loadu_ps(s.add(i * 4).cast::<f32>());
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(d.add(i * 2).cast::<__m128i>(), h);
            }
            i += 8;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_row;

    /// Every pair must give the bytes of decode-to-f32 + quantize_row.
    fn reference(from: DType, to: GgmlType, src: &[u8]) -> Vec<u8> {
        let n = src.len() / from.size();
        let mut f = vec![0f32; n];
        match from {
            DType::F32 => super::super::float::f32_bytes_to_f32(src, &mut f),
            DType::F16 => super::super::float::f16_bytes_to_f32(src, &mut f),
            DType::BF16 => super::super::float::bf16_bytes_to_f32(src, &mut f),
            _ => unreachable!(),
        }
        let mut out = vec![0u8; n * if to == GgmlType::F32 { 4 } else { 2 }];
        quantize_row(to, &f, &mut out);
        out
    }

    #[test]
    fn direct_conversions_match_decode_then_encode() {
        // Every bf16 bit pattern (NaNs, infinities, subnormals, ties), and f32 patterns that
        // exercise f16 rounding, overflow and subnormals; odd lengths exercise the tails.
        let bf16: Vec<u8> = (0..=u16::MAX).flat_map(|w| w.to_le_bytes()).collect();
        let mut f32s: Vec<u8> = Vec::new();
        for bits in (0u32..=u32::MAX).step_by(40_009) {
            f32s.extend(bits.to_le_bytes());
        }
        for x in [
            65504.0f32,
            65520.0,
            5.960_464_5e-8,
            2.980_232_2e-8,
            1.0 + 1.0 / 2048.0,
        ] {
            f32s.extend(x.to_le_bytes());
            f32s.extend((-x).to_le_bytes());
        }
        let f16: Vec<u8> = (0..=u16::MAX)
            .filter(|w| (w & 0x7fff) <= 0x7c00)
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let cases = [
            (DType::BF16, GgmlType::BF16, &bf16),
            (DType::BF16, GgmlType::F16, &bf16),
            (DType::BF16, GgmlType::F32, &bf16),
            (DType::F32, GgmlType::F16, &f32s),
            (DType::F32, GgmlType::BF16, &f32s),
            (DType::F32, GgmlType::F32, &f32s),
            (DType::F16, GgmlType::F16, &f16),
        ];
        for (from, to, src) in cases {
            for cut in [0, 1, 7] {
                let src = &src[..src.len() - cut * from.size()];
                let want = reference(from, to, src);
                let mut got = vec![0xAAu8; want.len()];
                assert!(convert_run(from, to, src, &mut got), "{from:?} → {to:?}");
                assert!(got == want, "{from:?} → {to:?} differs (cut {cut})");
            }
        }
    }

    #[test]
    fn unsupported_pairs_and_bad_lengths_are_refused() {
        let mut dst = [0u8; 34];
        assert!(!convert_run(
            DType::BF16,
            GgmlType::Q8_0,
            &[0; 64],
            &mut dst
        ));
        assert!(!convert_run(
            DType::I64,
            GgmlType::F32,
            &[0; 8],
            &mut [0; 4]
        ));
        assert!(!convert_run(
            DType::BF16,
            GgmlType::F16,
            &[0; 8],
            &mut [0; 6]
        ));
    }
}
