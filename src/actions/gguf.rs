//! `gguf`: the base GGUF of a Hugging Face folder or a tiny-lm run, as `convert_hf_to_gguf.py`
//! would write it.

use serde::Serialize;

use super::export_hf::ExportParams;
use super::{Action, ExportHfAction, MODEL_GGUF, REPORT_JSON, RunCtx, to_params, write_json};
use crate::Result;
use crate::convert::hf::HfModel;
use crate::convert::hf_to_gguf::{self, GgufOptions, OutType};
use crate::convert::tinylm_to_hf;
use crate::error::IoContext;

/// Where the model comes from.
#[derive(Debug)]
pub enum GgufSource {
    /// Input `hf`: a Hugging Face folder. `dir_name` is the folder's name, which the reference
    /// turns into `general.name`, so renaming the folder changes the output.
    Hf {
        /// The folder's file name.
        dir_name: String,
    },
    /// Inputs `checkpoint`, `config`, `tokenizer` (`tokenizer_config`): exported to an HF model
    /// in memory, then converted; byte-identical to converting the exported folder on disk.
    TinyLm(ExportHfAction),
}

/// Converts its source to a GGUF of type `outtype`.
#[derive(Debug)]
pub struct GgufAction {
    /// The source kind and its parameters.
    pub source: GgufSource,
    /// Type of the weights.
    pub outtype: OutType,
    /// `tokenizer.ggml.pre` override.
    pub pre: Option<String>,
}

impl GgufAction {
    fn model(&self, ctx: &RunCtx<'_>) -> Result<HfModel> {
        match &self.source {
            GgufSource::Hf { dir_name } => {
                let mut model = HfModel::open(&ctx.input("hf")?.path)?;
                model.dir_name = dir_name.clone();
                Ok(model)
            }
            GgufSource::TinyLm(export) => Ok(tinylm_to_hf::export(
                &export.inputs(ctx)?,
                &export.options(),
            )?),
        }
    }
}

impl Action for GgufAction {
    fn kind(&self) -> &'static str {
        "gguf"
    }

    fn version(&self) -> u32 {
        // 2: model cards parsed with YAML 1.1 booleans and last-wins duplicate keys (PyYAML's
        // behaviour); cards using them now give different general.* metadata.
        2
    }

    fn params(&self) -> serde_json::Value {
        let source = match &self.source {
            GgufSource::Hf { dir_name } => SourceParams::Hf { dir_name },
            GgufSource::TinyLm(export) => SourceParams::Tinylm(export.params_struct()),
        };
        to_params(&Params {
            source,
            outtype: self.outtype.name(),
            pre: self.pre.as_deref(),
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![MODEL_GGUF.into(), REPORT_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let outtype = self.outtype;
        let model = self.model(ctx)?;
        ctx.check_cancel()?;
        let opts = GgufOptions {
            outtype,
            pre_override: self.pre.clone(),
            name_override: None,
            threads: None,
            cancel: Some(ctx.cancel.clone()),
        };
        let path = ctx.output(MODEL_GGUF);
        let file = std::fs::File::create(&path).with_path(&path)?;
        let report = hf_to_gguf::convert_file(&model, &opts, &file)?;
        for warning in &report.warnings {
            tracing::warn!("{warning}");
        }
        write_json(ctx, REPORT_JSON, &report.summary())
    }
}

/// The key parameters of [`GgufAction`].
#[derive(Serialize)]
struct Params<'a> {
    source: SourceParams<'a>,
    outtype: &'static str,
    pre: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum SourceParams<'a> {
    Hf { dir_name: &'a str },
    Tinylm(ExportParams<'a>),
}
