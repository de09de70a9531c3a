//! `import`: brings an existing GGUF into the cache, after checking it is a readable GGUF.

use serde::Serialize;

use super::{Action, MODEL_GGUF, RunCtx, to_params};
use crate::Result;
use crate::formats::gguf::GgufFile;
use crate::fsutil::reflink_or_copy;

/// The key parameters of [`ImportGguf`]: none, the content is the input's digest.
#[derive(Serialize)]
struct Params {}

/// Copies a user's GGUF into the store (reflinked where the filesystem allows).
#[derive(Debug)]
pub struct ImportGguf;

impl Action for ImportGguf {
    fn kind(&self) -> &'static str {
        "import"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params {})
    }

    fn outputs(&self) -> Vec<String> {
        vec![MODEL_GGUF.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let src = &ctx.input("source")?.path;
        // Fail here, with the file's name, rather than in Ollama or llama.cpp later.
        let gguf = GgufFile::open(src)?;
        tracing::info!(
            "importing {} ({} tensors)",
            src.display(),
            gguf.tensors.len()
        );
        let dst = ctx.output(MODEL_GGUF);
        reflink_or_copy(src, &dst)
    }
}
