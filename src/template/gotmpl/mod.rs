//! A parser for Go `text/template`, enough to lint Ollama TEMPLATEs.
//!
//! It follows Go's lexer and parser (delimiters with `-` trim markers, comments, actions,
//! pipelines with `|`, variables with `:=`/`=`, `if`/`else if`/`range`/`with`/`define`/`block`/
//! `template`/`break`/`continue`/`end`, parenthesised pipelines and field chains), rejects what
//! Go's `template.Parse` rejects (unbalanced blocks, undefined functions and variables, bad
//! literals), and then checks every field reference against what Ollama passes to the template
//! in the mode the template uses (see `docs/ollama.md`).
//!
//! The files follow Go's packages: [`lex`] (`text/template/parse/lex.go`), [`node`]
//! (`node.go`), [`parse`] (`parse.go`); [`check`] is tinylm's field checker and [`exec`] runs a
//! template the way Ollama does (`text/template/exec.go` and Ollama's `template` package).

mod check;
pub mod exec;
mod lex;
mod node;
mod parse;

pub use check::{FieldIssue, check_fields};
pub use node::{Arg, BranchKind, Cmd, FUNCTIONS, GoTemplate, Mode, Node, Pipe};
pub use parse::parse;

/// A parse error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template line {line}: {msg}")]
pub struct GoTemplateError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

#[cfg(test)]
mod tests;
