//! tiny-lm state dict → HF `GPT2LMHeadModel` / `LlamaForCausalLM` tensors.
//!
//! Every source tensor is first converted to the output dtype (element-wise, so it commutes
//! with the layout changes), then reshaped with pure byte moves: transposes for GPT-2's Conv1D,
//! row concatenation for `c_attn`, and the per-head row permutation from tiny-lm's
//! adjacent-pair RoPE layout to HF's half-split layout for Llama q/k. Tensors whose bytes do
//! not change stay zero-copy slices of the checkpoint mapping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use half::{bf16, f16};

use super::TinyLmArch;
use super::arch::{all, architecture};
use super::config::ModelYaml;
use crate::formats::DType;
use crate::formats::tensor::{Tensor, TensorBytes};

/// Architecture facts gathered from the YAML and the tensor shapes; they drive config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFacts {
    /// Architecture.
    pub arch: TinyLmArch,
    /// Vocabulary size.
    pub vocab: usize,
    /// Context length.
    pub ctx: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Blocks.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Key/value heads.
    pub n_kv_heads: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Feed-forward size, read from the weights.
    pub ffn: usize,
    /// Whether `lm_head` is the token embedding.
    pub tied: bool,
    /// Llama: q/k/v/o biases exported (`attention_bias`).
    pub attention_bias: bool,
    /// Llama: feed-forward biases (`mlp_bias`).
    pub mlp_bias: bool,
}

/// Buffers tiny-lm saves that are not weights.
pub fn is_buffer(key: &str) -> bool {
    key.ends_with(".causal_mask") || key.ends_with("_freqs_cis")
}

/// The architecture a state dict's tensor names belong to, if exactly one recognizes them.
pub fn detect_arch(keys: &BTreeSet<&str>) -> Option<TinyLmArch> {
    let mut hits = all().filter(|a| a.recognizes(keys));
    match (hits.next(), hits.next()) {
        (Some(a), None) => Some(a.arch()),
        _ => None,
    }
}

/// Source tensors by key (without the Lightning `model.` prefix).
pub struct Source<'a> {
    pub(super) tensors: BTreeMap<&'a str, &'a Tensor>,
    prefix: &'a str,
}

impl<'a> Source<'a> {
    /// Indexes `tensors`, stripping `prefix` from every name.
    pub fn new(tensors: &'a [Tensor], prefix: &'a str) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for t in tensors {
            let key = t.name.strip_prefix(prefix).unwrap_or(&t.name);
            if map.insert(key, t).is_some() {
                return Err(format!("tensor {} appears twice", t.name));
            }
        }
        Ok(Source {
            tensors: map,
            prefix,
        })
    }

    /// Keys, without the prefix.
    pub fn keys(&self) -> BTreeSet<&'a str> {
        self.tensors.keys().copied().collect()
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The tensor `key`, which must have `shape` and a float dtype.
    pub(super) fn get(&self, key: &str, shape: &[usize]) -> Result<&'a Tensor, String> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| format!("missing tensor {}{key}", self.prefix))?;
        if t.shape != shape {
            return Err(format!(
                "tensor {} has shape {:?}, expected {shape:?}",
                t.name, t.shape
            ));
        }
        if !t.dtype.is_float() {
            return Err(format!(
                "tensor {} has dtype {}, expected a float type",
                t.name, t.dtype
            ));
        }
        Ok(t)
    }
}

/// Converts float bytes from one dtype to another (round to nearest even).
fn convert_bytes(src: &[u8], from: DType, to: DType) -> Vec<u8> {
    let values: Box<dyn Iterator<Item = f32> + '_> = match from {
        DType::F32 => Box::new(
            src.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        DType::F16 => Box::new(
            src.chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        DType::BF16 => Box::new(
            src.chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        // Other types are rejected before conversion; f64 narrows like torch (RNE).
        _ => Box::new(src.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            f64::from_le_bytes(b) as f32
        })),
    };
    let mut out = Vec::with_capacity(src.len() / from.size() * to.size());
    match to {
        DType::F16 => values.for_each(|v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        DType::BF16 => values.for_each(|v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        _ => values.for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
    }
    out
}

/// Builds the output tensors in the output dtype.
pub(crate) struct Builder {
    dtype: DType,
    out: Vec<Tensor>,
}

impl Builder {
    /// The bytes of `t` in the output dtype (shared, not copied, when the dtype matches).
    pub(super) fn bytes(&self, t: &Tensor) -> TensorBytes {
        if t.dtype == self.dtype {
            t.data.clone()
        } else {
            TensorBytes::Owned(Arc::from(convert_bytes(
                t.data.as_bytes(),
                t.dtype,
                self.dtype,
            )))
        }
    }

    pub(super) fn zeros(&self, n: usize) -> Vec<u8> {
        vec![0u8; n * self.dtype.size()]
    }

    pub(super) fn push(&mut self, name: &str, shape: Vec<usize>, data: TensorBytes) {
        self.out.push(Tensor {
            name: name.to_owned(),
            dtype: self.dtype,
            shape,
            data,
        });
    }

    pub(super) fn push_owned(&mut self, name: &str, shape: Vec<usize>, data: Vec<u8>) {
        self.push(name, shape, TensorBytes::Owned(Arc::from(data)));
    }

    /// `t` unchanged (only the dtype may change).
    pub(super) fn copy(&mut self, name: &str, t: &Tensor) {
        let data = self.bytes(t);
        self.push(name, t.shape.clone(), data);
    }

    /// `[rows, cols]` → `[cols, rows]`.
    pub(super) fn transpose(&self, data: &[u8], rows: usize, cols: usize) -> Vec<u8> {
        let e = self.dtype.size();
        let mut out = vec![0u8; data.len()];
        for r in 0..rows {
            for c in 0..cols {
                let src = (r * cols + c) * e;
                let dst = (c * rows + r) * e;
                out[dst..dst + e].copy_from_slice(&data[src..src + e]);
            }
        }
        out
    }

    /// Reorders the rows of each head from adjacent pairs (0,1),(2,3)… to halves
    /// (0..hd/2 | hd/2..hd): HF row j takes row 2j, HF row hd/2+j takes row 2j+1.
    pub(super) fn half_split_rows(
        &self,
        data: &[u8],
        heads: usize,
        head_dim: usize,
        cols: usize,
    ) -> Vec<u8> {
        let row = cols * self.dtype.size();
        let mut out = Vec::with_capacity(data.len());
        for h in 0..heads {
            let head = &data[h * head_dim * row..(h + 1) * head_dim * row];
            for parity in 0..2 {
                for j in 0..head_dim / 2 {
                    let r = 2 * j + parity;
                    out.extend_from_slice(&head[r * row..(r + 1) * row]);
                }
            }
        }
        out
    }
}

/// Facts that must agree between YAML and weights: (head dim, KV heads).
fn check_config(m: &ModelYaml, arch: TinyLmArch) -> Result<(usize, usize), String> {
    if m.n_heads == 0 || !m.d_model.is_multiple_of(m.n_heads) {
        return Err(format!(
            "d_model {} is not divisible by n_heads {}",
            m.d_model, m.n_heads
        ));
    }
    let head_dim = m.d_model / m.n_heads;
    let a = architecture(arch);
    let kv = a.kv_heads(m);
    if kv == 0 || !m.n_heads.is_multiple_of(kv) {
        return Err(format!(
            "n_heads {} is not a multiple of n_kv_heads {kv}",
            m.n_heads
        ));
    }
    a.check_config(m, head_dim)?;
    Ok((head_dim, kv))
}

/// The keys a checkpoint of this shape must contain, given the optional-bias flags.
fn expected_keys(arch: TinyLmArch, layers: usize, src: &Source<'_>) -> Vec<String> {
    let layout = architecture(arch).keys();
    let mut keys = vec!["token_emb.weight".to_string()];
    keys.extend(layout.top.iter().map(|s| s.to_string()));
    let optional: Vec<&str> = layout
        .optional
        .iter()
        .copied()
        .filter(|k| src.has(&format!("blocks.0.{k}")))
        .collect();
    for i in 0..layers {
        for k in layout.per_block.iter().chain(&optional) {
            keys.push(format!("blocks.{i}.{k}"));
        }
    }
    keys.extend(layout.tail.iter().map(|s| s.to_string()));
    if src.has("lm_head.weight") {
        keys.push("lm_head.weight".into());
    }
    keys
}

/// Checks that the checkpoint has exactly the expected tensors (buffers aside).
fn check_keys(arch: TinyLmArch, m: &ModelYaml, src: &Source<'_>) -> Result<(), String> {
    let expected = expected_keys(arch, m.n_layers, src);
    let expected_set: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let have: BTreeSet<&str> = src.keys().into_iter().filter(|k| !is_buffer(k)).collect();
    let missing: Vec<&str> = expected_set.difference(&have).copied().collect();
    let unexpected: Vec<&str> = have.difference(&expected_set).copied().collect();
    if missing.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "the checkpoint does not match a tiny-lm {arch} model with n_layers={}:",
        m.n_layers
    );
    let p = src.prefix;
    if !missing.is_empty() {
        msg += &format!(" missing tensors [{p}{}];", missing.join(&format!(", {p}")));
    }
    if !unexpected.is_empty() {
        msg += &format!(
            " unexpected tensors [{p}{}];",
            unexpected.join(&format!(", {p}"))
        );
    }
    msg += &format!(
        " expected exactly [{p}{}] (plus causal_mask/freqs_cis buffers)",
        expected.join(&format!(", {p}"))
    );
    Err(msg)
}

/// Whether the optional bias `blocks.*.<k>` set matches the YAML flag, when given.
pub(super) fn check_flag(
    flag: Option<bool>,
    name: &str,
    present: bool,
    key: &str,
) -> Result<(), String> {
    match flag {
        Some(f) if f != present => Err(format!(
            "the model config says {name}: {f}, but the checkpoint {} {key}",
            if present { "has" } else { "has no" }
        )),
        _ => Ok(()),
    }
}

/// Maps a tiny-lm state dict to HF tensors (unsorted) plus the facts for config.json.
pub fn map(
    arch: TinyLmArch,
    m: &ModelYaml,
    src: &Source<'_>,
    dtype: DType,
) -> Result<(Vec<Tensor>, ModelFacts), String> {
    let (hd, kv) = check_config(m, arch)?;
    check_keys(arch, m, src)?;
    let d = m.d_model;
    let v = m.vocab_size;
    let emb = src.get("token_emb.weight", &[v, d])?;
    let tied = match src.tensors.get("lm_head.weight") {
        None => true,
        Some(_) => {
            let head = src.get("lm_head.weight", &[v, d])?;
            head.dtype == emb.dtype && head.data.as_bytes() == emb.data.as_bytes()
        }
    };
    let mut b = Builder {
        dtype,
        out: Vec::new(),
    };
    let mut facts = ModelFacts {
        arch,
        vocab: v,
        ctx: m.context_length,
        d_model: d,
        n_layers: m.n_layers,
        n_heads: m.n_heads,
        n_kv_heads: kv,
        head_dim: hd,
        ffn: 0,
        tied,
        attention_bias: false,
        mlp_bias: false,
    };
    architecture(arch).map(m, src, &mut b, &mut facts)?;
    if !tied {
        let head = src.get("lm_head.weight", &[v, d])?;
        b.copy("lm_head.weight", head);
    }
    Ok((b.out, facts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> Tensor {
        Tensor {
            name: name.into(),
            dtype: DType::F32,
            shape: shape.to_vec(),
            data: TensorBytes::Owned(Arc::from(
                values
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )),
        }
    }

    fn as_f32(t: &TensorBytes) -> Vec<f32> {
        t.as_bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn half_split_permutation_per_head() {
        let b = Builder {
            dtype: DType::F32,
            out: Vec::new(),
        };
        // 2 heads of dim 4, one column: rows 0..8.
        let rows: Vec<u8> = (0..8).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let out = b.half_split_rows(&rows, 2, 4, 1);
        let t = TensorBytes::Owned(Arc::from(out));
        assert_eq!(as_f32(&t), [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
    }

    #[test]
    fn transpose_and_dtype_conversion() {
        let b = Builder {
            dtype: DType::F32,
            out: Vec::new(),
        };
        let m: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let t = TensorBytes::Owned(Arc::from(b.transpose(&m, 2, 3)));
        assert_eq!(as_f32(&t), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);

        let src = f32_tensor("x", &[3], &[1.0, 1.0 + 1.0 / 2048.0, 65520.0]);
        // f16: 1+2^-11 is a tie between 1 and 1+2^-10 and rounds to even (1.0); 65520 → inf.
        let h = convert_bytes(src.data.as_bytes(), DType::F32, DType::F16);
        assert_eq!(h, [0x00, 0x3c, 0x00, 0x3c, 0x00, 0x7c]);
        let bf = convert_bytes(src.data.as_bytes(), DType::F32, DType::BF16);
        assert_eq!(&bf[..2], &[0x80, 0x3f]);
        let back = convert_bytes(&bf, DType::BF16, DType::F32);
        assert_eq!(&back[..4], &1.0f32.to_le_bytes());
    }

    fn tiny_gpt2(extra: &[&str]) -> Vec<Tensor> {
        let (v, t, d, f) = (6, 3, 4, 8);
        let mut specs: Vec<(String, Vec<usize>)> = vec![
            ("token_emb.weight".into(), vec![v, d]),
            ("pos_emb.pos_emb.weight".into(), vec![t, d]),
            ("ln_f.gamma".into(), vec![d]),
            ("ln_f.beta".into(), vec![d]),
        ];
        for (k, shape) in [
            ("attn.W_q.weight", vec![d, d]),
            ("attn.W_k.weight", vec![d, d]),
            ("attn.W_v.weight", vec![d, d]),
            ("attn.out_proj.weight", vec![d, d]),
            ("ffn.fc1.weight", vec![f, d]),
            ("ffn.fc2.weight", vec![d, f]),
            ("norm1.gamma", vec![d]),
            ("norm1.beta", vec![d]),
            ("norm2.gamma", vec![d]),
            ("norm2.beta", vec![d]),
            ("attn.causal_mask", vec![t, t]),
        ] {
            specs.push((format!("blocks.0.{k}"), shape));
        }
        for k in extra {
            specs.push((k.to_string(), vec![d]));
        }
        specs
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                f32_tensor(&format!("model.{name}"), &shape, &vec![0.5; n])
            })
            .collect()
    }

    fn tiny_yaml() -> ModelYaml {
        super::super::config::parse_yaml(
            "vocab_size: 6\ncontext_length: 3\nd_model: 4\nn_layers: 1\nn_heads: 2\n",
        )
        .unwrap()
    }

    #[test]
    fn minimal_gpt2_maps_with_zero_biases_and_buffers_skipped() {
        let tensors = tiny_gpt2(&[]);
        let src = Source::new(&tensors, "model.").unwrap();
        let (out, facts) = map(TinyLmArch::Gpt2, &tiny_yaml(), &src, DType::F32).unwrap();
        assert!(facts.tied);
        assert_eq!(facts.ffn, 8);
        let bias = out
            .iter()
            .find(|t| t.name == "transformer.h.0.attn.c_attn.bias")
            .unwrap();
        assert_eq!(bias.shape, [12]);
        assert!(bias.data.as_bytes().iter().all(|&b| b == 0));
        assert!(!out.iter().any(|t| t.name.contains("causal_mask")));
    }

    #[test]
    fn unexpected_keys_and_flag_mismatches_are_errors() {
        let tensors = tiny_gpt2(&["blocks.0.attn.rotary.weight"]);
        let src = Source::new(&tensors, "model.").unwrap();
        let err = map(TinyLmArch::Gpt2, &tiny_yaml(), &src, DType::F32).unwrap_err();
        assert!(
            err.contains("unexpected tensors [model.blocks.0.attn.rotary.weight]"),
            "{err}"
        );
        let tensors = tiny_gpt2(&[]);
        let src = Source::new(&tensors, "model.").unwrap();
        let mut yaml = tiny_yaml();
        yaml.qkv_bias = Some(true);
        let err = map(TinyLmArch::Gpt2, &yaml, &src, DType::F32).unwrap_err();
        assert!(
            err.contains("qkv_bias: true, but the checkpoint has no"),
            "{err}"
        );
        let mut yaml = tiny_yaml();
        yaml.n_heads = 3;
        let err = map(TinyLmArch::Gpt2, &yaml, &src, DType::F32).unwrap_err();
        assert!(err.contains("not divisible by n_heads 3"), "{err}");
    }

    #[test]
    fn arch_detection() {
        let g: BTreeSet<&str> = ["pos_emb.pos_emb.weight", "blocks.0.norm1.gamma"].into();
        assert_eq!(detect_arch(&g), Some(TinyLmArch::Gpt2));
        let l: BTreeSet<&str> = ["blocks.0.attn_norm.gamma"].into();
        assert_eq!(detect_arch(&l), Some(TinyLmArch::Llama3));
        let none: BTreeSet<&str> = ["foo"].into();
        assert_eq!(detect_arch(&none), None);
    }
}
