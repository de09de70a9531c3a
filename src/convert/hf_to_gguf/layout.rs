//! What llama.cpp's model loader requires of a converted model: every tensor of the
//! architecture, each with the shape the hyperparameters imply, and hyperparameters that are
//! consistent with each other. The reference converter checks none of this, so a folder
//! missing one tensor or with a wrong `n_head` converts "successfully" and then fails to load
//! (or computes garbage). tinylm refuses it up front, naming the tensor or the config key.
//!
//! Shapes follow `llm_build_*`'s `create_tensor` calls in llama.cpp's `src/models/*.cpp`
//! (written here outermost first, as [`PlannedTensor::shape`] is).

use std::collections::HashMap;

use super::error::{Result, cfg, tensor_err};
use super::hparams::{Hparams, as_f32, as_u32};
use super::tensors::{PlannedTensor, Source};

/// One tensor the architecture's loader looks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// GGUF name.
    pub name: String,
    /// The HF name it comes from (for messages).
    pub hf_name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Whether llama.cpp refuses the model without it.
    pub required: bool,
}

/// The expected tensors of a model plus the hyperparameters they were derived from.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Every tensor the loader may read.
    pub tensors: Vec<Expected>,
    /// `key = value, …` of the hyperparameters used, for messages.
    pub from: String,
}

impl Layout {
    /// Adds a tensor.
    pub fn add(&mut self, name: String, hf_name: String, shape: Vec<usize>, required: bool) {
        self.tensors.push(Expected {
            name,
            hf_name,
            shape,
            required,
        });
    }

    /// Adds the tensors outside the blocks of a llama-style model: the embedding, the final
    /// norm and the (optional, tied when absent) output head.
    pub fn add_llama_ends(&mut self, n_vocab: usize, n_embd: usize) {
        self.add(
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
            vec![n_vocab, n_embd],
            true,
        );
        self.add(
            "output_norm.weight".into(),
            "model.norm.weight".into(),
            vec![n_embd],
            true,
        );
        self.add(
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![n_vocab, n_embd],
            false,
        );
    }

    /// Checks the planned tensors: every required one present, every present one shaped as
    /// expected. Tensors the layout does not list (generated ones) are not checked.
    pub fn check(&self, arch: &str, planned: &[PlannedTensor]) -> Result<()> {
        let by_name: HashMap<&str, &PlannedTensor> =
            planned.iter().map(|p| (p.name.as_str(), p)).collect();
        for e in &self.tensors {
            match by_name.get(e.name.as_str()) {
                None if e.required => {
                    return Err(tensor_err(
                        &e.hf_name,
                        format!(
                            "missing: architecture '{arch}' needs it ({}) with shape {:?} ({}); \
                             the weights are incomplete or config.json does not describe them",
                            e.name, e.shape, self.from
                        ),
                    ));
                }
                Some(p) if p.shape != e.shape => {
                    let hf_name = match &p.source {
                        Source::Hf(t, _) => t.name.as_str(),
                        Source::Values(_) => e.hf_name.as_str(),
                    };
                    return Err(tensor_err(
                        hf_name,
                        format!(
                            "has shape {:?} but config.json implies {:?} ({}); llama.cpp \
                             cannot load such a model",
                            p.shape, e.shape, self.from
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The keys `block_count` is read from, in the reference's order.
pub const BLOCK_COUNT_KEYS: [&str; 4] = ["n_layers", "num_hidden_layers", "n_layer", "num_layers"];

/// Reads a positive integer hyperparameter: the first of `keys` present, named in errors.
pub fn positive(hp: &Hparams, keys: &[&str]) -> Result<usize> {
    let key = keys
        .iter()
        .find(|k| hp.get(k).is_some())
        .copied()
        .unwrap_or(keys[0]);
    let v = hp
        .get(key)
        .ok_or_else(|| cfg(format!("missing {}", keys.join(" / "))))?;
    match as_u32(v) {
        Some(0) => Err(cfg(format!("{key} is 0; it must be at least 1"))),
        Some(n) if !v.is_boolean() => Ok(n as usize),
        _ => Err(cfg(format!("{key} must be a positive integer, found {v}"))),
    }
}

/// The config key that gave `block_count` (for messages about blocks).
pub fn block_count_key(hp: &Hparams) -> &'static str {
    BLOCK_COUNT_KEYS
        .into_iter()
        .find(|k| hp.get(k).is_some())
        .unwrap_or("num_hidden_layers")
}

/// If `hf_name` has a block index (`.N.`) not below `block_count`, says so.
pub fn block_beyond(hf_name: &str, block_count: u32, key: &str) -> Option<String> {
    hf_name
        .split('.')
        .filter_map(|s| {
            s.parse::<u32>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
        })
        .find(|&n| n >= block_count)
        .map(|n| {
            format!(
                "belongs to block {n}, but config.json has {key} = {block_count} (blocks 0 to {}); \
                 fix {key} or the weights",
                block_count.saturating_sub(1)
            )
        })
}

/// GPT-2 (`models/gpt2.cpp`): fused QKV with biases, learned positions, every bias required.
pub fn gpt2(hp: &Hparams, n_vocab: usize, n_ctx: usize) -> Result<Layout> {
    let n_embd = positive(hp, &["n_embd"])?;
    let n_head = positive(hp, &["n_head"])?;
    let n_layer = positive(hp, &BLOCK_COUNT_KEYS)?;
    if n_embd % n_head != 0 {
        return Err(cfg(format!(
            "n_head = {n_head} does not divide n_embd = {n_embd}: attention heads must have \
             equal size"
        )));
    }
    // The converter writes feed_forward_length = 4 * n_embd, as the reference does.
    let n_ff = 4 * n_embd;
    let mut l = Layout {
        from: format!("n_embd = {n_embd}, n_head = {n_head}, n_layer = {n_layer}, n_ctx = {n_ctx}"),
        ..Layout::default()
    };
    let g = |s: &str| format!("{s}.weight");
    l.add(
        g("token_embd"),
        "wte.weight".into(),
        vec![n_vocab, n_embd],
        true,
    );
    l.add(
        g("position_embd"),
        "wpe.weight".into(),
        vec![n_ctx, n_embd],
        true,
    );
    l.add(g("output_norm"), "ln_f.weight".into(), vec![n_embd], true);
    l.add(
        "output_norm.bias".into(),
        "ln_f.bias".into(),
        vec![n_embd],
        true,
    );
    l.add(
        g("output"),
        "lm_head.weight".into(),
        vec![n_vocab, n_embd],
        false,
    );
    for i in 0..n_layer {
        let t = |gg: &str, hf: &str, shape: Vec<usize>, l: &mut Layout| {
            l.add(format!("blk.{i}.{gg}"), format!("h.{i}.{hf}"), shape, true);
        };
        t("attn_norm.weight", "ln_1.weight", vec![n_embd], &mut l);
        t("attn_norm.bias", "ln_1.bias", vec![n_embd], &mut l);
        t(
            "attn_qkv.weight",
            "attn.c_attn.weight",
            vec![3 * n_embd, n_embd],
            &mut l,
        );
        t(
            "attn_qkv.bias",
            "attn.c_attn.bias",
            vec![3 * n_embd],
            &mut l,
        );
        t(
            "attn_output.weight",
            "attn.c_proj.weight",
            vec![n_embd, n_embd],
            &mut l,
        );
        t("attn_output.bias", "attn.c_proj.bias", vec![n_embd], &mut l);
        t("ffn_norm.weight", "ln_2.weight", vec![n_embd], &mut l);
        t("ffn_norm.bias", "ln_2.bias", vec![n_embd], &mut l);
        t(
            "ffn_up.weight",
            "mlp.c_fc.weight",
            vec![n_ff, n_embd],
            &mut l,
        );
        t("ffn_up.bias", "mlp.c_fc.bias", vec![n_ff], &mut l);
        t(
            "ffn_down.weight",
            "mlp.c_proj.weight",
            vec![n_embd, n_ff],
            &mut l,
        );
        t("ffn_down.bias", "mlp.c_proj.bias", vec![n_embd], &mut l);
    }
    Ok(l)
}

/// How a Llama-like decoder sizes its query projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryWidth {
    /// `n_head * head_dim` (`models/llama.cpp`, `models/qwen3.cpp`).
    HeadsTimesHeadDim,
    /// `n_embd` (`models/qwen2.cpp`).
    Embedding,
}

/// Llama-like decoders (`models/llama.cpp`, `qwen2.cpp`, `qwen3.cpp`): separate Q/K/V with
/// optional biases, gated FFN, optional untied output, `qk_norm` for Qwen3.
pub fn decoder(hp: &Hparams, n_vocab: usize, q: QueryWidth, qk_norm: bool) -> Result<Layout> {
    let n_embd = positive(hp, &["hidden_size", "n_embd", "dim"])?;
    let n_head = positive(hp, &["num_attention_heads", "n_head", "n_heads"])?;
    let n_layer = positive(hp, &BLOCK_COUNT_KEYS)?;
    // The keys and order `text::write_params` reads feed_forward_length from.
    let n_ff = positive(
        hp,
        &[
            "prefix_dense_intermediate_size",
            "dense_intermediate_size",
            "intermediate_size",
            "n_inner",
            "hidden_dim",
        ],
    )?;
    let n_kv = match hp.find(&["num_key_value_heads", "n_kv_heads"]) {
        None => n_head,
        Some(_) => positive(hp, &["num_key_value_heads", "n_kv_heads"])?,
    };
    if n_kv > n_head || n_head % n_kv != 0 {
        return Err(cfg(format!(
            "num_key_value_heads = {n_kv} must divide num_attention_heads = {n_head} \
             (each key/value head serves a whole group of query heads)"
        )));
    }
    let head_dim = match hp.get("head_dim") {
        Some(_) => positive(hp, &["head_dim"])?,
        None => {
            if n_embd % n_head != 0 {
                return Err(cfg(format!(
                    "num_attention_heads = {n_head} does not divide hidden_size = {n_embd} \
                     and head_dim is not set"
                )));
            }
            n_embd / n_head
        }
    };
    if let Some(theta) = super::arch::text::rope_parameters(hp).get("rope_theta")
        && !theta.is_null()
        && as_f32(theta).is_none_or(|t| t <= 0.0)
    {
        return Err(cfg(format!(
            "rope_theta must be a positive number, found {theta}"
        )));
    }
    let q_dim = match q {
        QueryWidth::HeadsTimesHeadDim => n_head * head_dim,
        QueryWidth::Embedding => n_embd,
    };
    let kv_dim = n_kv * head_dim;
    let mut l = Layout {
        from: format!(
            "hidden_size = {n_embd}, num_attention_heads = {n_head}, num_key_value_heads = \
             {n_kv}, head_dim = {head_dim}, intermediate_size = {n_ff}, num_hidden_layers = \
             {n_layer}"
        ),
        ..Layout::default()
    };
    l.add_llama_ends(n_vocab, n_embd);
    for i in 0..n_layer {
        let mut t = |gg: &str, hf: &str, shape: Vec<usize>, required: bool| {
            l.add(
                format!("blk.{i}.{gg}"),
                format!("model.layers.{i}.{hf}"),
                shape,
                required,
            );
        };
        t(
            "attn_norm.weight",
            "input_layernorm.weight",
            vec![n_embd],
            true,
        );
        t(
            "attn_q.weight",
            "self_attn.q_proj.weight",
            vec![q_dim, n_embd],
            true,
        );
        t(
            "attn_k.weight",
            "self_attn.k_proj.weight",
            vec![kv_dim, n_embd],
            true,
        );
        t(
            "attn_v.weight",
            "self_attn.v_proj.weight",
            vec![kv_dim, n_embd],
            true,
        );
        t("attn_q.bias", "self_attn.q_proj.bias", vec![q_dim], false);
        t("attn_k.bias", "self_attn.k_proj.bias", vec![kv_dim], false);
        t("attn_v.bias", "self_attn.v_proj.bias", vec![kv_dim], false);
        t(
            "attn_output.weight",
            "self_attn.o_proj.weight",
            vec![n_embd, q_dim],
            true,
        );
        t(
            "attn_output.bias",
            "self_attn.o_proj.bias",
            vec![n_embd],
            false,
        );
        if qk_norm {
            t(
                "attn_q_norm.weight",
                "self_attn.q_norm.weight",
                vec![head_dim],
                true,
            );
            t(
                "attn_k_norm.weight",
                "self_attn.k_norm.weight",
                vec![head_dim],
                true,
            );
        }
        t(
            "ffn_norm.weight",
            "post_attention_layernorm.weight",
            vec![n_embd],
            true,
        );
        t(
            "ffn_gate.weight",
            "mlp.gate_proj.weight",
            vec![n_ff, n_embd],
            true,
        );
        t(
            "ffn_up.weight",
            "mlp.up_proj.weight",
            vec![n_ff, n_embd],
            true,
        );
        t(
            "ffn_down.weight",
            "mlp.down_proj.weight",
            vec![n_embd, n_ff],
            true,
        );
        t("ffn_gate.bias", "mlp.gate_proj.bias", vec![n_ff], false);
        t("ffn_up.bias", "mlp.up_proj.bias", vec![n_ff], false);
        t("ffn_down.bias", "mlp.down_proj.bias", vec![n_embd], false);
    }
    Ok(l)
}
