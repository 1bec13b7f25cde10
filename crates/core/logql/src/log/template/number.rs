//! Number conversions: Go's `strconv` integer and float parsing, the loose casts Sprig
//! uses (spf13/cast), decimal arithmetic like shopspring/decimal, and go-humanize's byte
//! sizes.

use super::functions::CallError;
use super::value::Value;
use skald_gocompat::fmt::float_v as go_float_v;

/// Go's `strconv.ParseInt(s, 0, 64)` (base prefixes, underscores); `None` on any error.
pub(super) fn go_parse_int(s: &str) -> Option<i64> {
    skald_gocompat::strconv::parse_int_base0(s).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` (decimal, hexadecimal, underscores, `inf`/`nan`);
/// `None` on any error, a value out of range included (Go's callers here drop the ±Inf it
/// returns with that error: spf13/cast answers 0, `text/template` an illegal number).
pub(super) fn go_parse_float(s: &str) -> Option<f64> {
    skald_gocompat::strconv::parse_float(s).ok()
}

/// Sprig's `toInt64` (spf13/cast): unparsable → 0.
pub(super) fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => {
            if f.is_nan() {
                i64::MIN
            } else {
                *f as i64
            }
        }
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            if s.is_empty() {
                return 0;
            }
            go_parse_int(&trim_decimal(s)).unwrap_or(0)
        }
        _ => 0,
    }
}

fn trim_decimal(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = int.trim_start_matches(['+', '-']);
    let sign_ok = int.len() - digits.len() <= 1;
    if sign_ok
        && digits.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        match int {
            "" => "0".to_string(),
            "-" | "+" => format!("{int}0"),
            _ => int.to_string(),
        }
    } else {
        s.to_string()
    }
}

/// Sprig's `toFloat64` (spf13/cast): unparsable → 0.
pub(super) fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Decimal arithmetic like shopspring/decimal on `NewFromFloat` inputs.
pub(super) fn decimal_op(
    first: f64,
    rest: &[Value],
    op: fn(f64, f64) -> Option<f64>,
) -> Result<Value, CallError> {
    let check = |f: f64| {
        if f.is_finite() {
            Ok(f)
        } else {
            Err(CallError::Plain(format!("cannot create a decimal from {}", go_float_v(f))))
        }
    };
    let mut acc = check(first)?;
    for v in rest {
        let x = check(to_float64(v))?;
        acc = op(acc, x).ok_or_else(|| CallError::Plain("decimal division by zero".to_string()))?;
    }
    Ok(Value::Float(acc))
}

/// A decimal number `m × 10^e` built from a float's shortest representation.
fn to_decimal(f: f64) -> Option<(i128, i32)> {
    let s = format!("{:e}", f);
    let (mant, exp) = s.split_once('e')?;
    let exp: i32 = exp.parse().ok()?;
    let neg = mant.starts_with('-');
    let mant = mant.trim_start_matches('-');
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    let digits = format!("{ip}{fp}");
    let m: i128 = digits.parse().ok()?;
    Some((if neg { -m } else { m }, exp - fp.len() as i32))
}

fn decimal_to_f64(m: i128, e: i32) -> f64 {
    format!("{m}e{e}").parse().unwrap_or(f64::NAN)
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn align(a: (i128, i32), b: (i128, i32)) -> Option<(i128, i128, i32)> {
    let e = a.1.min(b.1);
    let am = a.0.checked_mul(pow10((a.1 - e) as u32)?)?;
    let bm = b.0.checked_mul(pow10((b.1 - e) as u32)?)?;
    Some((am, bm, e))
}

pub(super) fn dec_add(a: f64, b: f64) -> Option<f64> {
    let r = (|| {
        let (x, y, e) = align(to_decimal(a)?, to_decimal(b)?)?;
        Some(decimal_to_f64(x.checked_add(y)?, e))
    })();
    Some(r.unwrap_or(a + b))
}

pub(super) fn dec_sub(a: f64, b: f64) -> Option<f64> {
    dec_add(a, -b)
}

pub(super) fn dec_mul(a: f64, b: f64) -> Option<f64> {
    let r = (|| {
        let (x, ex) = to_decimal(a)?;
        let (y, ey) = to_decimal(b)?;
        Some(decimal_to_f64(x.checked_mul(y)?, ex + ey))
    })();
    Some(r.unwrap_or(a * b))
}

pub(super) fn dec_div(a: f64, b: f64) -> Option<f64> {
    if b == 0.0 {
        return None;
    }
    let r = (|| {
        // round(a / b, 16 places), half away from zero
        let (x, ex) = to_decimal(a)?;
        let (y, ey) = to_decimal(b)?;
        let shift = ex - ey + 16;
        let (num, den) = if shift >= 0 {
            (x.checked_mul(pow10(shift as u32)?)?, y)
        } else {
            (x, y.checked_mul(pow10((-shift) as u32)?)?)
        };
        let q = num / den;
        let r = num % den;
        let q = if r.checked_abs()?.checked_mul(2)? >= den.checked_abs()? {
            if (num < 0) != (den < 0) {
                q - 1
            } else {
                q + 1
            }
        } else {
            q
        };
        Some(decimal_to_f64(q, -16))
    })();
    Some(r.unwrap_or(a / b))
}

pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// go-humanize's `ParseBytes`.
pub(super) fn parse_bytes(s: &str) -> Result<f64, CallError> {
    skald_gocompat::humanize::parse_bytes(s).map(|b| b as f64).map_err(|e| e.to_string().into())
}
