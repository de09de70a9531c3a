//! Field checks: every `.Field` a template reads, against what Ollama passes to it in the mode
//! the template uses (legacy `.System`/`.Prompt`/`.Response` or `.Messages`, tools, thinking).

use super::node::{Arg, BranchKind, GoTemplate, Mode, Node, Pipe};

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
