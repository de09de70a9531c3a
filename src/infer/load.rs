//! Building a [`Model`] from a GGUF file or an HF model (folder, or a tiny-lm checkpoint
//! exported in memory): tensors by GGUF name, checked against the configuration's shapes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::InferError;
use super::arch::{self, GgufMeta, HfConfig};
use super::config::{FfnKind, ModelConfig, NormKind};
use super::model::{Layer, Linear, Model, Norm, Qkv, Weights};
use super::weights::Weight;
use crate::convert::hf::HfModel;
use crate::formats::DType;
use crate::formats::gguf::{GgmlType, GgufFile};
use crate::formats::tensor::TensorBytes;

/// One stored tensor before it becomes a [`Weight`].
struct RawTensor {
    ty: GgmlType,
    /// ggml order: `ne[0]` is the contiguous dimension.
    ne: Vec<usize>,
    data: TensorBytes,
    /// Stored as the transpose of the expected `[rows, cols]` (HF Conv1D).
    transposed: bool,
}

/// Tensors by GGUF name, with the file they came from for errors.
struct TensorSet {
    path: PathBuf,
    tensors: HashMap<String, RawTensor>,
}

impl TensorSet {
    fn err(&self, name: &str, msg: impl Into<String>) -> InferError {
        InferError::Tensor {
            path: self.path.clone(),
            name: name.to_string(),
            msg: msg.into(),
        }
    }

    fn opt_matrix(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Weight>, InferError> {
        let Some(t) = self.tensors.get(name) else {
            return Ok(None);
        };
        let (want_ne0, want_ne1) = if t.transposed {
            (rows, cols)
        } else {
            (cols, rows)
        };
        let ne1 = t.ne.get(1).copied().unwrap_or(1);
        if t.ne.first() != Some(&want_ne0)
            || ne1 != want_ne1
            || t.ne.iter().skip(2).any(|&d| d != 1)
        {
            return Err(self.err(
                name,
                format!(
                    "has shape {:?} (ggml order), expected [{cols}, {rows}] for this model's \
                     hyper-parameters",
                    t.ne
                ),
            ));
        }
        let w = Weight::new(name, t.ty, want_ne1, want_ne0, t.data.clone())
            .map_err(|m| self.err(name, m))?;
        if !t.transposed {
            return Ok(Some(w));
        }
        // [cols, rows] stored → [rows, cols] f32 (GPT-2 Conv1D; small models only).
        let src = w.to_f32();
        let mut dst = vec![0f32; rows * cols];
        for i in 0..cols {
            for j in 0..rows {
                dst[j * cols + i] = src[i * rows + j];
            }
        }
        Ok(Some(Weight::from_f32(name, rows, cols, &dst)))
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Weight, InferError> {
        self.opt_matrix(name, rows, cols)?
            .ok_or_else(|| self.err(name, "is missing"))
    }

    fn opt_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>, InferError> {
        let Some(t) = self.tensors.get(name) else {
            return Ok(None);
        };
        let n: usize = t.ne.iter().product();
        if n != len {
            return Err(self.err(name, format!("has {n} elements, expected {len}")));
        }
        let w = Weight::new(name, t.ty, 1, len, t.data.clone()).map_err(|m| self.err(name, m))?;
        Ok(Some(w.to_f32()))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, InferError> {
        self.opt_vector(name, len)?
            .ok_or_else(|| self.err(name, "is missing"))
    }

    fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear, InferError> {
        Ok(Linear {
            w: self.matrix(&format!("{name}.weight"), rows, cols)?,
            b: self.opt_vector(&format!("{name}.bias"), rows)?,
        })
    }

    fn opt_linear(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Linear>, InferError> {
        if !self.tensors.contains_key(&format!("{name}.weight")) {
            return Ok(None);
        }
        self.linear(name, rows, cols).map(Some)
    }

    fn norm(&self, name: &str, n: usize, kind: NormKind) -> Result<Norm, InferError> {
        let w = self.vector(&format!("{name}.weight"), n)?;
        let b = self.opt_vector(&format!("{name}.bias"), n)?;
        if kind == NormKind::LayerNorm && b.is_none() {
            return Err(self.err(
                &format!("{name}.bias"),
                "is missing (LayerNorm needs a bias)",
            ));
        }
        Ok(Norm { w, b })
    }

    fn build(&self, cfg: &mut ModelConfig) -> Result<Weights, InferError> {
        let d = cfg.n_embd;
        let tok_embd = self.matrix("token_embd.weight", cfg.n_vocab, d)?;
        let pos_embd = match cfg.rope {
            None => Some(self.matrix("position_embd.weight", cfg.n_ctx_train, d)?),
            Some(_) => None,
        };
        if let Some(r) = &mut cfg.rope
            && r.factors.is_none()
        {
            r.factors = self.opt_vector("rope_freqs.weight", r.n_rot / 2)?;
        }
        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let qkv = match self.opt_linear(&p("attn_qkv"), qd + 2 * kvd, d)? {
                Some(l) => Qkv::Fused(l),
                None => Qkv::Split {
                    q: self.linear(&p("attn_q"), qd, d)?,
                    k: self.linear(&p("attn_k"), kvd, d)?,
                    v: self.linear(&p("attn_v"), kvd, d)?,
                },
            };
            let (q_norm, k_norm) = if cfg.qk_norm {
                (
                    Some(self.vector(&p("attn_q_norm.weight"), cfg.head_dim)?),
                    Some(self.vector(&p("attn_k_norm.weight"), cfg.head_dim)?),
                )
            } else {
                (None, None)
            };
            let gate = match cfg.ffn {
                FfnKind::SiluGated => Some(self.linear(&p("ffn_gate"), cfg.n_ff, d)?),
                FfnKind::Gelu => None,
            };
            layers.push(Layer {
                attn_norm: self.norm(&p("attn_norm"), d, cfg.norm)?,
                qkv,
                q_norm,
                k_norm,
                wo: self.linear(&p("attn_output"), d, qd)?,
                ffn_norm: self.norm(&p("ffn_norm"), d, cfg.norm)?,
                up: self.linear(&p("ffn_up"), cfg.n_ff, d)?,
                gate,
                down: self.linear(&p("ffn_down"), d, cfg.n_ff)?,
            });
        }
        let output = match self.opt_matrix("output.weight", cfg.n_vocab, d)? {
            Some(w) => w,
            None => tok_embd.clone(),
        };
        Ok(Weights {
            tok_embd,
            pos_embd,
            layers,
            output_norm: self.norm("output_norm", d, cfg.norm)?,
            output,
        })
    }
}

/// Loads a GGUF model: metadata → configuration through the architecture registry, tensors
/// memory-mapped in place.
pub fn from_gguf(path: &Path) -> Result<Model, InferError> {
    let file = GgufFile::open(path)?;
    from_gguf_file(&file)
}

/// Loads a model from an already-parsed GGUF.
pub fn from_gguf_file(file: &GgufFile) -> Result<Model, InferError> {
    let path = file.path.clone();
    let arch_name = file
        .architecture()
        .ok_or_else(|| InferError::Metadata {
            path: path.clone(),
            msg: "missing metadata key 'general.architecture'".into(),
        })?
        .to_string();
    let spec = arch::by_gguf_name(&arch_name).ok_or_else(|| InferError::UnsupportedArch {
        path: path.clone(),
        arch: arch_name.clone(),
    })?;
    let meta = GgufMeta {
        file,
        arch: &arch_name,
    };
    let mut cfg = (spec.from_gguf)(&meta).map_err(|msg| InferError::Metadata {
        path: path.clone(),
        msg,
    })?;
    let map = crate::formats::map_file(&path).map_err(|e| crate::Error::io(&path, e))?;
    let mut tensors = HashMap::new();
    for t in &file.tensors {
        let start = (file.data_offset + t.offset) as usize;
        let end = start + t.nbytes as usize;
        if end > map.len() {
            return Err(InferError::Tensor {
                path: path.clone(),
                name: t.name.clone(),
                msg: "data runs past the end of the file".into(),
            });
        }
        tensors.insert(
            t.name.clone(),
            RawTensor {
                ty: t.ggml_type,
                ne: t.ne.iter().map(|&x| x as usize).collect(),
                data: TensorBytes::Mapped {
                    map: map.clone(),
                    range: start..end,
                },
                transposed: false,
            },
        );
    }
    let set = TensorSet {
        path: path.clone(),
        tensors,
    };
    cfg.n_vocab = match set.tensors.get("token_embd.weight") {
        Some(t) => t.ne.get(1).copied().unwrap_or(1),
        None => return Err(set.err("token_embd.weight", "is missing")),
    };
    cfg.validate().map_err(|msg| InferError::Metadata {
        path: path.clone(),
        msg,
    })?;
    let weights = set.build(&mut cfg)?;
    Ok(Model::new(cfg, weights, path))
}

/// Loads an HF model (from [`HfModel::open`] or a tiny-lm export) with its own tensor layout:
/// q/k as HF stores them (RoPE NeoX-style), Conv1D weights transposed.
pub fn from_hf(model: &HfModel, origin: &Path) -> Result<Model, InferError> {
    let cfg_err = |msg: String| InferError::Metadata {
        path: origin.join("config.json"),
        msg,
    };
    let bytes = model
        .files
        .get("config.json")
        .ok_or_else(|| cfg_err("is missing".into()))?;
    let json: Json =
        serde_json::from_slice(bytes).map_err(|e| cfg_err(format!("is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .cloned()
        .ok_or_else(|| cfg_err("is not a JSON object".into()))?;
    let class = obj
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    let spec = arch::by_hf_class(&class).ok_or_else(|| InferError::UnsupportedArch {
        path: origin.join("config.json"),
        arch: class.clone(),
    })?;
    let mut cfg = (spec.from_hf)(&HfConfig { json: obj }).map_err(cfg_err)?;
    let mut tensors = HashMap::new();
    for f in &model.weights {
        for t in &f.tensors {
            let Some(mapped) = (spec.hf_tensor)(&t.name) else {
                continue;
            };
            let ty = match t.dtype {
                DType::F32 => GgmlType::F32,
                DType::F16 => GgmlType::F16,
                DType::BF16 => GgmlType::BF16,
                other => {
                    return Err(InferError::Tensor {
                        path: origin.join(&f.file_name),
                        name: t.name.clone(),
                        msg: format!("has dtype {other}; expected F32, F16 or BF16"),
                    });
                }
            };
            tensors.insert(
                mapped.gguf,
                RawTensor {
                    ty,
                    ne: t.shape.iter().rev().copied().collect(),
                    data: t.data.clone(),
                    transposed: mapped.transposed,
                },
            );
        }
    }
    let set = TensorSet {
        path: origin.to_path_buf(),
        tensors,
    };
    if let Some(t) = set.tensors.get("token_embd.weight") {
        cfg.n_vocab = t.ne.get(1).copied().unwrap_or(1);
    }
    cfg.validate().map_err(cfg_err)?;
    let weights = set.build(&mut cfg)?;
    Ok(Model::new(cfg, weights, origin.to_path_buf()))
}
