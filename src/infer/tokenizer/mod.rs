//! Byte-level BPE tokenization from GGUF metadata, as llama.cpp does it
//! (`llm_tokenizer_bpe_session` in `src/llama-vocab.cpp`): special and user-defined tokens
//! split out first, then the pre-tokenizer regexes of `tokenizer.ggml.pre`, then BPE merges by
//! rank on the GPT-2 byte alphabet, unknown symbols falling back to single bytes.

pub mod pre;

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

/// A tokenizer read from `tokenizer.ggml.*`.
pub struct Tokenizer {
    tokens: Vec<String>,
    types: Vec<i32>,
    ids: HashMap<String, u32>,
    ranks: HashMap<(String, String), u32>,
    regexes: Vec<fancy_regex::Regex>,
    ignore_merges: bool,
    /// Special/user-defined token ids, longest text first.
    specials: Vec<u32>,
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
        let model = file
            .get("tokenizer.ggml.model")
            .and_then(Value::as_str)
            .unwrap_or("");
        if model != "gpt2" {
            return Err(err(format!(
                "tokenizer.ggml.model is '{model}'; tinylm tokenizes byte-level BPE ('gpt2') only"
            )));
        }
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
        let merges = file
            .get("tokenizer.ggml.merges")
            .and_then(strings)
            .ok_or_else(|| err("tokenizer.ggml.merges is missing or not a string array".into()))?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let Some((a, b)) = m.split_once(' ') else {
                return Err(err(format!("merge {i} '{m}' is not 'left right'")));
            };
            ranks
                .entry((a.to_string(), b.to_string()))
                .or_insert(i as u32);
        }
        let pre_name = pre_override
            .map(str::to_string)
            .or_else(|| {
                file.get("tokenizer.ggml.pre")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".into());
        let pre = pre::lookup(&pre_name).ok_or_else(|| {
            err(format!(
                "pre-tokenizer '{pre_name}' (tokenizer.ggml.pre) is not implemented by tinylm; \
                 known: {}",
                pre::NAMES.join(", ")
            ))
        })?;
        let regexes = pre
            .regexes
            .iter()
            .map(|r| fancy_regex::Regex::new(r).map_err(Box::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("pre-tokenizer regex: {e}")))?;
        let id = |k: &str| -> Option<u32> {
            file.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as u32)
                .filter(|&x| (x as usize) < tokens.len())
        };
        let flag = |k: &str, d: bool| file.get(k).and_then(Value::as_bool).unwrap_or(d);
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        let mut ids = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let mut specials: Vec<u32> = (0..tokens.len() as u32)
            .filter(|&i| {
                matches!(
                    types[i as usize],
                    token_type::CONTROL | token_type::USER_DEFINED | token_type::UNKNOWN
                ) && !tokens[i as usize].is_empty()
            })
            .collect();
        specials.sort_by_key(|&i| (Reverse(tokens[i as usize].len()), i));
        let byte_char = bytes_to_unicode();
        let char_byte = byte_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(Tokenizer {
            add_bos: flag("tokenizer.ggml.add_bos_token", pre.add_bos) && bos.is_some(),
            add_eos: flag("tokenizer.ggml.add_eos_token", false) && eos.is_some(),
            tokens,
            types,
            ids,
            ranks,
            regexes,
            ignore_merges: pre.ignore_merges,
            specials,
            byte_char,
            char_byte,
            pre: pre_name,
            bos,
            eos,
        })
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

    /// Whether `id` ends generation (EOS, or a control token named like an end marker).
    pub fn is_eog(&self, id: u32) -> bool {
        if Some(id) == self.eos {
            return true;
        }
        self.token_type(id) == token_type::CONTROL
            && matches!(
                self.token_text(id),
                Some(
                    "<|eot_id|>"
                        | "<|im_end|>"
                        | "<|end|>"
                        | "<end_of_turn>"
                        | "<|endoftext|>"
                        | "<|end_of_text|>"
                        | "<eos>"
                        | "</s>"
                        | "<|eom_id|>"
                )
            )
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
        for frag in self.partition(text, parse_special) {
            match frag {
                Frag::Token(id) => out.push(id),
                Frag::Text(t) => self.encode_text(t, &mut out),
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

    /// Splits `text` around special tokens, longest token first (`tokenizer_st_partition`).
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Frag<'t>> {
        let mut frags = vec![Frag::Text(text)];
        for &id in &self.specials {
            let ty = self.types[id as usize];
            if !parse_special && matches!(ty, token_type::CONTROL | token_type::UNKNOWN) {
                continue;
            }
            let tok = self.tokens[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len());
            for f in frags {
                let Frag::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(p) = rest.find(tok) {
                    if p > 0 {
                        next.push(Frag::Text(&rest[..p]));
                    }
                    next.push(Frag::Token(id));
                    rest = &rest[p + tok.len()..];
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
            let encoded: String = word.bytes().map(|b| self.byte_char[b as usize]).collect();
            if self.ignore_merges
                && let Some(&id) = self.ids.get(&encoded)
            {
                out.push(id);
                continue;
            }
            for sym in self.bpe(&encoded) {
                match self.ids.get(sym) {
                    Some(&id) => out.push(id),
                    None => {
                        for c in sym.chars() {
                            if let Some(&id) = self.ids.get(&c.to_string()) {
                                out.push(id);
                            }
                        }
                    }
                }
            }
        }
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

    /// The bytes of token `id` as text pieces decode them; control tokens give nothing unless
    /// `special`.
    pub fn token_bytes(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(t) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        match self.types[id as usize] {
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

    /// Text of `ids` (invalid UTF-8 replaced).
    pub fn decode(&self, ids: &[u32], special: bool) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| self.token_bytes(i, special))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

enum Frag<'t> {
    Text(&'t str),
    Token(u32),
}
