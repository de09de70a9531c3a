//! SentencePiece (`tokenizer.ggml.model = "llama"`) tokenization as llama.cpp does it
//! (`llm_tokenizer_spm_session` in `src/llama-vocab.cpp`): characters merged pairwise, the
//! pair whose merged text is the highest-scoring vocabulary entry first (leftmost on ties),
//! and whatever did not become a token written as `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// The escaped form of a space in SentencePiece vocabularies (U+2581).
pub const SPACE: &str = "\u{2581}";

/// A candidate merge of two adjacent symbols.
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    /// Byte length of the merged text, to spot entries made stale by other merges.
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores the leftmost pair (llama.cpp's comparator).
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// What the merge loop needs from the vocabulary.
pub trait Vocab {
    /// Id of the token whose text is `text`.
    fn id(&self, text: &str) -> Option<u32>;
    /// Score of token `id`.
    fn score(&self, id: u32) -> f32;
    /// Token for one raw byte (`<0xXX>`, else the byte itself as text).
    fn byte(&self, b: u8) -> Option<u32>;
}

/// Appends the ids of `text` (already whitespace-escaped) to `out`.
pub fn tokenize(vocab: &impl Vocab, text: &str, out: &mut Vec<u32>) {
    // Symbols are byte ranges [start, start + len) of `text`; len 0 means merged away.
    let mut start: Vec<usize> = Vec::with_capacity(text.len());
    let mut len: Vec<usize> = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        start.push(i);
        len.push(c.len_utf8());
    }
    let n = start.len();
    if n == 0 {
        return;
    }
    let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>,
                   start: &[usize],
                   len: &[usize],
                   left: Option<usize>,
                   right: Option<usize>| {
        let (Some(l), Some(r)) = (left, right) else {
            return;
        };
        let size = len[l] + len[r];
        if let Some(id) = vocab.id(&text[start[l]..start[l] + size]) {
            queue.push(Bigram {
                score: vocab.score(id),
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..n {
        try_add(&mut queue, &start, &len, Some(i - 1), Some(i));
    }
    while let Some(b) = queue.pop() {
        if len[b.left] == 0 || len[b.right] == 0 || len[b.left] + len[b.right] != b.size {
            continue;
        }
        len[b.left] += len[b.right];
        len[b.right] = 0;
        next[b.left] = next[b.right];
        if let Some(r) = next[b.right] {
            prev[r] = Some(b.left);
        }
        try_add(&mut queue, &start, &len, prev[b.left], Some(b.left));
        try_add(&mut queue, &start, &len, Some(b.left), next[b.left]);
    }
    let mut i = Some(0);
    while let Some(s) = i {
        let piece = &text[start[s]..start[s] + len[s]];
        match vocab.id(piece) {
            Some(id) => out.push(id),
            // Every merge produced a token, so only a single unknown character lands here.
            None => out.extend(piece.bytes().filter_map(|b| vocab.byte(b))),
        }
        i = next[s];
    }
}

/// `<0xXX>` → the byte.
pub fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct V(HashMap<String, (u32, f32)>);
    impl Vocab for V {
        fn id(&self, t: &str) -> Option<u32> {
            self.0.get(t).map(|x| x.0)
        }
        fn score(&self, id: u32) -> f32 {
            self.0.values().find(|x| x.0 == id).map_or(0.0, |x| x.1)
        }
        fn byte(&self, b: u8) -> Option<u32> {
            self.id(&format!("<0x{b:02X}>"))
        }
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let mut m = HashMap::new();
        for (i, (t, s)) in [
            ("a", 0.0),
            ("b", 0.0),
            ("ab", -1.0),
            ("bb", -0.5),
            ("abb", -2.0),
            ("<0xC3>", 0.0),
            ("<0xA9>", 0.0),
        ]
        .iter()
        .enumerate()
        {
            m.insert(t.to_string(), (i as u32, *s));
        }
        let v = V(m);
        let mut out = Vec::new();
        // "bb" (-0.5) beats "ab" (-1.0): a + bb, then "abb".
        tokenize(&v, "abb", &mut out);
        assert_eq!(out, vec![4]);
        out.clear();
        tokenize(&v, "aé", &mut out);
        assert_eq!(out, vec![0, 5, 6]);
        assert_eq!(parse_byte_token("<0x0A>"), Some(10));
        assert_eq!(parse_byte_token("<0x0A"), None);
    }
}
