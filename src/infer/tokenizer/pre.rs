//! Pre-tokenizers: the regex passes llama.cpp applies for each `tokenizer.ggml.pre` value
//! (`llm_tokenizer_bpe` in llama.cpp's `src/llama-vocab.cpp`), with the same flags.

/// GPT-2's split.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3's split with the case-insensitive contractions spelled out.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen3.5's: marks join letters.
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// GPT-4o's, in llama.cpp's spelling: "upper" is any letter but a-z, "lower" any but A-Z.
const GPT4O: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one `tokenizer.ggml.pre` value tokenizes.
#[derive(Debug, Clone, PartialEq)]
pub struct PreTokenizer {
    /// Regexes applied in turn, each splitting the pieces of the previous one.
    pub regexes: Vec<&'static str>,
    /// A whole pre-token found in the vocabulary is taken as is, before merges.
    pub ignore_merges: bool,
    /// Default for `add_bos_token` when the key is absent.
    pub add_bos: bool,
}

/// The pre-tokenizer llama.cpp uses for `name`, or `None` if tinylm does not implement it.
pub fn lookup(name: &str) -> Option<PreTokenizer> {
    let p = |regexes: Vec<&'static str>| PreTokenizer {
        regexes,
        ignore_merges: false,
        add_bos: false,
    };
    Some(match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreTokenizer {
            regexes: vec![LLAMA3],
            ignore_merges: true,
            add_bos: true,
        },
        "dbrx" | "smaug-bpe" => p(vec![LLAMA3]),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "exaone4" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => p(vec![GPT2]),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" => p(vec![QWEN2]),
        "qwen35" => p(vec![QWEN35]),
        "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => p(vec![GPT4O]),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => p(vec![r"\p{N}", GPT2]),
        "falcon" => p(vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"]),
        "deepseek-coder" => p(vec![
            r"[\r\n]",
            r"\s?\p{L}+",
            r"\s?\p{P}+",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}",
        ]),
        "default" => p(vec![
            r"[\p{P}\$\+<=>\^~\|]+",
            GPT2,
            r"\p{N}+",
            r"[0-9][0-9][0-9]",
        ]),
        _ => return None,
    })
}

/// Every name [`lookup`] knows, for error messages and tests.
pub const NAMES: &[&str] = &[
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "jina-v1-en",
    "jina-v2-code",
    "roberta-bpe",
    "exaone4",
    "mpt",
    "olmo",
    "jais",
    "trillion",
    "granite-docling",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "megrez",
    "stablelm2",
    "hunyuan",
    "solar-open",
    "grok-2",
    "qwen35",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "minimax-m2",
    "starcoder",
    "refact",
    "command-r",
    "smollm",
    "codeshell",
    "exaone",
    "minerva-7b",
    "mellum2",
    "falcon",
    "deepseek-coder",
    "default",
];

/// Splits `text` like llama.cpp's `unicode_regex_split`: each regex cuts every current piece
/// into its matches and the text between them (both kept, in order).
pub fn split<'t>(text: &'t str, regexes: &[fancy_regex::Regex]) -> Vec<&'t str> {
    let mut pieces: Vec<&str> = vec![text];
    for re in regexes {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            let mut last = 0;
            let mut pos = 0;
            while pos <= piece.len() {
                let m = match re.find_from_pos(piece, pos) {
                    Ok(Some(m)) => m,
                    // Backtrack limit: keep the rest as one piece rather than fail.
                    _ => break,
                };
                if m.end() == m.start() {
                    // Empty match: step one character forward.
                    pos = m.end() + piece[m.end()..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                if m.start() > last {
                    next.push(&piece[last..m.start()]);
                }
                next.push(m.as_str());
                last = m.end();
                pos = m.end();
            }
            if last < piece.len() {
                next.push(&piece[last..]);
            }
        }
        pieces = next;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_and_compiles() {
        for n in NAMES {
            let p = lookup(n).unwrap_or_else(|| panic!("{n}"));
            for r in p.regexes {
                fancy_regex::Regex::new(r).unwrap_or_else(|e| panic!("{n}: {e}"));
            }
        }
        assert!(lookup("no-such-pre").is_none());
    }

    #[test]
    fn passes_keep_the_text_between_matches() {
        let res: Vec<fancy_regex::Regex> = lookup("smollm")
            .unwrap()
            .regexes
            .iter()
            .map(|r| fancy_regex::Regex::new(r).unwrap())
            .collect();
        assert_eq!(
            split("ab 123  x", &res),
            vec!["ab", " ", "1", "2", "3", " ", " x"]
        );
    }
}
