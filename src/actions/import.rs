//! `import`: brings an existing GGUF into the cache, after checking it is a readable GGUF.

use super::{Action, RunCtx};
use crate::formats::gguf::GgufFile;
use crate::{Error, Result};

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
        serde_json::json!({})
    }

    fn outputs(&self) -> Vec<String> {
        vec!["model.gguf".into()]
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
        let dst = ctx.output("model.gguf");
        reflink_copy::reflink_or_copy(src, &dst).map_err(|e| Error::io(&dst, e))?;
        Ok(())
    }
}
