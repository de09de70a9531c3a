//! Perplexity and KL-divergence exactly as `llama-perplexity` computes them: the text is
//! tokenized once (BOS if the model adds one), cut into `n_ctx`-token chunks, each chunk's
//! first token replaced by BOS when the model adds one, and only the second half of each
//! chunk scored (`first = n_ctx / 2`; row `first + i` predicts token `first + i + 1`).

use std::time::Instant;

use serde::Serialize;

use super::InferError;
use super::model::{Model, Numerics};
use super::tokenizer::Tokenizer;

/// How to cut and run the text.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    /// Chunk (context) size in tokens (`--ctx`, default 512).
    pub n_ctx: usize,
    /// Evaluate at most this many chunks (`--chunks`); all that fit when `None`.
    pub max_chunks: Option<usize>,
    /// Numerics of the forward pass.
    pub numerics: Numerics,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            n_ctx: 512,
            max_chunks: None,
            numerics: Numerics::default(),
        }
    }
}

/// KL-divergence of a model against a base, over the scored tokens.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KldStats {
    /// Perplexity of the base model.
    pub ppl_base: f64,
    /// Mean of `ln PPL(model) - ln PPL(base)`.
    pub ln_ppl_ratio: f64,
    /// Mean KL(base ‖ model).
    pub mean: f64,
    /// Its standard error.
    pub mean_uncertainty: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest value.
    pub max: f64,
    /// Fraction of positions where both models' top token is the same.
    pub same_top: f64,
    /// Root mean square of the change in the probability of the right token.
    pub rms_dp: f64,
}

/// The result of [`perplexity`] or [`kl_divergence`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalReport {
    /// Chunk size.
    pub n_ctx: usize,
    /// Chunks evaluated.
    pub n_chunks: usize,
    /// Tokens in the whole text.
    pub n_text_tokens: usize,
    /// Positions scored.
    pub n_scored: usize,
    /// Perplexity.
    pub ppl: f64,
    /// Its standard error (`ppl · σ(nll)/√(n-1)`, like llama-perplexity's ±).
    pub ppl_uncertainty: f64,
    /// Against the base model, when one was given.
    pub kld: Option<KldStats>,
    /// Wall time of the forward passes.
    pub seconds: f64,
    /// Tokens run through the model(s) per second.
    pub tokens_per_second: f64,
}

/// Tokens of `text` as llama-perplexity gets them (`common_tokenize(text, add_special=true,
/// parse_special=false)`).
pub fn tokenize(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, true, false)
}

/// Checks the text is long enough and returns the number of chunks to run.
pub fn plan_chunks(n_tokens: usize, opts: &EvalOptions) -> Result<usize, InferError> {
    if opts.n_ctx < 4 {
        return Err(InferError::Input(format!(
            "--ctx {} is too small (at least 4)",
            opts.n_ctx
        )));
    }
    if n_tokens < 2 * opts.n_ctx {
        return Err(InferError::Input(format!(
            "the text has {n_tokens} tokens; evaluating with a context of {} needs at least {} \
             (two chunks, like llama-perplexity): use a longer text or a smaller --ctx",
            opts.n_ctx,
            2 * opts.n_ctx
        )));
    }
    let max = n_tokens / opts.n_ctx;
    Ok(opts.max_chunks.map_or(max, |c| c.min(max)).max(1))
}

/// `log p(tok)` terms of one logits row: returns (nll, argmax, log-sum-exp incl. max).
fn log_softmax_row(row: &[f32], tok: usize) -> (f64, usize, f32) {
    let (mut imax, mut max) = (0, row[0]);
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > max {
            max = v;
            imax = i;
        }
    }
    let sum: f64 = row.iter().map(|&v| (v - max).exp() as f64).sum();
    let lse = max + (sum.ln() as f32);
    ((lse - row[tok]) as f64, imax, lse)
}

fn chunk_input(tokens: &[u32], start: usize, n_ctx: usize, bos: Option<u32>) -> Vec<u32> {
    let mut c = tokens[start..start + n_ctx].to_vec();
    if let Some(b) = bos {
        c[0] = b;
    }
    c
}

fn mean_unc(sum: f64, sum2: f64, n: usize) -> (f64, f64) {
    let m = sum / n as f64;
    let var = sum2 / n as f64 - m * m;
    let unc = if n > 1 && var > 0.0 {
        (var / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    (m, unc)
}

/// Perplexity of `model` on `tokens` (from [`tokenize`]); `bos` is the token that replaces
/// each chunk's first one when the model adds BOS. `progress` gets the tokens done so far.
pub fn perplexity(
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport, InferError> {
    let n_chunks = plan_chunks(tokens.len(), opts)?;
    let n_ctx = opts.n_ctx;
    let first = n_ctx / 2;
    let nv = model.config.n_vocab;
    let t0 = Instant::now();
    let mut session = model.session_with(n_ctx, opts.numerics);
    let (mut nll, mut nll2, mut count) = (0f64, 0f64, 0usize);
    for c in 0..n_chunks {
        let start = c * n_ctx;
        session.clear();
        let logits = session.eval(&chunk_input(tokens, start, n_ctx, bos), first)?;
        for i in 0..n_ctx - 1 - first {
            let tok = tokens[start + first + 1 + i] as usize;
            let (v, _, _) = log_softmax_row(&logits[i * nv..(i + 1) * nv], tok);
            nll += v;
            nll2 += v * v;
            count += 1;
        }
        progress((c + 1) * n_ctx);
    }
    let secs = t0.elapsed().as_secs_f64();
    let (m, unc) = mean_unc(nll, nll2, count);
    let ppl = m.exp();
    Ok(EvalReport {
        n_ctx,
        n_chunks,
        n_text_tokens: tokens.len(),
        n_scored: count,
        ppl,
        ppl_uncertainty: ppl * unc,
        kld: None,
        seconds: secs,
        tokens_per_second: (n_chunks * n_ctx) as f64 / secs,
    })
}

/// Checks two models can be compared token for token.
pub fn check_same_vocab(
    base: &Tokenizer,
    base_name: &str,
    model: &Tokenizer,
    model_name: &str,
) -> Result<(), InferError> {
    if base.n_vocab() != model.n_vocab() {
        return Err(InferError::Input(format!(
            "{model_name} has {} tokens but the base {base_name} has {}: KL-divergence needs the \
             same vocabulary",
            model.n_vocab(),
            base.n_vocab()
        )));
    }
    for id in 0..base.n_vocab() as u32 {
        if base.token_text(id) != model.token_text(id) {
            return Err(InferError::Input(format!(
                "token {id} is {:?} in {model_name} but {:?} in the base {base_name}: \
                 KL-divergence needs the same vocabulary",
                model.token_text(id).unwrap_or(""),
                base.token_text(id).unwrap_or("")
            )));
        }
    }
    Ok(())
}

fn percentile(sorted: &[f32], fraction: f32) -> f64 {
    // llama-perplexity's linear interpolation, in f32 like it.
    if fraction <= 0.0 {
        return sorted[0] as f64;
    }
    if fraction >= 1.0 {
        return sorted[sorted.len() - 1] as f64;
    }
    let mut p = fraction * (sorted.len() - 1) as f32;
    let ip = p as usize;
    p -= ip as f32;
    ((1.0 - p) * sorted[ip] + p * sorted[(ip + 1).min(sorted.len() - 1)]) as f64
}

/// Perplexity of `model` and its KL-divergence from `base` on the same chunks, like
/// `llama-perplexity --kl-divergence` (with exact base log-probabilities instead of its
/// 16-bit compressed ones).
pub fn kl_divergence(
    base: &Model,
    model: &Model,
    tokens: &[u32],
    bos: Option<u32>,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<EvalReport, InferError> {
    if base.config.n_vocab != model.config.n_vocab {
        return Err(InferError::Input(format!(
            "the model has {} logits per token but the base has {}: KL-divergence needs the same \
             vocabulary",
            model.config.n_vocab, base.config.n_vocab
        )));
    }
    let n_chunks = plan_chunks(tokens.len(), opts)?;
    let n_ctx = opts.n_ctx;
    let first = n_ctx / 2;
    let nv = model.config.n_vocab;
    let t0 = Instant::now();
    let mut sb = base.session_with(n_ctx, opts.numerics);
    let mut sm = model.session_with(n_ctx, opts.numerics);
    let (mut nll, mut nll2, mut nllb, mut nllb2, mut count) = (0f64, 0f64, 0f64, 0f64, 0usize);
    let (mut skld, mut skld2, mut sdp2, mut same) = (0f64, 0f64, 0f64, 0usize);
    let mut klds: Vec<f32> = Vec::new();
    for c in 0..n_chunks {
        let start = c * n_ctx;
        let input = chunk_input(tokens, start, n_ctx, bos);
        sb.clear();
        let lb = sb.eval(&input, first)?;
        sm.clear();
        let lm = sm.eval(&input, first)?;
        for i in 0..n_ctx - 1 - first {
            let tok = tokens[start + first + 1 + i] as usize;
            let rb = &lb[i * nv..(i + 1) * nv];
            let rm = &lm[i * nv..(i + 1) * nv];
            let (v, imax, lse) = log_softmax_row(rm, tok);
            let (vb, imax_b, lse_b) = log_softmax_row(rb, tok);
            nll += v;
            nll2 += v * v;
            nllb += vb;
            nllb2 += vb * vb;
            let mut kl = 0f64;
            for (&b, &m) in rb.iter().zip(rm) {
                let lpb = b - lse_b;
                // llama-perplexity skips base probabilities below e^-16.
                if lpb > -16.0 {
                    kl += (lpb.exp() * (lpb - (m - lse))) as f64;
                }
            }
            skld += kl;
            skld2 += kl * kl;
            klds.push(kl as f32);
            same += usize::from(imax == imax_b);
            let dp = (-v).exp() - (-vb).exp();
            sdp2 += dp * dp;
            count += 1;
        }
        progress((c + 1) * n_ctx);
    }
    let secs = t0.elapsed().as_secs_f64();
    klds.sort_by(f32::total_cmp);
    let n = klds.len();
    let median = if n.is_multiple_of(2) {
        0.5 * (klds[n / 2] as f64 + klds[n / 2 - 1] as f64)
    } else {
        klds[n / 2] as f64
    };
    let (m, unc) = mean_unc(nll, nll2, count);
    let (mb, _) = mean_unc(nllb, nllb2, count);
    let (kl_mean, kl_unc) = mean_unc(skld, skld2, count);
    let ppl = m.exp();
    Ok(EvalReport {
        n_ctx,
        n_chunks,
        n_text_tokens: tokens.len(),
        n_scored: count,
        ppl,
        ppl_uncertainty: ppl * unc,
        kld: Some(KldStats {
            ppl_base: mb.exp(),
            ln_ppl_ratio: m - mb,
            mean: kl_mean,
            mean_uncertainty: kl_unc,
            median,
            p99: percentile(&klds, 0.99),
            p99_9: percentile(&klds, 0.999),
            max: klds[n - 1] as f64,
            same_top: same as f64 / count as f64,
            rms_dp: (sdp2 / count as f64).sqrt(),
        }),
        seconds: secs,
        tokens_per_second: (2 * n_chunks * n_ctx) as f64 / secs,
    })
}

/// Normalised mean squared error `Σ(a-b)² / Σb²` of `other` against `reference` (the
/// conversion-parity metric: source logits vs GGUF logits).
pub fn nmse(reference: &[f32], other: &[f32]) -> f64 {
    assert_eq!(reference.len(), other.len(), "nmse of different lengths");
    let (mut num, mut den) = (0f64, 0f64);
    for (&r, &o) in reference.iter().zip(other) {
        let d = (o - r) as f64;
        num += d * d;
        den += (r as f64) * (r as f64);
    }
    if den == 0.0 { num } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nmse_and_percentiles() {
        assert_eq!(nmse(&[1.0, -1.0], &[1.0, -1.0]), 0.0);
        assert!((nmse(&[2.0, 0.0], &[1.0, 0.0]) - 0.25).abs() < 1e-12);
        let v = [0.0f32, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert!((percentile(&v, 0.99) - 3.96).abs() < 1e-5);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }

    #[test]
    fn short_text_is_a_clear_error() {
        let e = plan_chunks(100, &EvalOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("100 tokens") && e.contains("1024"), "{e}");
        let opts = EvalOptions {
            max_chunks: Some(3),
            ..Default::default()
        };
        assert_eq!(plan_chunks(5000, &opts).unwrap(), 3);
        assert_eq!(plan_chunks(1100, &EvalOptions::default()).unwrap(), 2);
    }
}
