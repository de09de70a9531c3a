//! The parser (Go's `text/template/parse/parse.go`): actions, pipelines, control structures,
//! variables and `define`/`block`, rejecting what `template.Parse` rejects.

use super::GoTemplateError;
use super::lex::{Lexer, Tok};
use super::node::{Arg, BranchKind, Cmd, FUNCTIONS, GoTemplate, Node, Pipe};

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
    let toks = Lexer::new(src).run()?;
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
