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

/// MiniCPM 5's (after a digit-triplet pass).
const MINICPM5: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Youtu's second pass.
const YOUTU: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tekken's (Mistral Nemo), in llama.cpp's lookahead spelling.
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Granite multilingual embedding (97M): GPT-4o's with marks joining letters.
const GRANITE_EMB_MULTI: &str = r"[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))*((?=[\p{L}\p{M}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}\p{M}])([^a-z]))+((?=[\p{L}\p{M}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tiny Aya's word split.
const TINY_AYA: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Bailing MoE's (possessive quantifiers made greedy, as llama.cpp does).
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
/// Seed-Coder's.
const SEED_CODER: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Ufakzeka's: Qwen2's without the contractions.
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// EXAONE MoE's: letters may be joined by single spaces.
const EXAONE_MOE: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+";
/// Deepseek-V3's, Hunyuan-dense's.
const DEEPSEEK3: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
/// Spark 2.5's.
const SPARK25: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##;
/// Han, Hiragana and Katakana runs.
const CJK: &str = r"[一-龥぀-ゟ゠-ヿ]+";
/// Youtu's first pass: Hangul, CJK punctuation, Bopomofo, CJK.
const YOUTU_CJK: &str = r"[가-힣ㄱ-ㆎ]+|[！…“”‘’—：；，、-〿︰-﹏]+|[ㄅ-ㄯ]+|[一-龥぀-ゟ゠-ヿ]+";
/// Jais 2's: Llama 3's with cascading whitespace runs.
const JAIS2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}";
/// Deepseek LLM's letters (an explicit list of cased-letter ranges).
const DEEPSEEK_LLM_LETTERS: &str = "\\s?[A-Za-z\u{b5}\u{c0}-\u{d6}\u{d8}-\u{f6}\u{f8}-\u{1ba}\u{1bc}-\u{1bf}\u{1c4}-\u{293}\u{295}-\u{2af}\u{370}-\u{373}\u{376}\u{377}\u{37b}-\u{37d}\u{37f}\u{386}\u{388}-\u{38a}\u{38c}\u{38e}-\u{3a1}\u{3a3}-\u{3f5}\u{3f7}-\u{481}\u{48a}-\u{52f}\u{531}-\u{556}\u{10a0}-\u{10c5}\u{13a0}-\u{13f5}\u{13f8}-\u{13fd}\u{1c90}-\u{1cba}\u{1cbd}-\u{1cbf}\u{1d00}-\u{1d2b}\u{1d6b}-\u{1d77}\u{1d79}-\u{1d9a}\u{1e00}-\u{1f15}\u{1f18}-\u{1f1d}\u{1f20}-\u{1f45}\u{1f48}-\u{1f4d}\u{1f50}-\u{1f57}\u{1f59}\u{1f5b}\u{1f5d}\u{1f5f}-\u{1f7d}\u{1f80}-\u{1fb4}\u{1fb6}-\u{1fbc}\u{1fbe}\u{1fc2}-\u{1fc4}\u{1fc6}-\u{1fcc}\u{1fd0}-\u{1fd3}\u{1fd6}-\u{1fdb}\u{1fe0}-\u{1fec}\u{1ff2}-\u{1ff4}\u{1ff6}-\u{1ffc}\u{2102}\u{2107}\u{210a}-\u{2113}\u{2115}\u{2119}-\u{211d}\u{2124}\u{2126}\u{2128}\u{212a}-\u{212d}\u{212f}-\u{2134}\u{2139}\u{213c}-\u{213f}\u{2145}-\u{2149}\u{214e}\u{2183}\u{2184}\u{2c00}-\u{2c7b}\u{2c7e}-\u{2ce4}\u{2ceb}-\u{2cee}\u{2cf2}\u{2cf3}\u{a640}-\u{a66d}\u{a680}-\u{a69b}\u{a722}-\u{a76f}\u{a771}-\u{a787}\u{a78b}-\u{a78e}\u{ab70}-\u{abbf}\u{fb00}-\u{fb06}\u{fb13}-\u{fb17}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}\u{10400}-\u{1044f}\u{104b0}-\u{104d3}\u{104d8}-\u{104fb}\u{10c80}-\u{10cb2}\u{10cc0}-\u{10cf2}\u{118a0}-\u{118df}\u{1e900}-\u{1e943}]+";
/// Bloom/Poro/GPT-3-Finnish: anything up to whitespace or sentence punctuation (the
/// parentheses and `|` are literal members of the class).
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";
/// Marker for llama.cpp's hand-written Kimi-K2 splitter.
pub const KIMI_K2: &str = r"\p{Han}+";
/// Marker for llama.cpp's hand-written digit grouping (AFMoE, Tiny Aya).
pub const AFMOE_DIGITS: &str = r"\p{AFMoE_digits}";
/// Tiny Aya's digit regex, which llama.cpp runs as [`AFMOE_DIGITS`].
const TINY_AYA_DIGITS: &str = r"\d{1,3}(?=(?:\d{3})*\b)";

/// How one `tokenizer.ggml.pre` value tokenizes.
#[derive(Debug, Clone, PartialEq)]
pub struct PreTokenizer {
    /// Regexes applied in turn, each splitting the pieces of the previous one.
    pub regexes: Vec<&'static str>,
    /// A whole pre-token found in the vocabulary is taken as is, before merges.
    pub ignore_merges: bool,
    /// Default for `add_bos_token` when the key is absent.
    pub add_bos: bool,
    /// Words are mapped to the GPT-2 byte alphabet before merging (false: raw UTF-8 with
    /// `<0xXX>` byte fallback, SentencePiece-style BPE).
    pub byte_encode: bool,
    /// Spaces become U+2581 before splitting.
    pub escape_whitespaces: bool,
    /// BOS is added whatever `add_bos_token` says (llama.cpp's Gemma 4 workaround).
    pub force_bos: bool,
    /// A word made only of newlines is one token when the vocabulary has it (Gemma 4).
    pub newline_runs: bool,
}

impl Default for PreTokenizer {
    fn default() -> Self {
        PreTokenizer {
            regexes: Vec::new(),
            ignore_merges: false,
            add_bos: false,
            byte_encode: true,
            escape_whitespaces: false,
            force_bos: false,
            newline_runs: false,
        }
    }
}

/// The pre-tokenizer llama.cpp uses for `name`, or `None` if tinylm does not implement it.
pub fn lookup(name: &str) -> Option<PreTokenizer> {
    let p = |regexes: Vec<&'static str>| PreTokenizer {
        regexes,
        ..PreTokenizer::default()
    };
    Some(match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreTokenizer {
            regexes: vec![LLAMA3],
            ignore_merges: true,
            add_bos: true,
            ..PreTokenizer::default()
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
        "minicpm5" => PreTokenizer {
            ignore_merges: true,
            ..p(vec![r"\p{N}{1,3}", MINICPM5])
        },
        "deepseek-llm" => p(vec![
            r"[\r\n]",
            DEEPSEEK_LLM_LETTERS,
            r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
            r"\s+$",
            r"[一-龥ࠀ-一가-퟿]+",
            r"\p{N}+",
        ]),
        "deepseek-v3" | "hunyuan-dense" | "hy_v4" | "joyai-llm" => {
            p(vec![r"\p{N}{1,3}", CJK, DEEPSEEK3])
        }
        "spark2_5" => p(vec![r"\p{N}{1,3}", CJK, SPARK25, r"\p{N}"]),
        "youtu" => PreTokenizer {
            ignore_merges: true,
            ..p(vec![YOUTU_CJK, YOUTU])
        },
        "jais-2" => p(vec![JAIS2]),
        "gemma4" | "granite-embed-multi-311m" => PreTokenizer {
            byte_encode: false,
            escape_whitespaces: true,
            newline_runs: true,
            force_bos: true,
            ..p(vec![r"[^\n]+|[\n]+"])
        },
        "sarvam-moe" => PreTokenizer {
            byte_encode: false,
            escape_whitespaces: true,
            ..p(vec![r"[^\n]+|[\n]+"])
        },
        "whitespace" => PreTokenizer {
            byte_encode: false,
            ..p(vec![r"\S+"])
        },
        "poro-chat" | "bloom" | "gpt3-finnish" => p(vec![BLOOM]),
        "viking" => p(vec![BLOOM, r"\p{N}"]),
        "chatglm-bpe" => p(vec![LLAMA3]),
        "glm4" | "glm5" => PreTokenizer {
            ignore_merges: true,
            ..p(vec![LLAMA3])
        },
        "tekken" => PreTokenizer {
            ignore_merges: true,
            add_bos: true,
            ..p(vec![TEKKEN])
        },
        "chameleon" => PreTokenizer {
            add_bos: true,
            ..p(vec![
                r"<sentinel:[0-9]+>",
                r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                r"([\t\n]|    |  )",
                r"\p{N}",
                r"[\p{P}!-/:-@\[-`{-~]",
                GPT2,
            ])
        },
        "granite-embed-multi-97m" => PreTokenizer {
            ignore_merges: true,
            ..p(vec![GRANITE_EMB_MULTI])
        },
        "tiny_aya" | "cohere2moe" => p(vec![TINY_AYA_DIGITS, TINY_AYA]),
        "superbpe" => p(vec![r"\p{N}+", r"(?=(\d{3})+(?!\d))"]),
        "bailingmoe" | "bailingmoe2" | "llada-moe" => p(vec![BAILINGMOE]),
        "seed-coder" => p(vec![SEED_CODER]),
        "kimi-k2" => p(vec![KIMI_K2]),
        "ufakzeka" => p(vec![UFAKZEKA]),
        "afmoe" => p(vec![
            AFMOE_DIGITS,
            r"[一-鿿㐀-䶿豈-﫿぀-ゟ゠-ヿ･-ﾟ⼀-⿟เ-๿຀-໿ក-៿က-႟ꩠ-ꩿꧠ-꧿가-힯ᄀ-ᇿ]+",
            DEEPSEEK3,
        ]),
        "laguna" => p(vec![r"[^\n]+|[\n]+", QWEN2]),
        "exaone-moe" => p(vec![EXAONE_MOE]),
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
    "minicpm5",
    "deepseek-llm",
    "deepseek-v3",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "spark2_5",
    "youtu",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "whitespace",
    "poro-chat",
    "bloom",
    "gpt3-finnish",
    "viking",
    "chatglm-bpe",
    "glm4",
    "glm5",
    "tekken",
    "chameleon",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "kimi-k2",
    "ufakzeka",
    "afmoe",
    "laguna",
    "exaone-moe",
    "default",
];

/// One compiled pass of a pre-tokenizer.
pub enum Pass {
    /// A regex: matches and the text between them become pieces.
    Regex(fancy_regex::Regex),
    /// llama.cpp's hand-written Kimi-K2 splitter (`unicode_regex_split_custom_kimi_k2`).
    KimiK2,
    /// llama.cpp's digit grouping for AFMoE and Tiny Aya (`unicode_regex_split_custom_afmoe`).
    AfmoeDigits,
}

/// Compiles `regexes` with llama.cpp's semantics: it runs a regex that names a Unicode
/// category on a "collapsed" text where `\p{Lu}`, `\p{Ll}`, … all mean any letter; one that
/// names none runs on code points with ASCII-only `\d`.
pub fn compile(regexes: &[&str]) -> Result<Vec<Pass>, Box<fancy_regex::Error>> {
    regexes
        .iter()
        .map(|&r| {
            Ok(match r {
                KIMI_K2 => Pass::KimiK2,
                AFMOE_DIGITS | TINY_AYA_DIGITS => Pass::AfmoeDigits,
                _ => {
                    let r = if r.contains(r"\p{") {
                        ["Lu", "Ll", "Lt", "Lm", "Lo"]
                            .iter()
                            .fold(r.to_string(), |r, c| {
                                r.replace(&format!(r"\p{{{c}}}"), r"\p{L}")
                            })
                    } else {
                        r.replace(r"\d", "[0-9]")
                    };
                    Pass::Regex(fancy_regex::Regex::new(&r).map_err(Box::new)?)
                }
            })
        })
        .collect()
}

/// Splits `text` like llama.cpp's `unicode_regex_split`: each pass cuts every current piece
/// into its matches and the text between them (both kept, in order).
pub fn split<'t>(text: &'t str, passes: &[Pass]) -> Vec<&'t str> {
    let mut pieces: Vec<&str> = vec![text];
    for pass in passes {
        let mut next = Vec::with_capacity(pieces.len() * 2);
        for piece in pieces {
            match pass {
                Pass::Regex(re) => split_regex(piece, re, &mut next),
                Pass::KimiK2 => cut(piece, &kimi_k2(piece), &mut next),
                Pass::AfmoeDigits => cut(piece, &afmoe_digits(piece), &mut next),
            }
        }
        pieces = next;
    }
    pieces
}

fn split_regex<'t>(piece: &'t str, re: &fancy_regex::Regex, next: &mut Vec<&'t str>) {
    let mut last = 0;
    let mut pos = 0;
    while pos <= piece.len() {
        let m = match re.find_from_pos(piece, pos) {
            Ok(Some(m)) => m,
            // Backtrack limit: keep the rest as one piece rather than fail.
            _ => break,
        };
        if m.end() == m.start() {
            // An empty match still cuts (std::regex_iterator reports it); step one character.
            if m.start() > last {
                next.push(&piece[last..m.start()]);
                last = m.start();
            }
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

/// Pushes `piece` cut at the byte offsets `ends` (increasing, the last one `piece.len()`).
fn cut<'t>(piece: &'t str, ends: &[usize], next: &mut Vec<&'t str>) {
    let mut last = 0;
    for &e in ends {
        if e > last {
            next.push(&piece[last..e]);
            last = e;
        }
    }
    if last < piece.len() {
        next.push(&piece[last..]);
    }
}

fn is_letter(c: char) -> bool {
    use unicode_general_category::GeneralCategory as G;
    matches!(
        unicode_general_category::get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

fn is_number(c: char) -> bool {
    use unicode_general_category::GeneralCategory as G;
    matches!(
        unicode_general_category::get_general_category(c),
        G::DecimalNumber | G::LetterNumber | G::OtherNumber
    )
}

fn is_assigned(c: char) -> bool {
    unicode_general_category::get_general_category(c)
        != unicode_general_category::GeneralCategory::Unassigned
}

fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0x2CEB0..=0x2EBEF | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

/// Piece ends (byte offsets) of llama.cpp's AFMoE digit grouping: a digit run is cut into a
/// leading group of `len % 3` and then triplets; the text before a run stays glued to the run's
/// first group, as in llama.cpp.
fn afmoe_digits(piece: &str) -> Vec<usize> {
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let at = |i: usize| chars.get(i).map_or(piece.len(), |c| c.0);
    let mut ends = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !is_number(chars[i].1) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_number(chars[i].1) {
            i += 1;
        }
        let mut cur = start;
        let rem = (i - start) % 3;
        if rem > 0 {
            cur += rem;
            ends.push(at(cur));
        }
        while cur < i {
            cur += 3;
            ends.push(at(cur));
        }
    }
    ends.push(piece.len());
    ends
}

/// Piece ends (byte offsets) of llama.cpp's Kimi-K2 splitter: Han runs, then the GPT-4o-like
/// word/number/punctuation/whitespace rules with Han excluded from letters.
fn kimi_k2(piece: &str) -> Vec<usize> {
    let chars: Vec<(usize, char)> = piece.char_indices().collect();
    let n = chars.len();
    let at = |i: usize| chars.get(i).map_or(piece.len(), |c| c.0);
    let cpt = |i: usize| chars.get(i).map(|c| c.1);
    let letter = |i: usize| cpt(i).is_some_and(is_letter);
    let number = |i: usize| cpt(i).is_some_and(is_number);
    let space = |i: usize| cpt(i).is_some_and(is_whitespace);
    let han = |i: usize| cpt(i).is_some_and(is_han);
    let nl = |i: usize| matches!(cpt(i), Some('\r' | '\n'));
    let mut ends = Vec::new();
    let mut pos = 0;
    while pos < n {
        if han(pos) {
            while han(pos) {
                pos += 1;
            }
            ends.push(at(pos));
            continue;
        }
        let lead = !(nl(pos) || letter(pos) || number(pos));
        if (letter(pos) && !han(pos)) || (lead && letter(pos + 1) && !han(pos + 1)) {
            let save = pos;
            if lead {
                pos += 1;
            }
            let mut has_letters = false;
            while letter(pos) && !han(pos) {
                has_letters = true;
                pos += 1;
            }
            if has_letters {
                if cpt(pos) == Some('\'') && pos + 1 < n {
                    let c1 = cpt(pos + 1).map(lower);
                    if matches!(c1, Some('s' | 't' | 'm' | 'd')) {
                        pos += 2;
                    } else if pos + 2 < n {
                        let c2 = cpt(pos + 2).map(lower);
                        if matches!(
                            (c1, c2),
                            (Some('r'), Some('e'))
                                | (Some('v'), Some('e'))
                                | (Some('l'), Some('l'))
                        ) {
                            pos += 3;
                        }
                    }
                }
                ends.push(at(pos));
                continue;
            }
            pos = save;
        }
        if number(pos) {
            let mut ini = pos;
            while number(pos) {
                pos += 1;
                if pos - ini >= 3 {
                    ends.push(at(pos));
                    ini = pos;
                }
            }
            ends.push(at(pos));
            continue;
        }
        let other = |i: usize| {
            cpt(i).is_some_and(|c| {
                !(is_whitespace(c) || is_letter(c) || is_number(c)) && is_assigned(c)
            })
        };
        let p2 = if cpt(pos) == Some(' ') { pos + 1 } else { pos };
        if other(p2) {
            pos = p2;
            while other(pos) {
                pos += 1;
            }
            while nl(pos) {
                pos += 1;
            }
            ends.push(at(pos));
            continue;
        }
        let mut k = 0;
        let mut last_nl = None;
        while space(pos + k) {
            if nl(pos + k) {
                last_nl = Some(pos + k + 1);
            }
            k += 1;
        }
        if let Some(e) = last_nl {
            pos = e;
        } else if k > 1 && pos + k < n {
            pos += k - 1;
        } else if k > 0 {
            pos += k;
        } else {
            pos += 1;
        }
        ends.push(at(pos));
    }
    ends
}

fn lower(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// llama.cpp's whitespace: Unicode White_Space.
fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_and_compiles() {
        for n in NAMES {
            let p = lookup(n).unwrap_or_else(|| panic!("{n}"));
            compile(&p.regexes).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        assert!(lookup("no-such-pre").is_none());
        // Every name the converter may write (llama.cpp's list) tokenizes.
        for n in crate::convert::hf_to_gguf::LLAMA_CPP_PRE_NAMES {
            assert!(NAMES.contains(n), "{n} is not implemented");
        }
    }

    #[test]
    fn afmoe_digits_glue_the_text_before_a_run_to_its_first_group() {
        let p = compile(&[AFMOE_DIGITS]).unwrap();
        assert_eq!(split("ab1234 x", &p), vec!["ab1", "234", " x"]);
        assert_eq!(split("123456", &p), vec!["123", "456"]);
    }

    #[test]
    fn passes_keep_the_text_between_matches() {
        let res = compile(&lookup("smollm").unwrap().regexes).unwrap();
        assert_eq!(
            split("ab 123  x", &res),
            vec!["ab", " ", "1", "2", "3", " ", " x"]
        );
    }
}
