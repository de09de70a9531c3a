//! `tinylm quantize`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::GlobalOpts;
use crate::quant::{FileType, QuantizeOptions, quantize_file};
use crate::{Error, Result};

/// Arguments of `tinylm quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Input GGUF (F32/F16/BF16 weights).
    pub input: PathBuf,
    /// Output GGUF (written to a temporary file next to it, then renamed).
    pub output: PathBuf,
    /// Quantization type, as llama-quantize names it (Q4_K_M, q8_0, F16, 15, …).
    #[arg(value_name = "TYPE")]
    pub ftype: String,
    /// Worker threads (default: every core).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Allow re-quantizing tensors that are already quantized.
    #[arg(long)]
    pub allow_requantize: bool,
}

/// Runs `tinylm quantize`.
pub fn run(g: &GlobalOpts, args: QuantizeArgs) -> Result<ExitCode> {
    let ftype: FileType = args
        .ftype
        .parse()
        .map_err(|e: crate::quant::ParseFileTypeError| Error::Usage(e.to_string()))?;
    // The same limits as `build -j` (0 here means "every core" to the quantizer).
    let threads = match args.jobs {
        Some(_) => crate::workspace::jobs(args.jobs)?,
        None => 0,
    };
    let opts = QuantizeOptions {
        ftype,
        threads,
        allow_requantize: args.allow_requantize,
        cancel: Some(crate::exec::cancel_on_ctrl_c()),
    };
    let dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Named after the output (a leftover after a kill says what it was, and the next build's
    // cleanup recognises it); mode 0666 less the umask, like any new file.
    let tmp = crate::fsutil::public_temp_file_for(&args.output).map_err(|e| Error::io(&dir, e))?;
    // Errors name the file being written, not its temp file (which is removed on error).
    let report = quantize_file(&args.input, tmp.path(), &opts).map_err(|e| match e {
        Error::Io { path, source } if path == tmp.path() => Error::io(&args.output, source),
        other => other,
    })?;
    tmp.persist(&args.output)
        .map_err(|e| Error::io(&args.output, e.error))?;
    if g.json {
        let s = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Build(format!("cannot serialise the report: {e}")))?;
        println!("{s}");
    } else if !g.quiet {
        println!(
            "{} -> {} ({}): {} tensors, {:.2} MiB -> {:.2} MiB, {:.2} bits/weight, rmse {:.3e}, \
             max error {:.3e}{}",
            args.input.display(),
            args.output.display(),
            report.ftype,
            report.tensors.len(),
            report.input_bytes as f64 / 1048576.0,
            report.output_bytes as f64 / 1048576.0,
            report.bits_per_weight,
            report.rmse,
            report.max_abs_error,
            if report.n_fallback > 0 {
                format!(", {} fallback tensor(s)", report.n_fallback)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
