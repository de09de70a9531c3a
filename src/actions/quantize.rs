//! `quantize`: a GGUF in one of llama-quantize's file types, made from a float GGUF.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;

use super::{Action, MODEL_GGUF, REPORT_JSON, RunCtx, to_params, write_json};
use crate::formats::gguf::GgufFile;
use crate::fsutil::reflink_or_copy;
use crate::quant::{FileType, Imatrix, QuantizeOptions, Recipe, quantize_file};
use crate::{Error, Result};

/// Quantizes its `source` input to `quant` (a llama-quantize file type), with the importance
/// matrix of input `imatrix` when `imatrix_file` is set.
#[derive(Debug)]
pub struct QuantizeAction {
    /// Target file type.
    pub quant: FileType,
    /// Per-tensor overrides.
    pub recipe: Recipe,
    /// With an `imatrix` input: the name recorded as `quantize.imatrix.file` in the output
    /// (llama-quantize records the path it was given).
    pub imatrix_file: Option<String>,
}

/// The key parameters of [`QuantizeAction`]. The defaults serialize to nothing, so plain
/// quantizations keep the keys they had before recipes and imatrices existed.
#[derive(Serialize)]
struct Params<'a> {
    /// The file type's lower-case name (`q4_k_m`).
    quant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipe: Option<&'a Recipe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    imatrix_file: Option<&'a str>,
}

impl Action for QuantizeAction {
    fn kind(&self) -> &'static str {
        "quantize"
    }

    fn version(&self) -> u32 {
        // 2: error statistics summed over 8 partial sums per 256 elements (report.json changed).
        2
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params {
            quant: self.quant.name().to_ascii_lowercase(),
            recipe: (!self.recipe.is_default()).then_some(&self.recipe),
            imatrix_file: self.imatrix_file.as_deref(),
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![MODEL_GGUF.into(), REPORT_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let ftype = self.quant;
        let src = &ctx.input("source")?.path;
        let out = ctx.output(MODEL_GGUF);
        // A source that already is the requested type is used as is: rewriting it would
        // reorder tensors and metadata (as llama-quantize does) for no gain.
        let src_type = GgufFile::open(src)?
            .get("general.file_type")
            .and_then(|v| v.as_u64());
        let plain = self.recipe.is_default() && self.imatrix_file.is_none();
        let report = if plain && src_type == Some(u64::from(ftype.id())) {
            reflink_or_copy(src, &out)?;
            json!({ "ftype": ftype.name(), "identity": true })
        } else {
            let imatrix = match &self.imatrix_file {
                Some(name) => {
                    let mut m = Imatrix::load(&ctx.input("imatrix")?.path)?;
                    m.file = name.clone();
                    Some(Arc::new(m))
                }
                None => None,
            };
            let opts = QuantizeOptions {
                threads: rayon::current_num_threads(),
                cancel: Some(ctx.cancel.clone()),
                recipe: self.recipe.clone(),
                imatrix,
                ..QuantizeOptions::new(ftype)
            };
            serde_json::to_value(quantize_file(src, &out, &opts)?)
                .map_err(|e| Error::Build(e.to_string()))?
        };
        write_json(ctx, REPORT_JSON, &report)
    }
}
