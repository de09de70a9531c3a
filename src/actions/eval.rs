//! `eval`: perplexity of a built GGUF on the manifest's `[eval]` text and, against the model's
//! base GGUF, the KL-divergence statistics of `tinylm eval --base` (llama-perplexity's
//! `--kl-divergence`); and `quality`, the gate that holds those figures to the budgets.

use serde::{Deserialize, Serialize};

use super::{Action, EVAL_JSON, QUALITY_JSON, RunCtx, to_params, write_json};
use crate::formats::gguf::GgufFile;
use crate::infer::eval::{self, EvalOptions};
use crate::infer::{self, Numerics};
use crate::{Error, IoContext, Result};

/// What `eval` writes (`eval.json`); read back by `quality` and `release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The text as the manifest names it.
    pub text: String,
    /// Tokens per chunk.
    pub ctx: usize,
    /// Chunks scored.
    pub chunks: usize,
    /// Positions scored.
    pub scored: usize,
    /// Perplexity.
    pub ppl: f64,
    /// Its standard error.
    pub ppl_uncertainty: f64,
    /// Against the base GGUF (absent for the base itself).
    pub kld: Option<KldRecord>,
    /// GGUF file size in bytes.
    pub size: u64,
    /// Bits per weight over all tensors.
    pub bits_per_weight: f64,
}

/// KL-divergence figures against the base GGUF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KldRecord {
    /// Perplexity of the base.
    pub ppl_base: f64,
    /// Mean KL(base ‖ model).
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
    /// Rate of positions where both top tokens agree.
    pub same_top: f64,
    /// RMS of the change in the right token's probability.
    pub rms_dp: f64,
}

/// Scores input `model` on input `text`, against input `base` when `with_base`.
#[derive(Debug)]
pub struct EvalAction {
    /// The text's path as the manifest gives it.
    pub text: String,
    /// Tokens per chunk.
    pub ctx: usize,
    /// At most this many chunks.
    pub chunks: Option<usize>,
    /// Whether a `base` input is compared against.
    pub with_base: bool,
}

#[derive(Serialize)]
struct EvalParams<'a> {
    text: &'a str,
    ctx: usize,
    chunks: Option<usize>,
    with_base: bool,
    numerics: &'static str,
}

impl Action for EvalAction {
    fn kind(&self) -> &'static str {
        "eval"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        to_params(&EvalParams {
            text: &self.text,
            ctx: self.ctx,
            chunks: self.chunks,
            with_base: self.with_base,
            numerics: "llama.cpp",
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![EVAL_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let model_in = ctx.input("model")?;
        let text_path = &ctx.input("text")?.path;
        let m = infer::load_with_tokenizer(&model_in.path)?;
        let base = if self.with_base {
            let b = infer::load_with_tokenizer(&ctx.input("base")?.path)?;
            eval::check_same_vocab(&b.tokenizer, "the base GGUF", &m.tokenizer, "the quant")?;
            Some(b)
        } else {
            None
        };
        let text = std::fs::read(text_path).with_path(text_path)?;
        let text = String::from_utf8(text)
            .map_err(|_| Error::Build(format!("eval text `{}` is not UTF-8", self.text)))?;
        let opts = EvalOptions {
            n_ctx: self.ctx,
            max_chunks: self.chunks,
            numerics: Numerics::llama_cpp(),
        };
        // llama-perplexity tokenizes with the model it scores (the base, for KL-divergence).
        let tok = base.as_ref().map_or(&m.tokenizer, |b| &b.tokenizer);
        let tokens = eval::tokenize(tok, &text);
        let bos = if tok.add_bos { tok.bos } else { None };
        ctx.check_cancel()?;
        let mut progress = |_: usize| {};
        let report = match &base {
            Some(b) => eval::kl_divergence(&b.model, &m.model, &tokens, bos, &opts, &mut progress),
            None => eval::perplexity(&m.model, &tokens, bos, &opts, &mut progress),
        }
        .map_err(|e| Error::Build(format!("eval on `{}`: {e}", self.text)))?;
        ctx.check_cancel()?;
        let record = EvalRecord {
            text: self.text.clone(),
            ctx: report.n_ctx,
            chunks: report.n_chunks,
            scored: report.n_scored,
            ppl: report.ppl,
            ppl_uncertainty: report.ppl_uncertainty,
            kld: report.kld.map(|k| KldRecord {
                ppl_base: k.ppl_base,
                mean: k.mean,
                median: k.median,
                p99: k.p99,
                max: k.max,
                same_top: k.same_top,
                rms_dp: k.rms_dp,
            }),
            size: model_in.size,
            bits_per_weight: bits_per_weight(&model_in.path)?,
        };
        write_json(ctx, EVAL_JSON, &record)
    }
}

/// Bits per weight of a GGUF's tensors (data bytes × 8 / elements), from its header.
pub fn bits_per_weight(path: &std::path::Path) -> Result<f64> {
    let g = GgufFile::open(path)?;
    let (bytes, elements) = g.tensors.iter().fold((0u64, 0u64), |(b, e), t| {
        let n = t.n_elements();
        (b + t.ggml_type.bytes_for(n).unwrap_or(0), e + n)
    });
    Ok(if elements == 0 {
        0.0
    } else {
        bytes as f64 * 8.0 / elements as f64
    })
}

/// Reads an `eval.json`.
pub fn read_eval(path: &std::path::Path) -> Result<EvalRecord> {
    let bytes = std::fs::read(path).with_path(path)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(path, format!("bad eval record: {e}")))
}

/// One budget of a quality gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityBudget {
    /// `max_kld`, `min_same_top` or `max_ppl_ratio`.
    pub metric: String,
    /// The limit.
    pub limit: f64,
}

/// One checked budget (`quality.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityCheck {
    /// The metric's manifest key.
    pub metric: String,
    /// The measured value.
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// Whether the value is within the limit.
    pub ok: bool,
}

/// What `quality` writes (`quality.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityRecord {
    /// Model name.
    pub model: String,
    /// Quant name.
    pub quant: String,
    /// Every budget with its value.
    pub checks: Vec<QualityCheck>,
    /// Whether every budget held.
    pub passed: bool,
}

impl QualityRecord {
    /// One line per budget that was exceeded.
    pub fn violations(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| {
                let (what, rel) = match c.metric.as_str() {
                    "max_kld" => ("mean KL-divergence", "above"),
                    "min_same_top" => ("same-top-token rate", "below"),
                    _ => ("perplexity ratio to the base", "above"),
                };
                format!(
                    "model `{}` quant `{}`: {what} {:.6} is {rel} the budget `{} = {}`",
                    self.model, self.quant, c.value, c.metric, c.limit
                )
            })
            .collect()
    }
}

/// Holds input `eval` (an [`EvalRecord`]) to the budgets; fails unless `allow`.
#[derive(Debug)]
pub struct QualityAction {
    /// Model name (for messages).
    pub model: String,
    /// Quant name (for messages).
    pub quant: String,
    /// The budgets.
    pub budgets: Vec<QualityBudget>,
    /// Over-budget quants only warn (`--allow-quality`); part of the key.
    pub allow: bool,
}

#[derive(Serialize)]
struct QualityParams<'a> {
    model: &'a str,
    quant: &'a str,
    budgets: &'a [QualityBudget],
    allow: bool,
}

impl Action for QualityAction {
    fn kind(&self) -> &'static str {
        "quality"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        to_params(&QualityParams {
            model: &self.model,
            quant: &self.quant,
            budgets: &self.budgets,
            allow: self.allow,
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![QUALITY_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let ev = read_eval(&ctx.input("eval")?.path)?;
        let mut checks = Vec::new();
        for b in &self.budgets {
            let kld = ev.kld.as_ref().ok_or_else(|| {
                Error::Build(format!(
                    "model `{}` quant `{}`: no KL-divergence figures to check `{}` against \
                     (the base GGUF itself is not compared)",
                    self.model, self.quant, b.metric
                ))
            })?;
            let (value, ok) = match b.metric.as_str() {
                "max_kld" => (kld.mean, kld.mean <= b.limit),
                "min_same_top" => (kld.same_top, kld.same_top >= b.limit),
                _ => {
                    let r = ev.ppl / kld.ppl_base;
                    (r, r <= b.limit)
                }
            };
            checks.push(QualityCheck {
                metric: b.metric.clone(),
                value,
                limit: b.limit,
                ok,
            });
        }
        let record = QualityRecord {
            model: self.model.clone(),
            quant: self.quant.clone(),
            passed: checks.iter().all(|c| c.ok),
            checks,
        };
        let violations = record.violations();
        // With `allow`, `tinylm build` reports the violations from this record on every build
        // (`Workspace::quality_warnings`), not only when the gate runs.
        if !violations.is_empty() && !self.allow {
            return Err(Error::Build(format!(
                "quality budget exceeded:\n  {}\n(loosen `quality` in tinylm.toml, or pass --allow-quality)",
                violations.join("\n  ")
            )));
        }
        write_json(ctx, QUALITY_JSON, &record)
    }
}
