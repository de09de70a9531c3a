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
}

impl FileType {
    /// Every file type tinylm produces, in llama-quantize's listing order.
    pub const ALL: [FileType; 17] = {
        use FileType::*;
        [
            Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M,
            Q6_K, Q8_0, F16, BF16, F32,
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
            BF16 => 32,
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
            Q2_K => GgmlType::Q2K,
            Q3_K_S | Q3_K_M | Q3_K_L => GgmlType::Q3K,
            Q4_K_S | Q4_K_M => GgmlType::Q4K,
            Q5_K_S | Q5_K_M => GgmlType::Q5K,
            Q6_K => GgmlType::Q6K,
        }
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
        assert!("iq2_xxs".parse::<FileType>().is_err());
        assert!("19".parse::<FileType>().is_err());
    }
}
