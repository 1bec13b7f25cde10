//! Value conversions with Go's semantics and error messages: `strconv.ParseFloat`,
//! `time.ParseDuration` and go-humanize's `ParseBytes`, as used by label filters and `unwrap`.

use skald_model::labels::go_quote;

/// Parses a float like Go's `strconv.ParseFloat(s, 64)`. The error text is Go's.
pub(crate) fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", go_quote(s));
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
    // Rust accepts a few forms Go rejects and vice versa; check the decimal grammar first:
    // digits [. digits] [e [+-] digits], with at least one digit in the mantissa. Go also
    // accepts underscores only after a base prefix, so none here.
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
        return Err(syntax());
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
            return Err(syntax());
        }
    }
    if i != b.len() {
        return Err(syntax());
    }
    let v: f64 = s.parse().map_err(|_| syntax())?;
    if v.is_infinite() {
        return Err(format!("strconv.ParseFloat: parsing {}: value out of range", go_quote(s)));
    }
    Ok(v)
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

/// Parses a Go duration (`1h2m3.5s`, `250ms`, `-1.5h`) into nanoseconds, like Go's
/// `time.ParseDuration`. The error text is Go's.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let mut rest = s;
    let mut neg = false;
    if let Some(r) = rest.strip_prefix('-') {
        neg = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // integer part
        let mut i = 0;
        let mut v: u64 = 0;
        let mut overflow = false;
        while i < b.len() && b[i].is_ascii_digit() {
            match v.checked_mul(10).and_then(|x| x.checked_add(u64::from(b[i] - b'0'))) {
                Some(x) if x <= 1 << 63 => v = x,
                _ => overflow = true,
            }
            i += 1;
        }
        if overflow {
            return Err(invalid());
        }
        let pre = i != 0;
        // fraction
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let start = i;
            let mut frac_overflow = false;
            while i < b.len() && b[i].is_ascii_digit() {
                if !frac_overflow {
                    match f.checked_mul(10).and_then(|x| x.checked_add(u64::from(b[i] - b'0'))) {
                        Some(x) if x <= 1 << 63 => {
                            f = x;
                            scale *= 10.0;
                        }
                        _ => frac_overflow = true,
                    }
                }
                i += 1;
            }
            post = i != start;
        }
        if !pre && !post {
            return Err(invalid());
        }
        // unit
        let ustart = i;
        while i < b.len() && b[i] != b'.' && !b[i].is_ascii_digit() {
            i += 1;
        }
        if i == ustart {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let unit = &rest[ustart..i];
        let mult: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        rest = &rest[i..];
        if v > (1u64 << 63) / mult {
            return Err(invalid());
        }
        v *= mult;
        if f > 0 {
            let add = (f as f64 * (mult as f64 / scale)) as u64;
            v = v.checked_add(add).ok_or_else(invalid)?;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

/// Parses humanized bytes (`5MB`, `3KiB`, `512 B`, `1,024`) like go-humanize's `ParseBytes`.
/// The error text is go-humanize's.
pub(crate) fn parse_bytes(s: &str) -> Result<u64, String> {
    let mut last = 0;
    let mut has_comma = false;
    for (i, c) in s.char_indices() {
        if !(c.is_ascii_digit() || c == '.' || c == ',') {
            break;
        }
        if c == ',' {
            has_comma = true;
        }
        last = i + c.len_utf8();
    }
    let num = &s[..last];
    let num_owned;
    let num = if has_comma {
        num_owned = num.replace(',', "");
        num_owned.as_str()
    } else {
        num
    };
    let f = parse_float(num)?;
    let extra = s[last..].trim().to_lowercase();
    let mult: Option<f64> = match extra.as_str() {
        "" | "b" => Some(1.0),
        "kib" | "ki" => Some(1024.0),
        "kb" | "k" => Some(1e3),
        "mib" | "mi" => Some(1024f64.powi(2)),
        "mb" | "m" => Some(1e6),
        "gib" | "gi" => Some(1024f64.powi(3)),
        "gb" | "g" => Some(1e9),
        "tib" | "ti" => Some(1024f64.powi(4)),
        "tb" | "t" => Some(1e12),
        "pib" | "pi" => Some(1024f64.powi(5)),
        "pb" | "p" => Some(1e15),
        "eib" | "ei" => Some(1024f64.powi(6)),
        "eb" | "e" => Some(1e18),
        _ => None,
    };
    match mult {
        Some(m) => {
            let v = f * m;
            if v >= u64::MAX as f64 {
                return Err(format!("too large: {s}"));
            }
            // Go converts a negative float to uint64 in an implementation-defined way;
            // the parser never produces one here since '-' is not accepted.
            Ok(v as u64)
        }
        None => Err(format!("unhandled size name: {extra}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float("154.085"), Ok(154.085));
        assert_eq!(parse_float("-1e3"), Ok(-1000.0));
        assert_eq!(parse_float(".5"), Ok(0.5));
        assert_eq!(parse_float("0x1p4"), Ok(16.0));
        assert!(parse_float("+Inf").unwrap().is_infinite());
        assert_eq!(
            parse_float("83ms").unwrap_err(),
            r#"strconv.ParseFloat: parsing "83ms": invalid syntax"#
        );
        assert!(parse_float("").is_err());
        assert!(parse_float("1_0").is_err());
        assert!(parse_float("1e400").unwrap_err().ends_with("value out of range"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("2m3s"), Ok(123_000_000_000));
        assert_eq!(parse_duration("750us"), Ok(750_000));
        assert_eq!(parse_duration("750µs"), Ok(750_000));
        assert_eq!(parse_duration("-1h"), Ok(-3_600_000_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("1").unwrap_err(), r#"time: missing unit in duration "1""#);
        assert_eq!(parse_duration("abc").unwrap_err(), r#"time: invalid duration "abc""#);
        assert_eq!(parse_duration("1x").unwrap_err(), r#"time: unknown unit "x" in duration "1x""#);
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("12KB"), Ok(12_000));
        assert_eq!(parse_bytes("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert_eq!(parse_bytes("3KiB"), Ok(3072));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1,024 kb"), Ok(1_024_000));
        assert_eq!(parse_bytes("5 xb").unwrap_err(), "unhandled size name: xb");
        assert!(parse_bytes("abc").is_err());
    }
}
