//! llama-quantize's file types (`llama_ftype`): names, ids and default tensor types.

use std::fmt;
use std::str::FromStr;

use crate::formats::gguf::GgmlType;

/// An output file type, as `llama-quantize` names it and as `general.file_type` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
// Variant names are llama-quantize's own spelling (`Q4_K_M`), which users type.
#[allow(missing_docs, non_camel_case_types)]
pub enum FileType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
    IQ2_XXS,
    IQ2_XS,
    Q2_K_S,
    IQ3_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ3_M,
    IQ2_S,
    IQ2_M,
    IQ4_XS,
    IQ1_M,
    TQ1_0,
    TQ2_0,
}

impl FileType {
    /// Every file type tinylm produces, in llama-quantize's listing order.
    pub const ALL: [FileType; 32] = {
        use FileType::*;
        [
            Q4_0, Q4_1, Q5_0, Q5_1, IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ1_S, IQ1_M, TQ1_0, TQ2_0,
            Q2_K, Q2_K_S, IQ3_XXS, IQ3_S, IQ3_M, IQ3_XS, Q3_K_S, Q3_K_M, Q3_K_L, IQ4_NL, IQ4_XS,
            Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q8_0, F16, BF16, F32,
        ]
    };

    /// The `general.file_type` value (`llama_ftype`).
    pub fn id(self) -> u32 {
        use FileType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q2_K => 10,
            Q3_K_S => 11,
            Q3_K_M => 12,
            Q3_K_L => 13,
            Q4_K_S => 14,
            Q4_K_M => 15,
            Q5_K_S => 16,
            Q5_K_M => 17,
            Q6_K => 18,
            IQ2_XXS => 19,
            IQ2_XS => 20,
            Q2_K_S => 21,
            IQ3_XS => 22,
            IQ3_XXS => 23,
            IQ1_S => 24,
            IQ4_NL => 25,
            IQ3_S => 26,
            IQ3_M => 27,
            IQ2_S => 28,
            IQ2_M => 29,
            IQ4_XS => 30,
            IQ1_M => 31,
            BF16 => 32,
            TQ1_0 => 36,
            TQ2_0 => 37,
        }
    }

    /// The file type with `general.file_type` value `id`, if tinylm produces it.
    pub fn from_id(id: u32) -> Option<FileType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// llama-quantize's canonical name (`Q4_K_M`, `F16`, …).
    pub fn name(self) -> &'static str {
        use FileType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q2_K => "Q2_K",
            Q3_K_S => "Q3_K_S",
            Q3_K_M => "Q3_K_M",
            Q3_K_L => "Q3_K_L",
            Q4_K_S => "Q4_K_S",
            Q4_K_M => "Q4_K_M",
            Q5_K_S => "Q5_K_S",
            Q5_K_M => "Q5_K_M",
            Q6_K => "Q6_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            Q2_K_S => "Q2_K_S",
            IQ3_XS => "IQ3_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ3_M => "IQ3_M",
            IQ2_S => "IQ2_S",
            IQ2_M => "IQ2_M",
            IQ4_XS => "IQ4_XS",
            IQ1_M => "IQ1_M",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
        }
    }

    /// The tensor type most weights get (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        use FileType::*;
        match self {
            F32 => GgmlType::F32,
            F16 => GgmlType::F16,
            BF16 => GgmlType::BF16,
            Q4_0 => GgmlType::Q4_0,
            Q4_1 => GgmlType::Q4_1,
            Q5_0 => GgmlType::Q5_0,
            Q5_1 => GgmlType::Q5_1,
            Q8_0 => GgmlType::Q8_0,
            Q2_K | Q2_K_S => GgmlType::Q2K,
            Q3_K_S | Q3_K_M | Q3_K_L => GgmlType::Q3K,
            Q4_K_S | Q4_K_M => GgmlType::Q4K,
            Q5_K_S | Q5_K_M => GgmlType::Q5K,
            Q6_K => GgmlType::Q6K,
            IQ2_XXS => GgmlType::IQ2XXS,
            IQ2_XS | IQ2_S => GgmlType::IQ2XS,
            IQ2_M => GgmlType::IQ2S,
            IQ3_XXS => GgmlType::IQ3XXS,
            IQ3_XS | IQ3_S | IQ3_M => GgmlType::IQ3S,
            IQ1_S => GgmlType::IQ1S,
            IQ1_M => GgmlType::IQ1M,
            IQ4_NL => GgmlType::IQ4NL,
            IQ4_XS => GgmlType::IQ4XS,
            TQ1_0 => GgmlType::TQ1_0,
            TQ2_0 => GgmlType::TQ2_0,
        }
    }

    /// Whether llama-quantize refuses this file type without an importance matrix (some of
    /// its tensors get a type that needs one; see `select::requires_imatrix`).
    pub fn needs_imatrix(self) -> bool {
        use FileType::*;
        matches!(
            self,
            IQ2_XXS | IQ2_XS | IQ2_S | IQ2_M | IQ1_S | IQ1_M | IQ3_XXS | Q2_K_S
        )
    }

    /// Whether the default type is block-quantized (so mixture rules and fallbacks apply).
    pub fn is_quantized(self) -> bool {
        self.default_type().is_quantized()
    }
}

impl fmt::Display for FileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file type name was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantization type '{given}'; expected one of {}{}", list(), suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
pub struct ParseFileTypeError {
    /// What was given.
    pub given: String,
    /// The closest valid name, if any is close.
    pub suggestion: Option<String>,
}

fn list() -> String {
    let names: Vec<&str> = FileType::ALL.iter().map(|t| t.name()).collect();
    names.join(", ")
}

impl FromStr for FileType {
    type Err = ParseFileTypeError;

    /// Parses a llama-quantize name (case-insensitive), an alias (`Q3_K`, `Q4_K`, `Q5_K`) or a
    /// numeric `llama_ftype` id.
    fn from_str(s: &str) -> Result<FileType, ParseFileTypeError> {
        let t = s.trim();
        if let Ok(id) = t.parse::<u32>()
            && let Some(ft) = FileType::from_id(id)
        {
            return Ok(ft);
        }
        let upper = t.to_ascii_uppercase();
        let alias = match upper.as_str() {
            "Q3_K" => Some(FileType::Q3_K_M),
            "Q4_K" => Some(FileType::Q4_K_M),
            "Q5_K" => Some(FileType::Q5_K_M),
            _ => None,
        };
        if let Some(ft) = alias.or_else(|| FileType::ALL.into_iter().find(|f| f.name() == upper)) {
            return Ok(ft);
        }
        // Compared without separators first, so `q4km` means Q4_K_M (not Q4_0, which is as
        // many edits away with them).
        let bare = |n: &str| n.replace(['_', '-', '.', ' '], "");
        let suggestion = FileType::ALL
            .iter()
            .map(|f| {
                (
                    strsim::levenshtein(&bare(f.name()), &bare(&upper)),
                    strsim::levenshtein(f.name(), &upper),
                    f.name(),
                )
            })
            .filter(|(d, _, _)| *d <= 2)
            .min()
            .map(|(_, _, n)| n.to_string());
        Err(ParseFileTypeError {
            given: s.to_string(),
            suggestion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_aliases() {
        for ft in FileType::ALL {
            assert_eq!(ft.name().parse::<FileType>(), Ok(ft));
            assert_eq!(ft.name().to_lowercase().parse::<FileType>(), Ok(ft));
            assert_eq!(ft.id().to_string().parse::<FileType>(), Ok(ft));
            assert_eq!(FileType::from_id(ft.id()), Some(ft));
        }
        assert_eq!("q3_k".parse::<FileType>(), Ok(FileType::Q3_K_M));
        assert_eq!("Q4_K".parse::<FileType>(), Ok(FileType::Q4_K_M));
        assert_eq!("q5_k".parse::<FileType>(), Ok(FileType::Q5_K_M));
        assert_eq!(FileType::Q4_K_M.id(), 15);
        assert_eq!(FileType::BF16.id(), 32);
        assert_eq!(FileType::Q8_0.id(), 7);
    }

    #[test]
    fn unknown_names_are_explained() {
        let e = "q4_k_x".parse::<FileType>().unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("Q4_K_M"));
        for typo in ["q4km", "Q4KM", "q4-k-m"] {
            let e = typo.parse::<FileType>().unwrap_err();
            assert_eq!(e.suggestion.as_deref(), Some("Q4_K_M"), "{typo}");
        }
        assert!(e.to_string().contains("Q4_K_M, Q5_K_S"), "{e}");
        assert_eq!("iq2_xxs".parse::<FileType>(), Ok(FileType::IQ2_XXS));
        assert_eq!("19".parse::<FileType>(), Ok(FileType::IQ2_XXS));
        assert!("33".parse::<FileType>().is_err());
        assert!("copy".parse::<FileType>().is_err());
        assert!("mxfp4_moe".parse::<FileType>().is_err());
    }
}
