//! tiny-lm Lightning checkpoint + tiktoken tokenizer → Hugging Face folder.
//!
//! [`export`] builds the whole folder in memory as an [`HfModel`] (the weights mostly as
//! zero-copy slices of the checkpoint mapping) with exactly the bytes [`write_hf_dir`] puts on
//! disk, so the GGUF converter can consume it directly. The files reproduce what transformers'
//! `save_pretrained` and `PreTrainedTokenizerFast.save_pretrained` write for the same model
//! (checked byte for byte by `scripts/conformance/hf_export.py` and the goldens in
//! `tests/golden/hf_export/`).

pub(crate) mod arch;
pub(crate) mod config;
pub(crate) mod hf_config;
pub(crate) mod pyjson;
pub(crate) mod tokenizer;
pub(crate) mod weights;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::convert::hf::HfModel;
use crate::formats::pytorch::Checkpoint;
use crate::formats::safetensors;
use crate::formats::tensor::WeightFile;
use crate::formats::tiktoken::TiktokenEncoding;
use crate::formats::{DType, FileError};

use config::{ModelYaml, TokenizerYaml};

// The one vocabulary for them: the manifest's `source.tinylm.arch`, its JSON schema and
// `tinylm convert --arch` all use this enum (its doc comments are the schema's descriptions).
/// tiny-lm architectures.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum TinyLmArch {
    /// tiny-lm GPT-2.
    Gpt2,
    /// tiny-lm Llama 3.
    Llama3,
}

impl TinyLmArch {
    /// The name users write (`gpt2`, `llama3`).
    pub fn name(self) -> &'static str {
        match self {
            TinyLmArch::Gpt2 => "gpt2",
            TinyLmArch::Llama3 => "llama3",
        }
    }
}

impl fmt::Display for TinyLmArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// The manifest's `source.tinylm.dtype` (doc comments: schema descriptions) and
// `tinylm convert --dtype` (`help`: the CLI's help text).
/// Weight dtypes of an exported Hugging Face folder.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum HfDtype {
    /// float32.
    #[value(help = "32-bit float (lossless for tiny-lm checkpoints)")]
    F32,
    /// float16.
    #[value(help = "16-bit float")]
    F16,
    /// bfloat16.
    #[value(help = "bfloat16")]
    Bf16,
}

impl HfDtype {
    /// The name users write (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            HfDtype::F32 => "f32",
            HfDtype::F16 => "f16",
            HfDtype::Bf16 => "bf16",
        }
    }
}

impl From<HfDtype> for DType {
    fn from(d: HfDtype) -> DType {
        match d {
            HfDtype::F32 => DType::F32,
            HfDtype::F16 => DType::F16,
            HfDtype::Bf16 => DType::BF16,
        }
    }
}

/// The files a tiny-lm user has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyLmInputs {
    /// Lightning checkpoint (`last.ckpt`) or a plain torch state dict.
    pub checkpoint: PathBuf,
    /// Model YAML (`configs/models/<name>.yaml`).
    pub config: PathBuf,
    /// Pickled tiktoken encoding (`tokenizers/<name>/tokenizer.pkl`).
    pub tokenizer: PathBuf,
    /// Tokenizer YAML (`configs/tokenizers/<name>.yaml`); tiny-lm's `<bos>/<eos>/<pad>/<unk>`
    /// names when absent.
    pub tokenizer_config: Option<PathBuf>,
    /// Architecture; inferred from the tensor names when absent (a mismatch is an error).
    pub arch: Option<TinyLmArch>,
}

/// Export settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// Weight dtype: f32 (default), f16 or bf16.
    pub dtype: DType,
    /// Name of the output folder (recorded in [`HfModel::dir_name`]).
    pub dir_name: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            dtype: DType::F32,
            dir_name: "model".into(),
        }
    }
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be read or written, or an input is inconsistent or unsupported.
    #[error(transparent)]
    File(#[from] FileError),
    /// Export options are invalid.
    #[error("{0}")]
    Options(String),
}

impl From<ExportError> for crate::Error {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::File(e) => e.into(),
            ExportError::Options(msg) => crate::Error::Usage(msg),
        }
    }
}

fn invalid(path: &Path, msg: impl Into<String>) -> ExportError {
    FileError::invalid(path, msg).into()
}

/// The Lightning module prefix of every model key.
const LIGHTNING_PREFIX: &str = "model.";

/// Builds the HF folder for a tiny-lm model in memory. Nothing is written to disk.
pub fn export(inputs: &TinyLmInputs, opts: &ExportOptions) -> Result<HfModel, ExportError> {
    if !matches!(opts.dtype, DType::F32 | DType::F16 | DType::BF16) {
        return Err(ExportError::Options(format!(
            "cannot export weights as {}: choose f32, f16 or bf16",
            opts.dtype
        )));
    }
    let model_yaml: ModelYaml =
        config::load_yaml(&inputs.config).map_err(|e| invalid(&inputs.config, e))?;
    let tok_yaml: TokenizerYaml = match &inputs.tokenizer_config {
        Some(p) => config::load_yaml(p).map_err(|e| invalid(p, e))?,
        None => TokenizerYaml::tinylm_defaults(),
    };
    let enc = TiktokenEncoding::load(&inputs.tokenizer)?;
    if enc.n_vocab() > model_yaml.vocab_size {
        return Err(invalid(
            &inputs.tokenizer,
            format!(
                "the tokenizer has {} ids but the model's vocab_size is {} ({})",
                enc.n_vocab(),
                model_yaml.vocab_size,
                inputs.config.display()
            ),
        ));
    }
    if let (Some(p), Some(n)) = (&inputs.tokenizer_config, tok_yaml.vocab_size)
        && n != enc.n_vocab()
    {
        return Err(invalid(
            p,
            format!(
                "vocab_size is {n} but the tokenizer ({}) has {} ids",
                inputs.tokenizer.display(),
                enc.n_vocab()
            ),
        ));
    }

    let ckpt = Checkpoint::open(&inputs.checkpoint)?;
    let tensors = ckpt.state_dict()?;
    let prefix =
        if !tensors.is_empty() && tensors.iter().all(|t| t.name.starts_with(LIGHTNING_PREFIX)) {
            LIGHTNING_PREFIX
        } else {
            ""
        };
    let src = weights::Source::new(&tensors, prefix).map_err(|e| invalid(&inputs.checkpoint, e))?;
    let detected = weights::detect_arch(&src.keys());
    let arch = match (inputs.arch, detected) {
        (Some(a), Some(d)) if a != d => {
            return Err(invalid(
                &inputs.checkpoint,
                format!(
                    "--arch {a} was given, but the tensor names are those of a tiny-lm {d} model"
                ),
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(invalid(&inputs.checkpoint, arch::unrecognized_hint()));
        }
    };
    let (mut hf_tensors, facts) = weights::map(arch, &model_yaml, &src, opts.dtype)
        .map_err(|e| invalid(&inputs.checkpoint, e))?;
    safetensors::sort_canonical(&mut hf_tensors);

    let tok = tokenizer::export(&enc, &tok_yaml.special_tokens, model_yaml.context_length)
        .map_err(|e| invalid(&inputs.tokenizer, e))?;
    let mut files = BTreeMap::new();
    files.insert(
        "config.json".to_string(),
        hf_config::config_json(&model_yaml, &facts, &tok.ids, opts.dtype),
    );
    files.insert(
        "generation_config.json".into(),
        hf_config::generation_config_json(&tok.ids),
    );
    files.insert("tokenizer.json".into(), tok.tokenizer_json);
    files.insert("tokenizer_config.json".into(), tok.tokenizer_config_json);
    files.insert(
        "special_tokens_map.json".into(),
        tok.special_tokens_map_json,
    );
    tracing::info!(
        "exported tiny-lm {arch} ({} layers, d_model {}, vocab {}) as {} tensors in {}",
        facts.n_layers,
        facts.d_model,
        facts.vocab,
        hf_tensors.len(),
        opts.dtype
    );
    Ok(HfModel {
        dir_name: opts.dir_name.clone(),
        files,
        weights: vec![WeightFile {
            file_name: "model.safetensors".into(),
            tensors: hf_tensors,
        }],
    })
}

/// Writes an HF folder to `dir` (created if needed); each file is written atomically.
pub fn write_hf_dir(model: &HfModel, dir: &Path) -> Result<(), ExportError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::File(FileError::Io { path, source })
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, bytes) in &model.files {
        let path = dir.join(name);
        let mut tmp = crate::fsutil::public_temp_file_in(dir).map_err(io(dir))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    }
    for w in &model.weights {
        safetensors::write_file(&dir.join(&w.file_name), w)?;
    }
    // Stale files from an earlier export would be picked up by loaders; say so.
    if let Ok(entries) = std::fs::read_dir(dir) {
        let ours =
            |n: &str| model.files.contains_key(n) || model.weights.iter().any(|w| w.file_name == n);
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !ours(&name) {
                tracing::warn!(
                    "{}: {name} is not part of this export (left untouched)",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}
