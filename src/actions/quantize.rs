//! `quantize`: a GGUF in one of llama-quantize's file types, made from a float GGUF.

use serde::Serialize;
use serde_json::json;

use super::{Action, MODEL_GGUF, REPORT_JSON, RunCtx, to_params, write_json};
use crate::formats::gguf::GgufFile;
use crate::fsutil::reflink_or_copy;
use crate::quant::{FileType, QuantizeOptions, quantize_file};
use crate::{Error, Result};

/// Quantizes its `source` input to `quant` (a llama-quantize file type).
#[derive(Debug)]
pub struct QuantizeAction {
    /// Target file type.
    pub quant: FileType,
}

/// The key parameters of [`QuantizeAction`].
#[derive(Serialize)]
struct Params {
    /// The file type's lower-case name (`q4_k_m`).
    quant: String,
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
        let report = if src_type == Some(u64::from(ftype.id())) {
            reflink_or_copy(src, &out)?;
            json!({ "ftype": ftype.name(), "identity": true })
        } else {
            let opts = QuantizeOptions {
                threads: rayon::current_num_threads(),
                cancel: Some(ctx.cancel.clone()),
                ..QuantizeOptions::new(ftype)
            };
            serde_json::to_value(quantize_file(src, &out, &opts)?)
                .map_err(|e| Error::Build(e.to_string()))?
        };
        write_json(ctx, REPORT_JSON, &report)
    }
}
