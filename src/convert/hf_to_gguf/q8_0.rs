//! Q8_0 block quantization, bit-identical to ggml's `quantize_row_q8_0_ref` (notes §4.2).
//!
//! TODO: call `crate::quant`'s Q8_0 once the quantizer branch is merged (the lead will dedupe).

use half::f16;

/// Elements per block.
pub const QK: usize = 32;
/// Bytes per block: f16 scale + 32 × i8.
pub const BLOCK_BYTES: usize = 34;

/// Quantizes `x` (a multiple of 32 elements) into `out` (`x.len() / 32 * 34` bytes).
pub fn quantize(x: &[f32], out: &mut [u8]) {
    for (block, dst) in x.chunks_exact(QK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut amax = 0.0f32;
        for &v in block {
            let a = v.abs();
            // MAX(a, b) = a > b ? a : b, so a NaN never wins.
            if a > amax {
                amax = a;
            }
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        dst[..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        for (q, &v) in dst[2..].iter_mut().zip(block) {
            // roundf: half away from zero; the float → i8 cast saturates like the C conversion
            // does for in-range values.
            *q = (v * id).round() as i8 as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_block_has_zero_scale_and_values() {
        let mut out = [0xAAu8; BLOCK_BYTES];
        quantize(&[0.0; QK], &mut out);
        assert!(out.iter().all(|&b| b == 0));
    }

    #[test]
    fn max_maps_to_127_and_ties_round_away_from_zero() {
        let mut x = [0.0f32; QK];
        x[0] = 127.0;
        x[1] = -63.5;
        x[2] = 0.5;
        let mut out = [0u8; BLOCK_BYTES];
        quantize(&x, &mut out);
        assert_eq!(
            f16::from_bits(u16::from_le_bytes([out[0], out[1]])).to_f32(),
            1.0
        );
        assert_eq!(out[2] as i8, 127);
        assert_eq!(out[3] as i8, -64);
        assert_eq!(out[4] as i8, 1);
    }
}
