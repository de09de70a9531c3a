//! `release`: the checksums and the description of a release bundle.
//!
//! The bundle's GGUFs and Modelfiles are the upstream actions' outputs, materialized next to the
//! two files this action writes: `SHA256SUMS` (what users and Ollama verify) and `release.json`.

use std::io::Read;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{Action, RELEASE_JSON, ResolvedInput, RunCtx, SHA256SUMS, to_params, write_json};
use crate::{Error, Result};

/// One (model, quant) of a release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseItem {
    /// Model name.
    pub model: String,
    /// Quant name, if the model is quantized.
    pub quant: Option<String>,
    /// File name of the GGUF in the bundle.
    pub gguf_file: String,
    /// File name of the Modelfile in the bundle.
    pub modelfile_file: String,
    /// Input names of the model's sources, whose digests are recorded.
    pub sources: Vec<String>,
    /// Input name of the quantization report, if any.
    pub report: Option<String>,
    /// Input name of the lint report.
    pub lint: String,
    /// Input name of the Modelfile's template choice (`template.json`).
    pub template: String,
}

/// The key parameters of [`ReleaseAction`].
#[derive(Serialize)]
struct Params<'a> {
    name: &'a str,
    version: &'a str,
    items: &'a [ReleaseItem],
    tinylm: &'static str,
}

/// Writes `SHA256SUMS` and `release.json` for a set of GGUFs and Modelfiles.
#[derive(Debug)]
pub struct ReleaseAction {
    /// Release name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// The (model, quant) pairs, in manifest order.
    pub items: Vec<ReleaseItem>,
}

impl ReleaseAction {
    /// Input name of an item's GGUF.
    pub fn gguf_input(item: &ReleaseItem) -> String {
        format!("gguf/{}", item.gguf_file)
    }

    /// Input name of an item's Modelfile.
    pub fn modelfile_input(item: &ReleaseItem) -> String {
        format!("modelfile/{}", item.modelfile_file)
    }
}

impl Action for ReleaseAction {
    fn kind(&self) -> &'static str {
        "release"
    }

    fn version(&self) -> u32 {
        2
    }

    fn params(&self) -> serde_json::Value {
        to_params(&Params {
            name: &self.name,
            version: &self.version,
            items: &self.items,
            tinylm: crate::VERSION,
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![SHA256SUMS.into(), RELEASE_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        // Files are hashed in parallel; each sha256 is sequential by nature.
        let mut files: Vec<(&str, &ResolvedInput)> = Vec::new();
        for item in &self.items {
            files.push((&item.gguf_file, ctx.input(&Self::gguf_input(item))?));
            files.push((
                &item.modelfile_file,
                ctx.input(&Self::modelfile_input(item))?,
            ));
        }
        let sums: Vec<String> = files
            .par_iter()
            .map(|(_, input)| {
                ctx.check_cancel()?;
                sha256_file(&input.path)
            })
            .collect::<Result<_>>()?;
        let sha = |name: &str| -> &str {
            files
                .iter()
                .position(|(f, _)| *f == name)
                .map_or("", |i| sums[i].as_str())
        };

        let mut lines: Vec<String> = files
            .iter()
            .zip(&sums)
            .map(|((f, _), s)| format!("{s}  {f}\n"))
            .collect();
        lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
        lines.dedup();
        let path = ctx.output(SHA256SUMS);
        std::fs::write(&path, lines.concat()).map_err(|e| Error::io(&path, e))?;

        let mut models: Vec<serde_json::Value> = Vec::new();
        for item in &self.items {
            let gguf = ctx.input(&Self::gguf_input(item))?;
            let mf = ctx.input(&Self::modelfile_input(item))?;
            let mut sources = serde_json::Map::new();
            for s in &item.sources {
                let input = ctx.input(s)?;
                sources.insert(
                    // Input names are `source/<model>/<name>`; list them by `<name>`.
                    s.rsplit('/').next().unwrap_or(s).to_string(),
                    json!(input.digest.to_hex()),
                );
            }
            let quantization = match &item.report {
                Some(r) => {
                    let p = &ctx.input(r)?.path;
                    let text = std::fs::read(p).map_err(|e| Error::io(p, e))?;
                    serde_json::from_slice(&text)
                        .map_err(|e| Error::format(p, format!("bad quantization report: {e}")))?
                }
                None => serde_json::Value::Null,
            };
            models.push(json!({
                "model": item.model,
                "quant": item.quant,
                "gguf": { "file": item.gguf_file, "size": gguf.size, "sha256": sha(&item.gguf_file), "blake3": gguf.digest.to_hex() },
                "modelfile": { "file": item.modelfile_file, "size": mf.size, "sha256": sha(&item.modelfile_file), "blake3": mf.digest.to_hex() },
                "sources": sources,
                "quantization": quantization,
                "template": read_json(&ctx.input(&item.template)?.path)?,
                "lint": read_json(&ctx.input(&item.lint)?.path)?,
            }));
        }
        let doc = json!({
            "name": self.name,
            "version": self.version,
            "tinylm_version": crate::VERSION,
            "artifacts": models,
        });
        write_json(ctx, RELEASE_JSON, &doc)
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))
}
