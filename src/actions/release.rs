//! `release`: the checksums and the description of a release bundle.
//!
//! The bundle's GGUFs and Modelfiles are the upstream actions' outputs, materialized next to the
//! two files this action writes: `SHA256SUMS` (what users and Ollama verify) and `release.json`.

use std::io::Read;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{
    Action, EvalRecord, README_MD, RELEASE_JSON, ResolvedInput, RunCtx, SHA256SUMS, read_eval,
    to_params, write_json,
};
use crate::quant::Imatrix;
use crate::{Error, Result};

/// One (model, quant) of a release.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseItem {
    /// Model name.
    pub model: String,
    /// Quant (artifact) name, if the model is quantized.
    pub quant: Option<String>,
    /// File type of the quant (`q4_k_m`), if the model is quantized.
    pub quant_type: Option<String>,
    /// The importance matrix the quant was made with, if any.
    pub imatrix: Option<ReleaseImatrix>,
    /// Input name of its eval record (`eval.json`), with `[eval]`.
    pub eval: Option<String>,
    /// Input name of its quality verdict (`quality.json`), with budgets.
    pub quality: Option<String>,
    /// Input name of the model's conversion parity record (`parity.json`), with `[eval]`.
    pub parity: Option<String>,
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

/// Which importance matrix a release item was quantized with.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseImatrix {
    /// Input name of the imatrix file.
    pub input: String,
    /// The name the quant records (`quantize.imatrix.file`).
    pub file: String,
    /// Whether tinylm computed it (`imatrix = { text = … }`) rather than being given it.
    pub computed: bool,
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
        // 3: artifacts carry their quant's `type`, the `imatrix` they used, `eval` figures and
        // the `quality` verdict; a README.md model card.
        3
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
        vec![SHA256SUMS.into(), RELEASE_JSON.into(), README_MD.into()]
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
        let mut rows: Vec<CardRow> = Vec::new();
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
            let imatrix = match &item.imatrix {
                Some(im) => {
                    let input = ctx.input(&im.input)?;
                    let m = Imatrix::load(&input.path)?;
                    json!({
                        "file": im.file,
                        "computed": im.computed,
                        "blake3": input.digest.to_hex(),
                        "size": input.size,
                        "datasets": m.datasets,
                        "chunks": m.chunk_count,
                        "chunk_size": m.chunk_size,
                    })
                }
                None => serde_json::Value::Null,
            };
            let eval = match &item.eval {
                Some(e) => Some(read_eval(&ctx.input(e)?.path)?),
                None => None,
            };
            let quality = match &item.quality {
                Some(q) => read_json(&ctx.input(q)?.path)?,
                None => serde_json::Value::Null,
            };
            let parity = match &item.parity {
                Some(q) => read_json(&ctx.input(q)?.path)?,
                None => serde_json::Value::Null,
            };
            rows.push(CardRow {
                model: item.model.clone(),
                quant: item.quant.clone(),
                quant_type: item.quant_type.clone(),
                file: item.gguf_file.clone(),
                size: gguf.size,
                bits_per_weight: super::eval::bits_per_weight(&gguf.path)?,
                eval: eval.clone(),
            });
            models.push(json!({
                "model": item.model,
                "quant": item.quant,
                "type": item.quant_type,
                "imatrix": imatrix,
                "eval": eval,
                "quality": quality,
                "parity": parity,
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
        write_json(ctx, RELEASE_JSON, &doc)?;
        let card = model_card(&self.name, &self.version, &rows);
        let path = ctx.output(README_MD);
        std::fs::write(&path, card).map_err(|e| Error::io(&path, e))
    }
}

/// One row of the model card.
struct CardRow {
    model: String,
    quant: Option<String>,
    quant_type: Option<String>,
    file: String,
    size: u64,
    bits_per_weight: f64,
    eval: Option<EvalRecord>,
}

/// The release's README.md: one row per artifact with its size and quality figures.
fn model_card(name: &str, version: &str, rows: &[CardRow]) -> String {
    use std::fmt::Write as _;
    let dash = || "—".to_string();
    let mut s = format!("# {name} {version}\n\n");
    let _ = writeln!(
        s,
        "Built with tinylm {}. Each GGUF's checksum is in `SHA256SUMS`; every figure below is also \
         in `release.json`.\n",
        crate::VERSION
    );
    s.push_str(
        "| model | quant | type | file | size | bits/weight | PPL | mean KLD | same top |\n\
         |---|---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let kld = r.eval.as_ref().and_then(|e| e.kld.as_ref());
        let _ = writeln!(
            s,
            "| {} | {} | {} | `{}` | {} | {:.2} | {} | {} | {} |",
            r.model,
            r.quant.clone().unwrap_or_else(dash),
            r.quant_type.clone().unwrap_or_else(dash),
            r.file,
            human_size(r.size),
            r.bits_per_weight,
            r.eval
                .as_ref()
                .map_or_else(dash, |e| format!("{:.4} ± {:.4}", e.ppl, e.ppl_uncertainty)),
            kld.map_or_else(dash, |k| format!("{:.6}", k.mean)),
            kld.map_or_else(dash, |k| format!("{:.2} %", 100.0 * k.same_top)),
        );
    }
    if let Some(e) = rows.iter().find_map(|r| r.eval.as_ref()) {
        let _ = writeln!(
            s,
            "\nPerplexity on `{}` ({} chunks of {} tokens, {} positions scored); mean KL-divergence \
             and same-top-token rate against the model's base GGUF.",
            e.text, e.chunks, e.ctx, e.scored
        );
    } else {
        s.push_str(
            "\nNo quality figures: add an `[eval]` section to tinylm.toml to measure perplexity and \
             KL-divergence.\n",
        );
    }
    s
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
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
