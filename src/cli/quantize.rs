//! `tinylm quantize`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use super::GlobalOpts;
use crate::quant::recipe::{parse_ggml_type, parse_tensor_type};
use crate::quant::{FileType, Imatrix, QuantizeOptions, Recipe, quantize_file};
use crate::{Error, Result};

/// Arguments of `tinylm quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// Input GGUF (F32/F16/BF16 weights).
    pub input: PathBuf,
    /// Output GGUF (written to a temporary file next to it, then renamed).
    pub output: PathBuf,
    /// Quantization type, as llama-quantize names it (Q4_K_M, IQ4_XS, q8_0, F16, 15, …).
    #[arg(value_name = "TYPE")]
    pub ftype: String,
    /// Worker threads (default: every core).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Allow re-quantizing tensors that are already quantized.
    #[arg(long)]
    pub allow_requantize: bool,
    /// Importance matrix (llama-imatrix's GGUF or legacy .dat) for the imatrix-weighted
    /// quantizers; required by IQ1/IQ2 types, IQ3_XXS and Q2_K_S.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Use the imatrix only for tensors whose name contains NAME (repeatable).
    #[arg(
        long = "include-weights",
        value_name = "NAME",
        conflicts_with = "exclude_weights"
    )]
    pub include_weights: Vec<String>,
    /// Do not use the imatrix for tensors whose name contains NAME (repeatable).
    #[arg(long = "exclude-weights", value_name = "NAME")]
    pub exclude_weights: Vec<String>,
    /// Quantize tensors matching the regular expression PATTERN to TYPE, e.g. ffn_down=q6_k
    /// (repeatable; the first match wins).
    #[arg(long = "tensor-type", value_name = "PATTERN=TYPE")]
    pub tensor_type: Vec<String>,
    /// A file of PATTERN=TYPE entries separated by whitespace (after any --tensor-type).
    #[arg(long = "tensor-type-file", value_name = "FILE")]
    pub tensor_type_file: Option<PathBuf>,
    /// Tensor type of the token embeddings (ggml name: q8_0, q6_k, iq4_xs, f16, …).
    #[arg(long = "token-embedding-type", value_name = "TYPE")]
    pub token_embedding_type: Option<String>,
    /// Tensor type of output.weight.
    #[arg(long = "output-tensor-type", value_name = "TYPE")]
    pub output_tensor_type: Option<String>,
    /// No mixture rules: every quantizable tensor gets the file type's default type.
    #[arg(long)]
    pub pure: bool,
    /// Leave output.weight as it is.
    #[arg(long)]
    pub leave_output_tensor: bool,
}

impl QuantizeArgs {
    /// The recipe these flags describe.
    pub fn recipe(&self) -> Result<Recipe> {
        let usage = |e: crate::quant::RecipeError| Error::Usage(e.to_string());
        let mut tensor_types = self
            .tensor_type
            .iter()
            .map(|s| parse_tensor_type(s).map_err(usage))
            .collect::<Result<Vec<_>>>()?;
        if let Some(path) = &self.tensor_type_file {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            for item in text.split_whitespace() {
                tensor_types.push(
                    parse_tensor_type(item)
                        .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?,
                );
            }
        }
        let ty = |flag: &str, v: &Option<String>| -> Result<_> {
            v.as_deref()
                .map(|s| parse_ggml_type(s).map_err(|e| Error::Usage(format!("{flag}: {e}"))))
                .transpose()
        };
        Ok(Recipe {
            tensor_types,
            token_embedding_type: ty("--token-embedding-type", &self.token_embedding_type)?,
            output_tensor_type: ty("--output-tensor-type", &self.output_tensor_type)?,
            pure: self.pure,
            leave_output_tensor: self.leave_output_tensor,
            include_weights: self.include_weights.clone(),
            exclude_weights: self.exclude_weights.clone(),
        })
    }
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
    let recipe = args.recipe()?;
    recipe.compile().map_err(|e| Error::Usage(e.to_string()))?;
    if (!recipe.include_weights.is_empty() || !recipe.exclude_weights.is_empty())
        && args.imatrix.is_none()
    {
        return Err(Error::Usage(
            "--include-weights and --exclude-weights filter an importance matrix; pass one with \
             --imatrix FILE"
                .into(),
        ));
    }
    let imatrix = match &args.imatrix {
        Some(p) => Some(Arc::new(Imatrix::load(p)?)),
        None => None,
    };
    let opts = QuantizeOptions {
        threads,
        allow_requantize: args.allow_requantize,
        cancel: Some(crate::exec::cancel_on_ctrl_c()),
        recipe,
        imatrix,
        ..QuantizeOptions::new(ftype)
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
        if let Some(m) = &report.imatrix {
            println!(
                "imatrix {} ({} entries used of {}, {} tensors weighted, blake3 {})",
                m.file,
                m.entries_used,
                m.entries,
                m.tensors_weighted,
                &m.digest[..16.min(m.digest.len())]
            );
        } else if opts.imatrix.is_some() {
            println!(
                "imatrix: no entries left after --include-weights/--exclude-weights; not used"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
