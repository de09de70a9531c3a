//! Hugging Face folder (or an in-memory HF view) → GGUF, byte-identical to llama.cpp's
//! `convert_hf_to_gguf.py` (see `docs/hf-to-gguf.md`).
//!
//! [`plan`] decides everything up front (KVs, tensor names, shapes, types, order) without touching
//! tensor data; [`convert`] then streams the header and each tensor's bytes in order, so peak
//! memory is a few row chunks whatever the model size. The caller owns the output (temp file +
//! rename).
//!
//! What differs between architectures lives in [`arch`], one module per architecture behind
//! [`Architecture`]; the byte-level BPE vocabulary in [`bpe_vocab`], gguf-py's special tokens,
//! merges and chat templates in [`special_vocab`], `general.*` metadata in [`metadata`].
//!
//! Deltas kept on purpose (the reference is wrong or non-deterministic there):
//! - GPT-2 `h.N.attn.bias` / `h.N.attn.masked_bias` buffers are dropped (the reference fails).
//! - GPT-2 configs without `n_ctx` use `n_positions` (the reference raises KeyError).
//! - custom BPE tokenizers get a structural `tokenizer.ggml.pre` (the reference refuses them).
//! - `tokenizer.chat_templates` (named templates) is sorted (the reference writes a Python set).

pub mod arch;
mod bpe_vocab;
mod error;
mod hparams;
mod json;
mod layout;
mod metadata;
mod model_card;
mod pretok;
mod special_vocab;
mod spm_vocab;
mod tensors;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::Value as Json;

pub use arch::{Architecture, VocabKind};
pub use bpe_vocab::{CHKTXT, HfTokenizer};
pub use error::ConvertError;
pub use hparams::Hparams;
pub use metadata::{id_to_title, model_id_components, size_label};
pub use pretok::{LLAMA_CPP_PRE_NAMES, PreSource, check_pre_name, pre_for_hash, structural_pre};
pub use spm_vocab::SpmVocab;
pub use tensors::{PlannedTensor, Source, Transform};

use self::arch::Skip;
use self::error::{Result, cfg, file_err, tensor_err};
use crate::convert::hf::HfModel;
use crate::formats::DType;
use crate::formats::gguf::{Array, GgmlType, GgufWriter, TensorSpec, Value};
use crate::formats::tensor::Tensor;

/// Type of the converted weights: `--outtype` of the reference, the manifest's `outtype` and
/// `tinylm convert --outtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OutType {
    /// Everything F32.
    #[value(help = "Everything f32")]
    F32,
    /// F16 weights, F32 norms/biases.
    #[value(help = "f16 weights")]
    F16,
    /// BF16 weights.
    #[value(name = "bf16", help = "bf16 weights")]
    BF16,
    /// Q8_0 weights.
    #[value(name = "q8_0", help = "Q8_0 weights")]
    Q8_0,
    /// BF16 if the first ≥2-D tensor is bf16, F16 otherwise.
    #[default]
    #[value(help = "bf16 if the source weights are bf16, else f16")]
    Auto,
}

impl OutType {
    /// Every outtype, in the order error messages list them.
    pub const ALL: [OutType; 5] = [
        OutType::F32,
        OutType::F16,
        OutType::BF16,
        OutType::Q8_0,
        OutType::Auto,
    ];

    /// Parses `f32`, `f16`, `bf16`, `q8_0`, `auto` (any case).
    pub fn parse(s: &str) -> Option<OutType> {
        Self::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(s))
    }

    /// The reference's name.
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::Q8_0 => "q8_0",
            OutType::Auto => "auto",
        }
    }

    fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 | OutType::Auto => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 => 7,
        }
    }

    fn weight_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 | OutType::Auto => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }
}

/// Conversion options.
#[derive(Debug, Clone, Default)]
pub struct GgufOptions {
    /// Output type for weights.
    pub outtype: OutType,
    /// Forces `tokenizer.ggml.pre` (manifest `pre = "…"`).
    pub pre_override: Option<String>,
    /// Forces `general.name` (the reference's `--model-name`).
    pub name_override: Option<String>,
    /// Worker threads for tensor encoding (`None`: rayon's global pool).
    pub threads: Option<usize>,
    /// Set to `true` to stop; the conversion then fails with [`ConvertError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
}

/// What a conversion did.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertReport {
    /// `general.architecture`.
    pub arch: String,
    /// The HF architecture.
    pub hf_arch: String,
    /// The effective outtype (`auto` resolved).
    pub outtype: OutType,
    /// Number of tensors written.
    pub tensor_count: usize,
    /// Total parameters (elements of every output tensor).
    pub params: u64,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// How `pre` was chosen.
    pub pre_source: PreSource,
    /// The tokenizer's chkhsh, when computed.
    pub chkhsh: Option<String>,
    /// Warnings worth showing to the user (approximations, dropped tensors, fallbacks).
    pub warnings: Vec<String>,
    /// Size of the output in bytes.
    pub file_size: u64,
}

/// A conversion report as JSON: the `gguf` action's `report.json` and `convert --json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConvertSummary {
    /// `general.architecture`.
    pub arch: String,
    /// The HF architecture.
    pub hf_arch: String,
    /// The effective outtype.
    pub outtype: &'static str,
    /// Number of tensors written.
    pub tensors: usize,
    /// Total parameters.
    pub params: u64,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// How `pre` was chosen (`Hash`, `Override`, …).
    pub pre_source: String,
    /// The tokenizer's chkhsh, when computed.
    pub chkhsh: Option<String>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// Size of the output in bytes.
    pub bytes: u64,
}

impl ConvertReport {
    /// The report as JSON, for `--json` output and the `gguf` action's `report.json`.
    pub fn summary(&self) -> ConvertSummary {
        ConvertSummary {
            arch: self.arch.clone(),
            hf_arch: self.hf_arch.clone(),
            outtype: self.outtype.name(),
            tensors: self.tensor_count,
            params: self.params,
            pre: self.pre.clone(),
            pre_source: format!("{:?}", self.pre_source),
            chkhsh: self.chkhsh.clone(),
            warnings: self.warnings.clone(),
            bytes: self.file_size,
        }
    }
}

/// A complete conversion plan: the header and where every tensor's bytes come from.
pub struct ConversionPlan {
    /// KVs and tensor specs, ready to write.
    pub writer: GgufWriter,
    /// Output tensors in file order.
    pub tensors: Vec<PlannedTensor>,
    /// The report (file size filled in).
    pub report: ConvertReport,
}

/// Plans the conversion: validates the model, decides KVs and tensors. Reads no tensor data.
pub fn plan(model: &HfModel, opts: &GgufOptions) -> Result<ConversionPlan> {
    let config = model.files.get("config.json").ok_or_else(|| {
        file_err(
            "config.json",
            "missing: a Hugging Face model folder needs config.json",
        )
    })?;
    let hp = Hparams::parse(config)?;
    let (arch, hf_arch) = arch::detect(&hp)?;
    let block_count = hp.req_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;
    let mut warnings: Vec<String> = Vec::new();
    arch.check_variant(model, &hp)?;
    // Inconsistent hyperparameters are reported by key before any tensor is looked at (the
    // vocabulary size is not known yet and not checked here).
    arch.layout(&hp, 0)?;

    // ---- tensors, in the reference's order: extra tensors, then part by part; within a part,
    // safetensors tensors sorted by name (gguf-py's SafetensorsLocal), a torch pickle's in its
    // stored dict order (what torch.load returns).
    let mut order: Vec<&Tensor> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for wf in &model.weights {
        let mut names: Vec<&Tensor> = wf.tensors.iter().collect();
        if !wf.is_pytorch_bin() {
            names.sort_by(|a, b| a.name.cmp(&b.name));
        }
        for t in names {
            if !seen.insert(t.name.as_str()) {
                return Err(tensor_err(
                    &t.name,
                    format!(
                        "appears in more than one weight file (again in {})",
                        wf.file_name
                    ),
                ));
            }
            order.push(t);
        }
    }
    if order.is_empty() {
        return Err(file_err(&model.dir_name, "the model has no weights"));
    }

    // outtype auto: first tensor with ≥ 2 dims decides.
    let outtype = match opts.outtype {
        OutType::Auto => match order.iter().find(|t| t.shape.len() >= 2).map(|t| t.dtype) {
            Some(DType::BF16) => OutType::BF16,
            _ => OutType::F16,
        },
        o => o,
    };

    let mut planned: Vec<PlannedTensor> = arch.extra_tensors(&hp)?;
    let embedding_rows = arch.embedding_rows(model, &hp)?;
    let mut dropped: Vec<String> = Vec::new();
    let mut dropped_what = "";
    for t in order {
        let mut name = t.name.clone();
        if name.ends_with(".attention.masked_bias")
            || name.ends_with(".attention.bias")
            || name.ends_with(".rotary_emb.inv_freq")
        {
            continue;
        }
        match arch.skip(&name) {
            Skip::Keep => {}
            Skip::Ignore => continue,
            Skip::Drop { what } => {
                dropped.push(name);
                dropped_what = what;
                continue;
            }
        }
        if let Some(stripped) = name.strip_prefix("language_model.") {
            name = stripped.to_string();
        }
        name = name.replace("language_model.", "");
        name = arch.normalize_name(&hf_arch, name);
        if !t.dtype.is_float()
            && !matches!(
                t.dtype,
                DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8 | DType::Bool
            )
        {
            return Err(tensor_err(
                &t.name,
                format!("dtype {} cannot be converted", t.dtype),
            ));
        }
        let expected = t.shape.iter().product::<usize>() * t.dtype.size();
        if t.data.as_bytes().len() != expected {
            return Err(tensor_err(
                &t.name,
                format!(
                    "has {} bytes of data but shape {:?} × {} needs {expected}",
                    t.data.as_bytes().len(),
                    t.shape,
                    t.dtype
                ),
            ));
        }
        let mut shape = t.shape.clone();
        let transform = arch.transform(&name, &t.name, &mut shape, &hp)?;
        let gguf_name = arch.map_name(&name, block_count).ok_or_else(|| {
            let key = layout::block_count_key(&hp);
            tensor_err(
                &t.name,
                layout::block_beyond(&name, block_count, key).unwrap_or_else(|| {
                    format!(
                        "cannot be mapped to a GGUF tensor of architecture '{}'",
                        arch.gguf_name()
                    )
                }),
            )
        })?;
        let n_dims = shape.len();
        let mut ty = if n_dims <= 1
            || gguf_name.ends_with("_norm.weight")
            || gguf_name == "position_embd.weight"
            || !gguf_name.ends_with(".weight")
        {
            GgmlType::F32
        } else {
            outtype.weight_type()
        };
        if ty == GgmlType::Q8_0 && shape.last().is_none_or(|d| d % 32 != 0) {
            warnings.push(format!(
                "{gguf_name}: rows of {} elements cannot be Q8_0, falling back to F16",
                shape.last().copied().unwrap_or(0)
            ));
            ty = GgmlType::F16;
        }
        if shape.iter().product::<usize>() == 0 && n_dims == 0 {
            shape = vec![1];
        }
        let mut source = t.clone();
        if gguf_name == "token_embd.weight"
            && let Some(rows) = embedding_rows
            && shape.len() == 2
            && rows < shape[0]
        {
            source = first_rows(t, rows);
            shape[0] = rows;
        }
        planned.push(PlannedTensor {
            name: gguf_name,
            shape,
            ggml_type: ty,
            source: Source::Hf(source, transform),
            src_dtype: Some(t.dtype),
        });
    }
    if !dropped.is_empty() {
        warnings.push(format!(
            "dropped {} {dropped_what} ({}…): they are not weights",
            dropped.len(),
            dropped[0]
        ));
    }

    // vocab size must match the embedding rows
    let vocab_size = hp.opt_u32(&["vocab_size"])?;
    if let (Some(vs), Some(emb)) = (
        vocab_size,
        planned.iter().find(|p| p.name == "token_embd.weight"),
    ) && emb.shape.first().copied() != Some(vs as usize)
    {
        return Err(cfg(format!(
            "vocab_size is {vs} but the token embedding has {} rows: llama.cpp cannot load such a model",
            emb.shape.first().copied().unwrap_or(0)
        )));
    }

    // Every tensor llama.cpp will look for, shaped as the hyperparameters say.
    let n_vocab = match planned.iter().find(|p| p.name == "token_embd.weight") {
        Some(emb) => emb.shape.first().copied().unwrap_or(0),
        None => vocab_size.unwrap_or(0) as usize,
    };
    if let Some(layout) = arch.layout(&hp, n_vocab)? {
        layout.check(arch.gguf_name(), &planned)?;
    }

    let params: u64 = planned.iter().map(|p| p.n_elements() as u64).sum();

    // ---- KVs
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", Value::str(arch.gguf_name()));
    arch.early_params(&hp, &mut w)?;
    w.add_kv("general.type", Value::str("model"));
    let mut md = metadata::Metadata::load(model, opts.name_override.as_deref(), params as i64)?;
    if md.size_label.is_none() && params > 0 {
        md.size_label = Some(size_label(params));
    }
    md.write(&mut w);
    arch.write_params(&hp, outtype.file_type(), &mut w)?;
    w.add_kv("general.quantization_version", Value::U32(2));

    let (pre, pre_source, chkhsh) = write_vocab(model, &hp, arch, opts, &mut w, &mut warnings)?;

    for p in &planned {
        w.add_tensor(TensorSpec {
            name: p.name.clone(),
            ne: p.shape.iter().rev().map(|&d| d as u64).collect(),
            ggml_type: p.ggml_type,
        })
        .map_err(ConvertError::Write)?;
    }
    let file_size = w.file_size();
    let report = ConvertReport {
        arch: arch.gguf_name().to_string(),
        hf_arch,
        outtype,
        tensor_count: planned.len(),
        params,
        pre,
        pre_source,
        chkhsh,
        warnings,
        file_size,
    };
    Ok(ConversionPlan {
        writer: w,
        tensors: planned,
        report,
    })
}

/// The first `rows` rows of a 2-D tensor (a view of the same bytes when memory-mapped).
fn first_rows(t: &Tensor, rows: usize) -> Tensor {
    use crate::formats::tensor::TensorBytes;
    let row_bytes = t.shape.get(1).copied().unwrap_or(1) * t.dtype.size();
    let len = rows * row_bytes;
    let data = match &t.data {
        TensorBytes::Mapped { map, range } => TensorBytes::Mapped {
            map: map.clone(),
            range: range.start..range.start + len,
        },
        TensorBytes::Owned(buf) => TensorBytes::Owned(Arc::from(&buf[..len])),
    };
    let mut shape = t.shape.clone();
    shape[0] = rows;
    Tensor {
        name: t.name.clone(),
        dtype: t.dtype,
        shape,
        data,
    }
}

fn write_vocab(
    model: &HfModel,
    hp: &Hparams,
    arch: &dyn Architecture,
    opts: &GgufOptions,
    w: &mut GgufWriter,
    warnings: &mut Vec<String>,
) -> Result<(String, PreSource, Option<String>)> {
    arch.before_vocab(model, w)?;
    let spm = match arch.vocab_kind(model)? {
        VocabKind::Bpe => None,
        VocabKind::SentencePiece => {
            let sp = spm_vocab::load_model(model)?.ok_or_else(|| {
                file_err(
                    "tokenizer.model",
                    format!(
                        "missing: architecture '{}' needs the SentencePiece model",
                        arch.gguf_name()
                    ),
                )
            })?;
            Some(spm_vocab::from_model(model, hp, &sp)?)
        }
        VocabKind::Phi3SentencePiece => {
            let sp = spm_vocab::load_model(model)?.ok_or_else(|| {
                file_err(
                    "tokenizer.model",
                    "missing: Phi-3 needs the SentencePiece model (or tokenizer_class GPT2Tokenizer)",
                )
            })?;
            Some(spm_vocab::phi3_from_model(model, hp, &sp)?)
        }
        VocabKind::LlamaHf => {
            let tj = json::parse_json_file(model, "tokenizer.json")?
                .ok_or_else(|| file_err("tokenizer.json", "missing"))?;
            Some(spm_vocab::from_tokenizer_json(model, hp, &tj)?)
        }
    };
    if let Some(v) = spm {
        if opts.pre_override.is_some() {
            warnings.push(
                "`pre` is ignored: SentencePiece vocabularies have no pre-tokenizer (llama.cpp uses \"default\")"
                    .into(),
            );
        }
        spm_vocab::write(&v, model, w)?;
        arch.after_vocab(model, hp, w)?;
        return Ok(("default".into(), PreSource::Fixed, None));
    }
    let tokenizer_json = json::parse_json_file(model, "tokenizer.json")?;
    if let Some(tj) = &tokenizer_json {
        arch.check_bpe_tokenizer(tj)?;
    }

    let Some(tokenizer_json) = tokenizer_json else {
        return Err(file_err(
            "tokenizer.json",
            "missing: tinylm converts byte-level BPE tokenizers from tokenizer.json",
        ));
    };
    let tok = HfTokenizer::from_json(Json::Object(tokenizer_json.clone()), model, hp)?;
    let vocab_size = match hp.get("vocab_size") {
        Some(v) => hparams::as_u32(v).ok_or_else(|| cfg("vocab_size must be an integer"))? as usize,
        None => tok.inner().get_vocab_size(true),
    };
    let (pre, source, chkhsh) = if let Some(p) = &opts.pre_override {
        pretok::check_pre_name(p).map_err(ConvertError::Tokenizer)?;
        (p.clone(), PreSource::Override, None)
    } else {
        let h = tok.chkhsh()?;
        if let Some(p) = pre_for_hash(&h) {
            (p.to_string(), PreSource::Hash, Some(h))
        } else {
            match structural_pre(&Json::Object(tokenizer_json.clone())) {
                Some((p, src)) => {
                    if let PreSource::Approximation(msg) = &src {
                        warnings.push(msg.clone());
                    }
                    (p.to_string(), src, Some(h))
                }
                None => {
                    return Err(ConvertError::Tokenizer(format!(
                        "BPE pre-tokenizer not recognized (chkhsh {h}) and its structure matches none of \
                         llama.cpp's pre-tokenizers; set `pre` (e.g. \"llama-bpe\", \"gpt-2\", \"qwen2\") to choose one"
                    )));
                }
            }
        }
    };
    let (tokens, types) = tok.vocab_base(vocab_size)?;
    w.add_kv("tokenizer.ggml.model", Value::str("gpt2"));
    if !pre.is_empty() {
        w.add_kv("tokenizer.ggml.pre", Value::str(&pre));
    }
    w.add_kv(
        "tokenizer.ggml.tokens",
        Value::Array(Array::strings(&tokens)),
    );
    w.add_kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
    let sv = special_vocab::SpecialVocab::load(model, Some(&tokenizer_json), true, None)?;
    if sv.merges.is_empty() {
        warnings.push("the tokenizer has no merges: output may be non-functional".into());
    }
    sv.add_to(w);
    arch.after_vocab(model, hp, w)?;
    Ok((pre, source, chkhsh))
}

impl ConversionPlan {
    /// Streams the GGUF: header first, then each tensor in order.
    pub fn write(&self, out: &mut dyn Write, opts: &GgufOptions) -> Result<()> {
        let cancel = opts.cancel.as_deref();
        let pool = thread_pool(opts)?;
        let mut out = out;
        // Tensors are encoded on another thread, a few chunks ahead of this one's writes.
        tensors::pipelined(&self.tensors, cancel, pool.as_ref(), |pipe| {
            self.writer.write(&mut out, |_i, _spec, w| {
                pipe.write_next(w).map_err(crate::Error::from)
            })
        })
        .map_err(|e| match e {
            crate::Error::Interrupted => ConvertError::Cancelled,
            other => ConvertError::Write(other),
        })
    }
}

impl ConversionPlan {
    /// Writes the GGUF into `file`, a new empty file, by position: the header, then each tensor
    /// at its offset, tensors stored as they are (same type, no layout change) copied file to
    /// file by the kernel (see [`tensors::Out`]). The bytes are those of
    /// [`ConversionPlan::write`].
    #[cfg(unix)]
    pub fn write_file(&self, file: &std::fs::File, opts: &GgufOptions) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let io_err = |e: std::io::Error| {
            ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}")))
        };
        let pool = thread_pool(opts)?;
        let header = self.writer.header_bytes();
        file.write_all_at(&header, 0).map_err(io_err)?;
        let start = header.len() as u64;
        let specs = self.writer.tensors();
        let offsets = self.writer.data_offsets();
        // Submits the pages behind the writer, so that closing the file has little to write.
        let writeback = crate::fsutil::writeback::Writeback::new(file);
        tensors::pipelined(
            &self.tensors,
            opts.cancel.as_deref(),
            pool.as_ref(),
            |pipe| {
                for (spec, off) in specs.iter().zip(offsets) {
                    let mut pos = start + off;
                    pipe.write_next_to(&mut tensors::Out::At {
                        file,
                        pos: &mut pos,
                        writeback: Some(&writeback),
                    })?;
                    if pos - (start + off) != spec.nbytes() {
                        return Err(ConvertError::Write(crate::Error::Build(format!(
                            "internal error: tensor '{}' produced {} bytes, expected {}",
                            spec.name,
                            pos - (start + off),
                            spec.nbytes()
                        ))));
                    }
                }
                // The padding between and after tensors: zeros, as the file's length covers it.
                file.set_len(self.writer.file_size()).map_err(io_err)
            },
        )
    }

    /// Writes the GGUF into `file` (streamed where positional writes are not available).
    #[cfg(not(unix))]
    pub fn write_file(&self, file: &std::fs::File, opts: &GgufOptions) -> Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        self.write(&mut w, opts)?;
        w.flush()
            .map_err(|e| ConvertError::Write(crate::Error::Build(format!("writing GGUF: {e}"))))
    }
}

/// The pool of `opts.threads` workers (`None`: rayon's global pool).
fn thread_pool(opts: &GgufOptions) -> Result<Option<rayon::ThreadPool>> {
    match opts.threads {
        Some(n) if n > 0 => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map(Some)
            .map_err(|e| ConvertError::Write(crate::Error::Build(format!("thread pool: {e}")))),
        _ => Ok(None),
    }
}

/// Converts `model` to GGUF into `file`, a new empty file (see [`ConversionPlan::write_file`]).
pub fn convert_file(
    model: &HfModel,
    opts: &GgufOptions,
    file: &std::fs::File,
) -> Result<ConvertReport> {
    let plan = plan(model, opts)?;
    plan.write_file(file, opts)?;
    Ok(plan.report)
}

/// Converts `model` to GGUF, streaming into `out`.
pub fn convert(model: &HfModel, opts: &GgufOptions, out: &mut impl Write) -> Result<ConvertReport> {
    let plan = plan(model, opts)?;
    plan.write(out, opts)?;
    Ok(plan.report)
}

/// Converts `model` into the file at `path`, atomically: the GGUF is written to a temporary file
/// next to `path` and renamed only once complete, so a failure never leaves a partial file.
pub fn convert_to_path(
    model: &HfModel,
    opts: &GgufOptions,
    path: &std::path::Path,
) -> Result<ConvertReport> {
    use crate::error::IoContext;
    let plan = plan(model, opts)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    // Mode 0666 less the umask like any new file (tempfile's default is 0600).
    let tmp = crate::fsutil::public_temp_file_for(path).with_path(dir)?;
    // The file being replaced: its cached pages are freed meanwhile, not during the rename.
    let forget = crate::fsutil::writeback::forget_cached(path);
    let written = plan.write_file(tmp.as_file(), opts);
    if let Some(t) = forget {
        let _ = t.join();
    }
    written?;
    tmp.persist(path)
        .map_err(|e| crate::Error::io(path, e.error))?;
    Ok(plan.report)
}
