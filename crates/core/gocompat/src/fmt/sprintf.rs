//! Go's `fmt.Sprintf` for the verbs Loki's templates reach (`%v %s %q %d %x %X %o %O %b %c %U
//! %e %E %f %F %g %G %t %T %%`), with flags, width, precision, `*` and `[n]` argument
//! indexes, and Go's error texts (`%!d(string=x)`, `%!d(MISSING)`, `%!(EXTRA int=2)`,
//! `%!(BADWIDTH)`, `%!(BADPREC)`, `%!(BADINDEX)`, `%!(NOVERB)`).

use std::fmt::Write as _;

use super::{float_digits, fmt_e, fmt_g_abs, write_v, Arg};
use crate::strconv::quote_lenient;

/// The output of [`sprintf`] grew past the caller's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputTooLarge;

impl std::fmt::Display for OutputTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("output too large")
    }
}

impl std::error::Error for OutputTooLarge {}

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
                    let g = quote_lenient(&c.to_string());
                    format!("'{}'", &g[1..g.len() - 1].replace("\\\"", "\""))
                }
            };
            return Some(pad(q, sp, false));
        }
        'U' => return Some(pad(format!("U+{:04X}", i), sp, false)),
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
                quote_lenient(&s)
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
fn fmt_arg(v: &Arg<'_>, verb: char, sp: &Spec) -> Option<String> {
    if verb == 'T' {
        return Some(pad(v.type_name().to_string(), sp, false));
    }
    match v {
        Arg::Nil => match verb {
            'v' => Some(pad("<nil>".to_string(), sp, false)),
            _ => None,
        },
        Arg::Bool(b) => match verb {
            't' | 'v' => Some(pad(b.to_string(), sp, false)),
            _ => None,
        },
        Arg::Int(i) | Arg::Int64(i) => fmt_int(*i, verb, sp),
        Arg::Float(f) => fmt_float(*f, verb, sp),
        Arg::Str(s) => fmt_str(s, verb, sp),
        Arg::Stringer { text, .. } => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(text, verb, sp),
            _ => None,
        },
        Arg::List(l) => {
            let mut out = String::from("[");
            for (k, e) in l.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(&fmt_arg(e, verb, sp).unwrap_or_else(|| bad_verb(e, verb)));
            }
            out.push(']');
            Some(out)
        }
        Arg::Map { entries, .. } => {
            let mut out = String::from("map[");
            for (k, (key, e)) in entries.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                out.push_str(
                    &fmt_str(key, verb, sp)
                        .unwrap_or_else(|| bad_verb(&Arg::Str(key.clone()), verb)),
                );
                out.push(':');
                out.push_str(&fmt_arg(e, verb, sp).unwrap_or_else(|| bad_verb(e, verb)));
            }
            out.push(']');
            Some(out)
        }
    }
}

fn bad_verb(v: &Arg<'_>, verb: char) -> String {
    match v {
        Arg::Nil => format!("%!{verb}(<nil>)"),
        v => {
            let mut s = String::new();
            write_v(&mut s, v);
            format!("%!{verb}({}={s})", v.type_name())
        }
    }
}

/// Go's `fmt.Sprintf(format, args...)`. The output may not grow past `max_len` bytes.
pub fn sprintf(format: &str, args: &[Arg<'_>], max_len: usize) -> Result<String, OutputTooLarge> {
    let mut out = String::new();
    let mut argn = 0usize;
    let mut reordered = false;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if out.len() > max_len {
            return Err(OutputTooLarge);
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
                Some(Arg::Int(w) | Arg::Int64(w)) if w.unsigned_abs() <= 1_000_000 => {
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
                    Some(Arg::Int(p) | Arg::Int64(p)) if (0..=1_000_000).contains(p) => {
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
        match fmt_arg(v, verb, &sp) {
            Some(s) => out.push_str(&s),
            None => out.push_str(&bad_verb(v, verb)),
        }
    }
    if !reordered && argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, v) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match v {
                Arg::Nil => out.push_str("<nil>"),
                v => {
                    out.push_str(v.type_name());
                    out.push('=');
                    write_v(&mut out, v);
                }
            }
        }
        out.push(')');
    }
    if out.len() > max_len {
        return Err(OutputTooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(format: &str, args: &[Arg<'_>]) -> String {
        sprintf(format, args, 1 << 20).unwrap_or_else(|e| e.to_string())
    }

    fn s(v: &str) -> Arg<'_> {
        Arg::Str(v.into())
    }

    #[test]
    fn verbs() {
        assert_eq!(p("%s=%d", &[s("a"), Arg::Int(5)]), "a=5");
        assert_eq!(
            p(
                "%5s|%-5s|%05d|%x|%X|%o|%b",
                &[
                    s("ab"),
                    s("cd"),
                    Arg::Int(-42),
                    Arg::Int(255),
                    Arg::Int(255),
                    Arg::Int(8),
                    Arg::Int(5)
                ]
            ),
            "   ab|cd   |-0042|ff|FF|10|101"
        );
        let floats = [3.14158, 1234.5678, 0.000012345, 1e21, 1e-7].map(Arg::Float);
        assert_eq!(p("%.2f %e %g %v %G", &floats), "3.14 1.234568e+03 1.2345e-05 1e+21 1E-07");
        assert_eq!(
            p(
                "%q %v %t %T %T",
                &[s("a\"b"), Arg::Bool(true), Arg::Bool(false), s(""), Arg::Float(1.5)]
            ),
            r#""a\"b" true false string float64"#
        );
        assert_eq!(
            p(
                "%-10.3s|%8.3f|%+d|%%|%c|%U",
                &[s("abcdef"), Arg::Float(3.14158), Arg::Int(5), Arg::Int(65), Arg::Int(65)]
            ),
            "abc       |   3.142|+5|%|A|U+0041"
        );
        assert_eq!(
            p("%*d|%.*f", &[Arg::Int(4), Arg::Int(7), Arg::Int(1), Arg::Float(2.25)]),
            "   7|2.2"
        );
        assert_eq!(p("%[2]s %[1]s", &[s("a"), s("b")]), "b a");
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(p("%d", &[s("200")]), "%!d(string=200)");
        assert_eq!(p("%d %d", &[Arg::Int(1)]), "1 %!d(MISSING)");
        assert_eq!(p("%d", &[Arg::Int(1), Arg::Int64(2)]), "1%!(EXTRA int64=2)");
        assert_eq!(p("%d", &[Arg::Int(1), Arg::Nil]), "1%!(EXTRA <nil>)");
        assert_eq!(p("%", &[]), "%!(NOVERB)");
        assert_eq!(p("%[3]d", &[]), "%!d(BADINDEX)");
        let t =
            Arg::Stringer { text: "2026-01-02 00:00:00 +0000 UTC".into(), type_name: "time.Time" };
        assert_eq!(
            p("%s|%d", &[t.clone(), t]),
            "2026-01-02 00:00:00 +0000 UTC|%!d(time.Time=2026-01-02 00:00:00 +0000 UTC)"
        );
        let m = Arg::Map { entries: vec![("k".into(), s("v"))], type_name: "map[string]string" };
        assert_eq!(
            p("%v %T %d", &[m.clone(), m.clone(), m]),
            "map[k:v] map[string]string map[%!d(string=k):%!d(string=v)]"
        );
    }

    #[test]
    fn output_limit() {
        assert_eq!(sprintf("%s", &[s(&"x".repeat(20))], 10), Err(OutputTooLarge));
        assert_eq!(sprintf("%s", &[s("x")], 10), Ok("x".to_string()));
    }
}
