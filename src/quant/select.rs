//! Per-tensor type selection exactly as llama-quantize does it (`docs/quantization.md`): which tensors
//! may be quantized, the mixture rules of each file type, shape fallbacks and tensor order.

use std::cmp::Ordering;

use super::error::QuantError;
use super::ftype::FileType;
use super::recipe::CompiledRecipe;
use crate::formats::gguf::{GgmlType, GgufFile, TensorInfo, Value};

/// The hyperparameters the type rules look at, read from the input's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelParams {
    /// `general.architecture`.
    pub arch: String,
    /// `<arch>.block_count` (all layers, including next-token-prediction ones).
    pub n_layer_all: u32,
    /// `<arch>.nextn_predict_layers` (0 if absent).
    pub n_layer_nextn: u32,
    /// Query heads of layer 0 (`<arch>.attention.head_count`, 0 if absent).
    pub n_head: u32,
    /// KV heads of layer 0 (`<arch>.attention.head_count_kv`, defaults to `n_head`).
    pub n_head_kv: u32,
    /// `<arch>.expert_count` (0 if absent).
    pub n_expert: u32,
}

impl ModelParams {
    /// Reads the parameters from a GGUF's metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<ModelParams, QuantError> {
        let missing = |key: &str| QuantError::Metadata {
            key: key.to_string(),
            msg: "is missing; llama-quantize needs it to choose tensor types".into(),
        };
        let arch = f
            .get("general.architecture")
            .ok_or_else(|| missing("general.architecture"))?
            .as_str()
            .ok_or_else(|| QuantError::Metadata {
                key: "general.architecture".into(),
                msg: "is not a UTF-8 string".into(),
            })?
            .to_string();
        let uint = |key: String, required: bool| -> Result<Option<u32>, QuantError> {
            match f.get(&key) {
                None if required => Err(missing(&key)),
                None => Ok(None),
                Some(v) => first_u32(v).map(Some).ok_or_else(|| QuantError::Metadata {
                    key,
                    msg: format!("should be an unsigned 32-bit integer, found {v}"),
                }),
            }
        };
        let n_layer_all = uint(format!("{arch}.block_count"), true)?.unwrap_or(0);
        if n_layer_all == 0 || n_layer_all > 512 {
            return Err(QuantError::Metadata {
                key: format!("{arch}.block_count"),
                msg: format!("is {n_layer_all}, expected 1 to 512"),
            });
        }
        let n_layer_nextn = uint(format!("{arch}.nextn_predict_layers"), false)?.unwrap_or(0);
        let n_expert = uint(format!("{arch}.expert_count"), false)?.unwrap_or(0);
        let n_head = uint(format!("{arch}.attention.head_count"), false)?.unwrap_or(0);
        let n_head_kv = uint(format!("{arch}.attention.head_count_kv"), false)?.unwrap_or(n_head);
        Ok(ModelParams {
            arch,
            n_layer_all,
            n_layer_nextn: n_layer_nextn.min(n_layer_all),
            n_head,
            n_head_kv,
            n_expert,
        })
    }

    /// `n_head / n_head_kv` of layer 0 (0 when there are no KV heads).
    pub fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }

    /// Whether llama.cpp classifies the model as `LLM_TYPE_70B`, which bumps attn_v.
    fn is_70b(&self) -> bool {
        let n_layer = self.n_layer_all - self.n_layer_nextn;
        match self.arch.as_str() {
            "llama" => self.n_expert != 8 && n_layer == 80 && self.n_head != self.n_head_kv,
            "qwen2" | "deci" | "olmo" => n_layer == 80,
            "jais2" => n_layer == 68,
            _ => false,
        }
    }
}

/// A scalar integer, or the first element of an integer array (per-layer values).
fn first_u32(v: &Value) -> Option<u32> {
    use crate::formats::gguf::Array;
    let first = match v {
        Value::Array(Array::U32(a)) => a.first().map(|&x| u64::from(x)),
        Value::Array(Array::I32(a)) => a.first().and_then(|&x| u64::try_from(x).ok()),
        Value::Array(Array::U16(a)) => a.first().map(|&x| u64::from(x)),
        Value::Array(Array::U8(a)) => a.first().map(|&x| u64::from(x)),
        Value::Array(_) => None,
        v => v.as_u64(),
    };
    first.and_then(|x| u32::try_from(x).ok())
}

/// Broad tensor categories used by the mixture rules (`tensor_get_category`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Category {
    Output,
    TokenEmbd,
    AttnQkv,
    AttnKvB,
    AttnV,
    AttnK,
    AttnQ,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Other,
}

impl Category {
    /// Classifies a tensor by name, first match wins.
    pub fn of(name: &str) -> Category {
        use Category::*;
        if name == "output.weight" {
            return Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return TokenEmbd;
        }
        const BY_SUBSTRING: [(&str, Category); 9] = [
            ("attn_qkv.weight", AttnQkv),
            ("attn_kv_b.weight", AttnKvB),
            ("attn_v.weight", AttnV),
            ("attn_k.weight", AttnK),
            ("attn_q.weight", AttnQ),
            ("attn_output.weight", AttnOutput),
            ("ffn_up", FfnUp),
            ("ffn_gate", FfnGate),
            ("ffn_down", FfnDown),
        ];
        BY_SUBSTRING
            .iter()
            .find(|(s, _)| name.contains(s))
            .map_or(Other, |&(_, c)| c)
    }

    /// V-like attention tensors get the attn_v rules (GPT-2's fused `attn_qkv` included).
    pub fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttnV | Category::AttnQkv | Category::AttnKvB
        )
    }
}

/// `sscanf(name, "blk.%d.")`: the layer number, or −1 for non-block tensors.
pub fn layer_of(name: &str) -> i64 {
    parse_layer(name).unwrap_or(-1)
}

/// The integer after `blk.` as `sscanf("%d")` reads it, if there is one.
fn parse_layer(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let v = digits[..end]
        .bytes()
        .fold(0i64, |acc, b| {
            acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        })
        .min(i64::from(i32::MAX));
    Some(if neg { -v } else { v })
}

/// llama-quantize's tensor order: non-block tensors first, then by layer number, then by name.
pub fn compare_tensor_names(a: &str, b: &str) -> Ordering {
    layer_of(a)
        .cmp(&layer_of(b))
        .then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// Whether llama-quantize would change a tensor's type at all (`tensor_allows_quantization`).
pub fn allows_quantization(name: &str, n_dims: usize, arch: &str) -> bool {
    if n_dims < 2 {
        return false;
    }
    // `name.rfind("weight") == name.size() - 6`: with size_t wrap-around a 5-byte name also
    // passes (npos == 5 - 6). Kept as the reference has it.
    if !(name.ends_with("weight") || name.len() == 5) {
        return false;
    }
    const NOT_CONTAINING: [&str; 35] = [
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if NOT_CONTAINING.iter().any(|p| name.contains(p)) {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    if arch == "glm5-next" {
        const GLM5: [&str; 14] = [
            "hc_",
            "indexer.attn_q_b",
            "indexer.attn_k",
            "indexer.proj",
            "indexer_compressor_gate",
            "indexer_compressor_ape",
            "ssm_f_a.weight",
            "ssm_f_b.weight",
            "ssm_g_a.weight",
            "ssm_g_b.weight",
            "ssm_beta.weight",
            "attn_kv_a_mqa.weight",
            "attn_k_b.weight",
            "attn_v_b.weight",
        ];
        if GLM5.iter().any(|p| name.contains(p)) {
            return false;
        }
    }
    true
}

/// The decision for one tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorChoice {
    /// Index of the tensor in the input file.
    pub input_index: usize,
    /// The type it will have in the output.
    pub target: GgmlType,
    /// Whether the rules' choice did not fit the row size and a fallback was used.
    pub fallback: bool,
    /// Whether llama-quantize may change this tensor's type at all.
    pub quantizable: bool,
    /// Whether the target type needs importance weights (`tensor_requires_imatrix`).
    pub requires_imatrix: bool,
}

/// The output plan: tensors in output order with their target types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// One entry per input tensor, in llama-quantize's output order.
    pub tensors: Vec<TensorChoice>,
    /// How many tensors needed a shape fallback (llama-quantize's `n_fallback`).
    pub n_fallback: usize,
}

/// Replacement for a type whose block does not divide the row (`tensor_type_fallback`).
fn fallback(ne0: u64, target: GgmlType) -> Result<Option<GgmlType>, String> {
    use GgmlType as G;
    if ne0.is_multiple_of(target.block_size()) {
        return Ok(None);
    }
    let alt = match target {
        G::IQ1S | G::IQ1M | G::IQ2XXS | G::IQ2XS | G::IQ2S | G::IQ3XXS | G::IQ3S | G::IQ4XS => {
            G::IQ4NL
        }
        G::Q2_0 | G::Q2K | G::Q3K | G::TQ1_0 | G::TQ2_0 => G::Q4_0,
        G::Q4K => G::Q5_0,
        G::Q5K => G::Q5_1,
        G::Q6K => G::Q8_0,
        t if t.block_size() <= 32 => t,
        t => return Err(format!("no tensor type fallback is defined for type {t}")),
    };
    Ok(Some(if ne0.is_multiple_of(alt.block_size()) {
        alt
    } else {
        GgmlType::F16
    }))
}

/// `tensor_requires_imatrix`: targets that llama-quantize refuses to produce without
/// importance weights. Token embeddings and the output tensor are exempt.
pub fn requires_imatrix(name: &str, target: GgmlType, ftype: FileType) -> bool {
    if name == "token_embd.weight"
        || name == "per_layer_token_embd.weight"
        || name == "output.weight"
    {
        return false;
    }
    match target {
        GgmlType::IQ3XXS
        | GgmlType::IQ2XXS
        | GgmlType::IQ2XS
        | GgmlType::IQ2S
        | GgmlType::IQ1M
        | GgmlType::IQ1S => true,
        GgmlType::Q2K => ftype == FileType::Q2_K_S,
        _ => false,
    }
}

fn use_more_bits(i: i64, n: i64) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

struct State<'a> {
    p: &'a ModelParams,
    ftype: FileType,
    recipe: &'a CompiledRecipe,
    has_imatrix: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    n_ffn: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    has_tied_embeddings: bool,
}

impl State<'_> {
    /// (layer, n_layer) for an FFN tensor: the running counter, or the name for MoE models.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64), QuantError> {
        if self.p.n_expert <= 1 {
            return Ok((counter, self.n_ffn));
        }
        let layer = parse_layer(name).ok_or_else(|| QuantError::Tensor {
            name: name.to_string(),
            msg: "cannot determine its layer number (expected a name like blk.N.…)".into(),
        })?;
        if layer < 0 || layer >= self.n_ffn {
            return Err(QuantError::Tensor {
                name: name.to_string(),
                msg: format!("layer {layer} is outside [0, {})", self.n_ffn),
            });
        }
        Ok((layer, self.n_ffn))
    }

    /// `llama_tensor_get_type_impl`, branch for branch.
    fn rules(
        &mut self,
        t: &TensorInfo,
        cat: Category,
        mut ty: GgmlType,
    ) -> Result<GgmlType, QuantError> {
        use FileType as F;
        use GgmlType as G;
        let ft = self.ftype;
        let p = self.p;
        let n_gqa = p.n_gqa();
        let falcon = p.is_falcon();
        if p.arch == "glm5-next"
            && ["attn_q_a", "attn_q_b", "nextn.eh_proj"]
                .iter()
                .any(|s| t.name.contains(s))
            && !matches!(ty, G::F32 | G::BF16 | G::F16)
        {
            return Ok(G::Q8_0);
        }
        let iq2_group = matches!(
            ft,
            F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ2_S | F::IQ2_M | F::IQ1_M
        );
        if cat == Category::Output || (self.has_tied_embeddings && cat == Category::TokenEmbd) {
            if let Some(o) = self.recipe.recipe.output_tensor_type {
                ty = o;
            } else {
                let nx = t.ne.first().copied().unwrap_or(0);
                if falcon || !nx.is_multiple_of(ty.block_size()) {
                    ty = G::Q8_0;
                } else if matches!(
                    ft,
                    F::IQ2_XXS | F::IQ2_XS | F::IQ3_XXS | F::IQ1_S | F::IQ2_S | F::IQ2_M | F::IQ1_M
                ) {
                    ty = G::Q5K;
                } else if ty != G::Q8_0 {
                    ty = G::Q6K;
                }
            }
        } else if cat == Category::TokenEmbd {
            if let Some(e) = self.recipe.recipe.token_embedding_type {
                ty = e;
            } else if matches!(ft, F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ1_M) {
                ty = G::Q2K;
            } else if matches!(ft, F::IQ2_S | F::IQ2_M | F::IQ3_XXS) {
                ty = G::IQ3S;
            } else if matches!(ft, F::TQ1_0 | F::TQ2_0) {
                ty = G::Q4K;
            }
        } else if iq2_group {
            let iq2s_like = matches!(ft, F::IQ2_S | F::IQ2_M);
            if cat.is_attn_v() {
                ty = if n_gqa >= 4 || p.n_expert >= 4 {
                    G::Q4K
                } else if iq2s_like {
                    G::IQ3S
                } else {
                    G::Q2K
                };
                self.i_attention_wv += 1;
            } else if p.n_expert == 8 && cat == Category::AttnK {
                ty = G::Q4K;
            } else if cat == Category::FfnDown {
                if self.i_ffn_down < self.n_ffn / 8 {
                    ty = if iq2s_like { G::IQ3S } else { G::Q2K };
                }
                self.i_ffn_down += 1;
            } else if cat == Category::AttnOutput {
                if p.n_expert == 8 {
                    ty = G::Q5K;
                } else if matches!(ft, F::IQ1_S | F::IQ1_M) {
                    ty = G::IQ2XXS;
                } else if iq2s_like {
                    ty = G::IQ3S;
                }
            }
        } else if cat.is_attn_v() {
            let i = self.i_attention_wv;
            match ft {
                F::Q2_K => ty = if n_gqa >= 4 { G::Q4K } else { G::Q3K },
                F::Q2_K_S if n_gqa >= 4 => ty = G::Q4K,
                F::IQ3_XXS => {
                    ty = if n_gqa >= 4 {
                        G::Q4K
                    } else if !self.has_imatrix {
                        G::IQ3S
                    } else {
                        G::IQ3XXS
                    }
                }
                F::IQ3_XS | F::IQ3_S if n_gqa >= 4 => ty = G::Q4K,
                F::IQ3_M => ty = G::Q4K,
                F::Q3_K_M => ty = if i < 2 { G::Q5K } else { G::Q4K },
                F::Q3_K_L => ty = G::Q5K,
                F::IQ4_NL | F::IQ4_XS if n_gqa >= 4 => ty = G::Q5K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i, self.n_attention_wv) => ty = G::Q6K,
                F::Q4_K_S if i < 4 => ty = G::Q5K,
                _ => {}
            }
            if p.is_70b() && matches!(ty, G::Q3K | G::Q4K) {
                ty = G::Q5K;
            }
            if p.n_expert == 8 {
                ty = G::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if p.n_expert == 8 {
                ty = G::Q8_0;
            } else if ft == F::IQ3_XS {
                ty = G::IQ3XXS;
            } else if ft == F::IQ3_XXS {
                ty = G::IQ2S;
            }
        } else if cat == Category::AttnQ {
            if ft == F::IQ3_XS {
                ty = G::IQ3XXS;
            } else if ft == F::IQ3_XXS {
                ty = G::IQ2S;
            }
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer_info(self.i_ffn_down, &t.name)?;
            if ft == F::Q2_K {
                ty = G::Q3K;
            } else if ft == F::Q2_K_S {
                if i < n / 8 {
                    ty = G::Q4K;
                }
            } else if ft == F::IQ3_XXS && !self.has_imatrix {
                ty = if i < n / 8 { G::Q4K } else { G::Q3K };
            } else if ft == F::Q3_K_M {
                ty = if i < n / 16 {
                    G::Q5K
                } else if !falcon || use_more_bits(i, n) {
                    G::Q4K
                } else {
                    G::Q3K
                };
            } else if ft == F::IQ3_M && (i < n / 8 || (p.n_expert == 8 && use_more_bits(i, n))) {
                ty = G::Q4K;
            } else if ft == F::Q3_K_L {
                ty = if falcon { G::Q4K } else { G::Q5K };
            } else if ft == F::Q4_K_M {
                if falcon {
                    ty = if i < n / 16 {
                        G::Q6K
                    } else if use_more_bits(i, n) {
                        G::Q5K
                    } else {
                        G::Q4K
                    };
                } else if use_more_bits(i, n) {
                    ty = G::Q6K;
                }
            } else if i < n / 8 && matches!(ft, F::IQ4_NL | F::IQ4_XS) && !self.has_imatrix {
                ty = G::Q5K;
            } else if ft == F::Q5_K_M && use_more_bits(i, n) {
                ty = G::Q6K;
            } else if ft == F::Q4_K_S && !falcon && i < n / 8 {
                ty = G::Q5K;
            } else if matches!(ft, F::Q4_0 | F::Q5_0) && self.has_imatrix && i < n / 8 {
                ty = if ft == F::Q4_0 { G::Q4_1 } else { G::Q5_1 };
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !falcon {
                if p.n_expert == 8 {
                    if matches!(
                        ft,
                        F::Q2_K
                            | F::IQ3_XS
                            | F::IQ3_XXS
                            | F::Q3_K_S
                            | F::Q3_K_M
                            | F::IQ4_NL
                            | F::Q4_K_S
                            | F::Q4_K_M
                            | F::IQ3_S
                            | F::IQ3_M
                            | F::IQ4_XS
                    ) {
                        ty = G::Q5K;
                    }
                } else {
                    match ft {
                        F::Q2_K => ty = G::Q3K,
                        F::IQ3_XXS => ty = G::IQ3S,
                        F::Q3_K_M => ty = G::Q4K,
                        F::Q3_K_L => ty = G::Q5K,
                        F::IQ3_M => ty = G::Q4K,
                        _ => {}
                    }
                }
            } else if ft == F::Q3_K_L {
                ty = G::Q4K;
            }
        } else if cat == Category::AttnQkv {
            // Unreachable in practice: QKV is attn_v-like and handled above.
            match ft {
                F::Q3_K_M | F::Q3_K_L | F::IQ3_M => ty = G::Q4K,
                F::Q4_K_M => ty = G::Q5K,
                F::Q5_K_M => ty = G::Q6K,
                _ => {}
            }
        } else if cat == Category::FfnGate {
            let (i, n) = self.layer_info(self.i_ffn_gate, &t.name)?;
            if ft == F::IQ3_XS && i >= n / 8 && i < 7 * n / 8 {
                ty = G::IQ3XXS;
            }
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            let (i, n) = self.layer_info(self.i_ffn_up, &t.name)?;
            if ft == F::IQ3_XS && i >= n / 8 && i < 7 * n / 8 {
                ty = G::IQ3XXS;
            }
            self.i_ffn_up += 1;
        }
        Ok(ty)
    }

    /// `llama_tensor_get_type` for a quantizable tensor: explicit embedding and output types,
    /// then (for quantized defaults) `--tensor-type` overrides or the mixture rules, then the
    /// shape fallback. Returns the type and whether a fallback was used.
    fn choose(
        &mut self,
        t: &TensorInfo,
        default: GgmlType,
    ) -> Result<(GgmlType, bool), QuantError> {
        let cat = Category::of(&t.name);
        let r = &self.recipe.recipe;
        if let Some(e) = r.token_embedding_type
            && cat == Category::TokenEmbd
        {
            // A separately named per-layer table may still follow --tensor-type.
            let named = t.name == "per_layer_token_embd.weight" && self.recipe.names(&t.name);
            if !named {
                return Ok((e, false));
            }
        }
        if let Some(o) = r.output_tensor_type
            && cat == Category::Output
        {
            return Ok((o, false));
        }
        if !default.is_quantized() {
            return Ok((default, false));
        }
        let mut ty = default;
        let manual = self.recipe.tensor_type_for(&t.name);
        if let Some(m) = manual {
            ty = m;
        } else if !r.pure {
            ty = self.rules(t, cat, ty)?;
        }
        let ne0 = t.ne.first().copied().unwrap_or(0);
        match fallback(ne0, ty).map_err(|m| QuantError::tensor(&t.name, m))? {
            Some(alt) => Ok((alt, true)),
            None => Ok((ty, false)),
        }
    }
}

/// What shapes a plan besides the file type.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions<'a> {
    /// Per-tensor overrides.
    pub recipe: &'a CompiledRecipe,
    /// Whether importance weights are in use (some rules depend on it).
    pub has_imatrix: bool,
}

/// Chooses the output order and type of every tensor of a model for `ftype`, with llama-quantize's
/// default settings (no recipe, no imatrix).
#[cfg(test)]
pub fn plan(
    tensors: &[TensorInfo],
    params: &ModelParams,
    ftype: FileType,
) -> Result<Plan, QuantError> {
    let recipe = CompiledRecipe::default();
    plan_with(
        tensors,
        params,
        ftype,
        PlanOptions {
            recipe: &recipe,
            has_imatrix: false,
        },
    )
}

/// The plan of `ftype` with a recipe and the imatrix state.
pub fn plan_with(
    tensors: &[TensorInfo],
    params: &ModelParams,
    ftype: FileType,
    opts: PlanOptions<'_>,
) -> Result<Plan, QuantError> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| compare_tensor_names(&tensors[a].name, &tensors[b].name));

    let mut st = State {
        p: params,
        ftype,
        recipe: opts.recipe,
        has_imatrix: opts.has_imatrix,
        n_attention_wv: tensors
            .iter()
            .filter(|t| Category::of(&t.name).is_attn_v())
            .count() as i64,
        i_attention_wv: 0,
        n_ffn: i64::from(params.n_layer_all),
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
        has_tied_embeddings: !tensors.iter().any(|t| t.name == "output.weight"),
    };
    let default = ftype.default_type();
    let leave_output = opts.recipe.recipe.leave_output_tensor;
    let mut out = Vec::with_capacity(order.len());
    let mut n_fallback = 0;
    for idx in order {
        let t = &tensors[idx];
        let n_dims = t.ggml_n_dims();
        let quantizable = allows_quantization(&t.name, n_dims, &params.arch)
            && !(leave_output && t.name == "output.weight");
        let (target, fell_back) = if quantizable {
            st.choose(t, default)?
        } else {
            (t.ggml_type, false)
        };
        n_fallback += usize::from(fell_back);
        out.push(TensorChoice {
            input_index: idx,
            target,
            fallback: fell_back,
            quantizable,
            requires_imatrix: requires_imatrix(&t.name, target, ftype),
        });
    }
    Ok(Plan {
        tensors: out,
        n_fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, ne: &[u64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            ne: ne.to_vec(),
            ggml_type: GgmlType::F16,
            offset: 0,
            nbytes: 0,
        }
    }

    fn params(arch: &str, n_layer: u32, n_head: u32, n_head_kv: u32) -> ModelParams {
        ModelParams {
            arch: arch.into(),
            n_layer_all: n_layer,
            n_layer_nextn: 0,
            n_head,
            n_head_kv,
            n_expert: 0,
        }
    }

    #[test]
    fn order_puts_non_block_tensors_first_then_layers_numerically() {
        let mut names = vec![
            "blk.10.attn_q.weight",
            "token_embd.weight",
            "blk.2.ffn_up.weight",
            "blk.2.attn_k.weight",
            "output.weight",
            "output_norm.weight",
        ];
        names.sort_by(|a, b| compare_tensor_names(a, b));
        assert_eq!(
            names,
            [
                "output.weight",
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.ffn_up.weight",
                "blk.10.attn_q.weight",
            ]
        );
        assert_eq!(layer_of("blk.x.y"), -1);
        assert_eq!(layer_of("blk.-3.y"), -3);
        assert_eq!(layer_of("blk.7"), 7);
    }

    #[test]
    fn quantizable_tensors() {
        assert!(allows_quantization("blk.0.attn_q.weight", 2, "llama"));
        assert!(!allows_quantization("blk.0.attn_q.bias", 2, "llama"));
        assert!(!allows_quantization("blk.0.attn_norm.weight", 2, "llama"));
        assert!(!allows_quantization("blk.0.attn_q.weight", 1, "llama"));
        assert!(!allows_quantization("position_embd.weight", 2, "gpt2"));
        assert!(allows_quantization("abcde", 2, "llama")); // the size_t wrap-around quirk
        assert!(!allows_quantization("abcd", 2, "llama"));
    }

    #[test]
    fn gpt2_q4_k_m_example_from_the_notes() {
        // n_embd 64, n_ff 256, 2 layers, tied embeddings.
        let mut ts = vec![
            t("token_embd.weight", &[64, 100]),
            t("position_embd.weight", &[64, 32]),
        ];
        for l in 0..2 {
            ts.push(t(&format!("blk.{l}.attn_qkv.weight"), &[64, 192]));
            ts.push(t(&format!("blk.{l}.attn_output.weight"), &[64, 64]));
            ts.push(t(&format!("blk.{l}.ffn_up.weight"), &[64, 256]));
            ts.push(t(&format!("blk.{l}.ffn_down.weight"), &[256, 64]));
        }
        let p = plan(&ts, &params("gpt2", 2, 4, 4), FileType::Q4_K_M).unwrap();
        let ty = |name: &str| {
            p.tensors
                .iter()
                .find(|c| ts[c.input_index].name == name)
                .map(|c| c.target)
                .unwrap()
        };
        assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
        assert_eq!(ty("position_embd.weight"), GgmlType::F16);
        // use_more_bits(i, 2) holds only for the last layer (i >= 7*2/8 = 1): Q6_K → Q8_0.
        assert_eq!(ty("blk.0.attn_qkv.weight"), GgmlType::Q5_0);
        assert_eq!(ty("blk.1.attn_qkv.weight"), GgmlType::Q8_0);
        assert_eq!(ty("blk.0.attn_output.weight"), GgmlType::Q5_0);
        assert_eq!(ty("blk.0.ffn_up.weight"), GgmlType::Q5_0);
        assert_eq!(ty("blk.1.ffn_down.weight"), GgmlType::Q6K);
        assert_eq!(p.n_fallback, 6);
    }

    #[test]
    fn use_more_bits_matches_the_reference_pattern() {
        let n = 12;
        let v: Vec<bool> = (0..n).map(|i| use_more_bits(i, n)).collect();
        // n/8 = 1, 7n/8 = 10: layers 0, 10, 11 and every third from 1 (3, 6, 9).
        assert_eq!(
            v,
            [
                true, false, false, true, false, false, true, false, false, true, true, true
            ]
        );
    }

    #[test]
    fn fallback_chain() {
        let f = |n, t| fallback(n, t).unwrap();
        assert_eq!(f(256, GgmlType::Q4K), None);
        assert_eq!(f(96, GgmlType::Q4K), Some(GgmlType::Q5_0));
        assert_eq!(f(96, GgmlType::Q6K), Some(GgmlType::Q8_0));
        assert_eq!(f(96, GgmlType::Q3K), Some(GgmlType::Q4_0));
        assert_eq!(f(96, GgmlType::Q5K), Some(GgmlType::Q5_1));
        assert_eq!(f(40, GgmlType::Q4K), Some(GgmlType::F16));
        assert_eq!(f(40, GgmlType::Q8_0), Some(GgmlType::F16));
        assert_eq!(f(96, GgmlType::IQ2XXS), Some(GgmlType::IQ4NL));
        assert_eq!(f(40, GgmlType::IQ3S), Some(GgmlType::F16));
        assert_eq!(f(96, GgmlType::TQ1_0), Some(GgmlType::Q4_0));
        assert!(fallback(96, GgmlType::NVFP4).is_err());
    }
}
