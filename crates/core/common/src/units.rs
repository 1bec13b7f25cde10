//! Loki-style configuration units: durations (`"1h30m"`, `"7d"`, `"100ms"`) and byte sizes
//! (`"256KB"`, `"64kb"`, `"1572864"`), with serde helpers for config structs.
//!
//! Durations accept Prometheus' `model.Duration` syntax (units `y w d h m s ms`, as Loki's
//! `limits_config` uses) and also Go's `time.ParseDuration` syntax (fractions and the units
//! `us`, `µs`, `ns`), because other Loki sections use Go durations. `"0"` means zero.
//! Durations print the way Prometheus prints them (`721h` → `"30d1h"`, `168h` → `"1w"`).
//!
//! Byte sizes follow Loki's `flagext.ByteSize` (c2h5oh/datasize): integers only, **binary**
//! multiples (`1KB` = 1024 bytes, `1MB` = 1048576), case-insensitive units `b`, `k`/`kb`/`kilo…`,
//! `m`/`mb`, `g`/`gb`, `t`/`tb`, `p`/`pb`, `e`/`eb`, optional whitespace between number and unit.
//! Sizes print with the largest unit that divides them exactly (`"256KB"`, `"3MB"`, `"0B"`).

use std::time::Duration;

/// Why a duration or byte-size string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The duration string is empty.
    #[error("empty duration string")]
    EmptyDuration,
    /// The duration string does not follow the `<number><unit>...` syntax.
    #[error("not a valid duration string: {0:?}")]
    InvalidDuration(String),
    /// The duration uses a unit we do not know.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownDurationUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// The duration does not fit in 64 bits of nanoseconds.
    #[error("duration out of range: {0:?}")]
    DurationOutOfRange(String),
    /// The byte size is not `<integer>[unit]`.
    #[error("invalid byte size {0:?}")]
    InvalidBytes(String),
    /// The byte size overflows 64 bits.
    #[error("byte size out of range: {0:?}")]
    BytesOutOfRange(String),
}

const NS_PER_MS: u128 = 1_000_000;

fn duration_unit(unit: &str) -> Option<u128> {
    const S: u128 = 1_000_000_000;
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => NS_PER_MS,
        "s" => S,
        "m" => 60 * S,
        "h" => 3600 * S,
        "d" => 86_400 * S,
        "w" => 7 * 86_400 * S,
        "y" => 365 * 86_400 * S,
        _ => return None,
    })
}

/// Parses a Loki/Prometheus/Go duration such as `"1h30m"`, `"7d"`, `"1.5s"`, `"100ms"` or
/// `"0"`. Negative durations are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let input = s.trim();
    match input {
        "" => return Err(UnitError::EmptyDuration),
        "0" => return Ok(Duration::ZERO),
        _ => {}
    }
    let invalid = || UnitError::InvalidDuration(s.to_string());
    let b = input.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let int_part = &input[start..i];
        let mut frac_part = "";
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fstart = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            frac_part = &input[fstart..i];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let ustart = i;
        while i < b.len() && !(b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let unit = &input[ustart..i];
        if unit.is_empty() {
            return Err(invalid());
        }
        let mult = duration_unit(unit).ok_or_else(|| UnitError::UnknownDurationUnit {
            unit: unit.to_string(),
            input: s.to_string(),
        })?;
        let out_of_range = || UnitError::DurationOutOfRange(s.to_string());
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse::<u128>().map_err(|_| out_of_range())?
        };
        let mut value = whole.checked_mul(mult).ok_or_else(out_of_range)?;
        if !frac_part.is_empty() {
            // Only the first 18 fractional digits matter at nanosecond resolution.
            let digits = &frac_part[..frac_part.len().min(18)];
            let scale = 10u128.pow(digits.len() as u32);
            let num: u128 = digits.parse().map_err(|_| invalid())?;
            value += num * mult / scale;
        }
        total = total.checked_add(value).ok_or_else(out_of_range)?;
        if total > u64::MAX as u128 {
            return Err(out_of_range());
        }
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration the way Prometheus' `model.Duration` prints it: `"0s"`, `"1h30m"`,
/// `"1w"`, `"30d1h"`, `"100ms"`. Sub-millisecond remainders are appended as `us`/`ns`.
pub fn format_duration(d: Duration) -> String {
    let total = d.as_nanos();
    if total == 0 {
        return "0s".to_string();
    }
    let mut ms = total / NS_PER_MS;
    let mut rest_ns = total % NS_PER_MS;
    let mut out = String::new();
    let mut push = |ms: &mut u128, unit: &str, mult: u128, exact: bool| {
        if exact && !ms.is_multiple_of(mult) {
            return;
        }
        let v = *ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            *ms -= v * mult;
        }
    };
    const DAY: u128 = 86_400_000;
    push(&mut ms, "y", 365 * DAY, true);
    push(&mut ms, "w", 7 * DAY, true);
    push(&mut ms, "d", DAY, false);
    push(&mut ms, "h", 3_600_000, false);
    push(&mut ms, "m", 60_000, false);
    push(&mut ms, "s", 1000, false);
    push(&mut ms, "ms", 1, false);
    if rest_ns > 0 {
        let us = rest_ns / 1000;
        if us > 0 {
            out.push_str(&format!("{us}us"));
            rest_ns -= us * 1000;
        }
        if rest_ns > 0 {
            out.push_str(&format!("{rest_ns}ns"));
        }
    }
    out
}

/// Parses a byte size with Loki's `flagext.ByteSize` rules (binary multiples, integers only).
pub fn parse_bytes(s: &str) -> Result<u64, UnitError> {
    let invalid = || UnitError::InvalidBytes(s.to_string());
    let b = s.as_bytes();
    let mut i = 0;
    let mut val: u64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        val = val
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b[i] - b'0')))
            .ok_or_else(|| UnitError::BytesOutOfRange(s.to_string()))?;
        i += 1;
    }
    if i == 0 {
        return Err(invalid());
    }
    let unit = s[i..].trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" | "byte" => 0,
        "k" | "kb" | "kilo" | "kilobyte" | "kilobytes" => 10,
        "m" | "mb" | "mega" | "megabyte" | "megabytes" => 20,
        "g" | "gb" | "giga" | "gigabyte" | "gigabytes" => 30,
        "t" | "tb" | "tera" | "terabyte" | "terabytes" => 40,
        "p" | "pb" | "peta" | "petabyte" | "petabytes" => 50,
        "e" | "eb" => 60,
        _ => return Err(invalid()),
    };
    val.checked_mul(1u64 << shift).ok_or_else(|| UnitError::BytesOutOfRange(s.to_string()))
}

/// Formats a byte size as Loki prints `flagext.ByteSize`: the largest binary unit that divides
/// the value exactly (`"256KB"`, `"3MB"`, `"1025B"`, `"0B"`).
pub fn format_bytes(v: u64) -> String {
    if v == 0 {
        return "0B".to_string();
    }
    for (shift, unit) in [(60, "EB"), (50, "PB"), (40, "TB"), (30, "GB"), (20, "MB"), (10, "KB")] {
        let m = 1u64 << shift;
        if v.is_multiple_of(m) {
            return format!("{}{unit}", v / m);
        }
    }
    format!("{v}B")
}

/// Serde helpers for a [`Duration`] written as a Loki duration string.
///
/// ```text
/// #[serde(with = "skald_common::units::duration")]
/// query_timeout: Duration,
/// ```
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the duration in Prometheus form (`"1h30m"`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    /// Reads a duration string; a bare integer `0` is accepted as zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_duration(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                if v == 0 {
                    Ok(Duration::ZERO)
                } else {
                    Err(E::custom(format!("duration {v} needs a unit, e.g. \"{v}s\"")))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom("negative durations are not allowed")),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde helpers for a byte size (`u64`) written as `"256KB"` or as a plain integer.
///
/// ```text
/// #[serde(with = "skald_common::units::bytesize")]
/// max_line_size: u64,
/// ```
pub mod bytesize {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes the size the way Loki prints it (`"256KB"`).
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_bytes(*v))
    }

    /// Reads `"64MB"`, `"64mb"`, `"1572864"` or the integer `1572864`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as \"256KB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                super::parse_bytes(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom("negative byte sizes are not allowed"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_duration("1h").unwrap(), h(1));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("721h").unwrap(), h(721));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("7d").unwrap(), h(168));
        assert_eq!(parse_duration("1w").unwrap(), h(168));
        assert_eq!(parse_duration("1y").unwrap(), h(365 * 24));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("3ns").unwrap(), Duration::from_nanos(3));
        for bad in ["", "h", "1", "1x", "-1h", "1h-", "1.h.", "99999999999999999999y"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert_eq!(
            parse_duration("5q").unwrap_err().to_string(),
            "unknown unit \"q\" in duration \"5q\""
        );
    }

    #[test]
    fn duration_printing_matches_prometheus() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_secs(721 * 3600)), "30d1h");
        assert_eq!(format_duration(Duration::from_secs(7 * 86400)), "1w");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms500us");
        for s in ["1h", "30m", "721h", "1h30m", "5s", "100ms", "0s", "7d", "90d"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn byte_sizes_are_binary_like_loki() {
        assert_eq!(parse_bytes("256KB").unwrap(), 256 * 1024);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("3MB").unwrap(), 3 << 20);
        assert_eq!(parse_bytes("1572864").unwrap(), 1_572_864);
        assert_eq!(parse_bytes("64kb").unwrap(), 65536);
        assert_eq!(parse_bytes("64Kb").unwrap(), 65536);
        assert_eq!(parse_bytes("150GB").unwrap(), 150 << 30);
        assert_eq!(parse_bytes("10 MB").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert_eq!(parse_bytes("2k").unwrap(), 2048);
        for bad in ["", "MB", "1.5MB", "1KiB", " 1MB", "-1", "1ZB", "99999999999999999999"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_bytes("20000000EB").is_err());
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(256 * 1024), "256KB");
        assert_eq!(format_bytes(3 << 20), "3MB");
        assert_eq!(format_bytes(1_572_864), "1536KB");
        assert_eq!(format_bytes(1025), "1025B");
        assert_eq!(format_bytes(150 << 30), "150GB");
    }

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Cfg {
        #[serde(with = "duration")]
        d: Duration,
        #[serde(with = "bytesize")]
        b: u64,
    }

    #[test]
    fn serde_helpers() {
        let c: Cfg = serde_json::from_str(r#"{"d":"1h30m","b":"64MB"}"#).unwrap();
        assert_eq!(c, Cfg { d: Duration::from_secs(5400), b: 64 << 20 });
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"d":"1h30m","b":"64MB"}"#);
        let c: Cfg = serde_yaml::from_str("d: 0\nb: 1572864\n").unwrap();
        assert_eq!(c, Cfg { d: Duration::ZERO, b: 1_572_864 });
        let err = serde_json::from_str::<Cfg>(r#"{"d":"1x","b":"1"}"#).unwrap_err().to_string();
        assert!(err.contains("unknown unit"), "{err}");
    }
}
