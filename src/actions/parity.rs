//! `parity`: conversion parity of a converted base GGUF. The source weights (tiny-lm checkpoint
//! or HF folder) and the GGUF run the same fixed prompts in exact f32; logits that differ by more
//! than rounding (normalised MSE above [`MAX_NMSE`]) mean a layout or permutation mistake in the
//! conversion, and fail the build.

use serde::{Deserialize, Serialize};

use super::{Action, ExportHfAction, PARITY_JSON, RunCtx, to_params, write_json};
use crate::infer::{self, eval::nmse};
use crate::{Error, Result};

/// The largest normalised MSE of GGUF logits against source logits that counts as equal (f16
/// and bf16 weight rounding stay orders of magnitude below it).
pub const MAX_NMSE: f64 = 1e-4;

/// Fixed prompts: prose, code, digits, whitespace and punctuation.
const PROMPTS: [&str; 3] = [
    "The quick brown fox jumps over the lazy dog. Once upon a time, there was a little",
    "def add(a, b):\n    return a + b  # 1234 + 5678 = 6912\n",
    "  Hello,   WORLD!!  It's 3.14159... \"quoted\" (parens) [brackets] {braces}",
];

/// Where the source weights come from.
#[derive(Debug)]
pub enum ParitySource {
    /// Input `hf`: a Hugging Face folder.
    Hf,
    /// Inputs `checkpoint`, `config`, `tokenizer` (`tokenizer_config`): a tiny-lm run.
    TinyLm(ExportHfAction),
}

/// Compares the logits of the source weights with those of input `gguf`.
#[derive(Debug)]
pub struct ParityAction {
    /// Model name (for messages).
    pub model: String,
    /// The source kind.
    pub source: ParitySource,
}

/// What `parity` writes (`parity.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParityRecord {
    /// Prompts run.
    pub prompts: usize,
    /// Tokens run in all.
    pub tokens: usize,
    /// Normalised MSE of the GGUF's logits against the source's, per prompt.
    pub nmse: Vec<f64>,
    /// The largest allowed.
    pub max_nmse: f64,
}

#[derive(Serialize)]
struct Params<'a> {
    model: &'a str,
    source: &'static str,
    arch: Option<&'static str>,
    max_nmse: f64,
    prompts: &'a [&'a str],
}

impl Action for ParityAction {
    fn kind(&self) -> &'static str {
        "parity"
    }

    fn version(&self) -> u32 {
        1
    }

    fn params(&self) -> serde_json::Value {
        let (source, arch) = match &self.source {
            ParitySource::Hf => ("hf", None),
            ParitySource::TinyLm(e) => ("tinylm", e.arch.map(|a| a.name())),
        };
        to_params(&Params {
            model: &self.model,
            source,
            arch,
            max_nmse: MAX_NMSE,
            prompts: &PROMPTS,
        })
    }

    fn outputs(&self) -> Vec<String> {
        vec![PARITY_JSON.into()]
    }

    fn run(&self, ctx: &RunCtx<'_>) -> Result<()> {
        let gguf = infer::load_with_tokenizer(&ctx.input("gguf")?.path)?;
        ctx.check_cancel()?;
        let source = match &self.source {
            ParitySource::Hf => infer::load_hf_dir(&ctx.input("hf")?.path)?,
            ParitySource::TinyLm(e) => infer::load_tinylm(&e.inputs(ctx)?)?,
        };
        let max_len = gguf.model.config.n_ctx_train.clamp(1, 64);
        let mut record = ParityRecord {
            prompts: PROMPTS.len(),
            tokens: 0,
            nmse: Vec::new(),
            max_nmse: MAX_NMSE,
        };
        for (i, prompt) in PROMPTS.iter().enumerate() {
            ctx.check_cancel()?;
            let mut tokens = gguf.tokenizer.encode(prompt, true, false);
            tokens.truncate(max_len);
            let want = source.logits(&tokens)?;
            let got = gguf.model.logits(&tokens)?;
            if want.len() != got.len() {
                return Err(Error::Build(format!(
                    "model `{}`: conversion parity failed: the base GGUF has {} logits per token, \
                     the source weights {}",
                    self.model,
                    got.len() / tokens.len().max(1),
                    want.len() / tokens.len().max(1)
                )));
            }
            let e = nmse(&want, &got);
            record.tokens += tokens.len();
            record.nmse.push(e);
            if e.is_nan() || e > MAX_NMSE {
                return Err(Error::Build(format!(
                    "model `{}`: conversion parity failed: the base GGUF's logits differ from the \
                     source weights' on prompt {} (normalised MSE {e:.3e} > {MAX_NMSE:e}); the \
                     conversion lost or permuted something: please report it with the model's \
                     config",
                    self.model,
                    i + 1
                )));
            }
        }
        write_json(ctx, PARITY_JSON, &record)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::actions::ResolvedInput;
    use crate::cache::Digest;
    use crate::convert::hf_to_gguf::{self, GgufOptions, OutType};
    use crate::convert::tinylm_to_hf::{self, ExportOptions, HfDtype, TinyLmInputs};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn input(name: &str, path: PathBuf) -> ResolvedInput {
        ResolvedInput {
            name: name.into(),
            path,
            digest: Digest::of(b""),
            size: 0,
        }
    }

    fn source_inputs(dir: &Path) -> Vec<ResolvedInput> {
        vec![
            input("checkpoint", dir.join("last.ckpt")),
            input("config", dir.join("model.yaml")),
            input("tokenizer", dir.join("tokenizer.pkl")),
            input("tokenizer_config", dir.join("tokenizer.yaml")),
        ]
    }

    /// The f16 GGUF of a tiny-lm run, as the `gguf` action writes it.
    fn f16_gguf(dir: &Path, out: &Path) {
        let inputs = TinyLmInputs {
            checkpoint: dir.join("last.ckpt"),
            config: dir.join("model.yaml"),
            tokenizer: dir.join("tokenizer.pkl"),
            tokenizer_config: Some(dir.join("tokenizer.yaml")),
            arch: None,
        };
        let hf = tinylm_to_hf::export(&inputs, &ExportOptions::default()).unwrap();
        let opts = GgufOptions {
            outtype: OutType::F16,
            pre_override: Some("llama-bpe".into()),
            name_override: None,
            threads: None,
            cancel: None,
        };
        let mut f = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
        hf_to_gguf::convert(&hf, &opts, &mut f).unwrap();
        std::io::Write::flush(&mut f).unwrap();
    }

    fn run(source: &Path, gguf: &Path, out: &Path) -> Result<ParityRecord> {
        let mut inputs = source_inputs(source);
        inputs.push(input("gguf", gguf.to_path_buf()));
        let action = ParityAction {
            model: "m".into(),
            source: ParitySource::TinyLm(ExportHfAction {
                arch: None,
                dtype: HfDtype::F32,
                dir_name: "m".into(),
            }),
        };
        let cancel = Arc::new(AtomicBool::new(false));
        action.run(&RunCtx {
            inputs: &inputs,
            out_dir: out,
            cancel: &cancel,
        })?;
        let bytes = std::fs::read(out.join(PARITY_JSON)).unwrap();
        Ok(serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn a_faithful_conversion_passes_and_another_models_gguf_fails() {
        let tmp = tempfile::tempdir().unwrap();
        let gpt2 = fixture("tinylm-gpt2");
        let ours = tmp.path().join("ours.gguf");
        f16_gguf(&gpt2, &ours);
        let record = run(&gpt2, &ours, tmp.path()).unwrap();
        assert_eq!(record.nmse.len(), PROMPTS.len());
        assert!(
            record.nmse.iter().all(|e| *e > 0.0 && *e < MAX_NMSE),
            "{record:?}"
        );

        // A GGUF with the same vocabulary size and other weights: what a permutation or layout
        // mistake looks like from the outside.
        let other = tmp.path().join("other.gguf");
        f16_gguf(&fixture("synthetic-llama3-nobias"), &other);
        let err = run(&gpt2, &other, tmp.path()).unwrap_err().to_string();
        assert!(err.contains("conversion parity failed"), "{err}");
        assert!(err.contains("normalised MSE"), "{err}");
    }
}
