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
    /// `down(gelu(gate(x)) * up(x))`, tanh-approximated GELU (`LLM_FFN_GELU`, `LLM_FFN_PAR`:
    /// Gemma).
    GeluGated,
}

/// Sliding-window attention on some layers (Gemma 2 and 3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlidingWindow {
    /// A query at position p sees keys at positions p - window + 1 ..= p.
    pub window: usize,
    /// Layer `il` slides when `il % pattern < pattern - 1` (llama.cpp's `set_swa_pattern`).
    pub pattern: usize,
    /// RoPE base of the sliding layers (`rope.freq_base_swa`).
    pub freq_base: f32,
    /// RoPE frequency scale of the sliding layers.
    pub freq_scale: f32,
}

impl SlidingWindow {
    /// Whether layer `il` uses the window.
    pub fn applies_to(&self, il: usize) -> bool {
        self.pattern == 0 || il % self.pattern < self.pattern - 1
    }
}

/// What Gemma-style blocks add to the llama template; the default adds nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockExtras {
    /// Token embeddings are multiplied by this (Gemma: `sqrt(n_embd)`).
    pub embd_scale: Option<f32>,
    /// RMS norms after attention and after the FFN, before the residual adds
    /// (`attn_post_norm`, `ffn_post_norm`: Gemma 2 and 3).
    pub post_norms: bool,
    /// Attention scores become `cap · tanh(score / cap)` (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Logits become `cap · tanh(logit / cap)` (Gemma 2, optional in Gemma 3).
    pub final_softcap: Option<f32>,
    /// Sliding-window layers, if any.
    pub swa: Option<SlidingWindow>,
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

/// LongRoPE (Phi-3): per-pair frequency divisors for contexts past the original one, and a
/// factor on RoPE's cos/sin (`rope.scaling.attn_factor`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LongRope {
    /// Divisors used when the context exceeds `n_ctx_orig` (`rope_factors_long`).
    #[serde(skip)]
    pub long: Vec<f32>,
    /// Divisors otherwise (`rope_factors_short`).
    #[serde(skip)]
    pub short: Vec<f32>,
    /// `rope.scaling.original_context_length`.
    pub n_ctx_orig: usize,
    /// Multiplies cos and sin.
    pub attn_factor: f32,
}

/// How a block departs from the sequential pre-norm template (GPT-NeoX, OLMo 2, SmolLM3,
/// Phi-3); the default is the template.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BlockVariant {
    /// Attention and FFN both read the block input; both outputs are added (GPT-NeoX).
    pub parallel_residual: bool,
    /// Norms on the attention and FFN outputs instead of their inputs (OLMo 2).
    pub post_norms: bool,
    /// q/k RMS-normalised over the whole projection rather than per head (OLMo 2).
    pub qk_norm_full: bool,
    /// RoPE is skipped on layers `il` with `(il + 1) % n == 0` (SmolLM3: 4); 0 = never.
    pub no_rope_interval: usize,
    /// A fused QKV stored per head, `(head, q|k|v, head_dim)` rows (GPT-NeoX in HF layout).
    pub qkv_per_head: bool,
    /// `ffn_up` holds the gate rows then the up rows (Phi-3).
    pub fused_gate_up: bool,
    /// LongRoPE, if any.
    pub long_rope: Option<LongRope>,
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
    /// Departures from the sequential pre-norm block.
    pub variant: BlockVariant,
    /// Gemma's additions (none for the other architectures).
    pub extras: BlockExtras,
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
