//! The template engine behind LogQL `| line_format "..."` and `| label_format x="..."`.
//!
//! It implements the Go `text/template` language as Loki uses it (with `missingkey=zero`):
//! text and `{{ }}` actions, trim markers, comments, fields, variables, pipelines,
//! parenthesised sub-expressions, `if`/`else if`/`else`/`with`/`range`/`break`/`continue`,
//! Go's builtin functions (`and`, `or`, `not`, `len`, `index`, `slice`, `print`, `printf`,
//! `println`, `html`, `js`, `urlquery`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`) and the Loki and
//! Sprig functions listed in Loki's template documentation. Values are dynamically typed the
//! way Go's reflection sees them (`string`, `int`, `int64`, `float64`, `bool`, `time.Time`,
//! lists and maps from `fromJson`), and function arguments are type-checked the Go way.
//!
//! The data (`.`) is the label set, seen as a `map[string]string`: `.name` is the label's
//! value, or the empty string when the label is missing.

mod escape;
mod eval;
mod format;
mod functions;
mod lexer;
mod node;
mod number;
mod parser;
mod raw;
mod time;
mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use skald_model::Labels;

use self::eval::{Fail, State};
use self::functions::CallError;
use self::lexer::lex;
use self::node::{Arg, ArgKind, Node, Pipe};
use self::parser::Parser;
use self::value::Value;

/// Deepest nesting of control structures and parentheses accepted by the parser.
const MAX_DEPTH: usize = 100;
/// Largest output (and largest intermediate string) a render may produce, in bytes.
const MAX_OUTPUT: usize = 1 << 20;
/// Largest number of `range` iterations in one render.
const MAX_ITERATIONS: usize = 100_000;
/// Number of compiled regular expressions kept per template.
const REGEX_CACHE_SIZE: usize = 64;

/// A template parse or execution error. Its `Display` is the message, worded like Go's
/// `text/template` errors (`template: line:1: function "foo" not defined`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        TemplateError { message: message.into() }
    }

    /// The error message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A parsed template: parse once, render per line. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Template {
    name: Arc<str>,
    src: Arc<str>,
    root: Arc<Vec<Node>>,
    regex_cache: Arc<Mutex<HashMap<String, regex::Regex>>>,
}

impl Template {
    /// Parses Go text/template source. Errors name the template `line`, as Loki's
    /// `line_format` does; use [`Template::parse_named`] for another name (Loki uses `label`
    /// for `label_format`).
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Self::parse_named("line", src)
    }

    /// Parses Go text/template source; `name` only appears in error messages.
    pub fn parse_named(name: &str, src: &str) -> Result<Template, TemplateError> {
        let tokens = lex(src).map_err(|e| parse_error(name, src, &e))?;
        let mut p =
            Parser { toks: &tokens, i: 0, vars: vec!["$".to_string()], depth: 0, range_depth: 0 };
        let root = p.parse_root().map_err(|e| parse_error(name, src, &e))?;
        Ok(Template {
            name: Arc::from(name),
            src: Arc::from(src),
            root: Arc::new(root),
            regex_cache: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Renders with `.name` → label value from `labels` (missing label → empty string),
    /// `__line__` → `line`, `__timestamp__` → the entry time `ts_ns` (UTC).
    pub fn render(&self, labels: &Labels, line: &str, ts_ns: i64) -> Result<String, TemplateError> {
        self.render_text(labels, line, false, ts_ns)
    }

    /// Renders with `__line__` holding `line`'s bytes, which need not be UTF-8: `len` counts
    /// them and text copied from the line keeps them (Go strings hold bytes). Returns the
    /// output's bytes.
    pub fn render_bytes(
        &self,
        labels: &Labels,
        line: &[u8],
        ts_ns: i64,
    ) -> Result<Vec<u8>, TemplateError> {
        match std::str::from_utf8(line) {
            Ok(text) => self.render_text(labels, text, false, ts_ns).map(String::into_bytes),
            Err(_) => match raw::encode(line) {
                Some(text) => self.render_text(labels, &text, true, ts_ns).map(raw::decode),
                None => {
                    let text = skald_gocompat::utf8::lossy(line);
                    self.render_text(labels, &text, false, ts_ns).map(String::into_bytes)
                }
            },
        }
    }

    fn render_text(
        &self,
        labels: &Labels,
        line: &str,
        raw_bytes: bool,
        ts_ns: i64,
    ) -> Result<String, TemplateError> {
        let mut st = State {
            tmpl: self,
            labels,
            line,
            raw_bytes,
            ts_ns,
            vars: vec![("$".to_string(), Value::Dot)],
            at: None,
            iterations: 0,
        };
        let mut out = String::new();
        match st.walk_list(&Value::Dot, &self.root, &mut out) {
            Ok(_) => Ok(out),
            Err(Fail::Error(e)) => Err(e),
            Err(Fail::Break) | Err(Fail::Continue) => Ok(out),
        }
    }

    /// The label names the template reads through field access (`.name`, `$.name`), in order
    /// of first appearance, without duplicates (Loki's `RequiredLabelNames`).
    pub fn field_names(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        fn add(out: &mut Vec<String>, names: &[String]) {
            for n in names {
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        fn pipe(out: &mut Vec<String>, p: &Pipe) {
            for c in &p.cmds {
                for a in &c.args {
                    arg(out, a);
                }
            }
        }
        fn arg(out: &mut Vec<String>, a: &Arg) {
            match &a.kind {
                ArgKind::Field(names) => add(out, names),
                ArgKind::Pipe(p) => pipe(out, p),
                ArgKind::Chain(inner, _) => arg(out, inner),
                _ => {}
            }
        }
        fn list(out: &mut Vec<String>, nodes: &[Node]) {
            for n in nodes {
                match n {
                    Node::Action(p) => pipe(out, p),
                    Node::If(b) | Node::With(b) | Node::Range(b) => {
                        pipe(out, &b.pipe);
                        list(out, &b.list);
                        if let Some(e) = &b.else_list {
                            list(out, e);
                        }
                    }
                    _ => {}
                }
            }
        }
        list(&mut out, &self.root);
        out
    }

    /// The template source, as given to [`Template::parse`].
    pub fn source(&self) -> &str {
        &self.src
    }

    fn regex(&self, re: &str) -> Result<regex::Regex, CallError> {
        if let Ok(cache) = self.regex_cache.lock() {
            if let Some(r) = cache.get(re) {
                return Ok(r.clone());
            }
        }
        let r = regex::RegexBuilder::new(re).size_limit(1 << 20).build().map_err(|e| {
            CallError::Plain(format!("error parsing regexp: {}", first_line(&e.to_string())))
        })?;
        if let Ok(mut cache) = self.regex_cache.lock() {
            if cache.len() >= REGEX_CACHE_SIZE {
                cache.clear();
            }
            cache.insert(re.to_string(), r.clone());
        }
        Ok(r)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

fn line_of(src: &str, pos: usize) -> usize {
    let pos = pos.min(src.len());
    1 + src.as_bytes()[..pos].iter().filter(|&&b| b == b'\n').count()
}

fn parse_error(name: &str, src: &str, e: &SyntaxError) -> TemplateError {
    TemplateError::new(format!("template: {}:{}: {}", name, line_of(src, e.pos), e.message))
}

/// A lexer or parser error: the byte offset in the source (which [`parse_error`] turns into
/// the line Go's `template: name:line:` prefix names) and Go's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
struct SyntaxError {
    /// Byte offset of the problem in the template source.
    pos: usize,
    /// Go's text/template message, e.g. `unexpected EOF in if`.
    message: String,
}

impl SyntaxError {
    fn new(pos: usize, message: impl Into<String>) -> Self {
        SyntaxError { pos, message: message.into() }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
