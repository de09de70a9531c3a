//! `tinylm imatrix`: an importance matrix for imatrix-weighted quantization, in llama.cpp's
//! GGUF imatrix format (or the legacy .dat), like `llama-imatrix`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::infer::eval::{self, EvalOptions};
use crate::infer::{self, Numerics, imatrix};
use crate::{Error, IoContext, Result};

/// Output format of `tinylm imatrix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImatrixFormat {
    /// llama.cpp's GGUF imatrix (`<name>.in_sum2` / `<name>.counts`).
    Gguf,
    /// The legacy `.dat` file.
    Dat,
}

/// Arguments of `tinylm imatrix`.
#[derive(Debug, clap::Args)]
pub struct ImatrixArgs {
    /// The GGUF to run (usually the f16/f32 model that will be quantized).
    pub model: PathBuf,
    /// Calibration text (UTF-8).
    #[arg(long, value_name = "FILE")]
    pub text: PathBuf,
    /// Output file (written to a temporary file next to it, then renamed).
    #[arg(short = 'o', long = "output", value_name = "PATH")]
    pub output: PathBuf,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub ctx: usize,
    /// Use at most N chunks (default: all that fit in the text).
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Also collect output.weight.
    #[arg(long)]
    pub process_output: bool,
    /// File format.
    #[arg(long, value_enum, default_value = "gguf")]
    pub format: ImatrixFormat,
    /// Worker threads (default: every core).
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Exact f32 arithmetic instead of llama.cpp's CPU numerics.
    #[arg(long)]
    pub exact: bool,
}

/// Runs `tinylm imatrix`.
pub fn run(g: &GlobalOpts, args: ImatrixArgs) -> Result<ExitCode> {
    super::eval::init_threads(args.threads)?;
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
    let tokens = eval::tokenize(&m.tokenizer, &text);
    let n_chunks = eval::plan_chunks(tokens.len(), &opts)
        .map_err(|e| Error::Build(format!("{}: {e}", args.text.display())))?;
    let bos = if m.tokenizer.add_bos {
        m.tokenizer.bos
    } else {
        None
    };
    let pb = super::eval::token_bar(g, (n_chunks * args.ctx) as u64, "imatrix");
    let mut progress = |done: usize| pb.set_position(done as u64);
    let im = imatrix::collect(
        &m.model,
        &tokens,
        bos,
        &opts,
        args.process_output,
        &args.text.display().to_string(),
        &mut progress,
    )?;
    pb.finish_and_clear();
    let dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tinylm-imatrix-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_path(&dir)?;
    match args.format {
        ImatrixFormat::Gguf => im.write_gguf(tmp.as_file_mut())?,
        ImatrixFormat::Dat => im.write_dat(tmp.as_file_mut()).with_path(tmp.path())?,
    }
    tmp.persist(&args.output)
        .map_err(|e| Error::io(&args.output, e.error))?;
    if g.json {
        let v = serde_json::json!({
            "output": args.output,
            "format": if args.format == ImatrixFormat::Gguf { "gguf" } else { "dat" },
            "entries": im.entries.len(),
            "chunks": im.chunk_count,
            "chunk_size": im.chunk_size,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if !g.quiet {
        println!(
            "{}: {} weights, {} chunks × {} tokens",
            args.output.display(),
            im.entries.len(),
            im.chunk_count,
            im.chunk_size
        );
    }
    Ok(ExitCode::SUCCESS)
}
