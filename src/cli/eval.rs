//! `tinylm eval`: perplexity of a GGUF on a text, and KL-divergence against a base GGUF, like
//! `llama-perplexity [--kl-divergence]`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::infer::eval::{self, EvalOptions};
use crate::infer::{self, Numerics};
use crate::{Error, IoContext, Result};

/// Arguments of `tinylm eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The GGUF to evaluate.
    pub model: PathBuf,
    /// UTF-8 text to score.
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Base GGUF (e.g. the f16 model) to compare against: adds KL-divergence statistics.
    #[arg(long, value_name = "GGUF")]
    pub base: Option<PathBuf>,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub ctx: usize,
    /// Evaluate at most N chunks (default: all that fit in the text).
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Worker threads (default: every core).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Exact f32 arithmetic throughout. By default tinylm mirrors llama.cpp's CPU numerics (f16
    /// KV cache, matmul inputs rounded to f16/Q8 like ggml's dot products), so the figures are
    /// what llama.cpp users of the model will see and match llama-perplexity's.
    #[arg(long)]
    pub exact: bool,
}

/// Sizes rayon's global pool; called once per process before any parallel work.
pub(super) fn init_threads(n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        if n == 0 {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        // Fails only if the pool was already built (tests calling twice); harmless then.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    Ok(())
}

/// A token-count progress bar on stderr (hidden when stderr is not a terminal or with -q).
pub(super) fn token_bar(g: &GlobalOpts, total: u64, what: &str) -> indicatif::ProgressBar {
    if g.quiet || g.json {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} tokens, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs `tinylm eval`.
pub fn run(g: &GlobalOpts, args: EvalArgs) -> Result<ExitCode> {
    init_threads(args.threads)?;
    let m = infer::load_with_tokenizer(&args.model)?;
    let text = std::fs::read(&args.text).with_path(&args.text)?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::format(&args.text, "is not UTF-8 text".to_string()))?;
    let opts = EvalOptions {
        n_ctx: args.ctx,
        max_chunks: args.chunks,
        numerics: if args.exact {
            Numerics::default()
        } else {
            Numerics::llama_cpp()
        },
    };
    let base = match &args.base {
        Some(p) => {
            let b = infer::load_with_tokenizer(p)?;
            eval::check_same_vocab(
                &b.tokenizer,
                &p.display().to_string(),
                &m.tokenizer,
                &args.model.display().to_string(),
            )?;
            Some(b)
        }
        None => None,
    };
    // llama-perplexity tokenizes with the model it scores (the base, for KL-divergence).
    let tok = base.as_ref().map_or(&m.tokenizer, |b| &b.tokenizer);
    let tokens = eval::tokenize(tok, &text);
    let n_chunks = eval::plan_chunks(tokens.len(), &opts)
        .map_err(|e| Error::Build(format!("{}: {e}", args.text.display())))?;
    let bos = if tok.add_bos { tok.bos } else { None };
    let passes = if base.is_some() { 2 } else { 1 };
    let pb = token_bar(g, (n_chunks * args.ctx * passes) as u64, "eval");
    let mut progress = |done: usize| pb.set_position((done * passes) as u64);
    let report = match &base {
        Some(b) => eval::kl_divergence(&b.model, &m.model, &tokens, bos, &opts, &mut progress)?,
        None => eval::perplexity(&m.model, &tokens, bos, &opts, &mut progress)?,
    };
    pb.finish_and_clear();
    if g.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| Error::Build(format!("cannot serialise the report: {e}")))?;
        v["model"] = serde_json::json!(args.model);
        v["text"] = serde_json::json!(args.text);
        if let Some(p) = &args.base {
            v["base"] = serde_json::json!(p);
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    }
    if g.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: PPL {:.4} ± {:.4} ({} chunks × {} tokens, {} scored) in {:.1} s, {:.0} tokens/s",
        args.model.display(),
        report.ppl,
        report.ppl_uncertainty,
        report.n_chunks,
        report.n_ctx,
        report.n_scored,
        report.seconds,
        report.tokens_per_second
    );
    if let (Some(k), Some(p)) = (&report.kld, &args.base) {
        println!(
            "  base {}: PPL {:.4}, ln(PPL/PPL base) {:+.5}",
            p.display(),
            k.ppl_base,
            k.ln_ppl_ratio
        );
        println!(
            "  KLD mean {:.6} ± {:.6}, median {:.6}, p99 {:.6}, p99.9 {:.6}, max {:.6}",
            k.mean, k.mean_uncertainty, k.median, k.p99, k.p99_9, k.max
        );
        println!(
            "  same top token {:.3} %, RMS Δp {:.3} %",
            100.0 * k.same_top,
            100.0 * k.rms_dp
        );
    }
    Ok(ExitCode::SUCCESS)
}
