//! Block-level tests: byte round trips, error bounds on random and adversarial data, and the
//! fast row kernels against the scalar reference ports.

use super::block::{Block, dequantize_row, quantize_row, quantize_row_reference};
use super::q2k::BlockQ2K;
use super::q3k::BlockQ3K;
use super::q4::{BlockQ4_0, BlockQ4_1};
use super::q4k::BlockQ4K;
use super::q5::{BlockQ5_0, BlockQ5_1};
use super::q5k::BlockQ5K;
use super::q6k::BlockQ6K;
use super::q8::BlockQ8_0;
use crate::formats::gguf::GgmlType;

/// Deterministic test data of several shapes, `n` values each (a multiple of 256).
pub(crate) fn corpus(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut sets = Vec::new();
    let gauss = |rng: &mut fastrand::Rng| -> f32 { (0..6).map(|_| rng.f32()).sum::<f32>() - 3.0 };
    sets.push((0..n).map(|_| rng.f32() * 2.0 - 1.0).collect());
    sets.push((0..n).map(|_| gauss(&mut rng) * 0.02).collect());
    sets.push(
        (0..n)
            .map(|i| {
                let g = gauss(&mut rng) * 0.05;
                if i % 97 == 13 { g * 40.0 } else { g }
            })
            .collect(),
    );
    sets.push(vec![0.0; n]);
    sets.push(vec![0.25; n]);
    sets.push((0..n).map(|_| -rng.f32() - 0.1).collect());
    sets.push((0..n).map(|_| rng.f32() + 0.1).collect());
    sets.push((0..n).map(|_| gauss(&mut rng) * 1e-6).collect());
    sets.push((0..n).map(|_| gauss(&mut rng) * 3e-8).collect()); // fp16-subnormal range
    sets.push((0..n).map(|_| (rng.i32(-16..=16) as f32) * 0.5).collect()); // ties
    sets.push(
        (0..n)
            .map(|i| if i % 16 < 8 { 0.0 } else { gauss(&mut rng) })
            .collect(),
    ); // half-zero sub-blocks
    sets.push((0..n).map(|_| gauss(&mut rng) * 1000.0).collect());
    sets
}

fn round_trip<B: Block>(x: &[f32]) {
    for chunk in x.chunks_exact(B::ELEMS) {
        let b = B::quantize(chunk);
        let mut bytes = vec![0u8; B::BYTES];
        b.write(&mut bytes);
        let back = B::read(&bytes);
        assert_eq!(b, back, "{:?}", B::TYPE);
        let mut bytes2 = vec![0u8; B::BYTES];
        back.write(&mut bytes2);
        assert_eq!(bytes, bytes2);
    }
}

#[test]
fn block_structs_round_trip_through_bytes() {
    for x in corpus(1024, 1) {
        round_trip::<BlockQ4_0>(&x);
        round_trip::<BlockQ4_1>(&x);
        round_trip::<BlockQ5_0>(&x);
        round_trip::<BlockQ5_1>(&x);
        round_trip::<BlockQ8_0>(&x);
        round_trip::<BlockQ2K>(&x);
        round_trip::<BlockQ3K>(&x);
        round_trip::<BlockQ4K>(&x);
        round_trip::<BlockQ5K>(&x);
        round_trip::<BlockQ6K>(&x);
    }
}

#[test]
fn random_bytes_parse_and_reserialise_identically() {
    fn check<B: Block>(rng: &mut fastrand::Rng) {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..B::BYTES).map(|_| rng.u8(..)).collect();
            let mut out = vec![0u8; B::BYTES];
            B::read(&bytes).write(&mut out);
            assert_eq!(bytes, out, "{:?}", B::TYPE);
        }
    }
    let mut rng = fastrand::Rng::with_seed(7);
    check::<BlockQ4_0>(&mut rng);
    check::<BlockQ4_1>(&mut rng);
    check::<BlockQ5_0>(&mut rng);
    check::<BlockQ5_1>(&mut rng);
    check::<BlockQ8_0>(&mut rng);
    check::<BlockQ2K>(&mut rng);
    check::<BlockQ3K>(&mut rng);
    check::<BlockQ4K>(&mut rng);
    check::<BlockQ5K>(&mut rng);
    check::<BlockQ6K>(&mut rng);
}

/// Largest error allowed for one block, as a multiple of the block's value range divided by the
/// number of quantization steps, plus the fp16 rounding of the stored minimum.
fn bound(t: GgmlType, x: &[f32]) -> f32 {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let (mn, mx) = x
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let range = mx - mn.min(0.0);
    // Relative fp16 rounding of the scales, plus their absolute resolution near subnormals
    // (2^-25) times the largest quant.
    let fp16_slack = amax * 2e-3 + 128.0 * 3e-8;
    // K-quants multiply the fp16 super-scale by a 6/8-bit sub-scale and the quant.
    let k_slack = amax * 2e-3 + 4096.0 * 3e-8;
    match t {
        // Symmetric types: one step of amax/levels (the clamp at the far end costs one step).
        GgmlType::Q8_0 => 0.6 * amax / 127.0 + fp16_slack,
        GgmlType::Q4_0 => 1.01 * amax / 8.0 + fp16_slack,
        GgmlType::Q5_0 => 1.01 * amax / 16.0 + fp16_slack,
        // Min/scale types: half a step, plus the stored min's rounding.
        GgmlType::Q4_1 => 0.55 * (mx - mn) / 15.0 + fp16_slack,
        GgmlType::Q5_1 => 0.55 * (mx - mn) / 31.0 + fp16_slack,
        // K-quants: scales are themselves quantized relative to the block's largest, so a
        // sub-block can lose up to about a step of the super-block; the 4/6-bit mins add half a
        // step of the largest min.
        GgmlType::Q2K => range / 3.0 + amax / 15.0 + k_slack,
        GgmlType::Q3K => 1.0 * amax / 4.0 + k_slack,
        GgmlType::Q4K => range / 15.0 + amax / 63.0 + k_slack,
        GgmlType::Q5K => range / 31.0 + amax / 63.0 + k_slack,
        GgmlType::Q6K => 1.0 * amax / 32.0 + k_slack,
        _ => 0.0,
    }
}

const QUANT_TYPES: [GgmlType; 10] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
];

#[test]
fn dequantized_error_stays_within_each_formats_bound() {
    for (si, x) in corpus(4096, 2).iter().enumerate() {
        for t in QUANT_TYPES {
            let bs = t.block_size() as usize;
            let mut q = vec![0u8; t.bytes_for(x.len() as u64).unwrap() as usize];
            assert!(quantize_row(t, x, &mut q));
            let mut y = vec![0f32; x.len()];
            assert!(dequantize_row(t, &q, &mut y));
            for (b, (xb, yb)) in x.chunks(bs).zip(y.chunks(bs)).enumerate() {
                let lim = bound(t, xb);
                for (i, (a, c)) in xb.iter().zip(yb).enumerate() {
                    assert!(
                        (a - c).abs() <= lim,
                        "{t} set {si} block {b} elem {i}: {a} -> {c} (err {} > {lim})",
                        (a - c).abs()
                    );
                }
            }
        }
    }
}

#[test]
fn zero_blocks_decode_to_zero_and_constant_blocks_are_close() {
    let zeros = vec![0.0f32; 256];
    for t in QUANT_TYPES {
        let mut q = vec![0u8; t.bytes_for(256).unwrap() as usize];
        quantize_row(t, &zeros, &mut q);
        let mut y = vec![1f32; 256];
        dequantize_row(t, &q, &mut y);
        assert!(y.iter().all(|v| *v == 0.0), "{t}");
    }
    // Q6_K writes an all-zero block for an all-zero input.
    let mut q = vec![1u8; 210];
    quantize_row(GgmlType::Q6K, &zeros, &mut q);
    assert!(q.iter().all(|b| *b == 0));
}

/// One row encoded by the dispatching fast path and by the scalar reference quantizers.
fn fast_and_reference(t: GgmlType, x: &[f32]) -> (Vec<u8>, Vec<u8>) {
    let n = t.bytes_for(x.len() as u64).unwrap() as usize;
    let mut fast = vec![0u8; n];
    let mut reference = vec![0u8; n];
    quantize_row(t, x, &mut fast);
    quantize_row_reference(t, x, &mut reference);
    (fast, reference)
}

/// The IQ and TQ types that quantize without an importance matrix.
const UNWEIGHTED_IQ_TYPES: [GgmlType; 8] = [
    GgmlType::IQ4NL,
    GgmlType::IQ4XS,
    GgmlType::IQ3XXS,
    GgmlType::IQ3S,
    GgmlType::IQ2S,
    GgmlType::IQ1M,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
];

#[test]
fn fast_row_kernels_match_the_scalar_reference() {
    for x in corpus(4096, 3) {
        for t in QUANT_TYPES.into_iter().chain(UNWEIGHTED_IQ_TYPES) {
            let (fast, reference) = fast_and_reference(t, &x);
            assert!(
                fast == reference,
                "{t}: fast path differs from the reference"
            );
        }
    }
}

#[test]
fn known_q8_0_and_q4_0_blocks() {
    // One block 0, 1, ..., 31: amax 31, d = 31/127.
    let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
    let b = BlockQ8_0::quantize(&x);
    assert_eq!(b.d, super::float::fp16(31.0 / 127.0));
    assert_eq!(b.qs[31], 127);
    assert_eq!(b.qs[1], 4); // 1 * 127/31 = 4.097
    assert_eq!(b.qs[0], 0);
    // Q4_0: max = 31 (positive), d = -31/8; 31 maps to 0, 0 maps to 8.
    let b = BlockQ4_0::quantize(&x);
    assert_eq!(b.d, super::float::fp16(-31.0 / 8.0));
    assert_eq!(b.qs[0] & 0xf, 8);
    assert_eq!(b.qs[15] >> 4, 0);
}

/// Super-blocks whose sub-blocks differ wildly (scale, offset, zero, constant), so the lanes of
/// the SIMD kernels take different branches within one super-block.
fn divergent_superblocks(n_blocks: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut x = Vec::with_capacity(n_blocks * 256);
    for _ in 0..n_blocks * 16 {
        let kind = rng.u32(0..10);
        let scale = 10f32.powf(rng.f32() * 8.0 - 6.0);
        let offset = if rng.bool() {
            (rng.f32() - 0.5) * scale * 4.0
        } else {
            0.0
        };
        for _ in 0..16 {
            let v = match kind {
                0 => 0.0,
                1 => offset,
                2 => (rng.i32(-4..=4) as f32) * 0.5 * scale,
                3 => -(rng.f32() * scale),
                _ => (rng.f32() - 0.5) * scale + offset,
            };
            x.push(v);
        }
    }
    x
}

#[test]
fn lane_parallel_kernels_match_the_scalar_reference_on_divergent_blocks() {
    for seed in 0..2 {
        let x = divergent_superblocks(300, seed);
        for t in QUANT_TYPES {
            let (fast, reference) = fast_and_reference(t, &x);
            let bs = t.type_size() as usize;
            if let Some(i) = fast.iter().zip(&reference).position(|(a, b)| a != b) {
                panic!("{t} seed {seed}: block {} differs", i / bs);
            }
        }
    }
}

#[test]
fn q8_0_rounds_exact_ties_away_from_zero_on_every_path() {
    // amax 127 gives d = 1 and id = 1, so every x·id is exactly the input: .5 ties everywhere.
    let mut x: Vec<f32> = (0..32).map(|i| (i as f32 - 16.0) * 4.0 + 0.5).collect();
    x[0] = 127.0;
    x[1] = -126.5;
    x[2] = -0.5;
    x[3] = 0.5;
    x[4] = -0.0;
    let mut fast = vec![0u8; 34];
    let mut reference = vec![0u8; 34];
    quantize_row(GgmlType::Q8_0, &x, &mut fast);
    quantize_row_reference(GgmlType::Q8_0, &x, &mut reference);
    assert_eq!(fast, reference);
    let q: Vec<i8> = fast[2..].iter().map(|&b| b as i8).collect();
    assert_eq!(&q[..5], &[127, -127, -1, 1, 0]);
    assert_eq!(q[5], ((5.0f32 - 16.0) * 4.0 + 0.5).round() as i8);
}

/// Importance weights for `n` columns: log-spread, some zero, one huge.
fn importances(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| match i % 37 {
            5 => 0.0,
            11 => 4e4,
            _ => 10f32.powf(rng.f32() * 6.0 - 4.0),
        })
        .collect()
}

#[test]
fn weighted_fast_paths_match_the_scalar_ports() {
    use super::block::{quantize_rows_weighted, quantize_rows_weighted_reference};
    use GgmlType::*;
    for t in [
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, IQ4NL, IQ4XS, IQ3XXS, IQ3S, IQ2XXS,
        IQ2XS, IQ2S, IQ1S, IQ1M, TQ1_0, TQ2_0,
    ] {
        // 288-value rows leave a partial lane group for the 32-value types.
        let n_per_row = if t.block_size() == 32 { 288 } else { 512 };
        for (k, x) in corpus(n_per_row * 4, 7).iter().enumerate() {
            let qw = importances(n_per_row, k as u64);
            let bytes = t.bytes_for(x.len() as u64).unwrap() as usize;
            let mut fast = vec![0u8; bytes];
            let mut slow = vec![0u8; bytes];
            assert!(quantize_rows_weighted(t, x, &qw, &mut fast));
            assert!(quantize_rows_weighted_reference(t, x, &qw, &mut slow));
            if let Some(i) = fast.iter().zip(&slow).position(|(a, b)| a != b) {
                panic!("{t} data set {k}: fast path differs at byte {i}");
            }
        }
    }
}
