//! `export_hf`: a tiny-lm run as a Hugging Face folder (config, tokenizer, safetensors).

use serde::Serialize;

use super::{Action, RunCtx, to_params};
use crate::convert::tinylm_to_hf::{
    ExportOptions, HfDtype, TinyLmArch, TinyLmInputs, export, write_hf_dir,
};
use crate::{Error, Result};

/// The files every export consists of, in name order.
pub const HF_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// Exports inputs `checkpoint`, `config`, `tokenizer` (and `tokenizer_config`) to HF files.
#[derive(Debug)]
pub struct ExportHfAction {
    /// Architecture, or inferred from the checkpoint.
    pub arch: Option<TinyLmArch>,
    /// Weight dtype.
    pub dtype: HfDtype,
    /// Folder name (the model name).
    pub dir_name: String,
}

impl ExportHfAction {
    /// The exporter's inputs, from the action's resolved inputs.
    pub fn inputs(&self, ctx: &RunCtx<'_>) -> Result<TinyLmInputs> {
        Ok(TinyLmInputs {
            checkpoint: ctx.input("checkpoint")?.path.clone(),
            config: ctx.input("config")?.path.clone(),
            tokenizer: ctx.input("tokenizer")?.path.clone(),
            tokenizer_config: ctx.input("tokenizer_config").ok().map(|i| i.path.clone()),
            arch: self.arch,
        })
    }

    /// The exporter's options.
    pub fn options(&self) -> ExportOptions {
        ExportOptions {
            dtype: self.dtype.into(),
            dir_name: self.dir_name.clone(),
        }
    }

    /// Key parameters, shared with the `gguf` action's direct path.
    pub(super) fn params_struct(&self) -> ExportParams<'_> {
        ExportParams {
            arch: self.arch.map(TinyLmArch::name),
            dtype: self.dtype.name(),
            dir_name: &self.dir_name,
        }
    }
}

/// The key parameters of an export.
#[derive(Serialize)]
pub(super) struct ExportParams<'a> {
    arch: Option<&'static str>,
    dtype: &'static str,
    dir_name: &'a str,
}

impl Action for ExportHfAction {
    fn kind(&self) -> &'static str {
        "export_hf"
    }

    fn version(&self) -> u32 {
        // 2: tokenizer_config.json declares model_input_names (no token_type_ids).
        2
    }

    fn params(&self) -> serde_json::Value {
        to_params(&self.params_struct())
    }

    fn outputs(&self) -> Vec<String> {
        HF_FILES.iter().map(|s| s.to_string()).collect()
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let model = export(&self.inputs(ctx)?, &self.options())?;
        let mut names: Vec<&str> = model.files.keys().map(String::as_str).collect();
        names.extend(model.weights.iter().map(|w| w.file_name.as_str()));
        names.sort();
        if names != HF_FILES {
            return Err(Error::Build(format!(
                "internal error: export produced {names:?}, expected {HF_FILES:?}"
            )));
        }
        ctx.check_cancel()?;
        write_hf_dir(&model, ctx.out_dir)?;
        Ok(())
    }
}
