//! Per-tensor quantization recipes: llama-quantize's `--tensor-type`, `--token-embedding-type`,
//! `--output-tensor-type`, `--pure`, `--leave-output-tensor`, `--include-weights` and
//! `--exclude-weights`, as one typed value that the CLI and the manifest both produce.

use std::fmt;

use crate::formats::gguf::GgmlType;

/// A tensor-type override: tensors whose name matches `pattern` (a regular expression searched
/// anywhere in the name, as `std::regex_search` does) get `ggml_type`. The first matching rule
/// wins.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TensorTypeRule {
    /// The pattern; lower-cased before use, as llama-quantize lower-cases it.
    pub pattern: String,
    /// The tensor type (ggml name, e.g. `q6_K`).
    #[serde(with = "ggml_type_name")]
    pub ggml_type: GgmlType,
}

/// How to choose tensor types beyond the file type's mixture rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// `--tensor-type PATTERN=TYPE`, in order.
    pub tensor_types: Vec<TensorTypeRule>,
    /// `--token-embedding-type`: the type of `token_embd.weight` (no fallback is applied).
    #[serde(with = "opt_ggml_type_name", skip_serializing_if = "Option::is_none")]
    pub token_embedding_type: Option<GgmlType>,
    /// `--output-tensor-type`: the type of `output.weight` (and of tied token embeddings).
    #[serde(with = "opt_ggml_type_name", skip_serializing_if = "Option::is_none")]
    pub output_tensor_type: Option<GgmlType>,
    /// `--pure`: no mixture rules, every quantizable tensor gets the default type.
    pub pure: bool,
    /// `--leave-output-tensor`: keep `output.weight` as it is.
    pub leave_output_tensor: bool,
    /// `--include-weights`: use imatrix entries only for names containing one of these.
    pub include_weights: Vec<String>,
    /// `--exclude-weights`: drop imatrix entries whose names contain one of these.
    pub exclude_weights: Vec<String>,
}

/// Why a recipe cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// A `--tensor-type` pattern is not a valid regular expression.
    #[error("tensor-type pattern '{pattern}' is not a valid regular expression: {msg}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The parser's message.
        msg: String,
    },
    /// A type that tinylm cannot write.
    #[error("{what}: tinylm cannot produce tensor type {ty}")]
    Unsupported {
        /// Which setting.
        what: String,
        /// The type.
        ty: GgmlType,
    },
    /// Both imatrix filters were given.
    #[error("--include-weights and --exclude-weights cannot be used together")]
    IncludeAndExclude,
    /// A `PATTERN=TYPE` or type name that does not parse.
    #[error("{0}")]
    Syntax(String),
}

/// A recipe with its patterns compiled.
#[derive(Debug, Clone, Default)]
pub struct CompiledRecipe {
    /// The recipe.
    pub recipe: Recipe,
    patterns: Vec<(fancy_regex::Regex, GgmlType)>,
}

impl Recipe {
    /// Checks the recipe and compiles its patterns.
    pub fn compile(&self) -> Result<CompiledRecipe, RecipeError> {
        if !self.include_weights.is_empty() && !self.exclude_weights.is_empty() {
            return Err(RecipeError::IncludeAndExclude);
        }
        let check = |what: String, ty: GgmlType| {
            if super::block::is_supported(ty) {
                Ok(())
            } else {
                Err(RecipeError::Unsupported { what, ty })
            }
        };
        if let Some(t) = self.token_embedding_type {
            check("--token-embedding-type".into(), t)?;
        }
        if let Some(t) = self.output_tensor_type {
            check("--output-tensor-type".into(), t)?;
        }
        let mut patterns = Vec::with_capacity(self.tensor_types.len());
        for r in &self.tensor_types {
            check(format!("--tensor-type {}", r.pattern), r.ggml_type)?;
            let re = fancy_regex::Regex::new(&r.pattern.to_lowercase()).map_err(|e| {
                RecipeError::Pattern {
                    pattern: r.pattern.clone(),
                    msg: e.to_string(),
                }
            })?;
            patterns.push((re, r.ggml_type));
        }
        Ok(CompiledRecipe {
            recipe: self.clone(),
            patterns,
        })
    }

    /// Whether this is the default recipe (no overrides, no filters).
    pub fn is_default(&self) -> bool {
        *self == Recipe::default()
    }
}

impl CompiledRecipe {
    /// The type of the first `--tensor-type` rule whose pattern is found in `name`.
    pub fn tensor_type_for(&self, name: &str) -> Option<GgmlType> {
        self.patterns
            .iter()
            .find(|(re, _)| re.is_match(name).unwrap_or(false))
            .map(|&(_, t)| t)
    }

    /// Whether any `--tensor-type` rule matches `name`.
    pub fn names(&self, name: &str) -> bool {
        self.tensor_type_for(name).is_some()
    }
}

/// Parses a ggml type name case-insensitively (`q6_k`, `IQ4_XS`, `f16`), as llama-quantize's
/// `parse_ggml_type` does.
pub fn parse_ggml_type(s: &str) -> Result<GgmlType, RecipeError> {
    GgmlType::ALL
        .iter()
        .copied()
        .find(|t| t.name().eq_ignore_ascii_case(s))
        .ok_or_else(|| {
            let producible: Vec<&str> = GgmlType::ALL
                .iter()
                .filter(|t| super::block::is_supported(**t))
                .map(|t| t.name())
                .collect();
            RecipeError::Syntax(format!(
                "invalid ggml type '{s}'; expected one of {}",
                producible.join(", ")
            ))
        })
}

/// Parses `PATTERN=TYPE` (`--tensor-type`).
pub fn parse_tensor_type(s: &str) -> Result<TensorTypeRule, RecipeError> {
    let Some((pattern, ty)) = s.split_once('=') else {
        return Err(RecipeError::Syntax(format!(
            "malformed tensor type '{s}'; expected PATTERN=TYPE, e.g. ffn_down=q6_k"
        )));
    };
    if pattern.is_empty() {
        return Err(RecipeError::Syntax(format!("missing tensor name in '{s}'")));
    }
    if ty.is_empty() {
        return Err(RecipeError::Syntax(format!(
            "missing quantization type in '{s}'"
        )));
    }
    Ok(TensorTypeRule {
        pattern: pattern.to_string(),
        ggml_type: parse_ggml_type(ty)?,
    })
}

impl fmt::Display for TensorTypeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.pattern, self.ggml_type)
    }
}

mod ggml_type_name {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &GgmlType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<GgmlType, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        parse_ggml_type(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_ggml_type_name {
    use super::*;

    pub fn serialize<S: serde::Serializer>(t: &Option<GgmlType>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(t.name()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<GgmlType>, D::Error> {
        let s = <Option<String> as serde::Deserialize>::deserialize(d)?;
        s.map(|s| parse_ggml_type(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_type_syntax() {
        let r = parse_tensor_type("ffn_down=Q6_K").unwrap();
        assert_eq!(
            (r.pattern.as_str(), r.ggml_type),
            ("ffn_down", GgmlType::Q6K)
        );
        assert_eq!(
            parse_tensor_type("a=iq4_xs").unwrap().ggml_type,
            GgmlType::IQ4XS
        );
        for bad in ["ffn_down", "=q4_0", "ffn=", "ffn=q9_9"] {
            assert!(parse_tensor_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_are_lowercased_searched_and_first_wins() {
        let r = Recipe {
            tensor_types: vec![
                parse_tensor_type("BLK\\.[0-1]\\.FFN=q8_0").unwrap(),
                parse_tensor_type("ffn=iq2_xxs").unwrap(),
                parse_tensor_type("attn_(?!v)=q5_k").unwrap(),
            ],
            ..Recipe::default()
        }
        .compile()
        .unwrap();
        assert_eq!(
            r.tensor_type_for("blk.1.ffn_up.weight"),
            Some(GgmlType::Q8_0)
        );
        assert_eq!(
            r.tensor_type_for("blk.2.ffn_up.weight"),
            Some(GgmlType::IQ2XXS)
        );
        assert_eq!(
            r.tensor_type_for("blk.2.attn_q.weight"),
            Some(GgmlType::Q5K)
        );
        assert_eq!(r.tensor_type_for("blk.2.attn_v.weight"), None);
    }

    #[test]
    fn invalid_recipes_are_refused() {
        let bad_re = Recipe {
            tensor_types: vec![TensorTypeRule {
                pattern: "ffn(".into(),
                ggml_type: GgmlType::Q4_0,
            }],
            ..Recipe::default()
        };
        assert!(matches!(bad_re.compile(), Err(RecipeError::Pattern { .. })));
        let both = Recipe {
            include_weights: vec!["a".into()],
            exclude_weights: vec!["b".into()],
            ..Recipe::default()
        };
        assert_eq!(both.compile().unwrap_err(), RecipeError::IncludeAndExclude);
        let unsupported = Recipe {
            output_tensor_type: Some(GgmlType::MXFP4),
            ..Recipe::default()
        };
        assert!(matches!(
            unsupported.compile(),
            Err(RecipeError::Unsupported { .. })
        ));
    }

    #[test]
    fn recipes_round_trip_through_toml() {
        let r = Recipe {
            tensor_types: vec![parse_tensor_type("ffn_down=q6_k").unwrap()],
            output_tensor_type: Some(GgmlType::Q8_0),
            pure: true,
            ..Recipe::default()
        };
        let text = toml::to_string(&r).unwrap();
        assert!(text.contains("q6_K") && text.contains("q8_0"), "{text}");
        let back: Recipe = toml::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
