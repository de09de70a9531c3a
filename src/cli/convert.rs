//! `tinylm convert`: one-shot conversion without a manifest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use super::{GlobalOpts, print_json};
use crate::convert::hf::HfModel;
use crate::convert::hf_to_gguf::{self, ConvertSummary, GgufOptions, OutType};
use crate::convert::tinylm_to_hf::{self, ExportOptions, HfDtype, TinyLmArch, TinyLmInputs};
use crate::formats::DType;
use crate::{Error, Result};

/// Output format of `tinylm convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A Hugging Face folder (config.json, tokenizer.json, model.safetensors, …).
    Hf,
    /// A GGUF file.
    Gguf,
}

/// Arguments of `tinylm convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// Input model: a tiny-lm checkpoint (.ckpt, .pt, .bin), or a Hugging Face folder for
    /// `--to gguf`.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub to: Target,
    /// Output path (a directory for `--to hf`).
    #[arg(short = 'o', long, value_name = "PATH")]
    pub output: PathBuf,
    /// tiny-lm model YAML [default: model.yaml next to INPUT].
    #[arg(long, value_name = "YAML")]
    pub config: Option<PathBuf>,
    /// tiny-lm tokenizer pickle [default: tokenizer.pkl next to INPUT].
    #[arg(long, value_name = "PKL")]
    pub tokenizer: Option<PathBuf>,
    /// tiny-lm tokenizer YAML with the special token names [default: tokenizer.yaml next to
    /// INPUT, else <bos>/<eos>/<pad>/<unk>].
    #[arg(long, value_name = "YAML")]
    pub tokenizer_config: Option<PathBuf>,
    /// Architecture [default: inferred from the tensor names].
    #[arg(long, value_enum)]
    pub arch: Option<TinyLmArch>,
    /// Weight dtype of the export.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: HfDtype,
    /// GGUF weight type (`--to gguf`), as convert_hf_to_gguf.py's --outtype.
    #[arg(long, value_enum, default_value = "auto")]
    pub outtype: OutType,
    /// Force `tokenizer.ggml.pre` (`--to gguf`; e.g. llama-bpe, gpt-2, qwen2).
    #[arg(long, value_name = "NAME")]
    pub pre: Option<String>,
    /// Force `general.name` (`--to gguf`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// `name` next to the input, if it exists.
fn beside(input: &Path, name: &str) -> Option<PathBuf> {
    let p = input.parent().unwrap_or(Path::new(".")).join(name);
    // `exists`, not `is_file`: a side file that is a FIFO or a device is named in the reader's
    // error rather than reported as missing.
    p.exists().then_some(p)
}

/// Resolves the tiny-lm side files, defaulting to the ones next to the checkpoint.
fn inputs(args: &ConvertArgs) -> Result<TinyLmInputs> {
    let required = |given: &Option<PathBuf>, name: &str, flag: &str, why: &str| {
        given
            .clone()
            .or_else(|| beside(&args.input, name))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{flag} is required: {why} (no {name} next to {})",
                    args.input.display()
                ))
            })
    };
    Ok(TinyLmInputs {
        checkpoint: args.input.clone(),
        config: required(
            &args.config,
            "model.yaml",
            "--config",
            "tiny-lm's model YAML gives n_heads, which the weights do not tell",
        )?,
        tokenizer: required(
            &args.tokenizer,
            "tokenizer.pkl",
            "--tokenizer",
            "the tiktoken tokenizer.pkl is needed for tokenizer.json",
        )?,
        tokenizer_config: args
            .tokenizer_config
            .clone()
            .or_else(|| beside(&args.input, "tokenizer.yaml")),
        arch: args.arch,
    })
}

/// Runs `tinylm convert`.
pub fn run(g: &GlobalOpts, args: ConvertArgs) -> Result<ExitCode> {
    match args.to {
        Target::Hf => to_hf(g, &args),
        Target::Gguf => to_gguf(g, &args),
    }
}

/// The name a model converted straight to GGUF gets: the output file's stem, so that
/// `ckpt → GGUF` equals `ckpt → HF folder named so → GGUF`.
fn gguf_model_name(output: &Path) -> String {
    output
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

fn to_gguf(g: &GlobalOpts, args: &ConvertArgs) -> Result<ExitCode> {
    if args.output.is_dir() {
        return Err(Error::Usage(format!(
            "-o {}: is a directory; `--to gguf` writes a file",
            args.output.display()
        )));
    }
    if let Some(p) = &args.pre {
        hf_to_gguf::check_pre_name(p).map_err(|msg| Error::Usage(format!("--pre: {msg}")))?;
    }
    let model = if args.input.is_dir() {
        HfModel::open(&args.input)?
    } else {
        let opts = ExportOptions {
            dtype: DType::from(args.dtype),
            dir_name: gguf_model_name(&args.output),
        };
        tinylm_to_hf::export(&inputs(args)?, &opts)?
    };
    let opts = GgufOptions {
        outtype: args.outtype,
        pre_override: args.pre.clone(),
        name_override: args.name.clone(),
        ..Default::default()
    };
    let report = hf_to_gguf::convert_to_path(&model, &opts, &args.output)?;
    if g.json {
        print_json(&GgufOutput {
            summary: report.summary(),
            output: &args.output,
            to: "gguf",
        });
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        if !g.quiet {
            eprintln!(
                "wrote {} ({} {}, {} tensors, {} params, pre {})",
                args.output.display(),
                report.arch,
                report.outtype.name(),
                report.tensor_count,
                report.params,
                report.pre
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn to_hf(g: &GlobalOpts, args: &ConvertArgs) -> Result<ExitCode> {
    if args.output.is_file() {
        return Err(Error::Usage(format!(
            "-o {}: exists and is a file; `--to hf` writes a directory",
            args.output.display()
        )));
    }
    let inputs = inputs(args)?;
    let dir_name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let opts = ExportOptions {
        dtype: DType::from(args.dtype),
        dir_name,
    };
    let model = tinylm_to_hf::export(&inputs, &opts)?;
    tinylm_to_hf::write_hf_dir(&model, &args.output)?;
    let tensors: usize = model.weights.iter().map(|w| w.tensors.len()).sum();
    if g.json {
        let files: Vec<&str> = model
            .files
            .keys()
            .map(String::as_str)
            .chain(model.weights.iter().map(|w| w.file_name.as_str()))
            .collect();
        print_json(&HfOutput {
            output: &args.output,
            to: "hf",
            dtype: opts.dtype,
            files,
            tensors,
        });
    } else if !g.quiet {
        eprintln!(
            "wrote {} ({} files, {tensors} tensors, {})",
            args.output.display(),
            model.files.len() + model.weights.len(),
            opts.dtype
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `convert --to gguf --json`: the conversion report plus where it went.
#[derive(Serialize)]
struct GgufOutput<'a> {
    #[serde(flatten)]
    summary: ConvertSummary,
    output: &'a Path,
    to: &'static str,
}

/// `convert --to hf --json`.
#[derive(Serialize)]
struct HfOutput<'a> {
    output: &'a Path,
    to: &'static str,
    dtype: DType,
    files: Vec<&'a str>,
    tensors: usize,
}
