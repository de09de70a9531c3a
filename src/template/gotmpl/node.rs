//! The template's syntax tree (Go's `text/template/parse/node.go`, reduced to what Ollama
//! templates use) and the facts derived from it: identifiers and the execution mode.

use std::fmt;

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
