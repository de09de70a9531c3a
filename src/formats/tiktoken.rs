//! Pickled `tiktoken.core.Encoding` objects (tiny-lm's `tokenizer.pkl`).
//!
//! `pickle.dump(encoding)` stores the class reference plus the dict returned by
//! `Encoding.__getstate__`: `{name, pat_str, mergeable_ranks: {bytes: rank}, special_tokens:
//! {str: id}}`. The file is read through the restricted unpickler, so the class is never
//! instantiated.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::formats::pytorch::pickle::{self, Options};
use crate::formats::pytorch::value::Value;

/// Why a tokenizer pickle could not be read.
pub type TiktokenError = super::FileError;

/// The state of a tiktoken encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiktokenEncoding {
    /// Encoding name (`tiny_lm_bpe`, …).
    pub name: String,
    /// The pre-tokenization regex (tiktoken/`fancy-regex` syntax).
    pub pat_str: String,
    /// Byte sequences with their ranks (= token ids), sorted by rank.
    pub mergeable_ranks: Vec<(Vec<u8>, u32)>,
    /// Special tokens with their ids, sorted by id.
    pub special_tokens: Vec<(String, u32)>,
}

impl TiktokenEncoding {
    /// Reads a pickled `tiktoken.core.Encoding` (or its `__getstate__` dict).
    pub fn load(path: &Path) -> Result<Self, TiktokenError> {
        let bytes = crate::fsutil::input::read(path).map_err(|source| TiktokenError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pickle(&bytes).map_err(|msg| TiktokenError::invalid(path, msg))
    }

    /// Parses the bytes of a tokenizer pickle.
    pub fn from_pickle(bytes: &[u8]) -> Result<Self, String> {
        let value = pickle::unpickle(bytes, Options::default()).map_err(|e| e.to_string())?;
        Self::from_value(&value)
    }

    /// Interprets an unpickled value as an encoding.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let state = match value {
            Value::Object(o) if o.class == "tiktoken.core.Encoding" => match &o.state {
                Some(Value::Str(name)) => {
                    return Err(format!(
                        "the pickle refers to tiktoken's built-in encoding {name:?} by name and \
                         holds no vocabulary; export it with its ranks instead"
                    ));
                }
                Some(s) => s,
                None => return Err("tiktoken Encoding without state".into()),
            },
            Value::Object(o) => {
                return Err(format!(
                    "expected a pickled tiktoken.core.Encoding, found an object of class {}",
                    o.class
                ));
            }
            v @ Value::Dict(_) => v,
            other => {
                return Err(format!(
                    "expected a pickled tiktoken.core.Encoding, found a {}",
                    other.type_name()
                ));
            }
        };
        let field = |k: &str| {
            state
                .get(k)
                .ok_or_else(|| format!("tiktoken state has no {k:?} entry"))
        };
        let text = |k: &str| -> Result<String, String> {
            field(k)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("tiktoken {k:?} is not a string"))
        };
        let name = text("name")?;
        let pat_str = text("pat_str")?;
        let id = |v: &Value, what: &str| -> Result<u32, String> {
            v.as_int()
                .and_then(|i| u32::try_from(i).ok())
                .ok_or_else(|| format!("{what} has a non-integer or out-of-range id"))
        };

        let ranks = field("mergeable_ranks")?
            .as_dict()
            .ok_or("tiktoken mergeable_ranks is not a dict")?;
        let mut mergeable_ranks = Vec::with_capacity(ranks.len());
        let mut seen = HashSet::new();
        for (k, v) in ranks {
            let Value::Bytes(b) = k else {
                return Err(format!("mergeable_ranks key {} is not bytes", k.summary()));
            };
            if b.is_empty() {
                return Err("mergeable_ranks contains an empty token".into());
            }
            let r = id(v, &format!("token {}", String::from_utf8_lossy(b)))?;
            if !seen.insert(r) {
                return Err(format!("rank {r} is used by two tokens"));
            }
            mergeable_ranks.push((b.clone(), r));
        }
        mergeable_ranks.sort_by_key(|&(_, r)| r);

        let specials = field("special_tokens")?
            .as_dict()
            .ok_or("tiktoken special_tokens is not a dict")?;
        let mut special_tokens = Vec::with_capacity(specials.len());
        for (k, v) in specials {
            let s = k
                .as_str()
                .ok_or_else(|| format!("special token {} is not a string", k.summary()))?;
            let i = id(v, &format!("special token {s:?}"))?;
            if !seen.insert(i) {
                return Err(format!("special token {s:?} reuses id {i}"));
            }
            special_tokens.push((s.to_owned(), i));
        }
        special_tokens.sort_by_key(|&(_, i)| i);
        Ok(TiktokenEncoding {
            name,
            pat_str,
            mergeable_ranks,
            special_tokens,
        })
    }

    /// Number of ids: one past the largest rank or special id.
    pub fn n_vocab(&self) -> usize {
        let max_rank = self.mergeable_ranks.last().map(|&(_, r)| r);
        let max_special = self.special_tokens.iter().map(|&(_, i)| i).max();
        max_rank.max(max_special).map_or(0, |m| {
            usize::try_from(m).unwrap_or(usize::MAX).saturating_add(1)
        })
    }

    /// Token bytes → rank.
    pub fn rank_map(&self) -> HashMap<&[u8], u32> {
        self.mergeable_ranks
            .iter()
            .map(|(b, r)| (b.as_slice(), *r))
            .collect()
    }

    /// The id of a special token.
    pub fn special_id(&self, token: &str) -> Option<u32> {
        self.special_tokens
            .iter()
            .find(|(s, _)| s == token)
            .map(|&(_, i)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .join("tokenizer.pkl")
    }

    #[test]
    fn loads_tinylm_tokenizers() {
        for (fx, n) in [("tinylm-gpt2", 512), ("tinylm-llama3", 768)] {
            let enc = TiktokenEncoding::load(&fixture(fx)).unwrap();
            assert_eq!(enc.name, "tiny_lm_bpe");
            assert!(
                enc.pat_str.starts_with("'(?i:[sdmt]|ll|ve|re)|"),
                "{}",
                enc.pat_str
            );
            assert_eq!(enc.n_vocab(), n);
            assert_eq!(enc.mergeable_ranks.len(), n - 4);
            // Ranks 0..255 are the single bytes in tiny-lm's files.
            assert_eq!(enc.mergeable_ranks[65], (vec![65u8], 65));
            let specials: Vec<(&str, u32)> = enc
                .special_tokens
                .iter()
                .map(|(s, i)| (s.as_str(), *i))
                .collect();
            let b = n as u32 - 4;
            assert_eq!(
                specials,
                [
                    ("<pad>", b),
                    ("<eos>", b + 1),
                    ("<bos>", b + 2),
                    ("<unk>", b + 3)
                ]
            );
            assert_eq!(enc.special_id("<bos>"), Some(b + 2));
        }
    }

    #[test]
    fn rejects_other_pickles() {
        // A plain int.
        let err = TiktokenEncoding::from_pickle(b"\x80\x02K\x01.").unwrap_err();
        assert!(err.contains("found a int"), "{err}");
        // A built-in encoding pickled by name.
        let pkl = b"\x80\x04ctiktoken.core\nEncoding\n)\x81X\x0b\x00\x00\x00cl100k_baseb.";
        let err = TiktokenEncoding::from_pickle(pkl).unwrap_err();
        assert!(err.contains("built-in encoding \"cl100k_base\""), "{err}");
        // A dict missing fields.
        let err = TiktokenEncoding::from_pickle(b"\x80\x02}.").unwrap_err();
        assert!(err.contains("no \"name\""), "{err}");
    }
}
