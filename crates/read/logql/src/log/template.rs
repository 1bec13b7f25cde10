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

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use skald_model::Labels;

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
        let tokens = lex(src).map_err(|(pos, msg)| parse_error(name, src, pos, &msg))?;
        let mut p =
            Parser { toks: &tokens, i: 0, vars: vec!["$".to_string()], depth: 0, range_depth: 0 };
        let root = p.parse_root().map_err(|(pos, msg)| parse_error(name, src, pos, &msg))?;
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
        let mut st = State {
            tmpl: self,
            labels,
            line,
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

    fn regex(&self, re: &str) -> Result<regex::Regex, String> {
        if let Ok(cache) = self.regex_cache.lock() {
            if let Some(r) = cache.get(re) {
                return Ok(r.clone());
            }
        }
        let r = regex::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("error parsing regexp: {}", first_line(&e.to_string())))?;
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

fn parse_error(name: &str, src: &str, pos: usize, msg: &str) -> TemplateError {
    TemplateError::new(format!("template: {}:{}: {}", name, line_of(src, pos), msg))
}

// ---------------------------------------------------------------------------------------------
// Syntax tree
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Branch {
    pipe: Pipe,
    list: Vec<Node>,
    else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
struct Pipe {
    pos: usize,
    is_assign: bool,
    decl: Vec<String>,
    cmds: Vec<Cmd>,
}

#[derive(Debug, Clone)]
struct Cmd {
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
struct Arg {
    pos: usize,
    kind: ArgKind,
}

#[derive(Debug, Clone)]
struct Number {
    text: String,
    int: Option<i64>,
    float: Option<f64>,
}

#[derive(Debug, Clone)]
enum ArgKind {
    Dot,
    Nil,
    Bool(bool),
    Str { value: String, quoted: String },
    Num(Number),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(Func),
    Pipe(Box<Pipe>),
    Chain(Box<Arg>, Vec<String>),
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ArgKind::Dot => f.write_str("."),
            ArgKind::Nil => f.write_str("nil"),
            ArgKind::Bool(b) => write!(f, "{b}"),
            ArgKind::Str { quoted, .. } => f.write_str(quoted),
            ArgKind::Num(n) => f.write_str(&n.text),
            ArgKind::Field(names) => {
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            ArgKind::Var(v, names) => {
                f.write_str(v)?;
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
            ArgKind::Func(func) => f.write_str(func.name()),
            ArgKind::Pipe(p) => write!(f, "({p})"),
            ArgKind::Chain(inner, names) => {
                write!(f, "{inner}")?;
                for n in names {
                    write!(f, ".{n}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (j, a) in self.args.iter().enumerate() {
            if j > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Pipe,
    LParen,
    RParen,
    Comma,
    Declare,
    Assign,
    Str(String, String),
    Number(String),
    CharConst(String),
    Bool(bool),
    Dot,
    Field(String),
    Variable(String),
    Ident(String),
    Keyword(&'static str),
    Eof,
}

const KEYWORDS: &[&str] = &[
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue", "nil",
];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

type LexResult<T> = Result<T, (usize, String)>;

fn lex(src: &str) -> LexResult<Vec<(usize, Tok)>> {
    let b = src.as_bytes();
    let mut toks: Vec<(usize, Tok)> = Vec::new();
    let mut pos = 0usize;
    let mut trim_next = false;
    loop {
        // text up to the next "{{"
        let start = pos;
        let next = src[pos..].find("{{").map(|i| pos + i);
        let end = next.unwrap_or(src.len());
        let mut text = &src[start..end];
        if trim_next {
            text = text.trim_start_matches([' ', '\t', '\r', '\n']);
            trim_next = false;
        }
        let Some(lpos) = next else {
            if !text.is_empty() {
                toks.push((start, Tok::Text(text.to_string())));
            }
            toks.push((src.len(), Tok::Eof));
            return Ok(toks);
        };
        let mut p = lpos + 2;
        let left_trim = b.len() >= p + 2 && b[p] == b'-' && is_space(b[p + 1]);
        if left_trim {
            text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            p += 2;
        }
        if !text.is_empty() {
            toks.push((start, Tok::Text(text.to_string())));
        }
        // comment
        if src[p..].starts_with("/*") {
            let Some(close) = src[p + 2..].find("*/") else {
                return Err((lpos, "unclosed comment".to_string()));
            };
            let mut q = p + 2 + close + 2;
            if b.len() >= q + 2
                && is_space(b[q])
                && b[q + 1] == b'-'
                && src[q + 2..].starts_with("}}")
            {
                trim_next = true;
                q += 2;
            }
            if !src[q..].starts_with("}}") {
                return Err((lpos, "comment ends before closing delimiter".to_string()));
            }
            pos = q + 2;
            continue;
        }
        toks.push((lpos, Tok::Left));
        pos = lex_action(src, p, &mut toks, &mut trim_next)?;
    }
}

/// Lexes inside an action starting at `pos`; returns the position after the closing `}}`.
fn lex_action(
    src: &str,
    mut pos: usize,
    toks: &mut Vec<(usize, Tok)>,
    trim_next: &mut bool,
) -> LexResult<usize> {
    let b = src.as_bytes();
    let mut parens = 0usize;
    loop {
        // right delimiter?
        if b.len() >= pos + 4
            && is_space(b[pos])
            && b[pos + 1] == b'-'
            && src[pos + 2..].starts_with("}}")
        {
            if parens > 0 {
                return Err((pos, "unclosed left paren".to_string()));
            }
            toks.push((pos, Tok::Right));
            *trim_next = true;
            return Ok(pos + 4);
        }
        if src[pos..].starts_with("}}") {
            if parens > 0 {
                return Err((pos, "unclosed left paren".to_string()));
            }
            toks.push((pos, Tok::Right));
            return Ok(pos + 2);
        }
        let Some(c) = src[pos..].chars().next() else {
            return Err((pos, "unclosed action".to_string()));
        };
        let start = pos;
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                while pos < b.len() && is_space(b[pos]) {
                    if b.len() >= pos + 4 && b[pos + 1] == b'-' && src[pos + 2..].starts_with("}}")
                    {
                        break;
                    }
                    pos += 1;
                }
                if pos == start {
                    pos += 1;
                }
                toks.push((start, Tok::Space));
            }
            '=' => {
                toks.push((start, Tok::Assign));
                pos += 1;
            }
            ':' => {
                if b.get(pos + 1) != Some(&b'=') {
                    return Err((pos, "expected :=".to_string()));
                }
                toks.push((start, Tok::Declare));
                pos += 2;
            }
            '|' => {
                toks.push((start, Tok::Pipe));
                pos += 1;
            }
            ',' => {
                toks.push((start, Tok::Comma));
                pos += 1;
            }
            '(' => {
                parens += 1;
                if parens > MAX_DEPTH {
                    return Err((pos, "template nesting too deep".to_string()));
                }
                toks.push((start, Tok::LParen));
                pos += 1;
            }
            ')' => {
                if parens == 0 {
                    return Err((pos, "unexpected right paren".to_string()));
                }
                parens -= 1;
                toks.push((start, Tok::RParen));
                pos += 1;
            }
            '"' => {
                let (v, n) = match skald_model::labels::unquote_at(&src[pos..]) {
                    Ok(x) => x,
                    Err(e) if e.contains("unterminated") || e.contains("newline") => {
                        return Err((pos, "unterminated quoted string".to_string()))
                    }
                    Err(e) => return Err((pos, e)),
                };
                toks.push((start, Tok::Str(v, src[pos..pos + n].to_string())));
                pos += n;
            }
            '`' => {
                let Some(end) = src[pos + 1..].find('`') else {
                    return Err((pos, "unterminated raw quoted string".to_string()));
                };
                let v = src[pos + 1..pos + 1 + end].replace('\r', "");
                toks.push((start, Tok::Str(v, src[pos..pos + end + 2].to_string())));
                pos += end + 2;
            }
            '\'' => {
                let mut q = pos + 1;
                loop {
                    match b.get(q) {
                        None | Some(b'\n') => {
                            return Err((pos, "unterminated character constant".to_string()))
                        }
                        Some(b'\\') => q += 2,
                        Some(b'\'') => break,
                        Some(_) => q += 1,
                    }
                }
                let text = src
                    .get(pos..q + 1)
                    .ok_or((pos, "unterminated character constant".to_string()))?;
                toks.push((start, Tok::CharConst(text.to_string())));
                pos = q + 1;
            }
            '$' => {
                pos += 1;
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                toks.push((start, Tok::Variable(src[start..pos].to_string())));
            }
            '.' if !b.get(pos + 1).is_some_and(|d| d.is_ascii_digit()) => {
                pos += 1;
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                if pos == start + 1 {
                    toks.push((start, Tok::Dot));
                } else {
                    toks.push((start, Tok::Field(src[start + 1..pos].to_string())));
                }
            }
            '+' | '-' | '.' | '0'..='9' => {
                pos = scan_number(src, pos);
                let text = &src[start..pos];
                if src[pos..].chars().next().is_some_and(is_alnum)
                    || text == "+"
                    || text == "-"
                    || text == "."
                {
                    let bad_end = pos + src[pos..].chars().next().map_or(0, |c| c.len_utf8());
                    return Err((start, format!("bad number syntax: {:?}", &src[start..bad_end])));
                }
                toks.push((start, Tok::Number(text.to_string())));
            }
            c if is_alnum(c) => {
                while let Some(ch) = src[pos..].chars().next().filter(|&ch| is_alnum(ch)) {
                    pos += ch.len_utf8();
                }
                check_terminator(src, pos)?;
                let word = &src[start..pos];
                let tok = match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    w => match KEYWORDS.iter().find(|k| **k == w) {
                        Some(k) => Tok::Keyword(k),
                        None => Tok::Ident(w.to_string()),
                    },
                };
                toks.push((start, tok));
            }
            c => {
                return Err((
                    pos,
                    format!("unrecognized character in action: {}", go_rune_debug(c)),
                ));
            }
        }
    }
}

fn go_rune_debug(c: char) -> String {
    format!("U+{:04X} '{}'", c as u32, c)
}

fn check_terminator(src: &str, pos: usize) -> LexResult<()> {
    let rest = &src[pos..];
    match rest.chars().next() {
        None => Ok(()),
        Some(' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
        Some(_) if rest.starts_with("}}") => Ok(()),
        Some(c) => Err((pos, format!("bad character {}", go_rune_debug(c)))),
    }
}

fn scan_number(src: &str, mut pos: usize) -> usize {
    let b = src.as_bytes();
    if pos < b.len() && (b[pos] == b'+' || b[pos] == b'-') {
        pos += 1;
    }
    let mut digits: &[u8] = b"0123456789_";
    let mut exp: &[u8] = b"eE";
    if b.get(pos) == Some(&b'0') {
        match b.get(pos + 1) {
            Some(b'x' | b'X') => {
                pos += 2;
                digits = b"0123456789abcdefABCDEF_";
                exp = b"pP";
            }
            Some(b'o' | b'O') => {
                pos += 2;
                digits = b"01234567_";
                exp = b"";
            }
            Some(b'b' | b'B') => {
                pos += 2;
                digits = b"01_";
                exp = b"";
            }
            _ => {}
        }
    }
    while pos < b.len() && digits.contains(&b[pos]) {
        pos += 1;
    }
    if pos < b.len() && b[pos] == b'.' {
        pos += 1;
        while pos < b.len() && digits.contains(&b[pos]) {
            pos += 1;
        }
    }
    if !exp.is_empty() && pos < b.len() && exp.contains(&b[pos]) {
        pos += 1;
        if pos < b.len() && (b[pos] == b'+' || b[pos] == b'-') {
            pos += 1;
        }
        while pos < b.len() && (b[pos].is_ascii_digit() || b[pos] == b'_') {
            pos += 1;
        }
    }
    pos
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

struct Parser<'a> {
    toks: &'a [(usize, Tok)],
    i: usize,
    vars: Vec<String>,
    depth: usize,
    range_depth: usize,
}

type PResult<T> = Result<T, (usize, String)>;

/// How an item list ended.
enum ListEnd {
    Eof,
    End,
    Else(usize),
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.i).map_or(&Tok::Eof, |t| &t.1)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).or(self.toks.last()).map_or(0, |t| t.0)
    }

    fn next(&mut self) -> (usize, Tok) {
        let t = self.toks.get(self.i).cloned().unwrap_or((self.pos(), Tok::Eof));
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn skip_space(&mut self) {
        while *self.peek() == Tok::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> (usize, Tok) {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> &Tok {
        self.skip_space();
        self.peek()
    }

    fn unexpected(&self, pos: usize, t: &Tok, context: &str) -> (usize, String) {
        (pos, format!("unexpected {} in {}", tok_desc(t), context))
    }

    fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let (list, end) = self.item_list()?;
        match end {
            ListEnd::Eof => Ok(list),
            ListEnd::End => Err((self.pos(), "unexpected {{end}}".to_string())),
            ListEnd::Else(p) => Err((p, "unexpected {{else}}".to_string())),
        }
    }

    /// Parses nodes until EOF, `{{end}}` or `{{else`; for `else`, the parser stands after
    /// the `else` keyword.
    fn item_list(&mut self) -> PResult<(Vec<Node>, ListEnd)> {
        let mut list = Vec::new();
        loop {
            let (pos, t) = self.next();
            match t {
                Tok::Eof => return Ok((list, ListEnd::Eof)),
                Tok::Text(s) => list.push(Node::Text(s)),
                Tok::Left => {
                    let (kpos, k) = self.next_non_space();
                    match k {
                        Tok::Keyword("end") => {
                            self.expect_right("end")?;
                            return Ok((list, ListEnd::End));
                        }
                        Tok::Keyword("else") => return Ok((list, ListEnd::Else(kpos))),
                        Tok::Keyword("if") => list.push(Node::If(Box::new(self.control("if")?))),
                        Tok::Keyword("with") => {
                            list.push(Node::With(Box::new(self.control("with")?)))
                        }
                        Tok::Keyword("range") => {
                            self.range_depth += 1;
                            let r = self.control("range");
                            self.range_depth -= 1;
                            list.push(Node::Range(Box::new(r?)));
                        }
                        Tok::Keyword(k @ ("break" | "continue")) => {
                            if self.range_depth == 0 {
                                return Err((kpos, format!("{{{{{k}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_right(k)?;
                            list.push(if k == "break" { Node::Break } else { Node::Continue });
                        }
                        Tok::Keyword(k @ ("define" | "template" | "block")) => {
                            return Err((kpos, format!("{k} actions are not supported")));
                        }
                        _ => {
                            self.i -= 1;
                            let pipe = self.pipeline("command", false)?;
                            list.push(Node::Action(pipe));
                        }
                    }
                }
                t => return Err(self.unexpected(pos, &t, "input")),
            }
        }
    }

    fn expect_right(&mut self, context: &str) -> PResult<()> {
        let (pos, t) = self.next_non_space();
        if t == Tok::Right {
            Ok(())
        } else {
            Err(self.unexpected(pos, &t, context))
        }
    }

    /// Parses `pipeline }} list [{{else ...}} list] {{end}}` after the keyword.
    fn control(&mut self, kind: &'static str) -> PResult<Branch> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((self.pos(), "template nesting too deep".to_string()));
        }
        let mark = self.vars.len();
        let res = self.control_inner(kind);
        self.vars.truncate(mark);
        self.depth -= 1;
        res
    }

    fn control_inner(&mut self, kind: &'static str) -> PResult<Branch> {
        let pipe = self.pipeline(kind, kind == "range")?;
        let inner_mark = self.vars.len();
        let (list, end) = self.item_list()?;
        self.vars.truncate(inner_mark);
        let else_list = match end {
            ListEnd::Eof => return Err((self.pos(), format!("unexpected EOF in {kind}"))),
            ListEnd::End => None,
            ListEnd::Else(epos) => {
                let t = self.peek_non_space().clone();
                match t {
                    Tok::Keyword(k @ ("if" | "with")) if k == kind && kind != "range" => {
                        // `{{else if ...}}` / `{{else with ...}}`: a nested control sharing
                        // this one's {{end}}.
                        self.i += 1;
                        let nested = self.control(kind)?;
                        Some(vec![if kind == "if" {
                            Node::If(Box::new(nested))
                        } else {
                            Node::With(Box::new(nested))
                        }])
                    }
                    Tok::Right => {
                        self.i += 1;
                        let (else_list, end) = self.item_list()?;
                        match end {
                            ListEnd::End => Some(else_list),
                            ListEnd::Eof => {
                                return Err((self.pos(), format!("unexpected EOF in {kind}")))
                            }
                            ListEnd::Else(p) => {
                                return Err((p, "expected end; found {{else}}".to_string()))
                            }
                        }
                    }
                    t => return Err(self.unexpected(epos, &t, "else")),
                }
            }
        };
        Ok(Branch { pipe, list, else_list })
    }

    /// Parses a pipeline up to `}}` (consumed).
    fn pipeline(&mut self, context: &str, allow_two_decl: bool) -> PResult<Pipe> {
        self.skip_space();
        let pos = self.pos();
        let mut decl = Vec::new();
        let mut is_assign = false;
        // declarations
        if let Tok::Variable(v) = self.peek().clone() {
            let save = self.i;
            self.i += 1;
            let after = self.peek_non_space().clone();
            match after {
                Tok::Declare | Tok::Assign => {
                    self.i += 1;
                    is_assign = after == Tok::Assign;
                    decl.push(v);
                }
                Tok::Comma if allow_two_decl => {
                    self.i += 1;
                    let (p2, t2) = self.next_non_space();
                    let Tok::Variable(v2) = t2 else {
                        return Err((
                            p2,
                            format!("range can only initialize variables; found {}", tok_desc(&t2)),
                        ));
                    };
                    let (p3, t3) = self.next_non_space();
                    match t3 {
                        Tok::Declare => {}
                        Tok::Assign => is_assign = true,
                        t => return Err(self.unexpected(p3, &t, "range")),
                    }
                    decl.push(v);
                    decl.push(v2);
                }
                _ => self.i = save,
            }
        }
        if is_assign {
            for v in &decl {
                if !self.vars.contains(v) {
                    return Err((pos, format!("undefined variable {v:?}")));
                }
            }
        }
        let mut cmds = Vec::new();
        if matches!(self.peek_non_space(), Tok::Right) {
            return Err((pos, format!("missing value for {context}")));
        }
        loop {
            if matches!(self.peek_non_space(), Tok::Right | Tok::Pipe) {
                return Err((self.pos(), "missing command".to_string()));
            }
            cmds.push(self.command(false)?);
            let tpos = self.pos();
            match self.next_non_space() {
                (_, Tok::Right) => break,
                (_, Tok::Pipe) => continue,
                (_, t) => return Err(self.unexpected(tpos, &t, context)),
            }
        }
        if cmds.is_empty() {
            return Err((pos, format!("missing value for {context}")));
        }
        check_pipeline(&cmds, pos)?;
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        Ok(Pipe { pos, is_assign, decl, cmds })
    }

    /// Parses a parenthesised pipeline after `(` up to `)` (consumed).
    fn paren_pipeline(&mut self, pos: usize) -> PResult<Pipe> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((pos, "template nesting too deep".to_string()));
        }
        let mut decl = Vec::new();
        let mut is_assign = false;
        self.skip_space();
        if let Tok::Variable(v) = self.peek().clone() {
            let save = self.i;
            self.i += 1;
            match self.peek_non_space().clone() {
                t @ (Tok::Declare | Tok::Assign) => {
                    self.i += 1;
                    is_assign = t == Tok::Assign;
                    if is_assign && !self.vars.contains(&v) {
                        return Err((pos, format!("undefined variable {v:?}")));
                    }
                    decl.push(v);
                }
                _ => self.i = save,
            }
        }
        let mut cmds = Vec::new();
        loop {
            if matches!(self.peek_non_space(), Tok::RParen | Tok::Pipe) {
                let msg = if cmds.is_empty() {
                    "missing value for parenthesized pipeline"
                } else {
                    "missing command"
                };
                return Err((self.pos(), msg.to_string()));
            }
            cmds.push(self.command(true)?);
            let tpos = self.pos();
            match self.next_non_space() {
                (_, Tok::RParen) => break,
                (_, Tok::Pipe) => continue,
                (_, t) => return Err(self.unexpected(tpos, &t, "parenthesized pipeline")),
            }
        }
        check_pipeline(&cmds, pos)?;
        if !is_assign {
            self.vars.extend(decl.iter().cloned());
        }
        self.depth -= 1;
        Ok(Pipe { pos, is_assign, decl, cmds })
    }

    /// Parses one command: operands up to `|`, `}}` or `)` (not consumed).
    fn command(&mut self, in_paren: bool) -> PResult<Cmd> {
        let mut args = Vec::new();
        loop {
            self.skip_space();
            let t = self.peek().clone();
            match t {
                Tok::Right | Tok::Pipe | Tok::RParen => break,
                _ => {}
            }
            args.push(self.operand()?);
            let pos = self.pos();
            match self.peek().clone() {
                Tok::Space => continue,
                Tok::Right | Tok::Pipe => break,
                Tok::RParen if in_paren => break,
                t => return Err(self.unexpected(pos, &t, "operand")),
            }
        }
        if args.is_empty() {
            return Err((self.pos(), "empty command".to_string()));
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> PResult<Arg> {
        let (pos, t) = self.next();
        let kind = match t {
            Tok::Ident(name) => match Func::from_name(&name) {
                Some(f) => ArgKind::Func(f),
                None => return Err((pos, format!("function {name:?} not defined"))),
            },
            Tok::Keyword("nil") => ArgKind::Nil,
            Tok::Dot => ArgKind::Dot,
            Tok::Field(name) => ArgKind::Field(vec![name]),
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return Err((pos, format!("undefined variable {v:?}")));
                }
                ArgKind::Var(v, Vec::new())
            }
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Str(value, quoted) => ArgKind::Str { value, quoted },
            Tok::Number(text) => ArgKind::Num(parse_number(&text).map_err(|e| (pos, e))?),
            Tok::CharConst(text) => ArgKind::Num(parse_char_const(&text).map_err(|e| (pos, e))?),
            Tok::LParen => ArgKind::Pipe(Box::new(self.paren_pipeline(pos)?)),
            t => return Err(self.unexpected(pos, &t, "operand")),
        };
        let mut arg = Arg { pos, kind };
        let mut chain = Vec::new();
        while let Tok::Field(name) = self.peek().clone() {
            self.i += 1;
            chain.push(name);
        }
        if !chain.is_empty() {
            arg.kind = match arg.kind {
                ArgKind::Field(mut names) => {
                    names.extend(chain);
                    ArgKind::Field(names)
                }
                ArgKind::Var(v, mut names) => {
                    names.extend(chain);
                    ArgKind::Var(v, names)
                }
                k @ (ArgKind::Pipe(_) | ArgKind::Func(_)) => {
                    ArgKind::Chain(Box::new(Arg { pos, kind: k }), chain)
                }
                _ => return Err((pos, format!("unexpected . after term {:?}", arg.to_string()))),
            };
        }
        Ok(arg)
    }
}

fn check_pipeline(cmds: &[Cmd], pos: usize) -> PResult<()> {
    for (i, c) in cmds.iter().enumerate().skip(1) {
        if let Some(a) = c.args.first() {
            if matches!(
                a.kind,
                ArgKind::Bool(_)
                    | ArgKind::Dot
                    | ArgKind::Nil
                    | ArgKind::Num(_)
                    | ArgKind::Str { .. }
            ) {
                return Err((pos, format!("non executable command in pipeline stage {}", i + 1)));
            }
        }
    }
    Ok(())
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Text(s) => format!("{s:?}"),
        Tok::Left => "\"{{\"".to_string(),
        Tok::Right => "\"}}\"".to_string(),
        Tok::Space => "space".to_string(),
        Tok::Pipe => "\"|\"".to_string(),
        Tok::LParen => "\"(\"".to_string(),
        Tok::RParen => "\")\"".to_string(),
        Tok::Comma => "\",\"".to_string(),
        Tok::Declare => "\":=\"".to_string(),
        Tok::Assign => "\"=\"".to_string(),
        Tok::Str(_, q) => format!("<{q}>"),
        Tok::Number(n) | Tok::CharConst(n) => format!("<{n}>"),
        Tok::Bool(b) => format!("<{b}>"),
        Tok::Dot => "<.>".to_string(),
        Tok::Field(f) => format!("<.{f}>"),
        Tok::Variable(v) => format!("<{v}>"),
        Tok::Ident(i) => format!("<{i}>"),
        Tok::Keyword(k) => format!("<{k}>"),
        Tok::Eof => "EOF".to_string(),
    }
}

/// Parses a Go integer literal with base prefix (`0x`, `0o`, `0b`, leading `0` = octal) and
/// underscores, like `strconv.ParseInt(s, 0, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits, prefixed) =
        if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
            (16, &body[2..], true)
        } else if body.len() > 2 && (body.starts_with("0o") || body.starts_with("0O")) {
            (8, &body[2..], true)
        } else if body.len() > 2 && (body.starts_with("0b") || body.starts_with("0B")) {
            (2, &body[2..], true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..], true)
        } else {
            (10, body, false)
        };
    if digits.is_empty() {
        return None;
    }
    if digits.contains('_') {
        // underscores only between digits (or after the prefix)
        let bytes = digits.as_bytes();
        if (!prefixed && bytes[0] == b'_')
            || bytes[bytes.len() - 1] == b'_'
            || digits.contains("__")
        {
            return None;
        }
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || clean.starts_with('+') || clean.starts_with('-') {
        return None;
    }
    let mag = u64::from_str_radix(&clean, radix).ok()?;
    if neg {
        if mag <= i64::MAX as u64 + 1 {
            Some((mag as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// Parses a Go float literal (decimal or hexadecimal, underscores allowed) like
/// `strconv.ParseFloat(s, 64)`.
fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let neg = s.starts_with('-');
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "infinity" => return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY }),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(hex) = lower.strip_prefix("0x") {
        let body: String = hex.chars().filter(|&c| c != '_').collect();
        let (mant, exp) = body.split_once('p')?;
        let exp: i32 = exp.parse().ok()?;
        let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
        let mut v = 0f64;
        for c in ip.chars() {
            v = v * 16.0 + c.to_digit(16)? as f64;
        }
        let mut scale = 1.0 / 16.0;
        for c in fp.chars() {
            v += c.to_digit(16)? as f64 * scale;
            scale /= 16.0;
        }
        let v = v * 2f64.powi(exp);
        return Some(if neg { -v } else { v });
    }
    if !t
        .bytes()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    clean.parse::<f64>().ok()
}

fn parse_number(text: &str) -> Result<Number, String> {
    let mut n = Number { text: text.to_string(), int: None, float: None };
    if let Some(i) = go_parse_int(text) {
        n.int = Some(i);
        n.float = Some(i as f64);
        return Ok(n);
    }
    if let Some(f) = go_parse_float(text) {
        let looks_float = text.contains(['.', 'e', 'E', 'p', 'P']) && !is_hex_int(text);
        if !looks_float {
            return Err(format!("integer overflow: {text:?}"));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            n.int = Some(f as i64);
        }
        return Ok(n);
    }
    Err(format!("illegal number syntax: {text:?}"))
}

fn is_hex_int(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-']);
    (t.starts_with("0x") || t.starts_with("0X")) && !t.contains(['p', 'P'])
}

fn parse_char_const(text: &str) -> Result<Number, String> {
    let inner = &text[1..text.len() - 1];
    let c = if let Some(esc) = inner.strip_prefix('\\') {
        match esc {
            "n" => '\n',
            "t" => '\t',
            "r" => '\r',
            "a" => '\u{7}',
            "b" => '\u{8}',
            "f" => '\u{c}',
            "v" => '\u{b}',
            "\\" => '\\',
            "'" => '\'',
            "\"" => '"',
            _ => {
                let v = if let Some(h) =
                    esc.strip_prefix('x').or(esc.strip_prefix('u')).or(esc.strip_prefix('U'))
                {
                    u32::from_str_radix(h, 16).ok()
                } else {
                    u32::from_str_radix(esc, 8).ok()
                };
                v.and_then(char::from_u32)
                    .ok_or_else(|| format!("malformed character constant: {text}"))?
            }
        }
    } else {
        let mut it = inner.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => c,
            _ => return Err(format!("malformed character constant: {text}")),
        }
    };
    Ok(Number { text: text.to_string(), int: Some(c as i64), float: Some(c as u32 as f64) })
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// A time value: an instant plus the zone it is shown in.
#[derive(Debug, Clone, PartialEq)]
struct GoTime {
    secs: i64,
    nsec: u32,
    offset: i32,
    /// Zone abbreviation; `None` prints the numeric offset (Go's unnamed fixed zone).
    name: Option<String>,
}

impl GoTime {
    fn utc(secs: i64, nsec: u32) -> Self {
        GoTime { secs, nsec, offset: 0, name: Some("UTC".to_string()) }
    }

    fn from_unix_nanos(ns: i64) -> Self {
        Self::utc(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
    }

    /// Go's zero `time.Time`: January 1, year 1, 00:00:00 UTC.
    fn zero() -> Self {
        Self::utc(-62_135_596_800, 0)
    }

    fn now() -> Self {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self::utc(d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                Self::from_unix_nanos(-(d.as_nanos().min(i64::MAX as u128) as i64))
            }
        }
    }

    fn to_utc(&self) -> Self {
        Self::utc(self.secs, self.nsec)
    }

    fn unix_milli(&self) -> i64 {
        self.secs.wrapping_mul(1000).wrapping_add(self.nsec as i64 / 1_000_000)
    }

    fn unix_micro(&self) -> i64 {
        self.secs.wrapping_mul(1_000_000).wrapping_add(self.nsec as i64 / 1000)
    }

    fn unix_nano(&self) -> i64 {
        self.secs.wrapping_mul(1_000_000_000).wrapping_add(self.nsec as i64)
    }

    /// Civil fields in the time's own zone.
    fn civil(&self) -> Civil {
        let local = self.secs.saturating_add(self.offset as i64);
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (sod / 3600) as u32,
            minute: (sod % 3600 / 60) as u32,
            second: (sod % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
            yday: (days - days_from_civil(year, 1, 1) + 1) as u32,
        }
    }
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32,
    yday: u32,
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Debug, Clone)]
enum Value {
    /// Go's invalid value / nil interface.
    Nil,
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `int64`.
    Int64(i64),
    Float(f64),
    Str(String),
    Time(GoTime),
    List(Rc<Vec<Value>>),
    Map(Rc<BTreeMap<String, Value>>),
    /// The label set (`map[string]string`).
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Float,
    Time,
    Any,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Str => "string",
            Ty::Int => "int",
            Ty::Float => "float64",
            Ty::Time => "time.Time",
            Ty::Any => "interface {}",
        }
    }
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Time(_) => "time.Time",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
            Value::Dot => "map[string]string",
        }
    }

    fn from_json(j: serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => {
                Value::List(Rc::new(a.into_iter().map(Value::from_json).collect()))
            }
            serde_json::Value::Object(o) => {
                Value::Map(Rc::new(o.into_iter().map(|(k, v)| (k, Value::from_json(v))).collect()))
            }
        }
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truth(v: &Value, labels: &Labels) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) | Value::Int64(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Time(_) => true,
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Dot => !labels.is_empty(),
    }
}

// ---------------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------------

enum Fail {
    Error(TemplateError),
    Break,
    Continue,
}

type EResult<T> = Result<T, Fail>;

#[derive(Clone, Copy)]
enum At<'t> {
    Arg(&'t Arg),
    Pipe(&'t Pipe),
    /// A whole command, as Go's `evalCall` reports a failed function call
    /// (`at <index .x 5>: error calling index: ...`).
    Cmd(&'t Cmd),
}

struct State<'t> {
    tmpl: &'t Template,
    labels: &'t Labels,
    line: &'t str,
    ts_ns: i64,
    vars: Vec<(String, Value)>,
    at: Option<At<'t>>,
    iterations: usize,
}

impl<'t> State<'t> {
    fn errorf(&self, msg: impl fmt::Display) -> Fail {
        let name = &*self.tmpl.name;
        let (pos, ctx) = match self.at {
            None => return Fail::Error(TemplateError::new(format!("template: {name}: {msg}"))),
            Some(At::Arg(a)) => (a.pos, a.to_string()),
            Some(At::Pipe(p)) => (p.pos, p.to_string()),
            Some(At::Cmd(c)) => (c.args.first().map_or(0, |a| a.pos), c.to_string()),
        };
        let src = &*self.tmpl.src;
        let pos = pos.min(src.len());
        let line_start =
            src.as_bytes()[..pos].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = line_of(src, pos);
        Fail::Error(TemplateError::new(format!(
            "template: {name}:{line}:{}: executing {name:?} at <{ctx}>: {msg}",
            pos - line_start
        )))
    }

    fn push_out(&self, out: &mut String, s: &str) -> EResult<()> {
        if out.len() + s.len() > MAX_OUTPUT {
            return Err(self.errorf("template output too large"));
        }
        out.push_str(s);
        Ok(())
    }

    fn walk_list(&mut self, dot: &Value, nodes: &'t [Node], out: &mut String) -> EResult<()> {
        for n in nodes {
            self.walk(dot, n, out)?;
        }
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &'t Node, out: &mut String) -> EResult<()> {
        match node {
            Node::Text(s) => self.push_out(out, s),
            Node::Action(p) => {
                let v = self.eval_pipeline(dot, p)?;
                if p.decl.is_empty() {
                    let mut s = String::new();
                    match &v {
                        Value::Nil => s.push_str("<no value>"),
                        v => fmt_v(v, self.labels, &mut s),
                    }
                    self.push_out(out, &s)?;
                }
                Ok(())
            }
            Node::If(b) | Node::With(b) => {
                let mark = self.vars.len();
                let res = self.walk_if_with(dot, b, matches!(node, Node::With(_)), out);
                self.vars.truncate(mark);
                res
            }
            Node::Range(b) => {
                let mark = self.vars.len();
                let res = self.walk_range(dot, b, out);
                self.vars.truncate(mark);
                res
            }
            Node::Break => Err(Fail::Break),
            Node::Continue => Err(Fail::Continue),
        }
    }

    fn walk_if_with(
        &mut self,
        dot: &Value,
        b: &'t Branch,
        is_with: bool,
        out: &mut String,
    ) -> EResult<()> {
        let v = self.eval_pipeline(dot, &b.pipe)?;
        if truth(&v, self.labels) {
            if is_with {
                self.walk_list(&v, &b.list, out)
            } else {
                self.walk_list(dot, &b.list, out)
            }
        } else if let Some(e) = &b.else_list {
            self.walk_list(dot, e, out)
        } else {
            Ok(())
        }
    }

    /// Runs one range iteration; returns false when the loop must stop.
    fn range_once(
        &mut self,
        b: &'t Branch,
        mark: usize,
        key: Value,
        elem: Value,
        out: &mut String,
    ) -> EResult<bool> {
        self.iterations += 1;
        if self.iterations > MAX_ITERATIONS {
            return Err(self.errorf("too many range iterations"));
        }
        let n = b.pipe.decl.len();
        if n >= 1 {
            let top = self.vars.len();
            if b.pipe.is_assign {
                if n == 2 {
                    self.set_var(&b.pipe.decl[0], key)?;
                    self.set_var(&b.pipe.decl[1], elem.clone())?;
                } else {
                    self.set_var(&b.pipe.decl[0], elem.clone())?;
                }
            } else if top >= n {
                self.vars[top - 1].1 = elem.clone();
                if n == 2 {
                    self.vars[top - 2].1 = key;
                }
            }
        }
        let res = self.walk_list(&elem, &b.list, out);
        self.vars.truncate(mark);
        match res {
            Ok(()) | Err(Fail::Continue) => Ok(true),
            Err(Fail::Break) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn walk_range(&mut self, dot: &Value, b: &'t Branch, out: &mut String) -> EResult<()> {
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let mark = self.vars.len();
        let mut any = false;
        match &val {
            Value::List(l) => {
                for (i, e) in l.iter().enumerate() {
                    any = true;
                    if !self.range_once(b, mark, Value::Int(i as i64), e.clone(), out)? {
                        break;
                    }
                }
            }
            Value::Map(m) => {
                for (k, e) in m.iter() {
                    any = true;
                    if !self.range_once(b, mark, Value::Str(k.clone()), e.clone(), out)? {
                        break;
                    }
                }
            }
            Value::Dot => {
                let labels = self.labels;
                for l in labels.iter() {
                    any = true;
                    if !self.range_once(
                        b,
                        mark,
                        Value::Str(l.name.clone()),
                        Value::Str(l.value.clone()),
                        out,
                    )? {
                        break;
                    }
                }
            }
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    self.at = Some(At::Pipe(&b.pipe));
                    return Err(self
                        .errorf(format!("can't use {n} to iterate over more than one variable")));
                }
                let wrap = |i: i64| {
                    if matches!(val, Value::Int(_)) {
                        Value::Int(i)
                    } else {
                        Value::Int64(i)
                    }
                };
                for i in 0..*n {
                    any = true;
                    if !self.range_once(b, mark, wrap(i), wrap(i), out)? {
                        break;
                    }
                }
            }
            Value::Nil => {}
            v => {
                self.at = Some(At::Pipe(&b.pipe));
                let mut s = String::new();
                fmt_v(v, self.labels, &mut s);
                return Err(self.errorf(format!("range can't iterate over {s}")));
            }
        }
        if !any {
            if let Some(e) = &b.else_list {
                return self.walk_list(dot, e, out);
            }
        }
        Ok(())
    }

    fn set_var(&mut self, name: &str, v: Value) -> EResult<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = v;
                Ok(())
            }
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn var_value(&self, name: &str) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.errorf(format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value, p: &'t Pipe) -> EResult<Value> {
        self.at = Some(At::Pipe(p));
        let mut value: Option<Value> = None;
        for c in &p.cmds {
            value = Some(self.eval_command(dot, c, value)?);
        }
        let v = value.unwrap_or(Value::Nil);
        for name in &p.decl {
            if p.is_assign {
                self.set_var(name, v.clone())?;
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, first: &Arg, extra: usize, fin: &Option<Value>) -> EResult<()> {
        if extra > 0 || fin.is_some() {
            return Err(self.errorf(format!("can't give argument to non-function {first}")));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'t Cmd, fin: Option<Value>) -> EResult<Value> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match &first.kind {
            ArgKind::Field(names) => {
                return self.eval_field_chain(dot, dot.clone(), first, names, rest, fin)
            }
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, None, inner)?;
                self.at = Some(At::Arg(first));
                return self.eval_field_chain(dot, recv, first, names, rest, fin);
            }
            ArgKind::Func(f) => return self.eval_function(dot, *f, first, rest, fin, Some(cmd)),
            ArgKind::Pipe(p) => {
                self.at = Some(At::Arg(first));
                self.not_a_function(first, rest.len(), &fin)?;
                return self.eval_pipeline(dot, p);
            }
            ArgKind::Var(name, fields) => {
                return self.eval_variable(dot, first, name, fields, rest, fin)
            }
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(first, rest.len(), &fin)?;
        match &first.kind {
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Err(self.errorf("nil is not a command")),
            ArgKind::Num(n) => self.ideal_constant(n),
            ArgKind::Str { value, .. } => Ok(Value::Str(value.clone())),
            _ => Err(self.errorf(format!("can't evaluate command {first}"))),
        }
    }

    fn ideal_constant(&self, n: &Number) -> EResult<Value> {
        let t = &n.text;
        let is_rune = t.starts_with('\'');
        if n.float.is_some() && !is_hex_int(t) && !is_rune && t.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(n.float.unwrap_or(0.0)));
        }
        match n.int {
            Some(i) => Ok(Value::Int(i)),
            None => Err(self.errorf(format!("{t} overflows int"))),
        }
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        node: &'t Arg,
        name: &str,
        fields: &'t [String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let v = self.var_value(name)?;
        if fields.is_empty() {
            self.not_a_function(node, args.len(), &fin)?;
            return Ok(v);
        }
        self.eval_field_chain(dot, v, node, fields, args, fin)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        receiver: Value,
        node: &'t Arg,
        idents: &'t [String],
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let mut recv = receiver;
        let n = idents.len();
        for name in &idents[..n.saturating_sub(1)] {
            recv = self.eval_field(dot, name, node, &[], None, recv)?;
        }
        match idents.last() {
            Some(name) => self.eval_field(dot, name, node, args, fin, recv),
            None => Ok(recv),
        }
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        recv: Value,
    ) -> EResult<Value> {
        let has_args = !args.is_empty() || fin.is_some();
        match recv {
            Value::Nil => Ok(Value::Nil),
            Value::Dot => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(Value::Str(self.labels.get(name).unwrap_or("").to_string()))
            }
            Value::Map(m) => {
                if has_args {
                    return Err(self.errorf(format!("{name} is not a method but has arguments")));
                }
                Ok(m.get(name).cloned().unwrap_or(Value::Nil))
            }
            Value::Time(t) => self.time_method(dot, &t, name, node, args, fin),
            v => Err(self.errorf(format!("can't evaluate field {name} in type {}", v.type_name()))),
        }
    }

    fn time_method(
        &mut self,
        dot: &Value,
        t: &GoTime,
        name: &str,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        let want = usize::from(name == "Format");
        let got = args.len() + usize::from(fin.is_some());
        let known = matches!(
            name,
            "Unix"
                | "UnixMilli"
                | "UnixMicro"
                | "UnixNano"
                | "Year"
                | "Day"
                | "Hour"
                | "Minute"
                | "Second"
                | "Nanosecond"
                | "YearDay"
                | "Format"
                | "String"
                | "UTC"
                | "Local"
                | "IsZero"
        );
        if !known {
            return Err(self.errorf(format!("can't evaluate field {name} in type time.Time")));
        }
        if want != got {
            return Err(
                self.errorf(format!("wrong number of args for {name}: want {want} got {got}"))
            );
        }
        let c = t.civil();
        Ok(match name {
            "Unix" => Value::Int64(t.secs),
            "UnixMilli" => Value::Int64(t.unix_milli()),
            "UnixMicro" => Value::Int64(t.unix_micro()),
            "UnixNano" => Value::Int64(t.unix_nano()),
            "Year" => Value::Int(c.year),
            "Day" => Value::Int(c.day as i64),
            "Hour" => Value::Int(c.hour as i64),
            "Minute" => Value::Int(c.minute as i64),
            "Second" => Value::Int(c.second as i64),
            "Nanosecond" => Value::Int(t.nsec as i64),
            "YearDay" => Value::Int(c.yday as i64),
            "String" => Value::Str(time_string(t)),
            "UTC" | "Local" => Value::Time(t.to_utc()),
            "IsZero" => {
                Value::Bool(*t == GoTime::zero() || (t.secs == GoTime::zero().secs && t.nsec == 0))
            }
            _ => {
                let layout = match (args.first(), fin) {
                    (Some(a), _) => self.eval_arg(dot, Some(Ty::Str), a)?,
                    (None, Some(v)) => self.validate(v, Ty::Str)?,
                    (None, None) => Value::Str(String::new()),
                };
                self.at = Some(At::Arg(node));
                Value::Str(go_format_time(t, as_str(&layout)))
            }
        })
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        f: Func,
        node: &'t Arg,
        args: &'t [Arg],
        fin: Option<Value>,
        cmd: Option<&'t Cmd>,
    ) -> EResult<Value> {
        self.at = Some(At::Arg(node));
        let (params, variadic) = f.sig();
        let num_in = args.len() + usize::from(fin.is_some());
        match variadic {
            Some(_) if num_in < params.len() => {
                return Err(self.errorf(format!(
                    "wrong number of args for {}: want at least {} got {}",
                    f.name(),
                    params.len(),
                    num_in
                )))
            }
            None if num_in != params.len() => {
                return Err(self.errorf(format!(
                    "wrong number of args for {}: want {} got {}",
                    f.name(),
                    params.len(),
                    num_in
                )))
            }
            _ => {}
        }
        if matches!(f, Func::And | Func::Or) {
            let want = matches!(f, Func::Or);
            let mut v = Value::Nil;
            for a in args {
                v = self.eval_arg(dot, Some(Ty::Any), a)?;
                if truth(&v, self.labels) == want {
                    return Ok(v);
                }
            }
            if let Some(fv) = fin {
                v = fv;
            }
            return Ok(v);
        }
        let ty_at = |i: usize| params.get(i).copied().or(variadic).unwrap_or(Ty::Any);
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, Some(ty_at(i)), a)?);
        }
        if let Some(fv) = fin {
            argv.push(self.validate(fv, ty_at(args.len()))?);
        }
        match self.call(f, argv) {
            Ok(v) => Ok(v),
            Err(CallError::Plain(msg)) => {
                // Go reports the whole command (`<div 1 0>`), or the bare name when the
                // function is an argument of another command.
                self.at = Some(cmd.map_or(At::Arg(node), At::Cmd));
                Err(self.errorf(format!("error calling {}: {msg}", f.name())))
            }
        }
    }

    /// Evaluates an argument for a parameter of type `ty` (`None`: no conversion, as for the
    /// receiver of a chain).
    fn eval_arg(&mut self, dot: &Value, ty: Option<Ty>, arg: &'t Arg) -> EResult<Value> {
        self.at = Some(At::Arg(arg));
        let v = match &arg.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => {
                return match ty {
                    None | Some(Ty::Any) => Ok(Value::Nil),
                    Some(t) => Err(self.errorf(format!("cannot assign nil to {}", t.name()))),
                }
            }
            ArgKind::Field(names) => {
                self.eval_field_chain(dot, dot.clone(), arg, names, &[], None)?
            }
            ArgKind::Var(name, fields) => self.eval_variable(dot, arg, name, fields, &[], None)?,
            ArgKind::Pipe(p) => self.eval_pipeline(dot, p)?,
            ArgKind::Func(f) => self.eval_function(dot, *f, arg, &[], None, None)?,
            ArgKind::Chain(inner, names) => {
                let recv = self.eval_arg(dot, None, inner)?;
                self.at = Some(At::Arg(arg));
                self.eval_field_chain(dot, recv, arg, names, &[], None)?
            }
            ArgKind::Bool(b) => {
                return match ty {
                    None | Some(Ty::Any) => Ok(Value::Bool(*b)),
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
            ArgKind::Str { value, .. } => {
                return match ty {
                    None | Some(Ty::Any | Ty::Str) => Ok(Value::Str(value.clone())),
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
            ArgKind::Num(n) => {
                return match ty {
                    None | Some(Ty::Any) => self.ideal_constant(n),
                    Some(Ty::Int) => match n.int {
                        Some(i) => Ok(Value::Int(i)),
                        None => Err(self.literal_mismatch(Ty::Int, arg)),
                    },
                    Some(Ty::Float) => match n.float {
                        Some(f) => Ok(Value::Float(f)),
                        None => Err(self.literal_mismatch(Ty::Float, arg)),
                    },
                    Some(t) => Err(self.literal_mismatch(t, arg)),
                }
            }
        };
        match ty {
            None => Ok(v),
            Some(t) => self.validate(v, t),
        }
    }

    fn literal_mismatch(&self, ty: Ty, arg: &Arg) -> Fail {
        match ty {
            Ty::Str => self.errorf(format!("expected string; found {arg}")),
            Ty::Int => self.errorf(format!("expected integer; found {arg}")),
            Ty::Float => self.errorf(format!("expected float; found {arg}")),
            t => self.errorf(format!("can't handle {arg} for arg of type {}", t.name())),
        }
    }

    fn validate(&self, v: Value, ty: Ty) -> EResult<Value> {
        let ok = match (&v, ty) {
            (_, Ty::Any) => true,
            (Value::Nil, t) => {
                return Err(self.errorf(format!("invalid value; expected {}", t.name())))
            }
            (Value::Str(_), Ty::Str)
            | (Value::Int(_), Ty::Int)
            | (Value::Float(_), Ty::Float)
            | (Value::Time(_), Ty::Time) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(self.errorf(format!(
                "wrong type for value; expected {}; got {}",
                ty.name(),
                v.type_name()
            )))
        }
    }
}

enum CallError {
    Plain(String),
}

impl From<String> for CallError {
    fn from(s: String) -> Self {
        CallError::Plain(s)
    }
}

impl From<&str> for CallError {
    fn from(s: &str) -> Self {
        CallError::Plain(s.to_string())
    }
}

fn as_str(v: &Value) -> &str {
    match v {
        Value::Str(s) => s,
        _ => "",
    }
}

fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        _ => 0,
    }
}

fn as_time(v: &Value) -> GoTime {
    match v {
        Value::Time(t) => t.clone(),
        _ => GoTime::zero(),
    }
}

/// Sprig's `toInt64` (spf13/cast): unparsable → 0.
fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => {
            if f.is_nan() {
                i64::MIN
            } else {
                *f as i64
            }
        }
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            if s.is_empty() {
                return 0;
            }
            go_parse_int(&trim_decimal(s)).unwrap_or(0)
        }
        _ => 0,
    }
}

fn trim_decimal(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = int.trim_start_matches(['+', '-']);
    let sign_ok = int.len() - digits.len() <= 1;
    if sign_ok
        && digits.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        match int {
            "" => "0".to_string(),
            "-" | "+" => format!("{int}0"),
            _ => int.to_string(),
        }
    } else {
        s.to_string()
    }
}

/// Sprig's `toFloat64` (spf13/cast): unparsable → 0.
fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

// ---------------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------------

macro_rules! funcs {
    ($($v:ident = $n:literal),* $(,)?) => {
        /// A function known to templates, resolved at parse time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Func { $($v),* }
        impl Func {
            fn from_name(name: &str) -> Option<Func> {
                match name { $($n => Some(Func::$v),)* _ => None }
            }
            fn name(self) -> &'static str {
                match self { $(Func::$v => $n),* }
            }
        }
    };
}

funcs! {
    And = "and", Or = "or", Not = "not", Len = "len", Index = "index", Slice = "slice",
    Print = "print", Printf = "printf", Println = "println", Html = "html", Js = "js",
    Urlquery = "urlquery", Eq = "eq", Ne = "ne", Lt = "lt", Le = "le", Gt = "gt", Ge = "ge",
    Line = "__line__", Timestamp = "__timestamp__", Date = "date", Duration = "duration",
    DurationSeconds = "duration_seconds", Now = "now", ToDate = "toDate",
    ToDateInZone = "toDateInZone", UnixEpoch = "unixEpoch", UnixEpochMillis = "unixEpochMillis",
    UnixEpochNanos = "unixEpochNanos", UnixToTime = "unixToTime", AlignLeft = "alignLeft",
    AlignRight = "alignRight", B64enc = "b64enc", B64dec = "b64dec", Bytes = "bytes",
    Default = "default", FromJson = "fromJson", Lower = "lower", Upper = "upper",
    Title = "title", Indent = "indent", Nindent = "nindent", Repeat = "repeat",
    Replace = "replace", Substr = "substr", Trim = "trim", TrimAll = "trimAll",
    TrimPrefix = "trimPrefix", TrimSuffix = "trimSuffix", Trunc = "trunc",
    Urlencode = "urlencode", Urldecode = "urldecode", Contains = "contains",
    HasPrefix = "hasPrefix", HasSuffix = "hasSuffix", Add = "add", Addf = "addf", Ceil = "ceil",
    Div = "div", Divf = "divf", Float64 = "float64", Floor = "floor", Int = "int", Max = "max",
    Maxf = "maxf", Min = "min", Minf = "minf", Mul = "mul", Mulf = "mulf", Mod = "mod",
    Round = "round", Sub = "sub", Subf = "subf", Count = "count",
    RegexReplaceAll = "regexReplaceAll", RegexReplaceAllLiteral = "regexReplaceAllLiteral",
    GoToLower = "ToLower", GoToUpper = "ToUpper", GoReplace = "Replace", GoTrim = "Trim",
    GoTrimLeft = "TrimLeft", GoTrimRight = "TrimRight", GoTrimPrefix = "TrimPrefix",
    GoTrimSuffix = "TrimSuffix", GoTrimSpace = "TrimSpace",
}

impl Func {
    /// Fixed parameter types and the variadic parameter type, if any.
    fn sig(self) -> (&'static [Ty], Option<Ty>) {
        use Func::*;
        use Ty::{Any, Float as F, Int as I, Str as S, Time as T};
        match self {
            And | Or | Index | Slice | Eq | Default | Mul | Mulf | Subf | Divf | Max | Min
            | Maxf | Minf => (&[Any], Some(Any)),
            Not | Len | Ceil | Floor | Float64 | Int => (&[Any], None),
            Print | Println | Html | Js | Urlquery | Add | Addf => (&[], Some(Any)),
            Printf => (&[S], Some(Any)),
            Ne | Lt | Le | Gt | Ge | Sub | Div | Mod => (&[Any, Any], None),
            Line | Timestamp | Now => (&[], None),
            Date => (&[S, Any], None),
            Duration | DurationSeconds | UnixToTime | B64enc | B64dec | Bytes | FromJson
            | Lower | Upper | Title | Trim | Urlencode | Urldecode | GoToLower | GoToUpper
            | GoTrimSpace => (&[S], None),
            ToDate | TrimAll | TrimPrefix | TrimSuffix | Contains | HasPrefix | HasSuffix
            | Count | GoTrim | GoTrimLeft | GoTrimRight | GoTrimPrefix | GoTrimSuffix => {
                (&[S, S], None)
            }
            ToDateInZone | Replace | RegexReplaceAll | RegexReplaceAllLiteral => (&[S, S, S], None),
            UnixEpoch | UnixEpochMillis | UnixEpochNanos => (&[T], None),
            AlignLeft | AlignRight | Indent | Nindent | Repeat | Trunc => (&[I, S], None),
            Substr => (&[I, I, S], None),
            Round => (&[Any, I], Some(F)),
            GoReplace => (&[S, S, S, I], None),
        }
    }
}

fn byte_slice(s: &str, a: usize, b: usize) -> String {
    match s.get(a..b) {
        Some(x) => x.to_string(),
        None => String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned(),
    }
}

fn check_size(n: usize) -> Result<(), CallError> {
    if n > MAX_OUTPUT {
        Err("output too large".into())
    } else {
        Ok(())
    }
}

fn repeat_checked(s: &str, n: i64) -> Result<String, CallError> {
    if n < 0 {
        return Err("strings: negative Repeat count".into());
    }
    check_size(s.len().saturating_mul(usize::try_from(n).unwrap_or(usize::MAX)))?;
    Ok(s.repeat(n as usize))
}

fn replace_checked(s: &str, old: &str, new: &str, n: i64) -> Result<String, CallError> {
    let count = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    let count = if n < 0 { count } else { count.min(n as usize) };
    check_size(s.len().saturating_add(count.saturating_mul(new.len())))?;
    Ok(if n < 0 { s.replace(old, new) } else { s.replacen(old, new, n as usize) })
}

fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = ' ';
    for c in s.chars() {
        let sep = if (prev as u32) <= 0x7f {
            !(prev.is_ascii_alphanumeric() || prev == '_')
        } else if prev.is_alphabetic() || prev.is_numeric() {
            false
        } else {
            prev.is_whitespace()
        };
        if sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Decimal arithmetic like shopspring/decimal on `NewFromFloat` inputs.
fn decimal_op(
    first: f64,
    rest: &[Value],
    op: fn(f64, f64) -> Option<f64>,
) -> Result<Value, CallError> {
    let check = |f: f64| {
        if f.is_finite() {
            Ok(f)
        } else {
            Err(CallError::Plain(format!("cannot create a decimal from {}", go_float_v(f))))
        }
    };
    let mut acc = check(first)?;
    for v in rest {
        let x = check(to_float64(v))?;
        acc = op(acc, x).ok_or_else(|| CallError::Plain("decimal division by zero".to_string()))?;
    }
    Ok(Value::Float(acc))
}

/// A decimal number `m × 10^e` built from a float's shortest representation.
fn to_decimal(f: f64) -> Option<(i128, i32)> {
    let s = format!("{:e}", f);
    let (mant, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let neg = mant.starts_with('-');
    let mant = mant.trim_start_matches('-');
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{ip}{fp}");
    let m: i128 = digits.parse().ok()?;
    Some((if neg { -m } else { m }, exp - fp.len() as i32))
}

fn decimal_to_f64(m: i128, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(f64::NAN)
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn align(a: (i128, i32), b: (i128, i32)) -> Option<(i128, i128, i32)> {
    let e = a.1.min(b.1);
    let am = a.0.checked_mul(pow10((a.1 - e) as u32)?)?;
    let bm = b.0.checked_mul(pow10((b.1 - e) as u32)?)?;
    Some((am, bm, e))
}

fn dec_add(a: f64, b: f64) -> Option<f64> {
    let r = (|| {
        let (x, y, e) = align(to_decimal(a)?, to_decimal(b)?)?;
        Some(decimal_to_f64(x.checked_add(y)?, e))
    })();
    Some(r.unwrap_or(a + b))
}

fn dec_sub(a: f64, b: f64) -> Option<f64> {
    dec_add(a, -b)
}

fn dec_mul(a: f64, b: f64) -> Option<f64> {
    let r = (|| {
        let (x, ex) = to_decimal(a)?;
        let (y, ey) = to_decimal(b)?;
        Some(decimal_to_f64(x.checked_mul(y)?, ex + ey))
    })();
    Some(r.unwrap_or(a * b))
}

fn dec_div(a: f64, b: f64) -> Option<f64> {
    if b == 0.0 {
        return None;
    }
    let r = (|| {
        // round(a / b, 16 places), half away from zero
        let (x, ex) = to_decimal(a)?;
        let (y, ey) = to_decimal(b)?;
        let shift = ex - ey + 16;
        let (num, den) = if shift >= 0 {
            (x.checked_mul(pow10(shift as u32)?)?, y)
        } else {
            (x, y.checked_mul(pow10((-shift) as u32)?)?)
        };
        let q = num / den;
        let r = num % den;
        let q = if r.checked_abs()?.checked_mul(2)? >= den.checked_abs()? {
            if (num < 0) != (den < 0) {
                q - 1
            } else {
                q + 1
            }
        } else {
            q
        };
        Some(decimal_to_f64(q, -16))
    })();
    Some(r.unwrap_or(a / b))
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn go_eq(a: &Value, rest: &[Value]) -> Result<bool, CallError> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in rest {
        let k2 = basic_kind(b);
        let t = if k1 != k2 {
            if k1 != Kind::Invalid && k2 != Kind::Invalid {
                return Err("incompatible types for comparison".into());
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x == y,
                (Value::Nil, Value::Nil) => true,
                (Value::Time(x), Value::Time(y)) => x == y,
                (x, _) => return Err(format!("non-comparable type {}", x.type_name()).into()),
            }
        };
        if t {
            return Ok(true);
        }
    }
    Ok(false)
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, CallError> {
    let (k1, k2) = (basic_kind(a), basic_kind(b));
    if matches!(k1, Kind::Invalid | Kind::Other | Kind::Bool)
        || matches!(k2, Kind::Invalid | Kind::Other | Kind::Bool)
    {
        if k1 == k2 || k1 == Kind::Bool || k2 == Kind::Bool {
            return Err("invalid type for comparison".into());
        }
        if matches!(k1, Kind::Invalid | Kind::Other) || matches!(k2, Kind::Invalid | Kind::Other) {
            return Err("invalid type for comparison".into());
        }
    }
    if k1 != k2 {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x < y,
        _ => return Err("invalid type for comparison".into()),
    })
}

fn empty(v: &Value, labels: &Labels) -> bool {
    match v {
        Value::Time(_) => false,
        v => !truth(v, labels),
    }
}

impl State<'_> {
    fn call(&mut self, f: Func, a: Vec<Value>) -> Result<Value, CallError> {
        use Func::*;
        let s = |i: usize| as_str(&a[i]);
        let i = |i: usize| as_int(&a[i]);
        Ok(match f {
            And | Or => Value::Nil, // handled lazily by the caller
            Not => Value::Bool(!truth(&a[0], self.labels)),
            Len => match &a[0] {
                Value::Str(x) => Value::Int(x.len() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                Value::Map(m) => Value::Int(m.len() as i64),
                Value::Dot => Value::Int(self.labels.len() as i64),
                Value::Nil => return Err("len of nil pointer".into()),
                v => return Err(format!("len of type {}", v.type_name()).into()),
            },
            Index => self.index(&a[0], &a[1..])?,
            Slice => go_slice(&a[0], &a[1..])?,
            Print => Value::Str(self.sprint(&a)),
            Println => {
                let mut out = String::new();
                for (k, v) in a.iter().enumerate() {
                    if k > 0 {
                        out.push(' ');
                    }
                    fmt_v(v, self.labels, &mut out);
                }
                out.push('\n');
                Value::Str(out)
            }
            Printf => Value::Str(go_sprintf(s(0), &a[1..], self.labels)?),
            Html | Js | Urlquery => {
                let text = match a.as_slice() {
                    [Value::Str(x)] => x.clone(),
                    _ => self.sprint(&a),
                };
                Value::Str(match f {
                    Html => html_escape(&text),
                    Js => js_escape(&text),
                    _ => query_escape(&text),
                })
            }
            Eq => Value::Bool(go_eq(&a[0], &a[1..])?),
            Ne => Value::Bool(!go_eq(&a[0], &a[1..])?),
            Lt => Value::Bool(go_lt(&a[0], &a[1])?),
            Le => Value::Bool(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?),
            Gt => Value::Bool(!(go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?)),
            Ge => Value::Bool(!go_lt(&a[0], &a[1])?),
            Line => Value::Str(self.line.to_string()),
            Timestamp => Value::Time(GoTime::from_unix_nanos(self.ts_ns)),
            Now => Value::Time(GoTime::now()),
            Date => {
                let t = match &a[1] {
                    Value::Time(t) => t.clone(),
                    Value::Int(x) | Value::Int64(x) => GoTime::utc(*x, 0),
                    _ => GoTime::now(),
                };
                Value::Str(go_format_time(&t.to_utc(), s(0)))
            }
            Duration | DurationSeconds => {
                let ns = parse_go_duration(s(0))?;
                Value::Float((ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9)
            }
            ToDate => Value::Time(go_parse_time(s(0), s(1)).unwrap_or_else(GoTime::zero)),
            ToDateInZone => {
                let zone = load_zone(s(1));
                Value::Time(
                    go_parse_time_in(s(0), s(2), zone.as_deref()).unwrap_or_else(GoTime::zero),
                )
            }
            UnixEpoch => Value::Str(as_time(&a[0]).secs.to_string()),
            UnixEpochMillis => Value::Str(as_time(&a[0]).unix_milli().to_string()),
            UnixEpochNanos => Value::Str(as_time(&a[0]).unix_nano().to_string()),
            UnixToTime => Value::Time(unix_to_time(s(0))?),
            AlignLeft | AlignRight => {
                let (count, src) = (i(0), s(1));
                let n = src.chars().count() as i64;
                if count < 0 || count == n {
                    Value::Str(src.to_string())
                } else if count > n {
                    let pad = repeat_checked(" ", count - n)?;
                    Value::Str(if f == AlignLeft {
                        format!("{src}{pad}")
                    } else {
                        format!("{pad}{src}")
                    })
                } else if f == AlignLeft {
                    Value::Str(src.chars().take(count as usize).collect())
                } else {
                    Value::Str(src.chars().skip((n - count) as usize).collect())
                }
            }
            B64enc => Value::Str(base64_encode(s(0).as_bytes())),
            B64dec => {
                let mut v = s(0).to_string();
                let rem = v.len() % 4;
                if rem != 0 && rem != 1 {
                    v.push_str(&"=".repeat(4 - rem));
                }
                Value::Str(match base64_decode(&v) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(e) => e,
                })
            }
            Bytes => Value::Float(parse_bytes(s(0))?),
            Default => {
                if a.len() < 2 || empty(&a[1], self.labels) {
                    a[0].clone()
                } else {
                    a[1].clone()
                }
            }
            FromJson => match serde_json::from_str::<serde_json::Value>(s(0)) {
                Ok(j) => Value::from_json(j),
                Err(_) => Value::Nil,
            },
            Lower | GoToLower => Value::Str(s(0).to_lowercase()),
            Upper | GoToUpper => Value::Str(s(0).to_uppercase()),
            Title => Value::Str(go_title(s(0))),
            Trim | GoTrimSpace => Value::Str(s(0).trim().to_string()),
            Indent | Nindent => {
                let pad = repeat_checked(" ", i(0))?;
                let body = replace_checked(s(1), "\n", &format!("\n{pad}"), -1)?;
                check_size(body.len() + pad.len() + 1)?;
                Value::Str(if f == Nindent {
                    format!("\n{pad}{body}")
                } else {
                    format!("{pad}{body}")
                })
            }
            Repeat => Value::Str(repeat_checked(s(1), i(0))?),
            Replace => Value::Str(replace_checked(s(2), s(0), s(1), -1)?),
            GoReplace => Value::Str(replace_checked(s(0), s(1), s(2), i(3))?),
            Substr => {
                let (start, end, src) = (i(0), i(1), s(2));
                let len = src.len() as i64;
                let oob = |a: i64, b: i64| -> CallError {
                    format!("runtime error: slice bounds out of range [{a}:{b}] with length {len}")
                        .into()
                };
                if start < 0 {
                    if end < 0 || end > len {
                        return Err(oob(0, end));
                    }
                    Value::Str(byte_slice(src, 0, end as usize))
                } else if end < 0 || end > len {
                    if start > len {
                        return Err(oob(start, len));
                    }
                    Value::Str(byte_slice(src, start as usize, len as usize))
                } else {
                    if start > end {
                        return Err(oob(start, end));
                    }
                    Value::Str(byte_slice(src, start as usize, end as usize))
                }
            }
            Trunc => {
                let (c, src) = (i(0), s(1));
                let len = src.len() as i64;
                if c < 0 && len + c > 0 {
                    Value::Str(byte_slice(src, (len + c) as usize, len as usize))
                } else if c >= 0 && len > c {
                    Value::Str(byte_slice(src, 0, c as usize))
                } else {
                    Value::Str(src.to_string())
                }
            }
            TrimAll => Value::Str(s(1).trim_matches(|c| s(0).contains(c)).to_string()),
            TrimPrefix => Value::Str(s(1).strip_prefix(s(0)).unwrap_or(s(1)).to_string()),
            TrimSuffix => Value::Str(s(1).strip_suffix(s(0)).unwrap_or(s(1)).to_string()),
            GoTrim => Value::Str(s(0).trim_matches(|c| s(1).contains(c)).to_string()),
            GoTrimLeft => Value::Str(s(0).trim_start_matches(|c| s(1).contains(c)).to_string()),
            GoTrimRight => Value::Str(s(0).trim_end_matches(|c| s(1).contains(c)).to_string()),
            GoTrimPrefix => Value::Str(s(0).strip_prefix(s(1)).unwrap_or(s(0)).to_string()),
            GoTrimSuffix => Value::Str(s(0).strip_suffix(s(1)).unwrap_or(s(0)).to_string()),
            Urlencode => Value::Str(query_escape(s(0))),
            Urldecode => Value::Str(query_unescape(s(0))?),
            Contains => Value::Bool(s(1).contains(s(0))),
            HasPrefix => Value::Bool(s(1).starts_with(s(0))),
            HasSuffix => Value::Bool(s(1).ends_with(s(0))),
            Add => Value::Int64(a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_int64(v)))),
            Sub => Value::Int64(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))),
            Mul => Value::Int64(
                a[1..].iter().fold(to_int64(&a[0]), |acc, v| acc.wrapping_mul(to_int64(v))),
            ),
            Div | Mod => {
                let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
                if y == 0 {
                    return Err("runtime error: integer divide by zero".into());
                }
                Value::Int64(if f == Div { x.wrapping_div(y) } else { x.wrapping_rem(y) })
            }
            Addf => decimal_op(0.0, &a, dec_add)?,
            Subf => decimal_op(to_float64(&a[0]), &a[1..], dec_sub)?,
            Mulf => decimal_op(to_float64(&a[0]), &a[1..], dec_mul)?,
            Divf => decimal_op(to_float64(&a[0]), &a[1..], dec_div)?,
            Max => Value::Int64(a[1..].iter().fold(to_int64(&a[0]), |acc, v| acc.max(to_int64(v)))),
            Min => Value::Int64(a[1..].iter().fold(to_int64(&a[0]), |acc, v| acc.min(to_int64(v)))),
            Maxf => Value::Float(
                a[1..].iter().fold(to_float64(&a[0]), |acc, v| go_max(acc, to_float64(v))),
            ),
            Minf => Value::Float(
                a[1..].iter().fold(to_float64(&a[0]), |acc, v| go_min(acc, to_float64(v))),
            ),
            Ceil => Value::Float(to_float64(&a[0]).ceil()),
            Floor => Value::Float(to_float64(&a[0]).floor()),
            Round => {
                let round_on = a.get(2).map_or(0.5, to_float64);
                let val = to_float64(&a[0]);
                let pow = 10f64.powf(i(1) as f64);
                let digit = pow * val;
                let frac = digit - digit.trunc();
                let r = if frac >= round_on { digit.ceil() } else { digit.floor() };
                Value::Float(r / pow)
            }
            Float64 => Value::Float(to_float64(&a[0])),
            Int => Value::Int(to_int64(&a[0])),
            Count => Value::Int(self.tmpl.regex(s(0))?.find_iter(s(1)).count() as i64),
            RegexReplaceAll | RegexReplaceAllLiteral => {
                let re = self.tmpl.regex(s(0))?;
                let (src, repl) = (s(1), s(2));
                let matches = re.find_iter(src).count();
                let dollars = if f == RegexReplaceAll { repl.matches('$').count() } else { 0 };
                let bound =
                    src.len().saturating_add(matches.saturating_mul(repl.len())).saturating_add(
                        matches.min(1).saturating_mul(dollars.saturating_mul(src.len())),
                    );
                check_size(bound)?;
                Value::Str(if f == RegexReplaceAll {
                    re.replace_all(src, repl).into_owned()
                } else {
                    re.replace_all(src, regex::NoExpand(repl)).into_owned()
                })
            }
        })
    }

    fn sprint(&self, a: &[Value]) -> String {
        let mut out = String::new();
        let mut prev_string = false;
        for (k, v) in a.iter().enumerate() {
            let is_string = matches!(v, Value::Str(_));
            if k > 0 && !is_string && !prev_string {
                out.push(' ');
            }
            fmt_v(v, self.labels, &mut out);
            prev_string = is_string;
        }
        out
    }

    fn index(&self, item: &Value, idx: &[Value]) -> Result<Value, CallError> {
        let mut item = item.clone();
        for k in idx {
            item = match &item {
                Value::List(l) => {
                    let n = index_arg(k, l.len())?;
                    if n >= l.len() {
                        return Err(format!("index out of range: {n}").into());
                    }
                    l[n].clone()
                }
                Value::Str(s) => {
                    let n = index_arg(k, s.len())?;
                    if n >= s.len() {
                        return Err(format!("index out of range: {n}").into());
                    }
                    Value::Int(s.as_bytes()[n] as i64)
                }
                Value::Map(m) => match k {
                    Value::Str(key) => m.get(key).cloned().unwrap_or(Value::Nil),
                    Value::Nil => Value::Nil,
                    v => {
                        return Err(
                            format!("value has type {}; should be string", v.type_name()).into()
                        )
                    }
                },
                Value::Dot => match k {
                    Value::Str(key) => Value::Str(self.labels.get(key).unwrap_or("").to_string()),
                    Value::Nil => Value::Str(String::new()),
                    v => {
                        return Err(
                            format!("value has type {}; should be string", v.type_name()).into()
                        )
                    }
                },
                Value::Nil => return Err("index of untyped nil".into()),
                v => return Err(format!("can't index item of type {}", v.type_name()).into()),
            };
        }
        Ok(item)
    }
}

fn index_arg(k: &Value, cap: usize) -> Result<usize, CallError> {
    match k {
        Value::Int(x) | Value::Int64(x) => {
            if *x < 0 || *x as u64 > cap as u64 {
                Err(format!("index out of range: {x}").into())
            } else {
                Ok(*x as usize)
            }
        }
        Value::Nil => Err("cannot index slice/array with nil".into()),
        v => Err(format!("cannot index slice/array with type {}", v.type_name()).into()),
    }
}

fn go_slice(item: &Value, idx: &[Value]) -> Result<Value, CallError> {
    let len = match item {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name()).into()),
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()).into());
    }
    if idx.len() == 3 && matches!(item, Value::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let mut ix = [0usize, len, len];
    for (n, k) in idx.iter().enumerate() {
        ix[n] = index_arg(k, len)?;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]).into());
    }
    Ok(match item {
        Value::Str(s) => Value::Str(byte_slice(s, ix[0], ix[1])),
        Value::List(l) => Value::List(Rc::new(l[ix[0]..ix[1]].to_vec())),
        _ => Value::Nil,
    })
}

fn unix_to_time(epoch: &str) -> Result<GoTime, CallError> {
    let body = epoch.strip_prefix(['+', '-']).unwrap_or(epoch);
    let parsed = if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        epoch.parse::<i64>().map_err(|_| "value out of range")
    } else {
        Err("invalid syntax")
    };
    let i = match parsed {
        Ok(i) => i,
        Err(why) => {
            return Err(format!(
                "unable to parse time '{epoch}': strconv.ParseInt: parsing {}: {why}",
                skald_model::labels::go_quote(epoch)
            )
            .into())
        }
    };
    Ok(match epoch.len() {
        5 => GoTime::utc(i.wrapping_mul(86_400), 0),
        10 => GoTime::utc(i, 0),
        13 => GoTime::from_unix_nanos(i.wrapping_mul(1_000_000)),
        16 => GoTime::from_unix_nanos(i.wrapping_mul(1000)),
        19 => GoTime::from_unix_nanos(i),
        _ => return Err(format!("unable to parse time '{epoch}': %!w(<nil>)").into()),
    })
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_go_duration(orig: &str) -> Result<i64, CallError> {
    let invalid = || {
        CallError::Plain(format!("time: invalid duration {}", skald_model::labels::go_quote(orig)))
    };
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let ndig = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let pre = ndig > 0;
        let mut v: u64 = 0;
        for &c in &b[..ndig] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as u64))
                .ok_or_else(invalid)?;
        }
        s = &s[ndig..];
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.starts_with('.') {
            s = &s[1..];
            let nf = s.bytes().take_while(|c| c.is_ascii_digit()).count();
            post = nf > 0;
            let mut overflow = false;
            for &c in &s.as_bytes()[..nf] {
                if overflow {
                    continue;
                }
                match frac.checked_mul(10).and_then(|f| f.checked_add((c - b'0') as u64)) {
                    Some(f) if f < (1 << 62) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            s = &s[nf..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let nu = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        if nu == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                skald_model::labels::go_quote(orig)
            )
            .into());
        }
        let u = &s[..nu];
        s = &s[nu..];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    skald_model::labels::go_quote(u),
                    skald_model::labels::go_quote(orig)
                )
                .into())
            }
        };
        if v > (1u64 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            v = v.checked_add((frac as f64 * (unit as f64 / scale)) as u64).ok_or_else(invalid)?;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        d = d.checked_add(v).ok_or_else(invalid)?;
        if d > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i128).wrapping_neg() as i64);
    }
    if d > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// go-humanize's `ParseBytes`.
fn parse_bytes(s: &str) -> Result<f64, CallError> {
    let last = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',')).unwrap_or(s.len());
    let num = s[..last].replace(',', "");
    let f: f64 = match go_parse_float(&num) {
        Some(f) if !num.is_empty() => f,
        _ => {
            return Err(format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                skald_model::labels::go_quote(&num)
            )
            .into())
        }
    };
    let extra = s[last..].trim().to_lowercase();
    let m: u64 = match extra.as_str() {
        "b" | "" => 1,
        "kib" | "ki" => 1 << 10,
        "kb" | "k" => 1_000,
        "mib" | "mi" => 1 << 20,
        "mb" | "m" => 1_000_000,
        "gib" | "gi" => 1 << 30,
        "gb" | "g" => 1_000_000_000,
        "tib" | "ti" => 1 << 40,
        "tb" | "t" => 1_000_000_000_000,
        "pib" | "pi" => 1 << 50,
        "pb" | "p" => 1_000_000_000_000_000,
        "eib" | "ei" => 1 << 60,
        "eb" | "e" => 1_000_000_000_000_000_000,
        _ => return Err(format!("unhandled size name: {extra}").into()),
    };
    let f = f * m as f64;
    if f >= u64::MAX as f64 {
        return Err(format!("too large: {s}").into());
    }
    Ok((f as u64) as f64)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 decoding with padding; `\r` and `\n` are ignored like Go does.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let bad = |i: usize| format!("illegal base64 data at input byte {i}");
    let chars: Vec<(usize, u8)> =
        s.bytes().enumerate().filter(|(_, c)| *c != b'\r' && *c != b'\n').collect();
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    let mut k = 0;
    while k < chars.len() {
        let mut vals = [0u32; 4];
        let mut n = 0;
        while n < 4 {
            let Some(&(pos, c)) = chars.get(k) else {
                return Err(bad(chars.get(k.saturating_sub(n)).map_or(s.len(), |x| x.0)));
            };
            if c == b'=' {
                // padding: only in the last quantum, after at least two symbols
                if n < 2 {
                    return Err(bad(pos));
                }
                let need = 4 - n;
                let pads = chars[k..].iter().take(need).filter(|(_, c)| *c == b'=').count();
                if pads != need {
                    return Err(bad(chars.get(k + pads).map_or(s.len(), |x| x.0)));
                }
                if k + need != chars.len() {
                    return Err(bad(chars[k + need].0));
                }
                k = chars.len();
                break;
            }
            let Some(v) = B64.iter().position(|&b| b == c) else {
                return Err(bad(pos));
            };
            vals[n] = v as u32;
            n += 1;
            k += 1;
        }
        let word = vals[0] << 18 | vals[1] << 12 | vals[2] << 6 | vals[3];
        let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        out.extend_from_slice(&bytes[..n.saturating_sub(1).min(3)]);
    }
    Ok(out)
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn query_unescape(s: &str) -> Result<String, CallError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]).into_owned();
                        return Err(format!(
                            "invalid URL escape {}",
                            skald_model::labels::go_quote(&bad)
                        )
                        .into());
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Go value formatting (fmt)
// ---------------------------------------------------------------------------------------------

/// Formats like Go's `%v`.
fn fmt_v(v: &Value, labels: &Labels, out: &mut String) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&go_float_v(*f)),
        Value::Str(s) => out.push_str(s),
        Value::Time(t) => out.push_str(&time_string(t)),
        Value::List(l) => {
            out.push('[');
            for (k, e) in l.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                fmt_v(e, labels, out);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (k, (key, e)) in m.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                fmt_v(e, labels, out);
            }
            out.push(']');
        }
        Value::Dot => {
            out.push_str("map[");
            for (k, l) in labels.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{}:{}", l.name, l.value);
            }
            out.push(']');
        }
    }
}

/// Decimal digits and decimal-point position of `f.abs()` rounded to `prec` significant
/// digits (`None`: shortest representation that round-trips).
fn float_digits(f: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    (digits, exp + 1)
}

fn fmt_e(digits: &str, dp: i32, prec: usize, upper: bool, zero: bool) -> String {
    let mut out = String::new();
    let d: Vec<char> = digits.chars().collect();
    out.push(d.first().copied().unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        for k in 1..=prec {
            out.push(d.get(k).copied().unwrap_or('0'));
        }
    }
    let exp = if zero { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(out, "{:02}", exp.abs());
    out
}

fn fmt_f_digits(digits: &str, dp: i32, prec: usize) -> String {
    let mut out = String::new();
    let d: Vec<char> = digits.chars().collect();
    if dp <= 0 {
        out.push('0');
    } else {
        for k in 0..dp as usize {
            out.push(d.get(k).copied().unwrap_or('0'));
        }
    }
    if prec > 0 {
        out.push('.');
        for k in 0..prec as i64 {
            let idx = dp as i64 + k;
            out.push(if idx < 0 { '0' } else { d.get(idx as usize).copied().unwrap_or('0') });
        }
    }
    out
}

/// Go's `%g` (`prec` = None for shortest) without sign handling.
fn fmt_g_abs(f: f64, prec: Option<usize>, upper: bool, sharp: bool) -> String {
    if f == 0.0 {
        return match prec {
            Some(p) if sharp => {
                format!("0.{}", "0".repeat(p.max(1) - 1)).trim_end_matches('.').to_string()
            }
            _ => "0".to_string(),
        };
    }
    let p = prec.map(|p| p.max(1));
    let (mut digits, dp) = float_digits(f, p);
    if !sharp {
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
    }
    let nd = digits.len() as i32;
    let mut eprec = match p {
        Some(p) => p as i32,
        None => 6,
    };
    if p.is_some() && eprec > nd && nd >= dp {
        eprec = nd;
    }
    if prec.is_none() {
        eprec = 6;
    }
    let exp = dp - 1;
    if exp < -4 || exp >= eprec {
        fmt_e(&digits, dp, (nd - 1).max(0) as usize, upper, false)
    } else {
        fmt_f_digits(&digits, dp, (nd - dp).max(0) as usize)
    }
}

/// Go's `%v` for a float64.
fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".to_string() } else { "-Inf".to_string() };
    }
    let body = fmt_g_abs(f, None, false, false);
    if f.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, sp: &Spec, numeric: bool) -> String {
    let Some(w) = sp.width else { return s };
    let n = s.chars().count();
    if n >= w {
        return s;
    }
    let fill = w - n;
    if sp.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if sp.zero && numeric {
        // zeros go after the sign
        let (sign, rest) = match s.chars().next() {
            Some(c @ ('+' | '-' | ' ')) => (c.to_string(), &s[1..]),
            _ => (String::new(), s.as_str()),
        };
        format!("{sign}{}{rest}", "0".repeat(fill))
    } else if sp.zero {
        format!("{}{s}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn sign_prefix(neg: bool, sp: &Spec) -> &'static str {
    if neg {
        "-"
    } else if sp.plus {
        "+"
    } else if sp.space {
        " "
    } else {
        ""
    }
}

fn fmt_int(i: i64, verb: char, sp: &Spec) -> Option<String> {
    let neg = i < 0;
    let mag = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => mag.to_string(),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'o' | 'O' => format!("{mag:o}"),
        'b' => format!("{mag:b}"),
        'c' => {
            return Some(pad(char::from_u32(i as u32).unwrap_or('\u{FFFD}').to_string(), sp, false))
        }
        'q' => {
            let c = char::from_u32(i as u32).unwrap_or('\u{FFFD}');
            let q = match c {
                '\'' => "'\\''".to_string(),
                c => {
                    let g = skald_model::labels::go_quote(&c.to_string());
                    format!("'{}'", &g[1..g.len() - 1].replace("\\\"", "\""))
                }
            };
            return Some(pad(q, sp, false));
        }
        'U' => return Some(pad(format!("U+{:04X}", i), sp, false)),
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' | 's' | 't' => return None,
        _ => return None,
    };
    if let Some(p) = sp.prec {
        if p == 0 && i == 0 {
            digits.clear();
        }
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    let prefix = match verb {
        'x' if sp.sharp => "0x",
        'X' if sp.sharp => "0X",
        'o' if sp.sharp => "0",
        'O' => "0o",
        _ => "",
    };
    let s = format!("{}{prefix}{digits}", sign_prefix(neg, sp));
    let numeric = sp.prec.is_none();
    Some(pad(s, sp, numeric))
}

fn fmt_float(f: f64, verb: char, sp: &Spec) -> Option<String> {
    let upper = matches!(verb, 'E' | 'G' | 'F');
    let body = if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        "Inf".to_string()
    } else {
        match verb {
            'v' | 'g' | 'G' => fmt_g_abs(f, sp.prec, upper, sp.sharp),
            'e' | 'E' => {
                let p = sp.prec.unwrap_or(6);
                if f == 0.0 {
                    fmt_e("0", 1, p, upper, true)
                } else {
                    let (d, dp) = float_digits(f, Some(p + 1));
                    fmt_e(&d, dp, p, upper, false)
                }
            }
            'f' | 'F' => format!("{:.*}", sp.prec.unwrap_or(6), f.abs()),
            _ => return None,
        }
    };
    let neg = f.is_sign_negative() && !f.is_nan();
    let mut sign = sign_prefix(neg, sp);
    if f.is_infinite() && sign.is_empty() && verb == 'v' {
        sign = "+";
    }
    let s = format!("{sign}{body}");
    Some(pad(s, sp, f.is_finite()))
}

fn fmt_str(s: &str, verb: char, sp: &Spec) -> Option<String> {
    let s = match sp.prec {
        Some(p) if matches!(verb, 's' | 'v' | 'q') => s.chars().take(p).collect::<String>(),
        _ => s.to_string(),
    };
    let out = match verb {
        's' | 'v' if !(verb == 'v' && sp.sharp) => s,
        'v' | 'q' => {
            if sp.sharp
                && verb == 'q'
                && !s.contains('`')
                && !s.chars().any(|c| c.is_control() && c != '\t')
            {
                format!("`{s}`")
            } else {
                skald_model::labels::go_quote(&s)
            }
        }
        'x' | 'X' => {
            let mut o = String::new();
            for (k, b) in s.as_bytes().iter().enumerate() {
                if sp.space && k > 0 {
                    o.push(' ');
                }
                if sp.sharp && (sp.space || k == 0) {
                    o.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                let _ = if verb == 'x' { write!(o, "{b:02x}") } else { write!(o, "{b:02X}") };
            }
            o
        }
        _ => return None,
    };
    Some(pad(out, sp, false))
}

/// Formats one operand for a verb; `None` means "bad verb".
fn fmt_arg(v: &Value, verb: char, sp: &Spec, labels: &Labels) -> Option<String> {
    if verb == 'T' {
        return Some(pad(v.type_name().to_string(), sp, false));
    }
    match v {
        Value::Nil => match verb {
            'v' => Some(pad("<nil>".to_string(), sp, false)),
            _ => None,
        },
        Value::Bool(b) => match verb {
            't' | 'v' => Some(pad(b.to_string(), sp, false)),
            _ => None,
        },
        Value::Int(i) | Value::Int64(i) => fmt_int(*i, verb, sp),
        Value::Float(f) => fmt_float(*f, verb, sp),
        Value::Str(s) => fmt_str(s, verb, sp),
        Value::Time(t) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(&time_string(t), verb, sp),
            _ => None,
        },
        Value::List(l) => {
            let mut out = String::from("[");
            for (k, e) in l.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(
                    &fmt_arg(e, verb, sp, labels).unwrap_or_else(|| bad_verb(e, verb, labels)),
                );
            }
            out.push(']');
            Some(out)
        }
        Value::Map(m) => {
            let mut out = String::from("map[");
            for (k, (key, e)) in m.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                let kv = Value::Str(key.clone());
                out.push_str(
                    &fmt_arg(&kv, verb, sp, labels).unwrap_or_else(|| bad_verb(&kv, verb, labels)),
                );
                out.push(':');
                out.push_str(
                    &fmt_arg(e, verb, sp, labels).unwrap_or_else(|| bad_verb(e, verb, labels)),
                );
            }
            out.push(']');
            Some(out)
        }
        Value::Dot => {
            let mut out = String::from("map[");
            for (k, l) in labels.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(
                    &fmt_str(&l.name, verb, sp)
                        .unwrap_or_else(|| bad_verb(&Value::Str(l.name.clone()), verb, labels)),
                );
                out.push(':');
                out.push_str(
                    &fmt_str(&l.value, verb, sp)
                        .unwrap_or_else(|| bad_verb(&Value::Str(l.value.clone()), verb, labels)),
                );
            }
            out.push(']');
            Some(out)
        }
    }
}

fn bad_verb(v: &Value, verb: char, labels: &Labels) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        v => {
            let mut s = String::new();
            fmt_v(v, labels, &mut s);
            format!("%!{verb}({}={s})", v.type_name())
        }
    }
}

/// Go's `fmt.Sprintf` for the supported verbs.
fn go_sprintf(format: &str, args: &[Value], labels: &Labels) -> Result<String, CallError> {
    let mut out = String::new();
    let mut argn = 0usize;
    let mut reordered = false;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if out.len() > MAX_OUTPUT {
            return Err("output too large".into());
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut sp = Spec::default();
        // flags
        while let Some(&(_, f)) = chars.peek() {
            match f {
                '-' => sp.minus = true,
                '+' => sp.plus = true,
                '#' => sp.sharp = true,
                ' ' => sp.space = true,
                '0' => sp.zero = true,
                _ => break,
            }
            chars.next();
        }
        let mut bad_index = false;
        let mut arg_index = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                             argn: &mut usize| {
            if chars.peek().map(|x| x.1) == Some('[') {
                chars.next();
                let mut n = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    chars.next();
                    if d == ']' {
                        break;
                    }
                    n.push(d);
                }
                match n.parse::<usize>() {
                    Ok(k) if k >= 1 && k <= args.len() => {
                        *argn = k - 1;
                        reordered = true;
                    }
                    _ => bad_index = true,
                }
            }
        };
        arg_index(&mut chars, &mut argn);
        // width
        if chars.peek().map(|x| x.1) == Some('*') {
            chars.next();
            match args.get(argn) {
                Some(Value::Int(w) | Value::Int64(w)) if w.unsigned_abs() <= 1_000_000 => {
                    if *w < 0 {
                        sp.minus = true;
                    }
                    sp.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let mut w = String::new();
            while let Some(&(_, d)) = chars.peek().filter(|x| x.1.is_ascii_digit()) {
                w.push(d);
                chars.next();
            }
            if !w.is_empty() {
                match w.parse::<usize>() {
                    Ok(n) if n <= 1_000_000 => sp.width = Some(n),
                    _ => out.push_str("%!(BADWIDTH)"),
                }
            }
        }
        // precision
        if chars.peek().map(|x| x.1) == Some('.') {
            chars.next();
            arg_index(&mut chars, &mut argn);
            if chars.peek().map(|x| x.1) == Some('*') {
                chars.next();
                match args.get(argn) {
                    Some(Value::Int(p) | Value::Int64(p)) if (0..=1_000_000).contains(p) => {
                        sp.prec = Some(*p as usize)
                    }
                    _ => out.push_str("%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let mut p = String::new();
                while let Some(&(_, d)) = chars.peek().filter(|x| x.1.is_ascii_digit()) {
                    p.push(d);
                    chars.next();
                }
                match p.parse::<usize>() {
                    Ok(n) if n <= 1_000_000 => sp.prec = Some(n),
                    Ok(_) => out.push_str("%!(BADPREC)"),
                    Err(_) => sp.prec = Some(0),
                }
            }
        }
        arg_index(&mut chars, &mut argn);
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if sp.minus {
            sp.zero = false;
        }
        if verb == '%' {
            out.push('%');
            continue;
        }
        if bad_index {
            let _ = write!(out, "%!{verb}(BADINDEX)");
            continue;
        }
        let Some(v) = args.get(argn) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argn += 1;
        match fmt_arg(v, verb, &sp, labels) {
            Some(s) => out.push_str(&s),
            None => out.push_str(&bad_verb(v, verb, labels)),
        }
    }
    if !reordered && argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match v {
                Value::Nil => out.push_str("<nil>"),
                v => {
                    out.push_str(v.type_name());
                    out.push('=');
                    fmt_v(v, labels, &mut out);
                }
            }
        }
        out.push(')');
    }
    check_size(out.len())?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Go time layouts
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    TZ,
    /// Numeric zone: (`Z` for UTC?, colons?, minutes?, seconds?)
    NumTZ {
        iso: bool,
        colon: bool,
        minutes: bool,
        seconds: bool,
    },
    /// Fractional seconds: (digits, trim trailing zeros?, separator)
    Frac {
        n: usize,
        trim: bool,
        sep: u8,
    },
}

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Splits `layout` into (literal prefix, std chunk and its length).
fn next_std(layout: &str) -> (usize, Option<(Std, usize)>) {
    let l = layout.as_bytes();
    let has = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    let lower_at = |i: usize| l.get(i).is_some_and(|c| c.is_ascii_lowercase());
    let digit_at = |i: usize| l.get(i).is_some_and(|c| c.is_ascii_digit());
    for i in 0..l.len() {
        let found = match l[i] {
            b'J' if has(i, "January") => Some((Std::LongMonth, 7)),
            b'J' if has(i, "Jan") && !lower_at(i + 3) => Some((Std::Month, 3)),
            b'M' if has(i, "Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, "Mon") && !lower_at(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if has(i, "MST") => Some((Std::TZ, 3)),
            b'0' if has(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'0' if l.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => Some((
                [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][(l[i + 1] - b'1') as usize],
                2,
            )),
            b'1' if has(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if has(i, "_2006") => return (i + 1, Some((Std::LongYear, 4))),
            b'_' if has(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'_' if has(i, "_2") => Some((Std::UnderDay, 2)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            b'-' | b'Z' => {
                let iso = l[i] == b'Z';
                let tz = |colon, minutes, seconds| Std::NumTZ { iso, colon, minutes, seconds };
                let p = if iso { "Z" } else { "-" };
                if has(i, &format!("{p}070000")) {
                    Some((tz(false, true, true), 7))
                } else if has(i, &format!("{p}07:00:00")) {
                    Some((tz(true, true, true), 9))
                } else if has(i, &format!("{p}0700")) {
                    Some((tz(false, true, false), 5))
                } else if has(i, &format!("{p}07:00")) {
                    Some((tz(true, true, false), 6))
                } else if has(i, &format!("{p}07")) {
                    Some((tz(false, false, false), 3))
                } else {
                    None
                }
            }
            b'.' | b',' if l.get(i + 1).is_some_and(|&c| c == b'0' || c == b'9') => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                if !digit_at(j) {
                    Some((Std::Frac { n: j - i - 1, trim: ch == b'9', sep: l[i] }, j - i))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(f) = found {
            return (i, Some(f));
        }
    }
    (l.len(), None)
}

/// Go's `Time.Format`.
fn go_format_time(t: &GoTime, layout: &str) -> String {
    let c = t.civil();
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    loop {
        let (plen, std) = next_std(rest);
        out.push_str(&rest[..plen]);
        let Some((std, slen)) = std else { break };
        rest = &rest[plen + slen..];
        let hour12 = if c.hour.is_multiple_of(12) { 12 } else { c.hour % 12 };
        let _ = match std {
            Std::LongMonth => write!(out, "{}", LONG_MONTHS[(c.month - 1) as usize]),
            Std::Month => write!(out, "{}", &LONG_MONTHS[(c.month - 1) as usize][..3]),
            Std::NumMonth => write!(out, "{}", c.month),
            Std::ZeroMonth => write!(out, "{:02}", c.month),
            Std::LongWeekDay => write!(out, "{}", LONG_DAYS[c.weekday as usize]),
            Std::WeekDay => write!(out, "{}", &LONG_DAYS[c.weekday as usize][..3]),
            Std::Day => write!(out, "{}", c.day),
            Std::UnderDay => write!(out, "{:>2}", c.day),
            Std::ZeroDay => write!(out, "{:02}", c.day),
            Std::UnderYearDay => write!(out, "{:>3}", c.yday),
            Std::ZeroYearDay => write!(out, "{:03}", c.yday),
            Std::Hour => write!(out, "{:02}", c.hour),
            Std::Hour12 => write!(out, "{hour12}"),
            Std::ZeroHour12 => write!(out, "{hour12:02}"),
            Std::Minute => write!(out, "{}", c.minute),
            Std::ZeroMinute => write!(out, "{:02}", c.minute),
            Std::Second => write!(out, "{}", c.second),
            Std::ZeroSecond => write!(out, "{:02}", c.second),
            Std::LongYear => {
                if c.year < 0 {
                    write!(out, "-{:04}", -c.year)
                } else {
                    write!(out, "{:04}", c.year)
                }
            }
            Std::Year => write!(out, "{:02}", c.year.abs() % 100),
            Std::PM => write!(out, "{}", if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => write!(out, "{}", if c.hour >= 12 { "pm" } else { "am" }),
            Std::TZ => match &t.name {
                Some(n) => write!(out, "{n}"),
                None => {
                    let z = t.offset / 60;
                    write!(
                        out,
                        "{}{:02}{:02}",
                        if z < 0 { '-' } else { '+' },
                        z.abs() / 60,
                        z.abs() % 60
                    )
                }
            },
            Std::NumTZ { iso, colon, minutes, seconds } => {
                if iso && t.offset == 0 {
                    out.push('Z');
                } else {
                    let z = t.offset / 60;
                    let abs = t.offset.abs();
                    out.push(if z < 0 { '-' } else { '+' });
                    let _ = write!(out, "{:02}", z.abs() / 60);
                    if minutes {
                        if colon {
                            out.push(':');
                        }
                        let _ = write!(out, "{:02}", z.abs() % 60);
                    }
                    if seconds {
                        if colon {
                            out.push(':');
                        }
                        let _ = write!(out, "{:02}", abs % 60);
                    }
                }
                Ok(())
            }
            Std::Frac { n, trim, sep } => {
                if !(trim && (n == 0 || t.nsec == 0)) {
                    let mut frac = format!("{:09}", t.nsec);
                    frac.truncate(n.min(9));
                    if trim {
                        while frac.ends_with('0') {
                            frac.pop();
                        }
                    }
                    if !frac.is_empty() || !trim {
                        out.push(sep as char);
                        out.push_str(&frac);
                    }
                }
                Ok(())
            }
        };
    }
    out
}

/// Go's `Time.String`.
fn time_string(t: &GoTime) -> String {
    go_format_time(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

fn getnum(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = v.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    if !b.get(1).is_some_and(|c| c.is_ascii_digit()) {
        if fixed {
            return None;
        }
        return Some(((b[0] - b'0') as i64, &v[1..]));
    }
    Some((((b[0] - b'0') * 10 + (b[1] - b'0')) as i64, &v[2..]))
}

fn getnum3(v: &str, fixed: bool) -> Option<(i64, &str)> {
    let n = v.bytes().take(3).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (fixed && n != 3) {
        return None;
    }
    Some((v[..n].parse().ok()?, &v[n..]))
}

fn lookup_name<'a>(names: &[&str], v: &'a str, len: Option<usize>) -> Option<(usize, &'a str)> {
    for (k, name) in names.iter().enumerate() {
        let name = match len {
            Some(n) => &name[..n],
            None => name,
        };
        if v.len() >= name.len() && v.as_bytes()[..name.len()].eq_ignore_ascii_case(name.as_bytes())
        {
            return Some((k, &v[name.len()..]));
        }
    }
    None
}

/// Where Go's `time.LoadLocation` looks for zone files on Unix.
const ZONEINFO_DIRS: [&str; 4] =
    ["/usr/share/zoneinfo", "/usr/share/lib/zoneinfo", "/usr/lib/locale/TZ", "/etc/zoneinfo"];

/// Go's `time.LoadLocation` as sprig's `toDateInZone` uses it: `""` and `"UTC"` are UTC,
/// `"Local"` is the process zone (UTC, as in Loki's images), any other name is a TZif file of
/// the system time zone database. Names with `..` or a leading slash, and unknown names, are
/// errors, for which sprig falls back to UTC: all of these return `None`.
fn load_zone(name: &str) -> Option<Arc<tz::TimeZone>> {
    type Cache = Mutex<HashMap<String, Option<Arc<tz::TimeZone>>>>;
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    if name.is_empty() || name == "UTC" || name == "Local" {
        return None;
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return None;
    }
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(z) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
        return z.clone();
    }
    let zone = ZONEINFO_DIRS
        .iter()
        .find_map(|d| std::fs::read(std::path::Path::new(d).join(name)).ok())
        .and_then(|b| tz::TimeZone::from_tz_data(&b).ok())
        .map(Arc::new);
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.len() < 256 {
        c.insert(name.to_string(), zone.clone());
    }
    zone
}

/// The offset and abbreviation of `zone` at `unix` seconds.
fn zone_at(zone: &tz::TimeZone, unix: i64) -> (i64, String) {
    match zone.find_local_time_type(unix) {
        Ok(t) => (t.ut_offset() as i64, t.time_zone_designation().to_string()),
        Err(_) => (0, "UTC".to_string()),
    }
}

/// A time at `secs` shown in `zone`.
fn time_in_zone(zone: &tz::TimeZone, secs: i64, nsec: u32) -> GoTime {
    let (offset, name) = zone_at(zone, secs);
    GoTime { secs, nsec, offset: offset as i32, name: Some(name) }
}

/// Go's `time.Date` in `zone` for a wall-clock time given as seconds since the epoch as if
/// it were UTC: the zone's offset at that instant is tried first, then re-read at the
/// corrected instant (this picks Go's side of DST gaps and overlaps).
fn date_in_zone(zone: &tz::TimeZone, local: i64, nsec: u32) -> GoTime {
    let (first, _) = zone_at(zone, local);
    let secs = if first == 0 { local } else { local - zone_at(zone, local - first).0 };
    time_in_zone(zone, secs, nsec)
}

/// Go's `Location.lookupName`: the offset of a zone abbreviation, preferring the zone type
/// that was in effect at the time.
fn zone_offset_by_name(zone: &tz::TimeZone, name: &str, unix: i64) -> Option<i64> {
    let types = zone.as_ref().local_time_types();
    for t in types.iter().filter(|t| t.time_zone_designation() == name) {
        let (offset, n) = zone_at(zone, unix - t.ut_offset() as i64);
        if n == name {
            return Some(offset);
        }
    }
    types.iter().find(|t| t.time_zone_designation() == name).map(|t| t.ut_offset() as i64)
}

/// Go's `time.ParseInLocation` with the UTC location; `None` when the value does not match.
fn go_parse_time(layout: &str, value: &str) -> Option<GoTime> {
    go_parse_time_in(layout, value, None)
}

/// Go's `time.ParseInLocation` in `zone` (`None` = UTC); `None` when the value does not
/// match.
fn go_parse_time_in(layout: &str, value: &str, zone: Option<&tz::TimeZone>) -> Option<GoTime> {
    let (mut year, mut month, mut day, mut yday) = (1i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let (mut pm_set, mut am_set) = (false, false);
    let mut utc = false;
    let mut zone_offset: Option<i64> = None;
    let mut zone_name: Option<String> = None;
    let mut layout = layout;
    let mut v = value;
    loop {
        let (plen, std) = next_std(layout);
        let prefix = &layout[..plen];
        v = skip_prefix(v, prefix)?;
        let Some((std, slen)) = std else {
            if !v.is_empty() {
                return None;
            }
            break;
        };
        layout = &layout[plen + slen..];
        match std {
            Std::Year => {
                let (n, r) = getnum(v, true)?;
                year = if n >= 69 { n + 1900 } else { n + 2000 };
                v = r;
            }
            Std::LongYear => {
                if v.len() < 4 || !v.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                    return None;
                }
                year = v[..4].parse().ok()?;
                v = &v[4..];
            }
            Std::Month | Std::LongMonth => {
                let (m, r) =
                    lookup_name(&LONG_MONTHS, v, if std == Std::Month { Some(3) } else { None })?;
                month = m as i64 + 1;
                v = r;
            }
            Std::NumMonth | Std::ZeroMonth => {
                let (n, r) = getnum(v, std == Std::ZeroMonth)?;
                if !(1..=12).contains(&n) {
                    return None;
                }
                month = n;
                v = r;
            }
            Std::WeekDay | Std::LongWeekDay => {
                let (_, r) =
                    lookup_name(&LONG_DAYS, v, if std == Std::WeekDay { Some(3) } else { None })?;
                v = r;
            }
            Std::Day | Std::UnderDay | Std::ZeroDay => {
                if std == Std::UnderDay && v.starts_with(' ') {
                    v = &v[1..];
                }
                let (n, r) = getnum(v, std == Std::ZeroDay)?;
                day = n;
                v = r;
            }
            Std::UnderYearDay | Std::ZeroYearDay => {
                let mut w = v;
                if std == Std::UnderYearDay {
                    w = w.trim_start_matches(' ');
                }
                let (n, r) = getnum3(w, std == Std::ZeroYearDay)?;
                yday = n;
                v = r;
            }
            Std::Hour => {
                let (n, r) = getnum(v, false)?;
                if !(0..24).contains(&n) {
                    return None;
                }
                hour = n;
                v = r;
            }
            Std::Hour12 | Std::ZeroHour12 => {
                let (n, r) = getnum(v, std == Std::ZeroHour12)?;
                if !(0..=12).contains(&n) {
                    return None;
                }
                hour = n;
                v = r;
            }
            Std::Minute | Std::ZeroMinute => {
                let (n, r) = getnum(v, std == Std::ZeroMinute)?;
                if !(0..60).contains(&n) {
                    return None;
                }
                min = n;
                v = r;
            }
            Std::Second | Std::ZeroSecond => {
                let (n, r) = getnum(v, std == Std::ZeroSecond)?;
                if !(0..60).contains(&n) {
                    return None;
                }
                sec = n;
                v = r;
                // a fractional second the layout does not spell out
                let b = v.as_bytes();
                let next_is_frac = matches!(next_std(layout), (0, Some((Std::Frac { .. }, _))));
                if b.len() >= 2
                    && (b[0] == b'.' || b[0] == b',')
                    && b[1].is_ascii_digit()
                    && !next_is_frac
                {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(&v[1..n])?;
                    v = &v[n..];
                }
            }
            Std::PM | Std::Pm => {
                let p = v.get(..2)?;
                match p {
                    "PM" | "pm" => pm_set = true,
                    "AM" | "am" => am_set = true,
                    _ => return None,
                }
                v = &v[2..];
            }
            Std::NumTZ { iso, colon, minutes, seconds } => {
                if iso && v.starts_with('Z') {
                    v = &v[1..];
                    utc = true;
                    continue;
                }
                let sign = match v.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                let mut w = &v[1..];
                let (hh, r) = getnum(w, true)?;
                w = r;
                let mut mm = 0;
                let mut ss = 0;
                if minutes {
                    if colon {
                        w = w.strip_prefix(':')?;
                    }
                    let (m, r) = getnum(w, true)?;
                    mm = m;
                    w = r;
                }
                if seconds {
                    if colon {
                        w = w.strip_prefix(':')?;
                    }
                    let (s2, r) = getnum(w, true)?;
                    ss = s2;
                    w = r;
                }
                if hh > 24 || mm > 59 || ss > 59 {
                    return None;
                }
                zone_offset = Some(sign * (hh * 3600 + mm * 60 + ss));
                v = w;
            }
            Std::TZ => {
                if v.starts_with("UTC") {
                    v = &v[3..];
                    utc = true;
                    continue;
                }
                let n = v.bytes().take_while(|c| c.is_ascii_uppercase()).count();
                if n < 3 {
                    return None;
                }
                zone_name = Some(v[..n].to_string());
                v = &v[n..];
            }
            Std::Frac { n, trim, .. } => {
                let b = v.as_bytes();
                if trim {
                    if b.len() < 2 || !(b[0] == b'.' || b[0] == b',') || !b[1].is_ascii_digit() {
                        continue;
                    }
                    let k = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(&v[1..k])?;
                    v = &v[k..];
                } else {
                    if b.len() < n + 1 || !(b[0] == b'.' || b[0] == b',') {
                        return None;
                    }
                    nsec = parse_nanos(v.get(1..n + 1)?)?;
                    v = &v[n + 1..];
                }
            }
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        if yday < 1 || yday > if leap { 366 } else { 365 } {
            return None;
        }
        let (y2, m2, d2) = civil_from_days(days_from_civil(year, 1, 1) + yday - 1);
        if (month >= 0 && month != m2 as i64) || (day >= 0 && day != d2 as i64) || y2 != year {
            return None;
        }
        month = m2 as i64;
        day = d2 as i64;
    }
    if month < 0 {
        month = 1;
    }
    if day < 0 {
        day = 1;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let dim = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if day < 1 || day > dim[(month - 1) as usize] {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let local = days * 86_400 + hour * 3600 + min * 60 + sec;
    if utc {
        return Some(GoTime::utc(local, nsec as u32));
    }
    if let Some(zone) = zone {
        let nsec = nsec as u32;
        if let Some(off) = zone_offset {
            let secs = local - off;
            let (at, name) = zone_at(zone, secs);
            if at == off && zone_name.as_deref().is_none_or(|n| n == name) {
                return Some(time_in_zone(zone, secs, nsec));
            }
            return Some(GoTime { secs, nsec, offset: off as i32, name: zone_name });
        }
        if let Some(name) = zone_name {
            if let Some(off) = zone_offset_by_name(zone, &name, local) {
                return Some(time_in_zone(zone, local - off, nsec));
            }
            let off = match name.strip_prefix("GMT") {
                Some(h) if !h.is_empty() => h.parse::<i64>().unwrap_or(0) * 3600,
                _ => 0,
            };
            return Some(GoTime { secs: local - off, nsec, offset: off as i32, name: Some(name) });
        }
        return Some(date_in_zone(zone, local, nsec));
    }
    if let Some(off) = zone_offset {
        if off == 0 {
            return Some(GoTime::utc(local, nsec as u32));
        }
        return Some(GoTime {
            secs: local - off,
            nsec: nsec as u32,
            offset: off as i32,
            name: None,
        });
    }
    if let Some(name) = zone_name {
        if name == "GMT" {
            return Some(GoTime::utc(local, nsec as u32));
        }
        return Some(GoTime { secs: local, nsec: nsec as u32, offset: 0, name: Some(name) });
    }
    Some(GoTime::utc(local, nsec as u32))
}

fn parse_nanos(digits: &str) -> Option<i64> {
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut d = digits.to_string();
    d.truncate(9);
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().ok()
}

/// Removes `prefix` from `v`, treating runs of spaces as equivalent (Go's `skip`).
fn skip_prefix<'a>(mut v: &'a str, prefix: &str) -> Option<&'a str> {
    let mut p = prefix;
    while !p.is_empty() {
        if p.starts_with(' ') {
            if !v.is_empty() && !v.starts_with(' ') {
                return None;
            }
            p = p.trim_start_matches(' ');
            v = v.trim_start_matches(' ');
            continue;
        }
        let c = p.chars().next()?;
        v = v.strip_prefix(c)?;
        p = &p[c.len_utf8()..];
    }
    Some(v)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TS: i64 = 1_793_491_398_920_250_000; // 2026-11-01T00:03:18.92025Z

    fn labels_from_json(j: &str) -> Labels {
        let m: BTreeMap<String, String> = serde_json::from_str(j).unwrap();
        Labels::from_pairs(m)
    }

    fn r(src: &str) -> String {
        let l = Labels::from_pairs([
            ("app", "web"),
            ("status", "200"),
            ("msg", "hello world"),
            ("n", "5"),
            ("f", "2.5"),
        ]);
        Template::parse(src).unwrap().render(&l, "the line", TS).unwrap()
    }

    fn err(src: &str) -> String {
        let l = Labels::from_pairs([("app", "web"), ("n", "5")]);
        match Template::parse(src) {
            Err(e) => format!("parse: {e}"),
            Ok(t) => match t.render(&l, "the line", TS) {
                Ok(s) => panic!("expected an error for {src:?}, got {s:?}"),
                Err(e) => e.to_string(),
            },
        }
    }

    const LOG_LINE_FORMAT_FUNCTIONS: &[(&str, &str, i64, &str)] = &[
        ("{\"__error__\": \"JSONParserErr\", \"__error_details__\": \"Value is array, but can't find closing ']' symbol\", \"bytes\": \"2840\", \"client_ip\": \"192.168.1.21\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"11.733\", \"method\": \"GET\", \"path\": \"/search\", \"service_name\": \"web\", \"status\": \"200\", \"trace_id\": \"6561a46616c66860fb8fce548e2045a5\"}", "{\"method\":\"GET\",\"path\":\"/search\",\"status\":200,\"latency_ms\":11.733,\"bytes\":2840,\"client_ip\":\"192.168.1.21\",", 1793491398920250000, "get /search 200 none  1793491398 106"),
        ("{\"bytes\": \"0\", \"client_ip\": \"172.16.6.160\", \"detected_level\": \"unknown\", \"duration\": \"188ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"188.426\", \"method\": \"GET\", \"path\": \"/login\", \"service_name\": \"web\", \"status\": \"301\", \"upstream_host\": \"api-1\", \"upstream_port\": \"8081\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"GET\",\"path\":\"/login\",\"status\":301,\"latency_ms\":188.426,\"bytes\":0,\"client_ip\":\"172.16.6.160\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"188ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8081},\"tags\":[\"v2\"]}", 1793491275120250000, "get /login 301 none CURL/8.5.0 1793491275 202"),
        ("{\"bytes\": \"0\", \"client_ip\": \"192.168.1.193\", \"detected_level\": \"unknown\", \"duration\": \"625ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"625.454\", \"method\": \"PATCH\", \"path\": \"/login\", \"service_name\": \"web\", \"status\": \"301\", \"upstream_host\": \"api-2\", \"upstream_port\": \"8081\", \"user_agent\": \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"}", "{\"method\":\"PATCH\",\"path\":\"/login\",\"status\":301,\"latency_ms\":625.454,\"bytes\":0,\"client_ip\":\"192.168.1.193\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"625ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8081},\"tags\":[\"internal\"]}", 1793491254840250000, "patch /login 301 none MOZILLA/5. 1793491254 271"),
        ("{\"bytes\": \"10522\", \"client_ip\": \"172.16.2.140\", \"detected_level\": \"unknown\", \"duration\": \"33ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"33.766\", \"method\": \"PUT\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"201\", \"upstream_host\": \"api-1\", \"upstream_port\": \"8081\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"PUT\",\"path\":\"/api/v1/cart\",\"status\":201,\"latency_ms\":33.766,\"bytes\":10522,\"client_ip\":\"172.16.2.140\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"33ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8081},\"tags\":[\"internal\",\"edge\"]}", 1793491204336250000, "put /api/v1/cart 201 none CURL/8.5.0 1793491204 223"),
        ("{\"bytes\": \"1065\", \"client_ip\": \"192.168.1.24\", \"detected_level\": \"unknown\", \"duration\": \"65ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"65.862\", \"method\": \"GET\", \"path\": \"/api/v1/orders/3366\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"api-3\", \"upstream_port\": \"8080\", \"user_agent\": \"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/orders/3366\",\"status\":200,\"latency_ms\":65.862,\"bytes\":1065,\"client_ip\":\"192.168.1.24\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"65ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8080},\"tags\":[\"internal\",\"edge\"]}", 1793491239899250000, "get /api/v1/orde 200 none MOZILLA/5. 1793491239 289"),
        ("{\"bytes\": \"11335\", \"client_ip\": \"10.0.0.84\", \"detected_level\": \"unknown\", \"duration\": \"662ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"662.063\", \"method\": \"GET\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"static-1\", \"upstream_port\": \"8080\", \"user_agent\": \"curl/8.5.0\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/cart\",\"status\":200,\"latency_ms\":662.063,\"bytes\":11335,\"client_ip\":\"10.0.0.84\",\"user_agent\":\"curl/8.5.0\",\"duration\":\"662ms\",\"upstream\":{\"host\":\"static-1\",\"port\":8080},\"tags\":[\"internal\",\"canary\"]}", 1793491348100250000, "get /api/v1/cart 200 none CURL/8.5.0 1793491348 227"),
        ("{\"bytes\": \"11537\", \"client_ip\": \"192.168.1.232\", \"detected_level\": \"unknown\", \"duration\": \"11ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"11.491\", \"method\": \"PUT\", \"path\": \"/api/v1/orders\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"api-3\", \"upstream_port\": \"8082\", \"user_agent\": \"Go-http-client/1.1\"}", "{\"method\":\"PUT\",\"path\":\"/api/v1/orders\",\"status\":200,\"latency_ms\":11.491,\"bytes\":11537,\"client_ip\":\"192.168.1.232\",\"user_agent\":\"Go-http-client/1.1\",\"duration\":\"11ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8082},\"tags\":[\"internal\",\"v2\"]}", 1793491368136250000, "put /api/v1/orde 200 none GO-HTTP-CL 1793491368 232"),
        ("{\"bytes\": \"11538\", \"client_ip\": \"203.0.113.83\", \"detected_level\": \"unknown\", \"duration\": \"86ms\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"latency_ms\": \"86.944\", \"method\": \"GET\", \"path\": \"/api/v1/cart\", \"service_name\": \"web\", \"status\": \"200\", \"upstream_host\": \"static-1\", \"upstream_port\": \"8082\", \"user_agent\": \"python-requests/2.32.3\"}", "{\"method\":\"GET\",\"path\":\"/api/v1/cart\",\"status\":200,\"latency_ms\":86.944,\"bytes\":11538,\"client_ip\":\"203.0.113.83\",\"user_agent\":\"python-requests/2.32.3\",\"duration\":\"86ms\",\"upstream\":{\"host\":\"static-1\",\"port\":8082},\"tags\":[\"canary\"]}", 1793491365094250000, "get /api/v1/cart 200 none PYTHON-REQ 1793491365 229"),
    ];
    const LOG_LABEL_FORMAT: &[(&str, &str, i64, &str)] = &[
        ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-05421\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"default\", \"service_name\": \"worker\", \"size\": \"4.8MB\", \"took\": \"28.2s\", \"where\": \"default/job-05421\"}", "level=debug msg=\"cache hit\" job_id=job-05421 queue=default took=28.2s size=4.8MB attempt=1", 1793497035236750000, "debug default/job-05421 28.2s"),
        ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-08758\", \"lvl\": \"debug\", \"msg\": \"\\u001b[1;36mlease renewed\\u001b[0m\", \"queue\": \"default\", \"service_name\": \"worker\", \"size\": \"43KiB\", \"took\": \"422ms\", \"where\": \"default/job-08758\"}", "level=debug msg=\"\u{1b}[1;36mlease renewed\u{1b}[0m\" job_id=job-08758 queue=default took=422ms size=43KiB attempt=1", 1793497157587750000, "debug default/job-08758 422ms"),
        ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-13208\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"high\", \"service_name\": \"worker\", \"size\": \"36KB\", \"took\": \"4.9s\", \"where\": \"high/job-13208\"}", "level=debug msg=\"cache hit\" job_id=job-13208 queue=high took=4.9s size=36KB attempt=1", 1793497007471750000, "debug high/job-13208 4.9s"),
        ("{\"attempt\": \"1\", \"detected_level\": \"debug\", \"env\": \"test\", \"format\": \"logfmt\", \"job\": \"worker\", \"job_id\": \"job-25099\", \"lvl\": \"debug\", \"msg\": \"cache hit\", \"queue\": \"high\", \"service_name\": \"worker\", \"size\": \"21KB\", \"took\": \"859ms\", \"where\": \"high/job-25099\"}", "level=debug msg=\"cache hit\" job_id=job-25099 queue=high took=859ms size=21KB attempt=1", 1793497025038750000, "debug high/job-25099 859ms"),
    ];
    const LOG_JSON_PARAMS_LINE_FORMAT: &[(&str, &str, i64, &str)] = &[
        ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"canary\", \"up\": \"api-2\"}", "{\"method\":\"DELETE\",\"path\":\"/static/app.js\",\"status\":404,\"latency_ms\":92.677,\"bytes\":22923,\"client_ip\":\"10.0.1.174\",\"user_agent\":\"Go-http-client/1.1\",\"duration\":\"92ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8080},\"tags\":[\"canary\"]}", 1793496180595250000, "DELETE 404 via api-2 [canary]"),
        ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"edge\", \"up\": \"api-2\"}", "{\"method\":\"DELETE\",\"path\":\"/login\",\"status\":404,\"latency_ms\":3.293,\"bytes\":49869,\"client_ip\":\"203.0.113.37\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\",\"duration\":\"3ms\",\"upstream\":{\"host\":\"api-2\",\"port\":8080},\"tags\":[\"edge\"]}", 1793496478670250000, "DELETE 404 via api-2 [edge]"),
        ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"internal\", \"up\": \"api-3\"}", "{\"method\":\"DELETE\",\"path\":\"/api/v1/orders\",\"status\":404,\"latency_ms\":209.81,\"bytes\":57184,\"client_ip\":\"203.0.113.90\",\"user_agent\":\"kube-probe/1.30\",\"duration\":\"209ms\",\"upstream\":{\"host\":\"api-3\",\"port\":8080},\"tags\":[\"internal\"]}", 1793495560048250000, "DELETE 404 via api-3 [internal]"),
        ("{\"code\": \"404\", \"detected_level\": \"unknown\", \"env\": \"test\", \"format\": \"json\", \"job\": \"web\", \"method\": \"DELETE\", \"service_name\": \"web\", \"tag0\": \"v2\", \"up\": \"api-1\"}", "{\"method\":\"DELETE\",\"path\":\"/api/v1/orders\",\"status\":404,\"latency_ms\":366.002,\"bytes\":3723,\"client_ip\":\"192.168.1.60\",\"user_agent\":\"python-requests/2.32.3\",\"duration\":\"366ms\",\"upstream\":{\"host\":\"api-1\",\"port\":8080},\"tags\":[\"v2\"]}", 1793495039189250000, "DELETE 404 via api-1 [v2]"),
    ];

    fn check_reference(tmpl: &str, cases: &[(&str, &str, i64, &str)]) {
        let t = Template::parse(tmpl).unwrap();
        assert!(!cases.is_empty());
        for (labels, line, ts, want) in cases {
            let got = t.render(&labels_from_json(labels), line, *ts).unwrap();
            assert_eq!(&got, want, "labels {labels}");
        }
    }

    #[test]
    fn reference_line_format_functions() {
        check_reference(
            r#"{{ .method | lower }} {{ .path | trunc 12 }} {{ .status }} {{ default "none" .missing }} {{ .user_agent | replace " " "_" | upper | trunc 10 }} {{ __timestamp__ | unixEpoch }} {{ len __line__ }}"#,
            LOG_LINE_FORMAT_FUNCTIONS,
        );
    }

    #[test]
    fn reference_label_format() {
        // `where="{{.queue}}/{{.job_id}}"` then `line_format "{{.lvl}} {{.where}} {{.took}}"`.
        let where_t = Template::parse_named("label", "{{.queue}}/{{.job_id}}").unwrap();
        for (labels, line, ts, _) in LOG_LABEL_FORMAT {
            let l = labels_from_json(labels);
            assert_eq!(where_t.render(&l, line, *ts).unwrap(), l.get("where").unwrap());
        }
        check_reference("{{.lvl}} {{.where}} {{.took}}", LOG_LABEL_FORMAT);
    }

    #[test]
    fn reference_json_params_line_format() {
        check_reference(
            "{{.method}} {{.code}} via {{.up}} [{{.tag0}}]",
            LOG_JSON_PARAMS_LINE_FORMAT,
        );
    }

    #[test]
    fn text_fields_and_trim() {
        assert_eq!(r("plain"), "plain");
        assert_eq!(r(""), "");
        assert_eq!(r("{{.app}}-{{.missing}}-"), "web--");
        assert_eq!(r("a  {{- .app -}}  b"), "awebb");
        assert_eq!(r("a {{- /* c */ -}} b"), "ab");
        assert_eq!(r("a{{/* comment */}}b"), "ab");
        assert_eq!(r("{{-3}}"), "-3");
        assert_eq!(r("{{ . }}"), "map[app:web f:2.5 msg:hello world n:5 status:200]");
        assert_eq!(r("{{ $.app }}"), "web");
        assert_eq!(r(r#"{{ "a\tb" }}|{{ `x\n` }}"#), "a\tb|x\\n");
        assert_eq!(r("{{ 'a' }} {{ 1.5 }} {{ 0x10 }} {{ 1e3 }} {{ true }}"), "97 1.5 16 1000 true");
        assert_eq!(r("{{ __line__ }}"), "the line");
        assert_eq!(r("{{ __timestamp__ }}"), "2026-11-01 00:03:18.92025 +0000 UTC");
    }

    #[test]
    fn variables_and_control() {
        assert_eq!(r("{{ $x := .app }}{{ $x }}{{ $x = \"b\" }}{{ $x }}"), "webb");
        assert_eq!(r("{{ if eq .status \"200\" }}ok{{ else }}ko{{ end }}"), "ok");
        assert_eq!(r("{{ if .missing }}a{{ else if .app }}b{{ else }}c{{ end }}"), "b");
        assert_eq!(r("{{ with .app }}<{{ . }}>{{ else }}none{{ end }}"), "<web>");
        assert_eq!(r("{{ with .missing }}<{{ . }}>{{ else }}none{{ end }}"), "none");
        assert_eq!(r("{{ if and .app (not .missing) }}y{{ end }}"), "y");
        assert_eq!(r("{{ or .missing .app }}|{{ and .app .missing }}|{{ and 1 2 }}"), "web||2");
        assert_eq!(r("{{ .app | or .missing }}"), "web");
        assert_eq!(
            r(r#"{{ range $i, $e := fromJson "[\"a\",\"b\"]" }}{{ $i }}={{ $e }};{{ end }}"#),
            "0=a;1=b;"
        );
        assert_eq!(r(r#"{{ range fromJson "{\"k\":1,\"j\":2}" }}{{ . }},{{ end }}"#), "2,1,");
        assert_eq!(r(r#"{{ range fromJson "[]" }}x{{ else }}empty{{ end }}"#), "empty");
        assert_eq!(
            r("{{ range $i := 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}"),
            "012"
        );
        assert_eq!(
            r("{{ range $i := 4 }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}"),
            "023"
        );
        assert_eq!(
            r("{{ range $k, $v := . }}{{ if eq $k \"app\" }}{{ $v }}{{ end }}{{ end }}"),
            "web"
        );
        assert_eq!(
            r(r#"{{ $q := fromJson "{\"a\":{\"b\":\"c\"}}" }}{{ $q.a.b }}{{ $q.zz }}"#),
            "c<no value>"
        );
        assert_eq!(r(r#"{{ (fromJson "{\"a\":1}").a }}"#), "1");
        assert_eq!(
            r(r#"{{ range $q := fromJson "[{\"query\":\"up\"}]" }} {{ $q.query }} {{ end }}"#),
            " up "
        );
    }

    #[test]
    fn builtins() {
        assert_eq!(r("{{ len .msg }} {{ len . }}"), "11 5");
        assert_eq!(r(r#"{{ index . "app" }} {{ index (fromJson "[1,[2,3]]") 1 0 }}"#), "web 2");
        assert_eq!(r(r#"{{ slice "hello" 1 3 }}"#), "el");
        assert_eq!(r(r#"{{ print "a" 1 2 "b" }}|{{ println 1 "x" }}"#), "a1 2b|1 x\n");
        assert_eq!(
            r(r#"{{ html "<a&'\">" }} {{ urlquery "a b&c" }} {{ js "a'b" }}"#),
            "&lt;a&amp;&#39;&#34;&gt; a+b%26c a\\'b"
        );
        assert_eq!(r("{{ eq 1 2 1 }} {{ ne .app \"x\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}"), "true true true true true false");
        assert_eq!(r("{{ eq (add 1 1) 2 }}"), "true");
        assert_eq!(r("{{ not 0 }} {{ not .app }}"), "true false");
    }

    #[test]
    fn printf_subset() {
        assert_eq!(r(r#"{{ printf "%s=%d" "a" 5 }}"#), "a=5");
        assert_eq!(
            r(r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "ab" "cd" -42 255 255 8 5 }}"#),
            "   ab|cd   |-0042|ff|FF|10|101"
        );
        assert_eq!(
            r(r#"{{ printf "%.2f %e %g %v %G" 3.14159 1234.5678 0.000012345 1e21 1e-7 }}"#),
            "3.14 1.234568e+03 1.2345e-05 1e+21 1E-07"
        );
        assert_eq!(
            r(r#"{{ printf "%v %v %v" 100000.0 1000000.0 0.0001 }}"#),
            "100000 1e+06 0.0001"
        );
        assert_eq!(
            r(r#"{{ printf "%q %v %t %T %T" "a\"b" true false .app 1.5 }}"#),
            r#""a\"b" true false string float64"#
        );
        assert_eq!(r(r#"{{ printf "%d" .status }}"#), "%!d(string=200)");
        assert_eq!(r(r#"{{ printf "%d %d" 1 }}"#), "1 %!d(MISSING)");
        assert_eq!(r(r#"{{ printf "%d" 1 2 }}"#), "1%!(EXTRA int=2)");
        assert_eq!(
            r(r#"{{ printf "%-10.3s|%8.3f|%+d|%%|%c|%U" "abcdef" 3.14159 5 65 65 }}"#),
            "abc       |   3.142|+5|%|A|U+0041"
        );
        assert_eq!(r(r#"{{ printf "%*d|%.*f" 4 7 1 2.25 }}"#), "   7|2.2");
        assert_eq!(r(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#), "b a");
        assert_eq!(
            r(r#"{{ printf "%v" (fromJson "{\"a\":[1,\"x\",null]}") }}"#),
            "map[a:[1 x <nil>]]"
        );
        assert_eq!(r(r#"{{ printf "%15.15s" "short" }}"#), "          short");
        assert_eq!(
            r(r#"{{ printf "%-40.40s" "/a/509965767/alternative-to-my-mtg.html" }}|"#),
            "/a/509965767/alternative-to-my-mtg.html |"
        );
    }

    #[test]
    fn string_functions() {
        assert_eq!(
            r(
                r#"{{ alignLeft 5 "hello world" }}|{{ alignLeft 5 "hi" }}|{{ alignRight 5 "hello world" }}|{{ alignRight 5 "hi" }}"#
            ),
            "hello|hi   |world|   hi"
        );
        assert_eq!(
            r(
                r#"{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }} {{ b64dec "aGVsbG8" }} {{ b64dec "!!" }}"#
            ),
            "aGVsbG8= hello hello illegal base64 data at input byte 0"
        );
        assert_eq!(
            r(
                r#"{{ default "-" "" }} {{ default "-" "foo" }} {{ .missing | default "x" }} {{ default 1 0 }}"#
            ),
            "- foo x 1"
        );
        assert_eq!(
            r(r#"{{ lower "HELLO" }} {{ upper "hello" }} {{ title "hello world" }}"#),
            "hello HELLO Hello World"
        );
        assert_eq!(r(r#"{{ indent 2 "a\nb" }}|{{ nindent 2 "a" }}"#), "  a\n  b|\n  a");
        assert_eq!(r(r#"{{ repeat 3 "ab" }}"#), "ababab");
        assert_eq!(
            r(
                r#"{{ replace "hello" "world" "hello world" }} {{ "a-cluster" | replace "-cluster" "" }}"#
            ),
            "world world a"
        );
        assert_eq!(
            r(
                r#"{{ substr 0 5 "hello world" }} {{ substr 6 11 "hello world" }} {{ substr -1 2 "hello" }} {{ substr 2 -1 "hello" }} {{ substr 2 99 "hello" }}"#
            ),
            "hello world he llo llo"
        );
        assert_eq!(
            r(
                r#"{{ trim "   hello    " }}|{{ trimAll "$" "$5.00$" }}|{{ trimPrefix "-" "-hello" }}|{{ trimSuffix "-" "hello-" }}"#
            ),
            "hello|5.00|hello|hello"
        );
        assert_eq!(
            r(r#"{{ trunc 5 "hello world" }} {{ trunc -5 "hello world" }} {{ trunc 50 "hi" }}"#),
            "hello world hi"
        );
        assert_eq!(
            r(r#"{{ urlencode "a b/c?d=é" }} {{ urldecode "a+b%2Fc" }}"#),
            "a+b%2Fc%3Fd%3D%C3%A9 a b/c"
        );
        assert_eq!(
            r(
                r#"{{ contains "ll" "hello" }} {{ hasPrefix "he" "hello" }} {{ hasSuffix "lo" "hello" }} {{ contains "x" .msg }}"#
            ),
            "true true true false"
        );
        assert_eq!(r(r#"{{ if contains "he" "hello" }} yes {{end}}"#), " yes ");
        assert_eq!(
            r(r#"{{ count "a|b" "abab" }} {{ count "o" "foo" }} {{ __line__ | count "e" }}"#),
            "4 2 2"
        );
        assert_eq!(
            r(
                r#"{{ regexReplaceAll "(a*)bc" "xaabcy" "${1}Z" }} {{ regexReplaceAllLiteral "(ts=)" "ts=1" "$1" }}"#
            ),
            "xaaZy $11"
        );
        assert_eq!(
            r(
                r#"{{ ToUpper "a" }}{{ ToLower "B" }}{{ Replace "aaa" "a" "b" 2 }}{{ TrimSpace " c " }}{{ Trim "xdx" "x" }}{{ TrimLeft "xdx" "x" }}{{ TrimPrefix "pq" "p" }}"#
            ),
            "Abbbacddxq"
        );
    }

    #[test]
    fn dates_in_a_zone_follow_go() {
        // US Eastern as a POSIX rule: no files needed.
        let z = tz::TimeZone::from_posix_tz("EST5EDT,M3.2.0,M11.1.0").unwrap();
        let local = |y: i64, mo: u32, d: u32, h: i64, mi: i64| {
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
        };
        // summer: EDT
        let t = date_in_zone(&z, local(2021, 11, 2, 0, 0), 0);
        assert_eq!((t.secs, t.offset, t.name.as_deref()), (1_635_825_600, -14_400, Some("EDT")));
        // winter: EST
        let t = date_in_zone(&z, local(2021, 12, 2, 0, 0), 0);
        assert_eq!((t.secs - 1_638_403_200, t.offset), (18_000, -18_000));
        // in the spring-forward gap Go lands an hour earlier, in EST
        let t = date_in_zone(&z, local(2021, 3, 14, 2, 30), 0);
        assert_eq!(go_format_time(&t, "15:04 MST"), "01:30 EST");
        assert_eq!(zone_offset_by_name(&z, "EDT", local(2021, 7, 1, 0, 0)), Some(-14_400));
        assert_eq!(zone_offset_by_name(&z, "CET", 0), None);
        let t = go_parse_time_in("2006-01-02 15:04 MST", "2021-07-01 10:00 EDT", Some(&z)).unwrap();
        assert_eq!(t.secs, local(2021, 7, 1, 14, 0));
        let t = go_parse_time_in("2006-01-02 -0700", "2021-07-01 -0400", Some(&z)).unwrap();
        assert_eq!(t.name.as_deref(), Some("EDT"));
        let t = go_parse_time_in("2006-01-02 -0700", "2021-07-01 +0100", Some(&z)).unwrap();
        assert_eq!((t.offset, t.name), (3600, None));
    }

    #[test]
    fn to_date_in_zone_reads_the_zone_database() {
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02" "No/Such_Zone" "2021-11-02" | unixEpoch }}"#),
            "1635811200"
        );
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02" "../etc/passwd" "2021-11-02" | unixEpoch }}"#),
            "1635811200"
        );
        if !ZONEINFO_DIRS
            .iter()
            .any(|d| std::path::Path::new(d).join("America/New_York").try_exists().is_ok_and(|e| e))
        {
            eprintln!("no system time zone database: skipping the America/New_York check");
            return;
        }
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02" "America/New_York" "2021-11-02" | unixEpoch }}"#),
            "1635825600"
        );
        assert_eq!(
            r(r#"{{ toDateInZone "2006-01-02" "America/New_York" "2021-11-02" }}"#),
            "2021-11-02 00:00:00 -0400 EDT"
        );
    }

    #[test]
    fn math_functions() {
        assert_eq!(r("{{ add 3 2 5 }} {{ addf 3.5 2 5 }} {{ addf 0.1 0.2 }}"), "10 10.5 0.3");
        assert_eq!(r("{{ ceil 123.001 }} {{ floor 123.9999 }} {{ div 10 2 }} {{ divf 10 2 4 }} {{ divf 1 3 }}"), "124 123 5 1.25 0.3333333333333333");
        assert_eq!(
            r(
                r#"{{ "3.5" | float64 }} {{ "3" | int }} {{ "abc" | int }} {{ "0x10" | int }} {{ .f | int }}"#
            ),
            "3.5 3 0 16 2"
        );
        assert_eq!(
            r("{{ max 1 2 3 }} {{ maxf 1 2.5 3 }} {{ min 1 2 3 }} {{ minf 1 2.5 3 }}"),
            "3 3 1 1"
        );
        assert_eq!(r("{{ mul 5 2 3 }} {{ mulf 5.5 2 2.5 }} {{ mod 10 3 }} {{ sub 5 2 }} {{ subf 5.5 2 1.5 }}"), "30 27.5 1 3 2");
        assert_eq!(r("{{ round 123.555555 3 }} {{ round 123.88571428571 5 .2 }} {{ round 123.88571428571 5 }}"), "123.556 123.88572 123.88571");
        assert_eq!(
            r("{{ add .n 1 }} {{ sub .n .status }} {{ mulf .f 2 }} {{ add \"x\" 1 }}"),
            "6 -195 5 1"
        );
        assert_eq!(r("{{ addf 1e300 1e300 }}"), "2e+300");
    }

    #[test]
    fn time_functions() {
        assert_eq!(r("{{ __timestamp__ | unixEpoch }} {{ unixEpochMillis __timestamp__ }} {{ unixEpochNanos __timestamp__ }}"), "1793491398 1793491398920 1793491398920250000");
        assert_eq!(
            r(r#"{{ __timestamp__ | date "2006-01-02T15:04:05.00Z07:00" }}"#),
            "2026-11-01T00:03:18.92Z"
        );
        assert_eq!(
            r(r#"{{ date "Mon Jan _2 3:04PM 2006 .000 MST -0700" __timestamp__ }}"#),
            "Sun Nov  1 12:03AM 2026 .920 UTC +0000"
        );
        assert_eq!(r(r#"{{ date "2006-01-02" 86400 }}"#), "1970-01-02");
        assert_eq!(r(r#"{{ toDate "2006-01-02" "2021-11-02" | unixEpoch }}"#), "1635811200");
        assert_eq!(r(r#"{{ toDate "2006-01-02" "junk" }}"#), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            r(
                r#"{{ toDateInZone "2006-01-02T15:04:05.999999999Z07:00" "UTC" "2021-11-02T10:00:00.5+02:00" | unixEpochMillis }}"#
            ),
            "1635840000500"
        );
        assert_eq!(
            r(
                r#"{{ toDateInZone "2006-01-02 15:04:05 -0700" "UTC" "2021-11-02 10:00:00 +0200" }}"#
            ),
            "2021-11-02 10:00:00 +0200 +0200"
        );
        assert_eq!(
            r(
                r#"{{ unixToTime "1679577215" | date "2006-01-02" }} {{ unixToTime "19373" | unixEpoch }} {{ unixToTime "1673798889902" | unixEpochMillis }}"#
            ),
            "2023-03-23 1673827200 1673798889902"
        );
        assert_eq!(
            r(
                r#"{{ duration "1h2m3.5s" }} {{ duration_seconds "250ms" }} {{ "1.5s" | duration }} {{ duration "-2us" }}"#
            ),
            "3723.5 0.25 1.5 -2e-06"
        );
        assert_eq!(
            r(r#"{{ bytes "1.5MB" }} {{ bytes "3KiB" }} {{ bytes "512" }} {{ bytes "12 kb" }}"#),
            "1.5e+06 3072 512 12000"
        );
        assert_eq!(
            r(r#"{{ __timestamp__.Unix }} {{ __timestamp__.Format "15:04" }}"#),
            "1793491398 00:03"
        );
        assert!(r("{{ now | unixEpoch }}").parse::<i64>().unwrap() > 1_700_000_000);
    }

    #[test]
    fn execution_errors() {
        assert_eq!(
            err(r#"{{ .app | trunc .n }}"#),
            r#"template: line:1:16: executing "line" at <.n>: wrong type for value; expected int; got string"#
        );
        assert_eq!(
            err(r#"{{ unixEpoch .app }}"#),
            r#"template: line:1:13: executing "line" at <.app>: wrong type for value; expected time.Time; got string"#
        );
        assert_eq!(
            err(r#"{{ div 1 0 }}"#),
            r#"template: line:1:3: executing "line" at <div 1 0>: error calling div: runtime error: integer divide by zero"#
        );
        // Go's exec_test: `at <index "hi" $>: error calling index: ...` (the whole command).
        assert_eq!(
            err(r#"x {{ .app | printf "%s" | index (fromJson "[1]") 5 }}"#),
            r#"template: line:1:26: executing "line" at <index (fromJson "[1]") 5>: error calling index: index out of range: 5"#
        );
        assert_eq!(
            err(r#"{{ printf "%s" (unixToTime (print 1)) }}"#),
            r#"template: line:1:16: executing "line" at <unixToTime (print 1)>: error calling unixToTime: unable to parse time '1': %!w(<nil>)"#
        );
        assert!(err(r#"{{ unixToTime "abc" }}"#)
            .contains("error calling unixToTime: unable to parse time 'abc'"));
        assert!(err(r#"{{ duration "5x" }}"#)
            .ends_with(r#"error calling duration: time: unknown unit "x" in duration "5x""#));
        assert!(err(r#"{{ trunc 1 2 }}"#).ends_with("expected string; found 2"));
        assert!(err(r#"{{ eq .app 1 }}"#)
            .ends_with("error calling eq: incompatible types for comparison"));
        assert!(err(r#"{{ .app.x }}"#).ends_with("can't evaluate field x in type string"));
        assert!(err(r#"{{ index (fromJson "[1]") 5 }}"#).ends_with("index out of range: 5"));
        assert!(err(r#"{{ repeat 100000000 "abc" }}"#).ends_with("output too large"));
        assert!(err(r#"{{ repeat -1 "abc" }}"#).ends_with("negative Repeat count"));
        assert!(
            err(r#"{{ range $i := 100000000 }}{{ end }}"#).ends_with("too many range iterations")
        );
        assert!(err(r#"{{ regexReplaceAll "(" "a" "b" }}"#).contains("error parsing regexp"));
        assert!(err(r#"{{ "x" 1 }}"#).ends_with("can't give argument to non-function \"x\""));
        assert!(err(r#"{{ trunc }}"#).ends_with("wrong number of args for trunc: want 2 got 0"));
        assert!(err(r#"{{ .app 1 }}"#).ends_with("app is not a method but has arguments"));
    }

    #[test]
    fn parse_errors() {
        assert_eq!(err("{{ foo }}"), r#"parse: template: line:1: function "foo" not defined"#);
        assert_eq!(err("{{ $x }}"), r#"parse: template: line:1: undefined variable "$x""#);
        assert!(err("{{ if .a }}").contains("unexpected EOF"));
        assert!(err("{{ end }}").contains("unexpected {{end}}"));
        assert!(err("{{ else }}").contains("unexpected {{else}}"));
        assert!(err("{{ .a ").contains("unclosed action"));
        assert!(err("{{ (.a }}").contains("unclosed left paren"));
        assert!(err("{{ }}").contains("missing value for command"));
        assert!(err("{{ .a | }}").contains("missing command"));
        assert!(err("{{ .a | 1 }}").contains("non executable command in pipeline stage 2"));
        assert!(err(r#"{{ "abc }}"#).contains("unterminated quoted string"));
        assert!(err("{{/* x }}").contains("unclosed comment"));
        assert!(err("{{ break }}").contains("{{break}} outside {{range}}"));
        assert!(err("{{ 3x }}").contains("bad number syntax"));
        assert!(err("{{ define \"x\" }}{{ end }}").contains("not supported"));
        assert!(err("{{ % }}").contains("unrecognized character in action"));
        let deep = format!("{}{}{}", "{{ if 1 }}".repeat(200), "x", "{{ end }}".repeat(200));
        assert!(err(&deep).contains("nesting too deep"));
        let parens = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
        assert!(err(&parens).contains("nesting too deep"));
    }

    #[test]
    fn field_names_and_sharing() {
        let t = Template::parse("{{ .a }}{{ if .b }}{{ .c | lower }}{{ end }}{{ $.d }}{{ .a }}")
            .unwrap();
        assert_eq!(t.field_names(), vec!["a", "b", "c"]);
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Template>();
    }

    #[test]
    fn no_panics_on_odd_input() {
        let srcs = [
            "{{",
            "}}",
            "{{-",
            "{{- -}}",
            "{{ - }}",
            "{{ . . }}",
            "{{ .a.b.c }}",
            "{{ $ }}",
            "{{ ( ) }}",
            "{{ ) }}",
            "{{ 'ab' }}",
            "{{ '\\x' }}",
            "{{ 0x }}",
            "{{ 1e }}",
            "{{ 99999999999999999999 }}",
            "{{ \"\\q\" }}",
            "{{ printf \"%\" }}",
            "{{ printf \"%!\" 1 }}",
            "{{ printf \"%[9]d\" 1 }}",
            "{{ printf \"%.\" 1 }}",
            "{{ substr 9 2 \"ab\" }}",
            "{{ trunc 1 \"é\" }}",
            "{{ b64dec \"a===\" }}",
            "{{ urldecode \"%\" }}",
            "{{ index . 1 }}",
            "{{ slice . }}",
            "{{ len 3 }}",
            "{{ range 1.5 }}{{ end }}",
            "{{ with $x := 1 }}{{ $x }}{{ end }}",
            "{{ toDate \"Jan _2 __2 002 .999 ,000 pm PM Z07 -07:00:00\" \"x\" }}",
            "{{ date \"January Monday\" 0 }}",
            "{{ printf \"%x %X %o %e\" 1.5 \"ab\" -3 \"s\" }}",
            "{{ round 1 -400 }}",
            "{{ divf 1 0 }}",
            "{{ int \"-\" }}",
            "{{ else with }}",
            "{{ if 1 }}{{ else x }}{{ end }}",
            "{{ $x := 1 }}{{ $x.y }}",
            "{{ nil }}",
            "{{ print nil }}",
        ];
        let l = Labels::from_pairs([("a", "é")]);
        for s in srcs {
            if let Ok(t) = Template::parse(s) {
                let _ = t.render(&l, "line", -1);
            }
        }
        // every prefix of a complex template
        let src = r#"{{- if and (eq .a "x") (gt (len __line__) 2) -}} {{ printf "%5.2f|%v" 1.5 . }} {{ else with $v := .a | upper }}{{ $v }}{{ end }}{{/* c */}}"#;
        for i in 0..=src.len() {
            if let Some(p) = src.get(..i) {
                if let Ok(t) = Template::parse(p) {
                    let _ = t.render(&l, "line", 0);
                }
            }
        }
    }
}
