//! go-humanize's `ParseBytes`, with its error texts.

use crate::strconv::parse_float;

/// Parses humanized bytes (`5MB`, `3KiB`, `512 B`, `1,024`) like go-humanize's `ParseBytes`.
/// The error text is go-humanize's.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
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
    fn parse() {
        assert_eq!(parse_bytes("12KB"), Ok(12_000));
        assert_eq!(parse_bytes("1.5MB"), Ok(1_500_000));
        assert_eq!(parse_bytes("1.5KiB"), Ok(1536));
        assert_eq!(parse_bytes("512B"), Ok(512));
        assert_eq!(parse_bytes("3KiB"), Ok(3072));
        assert_eq!(parse_bytes("3k"), Ok(3000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("1,024 kb"), Ok(1_024_000));
        assert_eq!(parse_bytes("5 xb"), Err("unhandled size name: xb".into()));
        assert!(parse_bytes("abc").is_err());
    }
}
