//! Go's `fmt` package: the `%v` text of a float (`fmt.Sprint(f)`), and `fmt.Sprintf` for the
//! verbs Loki's templates reach, over a small value model ([`Arg`]) that callers convert to.

use std::borrow::Cow;
use std::fmt::Write as _;

mod sprintf;

pub use sprintf::{sprintf, OutputTooLarge};

/// A value as Go's `fmt` sees it through reflection: what `%v`, `%T` and the bad-verb texts
/// (`%!d(string=x)`) print depends on its kind and its Go type name.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    /// The nil interface (`<nil>`).
    Nil,
    /// A Go `bool`.
    Bool(bool),
    /// A Go `int`.
    Int(i64),
    /// A Go `int64`.
    Int64(i64),
    /// A Go `float64`.
    Float(f64),
    /// A Go `string`.
    Str(Cow<'a, str>),
    /// A value with a `String` method (Go's `fmt.Stringer`), such as `time.Time`: `%v`, `%s`,
    /// `%q`, `%x` and `%X` format `text`; other verbs are bad verbs.
    Stringer {
        /// What its `String` method returns.
        text: Cow<'a, str>,
        /// Its Go type name, e.g. `time.Time`.
        type_name: &'static str,
    },
    /// A Go slice (`[]interface {}`).
    List(Vec<Arg<'a>>),
    /// A Go map with string keys, in key order (Go's `fmt` sorts map keys).
    Map {
        /// Key and value pairs, sorted by key.
        entries: Vec<(Cow<'a, str>, Arg<'a>)>,
        /// Its Go type name, e.g. `map[string]interface {}` or `map[string]string`.
        type_name: &'static str,
    },
}

impl Arg<'_> {
    /// The Go type name, as `%T` prints it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Arg::Nil => "<nil>",
            Arg::Bool(_) => "bool",
            Arg::Int(_) => "int",
            Arg::Int64(_) => "int64",
            Arg::Float(_) => "float64",
            Arg::Str(_) => "string",
            Arg::Stringer { type_name, .. } | Arg::Map { type_name, .. } => type_name,
            Arg::List(_) => "[]interface {}",
        }
    }
}

/// Appends `v` as Go's `%v` (`fmt.Sprint(v)`) writes it: `<nil>`, `true`, `7`, `1e+06`,
/// `[a b]`, `map[k:v]`.
pub fn write_v(out: &mut String, v: &Arg<'_>) {
    match v {
        Arg::Nil => out.push_str("<nil>"),
        Arg::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Arg::Int(i) | Arg::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Arg::Float(f) => out.push_str(&float_v(*f)),
        Arg::Str(s) | Arg::Stringer { text: s, .. } => out.push_str(s),
        Arg::List(l) => {
            out.push('[');
            for (k, e) in l.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                write_v(out, e);
            }
            out.push(']');
        }
        Arg::Map { entries, .. } => {
            out.push_str("map[");
            for (k, (key, e)) in entries.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(key);
                out.push(':');
                write_v(out, e);
            }
            out.push(']');
        }
    }
}

/// Formats a float like Go's `fmt.Sprint(f)`, i.e. `%v`: `strconv.FormatFloat(f, 'g', -1, 64)`
/// (shortest round-trip digits; exponent form when the decimal exponent is below -4 or at
/// least 6, with at least two exponent digits) and `+Inf` signed: `7`, `0.5`, `1e+06`,
/// `1e-05`, `-0`, `NaN`, `+Inf`.
pub fn float_v(f: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_v_is_go_sprint() {
        assert_eq!(float_v(7.0), "7");
        assert_eq!(float_v(0.5), "0.5");
        assert_eq!(float_v(-2.25), "-2.25");
        assert_eq!(float_v(1e6), "1e+06");
        assert_eq!(float_v(123456.0), "123456");
        assert_eq!(float_v(100000.0), "100000");
        assert_eq!(float_v(1234567.0), "1.234567e+06");
        assert_eq!(float_v(0.0001), "0.0001");
        assert_eq!(float_v(0.00001), "1e-05");
        assert_eq!(float_v(1e21), "1e+21");
        assert_eq!(float_v(1e-100), "1e-100");
        assert_eq!(float_v(0.0), "0");
        assert_eq!(float_v(-0.0), "-0");
        assert_eq!(float_v(f64::NAN), "NaN");
        assert_eq!(float_v(f64::INFINITY), "+Inf");
        assert_eq!(float_v(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn write_v_is_go_sprint() {
        let v = Arg::Map {
            entries: vec![(
                "a".into(),
                Arg::List(vec![Arg::Float(1.0), Arg::Str("x".into()), Arg::Nil]),
            )],
            type_name: "map[string]interface {}",
        };
        let mut out = String::new();
        write_v(&mut out, &v);
        assert_eq!(out, "map[a:[1 x <nil>]]");
    }
}
