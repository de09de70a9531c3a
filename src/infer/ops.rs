//! Element-wise and row-wise kernels of the forward pass, written to follow ggml's CPU ops
//! (`ggml-cpu/ops.cpp`, `vec.h`): sums of squares in f64, the scale as `1/sqrtf(...)` in f32,
//! RoPE angles by repeated multiplication by `theta_scale` like `ggml_rope_cache_init`.

use half::f16;

/// Layer normalisation of one row in place: `(x - mean) / sqrt(var + eps) * w + b`.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let n = x.len() as f64;
    let mean = (x.iter().map(|&v| v as f64).sum::<f64>() / n) as f32;
    let mut var = 0f64;
    for v in x.iter_mut() {
        *v -= mean;
        var += (*v * *v) as f64;
    }
    let scale = 1.0f32 / ((var / n) as f32 + eps).sqrt();
    match b {
        Some(b) => {
            for ((v, &w), &b) in x.iter_mut().zip(w).zip(b) {
                *v = *v * scale * w + b;
            }
        }
        None => {
            for (v, &w) in x.iter_mut().zip(w) {
                *v = *v * scale * w;
            }
        }
    }
}

/// RMS normalisation of one row in place: `x / sqrt(mean(x²) + eps) * w (+ b)`.
pub fn rms_norm(x: &mut [f32], w: &[f32], b: Option<&[f32]>, eps: f32) {
    let n = x.len() as f64;
    let ss = x.iter().map(|&v| (v * v) as f64).sum::<f64>();
    let scale = 1.0f32 / ((ss / n) as f32 + eps).sqrt();
    for (v, &w) in x.iter_mut().zip(w) {
        *v = *v * scale * w;
    }
    if let Some(b) = b {
        for (v, &b) in x.iter_mut().zip(b) {
            *v += b;
        }
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044715;

/// GELU, tanh approximation (HF `gelu_new`, PyTorch `approximate="tanh"`).
#[inline]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

/// GELU as ggml's CPU backend computes it: the input rounded to f16, looked up in a table of
/// f16 results (`GGML_GELU_FP16`), identity above 10 and zero below -10. Only used to reproduce
/// llama.cpp bit-for-bit in conformance runs; it costs ~1e-3 relative accuracy.
#[inline]
pub fn gelu_ggml(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        let h = f16::from_f32(x).to_f32();
        f16::from_f32(gelu_tanh(h)).to_f32()
    }
}

/// SiLU: `x * sigmoid(x)` as ggml computes it (`x / (1 + exp(-x))`).
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Softmax of one row in place (max-subtracted, sum in f64). `-inf` entries become 0.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = if *v == f32::NEG_INFINITY {
            0.0
        } else {
            (*v - max).exp()
        };
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Which element pairs RoPE rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RopeMode {
    /// Adjacent pairs `(x[2i], x[2i+1])`: the original Meta layout (`LLAMA_ROPE_TYPE_NORM`).
    Normal,
    /// Halves `(x[i], x[i + n_rot/2])`: GPT-NeoX / HF `rotate_half` (`LLAMA_ROPE_TYPE_NEOX`).
    Neox,
}

/// Precomputed cos/sin of every rotary pair for one position.
pub struct RopeTable {
    /// `n_rot / 2` cosines.
    pub cos: Vec<f32>,
    /// `n_rot / 2` sines.
    pub sin: Vec<f32>,
}

/// RoPE angles for position `pos` like `ggml_rope_cache_init` without YaRN: `theta_i =
/// pos * freq_scale * base^(-2i/n_rot) / factor_i`, the power built by repeated multiplication.
pub fn rope_table(
    pos: usize,
    n_rot: usize,
    freq_base: f32,
    freq_scale: f32,
    factors: Option<&[f32]>,
) -> RopeTable {
    let theta_scale = freq_base.powf(-2.0 / n_rot as f32);
    let mut theta = pos as f32;
    let half = n_rot / 2;
    let mut cos = Vec::with_capacity(half);
    let mut sin = Vec::with_capacity(half);
    for i in 0..half {
        let ff = factors.map_or(1.0, |f| f[i]);
        let t = freq_scale * (theta / ff);
        cos.push(t.cos());
        sin.push(t.sin());
        theta *= theta_scale;
    }
    RopeTable { cos, sin }
}

/// Rotates the first `n_rot` values of one head in place.
pub fn rope_apply(x: &mut [f32], t: &RopeTable, mode: RopeMode) {
    let half = t.cos.len();
    match mode {
        RopeMode::Normal => {
            for i in 0..half {
                let (a, b) = (x[2 * i], x[2 * i + 1]);
                x[2 * i] = a * t.cos[i] - b * t.sin[i];
                x[2 * i + 1] = a * t.sin[i] + b * t.cos[i];
            }
        }
        RopeMode::Neox => {
            for i in 0..half {
                let (a, b) = (x[i], x[i + half]);
                x[i] = a * t.cos[i] - b * t.sin[i];
                x[i + half] = a * t.sin[i] + b * t.cos[i];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norms_match_definitions() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], Some(&[0.5; 4]), 0.0);
        let want = [-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8];
        for (a, b) in x.iter().zip(want) {
            assert!((a - (b + 0.5)).abs() < 1e-6, "{a} vs {b}");
        }
        let mut y = vec![3.0, 4.0];
        rms_norm(&mut y, &[2.0, 1.0], None, 0.0);
        let r = (12.5f32).sqrt();
        assert!((y[0] - 6.0 / r).abs() < 1e-6 && (y[1] - 4.0 / r).abs() < 1e-6);
    }

    #[test]
    fn softmax_ignores_masked_entries() {
        let mut x = vec![0.0, f32::NEG_INFINITY, 0.0];
        softmax(&mut x);
        assert_eq!(x, vec![0.5, 0.0, 0.5]);
    }

    #[test]
    fn rope_modes_rotate_different_pairs() {
        let t = rope_table(1, 4, 10000.0, 1.0, None);
        let mut a = vec![1.0, 0.0, 1.0, 0.0];
        rope_apply(&mut a, &t, RopeMode::Normal);
        assert!((a[0] - 1f32.cos()).abs() < 1e-6 && (a[1] - 1f32.sin()).abs() < 1e-6);
        let mut b = vec![1.0, 1.0, 0.0, 0.0];
        rope_apply(&mut b, &t, RopeMode::Neox);
        assert!((b[0] - 1f32.cos()).abs() < 1e-6 && (b[2] - 1f32.sin()).abs() < 1e-6);
        // The second pair turns 100x slower (base^(-2/4) = 0.01).
        assert!((b[3] - 0.01f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn ggml_gelu_is_close_to_exact() {
        for i in -200..200 {
            let x = i as f32 * 0.07;
            assert!((gelu_ggml(x) - gelu_tanh(x)).abs() < 2e-2 * (1.0 + x.abs()));
        }
    }
}
