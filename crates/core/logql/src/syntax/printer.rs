//! Printing LogQL the way Loki's `String()` methods (and so `/loki/api/v1/format_query`) do:
//! binary operations and label filter combinations fully parenthesised, ranges in Prometheus
//! duration form, offsets and duration filters in Go form, bytes in go-humanize form.

use std::fmt::{self, Write};

use skald_model::{LabelMatcher, MatchType};

use super::ast::*;
use super::goutil::{
    go_duration_string, go_float_f, go_float_v, go_quote, humanize_bytes, prom_duration_string,
};

/// The LogQL name of a vector aggregation.
pub(crate) fn vector_op_name(op: VectorOp) -> &'static str {
    match op {
        VectorOp::Sum => "sum",
        VectorOp::Avg => "avg",
        VectorOp::Min => "min",
        VectorOp::Max => "max",
        VectorOp::Count => "count",
        VectorOp::Stddev => "stddev",
        VectorOp::Stdvar => "stdvar",
        VectorOp::Topk => "topk",
        VectorOp::Bottomk => "bottomk",
        VectorOp::Sort => "sort",
        VectorOp::SortDesc => "sort_desc",
        VectorOp::ApproxTopk => "approx_topk",
    }
}

fn binop_name(op: BinOp) -> &'static str {
    match op {
        BinOp::Or => "or",
        BinOp::And => "and",
        BinOp::Unless => "unless",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Pow => "^",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
    }
}

fn cmp_name(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
    }
}

fn line_filter_op_name(op: LineFilterOp) -> &'static str {
    match op {
        LineFilterOp::Contains => "|=",
        LineFilterOp::NotContains => "!=",
        LineFilterOp::Regex => "|~",
        LineFilterOp::NotRegex => "!~",
        LineFilterOp::Pattern => "|>",
        LineFilterOp::NotPattern => "!>",
    }
}

/// Prometheus' `Matcher.String()`: the name is quoted when it is not a legacy label name.
fn matcher_string(m: &LabelMatcher) -> String {
    let legacy = !m.name.is_empty()
        && m.name
            .char_indices()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    let name = if legacy { m.name.clone() } else { go_quote(&m.name) };
    format!("{name}{}{}", m.op.as_str(), go_quote(&m.value))
}

fn line_filter_value(v: &LineFilterValue) -> String {
    match v {
        LineFilterValue::Literal(s) => go_quote(s),
        LineFilterValue::Ip(s) => format!("ip({})", go_quote(s)),
    }
}

/// One line filter as Loki prints it (`|= "a" or "b"`; negated `or` chains as `!= "a" != "b"`).
pub(crate) fn line_filter_string(f: &LineFilter) -> String {
    let op = line_filter_op_name(f.op);
    let mut s = format!("{op} {}", line_filter_value(&f.value));
    let negative = matches!(
        f.op,
        LineFilterOp::NotContains | LineFilterOp::NotRegex | LineFilterOp::NotPattern
    );
    for v in &f.or {
        if negative {
            let _ = write!(s, " {op} {}", line_filter_value(v));
        } else {
            let _ = write!(s, " or {}", line_filter_value(v));
        }
    }
    s
}

fn extractions(ex: &[LabelExtraction]) -> String {
    ex.iter()
        .map(|e| format!("{}={}", e.name, go_quote(e.expr.as_deref().unwrap_or(&e.name))))
        .collect::<Vec<_>>()
        .join(",")
}

fn named_matchers(ms: &[NamedMatcher]) -> String {
    ms.iter()
        .map(|m| match m {
            NamedMatcher::Name(n) => n.clone(),
            NamedMatcher::Matcher(m) => matcher_string(m),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn grouping_string(g: &Grouping) -> String {
    format!(" {} ({})", if g.without { "without" } else { "by" }, g.labels.join(","))
}

impl fmt::Display for LabelFilterExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelFilterExpr::And(l, r) => write!(f, "( {l} , {r} )"),
            LabelFilterExpr::Or(l, r) => write!(f, "( {l} or {r} )"),
            LabelFilterExpr::Paren(x) => write!(f, "{x}"),
            LabelFilterExpr::String(m) => {
                if m.op == MatchType::Regex && !regex_simplifies(&m.value) {
                    let v = if m.value.contains('`') {
                        go_quote(&m.value)
                    } else {
                        format!("`{}`", m.value)
                    };
                    write!(f, "{}=~{v}", m.name)
                } else {
                    f.write_str(&matcher_string(m))
                }
            }
            LabelFilterExpr::Number { name, op, value } => {
                write!(f, "{name}{}{}", cmp_name(*op), go_float_f(*value))
            }
            LabelFilterExpr::Duration { name, op, value_ns, .. } => {
                write!(f, "{name}{}{}", cmp_name(*op), go_duration_string(*value_ns))
            }
            LabelFilterExpr::Bytes { name, op, value, .. } => {
                write!(f, "{name}{}{}", cmp_name(*op), humanize_bytes(*value))
            }
            LabelFilterExpr::Ip { name, equal, pattern } => {
                write!(f, "{name}{}ip({})", if *equal { "=" } else { "!=" }, go_quote(pattern))
            }
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::LineFilter(lf) => f.write_str(&line_filter_string(lf)),
            Stage::Parser(p) => match p {
                ParserStage::Json(ex) if ex.is_empty() => f.write_str("| json"),
                ParserStage::Json(ex) => write!(f, "| json {}", extractions(ex)),
                ParserStage::Logfmt { strict, keep_empty, extractions: ex } => {
                    f.write_str("| logfmt")?;
                    if ex.is_empty() {
                        if *strict {
                            f.write_str(" --strict")?;
                        }
                        if *keep_empty {
                            f.write_str(" --keep-empty")?;
                        }
                        Ok(())
                    } else {
                        f.write_str(" ")?;
                        if *strict {
                            f.write_str("--strict ")?;
                        }
                        if *keep_empty {
                            f.write_str("--keep-empty ")?;
                        }
                        f.write_str(&extractions(ex))
                    }
                }
                ParserStage::Regexp(s) => write!(f, "| regexp {}", go_quote(s)),
                ParserStage::Pattern(s) => write!(f, "| pattern {}", go_quote(s)),
                ParserStage::Unpack => f.write_str("| unpack"),
            },
            Stage::LabelFilter(e) => write!(f, "| {e}"),
            Stage::LineFormat(t) => write!(f, "| line_format {}", go_quote(t)),
            Stage::LabelFormat(ops) => {
                let s: Vec<String> = ops
                    .iter()
                    .map(|o| match o {
                        LabelFormatOp::Rename { dst, src } => format!("{dst}={src}"),
                        LabelFormatOp::Template { dst, template } => {
                            format!("{dst}={}", go_quote(template))
                        }
                    })
                    .collect();
                write!(f, "| label_format {}", s.join(","))
            }
            Stage::Decolorize => f.write_str("| decolorize"),
            Stage::Drop(ms) => write!(f, "| drop {}", named_matchers(ms)),
            Stage::Keep(ms) => write!(f, "| keep {}", named_matchers(ms)),
        }
    }
}

impl fmt::Display for LogSelectorExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&matcher_string(m))?;
        }
        f.write_str("}")?;
        for s in &self.stages {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Unwrap {
    /// Prints ` | unwrap x | post-filters` (with the leading space, as Loki does).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.conversion {
            UnwrapConversion::None => write!(f, " | unwrap {}", self.label)?,
            UnwrapConversion::Bytes => write!(f, " | unwrap bytes({})", self.label)?,
            UnwrapConversion::Duration => write!(f, " | unwrap duration({})", self.label)?,
            UnwrapConversion::DurationSeconds => {
                write!(f, " | unwrap duration_seconds({})", self.label)?
            }
        }
        for p in &self.post_filters {
            write!(f, " | {p}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LogRangeExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.selector)?;
        if let Some(u) = &self.unwrap {
            write!(f, "{u}")?;
        }
        write!(f, "[{}]", prom_duration_string(self.range_ns))?;
        if self.offset_ns != 0 {
            write!(f, " offset {}", go_duration_string(self.offset_ns))?;
        }
        Ok(())
    }
}

impl fmt::Display for SampleExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleExpr::RangeAggregation { op, range, param, grouping } => {
                f.write_str(super::parser::range_op_name(*op))?;
                f.write_str("(")?;
                if let Some(p) = param {
                    write!(f, "{},", go_float_f(*p))?;
                }
                write!(f, "{range})")?;
                if let Some(g) = grouping {
                    f.write_str(&grouping_string(g))?;
                }
                Ok(())
            }
            SampleExpr::VectorAggregation { op, expr, param, grouping } => {
                f.write_str(vector_op_name(*op))?;
                if let Some(g) = grouping {
                    if g.without || !g.labels.is_empty() {
                        f.write_str(&grouping_string(g))?;
                    }
                }
                f.write_str("(")?;
                let has_param =
                    matches!(op, VectorOp::Topk | VectorOp::Bottomk | VectorOp::ApproxTopk);
                if has_param || param.is_some_and(|p| p != 0.0) {
                    write!(f, "{},", param.unwrap_or(0.0) as i64)?;
                }
                write!(f, "{expr})")
            }
            SampleExpr::Binary { op, lhs, rhs, return_bool, matching } => {
                let mut o = binop_name(*op).to_string();
                if *return_bool {
                    o.push_str(" bool");
                }
                if let Some(m) = &matching.matching {
                    // Loki prints a bare `group_left`; when the right operand then starts
                    // with `(` that text would not parse back, so print `group_left ()`.
                    let paren_rhs = matches!(strip_paren(rhs), SampleExpr::Binary { .. });
                    let group = match &matching.group {
                        None => String::new(),
                        Some(GroupSide::Left(l)) if l.is_empty() && paren_rhs => {
                            "group_left ()".into()
                        }
                        Some(GroupSide::Right(l)) if l.is_empty() && paren_rhs => {
                            "group_right ()".into()
                        }
                        Some(GroupSide::Left(l)) if l.is_empty() => "group_left".into(),
                        Some(GroupSide::Right(l)) if l.is_empty() => "group_right".into(),
                        Some(GroupSide::Left(l)) => format!("group_left ({})", l.join(",")),
                        Some(GroupSide::Right(l)) => format!("group_right ({})", l.join(",")),
                    };
                    let on = if m.without { "ignoring" } else { "on" };
                    o = format!("{o} {on} ({}) {group}", m.labels.join(","));
                }
                write!(f, "({lhs} {o} {rhs})")
            }
            SampleExpr::Literal(v) => f.write_str(&go_float_v(*v)),
            SampleExpr::Vector(v) => write!(f, "vector({v:.6})"),
            SampleExpr::LabelReplace { expr, dst, replacement, src, regex } => write!(
                f,
                "label_replace({expr},{},{},{},{})",
                go_quote(dst),
                go_quote(replacement),
                go_quote(src),
                go_quote(regex)
            ),
            SampleExpr::Paren(x) => write!(f, "{x}"),
        }
    }
}

fn strip_paren(mut e: &SampleExpr) -> &SampleExpr {
    while let SampleExpr::Paren(x) = e {
        e = x;
    }
    e
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Log(l) => write!(f, "{l}"),
            Expr::Sample(s) => write!(f, "{s}"),
        }
    }
}

// ------------------------------------------------------------------ regex simplification

/// A tiny regex model, enough to decide whether Loki's regex simplifier would turn a label
/// regex into literal filters (then Loki prints the matcher normally) or keep a regex (then it
/// prints the regex in backticks).
enum R {
    Lit,
    Empty,
    StarAny,
    PlusAny,
    Alt(Vec<R>, bool),
    Concat(Vec<R>),
    Other,
}

struct RParser<'a> {
    c: Vec<char>,
    i: usize,
    _s: &'a str,
    depth: usize,
}

impl RParser<'_> {
    fn alt(&mut self) -> R {
        let mut branches = Vec::new();
        let mut all_single = true;
        loop {
            let (b, single) = self.concat();
            all_single &= single;
            branches.push(b);
            if self.c.get(self.i) == Some(&'|') {
                self.i += 1;
                continue;
            }
            break;
        }
        if branches.len() == 1 {
            branches.pop().unwrap_or(R::Empty)
        } else {
            R::Alt(branches, all_single)
        }
    }

    /// Returns the concatenation and whether it is a single literal character.
    fn concat(&mut self) -> (R, bool) {
        let mut items: Vec<R> = Vec::new();
        let mut chars = 0usize;
        let mut last_lit = false;
        while let Some(&ch) = self.c.get(self.i) {
            match ch {
                '|' | ')' => break,
                '(' => {
                    self.depth += 1;
                    if self.depth > 64 {
                        return (R::Other, false);
                    }
                    let rest: String = self.c[self.i..].iter().take(5).collect();
                    if rest.starts_with("(?i)") {
                        self.i += 4;
                        self.depth -= 1;
                        continue;
                    }
                    if rest.starts_with("(?:") {
                        self.i += 3;
                    } else if rest.starts_with("(?P<") || rest.starts_with("(?<") {
                        while self.i < self.c.len() && self.c[self.i] != '>' {
                            self.i += 1;
                        }
                        self.i += 1;
                    } else if rest.starts_with("(?") {
                        return (R::Other, false);
                    } else {
                        self.i += 1;
                    }
                    let inner = self.alt();
                    if self.c.get(self.i) != Some(&')') {
                        return (R::Other, false);
                    }
                    self.i += 1;
                    self.depth -= 1;
                    if matches!(self.c.get(self.i), Some('*' | '+' | '?' | '{')) {
                        return (R::Other, false);
                    }
                    items.push(inner);
                    last_lit = false;
                    chars += 2;
                }
                '.' => {
                    self.i += 1;
                    match self.c.get(self.i) {
                        Some('*') => {
                            self.i += 1;
                            if self.c.get(self.i) == Some(&'?') {
                                self.i += 1;
                            }
                            items.push(R::StarAny);
                        }
                        Some('+') => {
                            self.i += 1;
                            if self.c.get(self.i) == Some(&'?') {
                                self.i += 1;
                            }
                            items.push(R::PlusAny);
                        }
                        _ => return (R::Other, false),
                    }
                    last_lit = false;
                    chars += 2;
                }
                '\\' => {
                    match self.c.get(self.i + 1) {
                        Some(e) if e.is_ascii_punctuation() => {}
                        _ => return (R::Other, false),
                    }
                    self.i += 2;
                    if matches!(self.c.get(self.i), Some('*' | '+' | '?' | '{')) {
                        return (R::Other, false);
                    }
                    if !last_lit {
                        items.push(R::Lit);
                    }
                    last_lit = true;
                    chars += 1;
                }
                '[' | '^' | '$' | '*' | '+' | '?' | '{' => return (R::Other, false),
                _ => {
                    self.i += 1;
                    if matches!(self.c.get(self.i), Some('*' | '+' | '?' | '{')) {
                        return (R::Other, false);
                    }
                    if !last_lit {
                        items.push(R::Lit);
                    }
                    last_lit = true;
                    chars += 1;
                }
            }
        }
        let single = chars == 1 && items.len() == 1 && matches!(items[0], R::Lit);
        match items.len() {
            0 => (R::Empty, false),
            1 => (items.pop().unwrap_or(R::Empty), single),
            _ => (R::Concat(items), false),
        }
    }
}

fn simp(r: &R) -> bool {
    match r {
        R::Lit | R::Empty | R::StarAny | R::PlusAny => true,
        R::Alt(bs, all_single) => !all_single && bs.iter().all(simp),
        R::Concat(items) => simp_concat(items, false),
        R::Other => false,
    }
}

fn simp_concat(items: &[R], mut base: bool) -> bool {
    let items: Vec<&R> = items.iter().filter(|r| !matches!(r, R::Empty)).collect();
    if items.len() > 3 {
        return false;
    }
    let mut lits = 0;
    let mut had_alt = false;
    for it in &items {
        match it {
            R::Lit => {
                if lits > 0 {
                    return false;
                }
                lits += 1;
                base = true;
            }
            R::Alt(bs, _) if base => {
                for b in bs {
                    let ok = match b {
                        R::Empty | R::Lit | R::StarAny => true,
                        R::Concat(c) => simp_concat(c, true),
                        _ => false,
                    };
                    if !ok {
                        return false;
                    }
                }
                had_alt = true;
            }
            R::StarAny => {}
            _ => return false,
        }
    }
    had_alt || base
}

/// Whether Loki's regex simplifier turns the label regex `re` into literal filters.
pub(crate) fn regex_simplifies(re: &str) -> bool {
    let mut p = RParser { c: re.chars().collect(), i: 0, _s: re, depth: 0 };
    let r = p.alt();
    if p.i != p.c.len() {
        return false;
    }
    simp(&r)
}
