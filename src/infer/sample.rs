//! Picking the next token: greedy (llama.cpp's greedy sampler: the first maximum) or plain
//! temperature sampling with a seeded generator (reproducible for a given seed).

/// How to pick tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (first on ties), like `--temp 0`.
    Greedy,
    /// Sample from `softmax(logits / temp)`.
    Temperature {
        /// Temperature (> 0).
        temp: f32,
        /// Seed of the generator.
        seed: u64,
    },
}

/// A token picker.
pub struct Sampler {
    mode: Sampling,
    state: u64,
}

impl Sampler {
    /// A sampler in `mode`.
    pub fn new(mode: Sampling) -> Sampler {
        let state = match mode {
            Sampling::Temperature { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        Sampler { mode, state }
    }

    /// SplitMix64: small, fast and well distributed; exact reproducibility matters here, not
    /// cryptographic quality.
    fn next_f64(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks a token from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self.mode {
            Sampling::Greedy => argmax(logits) as u32,
            Sampling::Temperature { temp, .. } => {
                let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let w: Vec<f64> = logits
                    .iter()
                    .map(|&l| (((l - max) / temp) as f64).exp())
                    .collect();
                let total: f64 = w.iter().sum();
                let mut r = self.next_f64() * total;
                for (i, &x) in w.iter().enumerate() {
                    if r < x {
                        return i as u32;
                    }
                    r -= x;
                }
                (w.len() - 1) as u32
            }
        }
    }
}

/// Index of the first maximum.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Difference between the two largest logits (how close a greedy choice was to a tie).
pub fn top2_gap(x: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in x {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum_and_sampling_is_seeded() {
        assert_eq!(Sampler::new(Sampling::Greedy).sample(&[1.0, 3.0, 3.0]), 1);
        let logits = [0.0, 1.0, 2.0, 0.5];
        let draw = |seed| {
            let mut s = Sampler::new(Sampling::Temperature { temp: 1.0, seed });
            (0..50).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        // The likeliest token is drawn most often.
        let d = draw(3);
        let count = |t| d.iter().filter(|&&x| x == t).count();
        assert!(count(2) > count(0));
        assert!((top2_gap(&[1.0, 4.0, 3.5]) - 0.5).abs() < 1e-6);
    }
}
