//! One description per model family, and the registry that picks one by GGUF
//! `general.architecture` or HF `config.json` `architectures[0]`.
//!
//! An architecture file says three things: how its GGUF metadata maps to a [`ModelConfig`],
//! how its HF `config.json` does, and how its HF tensor names map to GGUF names. The forward
//! pass itself is shared ([`super::model`]); adding an architecture that fits the pre-norm
//! decoder template is one new file plus a line in [`REGISTRY`].

mod gpt2;
mod llama;
mod qwen2;
mod qwen3;

use serde_json::{Map, Value as Json};

use super::config::{FfnKind, ModelConfig, NormKind, RopeConfig};
use super::ops::RopeMode;
use crate::formats::gguf::GgufFile;

/// How an HF tensor maps to the GGUF tensor the forward pass expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfName {
    /// The GGUF name (`blk.0.attn_q.weight`).
    pub gguf: String,
    /// Stored `[in, out]` (GPT-2's Conv1D) instead of torch Linear's `[out, in]`.
    pub transposed: bool,
}

/// An architecture tinylm can run.
pub struct ArchSpec {
    /// GGUF `general.architecture`.
    pub name: &'static str,
    /// HF `architectures[0]` values that load as this architecture.
    pub hf_architectures: &'static [&'static str],
    /// Hyper-parameters from GGUF metadata (`n_vocab` is filled in by the loader).
    pub from_gguf: fn(&GgufMeta) -> Result<ModelConfig, String>,
    /// Hyper-parameters from an HF `config.json`, for HF tensor layouts.
    pub from_hf: fn(&HfConfig) -> Result<ModelConfig, String>,
    /// HF tensor name → GGUF tensor name; `None` for tensors the forward pass ignores.
    pub hf_tensor: fn(&str) -> Option<HfName>,
}

/// Every architecture tinylm runs.
pub static REGISTRY: &[&ArchSpec] = &[&gpt2::SPEC, &llama::SPEC, &qwen2::SPEC, &qwen3::SPEC];

/// The architecture named `name` in GGUF metadata.
pub fn by_gguf_name(name: &str) -> Option<&'static ArchSpec> {
    REGISTRY.iter().copied().find(|a| a.name == name)
}

/// The architecture of an HF `architectures[0]` class name.
pub fn by_hf_class(class: &str) -> Option<&'static ArchSpec> {
    REGISTRY
        .iter()
        .copied()
        .find(|a| a.hf_architectures.contains(&class))
}

/// Names of the runnable architectures, for error messages.
pub fn supported() -> String {
    REGISTRY
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<arch>.*` metadata of a GGUF file.
pub struct GgufMeta<'a> {
    /// The file.
    pub file: &'a GgufFile,
    /// Its architecture (key prefix).
    pub arch: &'a str,
}

impl GgufMeta<'_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch)
    }

    /// A required unsigned integer `<arch>.<k>`.
    pub fn usize(&self, k: &str) -> Result<usize, String> {
        self.opt_usize(k)?
            .ok_or_else(|| format!("missing metadata key '{}'", self.key(k)))
    }

    /// An optional unsigned integer `<arch>.<k>`.
    pub fn opt_usize(&self, k: &str) -> Result<Option<usize>, String> {
        let key = self.key(k);
        match self.file.get(&key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| format!("metadata key '{key}' should be an unsigned integer")),
        }
    }

    /// An optional float `<arch>.<k>`.
    pub fn opt_f32(&self, k: &str) -> Result<Option<f32>, String> {
        let key = self.key(k);
        match self.file.get(&key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| format!("metadata key '{key}' should be a float")),
        }
    }

    /// A required float `<arch>.<k>`.
    pub fn f32(&self, k: &str) -> Result<f32, String> {
        self.opt_f32(k)?
            .ok_or_else(|| format!("missing metadata key '{}'", self.key(k)))
    }

    /// An optional string `<arch>.<k>`.
    pub fn opt_str(&self, k: &str) -> Option<&str> {
        self.file.get(&self.key(k)).and_then(|v| v.as_str())
    }
}

/// An HF `config.json`.
pub struct HfConfig {
    /// The parsed object.
    pub json: Map<String, Json>,
}

impl HfConfig {
    /// The first of `keys` present and non-null.
    pub fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter()
            .filter_map(|k| self.json.get(*k))
            .find(|v| !v.is_null())
    }

    /// A required integer, from the first present key.
    pub fn usize(&self, keys: &[&str]) -> Result<usize, String> {
        self.opt_usize(keys)?
            .ok_or_else(|| format!("config.json has none of {keys:?}"))
    }

    /// An optional integer.
    pub fn opt_usize(&self, keys: &[&str]) -> Result<Option<usize>, String> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| format!("config.json {keys:?} should be an integer, found {v}")),
        }
    }

    /// An optional float.
    pub fn opt_f32(&self, keys: &[&str]) -> Result<Option<f32>, String> {
        match self.find(keys) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| format!("config.json {keys:?} should be a number, found {v}")),
        }
    }
}

/// The llama-style block (RMSNorm, RoPE, GQA, SiLU-gated FFN) from GGUF metadata; llama,
/// qwen2 and qwen3 differ only in RoPE pairing and q/k norms.
pub(crate) fn llama_like_gguf(
    m: &GgufMeta,
    mode: RopeMode,
    qk_norm: bool,
) -> Result<ModelConfig, String> {
    let n_embd = m.usize("embedding_length")?;
    let n_head = m.usize("attention.head_count")?;
    if n_head == 0 {
        return Err(format!("{}.attention.head_count is 0", m.arch));
    }
    let head_dim = m
        .opt_usize("attention.key_length")?
        .unwrap_or(n_embd / n_head);
    if let Some(v) = m.opt_usize("attention.value_length")?
        && v != head_dim
    {
        return Err(format!(
            "{}.attention.value_length {v} differs from key_length {head_dim}: not supported",
            m.arch
        ));
    }
    let freq_scale = match m.opt_str("rope.scaling.type") {
        None | Some("none") => 1.0,
        Some("linear") => 1.0 / m.opt_f32("rope.scaling.factor")?.unwrap_or(1.0),
        Some(other) => {
            return Err(format!(
                "RoPE scaling '{other}' ({}.rope.scaling.type) is not supported yet",
                m.arch
            ));
        }
    };
    Ok(ModelConfig {
        arch: m.arch.to_string(),
        n_vocab: 0,
        n_embd,
        n_layer: m.usize("block_count")?,
        n_head,
        n_head_kv: m.opt_usize("attention.head_count_kv")?.unwrap_or(n_head),
        head_dim,
        n_ff: m.usize("feed_forward_length")?,
        n_ctx_train: m.usize("context_length")?,
        norm: NormKind::RmsNorm,
        norm_eps: m.f32("attention.layer_norm_rms_epsilon")?,
        rope: Some(RopeConfig {
            mode,
            n_rot: m.opt_usize("rope.dimension_count")?.unwrap_or(head_dim),
            freq_base: m.opt_f32("rope.freq_base")?.unwrap_or(10000.0),
            freq_scale,
            factors: None,
        }),
        ffn: FfnKind::SiluGated,
        qk_norm,
    })
}

/// The llama-style block from an HF config. HF keeps q/k in the `rotate_half` layout, so RoPE
/// is always NeoX-style here, whatever the GGUF of the same model uses.
pub(crate) fn llama_like_hf(
    c: &HfConfig,
    arch: &str,
    qk_norm: bool,
) -> Result<ModelConfig, String> {
    let n_embd = c.usize(&["hidden_size"])?;
    let n_head = c.usize(&["num_attention_heads"])?;
    if n_head == 0 {
        return Err("config.json num_attention_heads is 0".into());
    }
    let head_dim = c.opt_usize(&["head_dim"])?.unwrap_or(n_embd / n_head);
    let freq_base = c.opt_f32(&["rope_theta"])?.unwrap_or(10000.0);
    let (freq_scale, factors) = hf_rope_scaling(c, freq_base, head_dim)?;
    Ok(ModelConfig {
        arch: arch.to_string(),
        n_vocab: c.usize(&["vocab_size"])?,
        n_embd,
        n_layer: c.usize(&["num_hidden_layers"])?,
        n_head,
        n_head_kv: c.opt_usize(&["num_key_value_heads"])?.unwrap_or(n_head),
        head_dim,
        n_ff: c.usize(&["intermediate_size"])?,
        n_ctx_train: c.opt_usize(&["max_position_embeddings"])?.unwrap_or(2048),
        norm: NormKind::RmsNorm,
        norm_eps: c.opt_f32(&["rms_norm_eps"])?.unwrap_or(1e-6),
        rope: Some(RopeConfig {
            mode: RopeMode::Neox,
            n_rot: head_dim,
            freq_base,
            freq_scale,
            factors,
        }),
        ffn: FfnKind::SiluGated,
        qk_norm,
    })
}

/// `rope_scaling` of an HF config: linear → frequency scale, llama3 → per-pair divisors
/// (computed like transformers' `_compute_llama3_parameters`).
fn hf_rope_scaling(c: &HfConfig, base: f32, dim: usize) -> Result<(f32, Option<Vec<f32>>), String> {
    let Some(rs) = c.find(&["rope_scaling"]).and_then(Json::as_object) else {
        return Ok((1.0, None));
    };
    let ty = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(Json::as_str)
        .unwrap_or("default");
    let num = |k: &str, d: f32| rs.get(k).and_then(Json::as_f64).map_or(d, |x| x as f32);
    match ty {
        "default" => Ok((1.0, None)),
        "linear" => Ok((1.0 / num("factor", 1.0), None)),
        "llama3" => {
            let factor = num("factor", 8.0);
            let lo = num("low_freq_factor", 1.0);
            let hi = num("high_freq_factor", 4.0);
            let old = num("original_max_position_embeddings", 8192.0);
            let mut out = Vec::with_capacity(dim / 2);
            for i in (0..dim).step_by(2) {
                let freq = 1.0 / base.powf(i as f32 / dim as f32);
                let wavelen = 2.0 * std::f32::consts::PI / freq;
                out.push(if wavelen < old / hi {
                    1.0
                } else if wavelen > old / lo {
                    factor
                } else {
                    let smooth = (old / wavelen - lo) / (hi - lo);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                });
            }
            Ok((1.0, Some(out)))
        }
        other => Err(format!(
            "config.json rope_scaling type '{other}' is not supported yet"
        )),
    }
}

/// Maps `model.layers.N.<suffix>` / `model.<name>` of llama-style HF checkpoints.
pub(crate) fn llama_like_hf_tensor(name: &str) -> Option<HfName> {
    let name = name
        .strip_prefix("model.language_model.")
        .map(|s| format!("model.{s}"))
        .unwrap_or_else(|| name.to_string());
    let same = |g: String| {
        Some(HfName {
            gguf: g,
            transposed: false,
        })
    };
    match name.as_str() {
        "model.embed_tokens.weight" => return same("token_embd.weight".into()),
        "model.norm.weight" => return same("output_norm.weight".into()),
        "lm_head.weight" => return same("output.weight".into()),
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = suffix.rsplit_once('.')?;
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    same(format!("blk.{layer}.{g}.{kind}"))
}
