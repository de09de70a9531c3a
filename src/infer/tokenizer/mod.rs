//! Tokenization from GGUF metadata, as llama.cpp does it (`src/llama-vocab.cpp`): special and
//! user-defined tokens split out first, then either
//! - byte-level BPE (`tokenizer.ggml.model = "gpt2"`, `llm_tokenizer_bpe_session`): the
//!   pre-tokenizer regexes of `tokenizer.ggml.pre`, then merges by rank on the GPT-2 byte
//!   alphabet, unknown symbols falling back to single bytes; or
//! - SentencePiece (`"llama"`, `llm_tokenizer_spm_session`): spaces escaped to U+2581, a space
//!   prefixed to text after a special token, merges by score, `<0xXX>` byte fallback.

pub mod pre;
pub mod spm;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::PathBuf;

use crate::convert::tinylm_to_hf::tokenizer::bytes_to_unicode;
use crate::formats::gguf::{Array, GgufFile, Value};

/// `tokenizer.ggml.token_type` values.
pub mod token_type {
    /// Ordinary vocabulary entry.
    pub const NORMAL: i32 = 1;
    /// `<unk>`.
    pub const UNKNOWN: i32 = 2;
    /// Control tokens (`<|endoftext|>`, `<s>`); only parsed from text when asked.
    pub const CONTROL: i32 = 3;
    /// Added tokens, always matched as a whole.
    pub const USER_DEFINED: i32 = 4;
    /// Padding entries.
    pub const UNUSED: i32 = 5;
    /// Raw bytes (`<0x0A>`).
    pub const BYTE: i32 = 6;
}

/// Why a GGUF's tokenizer cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {msg}", path.display())]
pub struct TokenizerError {
    /// The model file.
    pub path: PathBuf,
    /// What is wrong.
    pub msg: String,
}

/// Which algorithm `tokenizer.ggml.model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Byte-level BPE (`gpt2`).
    Bpe,
    /// SentencePiece (`llama`).
    Spm,
}

/// Token attributes beyond the GGUF type, as llama.cpp sets them by model name.
mod attr {
    /// Whitespace before the token is dropped when it is parsed from text.
    pub const LSTRIP: u8 = 1;
    /// Whitespace after it is dropped.
    pub const RSTRIP: u8 = 2;
}

/// A tokenizer read from `tokenizer.ggml.*`.
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    types: Vec<i32>,
    attrs: Vec<u8>,
    scores: Vec<f32>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), u32>,
    regexes: Vec<pre::Pass>,
    ignore_merges: bool,
    /// A word made only of newlines is one token if the vocabulary has it (Gemma 4).
    newline_runs: bool,
    /// BPE words are mapped to the GPT-2 byte alphabet (false for SentencePiece-style BPE).
    byte_encode: bool,
    /// Spaces become U+2581 before merging.
    escape_whitespaces: bool,
    /// SentencePiece: a space is put before text that starts the input or follows a special.
    add_space_prefix: bool,
    /// Special/user-defined token ids, longest text first.
    specials: Vec<u32>,
    /// Tokens that end generation.
    eog: std::collections::HashSet<u32>,
    byte_char: [char; 256],
    char_byte: HashMap<char, u8>,
    /// `tokenizer.ggml.pre`.
    pub pre: String,
    /// Beginning-of-sequence id.
    pub bos: Option<u32>,
    /// End-of-sequence id.
    pub eos: Option<u32>,
    /// Whether [`Tokenizer::encode`] prepends BOS when asked for special tokens.
    pub add_bos: bool,
    /// Whether it appends EOS.
    pub add_eos: bool,
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v.as_array()? {
        Array::String(s) => Some(
            s.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect(),
        ),
        _ => None,
    }
}

impl Tokenizer {
    /// Reads the tokenizer of `file`; `pre_override` replaces `tokenizer.ggml.pre`.
    pub fn from_gguf(
        file: &GgufFile,
        pre_override: Option<&str>,
    ) -> Result<Tokenizer, TokenizerError> {
        let err = |msg: String| TokenizerError {
            path: file.path.clone(),
            msg,
        };
        let model_name = file
            .get("tokenizer.ggml.model")
            .and_then(Value::as_str)
            .unwrap_or("");
        let model = match model_name {
            "gpt2" | "gemma4" => Model::Bpe,
            "llama" => Model::Spm,
            "" => {
                return Err(err(
                    "tokenizer.ggml.model is missing: the file has no tokenizer; \
                     tinylm tokenizes 'gpt2'/'gemma4' (BPE) and 'llama' (SentencePiece)"
                        .into(),
                ));
            }
            other => {
                return Err(err(format!(
                    "tokenizer.ggml.model is '{other}'; tinylm tokenizes 'gpt2'/'gemma4' (BPE) \
                     and 'llama' (SentencePiece) only"
                )));
            }
        };
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(strings)
            .ok_or_else(|| err("tokenizer.ggml.tokens is missing or not a string array".into()))?;
        let types: Vec<i32> = match file
            .get("tokenizer.ggml.token_type")
            .and_then(Value::as_array)
        {
            Some(Array::I32(v)) if v.len() == tokens.len() => v.clone(),
            Some(_) => {
                return Err(err(
                    "tokenizer.ggml.token_type must be an INT32 array as long as the tokens".into(),
                ));
            }
            None => vec![token_type::NORMAL; tokens.len()],
        };
        let scores: Vec<f32> = match file.get("tokenizer.ggml.scores").map(Value::as_array) {
            Some(Some(Array::F32(v))) if v.len() >= tokens.len() => v.clone(),
            Some(Some(Array::I32(v))) if v.len() >= tokens.len() => {
                v.iter().map(|&x| x as f32).collect()
            }
            Some(_) => {
                return Err(err(
                    "tokenizer.ggml.scores must be a FLOAT32 or INT32 array as long as the tokens"
                        .into(),
                ));
            }
            None if model == Model::Spm => {
                return Err(err(
                    "tokenizer.ggml.scores is missing: a SentencePiece vocabulary merges by score"
                        .into(),
                ));
            }
            None => Vec::new(),
        };
        let mut ranks = HashMap::new();
        if model == Model::Bpe {
            let merges = file
                .get("tokenizer.ggml.merges")
                .and_then(strings)
                .ok_or_else(|| {
                    err("tokenizer.ggml.merges is missing or not a string array".into())
                })?;
            ranks.reserve(merges.len());
            for (i, m) in merges.iter().enumerate() {
                // llama.cpp splits at the first space after the first character.
                let Some(p) = m.bytes().skip(1).position(|c| c == b' ').map(|p| p + 1) else {
                    return Err(err(format!("merge {i} '{m}' is not 'left right'")));
                };
                ranks
                    .entry((m[..p].to_string(), m[p + 1..].to_string()))
                    .or_insert(i as u32);
            }
        }
        // llama.cpp's "gemma4" model is BPE with the gemma4 pre-tokenizer, whatever the key says.
        let forced_pre = (model_name == "gemma4").then(|| "gemma4".to_string());
        let pre_name = forced_pre
            .or_else(|| pre_override.map(str::to_string))
            .or_else(|| {
                file.get("tokenizer.ggml.pre")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".into());
        let pre = match model {
            // llama.cpp ignores `tokenizer.ggml.pre` for SentencePiece vocabularies.
            Model::Spm => pre::PreTokenizer::default(),
            Model::Bpe => pre::lookup(&pre_name).ok_or_else(|| {
                err(format!(
                    "pre-tokenizer '{pre_name}' (tokenizer.ggml.pre) is not implemented by \
                     tinylm; known: {}",
                    pre::NAMES.join(", ")
                ))
            })?,
        };
        let regexes = pre::compile(&pre.regexes)
            .map_err(|e| err(format!("pre-tokenizer '{pre_name}' regex: {e}")))?;
        let n = tokens.len();
        let id = |k: &str, default: Option<u32>| -> Option<u32> {
            match file.get(k).and_then(Value::as_u64) {
                Some(x) if (x as usize) < n => Some(x as u32),
                _ => default.filter(|&d| (d as usize) < n),
            }
        };
        let flag = |k: &str, d: bool| file.get(k).and_then(Value::as_bool).unwrap_or(d);
        // SentencePiece vocabularies default to <unk>=0, <s>=1, </s>=2 (llama.cpp's defaults).
        let (bos_default, eos_default) = match model {
            Model::Spm => (Some(1), Some(2)),
            Model::Bpe => (None, None),
        };
        let bos = id("tokenizer.ggml.bos_token_id", bos_default);
        let eos = id("tokenizer.ggml.eos_token_id", eos_default);
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            ids.insert(t.clone(), i as u32);
        }
        let mut types = types;
        let eog = control_by_name(file, &tokens, &mut types, eos);
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
                ) && !tokens[i as usize].is_empty()
            })
            .collect();
        specials.sort_by_key(|&i| (Reverse(tokens[i as usize].len()), i));
        let attrs = token_attrs(file, &pre_name, &tokens, &specials);
        let byte_char = bytes_to_unicode();
        let char_byte = byte_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let (add_bos_default, add_space_prefix_default) = match model {
            Model::Spm => (true, true),
            Model::Bpe => (pre.add_bos, false),
        };
        Ok(Tokenizer {
            add_bos: (pre.force_bos || flag("tokenizer.ggml.add_bos_token", add_bos_default))
                && bos.is_some(),
            add_eos: flag("tokenizer.ggml.add_eos_token", false) && eos.is_some(),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", add_space_prefix_default),
            escape_whitespaces: model == Model::Spm || pre.escape_whitespaces,
            byte_encode: pre.byte_encode,
            model,
            tokens,
            types,
            attrs,
            scores,
            ids,
            ranks,
            regexes,
            ignore_merges: pre.ignore_merges,
            newline_runs: pre.newline_runs,
            specials,
            eog,
            byte_char,
            char_byte,
            pre: pre_name,
            bos,
            eos,
        })
    }

    /// The vocabulary type.
    pub fn model(&self) -> Model {
        self.model
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.tokens.len()
    }

    /// The stored text of token `id`.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The type of token `id` ([`token_type`]).
    pub fn token_type(&self, id: u32) -> i32 {
        self.types.get(id as usize).copied().unwrap_or(0)
    }

    /// The id of a token by its stored text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Whether `id` ends generation (llama.cpp's end-of-generation set).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// Token ids of `text` like `llama_tokenize(text, add_special, parse_special)`: with
    /// `add_special`, BOS/EOS as the model asks; with `parse_special`, control tokens written
    /// in the text are recognised (user-defined tokens always are).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if add_special
            && self.add_bos
            && let Some(b) = self.bos
        {
            out.push(b);
        }
        let frags = if text.is_empty() {
            Vec::new()
        } else {
            self.partition(text, parse_special)
        };
        // SentencePiece puts a space before text at the start or after a special token.
        let mut prev_special = true;
        for frag in frags {
            match frag {
                Frag::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Frag::Text(t) => {
                    let mut text = String::with_capacity(t.len() + 1);
                    if self.model == Model::Spm && self.add_space_prefix && prev_special {
                        text.push(' ');
                    }
                    text.push_str(t);
                    if self.escape_whitespaces {
                        text = text.replace(' ', spm::SPACE);
                    }
                    match self.model {
                        Model::Spm => spm::tokenize(self, &text, &mut out),
                        Model::Bpe => self.encode_text(&text, &mut out),
                    }
                    prev_special = false;
                }
            }
        }
        if add_special
            && self.add_eos
            && let Some(e) = self.eos
        {
            out.push(e);
        }
        out
    }

    /// Splits `text` around special tokens, longest token first (`tokenizer_st_partition`),
    /// dropping the whitespace an `lstrip`/`rstrip` token swallows.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Frag<'t>> {
        let mut frags = vec![Frag::Text(text)];
        for &id in &self.specials {
            let ty = self.types[id as usize];
            if !parse_special && matches!(ty, token_type::CONTROL | token_type::UNKNOWN) {
                continue;
            }
            let attrs = self.attrs[id as usize];
            let tok = self.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                let Frag::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = rest.find(tok) {
                    let mut left = &rest[..p];
                    if attrs & attr::LSTRIP != 0 {
                        left =
                            left.trim_end_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
                    }
                    if !left.is_empty() {
                        next.push(Frag::Text(left));
                    }
                    next.push(Frag::Token(id));
                    rest = &rest[p + tok.len()..];
                    if attrs & attr::RSTRIP != 0 {
                        rest = rest
                            .trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
                    }
                }
                if !rest.is_empty() {
                    next.push(Frag::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }

    fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        for word in pre::split(text, &self.regexes) {
            let encoded: String = if self.byte_encode {
                word.bytes().map(|b| self.byte_char[b as usize]).collect()
            } else {
                word.to_string()
            };
            // Gemma 4 takes a run of newlines as one token when it has one (llama.cpp #21343).
            let whole = self.ignore_merges
                || (self.newline_runs && !word.is_empty() && word.bytes().all(|b| b == b'\n'));
            if whole && let Some(&id) = self.ids.get(&encoded) {
                out.push(id);
                continue;
            }
            for sym in self.bpe(&encoded) {
                match self.ids.get(sym) {
                    Some(&id) => out.push(id),
                    None if self.byte_encode => {
                        for c in sym.chars() {
                            if let Some(&id) = self.ids.get(&c.to_string()) {
                                out.push(id);
                            }
                        }
                    }
                    None => out.extend(sym.bytes().filter_map(|b| self.byte_token(b))),
                }
            }
        }
    }

    /// The `<0xXX>` token of a byte (SentencePiece and SentencePiece-style BPE), else the byte
    /// itself as a one-character token.
    fn byte_token(&self, b: u8) -> Option<u32> {
        self.ids
            .get(&format!("<0x{b:02X}>"))
            .or_else(|| {
                if self.model == Model::Spm {
                    self.ids
                        .get(&char::from(b).to_string())
                        .filter(|_| b < 0x80)
                } else {
                    None
                }
            })
            .copied()
    }

    /// Merges the characters of `word` by rank, lowest first, leftmost on ties.
    fn bpe<'w>(&self, word: &'w str) -> Vec<&'w str> {
        // Symbols as byte ranges of `word`, linked left/right.
        let starts: Vec<usize> = word.char_indices().map(|(i, _)| i).collect();
        let n = starts.len();
        if n <= 1 {
            return vec![word];
        }
        let mut start = starts.clone();
        let mut end: Vec<usize> = starts[1..].iter().copied().chain([word.len()]).collect();
        let mut prev: Vec<isize> = (0..n as isize).map(|i| i - 1).collect();
        let mut next: Vec<isize> = (1..=n as isize)
            .map(|i| if i == n as isize { -1 } else { i })
            .collect();
        let mut alive = vec![true; n];
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Reverse<(u32, usize, usize, usize)>>,
                    start: &[usize],
                    end: &[usize],
                    l: usize,
                    r: usize| {
            let (a, b) = (&word[start[l]..end[l]], &word[start[r]..end[r]]);
            if let Some(&rank) = self.ranks.get(&(a.to_string(), b.to_string())) {
                heap.push(Reverse((rank, l, r, end[r] - start[l])));
            }
        };
        for i in 1..n {
            push(&mut heap, &start, &end, i - 1, i);
        }
        while let Some(Reverse((_, l, r, len))) = heap.pop() {
            // Stale entries: a side already merged away or grown since.
            if !alive[l] || !alive[r] || next[l] != r as isize || end[r] - start[l] != len {
                continue;
            }
            end[l] = end[r];
            alive[r] = false;
            next[l] = next[r];
            if next[r] >= 0 {
                prev[next[r] as usize] = l as isize;
            }
            if prev[l] >= 0 {
                push(&mut heap, &start, &end, prev[l] as usize, l);
            }
            if next[l] >= 0 {
                push(&mut heap, &start, &end, l, next[l] as usize);
            }
        }
        let _ = &mut start;
        (0..n)
            .filter(|&i| alive[i])
            .map(|i| &word[start[i]..end[i]])
            .collect()
    }

    /// The bytes of token `id` as text pieces decode them (`token_to_piece`); control tokens
    /// give nothing unless `special`.
    pub fn token_bytes(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        let ty = self.types[id as usize];
        if self.model == Model::Spm || !self.byte_encode {
            return match ty {
                token_type::CONTROL | token_type::UNKNOWN if !special => Vec::new(),
                token_type::CONTROL | token_type::UNKNOWN | token_type::USER_DEFINED => {
                    t.as_bytes().to_vec()
                }
                token_type::NORMAL if self.escape_whitespaces => {
                    t.replace(spm::SPACE, " ").into_bytes()
                }
                token_type::NORMAL => t.as_bytes().to_vec(),
                token_type::BYTE => spm::parse_byte_token(t)
                    .map(|b| vec![b])
                    .unwrap_or_default(),
                // llama.cpp prints nothing for unused and undefined entries.
                _ => Vec::new(),
            };
        }
        match ty {
            token_type::CONTROL | token_type::UNKNOWN | token_type::UNUSED if !special => {
                Vec::new()
            }
            token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN => {
                t.as_bytes().to_vec()
            }
            _ => t
                .chars()
                .map(|c| match self.char_byte.get(&c) {
                    Some(&b) => vec![b],
                    None => c.to_string().into_bytes(),
                })
                .collect::<Vec<_>>()
                .concat(),
        }
    }

    /// Text of `ids` (invalid UTF-8 replaced), like `llama_detokenize` without removing
    /// specials: a SentencePiece vocabulary drops the space its encoder put in front.
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_bytes(id, special);
            let strip = i == 0 && self.model == Model::Spm && self.add_space_prefix;
            bytes.extend_from_slice(match piece.split_first() {
                Some((b' ', rest)) if strip => rest,
                _ => &piece,
            });
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl spm::Vocab for Tokenizer {
    fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }
    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }
    fn byte(&self, b: u8) -> Option<u32> {
        self.byte_token(b)
    }
}

/// Texts llama.cpp takes for end-of-generation tokens (`llama_vocab::impl::load`).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
    "[e~[",
];

/// Texts of the EOT, EOM and fill-in-the-middle tokens llama.cpp looks for when the GGUF does
/// not name them, by key.
const NAMED_TEXTS: &[(&str, &[&str])] = &[
    (
        "tokenizer.ggml.eot_token_id",
        &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|end_of_text|>",
            "<EOT>",
            "_<EOT>",
            "[EOT]",
            "<\u{ff5c}end\u{2581}of\u{2581}sentence\u{ff5c}>",
            "<end_of_utterance>",
        ],
    ),
    ("tokenizer.ggml.eom_token_id", &["<|eom_id|>"]),
    (
        "tokenizer.ggml.fim_pre_token_id",
        &[
            "<|fim_prefix|>",
            "<fim-prefix>",
            "<fim_prefix>",
            "<\u{ff5c}fim\u{2581}begin\u{ff5c}>",
            "<PRE>",
            "\u{2581}<PRE>",
            "<|code_prefix|>",
            "<|prefix|>",
        ],
    ),
    (
        "tokenizer.ggml.fim_suf_token_id",
        &[
            "<|fim_suffix|>",
            "<fim-suffix>",
            "<fim_suffix>",
            "<\u{ff5c}fim\u{2581}hole\u{ff5c}>",
            "<SUF>",
            "\u{2581}<SUF>",
            "<|code_suffix|>",
            "<|suffix|>",
        ],
    ),
    (
        "tokenizer.ggml.fim_mid_token_id",
        &[
            "<|fim_middle|>",
            "<fim-middle>",
            "<fim_middle>",
            "<\u{ff5c}fim\u{2581}end\u{ff5c}>",
            "<MID>",
            "\u{2581}<MID>",
            "<|code_middle|>",
            "<|middle|>",
        ],
    ),
    (
        "tokenizer.ggml.fim_pad_token_id",
        &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    ),
    (
        "tokenizer.ggml.fim_rep_token_id",
        &[
            "<|fim_repo|>",
            "<|repo_name|>",
            "<fim-repo>",
            "<REPO>",
            "<reponame>",
        ],
    ),
    ("tokenizer.ggml.fim_sep_token_id", &["<|file_sep|>"]),
];

/// llama.cpp's fix-ups of token types by text: end-of-generation, EOT/EOM and FIM look-alikes
/// become CONTROL (so they are parsed as specials and not printed), gpt-oss's channel markers
/// USER_DEFINED. Returns the end-of-generation set.
fn control_by_name(
    file: &GgufFile,
    tokens: &[String],
    types: &mut [i32],
    eos: Option<u32>,
) -> std::collections::HashSet<u32> {
    let find = |t: &str| tokens.iter().position(|x| x == t);
    let key = |k: &str| {
        file.get(k)
            .and_then(Value::as_u64)
            .filter(|&x| (x as usize) < tokens.len())
            .map(|x| x as u32)
    };
    let mut eog = std::collections::HashSet::new();
    for (k, texts) in NAMED_TEXTS {
        let id = key(k).or_else(|| texts.iter().find_map(|t| find(t)).map(|i| i as u32));
        if key(k).is_none()
            && let Some(i) = id
        {
            types[i as usize] = token_type::CONTROL;
        }
        let ends = k.ends_with("eot_token_id")
            || k.ends_with("eom_token_id")
            || k.ends_with("fim_pad_token_id")
            || k.ends_with("fim_rep_token_id")
            || k.ends_with("fim_sep_token_id");
        if ends && let Some(i) = id {
            eog.insert(i);
        }
    }
    for t in EOG_TEXTS {
        if let Some(i) = find(t) {
            types[i] = token_type::CONTROL;
            eog.insert(i as u32);
        }
    }
    for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
        if let Some(i) = find(t) {
            types[i] = token_type::USER_DEFINED;
        }
    }
    eog.extend(eos);
    let text = |i: u32| tokens[i as usize].as_str();
    let texts: std::collections::HashSet<&str> = eog.iter().map(|&i| text(i)).collect();
    let has = |t: &str| texts.contains(t);
    // o200k_harmony and solar-open: `<|end|>` ends a message, not the generation.
    if (has("<|return|>") && has("<|call|>") || has("<|calls|>") && has("<|flush|>"))
        && let Some(i) = eog.iter().copied().find(|&i| text(i) == "<|end|>")
    {
        eog.remove(&i);
        types[i as usize] = token_type::USER_DEFINED;
    }
    // Gemma 4 and PLaMo-2 have an ordinary `</s>`.
    if (has("<|tool_response>") || has("<|plamo:eos|>"))
        && let Some(i) = eog.iter().copied().find(|&i| text(i) == "</s>")
    {
        eog.remove(&i);
        types[i as usize] = token_type::NORMAL;
    }
    eog
}

/// The `lstrip`/`rstrip` attributes llama.cpp gives tokens by model name (they are not in
/// the GGUF): Phi-3's specials swallow the whitespace after them, some BERT-likes' `<mask>`
/// the whitespace before.
fn token_attrs(file: &GgufFile, pre: &str, tokens: &[String], specials: &[u32]) -> Vec<u8> {
    let mut attrs = vec![0u8; tokens.len()];
    let s = |k: &str| {
        file.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = s("general.name").to_ascii_lowercase();
    let arch = s("general.architecture");
    let find = |t: &str| tokens.iter().position(|x| x == t);
    if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
        .iter()
        .any(|p| pre.contains(p))
        || ["nomic-bert-moe", "jina-bert-v3"]
            .iter()
            .any(|a| arch.contains(a))
    {
        if let Some(i) = find("<mask>") {
            attrs[i] |= attr::LSTRIP;
        }
    } else if name.contains("phi-3") || name.contains("phi3") {
        for &i in specials {
            attrs[i as usize] |= attr::RSTRIP;
        }
        if let Some(i) = find("</s>") {
            attrs[i] |= attr::RSTRIP;
        }
        for t in ["<unk>", "<s>", "<|endoftext|>"] {
            if let Some(i) = find(t) {
                attrs[i] &= !attr::RSTRIP;
            }
        }
    } else if name.contains("modern-bert")
        && let Some(i) = find("[MASK]")
    {
        attrs[i] |= attr::LSTRIP;
    }
    attrs
}

enum Frag<'t> {
    Text(&'t str),
    Token(u32),
}
