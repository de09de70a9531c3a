//! Built-in chat template families as Ollama Go templates, with their stop strings.
//!
//! Chat families use Ollama's Messages mode: `.System` (every system message, joined) is
//! printed where the family puts the system prompt, and the loop over `.Messages` handles the
//! other roles, so the system text is never printed twice (`docs/ollama.md`). A final
//! assistant message is left open (prefill); otherwise the template ends with the assistant
//! header so the model continues from there. `completion` is the legacy-mode `{{ .Prompt }}`.

use super::params::ParamValue;

/// A template variant a family may offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Plain chat.
    Base,
    /// Reasoning in `<think>`…`</think>` (Ollama `.Think` / `.Thinking`).
    Thinking,
    /// Function calling (`.Tools` / `.ToolCalls`).
    Tools,
    /// Both.
    ThinkingTools,
}

impl Variant {
    /// Name suffix: "", "-thinking", "-tools", "-thinking-tools".
    pub fn suffix(self) -> &'static str {
        match self {
            Variant::Base => "",
            Variant::Thinking => "-thinking",
            Variant::Tools => "-tools",
            Variant::ThinkingTools => "-thinking-tools",
        }
    }
}

/// A chat format family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Raw text: `{{ .Prompt }}`, no chat markers (base models such as GPT-2).
    Completion,
    /// `<|im_start|>role\n…<|im_end|>` (Qwen, Hermes, SmolLM, many fine-tunes).
    ChatMl,
    /// `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>` (Llama 3.x).
    Llama3,
    /// `[INST] <<SYS>>…<</SYS>> … [/INST]` (Llama 2 chat).
    Llama2,
    /// `[INST] … [/INST]` without `<<SYS>>` (Mistral instruct).
    Mistral,
    /// `<start_of_turn>user\n…<end_of_turn>` (Gemma 1/2/3).
    Gemma,
    /// `<|user|>\n…<|end|>` (Phi-3 / Phi-3.5).
    Phi3,
    /// `<|user|>\n…</s>` (Zephyr).
    Zephyr,
}

/// Every family, in display order.
pub const FAMILIES: [Family; 8] = [
    Family::Completion,
    Family::ChatMl,
    Family::Llama3,
    Family::Llama2,
    Family::Mistral,
    Family::Gemma,
    Family::Phi3,
    Family::Zephyr,
];

impl Family {
    /// The family's name as used in `tinylm.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Family::Completion => "completion",
            Family::ChatMl => "chatml",
            Family::Llama3 => "llama3",
            Family::Llama2 => "llama2",
            Family::Mistral => "mistral",
            Family::Gemma => "gemma",
            Family::Phi3 => "phi3",
            Family::Zephyr => "zephyr",
        }
    }

    /// One line describing the format.
    pub fn description(self) -> &'static str {
        match self {
            Family::Completion => "raw text, no chat markers (base models)",
            Family::ChatMl => "<|im_start|>role … <|im_end|> (Qwen, Hermes, SmolLM)",
            Family::Llama3 => "<|start_header_id|>role<|end_header_id|> … <|eot_id|> (Llama 3)",
            Family::Llama2 => "[INST] <<SYS>> … <</SYS>> … [/INST] (Llama 2 chat)",
            Family::Mistral => "[INST] … [/INST] (Mistral instruct)",
            Family::Gemma => "<start_of_turn>user … <end_of_turn> (Gemma)",
            Family::Phi3 => "<|user|> … <|end|> (Phi-3)",
            Family::Zephyr => "<|user|> … </s> (Zephyr)",
        }
    }

    /// Looks a family up by name (case-insensitive; `llama-3`, `phi-3`, `gemma-instruct`… too).
    pub fn from_name(name: &str) -> Option<Family> {
        let n = name.to_ascii_lowercase().replace(['-', '_', '.'], "");
        let f = match n.as_str() {
            "completion" | "raw" | "none" => Family::Completion,
            "chatml" | "qwen" | "hermes" => Family::ChatMl,
            "llama3" | "llama3instruct" => Family::Llama3,
            "llama2" | "llama2chat" => Family::Llama2,
            "mistral" | "mistralinstruct" => Family::Mistral,
            "gemma" | "gemmainstruct" | "gemma2" | "gemma3" => Family::Gemma,
            "phi3" | "phi35" => Family::Phi3,
            "zephyr" => Family::Zephyr,
            _ => return None,
        };
        Some(f)
    }

    /// The variants this family offers (always including `Base`).
    pub fn variants(self) -> &'static [Variant] {
        match self {
            Family::ChatMl => &[
                Variant::Base,
                Variant::Thinking,
                Variant::Tools,
                Variant::ThinkingTools,
            ],
            Family::Llama3 | Family::Mistral => &[Variant::Base, Variant::Tools],
            _ => &[Variant::Base],
        }
    }

    /// Stop strings: every turn marker the model could run on into.
    pub fn stops(self) -> &'static [&'static str] {
        match self {
            Family::Completion => &[],
            Family::ChatMl => &["<|im_start|>", "<|im_end|>"],
            Family::Llama3 => &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            Family::Llama2 => &["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"],
            Family::Mistral => &["[INST]", "[/INST]"],
            Family::Gemma => &["<start_of_turn>", "<end_of_turn>"],
            Family::Phi3 => &["<|end|>", "<|system|>", "<|user|>", "<|assistant|>"],
            Family::Zephyr => &["<|system|>", "<|user|>", "<|assistant|>", "</s>"],
        }
    }

    /// Special markers the template itself emits (each must be one token of the vocabulary).
    pub fn markers(self, variant: Variant) -> Vec<&'static str> {
        let mut m: Vec<&'static str> = match self {
            Family::Completion => vec![],
            Family::ChatMl => vec!["<|im_start|>", "<|im_end|>"],
            Family::Llama3 => vec!["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
            Family::Llama2 | Family::Mistral => vec!["[INST]", "[/INST]"],
            Family::Gemma => vec!["<start_of_turn>", "<end_of_turn>"],
            Family::Phi3 => vec!["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
            Family::Zephyr => vec!["<|system|>", "<|user|>", "<|assistant|>", "</s>"],
        };
        if matches!(variant, Variant::Thinking | Variant::ThinkingTools) {
            m.extend(["<think>", "</think>"]);
        }
        if matches!(variant, Variant::Tools | Variant::ThinkingTools) && self == Family::ChatMl {
            m.extend(["<tool_call>", "</tool_call>"]);
        }
        m
    }

    /// The Go template for a variant, or `None` if the family has no such variant.
    pub fn template(self, variant: Variant) -> Option<String> {
        if !self.variants().contains(&variant) {
            return None;
        }
        Some(match self {
            Family::Completion => "{{ .Prompt }}".to_string(),
            Family::ChatMl => chatml(variant),
            Family::Llama3 => llama3(variant),
            Family::Llama2 => LLAMA2.to_string(),
            Family::Mistral => mistral(variant),
            Family::Gemma => GEMMA.to_string(),
            Family::Phi3 => PHI3.to_string(),
            Family::Zephyr => ZEPHYR.to_string(),
        })
    }
}

/// A resolved built-in template: what a Modelfile needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinTemplate {
    /// Full name, e.g. `chatml-thinking`.
    pub name: String,
    /// The family.
    pub family: Family,
    /// The variant.
    pub variant: Variant,
    /// Go template text (Ollama TEMPLATE).
    pub template: String,
    /// Stop strings (Ollama `PARAMETER stop`).
    pub stops: Vec<String>,
}

impl BuiltinTemplate {
    /// The default PARAMETERs for this template: its stop list.
    pub fn parameters(&self) -> Vec<(String, ParamValue)> {
        if self.stops.is_empty() {
            Vec::new()
        } else {
            vec![("stop".to_string(), ParamValue::List(self.stops.clone()))]
        }
    }
}

/// Looks up a built-in template by name: a family name optionally followed by `-thinking`,
/// `-tools` or `-thinking-tools` (e.g. `chatml`, `llama3-tools`, `chatml-thinking-tools`).
pub fn builtin(name: &str) -> Option<BuiltinTemplate> {
    let lower = name.to_ascii_lowercase();
    let (base, variant) = [
        ("-thinking-tools", Variant::ThinkingTools),
        ("-tools-thinking", Variant::ThinkingTools),
        ("-thinking", Variant::Thinking),
        ("-think", Variant::Thinking),
        ("-tools", Variant::Tools),
    ]
    .iter()
    .find_map(|(suffix, v)| lower.strip_suffix(suffix).map(|b| (b.to_string(), *v)))
    .unwrap_or((lower, Variant::Base));
    let family = Family::from_name(&base)?;
    let template = family.template(variant)?;
    Some(BuiltinTemplate {
        name: format!("{}{}", family.name(), variant.suffix()),
        family,
        variant,
        template,
        stops: family.stops().iter().map(|s| s.to_string()).collect(),
    })
}

/// Every built-in template name (`chatml`, `chatml-thinking`, …).
pub fn builtin_names() -> Vec<String> {
    FAMILIES
        .iter()
        .flat_map(|f| {
            f.variants()
                .iter()
                .map(move |v| format!("{}{}", f.name(), v.suffix()))
        })
        .collect()
}

/// The Hermes/Qwen tool preamble, inside the system turn.
const CHATML_TOOLS_PREAMBLE: &str = r#"

# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{{- range .Tools }}
{{ . }}
{{- end }}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>"#;

fn chatml(variant: Variant) -> String {
    let tools = matches!(variant, Variant::Tools | Variant::ThinkingTools);
    let think = matches!(variant, Variant::Thinking | Variant::ThinkingTools);
    let mut t = String::new();
    if tools {
        t.push_str("{{- if or .System .Tools }}<|im_start|>system\n");
        t.push_str("{{- if .System }}\n{{ .System }}\n{{- end }}");
        t.push_str("{{- if .Tools }}");
        t.push_str(CHATML_TOOLS_PREAMBLE);
        t.push_str("\n{{- end }}<|im_end|>\n{{ end }}");
    } else {
        t.push_str("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}");
    }
    t.push_str("{{- range $i, $_ := .Messages }}\n");
    t.push_str("{{- $last := eq (len (slice $.Messages $i)) 1 }}\n");
    t.push_str("{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n");
    t.push_str("{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n");
    if think {
        t.push_str("{{ if .Thinking }}<think>\n{{ .Thinking }}\n</think>\n\n{{ end }}");
    }
    t.push_str("{{ .Content }}");
    if tools {
        t.push_str("{{- if .ToolCalls }}\n{{- range .ToolCalls }}\n<tool_call>\n");
        t.push_str(
            "{\"name\": \"{{ .Function.Name }}\", \"arguments\": {{ .Function.Arguments }}}\n",
        );
        t.push_str("</tool_call>\n{{- end }}\n{{- end }}");
    }
    t.push_str("{{ if not $last }}<|im_end|>\n{{ end }}");
    if tools {
        t.push_str("{{- else if eq .Role \"tool\" }}<|im_start|>user\n<tool_response>\n");
        t.push_str("{{ .Content }}\n</tool_response><|im_end|>\n");
    }
    t.push_str("{{ end }}\n");
    t.push_str("{{- if and (ne .Role \"assistant\") $last }}<|im_start|>assistant\n");
    if think {
        // Qwen3 convention: an empty think block switches reasoning off.
        t.push_str("{{ if and $.IsThinkSet (not $.Think) }}<think>\n\n</think>\n\n{{ end }}");
    }
    t.push_str("{{ end }}\n{{- end }}");
    t
}

fn llama3(variant: Variant) -> String {
    let tools = variant == Variant::Tools;
    let mut t = String::new();
    if tools {
        t.push_str("{{- if or .System .Tools }}<|start_header_id|>system<|end_header_id|>\n\n");
        t.push_str("{{- if .System }}{{ .System }}{{- end }}");
        t.push_str("{{- if .Tools }}\n\nYou have access to the following functions. To call a function, respond with JSON for a function call in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}. Do not use variables.\n");
        t.push_str("{{- range .Tools }}\n{{ . }}\n{{- end }}\n{{- end }}<|eot_id|>\n{{- end }}");
    } else {
        t.push_str("{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>\n{{- end }}");
    }
    t.push_str("{{- range $i, $_ := .Messages }}\n");
    t.push_str("{{- $last := eq (len (slice $.Messages $i)) 1 }}\n");
    t.push_str("{{- if eq .Role \"user\" }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n");
    t.push_str(
        "{{- else if eq .Role \"assistant\" }}<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    if tools {
        t.push_str("{{- if .ToolCalls }}{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", \"parameters\": {{ .Function.Arguments }}}{{ end }}");
        t.push_str("{{- else }}{{ .Content }}{{ end }}");
    } else {
        t.push_str("{{ .Content }}");
    }
    t.push_str("{{ if not $last }}<|eot_id|>{{ end }}\n");
    if tools {
        t.push_str("{{- else if eq .Role \"tool\" }}<|start_header_id|>ipython<|end_header_id|>\n\n{{ .Content }}<|eot_id|>\n");
    }
    t.push_str("{{- end }}\n");
    t.push_str("{{- if and (ne .Role \"assistant\") $last }}<|start_header_id|>assistant<|end_header_id|>\n\n{{ end }}\n");
    t.push_str("{{- end }}");
    t
}

fn mistral(variant: Variant) -> String {
    let tools = variant == Variant::Tools;
    let mut t = String::new();
    t.push_str("{{- range $i, $_ := .Messages }}\n");
    t.push_str("{{- $last := eq (len (slice $.Messages $i)) 1 }}\n");
    t.push_str("{{- if eq .Role \"user\" }}");
    if tools {
        t.push_str("{{- if and $.Tools $last }}[AVAILABLE_TOOLS] [{{ range $j, $t := $.Tools }}{{ if $j }}, {{ end }}{{ $t }}{{ end }}][/AVAILABLE_TOOLS]{{ end }}");
    }
    t.push_str(
        "[INST] {{ if and $.System $last }}{{ $.System }}\n\n{{ end }}{{ .Content }}[/INST]",
    );
    t.push_str("{{- else if eq .Role \"assistant\" }}");
    if tools {
        t.push_str("{{- if .ToolCalls }}[TOOL_CALLS] [{{ range $j, $c := .ToolCalls }}{{ if $j }}, {{ end }}{\"name\": \"{{ $c.Function.Name }}\", \"arguments\": {{ $c.Function.Arguments }}}{{ end }}]");
        t.push_str("{{- else }} {{ .Content }}{{ end }}");
    } else {
        t.push_str(" {{ .Content }}");
    }
    t.push_str("{{ if not $last }}</s>{{ end }}");
    if tools {
        t.push_str("{{- else if eq .Role \"tool\" }}[TOOL_RESULTS] {\"content\": {{ json .Content }}}[/TOOL_RESULTS]");
    }
    t.push_str("\n{{- end }}\n{{- end }}");
    t
}

const LLAMA2: &str = "{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role \"user\" }}[INST] {{ if and $first $.System }}<<SYS>>
{{ $.System }}
<</SYS>>

{{ end }}{{ $first = false }}{{ .Content }} [/INST]
{{- else if eq .Role \"assistant\" }} {{ .Content }}{{ if not $last }} </s><s>{{ end }}
{{- end }}
{{- end }}";

const GEMMA: &str = "{{- $first := true }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role \"user\" }}<start_of_turn>user
{{ if and $first $.System }}{{ $.System }}

{{ end }}{{ $first = false }}{{ .Content }}<end_of_turn>
{{ else if eq .Role \"assistant\" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- if and (ne .Role \"assistant\") $last }}<start_of_turn>model
{{ end }}
{{- end }}";

const PHI3: &str = "{{- if .System }}<|system|>
{{ .System }}<|end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role \"user\" }}<|user|>
{{ .Content }}<|end|>
{{ else if eq .Role \"assistant\" }}<|assistant|>
{{ .Content }}{{ if not $last }}<|end|>
{{ end }}
{{- end }}
{{- if and (ne .Role \"assistant\") $last }}<|assistant|>
{{ end }}
{{- end }}";

const ZEPHYR: &str = "{{- if .System }}<|system|>
{{ .System }}</s>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role \"user\" }}<|user|>
{{ .Content }}</s>
{{ else if eq .Role \"assistant\" }}<|assistant|>
{{ .Content }}{{ if not $last }}</s>
{{ end }}
{{- end }}
{{- if and (ne .Role \"assistant\") $last }}<|assistant|>
{{ end }}
{{- end }}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in builtin_names() {
            let t = builtin(&name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(t.name, name);
        }
        assert_eq!(builtin_names().len(), 8 + 3 + 1 + 1);
        assert_eq!(builtin("Llama-3").map(|t| t.family), Some(Family::Llama3));
        assert_eq!(
            builtin("chatml-think").map(|t| t.variant),
            Some(Variant::Thinking)
        );
        assert!(builtin("gemma-tools").is_none());
        assert!(builtin("vicuna").is_none());
    }

    #[test]
    fn markers_are_in_templates_and_stops_cover_turn_ends() {
        for name in builtin_names() {
            let t = builtin(&name).unwrap();
            for m in t.family.markers(t.variant) {
                assert!(t.template.contains(m), "{name}: {m}");
            }
        }
    }
}
