//! go-humanize's `ParseBytes` (with its error texts), `Bytes` and `IBytes`, in Loki's spellings.

use std::fmt;

use crate::strconv::{parse_float, NumError};

/// Why go-humanize's `ParseBytes` refused its input; prints go-humanize's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseBytesError {
    /// The number part is not a float (`strconv.ParseFloat: parsing ...`).
    Number(NumError),
    /// `too large: <input>`.
    TooLarge(String),
    /// `unhandled size name: <unit>` (the unit trimmed and lowercased).
    UnknownUnit(String),
}

impl fmt::Display for ParseBytesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseBytesError::Number(e) => e.fmt(f),
            ParseBytesError::TooLarge(s) => write!(f, "too large: {s}"),
            ParseBytesError::UnknownUnit(u) => write!(f, "unhandled size name: {u}"),
        }
    }
}

impl std::error::Error for ParseBytesError {}

/// Parses humanized bytes (`5MB`, `3KiB`, `512 B`, `1,024`) like go-humanize's `ParseBytes`.
/// The error text is go-humanize's.
pub fn parse_bytes(s: &str) -> Result<u64, ParseBytesError> {
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
    let f = parse_float(num).map_err(ParseBytesError::Number)?;
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
                return Err(ParseBytesError::TooLarge(s.to_string()));
            }
            // Go converts a negative float to uint64 in an implementation-defined way;
            // the parser never produces one here since '-' is not accepted.
            Ok(v as u64)
        }
        None => Err(ParseBytesError::UnknownUnit(extra)),
    }
}

/// go-humanize's `Bytes`: SI units, one decimal below 10 (`5 B`, `1.5 kB`, `20 MB`). Loki's
/// validation errors print this spelling.
pub fn bytes(s: u64) -> String {
    humanate(s, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB", "EB"])
}

/// go-humanize's `IBytes`: binary units, one decimal below 10 (`5 B`, `1.0 KiB`, `17 KiB`,
/// `512 MiB`). Loki's query-size limit errors print this spelling.
pub fn ibytes(s: u64) -> String {
    humanate(s, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"])
}

/// go-humanize's `humanateBytes`: the value in the largest unit it reaches, rounded to one
/// decimal, printed with that decimal only below 10.
fn humanate(s: u64, base: f64, sizes: &[&str; 7]) -> String {
    if s < 10 {
        return format!("{s} B");
    }
    let e = ((s as f64).ln() / base.ln()).floor() as usize;
    let e = e.min(sizes.len() - 1);
    let val = ((s as f64) / base.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", sizes[e])
    } else {
        format!("{val:.0} {}", sizes[e])
    }
}

/// [`bytes`] with the space removed (`5B`, `1.5kB`, `20MB`), as Loki's LogQL printer writes
/// byte literals.
pub fn bytes_compact(s: u64) -> String {
    bytes(s).replace(' ', "")
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
        assert_eq!(
            parse_bytes("5 xb").map_err(|e| e.to_string()),
            Err("unhandled size name: xb".into())
        );
        assert!(parse_bytes("abc").is_err());
    }

    #[test]
    fn format() {
        assert_eq!(bytes(5), "5 B");
        assert_eq!(bytes(1536), "1.5 kB");
        assert_eq!(bytes(5_000_000), "5.0 MB");
        assert_eq!(bytes(20_000_000), "20 MB");
        assert_eq!(bytes(u64::MAX), "18 EB");
        assert_eq!(bytes_compact(5_000_000), "5.0MB");
        assert_eq!(bytes_compact(20_000_000), "20MB");
        assert_eq!(bytes_compact(1536), "1.5kB");
        assert_eq!(bytes_compact(5), "5B");
    }

    #[test]
    fn format_binary() {
        // Loki's query-size errors: 17408 bytes and a 1KB limit
        assert_eq!(ibytes(17_408), "17 KiB");
        assert_eq!(ibytes(1024), "1.0 KiB");
        assert_eq!(ibytes(5_120), "5.0 KiB");
        assert_eq!(ibytes(5), "5 B");
        assert_eq!(ibytes(512 << 20), "512 MiB");
        assert_eq!(ibytes(150 << 30), "150 GiB");
        assert_eq!(ibytes(u64::MAX), "16 EiB");
    }
}
