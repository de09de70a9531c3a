//! Go standard-library behaviour that Ollama's Modelfile handling depends on.
//!
//! Ollama parses PARAMETER values with `strconv.ParseInt(s, 10, 64)`, `strconv.ParseFloat(s, 32)`
//! and `strconv.ParseBool`, drops runes that `strconv.IsPrint` rejects, and writes its JSON blobs
//! with `encoding/json` (sorted map keys, HTML-safe string escapes, float32 formatting). These
//! helpers reproduce exactly that so tinylm accepts what Ollama accepts and writes what it writes.

use unicode_general_category::{GeneralCategory, get_general_category};

/// `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space.
///
/// Go's tables are Unicode 15; ours are Unicode 16, so the two can only disagree on code points
/// first assigned in Unicode 16.
pub fn is_print(c: char) -> bool {
    use GeneralCategory as G;
    if c == ' ' {
        return true;
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::SpacingMark
            | G::EnclosingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
    )
}

/// `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits, no underscores, in range.
pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why `strconv.ParseFloat(s, 32)` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatError {
    /// Not a Go floating-point literal (`ErrSyntax`).
    Syntax,
    /// Out of float32 range (`ErrRange`).
    Range,
}

/// `strconv.ParseFloat(s, 32)`: decimal and hexadecimal literals with Go's underscore rules,
/// `inf`/`infinity`/`nan` (case-insensitive), correctly rounded to float32; overflow is
/// `FloatError::Range`.
pub fn parse_float32(s: &str) -> Result<f32, FloatError> {
    if let Some(v) = special(s) {
        return Ok(v);
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let is_hex =
        body.len() >= 2 && body.as_bytes()[0] == b'0' && matches!(body.as_bytes()[1], b'x' | b'X');
    if body.contains('_') && !underscore_ok(s) {
        return Err(FloatError::Syntax);
    }
    let v = if is_hex {
        parse_hex(&body[2..])?
    } else {
        parse_decimal(body)?
    };
    Ok(if neg { -v } else { v })
}

/// Go's `special`: the whole string must be a signed infinity or an unsigned NaN.
fn special(s: &str) -> Option<f32> {
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1.0f32, &s[1..]),
        Some(b'-') => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = rest.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f32::INFINITY);
    }
    if rest.len() == s.len() && lower == "nan" {
        return Some(f32::NAN);
    }
    None
}

/// Go's `underscoreOK`: underscores only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'+' | b'-') => &b[1..],
        _ => b,
    };
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// A decimal literal without sign: digits with at most one `.`, at least one digit, then an
/// optional exponent with at least one digit. Underscores were already checked.
fn parse_decimal(body: &str) -> Result<f32, FloatError> {
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let b = clean.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    let mut dot = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => digits += 1,
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(FloatError::Syntax);
    }
    if i < b.len() {
        if !matches!(b[i], b'e' | b'E') {
            return Err(FloatError::Syntax);
        }
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if i >= b.len() || !b[i..].iter().all(u8::is_ascii_digit) {
            return Err(FloatError::Syntax);
        }
    }
    // Rust's parser is correctly rounded (round-half-even), like Go's.
    let v: f32 = clean.parse().map_err(|_| FloatError::Syntax)?;
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

/// A hexadecimal literal after `0x`: hex digits with at most one `.`, then a mandatory `p`
/// exponent (decimal, optional sign). Rounded to float32 with round-half-even.
fn parse_hex(body: &str) -> Result<f32, FloatError> {
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let b = clean.as_bytes();
    let mut i = 0;
    let mut mant: u64 = 0;
    let mut sticky = false;
    let mut exp: i64 = 0;
    let mut digits = 0;
    let mut dot = false;
    while i < b.len() {
        let c = b[i];
        if c == b'.' && !dot {
            dot = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            digits += 1;
            if mant >> 60 == 0 {
                mant = (mant << 4) | u64::from(d);
                if dot {
                    exp -= 4;
                }
            } else {
                // Too many digits to keep: remember that something non-zero was dropped.
                sticky |= d != 0;
                if !dot {
                    exp += 4;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 || i >= b.len() || !matches!(b[i], b'p' | b'P') {
        return Err(FloatError::Syntax);
    }
    i += 1;
    let mut eneg = false;
    if let Some(&s) = b.get(i)
        && (s == b'+' || s == b'-')
    {
        eneg = s == b'-';
        i += 1;
    }
    if i >= b.len() || !b[i..].iter().all(u8::is_ascii_digit) {
        return Err(FloatError::Syntax);
    }
    let mut e: i64 = 0;
    for &c in &b[i..] {
        // Saturate: anything this large over- or underflows anyway.
        e = (e * 10 + i64::from(c - b'0')).min(100_000);
    }
    exp += if eneg { -e } else { e };
    round_to_f32(mant, sticky, exp)
}

/// Rounds `mant * 2^exp` (plus a sticky "something non-zero below" bit) to float32,
/// half-to-even, like Go's `atofHex`.
fn round_to_f32(mant: u64, sticky: bool, exp: i64) -> Result<f32, FloatError> {
    if mant == 0 {
        return Ok(0.0);
    }
    let bits = 64 - i64::from(mant.leading_zeros());
    // Exponent of the significand's unit: 24 significant bits, but never below 2^-149
    // (the smallest subnormal).
    let mut e = (exp + bits - 24).max(-149);
    let shift = e - exp;
    let mut sig: u64 = if shift <= 0 {
        // Only when `mant` has at most 24 bits: exact.
        mant << (-shift)
    } else if shift > 64 {
        // Less than half of the smallest unit.
        0
    } else {
        let m = u128::from(mant);
        let kept = m >> shift;
        let rem = m & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let up = rem > half || (rem == half && (sticky || kept & 1 == 1));
        (kept + u128::from(up)) as u64
    };
    if sig >> 24 != 0 {
        // Rounding carried into a 25th bit (sig == 2^24): exact to halve.
        sig >>= 1;
        e += 1;
    }
    if e > 104 {
        return Err(FloatError::Range);
    }
    // sig < 2^24 and -149 <= e <= 104: the product is exact in f64 and then in f32.
    let scale = f64::from_bits(((e + 1023) as u64) << 52);
    Ok((sig as f64 * scale) as f32)
}

/// `encoding/json` text for a float32 (`floatEncoder` with bits = 32).
pub fn format_float32(f: f32) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes `1e21` and `1.5e-7`; Go writes `1e+21` and `1.5e-7` (after its e-0X fixup).
        match s.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => format!("{m}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// Appends `s` as a JSON string the way Go's `encoding/json` does with HTML escaping on
/// (the default of `json.Marshal` and `json.NewEncoder`).
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON string literal, Go style (see [`push_json_string`]).
    fn json_string(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        push_json_string(&mut out, s);
        out
    }

    #[test]
    fn ints_follow_parse_int_base_10() {
        assert_eq!(parse_int("4096"), Some(4096));
        assert_eq!(parse_int("+7"), Some(7));
        assert_eq!(parse_int("-1"), Some(-1));
        assert_eq!(parse_int("007"), Some(7));
        assert_eq!(parse_int("9223372036854775807"), Some(i64::MAX));
        for bad in [
            "",
            "+",
            "4096.0",
            "1e3",
            "1_000",
            "0x10",
            " 1",
            "1 ",
            "9223372036854775808",
            "٣",
        ] {
            assert_eq!(parse_int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bools_follow_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        for bad in ["yes", "tRUE", "on", "", " true"] {
            assert_eq!(parse_bool(bad), None);
        }
    }

    #[test]
    fn floats_follow_parse_float_32() {
        assert_eq!(parse_float32("0.7"), Ok(0.7f32));
        assert_eq!(parse_float32("1"), Ok(1.0));
        assert_eq!(parse_float32(".5"), Ok(0.5));
        assert_eq!(parse_float32("5."), Ok(5.0));
        assert_eq!(parse_float32("-2.5e-3"), Ok(-0.0025));
        assert_eq!(parse_float32("1E3"), Ok(1000.0));
        assert_eq!(parse_float32("1_000.5"), Ok(1000.5));
        assert_eq!(parse_float32("0x1p-2"), Ok(0.25));
        assert_eq!(parse_float32("0X1.8P1"), Ok(3.0));
        assert_eq!(parse_float32("0x_1p0"), Ok(1.0));
        assert_eq!(parse_float32("-0x10p0"), Ok(-16.0));
        assert_eq!(parse_float32("Inf"), Ok(f32::INFINITY));
        assert_eq!(parse_float32("-infinity"), Ok(f32::NEG_INFINITY));
        assert!(parse_float32("NaN").is_ok_and(f32::is_nan));
        // Rounded to float32, not float64.
        assert_eq!(parse_float32("0.1"), Ok(0.1f32));
        assert_eq!(parse_float32("16777217"), Ok(16777216.0));
        assert_eq!(parse_float32("1e-50"), Ok(0.0));
        assert_eq!(parse_float32("1e39"), Err(FloatError::Range));
        assert_eq!(parse_float32("0x1p128"), Err(FloatError::Range));
        assert_eq!(parse_float32("3.4028235e38"), Ok(f32::MAX));
        for bad in [
            "",
            ".",
            "e5",
            "1e",
            "1e+",
            "0.7 # hot",
            "1__0",
            "_1",
            "1_",
            "1_.5",
            "0x1",
            "0x",
            "0xp1",
            "+nan",
            "infin",
            "1.2.3",
            " 1",
            "1,5",
        ] {
            assert_eq!(parse_float32(bad), Err(FloatError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn hex_floats_round_half_to_even() {
        // 2^24 + 1 is a tie between 2^24 and 2^24 + 2: even wins.
        assert_eq!(parse_float32("0x1000001p0"), Ok(16777216.0));
        // 2^24 + 3 ties between +2 and +4: even (+4) wins.
        assert_eq!(parse_float32("0x1000003p0"), Ok(16777220.0));
        // A non-zero digit past the tie breaks it upwards.
        assert_eq!(
            parse_float32("0x1000001.00000000000000001p0"),
            Ok(16777218.0)
        );
        // Smallest subnormal and half of it (tie to even → 0).
        assert_eq!(parse_float32("0x1p-149"), Ok(f32::from_bits(1)));
        assert_eq!(parse_float32("0x1p-150"), Ok(0.0));
        assert_eq!(parse_float32("0x1.8p-150"), Ok(f32::from_bits(1)));
    }

    #[test]
    fn float32_json_matches_go() {
        assert_eq!(format_float32(0.7), "0.7");
        assert_eq!(format_float32(1.0), "1");
        assert_eq!(format_float32(0.0), "0");
        assert_eq!(format_float32(-0.0), "-0");
        assert_eq!(format_float32(1e-6), "0.000001");
        assert_eq!(format_float32(1e-7), "1e-7");
        assert_eq!(format_float32(1.5e-7), "1.5e-7");
        assert_eq!(format_float32(1e-10), "1e-10");
        assert_eq!(format_float32(1e20), "100000000000000000000");
        assert_eq!(format_float32(1e21), "1e+21");
        assert_eq!(format_float32(-3.5e30), "-3.5e+30");
        for f in [0.7f32, 1e-7, 123.456, 1e21, 3.4028235e38, f32::from_bits(1)] {
            assert_eq!(parse_float32(&format_float32(f)), Ok(f));
        }
    }

    #[test]
    fn json_strings_escape_like_go() {
        assert_eq!(json_string("<|im_end|>"), r#""\u003c|im_end|\u003e""#);
        assert_eq!(json_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            json_string("\n\r\t\u{8}\u{c}\u{1}"),
            r#""\n\r\t\b\f\u0001""#
        );
        assert_eq!(json_string("&\u{2028}é"), "\"\\u0026\\u2028é\"");
    }

    #[test]
    fn is_print_matches_go_categories() {
        for c in [
            'a', 'Z', '0', '#', ' ', '"', 'é', '中', '\u{301}', '€', '😀', '\u{fffd}',
        ] {
            assert!(is_print(c), "{c:?}");
        }
        for c in [
            '\t', '\n', '\r', '\u{0}', '\u{7f}', '\u{85}', '\u{a0}', '\u{ad}', '\u{200b}',
            '\u{200d}', '\u{2028}', '\u{feff}', '\u{e000}',
        ] {
            assert!(!is_print(c), "{c:?}");
        }
    }
}
