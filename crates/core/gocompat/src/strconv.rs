//! Go's `strconv`: `Quote`, `QuoteRune`, `ParseFloat`, `ParseInt`/`Atoi`, `ParseBool` and
//! `FormatFloat(f, 'f', -1, 64)`, with Go's error texts ([`NumError`]).

use std::fmt;

/// Quotes `s` the way Go's `strconv.Quote` does (non-printable runes escaped).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        append_escaped_rune(&mut out, c, '"', false);
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
        append_escaped_rune(&mut out, c, '"', true);
    }
    out.push('"');
    out
}

/// Appends `c` as Go's `appendEscapedRune` writes it inside a literal delimited by `quote`
/// (`"` for `Quote`, `'` for `QuoteRune`): the delimiter and `\` backslashed, printable runes
/// as they are, `\a \b \f \n \r \t \v` by name, other runes as `\x`, `\u` or `\U`.
/// `lenient` leaves every non-ASCII rune as it is ([`quote_lenient`]).
fn append_escaped_rune(out: &mut String, c: char, quote: char, lenient: bool) {
    use std::fmt::Write as _;
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_go_printable(c) || (lenient && !c.is_ascii()) {
        out.push(c);
        return;
    }
    let _ = match c {
        '\u{7}' => out.write_str("\\a"),
        '\u{8}' => out.write_str("\\b"),
        '\u{c}' => out.write_str("\\f"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        '\u{b}' => out.write_str("\\v"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32),
        c => write!(out, "\\U{:08x}", c as u32),
    };
}

/// Whether `body` (a float without its sign) is in Go's decimal grammar without underscores:
/// digits [. digits] [e [+-] digits], with at least one digit in the mantissa. Rust's
/// `f64::from_str` accepts a few forms Go rejects (`inf`, `nan`), so this is checked first.
/// [`parse_float`] also accepts underscores between digits; the LogQL lexer, which calls this
/// directly, never produces them.
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

impl NumErrorKind {
    /// Go's text of the error: `invalid syntax` or `value out of range`.
    pub fn as_str(self) -> &'static str {
        match self {
            NumErrorKind::Syntax => "invalid syntax",
            NumErrorKind::Range => "value out of range",
        }
    }
}

impl NumError {
    /// The text exactly as Go prints it, the input quoted with [`quote`] (`Display` keeps
    /// [`quote_lenient`]; the two differ only for non-printable non-ASCII runes).
    pub fn go_text(&self) -> String {
        format!("strconv.{}: parsing {}: {}", self.func, quote(&self.num), self.kind.as_str())
    }
}

impl fmt::Display for NumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = self.kind.as_str();
        write!(f, "strconv.{}: parsing {}: {why}", self.func, quote_lenient(&self.num))
    }
}

impl std::error::Error for NumError {}

/// Parses a float like Go's `strconv.ParseFloat(s, 64)`. The error text is Go's.
///
/// The grammar is Go's:
/// - decimal: `[+-] digits [. digits] [(e|E) [+-] digits]`, at least one mantissa digit
///   (`5.`, `.5` are fine);
/// - hexadecimal: `[+-] 0x hexdigits [. hexdigits] (p|P) [+-] digits`: the binary exponent is
///   mandatory; the value is rounded to nearest, ties to even;
/// - underscores anywhere in the digits, as long as each one stands between two digits or
///   between the `0x` prefix and a digit (`1_000`, `0x_1p0`; not `_1`, `1_`, `1__0`, `1_.5`);
/// - `inf`, `infinity` with an optional sign and `nan` without one, in any case.
///
/// A finite number too large for an `f64` is `value out of range` (Go returns ±Inf with
/// that error); one too small rounds to zero without an error, as in Go.
pub fn parse_float(s: &str) -> Result<f64, NumError> {
    let syntax = || NumError::new("ParseFloat", s, NumErrorKind::Syntax);
    if let Some(v) = float_special(s) {
        return Ok(v);
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let b = body.as_bytes();
    let magnitude = if b.len() > 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        parse_hex_float(&body[2..]).ok_or_else(syntax)?
    } else {
        if !is_decimal_syntax_underscored(body) {
            return Err(syntax());
        }
        let clean;
        let digits = if body.contains('_') {
            clean = body.replace('_', "");
            clean.as_str()
        } else {
            body
        };
        digits.parse::<f64>().map_err(|_| syntax())?
    };
    if body.contains('_') && !underscores_ok(body) {
        return Err(syntax());
    }
    if magnitude.is_infinite() {
        return Err(NumError::new("ParseFloat", s, NumErrorKind::Range));
    }
    Ok(if neg { -magnitude } else { magnitude })
}

/// `inf`, `infinity` (either with a sign) and `nan` (without one), any case.
fn float_special(s: &str) -> Option<f64> {
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    None
}

/// [`is_decimal_syntax`] with underscores allowed among the mantissa's digits and among the
/// exponent's after its first digit; where they stand is checked by [`underscores_ok`].
fn is_decimal_syntax_underscored(body: &str) -> bool {
    let b = body.as_bytes();
    let mut i = 0;
    let mut digits = 0;
    let mut dot = false;
    while i < b.len() {
        match b[i] {
            b'0'..=b'9' => digits += 1,
            b'_' => {}
            b'.' if !dot => dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if i >= b.len() || !b[i].is_ascii_digit() {
            return false;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Whether every underscore in `body` (a number without its sign) stands between two digits,
/// or between a base prefix (`0x`, `0o`, `0b`) and a digit: Go's rule for number literals.
fn underscores_ok(body: &str) -> bool {
    let b = body.as_bytes();
    let prefixed = b.len() >= 2 && b[0] == b'0' && matches!(b[1] | 0x20, b'x' | b'o' | b'b');
    let hex = prefixed && (b[1] | 0x20) == b'x';
    let (mut i, mut after_digit, mut after_underscore) =
        if prefixed { (2, true, false) } else { (0, false, false) };
    while i < b.len() {
        let c = b[i];
        let is_digit = c.is_ascii_digit() || (hex && c.is_ascii_hexdigit());
        if is_digit {
            after_digit = true;
            after_underscore = false;
        } else if c == b'_' {
            if !after_digit {
                return false;
            }
            after_digit = false;
            after_underscore = true;
        } else {
            if after_underscore {
                return false;
            }
            after_digit = false;
        }
        i += 1;
    }
    !after_underscore
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
    append_escaped_rune(&mut out, c, '\'', false);
    out.push('\'');
    out
}

/// The magnitude of a Go hexadecimal float after its `0x` prefix (`1.8p3`, underscores
/// skipped; the `p` exponent is mandatory), rounded to nearest with ties to even; `+Inf` when
/// it is too large. `None` when the syntax is wrong.
fn parse_hex_float(body: &str) -> Option<f64> {
    let b = body.as_bytes();
    let mut i = 0;
    // The digits read so far as an integer, the power of two it is to be scaled by, and
    // whether nonzero digits were dropped once it was full.
    let (mut mant, mut exp2, mut sticky) = (0u64, 0i64, false);
    let (mut digits, mut dot) = (0, false);
    while i < b.len() {
        let c = b[i];
        if c == b'_' {
            i += 1;
            continue;
        }
        if c == b'.' && !dot {
            dot = true;
            i += 1;
            continue;
        }
        let Some(d) = char::from(c).to_digit(16) else { break };
        digits += 1;
        if mant < 1 << 60 {
            mant = mant * 16 + u64::from(d);
            if dot {
                exp2 -= 4;
            }
        } else {
            sticky |= d != 0;
            if !dot {
                exp2 += 4;
            }
        }
        i += 1;
    }
    if digits == 0 || i >= b.len() || (b[i] | 0x20) != b'p' {
        return None;
    }
    i += 1;
    let mut esign = 1i64;
    match b.get(i) {
        Some(b'+') => i += 1,
        Some(b'-') => {
            esign = -1;
            i += 1;
        }
        _ => {}
    }
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut e = 0i64;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        if b[i] != b'_' && e < 100_000 {
            e = e * 10 + i64::from(b[i] - b'0');
        }
        i += 1;
    }
    if i != b.len() {
        return None;
    }
    Some(round_to_f64(mant, exp2 + esign * e, sticky))
}

/// `mant × 2^exp2` (plus a little more when `sticky`) rounded to the nearest `f64`, ties to
/// even, subnormals included; `+Inf` beyond the largest finite value.
fn round_to_f64(mant: u64, exp2: i64, sticky: bool) -> f64 {
    if mant == 0 {
        return 0.0;
    }
    let bits = i64::from(64 - mant.leading_zeros());
    // The power of two of the leading bit, and how many bits the result can hold from it.
    let top = exp2 + bits - 1;
    let keep = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    let shift = bits - keep;
    let (q, qexp) = if shift <= 0 {
        (mant << -shift, exp2 + shift)
    } else if shift > 64 {
        (0, exp2 + shift)
    } else {
        let m = u128::from(mant);
        let q = m >> shift;
        let rest = m & ((1u128 << shift) - 1);
        let half = 1u128 << (shift - 1);
        let up = rest > half || (rest == half && (sticky || q & 1 == 1));
        ((q + u128::from(up)) as u64, exp2 + shift)
    };
    ldexp(q as f64, qexp)
}

/// `v × 2^e`, exact whenever the result is representable.
fn ldexp(mut v: f64, mut e: i64) -> f64 {
    while e > 0 && v.is_finite() && v != 0.0 {
        let step = e.min(1000);
        v *= f64::powi(2.0, step as i32);
        e -= step;
    }
    while e < 0 && v != 0.0 {
        let step = e.max(-1000);
        v *= f64::powi(2.0, step as i32);
        e -= step;
    }
    v
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
        assert_eq!(parse_float("1_0"), Ok(10.0));
        assert!(parse_float("1e400").is_err_and(|e| e.to_string().ends_with("value out of range")));
    }

    /// Cases written from Go's documented `ParseFloat` grammar and the behaviour its own test
    /// table pins down (`strconv/atof_test.go`).
    #[test]
    fn floats_go_table() {
        let ok: &[(&str, f64)] = &[
            ("1", 1.0),
            ("+1", 1.0),
            ("1e23", 1e23),
            ("1E23", 1e23),
            ("100000000000000000000000", 1e23),
            ("1e-100", 1e-100),
            ("123456700", 1.234567e+08),
            ("99999999999999974834176", 9.999999999999997e+22),
            ("-1", -1.0),
            ("5.", 5.0),
            (".5e1", 5.0),
            ("1e-400", 0.0),
            ("-1e-400", -0.0),
            ("0e99999999999", 0.0),
            ("1.7976931348623157e308", f64::MAX),
            ("4.940656458412465441765687928682213723651e-324", 5e-324),
            ("3e-324", 5e-324),
            ("2e-324", 0.0),
            ("1_23.50_0_0e+1_2", 1.235e14),
            ("1_000", 1000.0),
            ("-1_0.0_5", -10.05),
            ("0x1p-2", 0.25),
            ("0x1.8p3", 12.0),
            ("0X1P+2", 4.0),
            ("0x.8p1", 1.0),
            ("0x1.p1", 2.0),
            ("-0x10p0", -16.0),
            ("0x10p0", 16.0),
            ("0x_1_2.3_4_5p+1_2", 74565.0),
            ("0x1.fffffffffffff7fffp1023", f64::MAX),
            ("0x1p-1074", 5e-324),
            ("0x1p-1075", 0.0),
            ("0x1.8p-1075", 5e-324),
            ("0x1.0000000000001p0", 1.0000000000000002),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.00000000000018p0", 1.0000000000000004),
            ("0x1.000000000000080001p0", 1.0000000000000002),
            ("0x0.0000000000001p-1022", 5e-324),
        ];
        for (s, want) in ok {
            let got = parse_float(s);
            assert_eq!(got.map(f64::to_bits), Ok(want.to_bits()), "{s:?}");
        }
        for s in ["inf", "+inf", "INF", "Infinity", "+INFINITY"] {
            assert_eq!(parse_float(s), Ok(f64::INFINITY), "{s:?}");
        }
        for s in ["-inf", "-Infinity"] {
            assert_eq!(parse_float(s), Ok(f64::NEG_INFINITY), "{s:?}");
        }
        for s in ["nan", "NaN", "NAN"] {
            assert!(parse_float(s).is_ok_and(f64::is_nan), "{s:?}");
        }
        let syntax = [
            "",
            "+",
            "-",
            ".",
            "e1",
            "1e",
            "1e+",
            "1x",
            "x",
            "1.2.3",
            "infin",
            "infinityx",
            "+nan",
            "-nan",
            "nan1",
            " 1",
            "1 ",
            "0x",
            "0x1",
            "0x1.8",
            "0xp1",
            "0x.p1",
            "0x1p",
            "0x1p+",
            "0x1pa",
            "0x1e3",
            "1p3",
            "0b101",
            "0o17",
            "1.5p3",
            "_1",
            "1_",
            "1__2",
            "-_123.5e+12",
            "+_123.5e+12",
            "_123.5e+12",
            "1__23.5e+12",
            "123_.5e+12",
            "123._5e+12",
            "123.5_e+12",
            "123.5__0e+12",
            "123.5e_+12",
            "123.5e+_12",
            "123.5e_-12",
            "123.5e-_12",
            "123.5e+1__2",
            "123.5e+12_",
            "-_0x12.345p+12",
            "0x__1p0",
            "0x1_p0",
            "0x1._8p0",
            "0x1p_1",
            "0x1p1_",
            "1e1__0",
        ];
        for s in syntax {
            assert_eq!(parse_float(s).map_err(|e| e.kind), Err(NumErrorKind::Syntax), "{s:?}");
        }
        for s in [
            "1e309",
            "-1e309",
            "1.7976931348623159e308",
            "0x1p1024",
            "-0x1p1024",
            "0x1.fffffffffffff8p1023",
            "1e99999999999",
        ] {
            assert_eq!(parse_float(s).map_err(|e| e.kind), Err(NumErrorKind::Range), "{s:?}");
        }
        assert_eq!(
            parse_float("1e309").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseFloat: parsing "1e309": value out of range"#.to_string())
        );
        assert_eq!(parse_float("0x_1p0"), Ok(1.0));
        assert_eq!(parse_float("1_0e1_0"), Ok(1e11));
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
            atoi("1\u{a0}").map_err(|e| e.go_text()),
            Err(r#"strconv.Atoi: parsing "1\u00a0": invalid syntax"#.to_string())
        );
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
