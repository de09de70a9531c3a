//! The architecture-neutral description of a decoder-only transformer that [`super::Model`]
//! runs. Each architecture file in [`super::arch`] fills one in from GGUF metadata or from an
//! HF `config.json`.

use serde::Serialize;

use super::ops::RopeMode;

/// Normalisation layer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// LayerNorm with weight and bias (`LLM_NORM`).
    LayerNorm,
    /// RMSNorm with weight only (`LLM_NORM_RMS`).
    RmsNorm,
}

/// Feed-forward block kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FfnKind {
    /// `down(gelu(up(x)))`, tanh-approximated GELU (`LLM_FFN_GELU`, `LLM_FFN_SEQ`).
    Gelu,
    /// `down(silu(gate(x)) * up(x))` (`LLM_FFN_SILU`, `LLM_FFN_PAR`).
    SiluGated,
}

/// Rotary position embedding settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RopeConfig {
    /// Which pairs rotate.
    pub mode: RopeMode,
    /// Number of rotated dimensions per head.
    pub n_rot: usize,
    /// `rope.freq_base` (theta).
    pub freq_base: f32,
    /// `1 / rope.scaling.factor` for linear scaling, else 1.
    pub freq_scale: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`, Llama 3 scaling), if any.
    #[serde(skip)]
    pub factors: Option<Vec<f32>>,
}

/// Hyper-parameters of a model, as the forward pass needs them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelConfig {
    /// GGUF architecture name (`llama`, `gpt2`, …).
    pub arch: String,
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Hidden size.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (GQA when smaller than `n_head`).
    pub n_head_kv: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Feed-forward hidden size.
    pub n_ff: usize,
    /// Training context length (`context_length`).
    pub n_ctx_train: usize,
    /// Normalisation kind.
    pub norm: NormKind,
    /// Epsilon of every normalisation.
    pub norm_eps: f32,
    /// RoPE, or `None` for learned absolute positions.
    pub rope: Option<RopeConfig>,
    /// Feed-forward kind.
    pub ffn: FfnKind,
    /// Whether q and k are RMS-normalised per head before RoPE (Qwen3).
    pub qk_norm: bool,
}

impl ModelConfig {
    /// Width of the key (and value) projections.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of the query projection.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Checks the relations the forward pass relies on.
    pub fn validate(&self) -> Result<(), String> {
        let nonzero = [
            ("n_vocab", self.n_vocab),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("n_head_kv", self.n_head_kv),
            ("head_dim", self.head_dim),
            ("n_ff", self.n_ff),
        ];
        for (k, v) in nonzero {
            if v == 0 {
                return Err(format!("{k} is 0"));
            }
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return Err(format!(
                "head_count {} is not a multiple of head_count_kv {}",
                self.n_head, self.n_head_kv
            ));
        }
        if let Some(r) = &self.rope
            && (r.n_rot > self.head_dim || r.n_rot % 2 != 0)
        {
            return Err(format!(
                "rope dimension {} must be even and at most the head dimension {}",
                r.n_rot, self.head_dim
            ));
        }
        Ok(())
    }
}
