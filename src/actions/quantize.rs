//! `quantize`: a GGUF in one of llama-quantize's file types, made from a float GGUF.

use std::str::FromStr;

use serde_json::json;

use super::{Action, RunCtx};
use crate::formats::gguf::GgufFile;
use crate::quant::{FileType, QuantizeOptions, quantize_file};
use crate::{Error, Result};

/// Quantizes its `source` input to `quant` (a llama-quantize file type, lower-case).
#[derive(Debug)]
pub struct QuantizeAction {
    /// Target file type name as written in the manifest (`q4_k_m`).
    pub quant: String,
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
        json!({ "quant": self.quant })
    }

    fn outputs(&self) -> Vec<String> {
        vec!["model.gguf".into(), "report.json".into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let ftype = FileType::from_str(&self.quant).map_err(|e| Error::Build(e.to_string()))?;
        let src = &ctx.input("source")?.path;
        let out = ctx.output("model.gguf");
        // A source that already is the requested type is used as is: rewriting it would
        // reorder tensors and metadata (as llama-quantize does) for no gain.
        let src_type = GgufFile::open(src)?
            .get("general.file_type")
            .and_then(|v| v.as_u64());
        let report = if src_type == Some(u64::from(ftype.id())) {
            reflink_copy::reflink_or_copy(src, &out).map_err(|e| Error::io(&out, e))?;
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
        let mut text =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Build(e.to_string()))?;
        text.push('\n');
        let path = ctx.output("report.json");
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}
