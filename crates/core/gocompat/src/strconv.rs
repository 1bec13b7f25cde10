//! Go's `strconv`: `Quote`, `QuoteRune`, `ParseFloat`, `ParseInt`/`Atoi`, `ParseBool` and
//! `FormatFloat(f, 'f', -1, 64)`, with Go's error texts ([`NumError`]).

use std::fmt;

/// Quotes `s` the way Go's `strconv.Quote` does (non-printable runes escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `strconv.IsPrint`: ASCII graphic characters and space, and any
/// non-ASCII character that is not a control, format or non-ASCII space character.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() {
        return false;
    }
    !matches!(
        u,
        0xa0 | 0xad
            | 0x1680
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x3000
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xe000..=0xf8ff
    )
}

/// Quotes `s` like Go's `strconv.Quote` for ASCII input, but leaves every non-ASCII rune as it
/// is (Go escapes non-printable ones such as U+0085 or U+200B; [`quote`] does too).
///
/// This is the quote Skald's label printer and the Go-error texts of `ParseFloat`,
/// `ParseDuration` and `ParseBytes` have always used; it is kept apart from [`quote`] so that
/// those texts do not change.
pub fn quote_lenient(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `body` (a float without its sign) is in Go's decimal grammar: digits [. digits]
/// [e [+-] digits], with at least one digit in the mantissa. Rust's `f64::from_str` accepts a
/// few forms Go rejects and vice versa, so this is checked first; Go accepts underscores only
/// after a base prefix, so none here.
pub fn is_decimal_syntax(body: &str) -> bool {
    let b = body.as_bytes();
    let mut i = 0;
    let mut mant_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mant_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mant_digits += 1;
        }
    }
    if mant_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Why a number did not parse: Go's `strconv.ErrSyntax` or `strconv.ErrRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumErrorKind {
    /// `invalid syntax`.
    Syntax,
    /// `value out of range`.
    Range,
}

/// Go's `*strconv.NumError`: prints `strconv.<Func>: parsing "<input>": <reason>`.
///
/// The input is quoted with [`quote_lenient`], as Skald's texts always have been.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumError {
    /// The Go function that failed: `ParseFloat`, `ParseInt`, `Atoi` or `ParseBool`.
    pub func: &'static str,
    /// The input.
    pub num: String,
    /// Why it failed.
    pub kind: NumErrorKind,
}

impl NumError {
    fn new(func: &'static str, num: &str, kind: NumErrorKind) -> Self {
        NumError { func, num: num.to_string(), kind }
    }
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.kind {
            NumErrorKind::Syntax => "invalid syntax",
            NumErrorKind::Range => "value out of range",
        };
        write!(f, "strconv.{}: parsing {}: {why}", self.func, quote_lenient(&self.num))
    }
}

impl std::error::Error for NumError {}

/// Parses a float like Go's `strconv.ParseFloat(s, 64)`. The error text is Go's.
pub fn parse_float(s: &str) -> Result<f64, NumError> {
    let syntax = || NumError::new("ParseFloat", s, NumErrorKind::Syntax);
    if s.is_empty() {
        return Err(syntax());
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return s.parse::<f64>().map_err(|_| syntax());
    }
    if lower.starts_with("0x") {
        return parse_hex_float(s).ok_or_else(syntax);
    }
    if !is_decimal_syntax(body) {
        return Err(syntax());
    }
    let v: f64 = s.parse().map_err(|_| syntax())?;
    if v.is_infinite() {
        return Err(NumError::new("ParseFloat", s, NumErrorKind::Range));
    }
    Ok(v)
}

/// Parses a decimal integer like Go's `strconv.ParseInt(s, 10, 64)`: an optional sign and
/// ASCII digits only (no underscores, no base prefix). The error text is Go's.
pub fn parse_int(s: &str) -> Result<i64, NumError> {
    parse_int_as(s, "ParseInt")
}

/// Go's `strconv.Atoi` (`ParseInt(s, 10, 0)` on a 64-bit platform; its errors name `Atoi`).
pub fn atoi(s: &str) -> Result<i64, NumError> {
    parse_int_as(s, "Atoi")
}

fn parse_int_as(s: &str, func: &'static str) -> Result<i64, NumError> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return Err(NumError::new(func, s, NumErrorKind::Syntax));
    }
    s.parse::<i64>().map_err(|_| NumError::new(func, s, NumErrorKind::Range))
}

/// Parses a Go integer literal with base prefix (`0x`, `0o`, `0b`, leading `0` = octal) and
/// underscores, like `strconv.ParseInt(s, 0, 64)`. Every failure is reported as
/// `invalid syntax` (Go says `value out of range` for an overflow; no caller prints it).
pub fn parse_int_base0(s: &str) -> Result<i64, NumError> {
    parse_int_base0_opt(s).ok_or_else(|| NumError::new("ParseInt", s, NumErrorKind::Syntax))
}

fn parse_int_base0_opt(s: &str) -> Option<i64> {
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

/// Parses like Go's `strconv.ParseBool`: `1 t T TRUE true True` and `0 f F FALSE false False`.
pub fn parse_bool(s: &str) -> Result<bool, NumError> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(NumError::new("ParseBool", s, NumErrorKind::Syntax)),
    }
}

/// Formats like Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that round-trip,
/// never an exponent (`2.5`, `1000000000000000000000`, `NaN`, `+Inf`, `-Inf`).
pub fn format_float_f(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    format!("{f}")
}

/// Quotes one rune like Go's `strconv.QuoteRune` (`'='`, `'"'`, `'\''`, `'\n'`, `'\x00'`,
/// `'\u00a0'`): what `fmt`'s `%q` prints for a byte or rune.
pub fn quote_rune(c: char) -> String {
    let mut out = String::with_capacity(4);
    out.push('\'');
    match c {
        '\'' => out.push_str("\\'"),
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
    out.push('\'');
    out
}

/// Go hexadecimal float (`0x1.8p3`); the `p` exponent is mandatory.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let body = body.get(2..)?.replace('_', "");
    let (mant, exp) = body.split_once(['p', 'P'])?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("a\"b\\\n\u{1}é\u{a0}"), "\"a\\\"b\\\\\\n\\x01é\\u00a0\"");
        assert_eq!(quote_lenient("a\"b\\\n\u{1}é\u{a0}"), "\"a\\\"b\\\\\\n\\x01é\u{a0}\"");
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float("154.085"), Ok(154.085));
        assert_eq!(parse_float("-1e3"), Ok(-1000.0));
        assert_eq!(parse_float(".5"), Ok(0.5));
        assert_eq!(parse_float("0x1p4"), Ok(16.0));
        assert!(parse_float("+Inf").is_ok_and(|f| f.is_infinite()));
        assert_eq!(
            parse_float("83ms").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseFloat: parsing "83ms": invalid syntax"#.to_string())
        );
        assert!(parse_float("").is_err());
        assert!(parse_float("1_0").is_err());
        assert!(parse_float("1e400").is_err_and(|e| e.to_string().ends_with("value out of range")));
    }

    #[test]
    fn ints() {
        assert_eq!(atoi("42"), Ok(42));
        assert_eq!(atoi("+7"), Ok(7));
        assert_eq!(atoi("-0012"), Ok(-12));
        assert_eq!(parse_int("-9223372036854775808"), Ok(i64::MIN));
        for bad in ["", "-", "1_000", "0x10", " 1", "1.0", "+-1"] {
            assert_eq!(atoi(bad).map_err(|e| e.kind), Err(NumErrorKind::Syntax), "{bad:?}");
        }
        assert_eq!(
            atoi("x").map_err(|e| e.to_string()),
            Err(r#"strconv.Atoi: parsing "x": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_int("99999999999999999999").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#
                .to_string())
        );
    }

    #[test]
    fn format_f() {
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(2.5), "2.5");
        assert_eq!(format_float_f(f64::NAN), "NaN");
        assert_eq!(format_float_f(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn runes() {
        assert_eq!(quote_rune('='), "'='");
        assert_eq!(quote_rune('"'), "'\"'");
        assert_eq!(quote_rune('\''), r"'\''");
        assert_eq!(quote_rune('\\'), r"'\\'");
        assert_eq!(quote_rune('\n'), r"'\n'");
        assert_eq!(quote_rune('\u{0}'), r"'\x00'");
        assert_eq!(quote_rune('é'), "'é'");
        assert_eq!(quote_rune('\u{a0}'), r"'\u00a0'");
    }

    #[test]
    fn bools() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        assert_eq!(
            parse_bool("yes").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseBool: parsing "yes": invalid syntax"#.to_string())
        );
    }

    #[test]
    fn ints_with_base_prefix() {
        assert_eq!(parse_int_base0("0x1f"), Ok(31));
        assert_eq!(parse_int_base0("0o17"), Ok(15));
        assert_eq!(parse_int_base0("017"), Ok(15));
        assert_eq!(parse_int_base0("0b101"), Ok(5));
        assert_eq!(parse_int_base0("-1_000"), Ok(-1000));
        assert_eq!(parse_int_base0("0x_1f"), Ok(31));
        assert_eq!(parse_int_base0("-9223372036854775808"), Ok(i64::MIN));
        for bad in ["", "_1", "1_", "1__0", "0x", "9223372036854775808", "1.5", "+-1"] {
            assert!(parse_int_base0(bad).is_err(), "{bad:?}");
        }
    }
}
