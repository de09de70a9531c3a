//! A parser for Go `text/template`, enough to lint Ollama TEMPLATEs.
//!
//! It follows Go's lexer and parser (delimiters with `-` trim markers, comments, actions,
//! pipelines with `|`, variables with `:=`/`=`, `if`/`else if`/`range`/`with`/`define`/`block`/
//! `template`/`break`/`continue`/`end`, parenthesised pipelines and field chains), rejects what
//! Go's `template.Parse` rejects (unbalanced blocks, undefined functions and variables, bad
//! literals), and then checks every field reference against what Ollama passes to the template
//! in the mode the template uses (notes/ollama.md §2.1).

use std::fmt;

pub mod exec;

/// A parse error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct GoTemplateError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// One operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.` (the current value).
    Dot,
    /// `.A.B`.
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the root).
    Var(String, Vec<String>),
    /// A function name.
    Func(String),
    /// A string literal (unescaped).
    Str(String),
    /// A number literal, as written.
    Num(String),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `( pipeline )` followed by an optional field chain.
    Paren(Box<Pipe>, Vec<String>),
}

/// A command: operands, the first of which may be a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    /// The operands.
    pub args: Vec<Arg>,
}

/// A pipeline with optional variable declarations.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    /// 1-based line.
    pub line: usize,
    /// Declared or assigned variables (with `$`).
    pub decl: Vec<String>,
    /// `=` instead of `:=`.
    pub is_assign: bool,
    /// Commands separated by `|`.
    pub cmds: Vec<Cmd>,
}

/// A template node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Literal text (after trim markers are applied).
    Text(String),
    /// `{{ pipeline }}`.
    Action(Pipe),
    /// `{{ if }}`, `{{ range }}` or `{{ with }}`.
    Branch {
        /// Which control.
        kind: BranchKind,
        /// Its pipeline.
        pipe: Pipe,
        /// The body.
        list: Vec<Node>,
        /// The `{{ else }}` body (an `else if` is a nested branch).
        else_list: Option<Vec<Node>>,
    },
    /// `{{ template "name" pipeline }}`.
    Template {
        /// Template name.
        name: String,
        /// Optional argument.
        pipe: Option<Pipe>,
        /// 1-based line.
        line: usize,
    },
    /// `{{ break }}`.
    Break,
    /// `{{ continue }}`.
    Continue,
}

/// The three control structures with a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchKind {
    /// `if`.
    If,
    /// `range`.
    Range,
    /// `with`.
    With,
}

/// How Ollama executes a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The template mentions `.Messages`: executed once with the whole conversation.
    Messages,
    /// Executed once per turn with `.System`, `.Prompt`, `.Response`.
    Legacy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Messages => "Messages mode",
            Mode::Legacy => "legacy (.System/.Prompt/.Response) mode",
        })
    }
}

/// A parsed template: the main body plus `define`d/`block` templates.
#[derive(Debug, Clone, PartialEq)]
pub struct GoTemplate {
    /// The main template.
    pub root: Vec<Node>,
    /// Named templates from `define` and `block`.
    pub defines: Vec<(String, Vec<Node>)>,
}

/// Go's builtin functions plus the ones Ollama registers.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne",
    "json",
    "currentDate",
    "yesterdayDate",
    "toTypeScriptType",
];

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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

struct Lexer<'a> {
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

    fn run(mut self) -> Result<Vec<(Tok, usize)>, GoTemplateError> {
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
            && (super::golang::parse_int(&s.replace('_', "")).is_some()
                || super::golang::parse_float32(&s).is_ok()
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

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vars: Vec<String>,
    defines: Vec<(String, Vec<Node>)>,
    range_depth: usize,
}

/// What ended a list.
enum ListEnd {
    End,
    Else(usize),
    Eof,
}

impl Parser {
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(1, |t| t.1)
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T, GoTemplateError> {
        Err(GoTemplateError {
            line: self.line(),
            msg: msg.into(),
        })
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    /// Next token that is not a space.
    fn next_ns(&mut self) -> Option<Tok> {
        loop {
            match self.next() {
                Some(Tok::Space) => continue,
                t => return t,
            }
        }
    }

    fn peek_ns(&mut self) -> Option<Tok> {
        let save = self.pos;
        let t = self.next_ns();
        self.pos = save;
        t
    }

    fn parse_list(&mut self) -> Result<(Vec<Node>, ListEnd), GoTemplateError> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, ListEnd::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::LeftDelim) => {
                    let line = self.line();
                    match self.peek_ns() {
                        Some(Tok::Keyword("end")) => {
                            self.next_ns();
                            self.expect_right("end")?;
                            return Ok((nodes, ListEnd::End));
                        }
                        Some(Tok::Keyword("else")) => {
                            self.next_ns();
                            return Ok((nodes, ListEnd::Else(line)));
                        }
                        _ => {
                            if let Some(n) = self.action()? {
                                nodes.push(n);
                            }
                        }
                    }
                }
                Some(t) => return self.err(format!("unexpected {t:?}")),
            }
        }
    }

    fn expect_right(&mut self, ctx: &str) -> Result<(), GoTemplateError> {
        match self.next_ns() {
            Some(Tok::RightDelim) => Ok(()),
            Some(t) => self.err(format!("unexpected {t:?} in {ctx}")),
            None => self.err(format!("unclosed action in {ctx}")),
        }
    }

    fn action(&mut self) -> Result<Option<Node>, GoTemplateError> {
        let line = self.line();
        match self.peek_ns() {
            Some(Tok::Keyword(k)) => {
                self.next_ns();
                match k {
                    "if" => self.branch(BranchKind::If).map(Some),
                    "range" => self.branch(BranchKind::Range).map(Some),
                    "with" => self.branch(BranchKind::With).map(Some),
                    "break" | "continue" => {
                        if self.range_depth == 0 {
                            return self.err(format!("{{{{{k}}}}} outside {{{{range}}}}"));
                        }
                        self.expect_right(k)?;
                        Ok(Some(if k == "break" {
                            Node::Break
                        } else {
                            Node::Continue
                        }))
                    }
                    "template" => {
                        let name = self.template_name("template")?;
                        let pipe = if matches!(self.peek_ns(), Some(Tok::RightDelim)) {
                            self.next_ns();
                            None
                        } else {
                            Some(self.pipeline("template", false)?)
                        };
                        Ok(Some(Node::Template { name, pipe, line }))
                    }
                    "define" => {
                        let name = self.template_name("define")?;
                        self.expect_right("define")?;
                        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                        let (list, end) = self.parse_list()?;
                        self.vars = saved;
                        if !matches!(end, ListEnd::End) {
                            return self.err(format!("unexpected EOF in define {name:?}"));
                        }
                        self.defines.push((name, list));
                        Ok(None)
                    }
                    "block" => {
                        let name = self.template_name("block")?;
                        let pipe = self.pipeline("block", false)?;
                        let saved = std::mem::replace(&mut self.vars, vec!["$".into()]);
                        let (list, end) = self.parse_list()?;
                        self.vars = saved;
                        if !matches!(end, ListEnd::End) {
                            return self.err(format!("unexpected EOF in block {name:?}"));
                        }
                        self.defines.push((name.clone(), list));
                        Ok(Some(Node::Template {
                            name,
                            pipe: Some(pipe),
                            line,
                        }))
                    }
                    other => self.err(format!("unexpected {{{{{other}}}}}")),
                }
            }
            _ => Ok(Some(Node::Action(self.pipeline("command", true)?))),
        }
    }

    fn template_name(&mut self, ctx: &str) -> Result<String, GoTemplateError> {
        match self.next_ns() {
            Some(Tok::Str(s)) => Ok(s),
            _ => self.err(format!(
                "unexpected token in {ctx}: the name must be a string"
            )),
        }
    }

    fn branch(&mut self, kind: BranchKind) -> Result<Node, GoTemplateError> {
        let mark = self.vars.len();
        let ctx = match kind {
            BranchKind::If => "if",
            BranchKind::Range => "range",
            BranchKind::With => "with",
        };
        let pipe = self.pipeline(ctx, true)?;
        if kind == BranchKind::Range {
            self.range_depth += 1;
        }
        let (list, end) = self.parse_list()?;
        if kind == BranchKind::Range {
            self.range_depth -= 1;
        }
        let else_list = match end {
            ListEnd::End => None,
            ListEnd::Eof => {
                return self.err(format!("unexpected EOF: {{{{{ctx}}}}} without {{{{end}}}}"));
            }
            ListEnd::Else(_) => {
                // `else if` / `else with` chain into a nested branch sharing our {{end}}.
                match self.peek_ns() {
                    Some(Tok::Keyword(k @ ("if" | "with")))
                        if kind != BranchKind::Range || k == "if" =>
                    {
                        self.next_ns();
                        let nested_kind = if k == "if" {
                            BranchKind::If
                        } else {
                            BranchKind::With
                        };
                        let nested = self.branch(nested_kind)?;
                        Some(vec![nested])
                    }
                    _ => {
                        self.expect_right("else")?;
                        let (list, end) = self.parse_list()?;
                        match end {
                            ListEnd::End => {}
                            ListEnd::Else(_) => return self.err("expected end; found {{else}}"),
                            ListEnd::Eof => {
                                return self.err(format!(
                                    "unexpected EOF: {{{{{ctx}}}}} without {{{{end}}}}"
                                ));
                            }
                        }
                        Some(list)
                    }
                }
            }
        };
        self.vars.truncate(mark);
        Ok(Node::Branch {
            kind,
            pipe,
            list,
            else_list,
        })
    }

    /// Parses `[decl :=] cmd | cmd …` up to the closing `}}` (consumed).
    fn pipeline(&mut self, ctx: &str, allow_decl: bool) -> Result<Pipe, GoTemplateError> {
        let line = self.line();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: $x := / $x = / $i, $v :=
        let save = self.pos;
        let mut vars = Vec::new();
        loop {
            match (self.next_ns(), self.peek_ns()) {
                (Some(Tok::Variable(v)), Some(Tok::Declare | Tok::Assign | Tok::Comma))
                    if !matches!(self.peek(), Some(Tok::Field(_))) =>
                {
                    vars.push(v);
                    match self.next_ns() {
                        Some(Tok::Comma) => {
                            if ctx != "range" || vars.len() > 1 {
                                return self.err(format!("too many declarations in {ctx}"));
                            }
                            continue;
                        }
                        Some(Tok::Declare) => {
                            decl = vars;
                            break;
                        }
                        Some(Tok::Assign) => {
                            decl = vars;
                            is_assign = true;
                            break;
                        }
                        _ => return self.err(format!("bad variable declaration in {ctx}")),
                    }
                }
                _ => {
                    self.pos = save;
                    break;
                }
            }
        }
        if !decl.is_empty() {
            if !allow_decl {
                return self.err(format!("variable declaration not allowed in {ctx}"));
            }
            if is_assign {
                for v in &decl {
                    if !self.vars.contains(v) {
                        return self.err(format!("undefined variable {v:?}"));
                    }
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command(ctx)?;
            cmds.push(cmd);
            match self.next_ns() {
                Some(Tok::Pipe) => continue,
                Some(Tok::RightDelim) => break,
                Some(t) => return self.err(format!("unexpected {t:?} in {ctx}")),
                None => return self.err(format!("unclosed action in {ctx}")),
            }
        }
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe {
            line,
            decl,
            is_assign,
            cmds,
        })
    }

    /// Operands up to `|`, `)` or `}}` (not consumed).
    fn command(&mut self, ctx: &str) -> Result<Cmd, GoTemplateError> {
        let mut args = Vec::new();
        loop {
            match self.peek_ns() {
                None => return self.err(format!("unclosed action in {ctx}")),
                Some(Tok::Pipe | Tok::RightDelim | Tok::RParen) => break,
                _ => {}
            }
            let tok = self.next_ns();
            let arg = match tok {
                Some(Tok::Dot) => Arg::Dot,
                Some(Tok::Nil) => Arg::Nil,
                Some(Tok::Bool(b)) => Arg::Bool(b),
                Some(Tok::Num(n)) => Arg::Num(n),
                Some(Tok::Str(s)) | Some(Tok::Char(s)) => Arg::Str(s),
                Some(Tok::Field(f)) => {
                    let mut chain = vec![f];
                    chain.extend(self.fields());
                    Arg::Field(chain)
                }
                Some(Tok::Variable(v)) => {
                    if !self.vars.contains(&v) {
                        return self.err(format!("undefined variable {v:?}"));
                    }
                    let chain = self.fields();
                    Arg::Var(v, chain)
                }
                Some(Tok::Ident(name)) => {
                    if !FUNCTIONS.contains(&name.as_str()) {
                        return self.err(format!("function {name:?} not defined"));
                    }
                    if matches!(self.peek(), Some(Tok::Field(_))) {
                        return self.err(format!("unexpected . after term {name:?}"));
                    }
                    Arg::Func(name)
                }
                Some(Tok::LParen) => {
                    let inner = self.paren_pipeline(ctx)?;
                    let chain = self.fields();
                    Arg::Paren(Box::new(inner), chain)
                }
                Some(Tok::Keyword(k)) => {
                    return self.err(format!("unexpected keyword {k:?} in {ctx}"));
                }
                Some(t) => return self.err(format!("unexpected {t:?} in operand")),
                None => return self.err(format!("unclosed action in {ctx}")),
            };
            // Operands must be separated by spaces.
            if !matches!(
                self.peek(),
                Some(Tok::Space | Tok::Pipe | Tok::RightDelim | Tok::RParen) | None
            ) {
                return self.err(format!("missing space between operands in {ctx}"));
            }
            args.push(arg);
        }
        if args.is_empty() {
            return self.err(format!("missing value for {ctx}"));
        }
        if args.len() > 1
            && !matches!(
                args[0],
                Arg::Func(_) | Arg::Field(_) | Arg::Var(..) | Arg::Paren(..)
            )
        {
            return self.err(format!("can't give argument to non-function {:?}", args[0]));
        }
        Ok(Cmd { args })
    }

    fn paren_pipeline(&mut self, ctx: &str) -> Result<Pipe, GoTemplateError> {
        let line = self.line();
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command(ctx)?);
            match self.next_ns() {
                Some(Tok::Pipe) => continue,
                Some(Tok::RParen) => break,
                _ => return self.err("unclosed left paren"),
            }
        }
        Ok(Pipe {
            line,
            decl: vec![],
            is_assign: false,
            cmds,
        })
    }

    fn fields(&mut self) -> Vec<String> {
        let mut chain = Vec::new();
        while let Some(Tok::Field(f)) = self.peek() {
            chain.push(f.clone());
            self.pos += 1;
        }
        chain
    }
}

/// Parses a Go template the way `template.Parse` does.
pub fn parse(src: &str) -> Result<GoTemplate, GoTemplateError> {
    let toks = Lexer {
        src,
        pos: 0,
        line: 1,
        toks: Vec::new(),
        paren_depth: 0,
    }
    .run()?;
    let mut p = Parser {
        toks,
        pos: 0,
        vars: vec!["$".into()],
        defines: Vec::new(),
        range_depth: 0,
    };
    let (root, end) = p.parse_list()?;
    match end {
        ListEnd::Eof => {}
        ListEnd::End => return p.err("unexpected {{end}}"),
        ListEnd::Else(line) => {
            return Err(GoTemplateError {
                line,
                msg: "unexpected {{else}}".into(),
            });
        }
    }
    Ok(GoTemplate {
        root,
        defines: p.defines,
    })
}

impl GoTemplate {
    /// Every identifier (field names and variable names), like Ollama's `Template.Vars`.
    pub fn identifiers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self
            .root
            .iter()
            .chain(self.defines.iter().flat_map(|d| &d.1))
        {
            node_idents(n, &mut out);
        }
        out
    }

    /// The mode Ollama executes this template in.
    pub fn mode(&self) -> Mode {
        if self
            .identifiers()
            .iter()
            .any(|i| i.eq_ignore_ascii_case("messages"))
        {
            Mode::Messages
        } else {
            Mode::Legacy
        }
    }

    /// Whether Ollama appends `{{ .Response }}` (neither `.Messages` nor `.Response` used).
    pub fn gets_response_appended(&self) -> bool {
        !self
            .identifiers()
            .iter()
            .any(|i| i.eq_ignore_ascii_case("messages") || i.eq_ignore_ascii_case("response"))
    }
}

fn pipe_idents(p: &Pipe, out: &mut Vec<String>) {
    for c in &p.cmds {
        for a in &c.args {
            match a {
                Arg::Field(f) => out.extend(f.iter().cloned()),
                Arg::Var(v, f) => {
                    out.push(v.clone());
                    out.extend(f.iter().cloned());
                }
                Arg::Paren(inner, f) => {
                    pipe_idents(inner, out);
                    out.extend(f.iter().cloned());
                }
                _ => {}
            }
        }
    }
}

fn node_idents(n: &Node, out: &mut Vec<String>) {
    match n {
        Node::Action(p) => pipe_idents(p, out),
        Node::Branch {
            pipe,
            list,
            else_list,
            ..
        } => {
            pipe_idents(pipe, out);
            for n in list.iter().chain(else_list.iter().flatten()) {
                node_idents(n, out);
            }
        }
        Node::Template { pipe: Some(p), .. } => pipe_idents(p, out),
        _ => {}
    }
}

// ---------------------------------------------------------------- field checking

/// What a value is, as far as field checks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Root(Mode),
    Message,
    ToolCall,
    ToolCallFunction,
    Tool,
    ToolFunction,
    ToolParams,
    List(Elem),
    Scalar,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elem {
    Message,
    ToolCall,
    Tool,
    Other,
}

fn elem_ty(e: Elem) -> Ty {
    match e {
        Elem::Message => Ty::Message,
        Elem::ToolCall => Ty::ToolCall,
        Elem::Tool => Ty::Tool,
        Elem::Other => Ty::Unknown,
    }
}

/// The fields of a type: `None` = anything goes.
fn fields_of(ty: Ty) -> Option<&'static [(&'static str, Ty)]> {
    use Ty::*;
    Some(match ty {
        Root(Mode::Messages) => &[
            ("System", Scalar),
            ("Messages", List(Elem::Message)),
            ("Tools", List(Elem::Tool)),
            ("Response", Scalar),
            ("Think", Scalar),
            ("ThinkLevel", Scalar),
            ("IsThinkSet", Scalar),
        ],
        Root(Mode::Legacy) => &[
            ("System", Scalar),
            ("Prompt", Scalar),
            ("Response", Scalar),
            ("Suffix", Scalar),
            ("Think", Scalar),
            ("ThinkLevel", Scalar),
            ("IsThinkSet", Scalar),
        ],
        Message => &[
            ("Role", Scalar),
            ("Content", Scalar),
            ("Thinking", Scalar),
            ("Images", List(Elem::Other)),
            ("ToolCalls", List(Elem::ToolCall)),
            ("ToolName", Scalar),
            ("ToolCallID", Scalar),
        ],
        ToolCall => &[("ID", Scalar), ("Function", ToolCallFunction)],
        ToolCallFunction => &[("Index", Scalar), ("Name", Scalar), ("Arguments", Unknown)],
        Tool => &[
            ("Type", Scalar),
            ("Items", Unknown),
            ("Function", ToolFunction),
        ],
        ToolFunction => &[
            ("Name", Scalar),
            ("Description", Scalar),
            ("Parameters", ToolParams),
        ],
        ToolParams => &[
            ("Type", Scalar),
            ("Defs", Unknown),
            ("Items", Unknown),
            ("Required", List(Elem::Other)),
            ("Properties", Unknown),
        ],
        List(_) | Scalar => &[],
        Unknown => return None,
    })
}

fn ty_name(ty: Ty) -> String {
    match ty {
        Ty::Root(m) => format!("the top level ({m})"),
        Ty::Message => "a message".into(),
        Ty::ToolCall => "a tool call".into(),
        Ty::ToolCallFunction => "a tool call's .Function".into(),
        Ty::Tool => "a tool".into(),
        Ty::ToolFunction => "a tool's .Function".into(),
        Ty::ToolParams => "a tool's .Function.Parameters".into(),
        Ty::List(_) => "a list".into(),
        Ty::Scalar => "a plain value".into(),
        Ty::Unknown => "a value".into(),
    }
}

/// A field reference Ollama does not provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// 1-based line.
    pub line: usize,
    /// What is wrong and what is available instead.
    pub msg: String,
}

struct Checker {
    issues: Vec<FieldIssue>,
    vars: Vec<(String, Ty)>,
    mode: Mode,
}

impl Checker {
    fn resolve(&mut self, mut ty: Ty, chain: &[String], line: usize) -> Ty {
        for f in chain {
            let Some(fields) = fields_of(ty) else {
                return Ty::Unknown;
            };
            match fields.iter().find(|(n, _)| n == f) {
                Some((_, t)) => ty = *t,
                None => {
                    let avail: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
                    let mut msg = format!(".{f} is not a field of {}", ty_name(ty));
                    if let Ty::Root(Mode::Messages) = ty
                        && matches!(f.as_str(), "Prompt" | "Suffix")
                    {
                        msg.push_str(
                            "; a template that mentions .Messages runs in Messages mode, where .Prompt is not set (loop over .Messages instead)",
                        );
                    } else if let Ty::Root(Mode::Legacy) = ty
                        && matches!(f.as_str(), "Tools")
                    {
                        msg.push_str("; .Tools is only available in Messages mode (use .Messages)");
                    }
                    if avail.is_empty() {
                        msg.push_str(" (it has no fields)");
                    } else {
                        msg.push_str(&format!("; available: .{}", avail.join(", .")));
                    }
                    self.issues.push(FieldIssue { line, msg });
                    return Ty::Unknown;
                }
            }
        }
        ty
    }

    fn var_ty(&self, v: &str) -> Ty {
        if v == "$" {
            return Ty::Root(self.mode);
        }
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == v)
            .map_or(Ty::Unknown, |(_, t)| *t)
    }

    fn arg(&mut self, a: &Arg, dot: Ty, line: usize) -> Ty {
        match a {
            Arg::Dot => dot,
            Arg::Field(chain) => self.resolve(dot, chain, line),
            Arg::Var(v, chain) => {
                let t = self.var_ty(v);
                self.resolve(t, chain, line)
            }
            Arg::Paren(p, chain) => {
                let t = self.pipe(p, dot);
                self.resolve(t, chain, line)
            }
            Arg::Func(_) => Ty::Unknown,
            _ => Ty::Scalar,
        }
    }

    /// Checks a pipeline; returns the type of its value.
    fn pipe(&mut self, p: &Pipe, dot: Ty) -> Ty {
        let mut last = Ty::Unknown;
        for c in &p.cmds {
            let tys: Vec<Ty> = c.args.iter().map(|a| self.arg(a, dot, p.line)).collect();
            last = match (&c.args[0], c.args.len()) {
                (Arg::Func(f), _) if f == "index" => match tys.get(1) {
                    Some(Ty::List(e)) => elem_ty(*e),
                    _ => Ty::Unknown,
                },
                (Arg::Func(f), _) if f == "slice" => tys.get(1).copied().unwrap_or(Ty::Unknown),
                (Arg::Func(_), _) => Ty::Unknown,
                (_, 1) => tys[0],
                _ => Ty::Unknown,
            };
        }
        last
    }

    fn nodes(&mut self, nodes: &[Node], dot: Ty) {
        let mark = self.vars.len();
        for n in nodes {
            match n {
                Node::Action(p) => {
                    let t = self.pipe(p, dot);
                    if !p.is_assign {
                        for v in &p.decl {
                            self.vars.push((v.clone(), t));
                        }
                    }
                }
                Node::Branch {
                    kind,
                    pipe,
                    list,
                    else_list,
                } => {
                    let inner_mark = self.vars.len();
                    let t = self.pipe(pipe, dot);
                    let body_dot = match kind {
                        BranchKind::If => dot,
                        BranchKind::With => t,
                        BranchKind::Range => match t {
                            Ty::List(e) => elem_ty(e),
                            _ => Ty::Unknown,
                        },
                    };
                    if !pipe.is_assign {
                        match (kind, pipe.decl.as_slice()) {
                            (BranchKind::Range, [i, v]) => {
                                self.vars.push((i.clone(), Ty::Scalar));
                                self.vars.push((v.clone(), body_dot));
                            }
                            (BranchKind::Range, [v]) => self.vars.push((v.clone(), body_dot)),
                            (_, decl) => {
                                for v in decl {
                                    self.vars.push((v.clone(), t));
                                }
                            }
                        }
                    }
                    self.nodes(list, body_dot);
                    if let Some(e) = else_list {
                        self.nodes(e, dot);
                    }
                    self.vars.truncate(inner_mark);
                }
                Node::Template { pipe: Some(p), .. } => {
                    self.pipe(p, dot);
                }
                _ => {}
            }
        }
        self.vars.truncate(mark);
    }
}

/// Checks every field reference against what Ollama provides in the template's mode.
/// `define`d templates are checked with an unknown `.` (their argument is not tracked).
pub fn check_fields(t: &GoTemplate) -> Vec<FieldIssue> {
    let mode = t.mode();
    let mut c = Checker {
        issues: Vec::new(),
        vars: Vec::new(),
        mode,
    };
    c.nodes(&t.root, Ty::Root(mode));
    for (_, body) in &t.defines {
        c.nodes(body, Ty::Unknown);
    }
    c.issues
}

#[cfg(test)]
mod tests;
