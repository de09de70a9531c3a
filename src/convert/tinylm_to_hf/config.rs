//! tiny-lm's YAML configs: `configs/models/<name>.yaml` and `configs/tokenizers/<name>.yaml`.
//!
//! Parsed with `serde-saphyr` (maintained, panic-free, no `unsafe`, no libyaml; `serde_yaml`
//! is archived). Unknown keys are ignored so newer tiny-lm configs keep loading.

use std::path::Path;

use serde::Deserialize;

/// Model hyper-parameters (flat YAML). Only what the weights cannot tell is required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelYaml {
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Context length (positions).
    pub context_length: usize,
    /// Hidden size.
    pub d_model: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Number of attention heads.
    pub n_heads: usize,
    /// Number of key/value heads (Llama 3, GQA); defaults to `n_heads`.
    pub n_kv_heads: Option<usize>,
    /// Feed-forward size (GPT-2).
    pub d_ff: Option<usize>,
    /// Feed-forward size (Llama 3), before rounding to `multiple_of`.
    pub ffn_hidden_dim: Option<usize>,
    /// Feed-forward rounding (Llama 3).
    pub multiple_of: Option<usize>,
    /// RoPE base (Llama 3); defaults to 10000.
    pub rope_theta: Option<f64>,
    /// RMSNorm epsilon (Llama 3); defaults to 1e-6.
    pub norm_eps: Option<f64>,
    /// Whether W_q/W_k/W_v have biases.
    pub qkv_bias: Option<bool>,
    /// Whether the feed-forward layers have biases (Llama 3).
    pub ffn_bias: Option<bool>,
    /// Attention implementation (`manual` stores causal-mask buffers).
    pub attn_backend: Option<String>,
    /// Default dropout.
    pub dropout: Option<f64>,
    /// Attention dropout.
    pub attn_dropout: Option<f64>,
    /// Embedding dropout.
    pub emb_dropout: Option<f64>,
    /// Residual dropout.
    pub resid_dropout: Option<f64>,
}

/// Names of the special tokens (`special_tokens: {bos, eos, pad, unk}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SpecialTokenNames {
    /// Beginning of sequence.
    pub bos: Option<String>,
    /// End of sequence.
    pub eos: Option<String>,
    /// Padding.
    pub pad: Option<String>,
    /// Unknown.
    pub unk: Option<String>,
}

/// Tokenizer config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TokenizerYaml {
    /// Tokenizer name.
    pub name: Option<String>,
    /// Special token names.
    #[serde(default)]
    pub special_tokens: SpecialTokenNames,
    /// Tokenizer type (`BPE`).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Vocabulary size including special tokens.
    pub vocab_size: Option<usize>,
}

impl TokenizerYaml {
    /// tiny-lm's defaults when no tokenizer YAML is given.
    pub fn tinylm_defaults() -> Self {
        TokenizerYaml {
            special_tokens: SpecialTokenNames {
                bos: Some("<bos>".into()),
                eos: Some("<eos>".into()),
                pad: Some("<pad>".into()),
                unk: Some("<unk>".into()),
            },
            ..TokenizerYaml::default()
        }
    }
}

/// Reads and parses a YAML file into `T`; errors carry the parser's line/column message.
pub fn load_yaml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = crate::fsutil::input::read_to_string(path).map_err(|e| e.to_string())?;
    parse_yaml(&text)
}

/// Parses YAML text into `T`.
pub fn parse_yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
    crate::formats::guard::catch("the YAML parser failed", || serde_saphyr::from_str(text))?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tinylm_configs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let m: ModelYaml = load_yaml(&dir.join("tinylm-llama3/model.yaml")).unwrap();
        assert_eq!((m.vocab_size, m.d_model, m.n_heads), (768, 64, 4));
        assert_eq!(m.n_kv_heads, Some(2));
        assert_eq!(m.norm_eps, Some(1e-6));
        assert_eq!(m.rope_theta, Some(10000.0));
        let g: ModelYaml = load_yaml(&dir.join("tinylm-gpt2/model.yaml")).unwrap();
        assert_eq!((g.d_ff, g.attn_dropout), (Some(256), Some(0.1)));
        let t: TokenizerYaml = load_yaml(&dir.join("tinylm-gpt2/tokenizer.yaml")).unwrap();
        assert_eq!(
            t.special_tokens,
            TokenizerYaml::tinylm_defaults().special_tokens
        );
        assert_eq!(t.vocab_size, Some(512));
        assert_eq!(t.kind.as_deref(), Some("BPE"));
    }

    #[test]
    fn ints_for_floats_unknown_keys_and_errors() {
        let m: ModelYaml = parse_yaml(
            "vocab_size: 10\ncontext_length: 4\nd_model: 8\nn_layers: 1\nn_heads: 2\n\
             rope_theta: 500000\nfuture_key: [1, 2]\n",
        )
        .unwrap();
        assert_eq!(m.rope_theta, Some(500000.0));
        let err = parse_yaml::<ModelYaml>("vocab_size: 10\n").unwrap_err();
        assert!(err.contains("context_length"), "{err}");
        let err = parse_yaml::<ModelYaml>("vocab_size: [\n").unwrap_err();
        assert!(!err.is_empty());
        let err = parse_yaml::<ModelYaml>(
            "vocab_size: -3\ncontext_length: 4\nd_model: 8\nn_layers: 1\nn_heads: 2\n",
        )
        .unwrap_err();
        assert!(!err.is_empty());
    }
}
