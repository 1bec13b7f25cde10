//! The functions templates may call: Go's builtins (`and`, `index`, `eq`...) and the Loki
//! and Sprig functions.

use std::rc::Rc;

use skald_gocompat::time::{layout, zone, Time as GoTime};
use skald_gocompat::utf8::lossy;
use skald_model::Labels;

use super::escape::{
    base64_decode, base64_encode, html_escape, js_escape, query_escape, query_unescape,
};
use super::eval::State;
use super::format::{fmt_v, go_sprintf};
use super::number::{
    dec_add, dec_div, dec_mul, dec_sub, decimal_op, go_max, go_min, parse_bytes, to_float64,
    to_int64,
};
use super::time::{parse_go_duration, unix_to_time};
use super::value::{as_int, as_str, as_time, truth, Ty, Value};
use super::MAX_OUTPUT;

pub(super) enum CallError {
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

macro_rules! funcs {
    ($($v:ident = $n:literal),* $(,)?) => {
        /// A function known to templates, resolved at parse time.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Func { $($v),* }
        impl Func {
            pub(super) fn from_name(name: &str) -> Option<Func> {
                match name { $($n => Some(Func::$v),)* _ => None }
            }
            pub(super) fn name(self) -> &'static str {
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
    pub(super) fn sig(self) -> (&'static [Ty], Option<Ty>) {
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
        None => lossy(&s.as_bytes()[a..b]).into_owned(),
    }
}

pub(super) fn check_size(n: usize) -> Result<(), CallError> {
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
    pub(super) fn call(&mut self, f: Func, a: Vec<Value>) -> Result<Value, CallError> {
        use Func::*;
        let s = |i: usize| as_str(&a[i]);
        let i = |i: usize| as_int(&a[i]);
        Ok(match f {
            And | Or => Value::Nil, // handled lazily by the caller
            Not => Value::Bool(!truth(&a[0], self.labels)),
            Len => match &a[0] {
                Value::Str(x) if self.raw_bytes => Value::Int(super::raw::byte_len(x) as i64),
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
                Value::Str(layout::format(&t.to_utc(), s(0)))
            }
            Duration | DurationSeconds => {
                let ns = parse_go_duration(s(0))?;
                Value::Float((ns / 1_000_000_000) as f64 + (ns % 1_000_000_000) as f64 / 1e9)
            }
            ToDate => Value::Time(layout::parse(s(0), s(1)).unwrap_or_else(GoTime::zero)),
            ToDateInZone => {
                let zone = zone::load_zone(s(1));
                Value::Time(
                    layout::parse_in_location(s(0), s(2), zone.as_deref())
                        .unwrap_or_else(GoTime::zero),
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
                    Ok(b) => lossy(&b).into_owned(),
                    Err(e) => e.to_string(),
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
