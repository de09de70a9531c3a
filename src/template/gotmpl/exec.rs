//! A small executor for parsed Go templates, enough to render a conversation the way Ollama
//! does (`template.Execute`): Messages mode with collated messages, or legacy mode executed once
//! per turn with everything after `.Response` cut on the last turn.
//!
//! It implements the builtins Ollama templates use (`eq ne lt le gt ge and or not len index slice
//! print printf println json`) with Go's truthiness and `missingkey=zero` (a missing map key is
//! `<no value>`). It exists to show and test what a TEMPLATE produces; Ollama itself is the
//! authority.

use std::collections::BTreeMap;

use super::{Arg, BranchKind, GoTemplate, Mode, Node, Pipe};
use crate::template::golang;

/// A template value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Go nil (prints `<no value>` when it comes from a missing map key).
    Nil,
    /// A bool.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A string.
    Str(String),
    /// A slice.
    List(Vec<Value>),
    /// A map or struct (fields by name).
    Map(BTreeMap<String, Value>),
}

impl Value {
    /// Go's truthiness: false, 0, nil and empty values are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    fn print(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("<no value>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.print(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push_str("map[");
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.print(out);
                }
                out.push(']');
            }
        }
    }

    fn to_json(&self, out: &mut String) {
        match self {
            Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Str(s) => golang::push_json_string(out, s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.to_json(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    golang::push_json_string(out, k);
                    out.push(':');
                    v.to_json(out);
                }
                out.push('}');
            }
        }
    }

    fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

/// An execution error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct ExecError {
    /// 1-based line of the failing action.
    pub line: usize,
    /// What went wrong.
    pub msg: String,
}

enum Flow {
    Normal,
    Break,
    Continue,
    Stop,
}

struct Exec<'a> {
    t: &'a GoTemplate,
    root: Value,
    vars: Vec<(String, Value)>,
    out: String,
    /// Legacy mode, last turn: stop at the first `.Response`.
    cut_at_response: bool,
    depth: usize,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, ExecError> {
    Err(ExecError {
        line,
        msg: msg.into(),
    })
}

fn field(v: &Value, name: &str, line: usize) -> Result<Value, ExecError> {
    match v {
        Value::Map(m) => Ok(m.get(name).cloned().unwrap_or(Value::Nil)),
        Value::Nil => err(line, format!("nil pointer evaluating .{name}")),
        other => err(line, format!("can't evaluate field {name} in {other:?}")),
    }
}

fn mentions_response(p: &Pipe) -> bool {
    p.cmds.iter().flat_map(|c| &c.args).any(|a| match a {
        Arg::Field(f) | Arg::Var(_, f) => f.iter().any(|x| x == "Response"),
        Arg::Paren(inner, f) => mentions_response(inner) || f.iter().any(|x| x == "Response"),
        _ => false,
    })
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        let mark = self.vars.len();
        let flow = self.nodes_inner(nodes, dot);
        self.vars.truncate(mark);
        flow
    }

    fn nodes_inner(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        v.print(&mut self.out);
                    } else {
                        self.declare(p, v);
                    }
                    // Ollama keeps the `.Response` action of the last turn and deletes
                    // everything after it.
                    if self.cut_at_response && mentions_response(p) {
                        return Ok(Flow::Stop);
                    }
                }
                Node::Branch {
                    kind,
                    pipe,
                    list,
                    else_list,
                } => {
                    let mark = self.vars.len();
                    let flow = self.branch(*kind, pipe, list, else_list.as_deref(), dot)?;
                    self.vars.truncate(mark);
                    match flow {
                        Flow::Normal => {}
                        other => return Ok(other),
                    }
                }
                Node::Template { name, pipe, line } => {
                    let Some((_, body)) = self.t.defines.iter().rev().find(|d| &d.0 == name) else {
                        return err(*line, format!("no such template {name:?}"));
                    };
                    let arg = match pipe {
                        Some(p) => self.pipe(p, dot)?,
                        None => Value::Nil,
                    };
                    self.depth += 1;
                    if self.depth > 100 {
                        return err(*line, "template recursion too deep");
                    }
                    let saved = std::mem::take(&mut self.vars);
                    let flow = self.nodes(body, &arg);
                    self.vars = saved;
                    self.depth -= 1;
                    if let Flow::Stop = flow? {
                        return Ok(Flow::Stop);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn declare(&mut self, p: &Pipe, v: Value) {
        for name in &p.decl {
            if p.is_assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
    }

    fn branch(
        &mut self,
        kind: BranchKind,
        pipe: &Pipe,
        list: &[Node],
        else_list: Option<&[Node]>,
        dot: &Value,
    ) -> Result<Flow, ExecError> {
        let v = self.pipe(pipe, dot)?;
        match kind {
            BranchKind::If | BranchKind::With => {
                if !pipe.decl.is_empty() {
                    self.declare(pipe, v.clone());
                }
                if v.truth() {
                    let d = if kind == BranchKind::With {
                        v
                    } else {
                        dot.clone()
                    };
                    self.nodes(list, &d)
                } else if let Some(e) = else_list {
                    self.nodes(e, dot)
                } else {
                    Ok(Flow::Normal)
                }
            }
            BranchKind::Range => {
                let items: Vec<(Value, Value)> = match &v {
                    Value::List(l) => l
                        .iter()
                        .enumerate()
                        .map(|(i, x)| (Value::Int(i as i64), x.clone()))
                        .collect(),
                    Value::Map(m) => m.iter().map(|(k, x)| (Value::str(k), x.clone())).collect(),
                    Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                    Value::Nil => vec![],
                    other => return err(pipe.line, format!("range can't iterate over {other:?}")),
                };
                if items.is_empty() {
                    return match else_list {
                        Some(e) => self.nodes(e, dot),
                        None => Ok(Flow::Normal),
                    };
                }
                for (k, x) in items {
                    let mark = self.vars.len();
                    if !pipe.is_assign {
                        match pipe.decl.as_slice() {
                            [i, e] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((e.clone(), x.clone()));
                            }
                            [e] => self.vars.push((e.clone(), x.clone())),
                            _ => {}
                        }
                    }
                    let flow = self.nodes(list, &x)?;
                    self.vars.truncate(mark);
                    match flow {
                        Flow::Break => break,
                        Flow::Stop => return Ok(Flow::Stop),
                        Flow::Normal | Flow::Continue => {}
                    }
                }
                Ok(Flow::Normal)
            }
        }
    }

    fn var(&self, name: &str) -> Value {
        if name == "$" {
            return self.root.clone();
        }
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map_or(Value::Nil, |(_, v)| v.clone())
    }

    fn arg(&mut self, a: &Arg, dot: &Value, line: usize) -> Result<Value, ExecError> {
        let chain = |mut v: Value, fields: &[String]| -> Result<Value, ExecError> {
            for f in fields {
                v = field(&v, f, line)?;
            }
            Ok(v)
        };
        match a {
            Arg::Dot => Ok(dot.clone()),
            Arg::Field(f) => chain(dot.clone(), f),
            Arg::Var(name, f) => chain(self.var(name), f),
            Arg::Paren(p, f) => {
                let v = self.pipe(p, dot)?;
                chain(v, f)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Num(n) => match golang::parse_int(n) {
                Some(i) => Ok(Value::Int(i)),
                None => err(
                    line,
                    format!("number {n} is not supported by this renderer"),
                ),
            },
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Func(f) => err(line, format!("{f} is a function, not a value")),
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, ExecError> {
        let mut prev: Option<Value> = None;
        for c in &p.cmds {
            let v = match c.args.first() {
                Some(Arg::Func(f)) => {
                    let mut args = Vec::with_capacity(c.args.len());
                    for a in &c.args[1..] {
                        args.push(self.arg(a, dot, p.line)?);
                    }
                    if let Some(pv) = prev.take() {
                        args.push(pv);
                    }
                    call(f, &args, p.line)?
                }
                Some(a) => {
                    if c.args.len() > 1 || prev.is_some() {
                        return err(p.line, "method calls are not supported by this renderer");
                    }
                    self.arg(a, dot, p.line)?
                }
                None => return err(p.line, "empty command"),
            };
            prev = Some(v);
        }
        Ok(prev.unwrap_or(Value::Nil))
    }
}

fn cmp_values(a: &Value, b: &Value, line: usize) -> Result<std::cmp::Ordering, ExecError> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x.cmp(y)),
        (Value::Str(x), Value::Str(y)) => Ok(x.cmp(y)),
        _ => err(
            line,
            format!("incompatible types for comparison: {a:?} and {b:?}"),
        ),
    }
}

fn basic_eq(a: &Value, b: &Value, line: usize) -> Result<bool, ExecError> {
    match (a, b) {
        (Value::Int(_), Value::Int(_))
        | (Value::Str(_), Value::Str(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Nil, Value::Nil) => Ok(a == b),
        _ => err(
            line,
            format!("incompatible types for comparison: {a:?} and {b:?}"),
        ),
    }
}

fn call(f: &str, args: &[Value], line: usize) -> Result<Value, ExecError> {
    use std::cmp::Ordering::*;
    let need = |n: usize| -> Result<(), ExecError> {
        if args.len() < n {
            err(
                line,
                format!(
                    "wrong number of args for {f}: want at least {n} got {}",
                    args.len()
                ),
            )
        } else {
            Ok(())
        }
    };
    Ok(match f {
        "eq" => {
            need(2)?;
            let mut any = false;
            for b in &args[1..] {
                any |= basic_eq(&args[0], b, line)?;
            }
            Value::Bool(any)
        }
        "ne" => {
            need(2)?;
            Value::Bool(!basic_eq(&args[0], &args[1], line)?)
        }
        "lt" | "le" | "gt" | "ge" => {
            need(2)?;
            let o = cmp_values(&args[0], &args[1], line)?;
            Value::Bool(match f {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        "and" => {
            need(1)?;
            args.iter()
                .find(|v| !v.truth())
                .unwrap_or(&args[args.len() - 1])
                .clone()
        }
        "or" => {
            need(1)?;
            args.iter()
                .find(|v| v.truth())
                .unwrap_or(&args[args.len() - 1])
                .clone()
        }
        "not" => {
            need(1)?;
            Value::Bool(!args[0].truth())
        }
        "len" => {
            need(1)?;
            Value::Int(match &args[0] {
                Value::List(l) => l.len() as i64,
                Value::Str(s) => s.len() as i64,
                Value::Map(m) => m.len() as i64,
                other => return err(line, format!("len of {other:?}")),
            })
        }
        "index" => {
            need(1)?;
            let mut v = args[0].clone();
            for i in &args[1..] {
                v = match (&v, i) {
                    (Value::List(l), Value::Int(i)) => {
                        match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                            Some(x) => x.clone(),
                            None => return err(line, format!("index out of range: {i}")),
                        }
                    }
                    (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
                    _ => return err(line, format!("can't index {v:?} with {i:?}")),
                };
            }
            v
        }
        "slice" => {
            need(1)?;
            let idx: Vec<usize> = args[1..]
                .iter()
                .map(|a| match a {
                    Value::Int(i) => usize::try_from(*i).ok(),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| ExecError {
                    line,
                    msg: "slice indexes must be non-negative ints".into(),
                })?;
            match &args[0] {
                Value::List(l) => {
                    let (a, b) = (
                        idx.first().copied().unwrap_or(0),
                        idx.get(1).copied().unwrap_or(l.len()),
                    );
                    match l.get(a..b) {
                        Some(s) => Value::List(s.to_vec()),
                        None => return err(line, format!("slice index out of range: {a}:{b}")),
                    }
                }
                Value::Str(s) => {
                    let (a, b) = (
                        idx.first().copied().unwrap_or(0),
                        idx.get(1).copied().unwrap_or(s.len()),
                    );
                    match s.get(a..b) {
                        Some(x) => Value::str(x),
                        None => return err(line, format!("slice index out of range: {a}:{b}")),
                    }
                }
                other => return err(line, format!("can't slice {other:?}")),
            }
        }
        "print" | "println" => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                // fmt.Sprint adds spaces between operands when neither is a string.
                if i > 0
                    && (f == "println"
                        || !(matches!(a, Value::Str(_)) || matches!(args[i - 1], Value::Str(_))))
                {
                    s.push(' ');
                }
                a.print(&mut s);
            }
            if f == "println" {
                s.push('\n');
            }
            Value::Str(s)
        }
        "printf" => {
            need(1)?;
            let Value::Str(fmt) = &args[0] else {
                return err(line, "printf format must be a string");
            };
            let mut s = String::new();
            let mut rest = args[1..].iter();
            let mut chars = fmt.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    s.push(c);
                    continue;
                }
                match chars.next() {
                    Some('%') => s.push('%'),
                    Some('s' | 'v' | 'd') => match rest.next() {
                        Some(v) => v.print(&mut s),
                        None => s.push_str("%!v(MISSING)"),
                    },
                    Some('q') => match rest.next() {
                        Some(Value::Str(v)) => s.push_str(&format!("{v:?}")),
                        Some(v) => v.print(&mut s),
                        None => s.push_str("%!q(MISSING)"),
                    },
                    other => {
                        return err(
                            line,
                            format!(
                                "printf verb %{} is not supported by this renderer",
                                other.unwrap_or(' ')
                            ),
                        );
                    }
                }
            }
            Value::Str(s)
        }
        "json" => {
            need(1)?;
            let mut s = String::new();
            args[0].to_json(&mut s);
            Value::Str(s)
        }
        other => {
            return err(
                line,
                format!("function {other} is not supported by this renderer"),
            );
        }
    })
}

/// One chat message for [`render_chat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// Reasoning text of an assistant message (`.Thinking`).
    pub thinking: String,
}

impl ChatMessage {
    /// A message without thinking.
    pub fn new(role: &str, content: &str) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            thinking: String::new(),
        }
    }
}

fn message_value(m: &ChatMessage) -> Value {
    let mut map = BTreeMap::new();
    map.insert("Role".into(), Value::str(&m.role));
    map.insert("Content".into(), Value::str(&m.content));
    map.insert("Thinking".into(), Value::str(&m.thinking));
    map.insert("Images".into(), Value::List(vec![]));
    map.insert("ToolCalls".into(), Value::List(vec![]));
    map.insert("ToolName".into(), Value::str(""));
    map.insert("ToolCallID".into(), Value::str(""));
    Value::Map(map)
}

/// Ollama's `collate`: all system texts joined by a blank line, and consecutive messages of the
/// same role (except `tool`) merged with a blank line.
fn collate(messages: &[ChatMessage]) -> (String, Vec<ChatMessage>) {
    let mut system = Vec::new();
    let mut out: Vec<ChatMessage> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(m.content.clone());
        }
        match out.last_mut() {
            Some(last) if last.role == m.role && m.role != "tool" => {
                last.content.push_str("\n\n");
                last.content.push_str(&m.content);
            }
            _ => out.push(m.clone()),
        }
    }
    (system.join("\n\n"), out)
}

/// Thinking options of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThinkOptions {
    /// `.Think`.
    pub think: bool,
    /// `.IsThinkSet`.
    pub is_set: bool,
}

/// Renders a chat the way Ollama's `Template.Execute` does (no tools).
pub fn render_chat(
    t: &GoTemplate,
    messages: &[ChatMessage],
    think: ThinkOptions,
) -> Result<String, ExecError> {
    let (system, messages) = collate(messages);
    let run = |root: Value, cut: bool| -> Result<String, ExecError> {
        let mut e = Exec {
            t,
            root: root.clone(),
            vars: Vec::new(),
            out: String::new(),
            cut_at_response: cut,
            depth: 0,
        };
        e.nodes(&t.root, &root)?;
        if !cut && t.gets_response_appended() {
            // Ollama appends {{ .Response }} to such templates.
            if let Value::Map(m) = &root {
                m.get("Response").unwrap_or(&Value::Nil).print(&mut e.out);
            }
        }
        Ok(e.out)
    };
    let scalar = |think: ThinkOptions, pairs: &[(&str, &str)]| -> BTreeMap<String, Value> {
        let mut m: BTreeMap<String, Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::str(v)))
            .collect();
        m.insert("Think".into(), Value::Bool(think.think));
        m.insert("IsThinkSet".into(), Value::Bool(think.is_set));
        m
    };
    if t.mode() == Mode::Messages {
        let mut root = scalar(think, &[("System", &system), ("Response", "")]);
        root.insert(
            "Messages".into(),
            Value::List(messages.iter().map(message_value).collect()),
        );
        root.insert("Tools".into(), Value::Nil);
        return run(Value::Map(root), false);
    }
    // Legacy: once per turn, flushing when a new turn starts.
    let mut out = String::new();
    let (mut sys, mut prompt, mut response) = (String::new(), String::new(), String::new());
    for m in &messages {
        let flush = match m.role.as_str() {
            "system" => !prompt.is_empty() || !response.is_empty(),
            "user" => !response.is_empty(),
            _ => false,
        };
        if flush {
            let root = scalar(
                think,
                &[
                    ("System", &sys),
                    ("Prompt", &prompt),
                    ("Response", &response),
                ],
            );
            out.push_str(&run(Value::Map(root), false)?);
            sys.clear();
            prompt.clear();
            response.clear();
        }
        match m.role.as_str() {
            "system" => sys = m.content.clone(),
            "user" => prompt = m.content.clone(),
            "assistant" => response = m.content.clone(),
            _ => {}
        }
    }
    let root = scalar(
        think,
        &[
            ("System", &sys),
            ("Prompt", &prompt),
            ("Response", &response),
        ],
    );
    out.push_str(&run(Value::Map(root), true)?);
    Ok(out)
}
