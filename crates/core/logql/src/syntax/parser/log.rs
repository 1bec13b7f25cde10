//! Log expressions: stream selectors, pipelines and their stages, log ranges with `offset`
//! and `unwrap`, and the checks on `regexp` and `pattern` parsers.

use skald_model::{LabelMatcher, MatchType};

use super::Parser;
use crate::syntax::ast::*;
use crate::syntax::error::ParseError;
use crate::syntax::goutil;
use crate::syntax::lexer::Tok;

impl Parser {
    pub(super) fn parse_log_range(&mut self) -> Result<LogRangeExpr, ParseError> {
        if self.is(Tok::LParen) {
            self.bump();
            self.enter()?;
            if self.is(Tok::LParen) {
                let r = self.parse_log_range()?;
                self.eat(Tok::RParen, &[])?;
                self.leave();
                return Ok(r);
            }
            if !self.is(Tok::LBrace) {
                return Err(self.unexpected(&[]));
            }
            let matchers = self.parse_selector()?;
            let stages = self.parse_stages(true)?;
            let unwrap = self.parse_opt_unwrap()?;
            let selector = LogSelectorExpr { matchers, stages };
            if self.is(Tok::RParen) {
                self.bump();
                let range = self.expect(Tok::Range, &[])?;
                let offset = self.parse_opt_offset()?;
                self.leave();
                return Ok(make_range(selector, range.dur, unwrap, offset));
            }
            let r = self.continue_log_range(selector, unwrap)?;
            self.eat(Tok::RParen, &[])?;
            self.leave();
            return Ok(r);
        }
        if !self.is(Tok::LBrace) {
            return Err(self.unexpected(&[]));
        }
        let matchers = self.parse_selector()?;
        let stages = self.parse_stages(true)?;
        let unwrap = self.parse_opt_unwrap()?;
        self.continue_log_range(LogSelectorExpr { matchers, stages }, unwrap)
    }

    /// After `selector [pipeline] [unwrap]`: `RANGE [offset]`, and when nothing came before
    /// the range, an optional `[offset] pipeline [unwrap]` after it.
    fn continue_log_range(
        &mut self,
        mut selector: LogSelectorExpr,
        unwrap: Option<Unwrap>,
    ) -> Result<LogRangeExpr, ParseError> {
        let range = self.expect(Tok::Range, &[])?;
        let offset = self.parse_opt_offset()?;
        let mut unwrap = unwrap;
        if selector.stages.is_empty() && unwrap.is_none() {
            selector.stages = self.parse_stages(true)?;
            unwrap = self.parse_opt_unwrap()?;
        }
        Ok(make_range(selector, range.dur, unwrap, offset))
    }

    fn parse_opt_offset(&mut self) -> Result<Option<i64>, ParseError> {
        if self.is(Tok::Offset) {
            self.bump();
            let d = self.expect(Tok::Duration, &["DURATION"])?;
            return Ok(Some(d.dur));
        }
        Ok(None)
    }

    fn parse_opt_unwrap(&mut self) -> Result<Option<Unwrap>, ParseError> {
        if !(self.is(Tok::Pipe) && self.peek_kind(1) == Tok::Unwrap) {
            return Ok(None);
        }
        self.bump();
        self.bump();
        let conversion = match self.cur().kind {
            Tok::BytesConv => UnwrapConversion::Bytes,
            Tok::DurationConv => UnwrapConversion::Duration,
            Tok::DurationSecondsConv => UnwrapConversion::DurationSeconds,
            _ => UnwrapConversion::None,
        };
        let label = if conversion == UnwrapConversion::None {
            self.expect(Tok::Ident, &[])?.text
        } else {
            self.bump();
            self.eat(Tok::LParen, &["("])?;
            let l = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
            self.eat(Tok::RParen, &[")"])?;
            l
        };
        let mut post_filters = Vec::new();
        while self.is(Tok::Pipe) {
            self.bump();
            if !(self.is(Tok::Ident) || self.is(Tok::LParen)) {
                return Err(self.unexpected(&[]));
            }
            post_filters.push(self.parse_label_filter_expr()?);
        }
        Ok(Some(Unwrap { label, conversion, post_filters }))
    }

    pub(super) fn parse_selector(&mut self) -> Result<Vec<LabelMatcher>, ParseError> {
        self.eat(Tok::LBrace, &["{"])?;
        let mut out = Vec::new();
        if self.is(Tok::RBrace) {
            self.bump();
            return Ok(out);
        }
        if !self.is(Tok::Ident) {
            return Err(self.unexpected(&["IDENTIFIER", "}"]));
        }
        loop {
            out.push(self.parse_matcher()?);
            if self.is(Tok::RBrace) {
                self.bump();
                return Ok(out);
            }
            self.eat(Tok::Comma, &["}", ","])?;
            if !self.is(Tok::Ident) {
                return Err(self.unexpected(&["IDENTIFIER"]));
            }
        }
    }

    /// `IDENTIFIER (=|!=|=~|!~) STRING`; the current token is the identifier.
    fn parse_matcher(&mut self) -> Result<LabelMatcher, ParseError> {
        let name = self.bump().text;
        let op = match self.cur().kind {
            Tok::Eq if !self.at_lex_error() => MatchType::Equal,
            Tok::Neq if !self.at_lex_error() => MatchType::NotEqual,
            Tok::Re if !self.at_lex_error() => MatchType::Regex,
            Tok::Nre if !self.at_lex_error() => MatchType::NotRegex,
            _ => return Err(self.unexpected(&["=", "=~", "!~", "!="])),
        };
        self.bump();
        let v = self.expect(Tok::Str, &["STRING"])?.str_val;
        new_matcher(name, op, v)
    }

    fn is_line_filter_op(&self) -> Option<LineFilterOp> {
        if self.at_lex_error() {
            return None;
        }
        Some(match self.cur().kind {
            Tok::PipeExact => LineFilterOp::Contains,
            Tok::Neq => LineFilterOp::NotContains,
            Tok::PipeMatch => LineFilterOp::Regex,
            Tok::Nre => LineFilterOp::NotRegex,
            Tok::PipePattern => LineFilterOp::Pattern,
            Tok::Npa => LineFilterOp::NotPattern,
            _ => return None,
        })
    }

    /// Pipeline stages. In a range context, stops before `| unwrap`.
    pub(super) fn parse_stages(&mut self, in_range: bool) -> Result<Vec<Stage>, ParseError> {
        let mut stages = Vec::new();
        loop {
            if let Some(op) = self.is_line_filter_op() {
                self.bump();
                self.parse_line_filter(op, &mut stages)?;
                continue;
            }
            if !self.is(Tok::Pipe) {
                return Ok(stages);
            }
            if in_range && self.peek_kind(1) == Tok::Unwrap {
                return Ok(stages);
            }
            self.bump();
            let stage = self.parse_pipe_stage()?;
            stages.push(stage);
        }
    }

    fn parse_line_filter_value(&mut self) -> Result<LineFilterValue, ParseError> {
        if self.is(Tok::Str) {
            return Ok(LineFilterValue::Literal(self.bump().str_val));
        }
        if self.is(Tok::Ip) {
            self.bump();
            self.eat(Tok::LParen, &["("])?;
            let s = self.expect(Tok::Str, &["STRING"])?.str_val;
            self.eat(Tok::RParen, &[")"])?;
            return Ok(LineFilterValue::Ip(s));
        }
        Err(self.unexpected(&["STRING", "ip"]))
    }

    fn parse_line_filter(
        &mut self,
        op: LineFilterOp,
        stages: &mut Vec<Stage>,
    ) -> Result<(), ParseError> {
        let value = self.parse_line_filter_value()?;
        let mut or = Vec::new();
        while self.is(Tok::Or) {
            self.bump();
            or.push(self.parse_line_filter_value()?);
        }
        let negative = matches!(
            op,
            LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
        );
        if negative && !or.is_empty() {
            // Loki rewrites `!= "a" or "b"` into `!= "a" != "b"`.
            stages.push(Stage::LineFilter(LineFilter { op, value, or: Vec::new() }));
            for v in or {
                stages.push(Stage::LineFilter(LineFilter { op, value: v, or: Vec::new() }));
            }
        } else {
            stages.push(Stage::LineFilter(LineFilter { op, value, or }));
        }
        Ok(())
    }

    fn parse_pipe_stage(&mut self) -> Result<Stage, ParseError> {
        if self.at_lex_error() {
            return Err(self.unexpected(&[]));
        }
        match self.cur().kind {
            Tok::Logfmt => {
                self.bump();
                let (mut strict, mut keep_empty) = (false, false);
                while self.is(Tok::Flag) {
                    match self.bump().text.as_str() {
                        "--strict" => strict = true,
                        _ => keep_empty = true,
                    }
                }
                let extractions =
                    if self.is(Tok::Ident) { self.parse_extractions()? } else { Vec::new() };
                Ok(Stage::Parser(ParserStage::Logfmt { strict, keep_empty, extractions }))
            }
            Tok::Json => {
                self.bump();
                let ex = if self.is(Tok::Ident) { self.parse_extractions()? } else { Vec::new() };
                Ok(Stage::Parser(ParserStage::Json(ex)))
            }
            Tok::Regexp => {
                self.bump();
                let s = self.expect(Tok::Str, &["STRING"])?.str_val;
                validate_regexp_parser(&s)?;
                Ok(Stage::Parser(ParserStage::Regexp(s)))
            }
            Tok::Pattern => {
                self.bump();
                let s = self.expect(Tok::Str, &["STRING"])?.str_val;
                validate_pattern_parser(&s)?;
                Ok(Stage::Parser(ParserStage::Pattern(s)))
            }
            Tok::Unpack => {
                self.bump();
                Ok(Stage::Parser(ParserStage::Unpack))
            }
            Tok::LineFmt => {
                self.bump();
                Ok(Stage::LineFormat(self.expect(Tok::Str, &["STRING"])?.str_val))
            }
            Tok::Decolorize => {
                self.bump();
                Ok(Stage::Decolorize)
            }
            Tok::LabelFmt => {
                self.bump();
                let mut ops = Vec::new();
                loop {
                    let dst = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
                    self.eat(Tok::Eq, &["="])?;
                    if self.is(Tok::Ident) {
                        ops.push(LabelFormatOp::Rename { dst, src: self.bump().text });
                    } else if self.is(Tok::Str) {
                        ops.push(LabelFormatOp::Template { dst, template: self.bump().str_val });
                    } else {
                        return Err(self.unexpected(&["IDENTIFIER", "STRING"]));
                    }
                    if !self.is(Tok::Comma) {
                        return Ok(Stage::LabelFormat(ops));
                    }
                    self.bump();
                }
            }
            Tok::Drop | Tok::Keep => {
                let drop = self.bump().kind == Tok::Drop;
                let mut ms = Vec::new();
                loop {
                    if !self.is(Tok::Ident) {
                        return Err(self.unexpected(&["IDENTIFIER"]));
                    }
                    if matches!(self.peek_kind(1), Tok::Eq | Tok::Neq | Tok::Re | Tok::Nre) {
                        ms.push(NamedMatcher::Matcher(self.parse_matcher()?));
                    } else {
                        ms.push(NamedMatcher::Name(self.bump().text));
                    }
                    if !self.is(Tok::Comma) {
                        break;
                    }
                    self.bump();
                }
                Ok(if drop { Stage::Drop(ms) } else { Stage::Keep(ms) })
            }
            Tok::Ident | Tok::LParen => Ok(Stage::LabelFilter(self.parse_label_filter_expr()?)),
            _ => Err(self.unexpected(&[])),
        }
    }

    fn parse_extractions(&mut self) -> Result<Vec<LabelExtraction>, ParseError> {
        let mut out = Vec::new();
        loop {
            let name = self.expect(Tok::Ident, &["IDENTIFIER"])?.text;
            let mut expr = None;
            if self.is(Tok::Eq) {
                self.bump();
                let e = self.expect(Tok::Str, &["STRING"])?.str_val;
                // `a="a"` means the same as the bare `a` (and Loki prints both as `a="a"`).
                if e != name {
                    expr = Some(e);
                }
            }
            out.push(LabelExtraction { name, expr });
            if !self.is(Tok::Comma) {
                return Ok(out);
            }
            self.bump();
        }
    }
}

fn make_range(
    selector: LogSelectorExpr,
    range_ns: i64,
    unwrap: Option<Unwrap>,
    offset: Option<i64>,
) -> LogRangeExpr {
    let offset_ns = offset.unwrap_or(0);
    LogRangeExpr {
        selector,
        range_ns,
        range_literal: goutil::prom_duration_string(range_ns),
        unwrap,
        offset_ns,
        offset_literal: if offset_ns != 0 {
            Some(goutil::go_duration_string(offset_ns))
        } else {
            None
        },
    }
}

pub(super) fn new_matcher(
    name: String,
    op: MatchType,
    value: String,
) -> Result<LabelMatcher, ParseError> {
    LabelMatcher::new(name, op, value.clone())
        .map_err(|e| ParseError::nopos(goutil::go_regex_error(&value, &e.message)))
}

fn validate_regexp_parser(re: &str) -> Result<(), ParseError> {
    let err = |m: String| ParseError::nopos(format!("invalid regexp parser: {m}"));
    let compiled = match regex::Regex::new(re) {
        Ok(r) => r,
        Err(e) => {
            let s = e.to_string();
            if s.contains("duplicate capture group name") {
                let name = s
                    .lines()
                    .find_map(|l| l.split_once("(?P<").map(|x| x.1.to_string()))
                    .unwrap_or_default();
                let name = name.split('>').next().unwrap_or_default().to_string();
                return Err(err(format!("duplicate extracted label name '{name}'")));
            }
            return Err(err(goutil::go_regex_error(re, &s)));
        }
    };
    if compiled.capture_names().flatten().next().is_none() {
        return Err(err("at least one named capture must be supplied".into()));
    }
    Ok(())
}

/// Splits a pattern expression into captures (`<name>`, `<_>`) and literals.
fn pattern_captures(p: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let b = p.as_bytes();
    let mut lit_start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            if j < b.len() && (b[j].is_ascii_alphabetic() || b[j] == b'_') {
                j += 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < b.len() && b[j] == b'>' {
                    if lit_start < i {
                        out.push((false, &p[lit_start..i]));
                    }
                    out.push((true, &p[i + 1..j]));
                    i = j + 1;
                    lit_start = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    if lit_start < b.len() {
        out.push((false, &p[lit_start..]));
    }
    out
}

fn validate_pattern_parser(p: &str) -> Result<(), ParseError> {
    let err = |m: String| ParseError::nopos(format!("invalid pattern parser: {m}"));
    let nodes = pattern_captures(p);
    let names: Vec<&str> = nodes.iter().filter(|n| n.0 && n.1 != "_").map(|n| n.1).collect();
    if names.is_empty() {
        return Err(err("at least one capture is required".into()));
    }
    for w in nodes.windows(2) {
        if w[0].0 && w[1].0 {
            return Err(err(format!(
                "found consecutive capture '<{}><{}>': invalid expression",
                w[0].1, w[1].1
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(err(format!("duplicate capture name ({n}): invalid expression")));
        }
    }
    Ok(())
}
