//! `imatrix`: an importance matrix computed natively from a model's base GGUF on a calibration
//! text, written in llama.cpp's GGUF imatrix format (what `tinylm imatrix` writes).

use serde::Serialize;

use super::{Action, IMATRIX_GGUF, RunCtx, to_params};
use crate::infer::eval::{self, EvalOptions};
use crate::infer::{self, Numerics, imatrix};
use crate::{Error, IoContext, Result};

/// Computes an imatrix from input `model` (a GGUF) on input `text`.
#[derive(Debug)]
pub struct ImatrixAction {
    /// The text's path as the manifest gives it: recorded in `imatrix.datasets`, as
    /// `tinylm imatrix --text PATH` records it.
    pub dataset: String,
    /// Tokens per chunk.
    pub ctx: usize,
    /// At most this many chunks (all that fit when `None`).
    pub chunks: Option<usize>,
}

/// The key parameters of [`ImatrixAction`].
#[derive(Serialize)]
struct Params<'a> {
    dataset: &'a str,
    ctx: usize,
    chunks: Option<usize>,
    /// llama.cpp's CPU numerics (f16 KV cache, rounded matmul inputs), as the CLI's default.
    numerics: &'static str,
}

impl Action for ImatrixAction {
    fn kind(&self) -> &'static str {
        "imatrix"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params {
            dataset: &self.dataset,
            ctx: self.ctx,
            chunks: self.chunks,
            numerics: "llama.cpp",
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![IMATRIX_GGUF.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let model_path = &ctx.input("model")?.path;
        let text_path = &ctx.input("text")?.path;
        let m = infer::load_with_tokenizer(model_path)?;
        let text = std::fs::read(text_path).with_path(text_path)?;
        let text = String::from_utf8(text).map_err(|_| {
            Error::Build(format!("calibration text `{}` is not UTF-8", self.dataset))
        })?;
        let opts = EvalOptions {
            n_ctx: self.ctx,
            max_chunks: self.chunks,
            numerics: Numerics::llama_cpp(),
        };
        let tokens = eval::tokenize(&m.tokenizer, &text);
        let bos = if m.tokenizer.add_bos {
            m.tokenizer.bos
        } else {
            None
        };
        let mut progress = |_done: usize| {};
        ctx.check_cancel()?;
        let im = imatrix::collect(
            &m.model,
            &tokens,
            bos,
            &opts,
            false,
            &self.dataset,
            &mut progress,
        )
        .map_err(|e| Error::Build(format!("imatrix on `{}`: {e}", self.dataset)))?;
        ctx.check_cancel()?;
        let path = ctx.output(IMATRIX_GGUF);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).with_path(&path)?);
        im.write_gguf(&mut f)?;
        std::io::Write::flush(&mut f).with_path(&path)?;
        Ok(())
    }
}
