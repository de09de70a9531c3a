//! tiktoken encoding → HF byte-level BPE tokenizer files.
//!
//! tiktoken stores only `bytes → rank`. HF's BPE needs merges: each token of rank r is the
//! merge of the two parts that BPE, replayed on the token's bytes with ranks < r only, ends
//! with (llama.cpp's `QwenModel.bpe` does the same). With `ignore_merges: true` (whole
//! pre-tokens found in the vocabulary are taken as they are, as tiktoken does) and a Split on
//! tiktoken's own regex, HF then gives tiktoken's ids.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::config::SpecialTokenNames;
use super::pyjson;
use crate::formats::tiktoken::TiktokenEncoding;

/// The GPT-2 byte → unicode table: printable bytes map to themselves, the others to U+0100….
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    let mut next = 256u32;
    for b in 0u32..256 {
        let c = if printable(b) {
            b
        } else {
            next += 1;
            next - 1
        };
        // Every value is below U+0200, so always a valid char.
        table[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    table
}

/// Token bytes in the byte-level alphabet.
pub fn byte_level(table: &[char; 256], bytes: &[u8]) -> String {
    bytes.iter().map(|&b| table[usize::from(b)]).collect()
}

/// A merge: the left and right byte sequences that form a token.
pub type Merge = (Vec<u8>, Vec<u8>);

/// Recovers the merge that produced each multi-byte token, in rank order.
pub fn recover_merges(enc: &TiktokenEncoding) -> Result<Vec<Merge>, String> {
    let ranks = enc.rank_map();
    let mut merges = Vec::new();
    for (token, rank) in &enc.mergeable_ranks {
        if token.len() < 2 {
            continue;
        }
        let parts = bpe_replay(&ranks, token, *rank);
        match parts.as_slice() {
            [a, b] => merges.push((token[a.clone()].to_vec(), token[b.clone()].to_vec())),
            _ => {
                let shown: Vec<String> = parts
                    .iter()
                    .map(|p| format!("{:?}", String::from_utf8_lossy(&token[p.clone()])))
                    .collect();
                return Err(format!(
                    "cannot recover the BPE merge for token {:?} (rank {rank}): replaying BPE \
                     with lower ranks leaves {} parts [{}] instead of 2; this vocabulary is not \
                     a byte-level BPE merge closure",
                    String::from_utf8_lossy(token),
                    parts.len(),
                    shown.join(", ")
                ));
            }
        }
    }
    Ok(merges)
}

/// Byte-pair encoding of `token` using only ranks below `max_rank`; returns the part ranges.
fn bpe_replay(
    ranks: &HashMap<&[u8], u32>,
    token: &[u8],
    max_rank: u32,
) -> Vec<std::ops::Range<usize>> {
    let mut parts: Vec<std::ops::Range<usize>> = (0..token.len()).map(|i| i..i + 1).collect();
    loop {
        let mut best: Option<(usize, u32)> = None;
        for (i, w) in parts.windows(2).enumerate() {
            let merged = &token[w[0].start..w[1].end];
            if let Some(&r) = ranks.get(merged)
                && r < max_rank
                && best.is_none_or(|(_, b)| r < b)
            {
                best = Some((i, r));
            }
        }
        let Some((i, _)) = best else {
            return parts;
        };
        let end = parts[i + 1].end;
        parts[i].end = end;
        parts.remove(i + 1);
    }
}

/// Ids of the special tokens named in the tokenizer config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
    /// Unknown.
    pub unk: Option<u32>,
}

/// The tokenizer files of an HF folder, as bytes.
#[derive(Debug, Clone)]
pub struct TokenizerFiles {
    /// `tokenizer.json`.
    pub tokenizer_json: Vec<u8>,
    /// `tokenizer_config.json`.
    pub tokenizer_config_json: Vec<u8>,
    /// `special_tokens_map.json`.
    pub special_tokens_map_json: Vec<u8>,
    /// Ids of bos/eos/pad/unk.
    pub ids: SpecialIds,
}

/// Builds the tokenizer files for `enc`; `ctx` becomes `model_max_length`.
pub fn export(
    enc: &TiktokenEncoding,
    names: &SpecialTokenNames,
    ctx: usize,
) -> Result<TokenizerFiles, String> {
    // HF assigns added tokens the ids after the model vocabulary, in order; tiktoken's layout
    // must be exactly that for the ids to survive.
    for (i, (tok, r)) in enc.mergeable_ranks.iter().enumerate() {
        if *r as usize != i {
            return Err(format!(
                "token ranks are not 0..{}: token {:?} has rank {r} where {i} was expected",
                enc.mergeable_ranks.len(),
                String::from_utf8_lossy(tok)
            ));
        }
    }
    let n = enc.mergeable_ranks.len();
    for (i, (s, id)) in enc.special_tokens.iter().enumerate() {
        if *id as usize != n + i {
            return Err(format!(
                "special token {s:?} has id {id}, but special tokens must follow the vocabulary \
                 contiguously (expected {})",
                n + i
            ));
        }
    }
    let lookup = |role: &str, name: &Option<String>| -> Result<Option<(String, u32)>, String> {
        let Some(name) = name else {
            return Ok(None);
        };
        let id = enc.special_id(name).ok_or_else(|| {
            let have: Vec<&str> = enc.special_tokens.iter().map(|(s, _)| s.as_str()).collect();
            format!(
                "the tokenizer config names {name:?} as the {role} token, but the tokenizer's \
                 special tokens are {have:?}"
            )
        })?;
        Ok(Some((name.clone(), id)))
    };
    let bos = lookup("bos", &names.bos)?;
    let eos = lookup("eos", &names.eos)?;
    let pad = lookup("pad", &names.pad)?;
    let unk = lookup("unk", &names.unk)?;
    let ids = SpecialIds {
        bos: bos.as_ref().map(|b| b.1),
        eos: eos.as_ref().map(|b| b.1),
        pad: pad.as_ref().map(|b| b.1),
        unk: unk.as_ref().map(|b| b.1),
    };

    let table = bytes_to_unicode();
    let merges = recover_merges(enc)?;
    let mut vocab = Map::new();
    for (tok, r) in &enc.mergeable_ranks {
        vocab.insert(byte_level(&table, tok), json!(r));
    }
    let merges: Vec<Value> = merges
        .iter()
        .map(|(a, b)| json!([byte_level(&table, a), byte_level(&table, b)]))
        .collect();
    let added: Vec<Value> = enc
        .special_tokens
        .iter()
        .map(|(s, id)| {
            json!({
                "id": id, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true,
            })
        })
        .collect();
    let post_processor = match &bos {
        Some((b, id)) => {
            let special = |s: &str| json!({"SpecialToken": {"id": s, "type_id": 0}});
            let seq = |s: &str| json!({"Sequence": {"id": s, "type_id": 0}});
            json!({
                "type": "TemplateProcessing",
                "single": [special(b), seq("A")],
                "pair": [special(b), seq("A"), special(b), seq("B")],
                "special_tokens": {b.as_str(): {"id": b, "ids": [id], "tokens": [b]}},
            })
        }
        None => Value::Null,
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": enc.pat_str},
                    "behavior": "Isolated",
                    "invert": false,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": false,
                    "trim_offsets": true,
                    "use_regex": false,
                },
            ],
        },
        "post_processor": post_processor,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": true,
            "trim_offsets": true,
            "use_regex": true,
        },
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": true,
            "vocab": vocab,
            "merges": merges,
        },
    });
    let tokenizer_json = serde_json::to_vec_pretty(&tokenizer).map_err(|e| e.to_string())?;

    // tokenizer_config.json and special_tokens_map.json, as PreTrainedTokenizerFast writes them.
    let mut decoder = Map::new();
    for (s, id) in &enc.special_tokens {
        decoder.insert(
            id.to_string(),
            json!({
                "content": s, "lstrip": false, "normalized": false, "rstrip": false,
                "single_word": false, "special": true,
            }),
        );
    }
    let mut config = Map::new();
    config.insert("add_bos_token".into(), json!(bos.is_some()));
    config.insert("add_eos_token".into(), json!(false));
    config.insert("added_tokens_decoder".into(), Value::Object(decoder));
    config.insert("clean_up_tokenization_spaces".into(), json!(false));
    config.insert("extra_special_tokens".into(), json!({}));
    // Without it, `tok(text)` also returns `token_type_ids`, which `model(**tok(text))` feeds
    // to GPT-2 as extra embeddings (wrong logits) and Llama's `generate` rejects. The
    // transformers classes for these models declare exactly these two inputs.
    config.insert(
        "model_input_names".into(),
        json!(["input_ids", "attention_mask"]),
    );
    config.insert("model_max_length".into(), json!(ctx));
    config.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    let mut map = Map::new();
    for (role, v) in [("bos", &bos), ("eos", &eos), ("pad", &pad), ("unk", &unk)] {
        if let Some((s, _)) = v {
            config.insert(format!("{role}_token"), json!(s));
            map.insert(format!("{role}_token"), json!(s));
        }
    }
    let tokenizer_config_json = (pyjson::dumps(&Value::Object(config), false) + "\n").into_bytes();
    let special_tokens_map_json = (pyjson::dumps(&Value::Object(map), false) + "\n").into_bytes();
    Ok(TokenizerFiles {
        tokenizer_json,
        tokenizer_config_json,
        special_tokens_map_json,
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(tokens: &[&[u8]], specials: &[&str]) -> TiktokenEncoding {
        let mut ranks: Vec<(Vec<u8>, u32)> = (0..=255u8).map(|b| (vec![b], u32::from(b))).collect();
        for t in tokens {
            let r = ranks.len() as u32;
            ranks.push((t.to_vec(), r));
        }
        let n = ranks.len() as u32;
        TiktokenEncoding {
            name: "t".into(),
            pat_str: "\\s+|\\S+".into(),
            special_tokens: specials
                .iter()
                .enumerate()
                .map(|(i, s)| (s.to_string(), n + i as u32))
                .collect(),
            mergeable_ranks: ranks,
        }
    }

    #[test]
    fn byte_table_matches_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[usize::from(b'A')], 'A');
        assert_eq!(t[usize::from(b' ')], 'Ġ');
        assert_eq!(t[usize::from(b'\n')], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xAD], '\u{0143}');
        let mut all: Vec<char> = t.to_vec();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 256);
    }

    #[test]
    fn merges_follow_lowest_rank_replay() {
        // "ab" then "bc", then "abc": replay merges "ab" first (lower rank) → "ab" + "c".
        let e = enc(&[b"ab", b"bc", b"abc", b"bcd"], &[]);
        let m = recover_merges(&e).unwrap();
        let m: Vec<(&[u8], &[u8])> = m
            .iter()
            .map(|(a, b)| (a.as_slice(), b.as_slice()))
            .collect();
        assert_eq!(
            m,
            [
                (&b"a"[..], &b"b"[..]),
                (b"b", b"c"),
                (b"ab", b"c"),
                (b"bc", b"d")
            ]
        );
    }

    #[test]
    fn unreachable_token_is_a_clear_error() {
        // "xyz" with neither "xy" nor "yz" in the vocabulary cannot be a BPE merge.
        let e = enc(&[b"ab", b"xyz"], &[]);
        let err = recover_merges(&e).unwrap_err();
        assert!(err.contains("\"xyz\" (rank 257)"), "{err}");
        assert!(err.contains("3 parts"), "{err}");
    }

    #[test]
    fn special_layout_and_names_are_checked() {
        let mut e = enc(&[b"ab"], &["<a>", "<b>"]);
        let names = SpecialTokenNames {
            bos: Some("<x>".into()),
            ..Default::default()
        };
        let err = export(&e, &names, 8).unwrap_err();
        assert!(err.contains("\"<x>\" as the bos token"), "{err}");
        e.special_tokens[1].1 += 5;
        let err = export(&e, &SpecialTokenNames::default(), 8).unwrap_err();
        assert!(err.contains("contiguously"), "{err}");
    }

    #[test]
    fn no_bos_means_no_post_processor() {
        let e = enc(&[b"ab"], &["<eos>"]);
        let names = SpecialTokenNames {
            eos: Some("<eos>".into()),
            ..Default::default()
        };
        let files = export(&e, &names, 8).unwrap();
        let v: Value = serde_json::from_slice(&files.tokenizer_json).unwrap();
        assert_eq!(v["post_processor"], Value::Null);
        let c: Value = serde_json::from_slice(&files.tokenizer_config_json).unwrap();
        assert_eq!(c["add_bos_token"], json!(false));
        assert_eq!(c["eos_token"], json!("<eos>"));
        assert_eq!(files.ids.eos, Some(257));
    }
}
