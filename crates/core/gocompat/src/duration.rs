//! Go's `time.ParseDuration` and `time.Duration.String`, with Go's error texts.

use std::fmt;

use crate::strconv::quote_lenient as go_quote;

/// Why Go's `time.ParseDuration` refused its input; prints Go's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// `time: invalid duration "<input>"`.
    Invalid(String),
    /// `time: missing unit in duration "<input>"`.
    MissingUnit(String),
    /// `time: unknown unit "<unit>" in duration "<input>"`.
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid(s) => write!(f, "time: invalid duration {}", go_quote(s)),
            DurationError::MissingUnit(s) => {
                write!(f, "time: missing unit in duration {}", go_quote(s))
            }
            DurationError::UnknownUnit { unit, input } => {
                write!(f, "time: unknown unit {} in duration {}", go_quote(unit), go_quote(input))
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses a Go duration (`1h2m3.5s`, `250ms`, `-1.5h`) into nanoseconds, like Go's
/// `time.ParseDuration`. The error text is Go's.
pub fn parse_duration(s: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(s.to_string());
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
            return Err(DurationError::MissingUnit(s.to_string()));
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
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_string(),
                    input: s.to_string(),
                })
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

/// Formats nanoseconds like Go's `time.Duration.String()` (`1h0m0s`, `250ms`, `1.5s`).
pub fn duration_string(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut s = String::new();
    if u < 1_000_000_000 {
        let (div, unit) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        s.push_str(&frac(u, div));
        s.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let h = secs / 3600;
        let m = (secs / 60) % 60;
        if h > 0 {
            s.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            s.push_str(&format!("{m}m"));
        }
        s.push_str(&frac(u % 60_000_000_000, 1_000_000_000));
        s.push('s');
    }
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

fn frac(v: u64, div: u64) -> String {
    let ip = v / div;
    let fp = v % div;
    if fp == 0 {
        return ip.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{fp:0width$}");
    format!("{ip}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("2m3s"), Ok(123_000_000_000));
        assert_eq!(parse_duration("750us"), Ok(750_000));
        assert_eq!(parse_duration("750µs"), Ok(750_000));
        assert_eq!(parse_duration("-1h"), Ok(-3_600_000_000_000));
        assert_eq!(parse_duration("-250ms"), Ok(-250_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(
            parse_duration("1").map_err(|e| e.to_string()),
            Err(r#"time: missing unit in duration "1""#.into())
        );
        assert_eq!(
            parse_duration("abc").map_err(|e| e.to_string()),
            Err(r#"time: invalid duration "abc""#.into())
        );
        assert_eq!(
            parse_duration("1x").map_err(|e| e.to_string()),
            Err(r#"time: unknown unit "x" in duration "1x""#.into())
        );
        assert!(parse_duration("").is_err());
        assert_eq!(parse_duration("-9223372036854775808ns"), Ok(i64::MIN));
        assert!(parse_duration("9223372036854775808ns").is_err());
    }

    #[test]
    fn string() {
        assert_eq!(duration_string(0), "0s");
        assert_eq!(duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(duration_string(1_800_000_000_000), "30m0s");
        assert_eq!(duration_string(250_000_000), "250ms");
        assert_eq!(duration_string(1_500_000_000), "1.5s");
        assert_eq!(duration_string(750_000), "750µs");
        assert_eq!(duration_string(-300_000_000_000), "-5m0s");
    }
}
