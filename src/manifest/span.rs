//! Source spans for manifest values and error rendering with the offending snippet.

use std::ops::Range;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A manifest value with the byte range it came from, for errors that point at it.
#[derive(Debug, Clone)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Byte range in the manifest text (empty when the value was synthesized).
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    /// A value with no source location (defaults, values from the command line).
    pub fn synthetic(value: T) -> Self {
        Sp { value, span: 0..0 }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = toml::Spanned::<T>::deserialize(d)?;
        Ok(Sp {
            span: s.span(),
            value: s.into_inner(),
        })
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// Formats `msg` as `file:line:col: msg` followed by the source line and a caret underline.
pub fn render(file: &str, text: &str, span: &Range<usize>, msg: &str) -> String {
    if span.is_empty() && span.start == 0 {
        return format!("{file}: {msg}");
    }
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line_no = text[..start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let line = &text[line_start..line_end];
    let width = text[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let gutter = line_no.to_string().len();
    let pad = " ".repeat(gutter);
    format!(
        "{file}:{line_no}:{col}: {msg}\n{pad} |\n{line_no} | {line}\n{pad} | {}{}",
        " ".repeat(col - 1),
        "^".repeat(width)
    )
}

/// Appends "did you mean `x`?" to a serde message about an unknown field or variant.
pub fn did_you_mean(msg: &str) -> String {
    let Some(rest) = msg
        .strip_prefix("unknown field `")
        .or_else(|| msg.strip_prefix("unknown variant `"))
    else {
        return msg.to_string();
    };
    let Some(end) = rest.find('`') else {
        return msg.to_string();
    };
    let unknown = &rest[..end];
    let candidates: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
    match closest(unknown, candidates.iter().copied()) {
        Some(best) => format!("{}: did you mean `{best}`?", msg.trim_end()),
        None => msg.to_string(),
    }
}

pub use crate::suggest::closest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_the_span() {
        let text = "[project]\nname = \"x\"\nquants = [\"q9\"]\n";
        let start = text.find("\"q9\"").unwrap();
        let out = render("tinylm.toml", text, &(start..start + 4), "unknown quant");
        assert_eq!(
            out,
            "tinylm.toml:3:11: unknown quant\n  |\n3 | quants = [\"q9\"]\n  |           ^^^^"
        );
    }

    #[test]
    fn did_you_mean_suggests_close_fields() {
        let m = "unknown field `qaunts`, expected one of `source`, `quants`, `template`";
        assert!(
            did_you_mean(m).ends_with("did you mean `quants`?"),
            "{}",
            did_you_mean(m)
        );
        let m = "unknown variant `lama3`, expected `gpt2` or `llama3`";
        assert!(did_you_mean(m).ends_with("did you mean `llama3`?"));
        let m = "unknown field `zzzzzz`, expected `source`";
        assert_eq!(did_you_mean(m), m);
    }
}
