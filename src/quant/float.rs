//! Float helpers shared by every quantizer: fp16/bf16 conversion and ggml's integer rounding.
//!
//! Everything here is IEEE binary32 arithmetic with no fused multiply-add, matching ggml's x86-64
//! reference build (`docs/quantization.md`).

use half::f16;
use half::slice::HalfFloatSliceExt;

/// f32 → fp16 bits, round to nearest even (ggml's `GGML_FP32_TO_FP16` for finite inputs).
#[inline(always)]
pub fn fp16(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// fp16 bits → f32 (exact).
#[inline(always)]
pub fn f16v(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// f32 → bf16 bits exactly as ggml's `ggml_compute_fp32_to_bf16`: RNE, NaNs forced quiet.
#[inline(always)]
pub fn bf16_from_f32(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// ggml's `nearest_int`: round half to even through the 1.5·2^23 bit trick.
///
/// Exact for |x| ≤ 4194303; larger inputs give the same garbage as the reference.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0f32;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// C's `roundf`: half away from zero. Exact for |x| < 2^23, which covers every use here.
#[inline(always)]
pub fn roundf(x: f32) -> f32 {
    x.round()
}

/// C's conversion of a float to a narrow integer on x86-64: truncate toward zero to 32 bits,
/// then keep the low byte.
#[inline(always)]
pub fn trunc_i8(x: f32) -> i8 {
    (x as i32) as i8
}

/// Decodes little-endian fp16 bytes into `out` (`src.len() == 2 * out.len()`).
pub fn f16_bytes_to_f32(src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(src.len(), out.len() * 2);
    let mut buf = [f16::ZERO; 256];
    for (s, o) in src.chunks(512).zip(out.chunks_mut(256)) {
        let n = o.len();
        for (h, b) in buf[..n].iter_mut().zip(s.chunks_exact(2)) {
            *h = f16::from_bits(u16::from_le_bytes([b[0], b[1]]));
        }
        buf[..n].convert_to_f32_slice(o);
    }
}

/// Decodes little-endian bf16 bytes into `out`.
pub fn bf16_bytes_to_f32(src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(src.len(), out.len() * 2);
    for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
        *o = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// Decodes little-endian f32 bytes into `out`.
pub fn f32_bytes_to_f32(src: &[u8], out: &mut [f32]) {
    debug_assert_eq!(src.len(), out.len() * 4);
    for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Encodes `src` as little-endian fp16 (RNE).
pub fn f32_to_f16_bytes(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), src.len() * 2);
    let mut buf = [f16::ZERO; 256];
    for (s, d) in src.chunks(256).zip(dst.chunks_mut(512)) {
        let n = s.len();
        buf[..n].convert_from_f32_slice(s);
        for (h, b) in buf[..n].iter().zip(d.chunks_exact_mut(2)) {
            b.copy_from_slice(&h.to_bits().to_le_bytes());
        }
    }
}

/// Encodes `src` as little-endian bf16 with ggml's rounding.
pub fn f32_to_bf16_bytes(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), src.len() * 2);
    for (s, b) in src.iter().zip(dst.chunks_exact_mut(2)) {
        b.copy_from_slice(&bf16_from_f32(*s).to_le_bytes());
    }
}

/// Encodes `src` as little-endian f32.
pub fn f32_to_f32_bytes(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), src.len() * 4);
    for (s, b) in src.iter().zip(dst.chunks_exact_mut(4)) {
        b.copy_from_slice(&s.to_le_bytes());
    }
}

/// `half`'s bf16 agrees with ggml for finite values; kept for tests that cross-check.
#[cfg(test)]
pub(crate) fn bf16_via_half(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.4999998), -2);
        assert_eq!(nearest_int(4194303.0), 4194303);
        assert_eq!(nearest_int(-4194303.0), -4194303);
        for i in -1000..1000 {
            let x = i as f32 * 0.37;
            assert_eq!(nearest_int(x), x.round_ties_even() as i32, "{x}");
        }
    }

    #[test]
    fn roundf_is_half_away_from_zero() {
        assert_eq!(roundf(0.5), 1.0);
        assert_eq!(roundf(-0.5), -1.0);
        assert_eq!(roundf(2.5), 3.0);
        assert_eq!(roundf(0.49999997), 0.0);
    }

    #[test]
    fn trunc_i8_truncates_toward_zero() {
        assert_eq!(trunc_i8(8.99), 8);
        assert_eq!(trunc_i8(-0.99), 0);
        assert_eq!(trunc_i8(-1.5), -1);
    }

    #[test]
    fn bf16_matches_rne_and_quiets_nan() {
        for bits in (0u32..=0xffff_ffff).step_by(65_521) {
            let x = f32::from_bits(bits);
            if x.is_nan() {
                assert_eq!(bf16_from_f32(x), ((bits >> 16) | 64) as u16);
            } else {
                assert_eq!(bf16_from_f32(x), bf16_via_half(x), "{bits:#x}");
            }
        }
        // Ties go to even.
        assert_eq!(bf16_from_f32(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16_from_f32(f32::from_bits(0x3f81_8000)), 0x3f82);
    }

    #[test]
    fn fp16_rne_including_subnormals_and_overflow() {
        assert_eq!(fp16(1.0), 0x3c00);
        assert_eq!(fp16(65504.0), 0x7bff);
        assert_eq!(fp16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(fp16(-1e9), 0xfc00);
        assert_eq!(fp16(5.960_464_5e-8), 0x0001); // smallest subnormal
        assert_eq!(fp16(2.980_232_2e-8), 0x0000); // exactly half of it: tie to even
        assert_eq!(fp16(1.0 + 1.0 / 2048.0), 0x3c00); // tie to even (down)
        assert_eq!(fp16(1.0 + 3.0 / 2048.0), 0x3c02); // tie to even (up)
        for h in 0..=0x7bffu16 {
            assert_eq!(fp16(f16v(h)), h);
            assert_eq!(fp16(-f16v(h)), h | 0x8000);
        }
    }

    #[test]
    fn row_conversions_round_trip() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let mut b = vec![0u8; xs.len() * 2];
        let mut back = vec![0f32; xs.len()];
        f32_to_f16_bytes(&xs, &mut b);
        f16_bytes_to_f32(&b, &mut back);
        for (x, y) in xs.iter().zip(&back) {
            assert_eq!(*y, f16v(fp16(*x)));
        }
        f32_to_bf16_bytes(&xs, &mut b);
        bf16_bytes_to_f32(&b, &mut back);
        for (x, y) in xs.iter().zip(&back) {
            assert_eq!(*y, bf16_to_f32(bf16_from_f32(*x)));
        }
        let mut b4 = vec![0u8; xs.len() * 4];
        f32_to_f32_bytes(&xs, &mut b4);
        f32_bytes_to_f32(&b4, &mut back);
        assert_eq!(xs, back);
    }
}
