//! The LogQL lexer. It follows Loki's tokenisation rules: Go-scanner numbers, strings and
//! comments; keywords matched case-insensitively; function names (`rate`, `sum`, `bytes`,
//! `ip`, ...) only when followed by `(` or `by`/`without (`; numbers glued to a unit become
//! DURATION or BYTES tokens; `[...]` is one RANGE token.

use super::error::ParseError;
use super::goutil;

/// Token kinds. `name()` gives the name goyacc prints in Loki's syntax errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Eof,
    Bytes,
    Ident,
    Str,
    Number,
    Flag,
    Duration,
    Range,
    Eq,
    Re,
    Nre,
    Npa,
    LBrace,
    RBrace,
    RBracket,
    Comma,
    Dot,
    PipeMatch,
    PipeExact,
    PipePattern,
    LParen,
    RParen,
    By,
    Without,
    Bool,
    Json,
    Regexp,
    Logfmt,
    Pipe,
    LineFmt,
    LabelFmt,
    Unwrap,
    Unpack,
    Offset,
    Pattern,
    Ip,
    On,
    Ignoring,
    GroupLeft,
    GroupRight,
    Decolorize,
    Drop,
    Keep,
    LabelReplace,
    Vector,
    /// A range aggregation function (index into `RANGE_OPS`).
    RangeFn(u8),
    /// A vector aggregation function (index into `VECTOR_OPS`).
    VectorFn(u8),
    BytesConv,
    DurationConv,
    DurationSecondsConv,
    Or,
    And,
    Unless,
    CmpEq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

/// Range aggregation names with their goyacc token names.
pub(crate) const RANGE_OPS: [(&str, &str); 15] = [
    ("count_over_time", "COUNT_OVER_TIME"),
    ("rate", "RATE"),
    ("rate_counter", "RATE_COUNTER"),
    ("bytes_over_time", "BYTES_OVER_TIME"),
    ("bytes_rate", "BYTES_RATE"),
    ("avg_over_time", "AVG_OVER_TIME"),
    ("sum_over_time", "SUM_OVER_TIME"),
    ("min_over_time", "MIN_OVER_TIME"),
    ("max_over_time", "MAX_OVER_TIME"),
    ("stdvar_over_time", "STDVAR_OVER_TIME"),
    ("stddev_over_time", "STDDEV_OVER_TIME"),
    ("quantile_over_time", "QUANTILE_OVER_TIME"),
    ("first_over_time", "FIRST_OVER_TIME"),
    ("last_over_time", "LAST_OVER_TIME"),
    ("absent_over_time", "ABSENT_OVER_TIME"),
];

/// Vector aggregation names with their goyacc token names.
pub(crate) const VECTOR_OPS: [(&str, &str); 12] = [
    ("sum", "SUM"),
    ("avg", "AVG"),
    ("min", "MIN"),
    ("max", "MAX"),
    ("count", "COUNT"),
    ("stddev", "STDDEV"),
    ("stdvar", "STDVAR"),
    ("topk", "TOPK"),
    ("bottomk", "BOTTOMK"),
    ("sort", "SORT"),
    ("sort_desc", "SORT_DESC"),
    ("approx_topk", "APPROX_TOPK"),
];

impl Tok {
    /// The token name as Loki's syntax errors print it.
    pub(crate) fn name(self) -> &'static str {
        use Tok::*;
        match self {
            Eof => "$end",
            Bytes => "BYTES",
            Ident => "IDENTIFIER",
            Str => "STRING",
            Number => "NUMBER",
            Flag => "FUNCTION_FLAG",
            Duration => "DURATION",
            Range => "RANGE",
            Eq => "=",
            Re => "=~",
            Nre => "!~",
            Npa => "!>",
            LBrace => "{",
            RBrace => "}",
            RBracket => "]",
            Comma => ",",
            Dot => ".",
            PipeMatch => "|~",
            PipeExact => "|=",
            PipePattern => "|>",
            LParen => "(",
            RParen => ")",
            By => "by",
            Without => "without",
            Bool => "bool",
            Json => "json",
            Regexp => "regexp",
            Logfmt => "logfmt",
            Pipe => "|",
            LineFmt => "line_format",
            LabelFmt => "label_format",
            Unwrap => "unwrap",
            Unpack => "unpack",
            Offset => "offset",
            Pattern => "pattern",
            Ip => "ip",
            On => "on",
            Ignoring => "ignoring",
            GroupLeft => "group_left",
            GroupRight => "group_right",
            Decolorize => "decolorize",
            Drop => "drop",
            Keep => "keep",
            LabelReplace => "label_replace",
            Vector => "VECTOR",
            RangeFn(i) => RANGE_OPS.get(usize::from(i)).map_or("RATE", |x| x.1),
            VectorFn(i) => VECTOR_OPS.get(usize::from(i)).map_or("SUM", |x| x.1),
            BytesConv => "BYTES_CONV",
            DurationConv => "DURATION_CONV",
            DurationSecondsConv => "DURATION_SECONDS_CONV",
            Or => "or",
            And => "and",
            Unless => "unless",
            CmpEq => "==",
            Neq => "!=",
            Lt => "<",
            Lte => "<=",
            Gt => ">",
            Gte => ">=",
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            Pow => "^",
        }
    }
}

/// One token with its position as Loki reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    /// Raw text (identifiers, numbers, flags).
    pub text: String,
    /// Unquoted value for strings.
    pub str_val: String,
    /// Nanoseconds for DURATION and RANGE.
    pub dur: i64,
    /// Bytes for BYTES.
    pub bytes: u64,
    /// Loki's reported line (0 when Loki's lexer invalidated it by reading ahead).
    pub line: usize,
    /// Loki's reported column (1-based, in characters).
    pub col: usize,
}

/// Keywords recognised anywhere (case-insensitive).
fn keyword(lower: &str) -> Option<Tok> {
    use Tok::*;
    Some(match lower {
        "by" => By,
        "without" => Without,
        "bool" => Bool,
        "json" => Json,
        "regexp" => Regexp,
        "logfmt" => Logfmt,
        "line_format" => LineFmt,
        "label_format" => LabelFmt,
        "unwrap" => Unwrap,
        "unpack" => Unpack,
        "offset" => Offset,
        "pattern" => Pattern,
        "on" => On,
        "ignoring" => Ignoring,
        "group_left" => GroupLeft,
        "group_right" => GroupRight,
        "decolorize" => Decolorize,
        "drop" => Drop,
        "keep" => Keep,
        "or" => Or,
        "and" => And,
        "unless" => Unless,
        _ => return None,
    })
}

/// Function keywords, only recognised when followed by `(` (or `by`/`without` then `(`).
fn function_token(lower: &str) -> Option<Tok> {
    if let Some(i) = RANGE_OPS.iter().position(|(n, _)| *n == lower) {
        return Some(Tok::RangeFn(i as u8));
    }
    if let Some(i) = VECTOR_OPS.iter().position(|(n, _)| *n == lower) {
        return Some(Tok::VectorFn(i as u8));
    }
    Some(match lower {
        "vector" => Tok::Vector,
        "label_replace" => Tok::LabelReplace,
        "bytes" => Tok::BytesConv,
        "duration" => Tok::DurationConv,
        "duration_seconds" => Tok::DurationSecondsConv,
        "ip" => Tok::Ip,
        _ => return None,
    })
}

/// Character cursor with Loki's line/column bookkeeping.
struct Lexer<'a> {
    src: &'a str,
    chars: Vec<(usize, char)>,
    i: usize,
    line: usize,
    col: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn is_duration_rune(c: char) -> bool {
    matches!(c, 'n' | 'u' | 'µ' | 'm' | 's' | 'h' | 'd' | 'w' | 'y')
}

fn is_bytes_rune(c: char) -> bool {
    matches!(c, 'B' | 'i' | 'k' | 'K' | 'M' | 'G' | 'T' | 'P')
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).map(|x| x.1)
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).map(|x| x.1)
    }

    fn off(&self, i: usize) -> usize {
        self.chars.get(i).map_or(self.src.len(), |x| x.0)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 0;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    /// Position of the next character (what Go's scanner reports for a token starting there).
    fn pos_next(&self) -> (usize, usize) {
        if self.i == 0 {
            // nothing read yet: the scanner reports 0:0 for an immediate EOF
            if self.chars.is_empty() {
                return (0, 0);
            }
            return (1, 1);
        }
        (self.line, self.col + 1)
    }

    fn error_at(&self, msg: impl Into<String>, line: usize, col: usize) -> ParseError {
        ParseError::new(msg, line, col)
    }

    fn skip_ws_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\n' | '\r') => {
                    self.bump();
                }
                Some('/') if matches!(self.peek_at(1), Some('/')) => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('/') if matches!(self.peek_at(1), Some('*')) => {
                    let (l, c) = self.pos_next();
                    self.bump();
                    self.bump();
                    let mut closed = false;
                    while let Some(ch) = self.bump() {
                        if ch == '*' && self.peek() == Some('/') {
                            self.bump();
                            closed = true;
                            break;
                        }
                    }
                    if !closed {
                        return Err(self.error_at("comment not terminated", l, c));
                    }
                }
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// What Loki's `isFunction` checks after a function name: the next non-space characters
    /// are `(`, or `by`/`without` followed by optional spaces and `(`.
    fn is_function_follow(&self, mut j: usize) -> bool {
        let n = self.chars.len();
        while j < n && self.chars[j].1.is_whitespace() {
            j += 1;
        }
        if j < n && self.chars[j].1 == '(' {
            return true;
        }
        for kw in ["by", "without"] {
            let k = kw.len();
            if j + k <= n {
                let word: String = self.chars[j..j + k].iter().map(|x| x.1).collect();
                if word.to_lowercase() == kw {
                    let mut m = j + k;
                    while m < n && self.chars[m].1.is_whitespace() {
                        m += 1;
                    }
                    return m < n && self.chars[m].1 == '(';
                }
            }
        }
        false
    }

    /// Consumes the run of characters after a number that `accept` allows (Loki's
    /// `tryScanDuration`/`tryScanBytes`), returning the end index if `parse` accepts it.
    fn glued_suffix(&self, start_text: &str, accept: fn(char) -> bool) -> (usize, String) {
        let mut j = self.i;
        let mut s = start_text.to_string();
        while let Some(&(_, c)) = self.chars.get(j) {
            if c.is_whitespace() || !(c.is_numeric() || accept(c) || c == '.') {
                break;
            }
            s.push(c);
            j += 1;
        }
        (j, s)
    }

    fn advance_to(&mut self, j: usize) {
        while self.i < j {
            self.bump();
        }
    }

    /// Scans a Go number literal; returns the scanner error text, if any.
    fn scan_number(&mut self, seen_dot: bool) -> Option<String> {
        let mut prefix = '\0';
        let mut base = 10;
        let mut invalid: Option<char> = None;
        let mut has_digits = false;
        let mut is_int = !seen_dot;
        let digits = |lx: &mut Self, base: u32, invalid: &mut Option<char>| -> bool {
            let mut any = false;
            while let Some(c) = lx.peek() {
                let ok = if base <= 10 {
                    c.is_ascii_digit() || c == '_'
                } else {
                    c.is_ascii_hexdigit() || c == '_'
                };
                if !ok {
                    break;
                }
                if c != '_' {
                    any = true;
                    if base <= 10 && c.to_digit(10).is_some_and(|d| d >= base) && invalid.is_none()
                    {
                        *invalid = Some(c);
                    }
                }
                lx.bump();
            }
            any
        };
        if !seen_dot {
            if self.peek() == Some('0') {
                self.bump();
                match self.peek().map(|c| c.to_ascii_lowercase()) {
                    Some('x') => {
                        self.bump();
                        base = 16;
                        prefix = 'x';
                    }
                    Some('o') => {
                        self.bump();
                        base = 8;
                        prefix = 'o';
                    }
                    Some('b') if matches!(self.peek_at(1), Some('0' | '1')) => {
                        self.bump();
                        base = 2;
                        prefix = 'b';
                    }
                    _ => {
                        base = 8;
                        prefix = '0';
                        has_digits = true;
                    }
                }
            }
            has_digits |= digits(self, base, &mut invalid);
            if self.peek() == Some('.') {
                self.bump();
                is_int = false;
                has_digits |= digits(self, base, &mut invalid);
            }
        } else {
            has_digits |= digits(self, base, &mut invalid);
        }
        let litname = match prefix {
            'x' => "hexadecimal literal",
            'o' | '0' => "octal literal",
            'b' => "binary literal",
            _ => "decimal literal",
        };
        if !has_digits {
            return Some(format!("{litname} has no digits"));
        }
        let e = self.peek().map(|c| c.to_ascii_lowercase());
        if e == Some('e') || (e == Some('p') && prefix == 'x') {
            self.bump();
            is_int = false;
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            let mut none = None;
            if !digits(self, 10, &mut none) {
                return Some("exponent has no digits".into());
            }
        } else if prefix == 'x' && !is_int {
            return Some("hexadecimal mantissa requires a 'p' exponent".into());
        }
        if is_int {
            if let Some(c) = invalid {
                return Some(format!("invalid digit '{c}' in {litname}"));
            }
        }
        None
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_ws_and_comments()?;
        let (line, col) = self.pos_next();
        let start = self.i;
        let mk = |kind: Tok, line: usize, col: usize| Token {
            kind,
            text: String::new(),
            str_val: String::new(),
            dur: 0,
            bytes: 0,
            line,
            col,
        };
        let Some(c) = self.peek() else {
            return Ok(mk(Tok::Eof, line, col));
        };
        if c == '\0' {
            return Err(self.error_at("invalid character NUL", line, col));
        }
        // identifiers and keywords
        if is_ident_start(c) {
            while self.peek().is_some_and(is_ident_char) {
                self.bump();
            }
            let text = &self.src[self.off(start)..self.off(self.i)];
            let lower = text.to_lowercase();
            if let Some(t) = function_token(&lower) {
                if self.is_function_follow(self.i) {
                    return Ok(mk(t, line, col));
                }
                let mut t = mk(Tok::Ident, line, col);
                t.text = text.to_string();
                return Ok(t);
            }
            if let Some(t) = keyword(&lower) {
                return Ok(mk(t, line, col));
            }
            let mut t = mk(Tok::Ident, line, col);
            t.text = text.to_string();
            return Ok(t);
        }
        // numbers, durations, bytes
        if c.is_ascii_digit() || (c == '.' && self.peek_at(1).is_some_and(|d| d.is_ascii_digit())) {
            if c == '.' {
                self.bump();
            }
            if let Some(msg) = self.scan_number(c == '.') {
                return Err(self.error_at(msg, line, col));
            }
            let text = self.src[self.off(start)..self.off(self.i)].to_string();
            let (j, s) = self.glued_suffix(&text, is_duration_rune);
            if j > self.i {
                if let Some(d) = parse_duration(&s) {
                    self.advance_to(j);
                    let mut t = mk(Tok::Duration, 0, col);
                    t.dur = d;
                    t.text = s;
                    return Ok(t);
                }
            }
            let (j, s) = self.glued_suffix(&text, is_bytes_rune);
            if j > self.i {
                if let Some(b) = goutil::humanize_parse_bytes(&s) {
                    self.advance_to(j);
                    let mut t = mk(Tok::Bytes, 0, col);
                    t.bytes = b;
                    t.text = s;
                    return Ok(t);
                }
            }
            let mut t = mk(Tok::Number, line, col);
            t.text = text;
            return Ok(t);
        }
        match c {
            '"' | '`' | '\'' => return self.scan_string(c, line, col),
            '[' => {
                self.bump();
                let st = self.i;
                while let Some(ch) = self.peek() {
                    if ch == ']' {
                        let inner = &self.src[self.off(st)..self.off(self.i)];
                        self.bump();
                        return match goutil::prom_parse_duration(inner) {
                            Ok(d) => {
                                let mut t = mk(Tok::Range, 0, col);
                                t.dur = d;
                                t.text = inner.to_string();
                                Ok(t)
                            }
                            Err(e) => Err(self.error_at(e.to_string(), 0, col)),
                        };
                    }
                    self.bump();
                }
                return Err(self.error_at("missing closing ']' in duration", 0, col));
            }
            '-' => {
                if self.peek_at(1) == Some('-') {
                    // parser flags --strict / --keep-empty
                    let mut j = self.i + 1;
                    let mut s = String::from("-");
                    while let Some(&(_, ch)) = self.chars.get(j) {
                        if !(ch.is_alphabetic() || ch == '-') {
                            break;
                        }
                        s.push(ch);
                        j += 1;
                    }
                    if s == "--strict" || s == "--keep-empty" {
                        self.advance_to(j);
                        let mut t = mk(Tok::Flag, 0, col);
                        t.text = s;
                        return Ok(t);
                    }
                }
                self.bump();
                let (j, s) = self.glued_suffix("-", is_duration_rune);
                if j > self.i {
                    if let Some(d) = parse_duration(&s) {
                        self.advance_to(j);
                        let mut t = mk(Tok::Duration, 0, col);
                        t.dur = d;
                        t.text = s;
                        return Ok(t);
                    }
                }
                return Ok(mk(Tok::Sub, line, col));
            }
            _ => {}
        }
        self.bump();
        let next = self.peek();
        let two = match (c, next) {
            ('=', Some('~')) => Some(Tok::Re),
            ('=', Some('=')) => Some(Tok::CmpEq),
            ('!', Some('~')) => Some(Tok::Nre),
            ('!', Some('=')) => Some(Tok::Neq),
            ('!', Some('>')) => Some(Tok::Npa),
            ('|', Some('=')) => Some(Tok::PipeExact),
            ('|', Some('~')) => Some(Tok::PipeMatch),
            ('|', Some('>')) => Some(Tok::PipePattern),
            ('>', Some('=')) => Some(Tok::Gte),
            ('<', Some('=')) => Some(Tok::Lte),
            _ => None,
        };
        if let Some(t) = two {
            self.bump();
            // Loki reads the second character with Next(), which invalidates the line.
            return Ok(mk(t, 0, col));
        }
        let single = match c {
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '{' => Tok::LBrace,
            '}' => Tok::RBrace,
            '=' => Tok::Eq,
            '|' => Tok::Pipe,
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ']' => Tok::RBracket,
            '+' => Tok::Add,
            '*' => Tok::Mul,
            '/' => Tok::Div,
            '%' => Tok::Mod,
            '^' => Tok::Pow,
            '>' => Tok::Gt,
            '<' => Tok::Lt,
            _ => {
                // Loki turns any other character into an IDENTIFIER token.
                let mut t = mk(Tok::Ident, line, col);
                t.text = c.to_string();
                return Ok(t);
            }
        };
        Ok(mk(single, line, col))
    }

    fn scan_string(&mut self, quote: char, line: usize, col: usize) -> Result<Token, ParseError> {
        let start = self.i;
        self.bump();
        let mut n = 0usize;
        loop {
            let Some(ch) = self.peek() else {
                return Err(self.error_at("literal not terminated", line, col));
            };
            if ch == quote {
                self.bump();
                break;
            }
            if quote != '`' && ch == '\n' {
                return Err(self.error_at("literal not terminated", line, col));
            }
            self.bump();
            if ch == '\0' {
                return Err(self.error_at("invalid character NUL", line, col));
            }
            if quote != '`' && ch == '\\' {
                let Some(e) = self.peek() else {
                    return Err(self.error_at("literal not terminated", line, col));
                };
                let count = match e {
                    'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\' => 0,
                    c if c == quote => 0,
                    '0'..='7' => 2,
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => return Err(self.error_at("invalid char escape", line, col)),
                };
                self.bump();
                let base = if matches!(e, '0'..='7') { 8 } else { 16 };
                for _ in 0..count {
                    match self.peek() {
                        Some(d) if d.is_digit(base) => {
                            self.bump();
                        }
                        _ => return Err(self.error_at("invalid char escape", line, col)),
                    }
                }
            }
            n += 1;
        }
        let raw = &self.src[self.off(start)..self.off(self.i)];
        if quote == '\'' {
            // Go char literals are not strings for Loki: they become IDENTIFIER tokens.
            if n != 1 {
                return Err(self.error_at("invalid char literal", line, col));
            }
            return Ok(Token {
                kind: Tok::Ident,
                text: raw.to_string(),
                str_val: String::new(),
                dur: 0,
                bytes: 0,
                line,
                col,
            });
        }
        let value = match skald_model::labels::unquote_at(raw) {
            Ok((v, _)) => v,
            Err(_) => return Err(self.error_at("invalid syntax", line, col)),
        };
        Ok(Token {
            kind: Tok::Str,
            text: String::new(),
            str_val: value,
            dur: 0,
            bytes: 0,
            line,
            col,
        })
    }
}

/// Loki's duration parsing for glued number tokens: Prometheus units first, then Go's.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    goutil::prom_parse_duration(s).ok().or_else(|| goutil::go_parse_duration(s))
}

/// Tokenises `input`. Lexing stops at the first error, which is returned as the last element
/// so that the parser reports it only when it reaches that point (as Loki's lazy lexer does).
pub(crate) fn tokenize(input: &str) -> (Vec<Token>, Option<ParseError>) {
    let mut chars: Vec<(usize, char)> = input.char_indices().collect();
    let mut src_off = 0;
    if chars.first().is_some_and(|c| c.1 == '\u{feff}') {
        chars.remove(0);
        src_off = 0;
    }
    let _ = src_off;
    let mut lx = Lexer { src: input, chars, i: 0, line: 1, col: 0 };
    let mut out = Vec::new();
    loop {
        match lx.next_token() {
            Ok(t) => {
                let eof = t.kind == Tok::Eof;
                out.push(t);
                if eof {
                    return (out, None);
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<Tok> {
        let (t, e) = tokenize(s);
        assert!(e.is_none(), "{e:?}");
        t.into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn basic_tokens() {
        use Tok::*;
        assert_eq!(
            kinds(r#"{job="web"} |= "x" | json"#),
            vec![LBrace, Ident, Eq, Str, RBrace, PipeExact, Str, Pipe, Json, Eof]
        );
        assert_eq!(kinds("rate(x[5m])")[0], RangeFn(1));
        assert_eq!(kinds("sum by (rate) (x)")[3], Ident);
        assert_eq!(kinds("SUM(x)")[0], VectorFn(0));
        assert_eq!(kinds("| unwrap bytes")[2], Ident);
        assert_eq!(kinds("| unwrap bytes(x)")[2], BytesConv);
        assert_eq!(kinds("x > 250ms")[2], Duration);
        assert_eq!(kinds("x > 5MB")[2], Bytes);
        assert_eq!(kinds("x > 1.5")[2], Number);
        assert_eq!(kinds("offset -5m")[1], Duration);
        assert_eq!(kinds("1 -5")[1], Sub);
        assert_eq!(kinds("logfmt --strict --keep-empty")[1..3], [Flag, Flag]);
        assert_eq!(kinds("a # comment\n b"), vec![Ident, Ident, Eof]);
        assert_eq!(kinds("a // c\n /* x */ b"), vec![Ident, Ident, Eof]);
        assert_eq!(kinds("@"), vec![Ident, Eof]);
    }

    #[test]
    fn positions() {
        let (t, _) = tokenize("{a=\"b\"}\n  |= \"x\"");
        assert_eq!((t[0].line, t[0].col), (1, 1));
        assert_eq!((t[5].line, t[5].col), (0, 3)); // `|=` invalidates the line, like Loki
        assert_eq!((t[6].line, t[6].col), (2, 6));
        assert_eq!((t[7].line, t[7].col), (2, 9)); // EOF
        let (t, _) = tokenize("");
        assert_eq!((t[0].line, t[0].col), (0, 0));
        let (t, _) = tokenize("é x");
        assert_eq!(t[1].col, 3);
    }

    #[test]
    fn errors() {
        let (_, e) = tokenize("{foo=\"bar}");
        assert_eq!(e.unwrap().to_string(), "parse error at line 1, col 6: literal not terminated");
        let (_, e) = tokenize("rate({ foo = \"bar\" }[5)");
        assert_eq!(
            e.unwrap().to_string(),
            "parse error at line 0, col 21: missing closing ']' in duration"
        );
        let (_, e) = tokenize("x[5minutes]");
        assert_eq!(
            e.unwrap().to_string(),
            "parse error at line 0, col 2: unknown unit \"minutes\" in duration \"5minutes\""
        );
        let (_, e) = tokenize("\"\\q\"");
        assert_eq!(e.unwrap().msg, "invalid char escape");
    }
}
