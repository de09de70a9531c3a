//! Ollama Modelfiles: a deterministic writer and a parser that follows Ollama's own.
//!
//! The parser is a rune-for-rune port of the state machine in Ollama's `parser/parser.go`
//! (see `docs/ollama.md`), including its error texts, so every Modelfile tinylm writes is
//! checked against the grammar Ollama really uses. The writer only emits what that parser reads
//! back unchanged: values are left unquoted when that is safe and wrapped in `"""` otherwise;
//! a value no quoting can carry (a `"""` inside a multi-line value, a character the parser
//! silently drops) is an error, never a silently broken file.

use std::fmt;

use super::golang;
use super::params::{self, ParamError, ParamValue};

/// An Ollama Modelfile as tinylm writes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Modelfile {
    /// `FROM`: a GGUF path (relative to the Modelfile's directory) or a model name.
    pub from: String,
    /// `TEMPLATE`: a Go text/template.
    pub template: Option<String>,
    /// `SYSTEM`: the default system prompt.
    pub system: Option<String>,
    /// `PARAMETER` lines in order; each name at most once (`stop` holds every stop string).
    pub parameters: Vec<(String, ParamValue)>,
    /// `LICENSE` texts, one layer each.
    pub licenses: Vec<String>,
    /// `MESSAGE` lines as (role, content); role is `system`, `user` or `assistant`.
    pub messages: Vec<(String, String)>,
}

/// The roles `MESSAGE` accepts.
pub const MESSAGE_ROLES: [&str; 3] = ["system", "user", "assistant"];

/// Why a value cannot be written into a Modelfile.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuoteError {
    /// Ollama's parser silently drops non-printable runes (except tab and newlines).
    #[error(
        "contains U+{:04X} at byte {at}, which Ollama's Modelfile parser silently drops (it keeps only printable characters, spaces, tabs and newlines); remove it",
        *ch as u32
    )]
    NonPrintable {
        /// The character.
        ch: char,
        /// Its byte offset in the value.
        at: usize,
    },
    /// The value needs `"""` quoting but contains `"""`, which would end the value early.
    #[error(
        "contains \"\"\" and needs \"\"\"-quoting (it spans lines, starts with a quote or has surrounding spaces); a Modelfile cannot represent that, because the parser ends the value at the first line ending in \"\"\"; rewrite the text without \"\"\""
    )]
    TripleQuote,
}

/// Why a Modelfile could not be written or read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelfileError {
    /// A value cannot be represented.
    #[error("Modelfile {field}: {source}")]
    Quote {
        /// Which instruction (e.g. `TEMPLATE`, `PARAMETER stop`).
        field: String,
        /// What is wrong with it.
        source: QuoteError,
    },
    /// A PARAMETER is invalid.
    #[error("Modelfile: {0}")]
    Param(#[from] ParamError),
    /// `FROM` is empty.
    #[error("Modelfile: FROM is empty; point it at the GGUF file")]
    EmptyFrom,
    /// A MESSAGE role Ollama rejects.
    #[error(
        "Modelfile: MESSAGE role `{0}` is not allowed; Ollama accepts only \"system\", \"user\" or \"assistant\""
    )]
    Role(String),
    /// Ollama's parser rejects the text.
    #[error("Modelfile: {0}")]
    Parse(#[from] ParseError),
    /// The text uses an instruction this struct does not model.
    #[error(
        "Modelfile: {0} is valid for Ollama but not supported in a tinylm Modelfile (only FROM, TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE)"
    )]
    Unsupported(String),
}

impl From<ModelfileError> for crate::Error {
    fn from(e: ModelfileError) -> Self {
        crate::Error::Build(e.to_string())
    }
}

impl Modelfile {
    /// A Modelfile with only `FROM`.
    pub fn new(from: impl Into<String>) -> Self {
        Modelfile {
            from: from.into(),
            ..Default::default()
        }
    }

    /// Renders the Modelfile text: instructions in the fixed order FROM, TEMPLATE, SYSTEM,
    /// PARAMETER…, LICENSE…, MESSAGE…, one per line, `stop` repeated once per string.
    /// Deterministic; fails rather than writing anything Ollama would read differently.
    pub fn render(&self) -> Result<String, ModelfileError> {
        let mut out = String::new();
        if self.from.is_empty() {
            return Err(ModelfileError::EmptyFrom);
        }
        line(&mut out, "FROM", &self.from)?;
        if let Some(t) = &self.template {
            line(&mut out, "TEMPLATE", t)?;
        }
        if let Some(s) = &self.system {
            line(&mut out, "SYSTEM", s)?;
        }
        for (i, (name, value)) in self.parameters.iter().enumerate() {
            params::check_typed(name, value)?;
            if self.parameters[..i].iter().any(|(n, _)| n == name) {
                return Err(ParamError::Invalid {
                    name: name.clone(),
                    msg:
                        "given twice; give each parameter once (put every stop string in one list)"
                            .into(),
                }
                .into());
            }
            for text in value.modelfile_texts() {
                let field = format!("PARAMETER {name}");
                line(&mut out, &field, &text)?;
            }
        }
        for l in &self.licenses {
            line(&mut out, "LICENSE", l)?;
        }
        for (role, content) in &self.messages {
            if !MESSAGE_ROLES.contains(&role.as_str()) {
                return Err(ModelfileError::Role(role.clone()));
            }
            line(&mut out, &format!("MESSAGE {role}"), content)?;
        }
        Ok(out)
    }

    /// Parses Modelfile text with Ollama's rules into this struct. Parameters are typed as
    /// `ollama create` types them; deprecated ones are dropped (Ollama ignores them too);
    /// instructions outside FROM/TEMPLATE/SYSTEM/PARAMETER/LICENSE/MESSAGE, or several FROM
    /// lines, are [`ModelfileError::Unsupported`].
    pub fn parse(input: &[u8]) -> Result<Modelfile, ModelfileError> {
        let commands = parse_commands(input)?;
        let mut mf = Modelfile::default();
        let mut have_from = false;
        for c in commands {
            match c.name.as_str() {
                "model" => {
                    if have_from {
                        return Err(ModelfileError::Unsupported("a second FROM".into()));
                    }
                    have_from = true;
                    mf.from = c.args;
                }
                "template" => mf.template = Some(c.args),
                "system" => mf.system = Some(c.args),
                "license" => mf.licenses.push(c.args),
                "message" => {
                    let (role, content) = c.args.split_once(": ").unwrap_or((&c.args, ""));
                    mf.messages.push((role.to_string(), content.to_string()));
                }
                "adapter" | "draft" | "renderer" | "parser" | "requires" => {
                    return Err(ModelfileError::Unsupported(c.name.to_uppercase()));
                }
                name => {
                    if params::DEPRECATED_PARAMETERS.contains(&name) {
                        tracing::warn!("parameter {name} is deprecated; Ollama ignores it");
                        continue;
                    }
                    let value = params::parse_modelfile_value(name, &c.args)?;
                    match mf.parameters.iter_mut().find(|(n, _)| n == name) {
                        Some((_, ParamValue::List(items))) => {
                            if let ParamValue::List(more) = value {
                                items.extend(more);
                            }
                        }
                        Some((_, old)) => *old = value,
                        None => mf.parameters.push((name.to_string(), value)),
                    }
                }
            }
        }
        Ok(mf)
    }
}

impl fmt::Display for Modelfile {
    /// The rendered text, or a description of why it cannot be rendered.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.render() {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "<invalid Modelfile: {e}>"),
        }
    }
}

fn line(out: &mut String, field: &str, value: &str) -> Result<(), ModelfileError> {
    let v = quote(value).map_err(|source| ModelfileError::Quote {
        field: field.to_string(),
        source,
    })?;
    out.push_str(field);
    out.push(' ');
    out.push_str(&v);
    out.push('\n');
    Ok(())
}

/// Encodes one instruction value: unquoted when the parser reads it back verbatim (one line,
/// no surrounding whitespace, not starting with `"`, not empty), else `"""value"""`.
pub fn quote(value: &str) -> Result<String, QuoteError> {
    if let Some((at, ch)) = value
        .char_indices()
        .find(|&(_, c)| !(golang::is_print(c) || matches!(c, '\t' | '\n' | '\r')))
    {
        return Err(QuoteError::NonPrintable { ch, at });
    }
    let bare_ok = !value.is_empty()
        && !value.contains(['\n', '\r'])
        && value.trim() == value
        && !value.starts_with('"');
    if bare_ok {
        return Ok(value.to_string());
    }
    if value.contains(r#"""""#) {
        return Err(QuoteError::TripleQuote);
    }
    Ok(format!(r#""""{value}""""#))
}

/// One instruction as Ollama's parser produces it (`parser.Command`): `name` is `model` for
/// FROM, the parameter name for PARAMETER, otherwise the lower-case instruction; for MESSAGE,
/// `args` is `"<role>: <content>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Command {
    /// Command name.
    pub name: String,
    /// Its value.
    pub args: String,
}

/// An error from Ollama's Modelfile parser, with Ollama's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `ParserError` with a line number.
    #[error("(line {line}): {msg}")]
    Line {
        /// 1-based line (Ollama counts `\r` and `\n` separately).
        line: usize,
        /// Ollama's message.
        msg: &'static str,
    },
    /// `io.ErrUnexpectedEOF`, wrapped with the pending buffer when raised mid-file.
    #[error("unexpected EOF{}", buffer.as_deref().map(|b| format!(": {b}")).unwrap_or_default())]
    UnexpectedEof {
        /// The text collected when the error was raised (mid-file only).
        buffer: Option<String>,
    },
    /// No FROM instruction.
    #[error("no FROM line")]
    NoFrom,
}

const INVALID_COMMAND: &str = "command must be one of \"from\", \"license\", \"template\", \"system\", \"adapter\", \"draft\", \"renderer\", \"parser\", \"parameter\", \"message\", or \"requires\"";
const INVALID_ROLE: &str = "message role must be one of \"system\", \"user\", or \"assistant\"";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Nil,
    Name,
    Value,
    Parameter,
    Message,
    Comment,
}

enum RuneError {
    InvalidCommand,
    UnexpectedEof,
}

/// Decodes like `unicode.BOMOverride(unicode.UTF8.NewDecoder())`: a UTF-8 or UTF-16 BOM selects
/// the encoding (and is dropped); otherwise UTF-8, invalid bytes becoming U+FFFD.
fn decode(input: &[u8]) -> String {
    let utf16 = |bytes: &[u8], be: bool| -> String {
        let units = bytes.chunks(2).map(|c| match (c, be) {
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    match input {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, true),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, false),
        _ => String::from_utf8_lossy(input).into_owned(),
    }
}

fn is_alpha(r: char) -> bool {
    r.is_ascii_alphabetic()
}

fn is_space(r: char) -> bool {
    r == ' ' || r == '\t'
}

fn is_newline(r: char) -> bool {
    r == '\r' || r == '\n'
}

fn is_valid_command(cmd: &str) -> bool {
    matches!(
        cmd.to_lowercase().as_str(),
        "from"
            | "license"
            | "template"
            | "system"
            | "adapter"
            | "draft"
            | "renderer"
            | "parser"
            | "parameter"
            | "message"
            | "requires"
    )
}

/// `parseRuneForState`: the next state and the rune to keep (`None` for Go's 0).
fn parse_rune(r: char, state: State) -> Result<(State, Option<char>), RuneError> {
    Ok(match state {
        State::Nil => match r {
            '#' => (State::Comment, None),
            r if is_space(r) || is_newline(r) => (State::Nil, None),
            r => (State::Name, Some(r)),
        },
        State::Name => match r {
            r if is_alpha(r) => (State::Name, Some(r)),
            r if is_space(r) => (State::Value, None),
            _ => return Err(RuneError::InvalidCommand),
        },
        State::Value => match r {
            r if is_newline(r) || is_space(r) => (State::Nil, Some(r)),
            r => (State::Value, Some(r)),
        },
        State::Parameter => match r {
            r if is_alpha(r) || r.is_ascii_digit() || r == '_' => (State::Parameter, Some(r)),
            r if is_space(r) => (State::Value, None),
            _ => return Err(RuneError::UnexpectedEof),
        },
        State::Message => match r {
            r if is_alpha(r) => (State::Message, Some(r)),
            r if is_space(r) => (State::Value, None),
            _ => return Err(RuneError::UnexpectedEof),
        },
        State::Comment => match r {
            r if is_newline(r) => (State::Nil, None),
            _ => (State::Comment, None),
        },
    })
}

/// `unquote`: strips `"""…"""` or `"…"`; `None` while a quoted value is still open.
fn unquote(s: &str) -> Option<&str> {
    if let Some(rest) = s.strip_prefix(r#"""""#) {
        return (s.len() >= 6 && s.ends_with(r#"""""#)).then(|| &rest[..rest.len() - 3]);
    }
    if let Some(rest) = s.strip_prefix('"') {
        return (s.len() >= 2 && s.ends_with('"')).then(|| &rest[..rest.len() - 1]);
    }
    Some(s)
}

/// Parses Modelfile bytes exactly like Ollama's `parser.ParseFile`, returning its commands.
pub fn parse_commands(input: &[u8]) -> Result<Vec<Command>, ParseError> {
    let text = decode(input);
    let mut cmd = Command::default();
    let mut curr = State::Nil;
    let mut line = 1usize;
    let mut b = String::new();
    let mut role = String::new();
    let mut commands = Vec::new();

    for r in text.chars() {
        if is_newline(r) {
            line += 1;
        }
        let (mut next, kept) = match parse_rune(r, curr) {
            Ok(x) => x,
            Err(RuneError::UnexpectedEof) => {
                return Err(ParseError::UnexpectedEof {
                    buffer: Some(b.clone()),
                });
            }
            Err(RuneError::InvalidCommand) => {
                return Err(ParseError::Line {
                    line,
                    msg: INVALID_COMMAND,
                });
            }
        };
        if next != curr {
            match curr {
                State::Name => {
                    if !is_valid_command(&b) {
                        return Err(ParseError::Line {
                            line,
                            msg: INVALID_COMMAND,
                        });
                    }
                    let s = b.to_lowercase();
                    match s.as_str() {
                        "from" => cmd.name = "model".into(),
                        "parameter" => next = State::Parameter,
                        "message" => {
                            next = State::Message;
                            cmd.name = s;
                        }
                        _ => cmd.name = s,
                    }
                }
                State::Parameter => cmd.name = b.clone(),
                State::Message => {
                    if !MESSAGE_ROLES.contains(&b.as_str()) {
                        return Err(ParseError::Line {
                            line,
                            msg: INVALID_ROLE,
                        });
                    }
                    role = b.clone();
                }
                State::Comment | State::Nil => {}
                State::Value => {
                    let value = unquote(b.trim());
                    let Some(value) = value.filter(|_| !is_space(r)) else {
                        // Still inside a quoted value, or a space inside an unquoted one: the
                        // rune is kept verbatim (tabs and newlines included).
                        b.push(r);
                        continue;
                    };
                    let mut s = value.to_string();
                    if !role.is_empty() {
                        s = format!("{role}: {s}");
                        role.clear();
                    }
                    cmd.args = s;
                    commands.push(cmd.clone());
                }
            }
            b.clear();
            curr = next;
        }
        if let Some(c) = kept
            && golang::is_print(c)
        {
            b.push(c);
        }
    }

    match curr {
        State::Comment | State::Nil => {}
        State::Value => {
            let Some(value) = unquote(b.trim()) else {
                return Err(ParseError::UnexpectedEof { buffer: None });
            };
            let mut s = value.to_string();
            if !role.is_empty() {
                s = format!("{role}: {s}");
            }
            cmd.args = s;
            commands.push(cmd);
        }
        _ => return Err(ParseError::UnexpectedEof { buffer: None }),
    }

    if commands.iter().any(|c| c.name == "model") {
        Ok(commands)
    } else {
        Err(ParseError::NoFrom)
    }
}

#[cfg(test)]
mod tests;
