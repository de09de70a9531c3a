//! The lexer (Go's `text/template/parse/lex.go`): text, delimiters with `-` trim markers,
//! comments, and the tokens inside actions.

use super::GoTemplateError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Ident(String),
    Keyword(&'static str),
    Field(String),
    Variable(String),
    Dot,
    Str(String),
    Num(String),
    Char(String),
    Bool(bool),
    Nil,
    Pipe,
    Declare,
    Assign,
    LParen,
    RParen,
    Comma,
    Space,
}

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    toks: Vec<(Tok, usize)>,
    paren_depth: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Lexer<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, GoTemplateError> {
        Err(GoTemplateError {
            line: self.line,
            msg: msg.into(),
        })
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn push(&mut self, t: Tok, line: usize) {
        self.toks.push((t, line));
    }

    /// A lexer over the template text `src`.
    pub(super) fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            toks: Vec::new(),
            paren_depth: 0,
        }
    }

    /// Every token with its 1-based line.
    pub(super) fn run(mut self) -> Result<Vec<(Tok, usize)>, GoTemplateError> {
        let mut trim_next = false;
        loop {
            // Text up to the next "{{".
            let start = self.pos;
            let start_line = self.line;
            let idx = self.rest().find("{{");
            let end = idx.map_or(self.src.len(), |i| self.pos + i);
            let mut text = &self.src[start..end];
            while self.pos < end {
                self.bump();
            }
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let left_trim = idx.is_some()
                && self.src[end + 2..].starts_with('-')
                && self.src[end + 3..].starts_with(is_space);
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), start_line);
            }
            if idx.is_none() {
                return Ok(self.toks);
            }
            // The left delimiter.
            self.pos += 2;
            if left_trim {
                self.pos += 2;
                if self.src[self.pos - 1..].starts_with('\n') {
                    self.line += 1;
                }
            }
            // A comment?
            if self.rest().starts_with("/*") {
                let Some(close) = self.rest().find("*/") else {
                    return self.err("unclosed comment");
                };
                let stop = self.pos + close + 2;
                while self.pos < stop {
                    self.bump();
                }
                let rest = self.rest();
                trim_next = if rest.starts_with(is_space) && rest[1..].starts_with("-}}") {
                    self.bump();
                    self.pos += 3;
                    true
                } else if self.rest().starts_with("}}") {
                    self.pos += 2;
                    false
                } else {
                    return self.err("comment ends before closing delimiter");
                };
                continue;
            }
            self.push(Tok::LeftDelim, self.line);
            trim_next = self.inside_action()?;
        }
    }

    /// Lexes one action; returns whether it ended with a right trim marker.
    fn inside_action(&mut self) -> Result<bool, GoTemplateError> {
        self.paren_depth = 0;
        loop {
            let rest = self.rest();
            let line = self.line;
            if rest.is_empty() {
                return self.err("unclosed action");
            }
            // Right delimiter, possibly with a trim marker (" -}}").
            if let Some(after) = rest.strip_prefix(is_space)
                && after.starts_with("-}}")
            {
                if self.paren_depth > 0 {
                    return self.err("unclosed left paren");
                }
                self.bump();
                self.pos += 3;
                self.push(Tok::RightDelim, line);
                return Ok(true);
            }
            if rest.starts_with("}}") {
                if self.paren_depth > 0 {
                    return self.err("unclosed left paren");
                }
                self.pos += 2;
                self.push(Tok::RightDelim, line);
                return Ok(false);
            }
            let Some(c) = self.peek() else {
                return self.err("unclosed action");
            };
            match c {
                c if is_space(c) => {
                    // A run of spaces; the last one stays if it starts a " -}}" trim marker.
                    let run = rest.len() - rest.trim_start_matches(is_space).len();
                    let keep = usize::from(rest[run..].starts_with("-}}"));
                    for _ in 0..run - keep {
                        self.bump();
                    }
                    if run > keep {
                        self.push(Tok::Space, line);
                    }
                }
                '=' => {
                    self.bump();
                    self.push(Tok::Assign, line);
                }
                ':' => {
                    self.bump();
                    if self.bump() != Some('=') {
                        return self.err("expected :=");
                    }
                    self.push(Tok::Declare, line);
                }
                '|' => {
                    self.bump();
                    self.push(Tok::Pipe, line);
                }
                '"' => {
                    let s = self.quoted()?;
                    self.push(Tok::Str(s), line);
                }
                '`' => {
                    self.bump();
                    let Some(end) = self.rest().find('`') else {
                        return self.err("unterminated raw quoted string");
                    };
                    let s = self.rest()[..end].to_string();
                    for _ in 0..=s.chars().count() {
                        self.bump();
                    }
                    self.push(Tok::Str(s), line);
                }
                '\'' => {
                    self.bump();
                    let mut s = String::new();
                    loop {
                        match self.bump() {
                            Some('\\') => {
                                s.push('\\');
                                if let Some(c) = self.bump() {
                                    s.push(c);
                                }
                            }
                            Some('\'') => break,
                            Some('\n') | None => {
                                return self.err("unterminated character constant");
                            }
                            Some(c) => s.push(c),
                        }
                    }
                    self.push(Tok::Char(s), line);
                }
                '$' => {
                    self.bump();
                    let name: String = self.take_while(is_alnum);
                    self.push(Tok::Variable(format!("${name}")), line);
                    self.field_chain(line)?;
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        let n = self.number()?;
                        self.push(Tok::Num(n), line);
                    } else if next.is_some_and(is_alnum) {
                        self.field_chain(line)?;
                    } else {
                        self.bump();
                        self.push(Tok::Dot, line);
                    }
                }
                '+' | '-' | '0'..='9' => {
                    let n = self.number()?;
                    self.push(Tok::Num(n), line);
                }
                '(' => {
                    self.bump();
                    self.paren_depth += 1;
                    self.push(Tok::LParen, line);
                }
                ')' => {
                    self.bump();
                    if self.paren_depth == 0 {
                        return self.err("unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.push(Tok::RParen, line);
                    self.field_chain(line)?;
                }
                ',' => {
                    self.bump();
                    self.push(Tok::Comma, line);
                }
                c if is_alnum(c) => {
                    let word = self.take_while(is_alnum);
                    let tok = match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Ident(word.clone()),
                        },
                    };
                    self.push(tok, line);
                    self.field_chain(line)?;
                }
                c => return self.err(format!("unrecognized character in action: {c:?}")),
            }
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let mut s = String::new();
        while let Some(c) = self.peek().filter(|&c| f(c)) {
            s.push(c);
            self.bump();
        }
        s
    }

    /// `.Name` continuations directly after an operand.
    fn field_chain(&mut self, line: usize) -> Result<(), GoTemplateError> {
        while self.rest().starts_with('.') && self.rest()[1..].starts_with(is_alnum) {
            self.bump();
            let name = self.take_while(is_alnum);
            if name.starts_with(|c: char| c.is_ascii_digit()) {
                return self.err(format!("bad field name .{name}"));
            }
            self.push(Tok::Field(name), line);
        }
        Ok(())
    }

    fn number(&mut self) -> Result<String, GoTemplateError> {
        let s =
            self.take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '_'));
        let body = s.trim_start_matches(['+', '-']);
        let ok = !body.is_empty()
            && (crate::template::golang::parse_int(&s.replace('_', "")).is_some()
                || crate::template::golang::parse_float32(&s).is_ok()
                || (body.len() > 2
                    && body.starts_with("0x")
                    && body[2..].chars().all(|c| c.is_ascii_hexdigit() || c == '_')));
        if ok {
            Ok(s)
        } else {
            self.err(format!("bad number syntax: {s:?}"))
        }
    }

    fn quoted(&mut self) -> Result<String, GoTemplateError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('\\') => match self.bump() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some('\\') => s.push('\\'),
                    Some('"') => s.push('"'),
                    Some('\'') => s.push('\''),
                    Some('a') => s.push('\u{7}'),
                    Some('b') => s.push('\u{8}'),
                    Some('f') => s.push('\u{c}'),
                    Some('v') => s.push('\u{b}'),
                    Some(c @ ('x' | 'u' | 'U' | '0'..='7')) => {
                        let len = match c {
                            'x' => 2,
                            'u' => 4,
                            'U' => 8,
                            _ => 2,
                        };
                        let digits: String = (0..len).filter_map(|_| self.bump()).collect();
                        let code = if c.is_ascii_digit() {
                            u32::from_str_radix(&format!("{c}{digits}"), 8).ok()
                        } else {
                            u32::from_str_radix(&digits, 16).ok()
                        };
                        match code.and_then(char::from_u32) {
                            Some(ch) => s.push(ch),
                            None => return self.err("invalid escape in quoted string"),
                        }
                    }
                    _ => return self.err("invalid escape in quoted string"),
                },
                Some('"') => return Ok(s),
                Some('\n') | None => return self.err("unterminated quoted string"),
                Some(c) => s.push(c),
            }
        }
    }
}
