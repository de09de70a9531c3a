//! Did-you-mean suggestions for misspelt names, shared by every layer's error messages.

/// The candidate closest to `word`, if it is plausibly a typo of it.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Separators count least: `q4km` is `q4_k_m`, not `q4_0` (as many edits away with them).
    let bare = |s: &str| s.to_lowercase().replace(['_', '-', '.', ' '], "");
    let word_bare = bare(word);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word_bare, &bare(c)),
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(_, d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(bare_d, d, _)| (*bare_d, *d))
        .map(|(_, _, c)| c)
}
