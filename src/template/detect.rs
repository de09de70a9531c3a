//! Picks a built-in family for a model: from its Jinja chat template's structural markers, or
//! from the special tokens of its vocabulary when it has no chat template.

use std::fmt;
use std::path::Path;

use super::families::{BuiltinTemplate, Family, Variant, builtin};
use super::vocab::Vocab;
use crate::{Error, Result};

/// The family chosen for a model, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The family.
    pub family: Family,
    /// The variant (thinking/tools) the source supports and the family offers.
    pub variant: Variant,
    /// What the decision rests on, one fact per entry.
    pub evidence: Vec<String>,
}

impl Detection {
    /// The built-in template for this detection (always `Some`: detections only return
    /// variants their family offers).
    pub fn template(&self) -> Option<BuiltinTemplate> {
        builtin(&self.name())
    }

    /// The built-in template name (`chatml-thinking`, …).
    pub fn name(&self) -> String {
        format!("{}{}", self.family.name(), self.variant.suffix())
    }
}

impl fmt::Display for Detection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.name())?;
        for e in &self.evidence {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

/// No family fits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "cannot pick a chat template family automatically: {}. Set an explicit template (template = \"chatml\" or another built-in family: {}), or give the Go template in [templates.<name>]",
    reasons.join("; "),
    crate::template::families::builtin_names().join(", ")
)]
pub struct Unknown {
    /// What was looked at and why it did not match.
    pub reasons: Vec<String>,
}

struct Rule {
    family: Family,
    all: &'static [&'static str],
    none: &'static [&'static str],
}

/// Ordered: the first rule whose markers are all present (and vetoes absent) wins.
const JINJA_RULES: &[Rule] = &[
    Rule {
        family: Family::ChatMl,
        all: &["<|im_start|>", "<|im_end|>"],
        none: &[],
    },
    Rule {
        family: Family::Llama3,
        all: &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        none: &[],
    },
    Rule {
        family: Family::Llama2,
        all: &["[INST]", "[/INST]", "<<SYS>>"],
        none: &[],
    },
    Rule {
        family: Family::Mistral,
        all: &["[INST]", "[/INST]"],
        none: &[],
    },
    Rule {
        family: Family::Gemma,
        all: &["<start_of_turn>", "<end_of_turn>"],
        none: &[],
    },
    Rule {
        family: Family::Phi3,
        all: &["<|user|>", "<|assistant|>", "<|end|>"],
        // Apriel and others reuse the tags with their own layout.
        none: &["<|content|>", "<|start|>", "<|message|>"],
    },
    Rule {
        family: Family::Zephyr,
        all: &["<|user|>", "<|assistant|>"],
        // GLM uses the same role tags without </s> turns.
        none: &["<|end|>", "[gMASK]", "<sop>", "<|observation|>"],
    },
];

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

/// Detects the family of a Jinja chat template.
pub fn detect_jinja(template: &str) -> Result<Detection, Unknown> {
    for rule in JINJA_RULES {
        if !rule.all.iter().all(|m| template.contains(m)) {
            continue;
        }
        if let Some(veto) = rule.none.iter().find(|m| template.contains(*m)) {
            tracing::debug!(
                "{} markers present but vetoed by {veto}",
                rule.family.name()
            );
            continue;
        }
        if rule.family == Family::Zephyr
            && !(template.contains("eos_token") || template.contains("</s>"))
        {
            continue;
        }
        let mut evidence: Vec<String> = rule
            .all
            .iter()
            .map(|m| format!("chat template contains {m} ({}×)", count(template, m)))
            .collect();
        if rule.family == Family::Zephyr {
            evidence.push("turns end with eos_token/</s>".into());
        }
        if rule.family == Family::Mistral {
            evidence.push("no <<SYS>> block (so not llama2)".into());
        }
        let variant = jinja_variant(rule.family, template, &mut evidence);
        return Ok(Detection {
            family: rule.family,
            variant,
            evidence,
        });
    }
    let mut seen: Vec<&str> = [
        "<|im_start|>",
        "<|im_end|>",
        "<|start_header_id|>",
        "[INST]",
        "<start_of_turn>",
        "<|user|>",
        "<|assistant|>",
        "<|end|>",
        "<|turn>",
        "<｜User｜>",
        "<|START_OF_TURN_TOKEN|>",
        "<|start_of_role|>",
        "<|start|>",
    ]
    .into_iter()
    .filter(|m| template.contains(m))
    .collect();
    seen.dedup();
    let reason = if seen.is_empty() {
        "the chat template has none of the structural markers of a built-in family".to_string()
    } else {
        format!(
            "the chat template's markers ({}) do not match a built-in family's layout",
            seen.join(", ")
        )
    };
    Err(Unknown {
        reasons: vec![reason],
    })
}

fn jinja_variant(family: Family, t: &str, evidence: &mut Vec<String>) -> Variant {
    let thinking = t.contains("<think>");
    let tools = match family {
        Family::ChatMl => t.contains("<tool_call>"),
        Family::Mistral => t.contains("[TOOL_CALLS]"),
        Family::Llama3 => t.contains("ipython"),
        _ => false,
    };
    let wanted = match (thinking, tools) {
        (true, true) => Variant::ThinkingTools,
        (true, false) => Variant::Thinking,
        (false, true) => Variant::Tools,
        (false, false) => Variant::Base,
    };
    if thinking {
        evidence.push("chat template has <think> blocks".into());
    }
    if tools {
        evidence.push("chat template renders tool calls".into());
    }
    let offered = family.variants();
    if offered.contains(&wanted) {
        return wanted;
    }
    // Keep what the family offers.
    let fallback = [Variant::Tools, Variant::Thinking]
        .into_iter()
        .find(|v| {
            offered.contains(v)
                && (*v == Variant::Tools && tools || *v == Variant::Thinking && thinking)
        })
        .unwrap_or(Variant::Base);
    evidence.push(format!(
        "the {} family has no {} variant; using {}{}",
        family.name(),
        &wanted.suffix()[1..],
        family.name(),
        fallback.suffix()
    ));
    fallback
}

/// Token markers for vocab-based detection: (family, tokens that must all be single tokens).
const VOCAB_RULES: &[(Family, &[&str])] = &[
    (Family::ChatMl, &["<|im_start|>", "<|im_end|>"]),
    (
        Family::Llama3,
        &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    ),
    (Family::Gemma, &["<start_of_turn>", "<end_of_turn>"]),
    (Family::Phi3, &["<|user|>", "<|assistant|>", "<|end|>"]),
    (Family::Mistral, &["[INST]", "[/INST]"]),
];

/// Detects the family from the vocabulary's special tokens (for models without a chat template).
/// A vocabulary with no chat markers at all is a base model: `completion`.
pub fn detect_vocab(v: &Vocab) -> Result<Detection, Unknown> {
    let special = v.special_tokens();
    let has = |t: &str| special.contains(&t);
    for (family, markers) in VOCAB_RULES {
        if markers.iter().all(|m| has(m)) {
            let mut evidence: Vec<String> = markers
                .iter()
                .map(|m| {
                    format!(
                        "vocabulary has the special token {m} (id {})",
                        v.token_id(m).unwrap_or(0)
                    )
                })
                .collect();
            evidence.insert(0, "no chat template in the model".into());
            let thinking = *family == Family::ChatMl && has("<think>") && has("</think>");
            let tools = *family == Family::ChatMl && has("<tool_call>") && has("</tool_call>");
            let variant = match (thinking, tools) {
                (true, true) => Variant::ThinkingTools,
                (true, false) => Variant::Thinking,
                (false, true) => Variant::Tools,
                (false, false) => Variant::Base,
            };
            if thinking {
                evidence.push("vocabulary has <think> and </think> tokens".into());
            }
            if tools {
                evidence.push("vocabulary has <tool_call> and </tool_call> tokens".into());
            }
            return Ok(Detection {
                family: *family,
                variant,
                evidence,
            });
        }
    }
    let partial: Vec<&str> = VOCAB_RULES
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .filter(|m| has(m))
        .collect();
    if !partial.is_empty() {
        return Err(Unknown {
            reasons: vec![format!(
                "no chat template, and the vocabulary has only some chat markers ({})",
                partial.join(", ")
            )],
        });
    }
    let chatty: Vec<&str> = special
        .iter()
        .copied()
        .filter(|t| {
            let l = t.to_lowercase();
            [
                "turn",
                "user",
                "assistant",
                "system",
                "chatbot",
                "role",
                "header",
                "inst]",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .take(5)
        .collect();
    if !chatty.is_empty() {
        return Err(Unknown {
            reasons: vec![format!(
                "no chat template, and the vocabulary's chat-like special tokens ({}) match no built-in family",
                chatty.join(", ")
            )],
        });
    }
    if v.tokens.is_empty() {
        return Err(Unknown {
            reasons: vec!["no chat template and no vocabulary".into()],
        });
    }
    let shown: Vec<&str> = special.iter().take(5).copied().collect();
    Ok(Detection {
        family: Family::Completion,
        variant: Variant::Base,
        evidence: vec![
            "no chat template in the model".into(),
            format!(
                "no chat markers among the {} special tokens ({}{}): a base model, so raw completion",
                special.len(),
                shown.join(", "),
                if special.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            ),
        ],
    })
}

/// Detects from a vocabulary: its chat template when present, else its special tokens.
pub fn detect(v: &Vocab) -> Result<Detection, Unknown> {
    match &v.chat_template {
        Some(t) => detect_jinja(t),
        None => detect_vocab(v),
    }
}

/// Detects from a path: a `.jinja` file, a `.gguf`, or an HF folder.
pub fn detect_path(path: &Path) -> Result<Result<Detection, Unknown>> {
    if path.is_dir() {
        return Ok(detect(&Vocab::from_hf_dir(path)?));
    }
    let is_gguf = crate::fsutil::input::open(path)
        .and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|_| &magic == b"GGUF")
        })
        .unwrap_or(false);
    if is_gguf {
        return Ok(detect(&Vocab::open_gguf(path)?));
    }
    let text = crate::fsutil::input::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(detect_jinja(&text))
}
