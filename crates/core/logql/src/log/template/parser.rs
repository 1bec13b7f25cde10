//! The parser: tokens to the syntax tree, with Go's checks and error messages, and the
//! number and character constants of the language.

use super::functions::Func;
use super::lexer::Tok;
use super::node::{Arg, ArgKind, Branch, Cmd, Node, Number, Pipe};
use super::number::{go_parse_float, go_parse_int};
use super::{SyntaxError, MAX_DEPTH};

pub(super) struct Parser<'a> {
    pub(super) toks: &'a [(usize, Tok)],
    pub(super) i: usize,
    pub(super) vars: Vec<String>,
    pub(super) depth: usize,
    pub(super) range_depth: usize,
}

type PResult<T> = Result<T, SyntaxError>;

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

    fn unexpected(&self, pos: usize, t: &Tok, context: &str) -> SyntaxError {
        SyntaxError::new(pos, format!("unexpected {} in {}", tok_desc(t), context))
    }

    pub(super) fn parse_root(&mut self) -> PResult<Vec<Node>> {
        let (list, end) = self.item_list()?;
        match end {
            ListEnd::Eof => Ok(list),
            ListEnd::End => Err(SyntaxError::new(self.pos(), "unexpected {{end}}")),
            ListEnd::Else(p) => Err(SyntaxError::new(p, "unexpected {{else}}")),
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
                                return Err(SyntaxError::new(
                                    kpos,
                                    format!("{{{{{k}}}}} outside {{{{range}}}}"),
                                ));
                            }
                            self.expect_right(k)?;
                            list.push(if k == "break" { Node::Break } else { Node::Continue });
                        }
                        Tok::Keyword(k @ ("define" | "template" | "block")) => {
                            return Err(SyntaxError::new(
                                kpos,
                                format!("{k} actions are not supported"),
                            ));
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
            return Err(SyntaxError::new(self.pos(), "template nesting too deep"));
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
            ListEnd::Eof => {
                return Err(SyntaxError::new(self.pos(), format!("unexpected EOF in {kind}")))
            }
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
                                return Err(SyntaxError::new(
                                    self.pos(),
                                    format!("unexpected EOF in {kind}"),
                                ))
                            }
                            ListEnd::Else(p) => {
                                return Err(SyntaxError::new(p, "expected end; found {{else}}"))
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
                        return Err(SyntaxError::new(
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
                    return Err(SyntaxError::new(pos, format!("undefined variable {v:?}")));
                }
            }
        }
        let mut cmds = Vec::new();
        if matches!(self.peek_non_space(), Tok::Right) {
            return Err(SyntaxError::new(pos, format!("missing value for {context}")));
        }
        loop {
            if matches!(self.peek_non_space(), Tok::Right | Tok::Pipe) {
                return Err(SyntaxError::new(self.pos(), "missing command"));
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
            return Err(SyntaxError::new(pos, format!("missing value for {context}")));
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
            return Err(SyntaxError::new(pos, "template nesting too deep"));
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
                        return Err(SyntaxError::new(pos, format!("undefined variable {v:?}")));
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
                return Err(SyntaxError::new(self.pos(), msg.to_string()));
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
            return Err(SyntaxError::new(self.pos(), "empty command"));
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> PResult<Arg> {
        let (pos, t) = self.next();
        let kind = match t {
            Tok::Ident(name) => match Func::from_name(&name) {
                Some(f) => ArgKind::Func(f),
                None => {
                    return Err(SyntaxError::new(pos, format!("function {name:?} not defined")))
                }
            },
            Tok::Keyword("nil") => ArgKind::Nil,
            Tok::Dot => ArgKind::Dot,
            Tok::Field(name) => ArgKind::Field(vec![name]),
            Tok::Variable(v) => {
                if !self.vars.contains(&v) {
                    return Err(SyntaxError::new(pos, format!("undefined variable {v:?}")));
                }
                ArgKind::Var(v, Vec::new())
            }
            Tok::Bool(b) => ArgKind::Bool(b),
            Tok::Str(value, quoted) => ArgKind::Str { value, quoted },
            Tok::Number(text) => {
                ArgKind::Num(parse_number(&text).map_err(|e| SyntaxError::new(pos, e.to_string()))?)
            }
            Tok::CharConst(text) => ArgKind::Num(
                parse_char_const(&text).map_err(|e| SyntaxError::new(pos, e.to_string()))?,
            ),
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
                _ => {
                    return Err(SyntaxError::new(
                        pos,
                        format!("unexpected . after term {:?}", arg.to_string()),
                    ))
                }
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
                return Err(SyntaxError::new(
                    pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
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

/// Why a number or character constant in a template does not parse (Go's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NumberError {
    #[error("integer overflow: {0:?}")]
    Overflow(String),
    #[error("illegal number syntax: {0:?}")]
    Illegal(String),
    #[error("malformed character constant: {0}")]
    MalformedChar(String),
}

fn parse_number(text: &str) -> Result<Number, NumberError> {
    let mut n = Number { text: text.to_string(), int: None, float: None };
    if let Some(i) = go_parse_int(text) {
        n.int = Some(i);
        n.float = Some(i as f64);
        return Ok(n);
    }
    if let Some(f) = go_parse_float(text) {
        let looks_float = text.contains(['.', 'e', 'E', 'p', 'P']) && !is_hex_int(text);
        if !looks_float {
            return Err(NumberError::Overflow(text.to_string()));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            n.int = Some(f as i64);
        }
        return Ok(n);
    }
    Err(NumberError::Illegal(text.to_string()))
}

pub(super) fn is_hex_int(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-']);
    (t.starts_with("0x") || t.starts_with("0X")) && !t.contains(['p', 'P'])
}

fn parse_char_const(text: &str) -> Result<Number, NumberError> {
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
                    .ok_or_else(|| NumberError::MalformedChar(text.to_string()))?
            }
        }
    } else {
        let mut it = inner.chars();
        match (it.next(), it.next()) {
            (Some(c), None) => c,
            _ => return Err(NumberError::MalformedChar(text.to_string())),
        }
    };
    Ok(Number { text: text.to_string(), int: Some(c as i64), float: Some(c as u32 as f64) })
}
