//! `tinylm convert`: one-shot conversion without a manifest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::GlobalOpts;
use crate::convert::hf::HfModel;
use crate::convert::hf_to_gguf::{self, GgufOptions, OutType};
use crate::convert::tinylm_to_hf::{self, Arch, ExportOptions, TinyLmInputs};
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

/// Architecture of a tiny-lm checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchArg {
    /// tiny-lm GPT-2.
    Gpt2,
    /// tiny-lm Llama 3.
    Llama3,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Self {
        match a {
            ArchArg::Gpt2 => Arch::Gpt2,
            ArchArg::Llama3 => Arch::Llama3,
        }
    }
}

/// Weight dtype of an HF export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    /// 32-bit float (lossless for tiny-lm checkpoints).
    F32,
    /// 16-bit float.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<DtypeArg> for DType {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F32 => DType::F32,
            DtypeArg::F16 => DType::F16,
            DtypeArg::Bf16 => DType::BF16,
        }
    }
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
    pub arch: Option<ArchArg>,
    /// Weight dtype of the export.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// GGUF weight type (`--to gguf`), as convert_hf_to_gguf.py's --outtype.
    #[arg(long, value_enum, default_value = "auto")]
    pub outtype: OutTypeArg,
    /// Force `tokenizer.ggml.pre` (`--to gguf`; e.g. llama-bpe, gpt-2, qwen2).
    #[arg(long, value_name = "NAME")]
    pub pre: Option<String>,
    /// Force `general.name` (`--to gguf`).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

/// GGUF outtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutTypeArg {
    /// Everything f32.
    F32,
    /// f16 weights.
    F16,
    /// bf16 weights.
    Bf16,
    /// Q8_0 weights.
    #[value(name = "q8_0")]
    Q8_0,
    /// bf16 if the source weights are bf16, else f16.
    Auto,
}

impl From<OutTypeArg> for OutType {
    fn from(o: OutTypeArg) -> Self {
        match o {
            OutTypeArg::F32 => OutType::F32,
            OutTypeArg::F16 => OutType::F16,
            OutTypeArg::Bf16 => OutType::BF16,
            OutTypeArg::Q8_0 => OutType::Q8_0,
            OutTypeArg::Auto => OutType::Auto,
        }
    }
}

/// `name` next to the input, if it exists.
fn beside(input: &Path, name: &str) -> Option<PathBuf> {
    let p = input.parent().unwrap_or(Path::new(".")).join(name);
    p.is_file().then_some(p)
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
        arch: args.arch.map(Arch::from),
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
    let model = if args.input.is_dir() {
        HfModel::open(&args.input)?
    } else {
        let opts = ExportOptions {
            dtype: args.dtype.into(),
            dir_name: gguf_model_name(&args.output),
        };
        tinylm_to_hf::export(&inputs(args)?, &opts)?
    };
    let opts = GgufOptions {
        outtype: args.outtype.into(),
        pre_override: args.pre.clone(),
        name_override: args.name.clone(),
        ..Default::default()
    };
    let report = hf_to_gguf::convert_to_path(&model, &opts, &args.output)?;
    if g.json {
        let mut out = report.to_json();
        out["output"] = serde_json::json!(args.output);
        out["to"] = serde_json::json!("gguf");
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
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
        dtype: args.dtype.into(),
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
        let out = serde_json::json!({
            "output": args.output,
            "to": "hf",
            "dtype": opts.dtype,
            "files": files,
            "tensors": tensors,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
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
