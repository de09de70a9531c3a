//! `config.json` and `generation_config.json` exactly as transformers' `save_pretrained` writes
//! them for a `GPT2Config` / `LlamaConfig` built from tiny-lm's hyper-parameters.
//!
//! transformers writes `to_diff_dict()`: every architecture-specific attribute, plus the common
//! `PretrainedConfig` attributes whose value differs from the defaults. That is why GPT-2's
//! config has no `tie_word_embeddings` (true is the default) while Llama's does.

use serde_json::{Map, Value, json};

use super::TinyLmArch;
use super::config::ModelYaml;
use super::pyjson;
use super::tokenizer::SpecialIds;
use super::weights::ModelFacts;
use crate::formats::DType;

/// The transformers release whose `save_pretrained` output these files reproduce.
pub const TRANSFORMERS_VERSION: &str = "4.57.6";

fn torch_dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        _ => "float32",
    }
}

fn insert_ids(map: &mut Map<String, Value>, ids: &SpecialIds) {
    for (k, v) in [
        ("bos_token_id", ids.bos),
        ("eos_token_id", ids.eos),
        ("pad_token_id", ids.pad),
    ] {
        if let Some(id) = v {
            map.insert(k.into(), json!(id));
        }
    }
}

/// `config.json` bytes.
pub fn config_json(m: &ModelYaml, f: &ModelFacts, ids: &SpecialIds, dtype: DType) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("dtype".into(), json!(torch_dtype_name(dtype)));
    c.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    c.insert("vocab_size".into(), json!(f.vocab));
    c.insert("initializer_range".into(), json!(0.02));
    c.insert("use_cache".into(), json!(true));
    insert_ids(&mut c, ids);
    match f.arch {
        TinyLmArch::Gpt2 => {
            let dropout = |specific: Option<f64>| json!(specific.or(m.dropout).unwrap_or(0.1));
            c.insert("architectures".into(), json!(["GPT2LMHeadModel"]));
            c.insert("model_type".into(), json!("gpt2"));
            c.insert("activation_function".into(), json!("gelu_new"));
            c.insert("attn_pdrop".into(), dropout(m.attn_dropout));
            c.insert("embd_pdrop".into(), dropout(m.emb_dropout));
            c.insert("resid_pdrop".into(), dropout(m.resid_dropout));
            c.insert("layer_norm_epsilon".into(), json!(1e-5));
            c.insert("n_ctx".into(), json!(f.ctx));
            c.insert("n_positions".into(), json!(f.ctx));
            c.insert("n_embd".into(), json!(f.d_model));
            c.insert("n_head".into(), json!(f.n_heads));
            c.insert("n_inner".into(), json!(f.ffn));
            c.insert("n_layer".into(), json!(f.n_layers));
            c.insert("reorder_and_upcast_attn".into(), json!(false));
            c.insert("scale_attn_by_inverse_layer_idx".into(), json!(false));
            c.insert("scale_attn_weights".into(), json!(true));
            c.insert("summary_activation".into(), Value::Null);
            c.insert("summary_first_dropout".into(), json!(0.1));
            c.insert("summary_proj_to_labels".into(), json!(true));
            c.insert("summary_type".into(), json!("cls_index"));
            c.insert("summary_use_proj".into(), json!(true));
            // Only written when it differs from the default (true).
            if !f.tied {
                c.insert("tie_word_embeddings".into(), json!(false));
            }
        }
        TinyLmArch::Llama3 => {
            c.insert("architectures".into(), json!(["LlamaForCausalLM"]));
            c.insert("model_type".into(), json!("llama"));
            c.insert("attention_bias".into(), json!(f.attention_bias));
            c.insert("attention_dropout".into(), json!(0.0));
            c.insert("head_dim".into(), json!(f.head_dim));
            c.insert("hidden_act".into(), json!("silu"));
            c.insert("hidden_size".into(), json!(f.d_model));
            c.insert("intermediate_size".into(), json!(f.ffn));
            c.insert("max_position_embeddings".into(), json!(f.ctx));
            c.insert("mlp_bias".into(), json!(f.mlp_bias));
            c.insert("num_attention_heads".into(), json!(f.n_heads));
            c.insert("num_hidden_layers".into(), json!(f.n_layers));
            c.insert("num_key_value_heads".into(), json!(f.n_kv_heads));
            c.insert("pretraining_tp".into(), json!(1));
            c.insert("rms_norm_eps".into(), json!(m.norm_eps.unwrap_or(1e-6)));
            c.insert("rope_scaling".into(), Value::Null);
            c.insert("rope_theta".into(), json!(m.rope_theta.unwrap_or(10000.0)));
            c.insert("tie_word_embeddings".into(), json!(f.tied));
        }
    }
    (pyjson::dumps(&Value::Object(c), true) + "\n").into_bytes()
}

/// `generation_config.json` bytes (`GenerationConfig.from_model_config`).
pub fn generation_config_json(ids: &SpecialIds) -> Vec<u8> {
    let mut c = Map::new();
    c.insert("_from_model_config".into(), json!(true));
    insert_ids(&mut c, ids);
    c.insert("transformers_version".into(), json!(TRANSFORMERS_VERSION));
    (pyjson::dumps(&Value::Object(c), true) + "\n").into_bytes()
}
