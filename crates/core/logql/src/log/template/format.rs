//! Go's `fmt`: `%v` and `Sprintf` for the verbs templates use.

use std::fmt::Write as _;

use skald_model::Labels;

use super::functions::{check_size, CallError};
use super::time::time_string;
use super::value::Value;
use super::MAX_OUTPUT;

/// Formats like Go's `%v`.
pub(super) fn fmt_v(v: &Value, labels: &Labels, out: &mut String) {
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
pub(super) fn go_float_v(f: f64) -> String {
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
pub(super) fn go_sprintf(
    format: &str,
    args: &[Value],
    labels: &Labels,
) -> Result<String, CallError> {
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
