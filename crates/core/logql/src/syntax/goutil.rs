//! Go-compatible formatting and parsing helpers used by the LogQL lexer, parser and printer:
//! `strconv.Quote`, `fmt.Sprint(float64)`, `strconv.ParseFloat`, `time.Duration` and
//! Prometheus `model.Duration` parsing/printing, and go-humanize byte sizes. They reproduce the
//! exact texts Loki prints.

use skald_gocompat::strconv::{NumError, NumErrorKind};

/// Quotes `s` the way Go's `strconv.Quote` does (non-printable runes escaped).
pub use skald_gocompat::strconv::quote as go_quote;

/// Formats a float like Go's `fmt.Sprint(f)` (`%v`: shortest `%g`, e.g. `7`, `0.5`, `1e+06`).
pub use skald_gocompat::fmt::float_v as go_float_v;

/// Formats like Go's `strconv.FormatFloat(f, 'f', -1, 64)`.
pub use skald_gocompat::strconv::format_float_f as go_float_f;

/// Parses like Go's `strconv.ParseFloat(s, 64)` for the decimal forms the LogQL lexer produces;
/// errors are Go's `*strconv.NumError`, e.g. `strconv.ParseFloat: parsing "0x10": invalid
/// syntax` (a NUMBER token is ASCII, so gocompat's lenient quoting is Go's `strconv.Quote`).
pub fn go_parse_float(s: &str) -> Result<f64, NumError> {
    let err = |kind| NumError { func: "ParseFloat", num: s.to_string(), kind };
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !skald_gocompat::strconv::is_decimal_syntax(body) {
        return Err(err(NumErrorKind::Syntax));
    }
    let v: f64 = s.parse().map_err(|_| err(NumErrorKind::Syntax))?;
    if v.is_infinite() {
        return Err(err(NumErrorKind::Range));
    }
    Ok(v)
}

/// Parses like Go's `strconv.Atoi` (decimal digits, optional sign); `None` on any error.
pub fn go_atoi(s: &str) -> Option<i64> {
    skald_gocompat::strconv::atoi(s).ok()
}

const NS_MS: u64 = 1_000_000;

/// Why a Prometheus `model.Duration` does not parse; prints Prometheus' text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromDurationError {
    /// `""`.
    #[error("empty duration string")]
    Empty,
    /// Not `<digits><unit>...` with units in decreasing order.
    #[error("not a valid duration string: {}", go_quote(.0))]
    Invalid(String),
    /// A unit other than `y`, `w`, `d`, `h`, `m`, `s`, `ms`.
    #[error("unknown unit {} in duration {}", go_quote(.unit), go_quote(.duration))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration.
        duration: String,
    },
    /// More than `i64::MAX` nanoseconds.
    #[error("duration out of range")]
    OutOfRange,
}

/// Parses a Prometheus `model.Duration` (`1h30m`, `5m`, `1d`, `2w`, `1y`, `100ms`, `0`),
/// returning nanoseconds, or Prometheus' error.
pub fn prom_parse_duration(s: &str) -> Result<i64, PromDurationError> {
    match s {
        "0" => return Ok(0),
        "" => return Err(PromDurationError::Empty),
        _ => {}
    }
    let invalid = || PromDurationError::Invalid(s.to_string());
    let units: [(&str, u64, u32); 7] = [
        ("y", 365 * 24 * 3600 * 1000 * NS_MS, 1),
        ("w", 7 * 24 * 3600 * 1000 * NS_MS, 2),
        ("d", 24 * 3600 * 1000 * NS_MS, 3),
        ("h", 3600 * 1000 * NS_MS, 4),
        ("m", 60 * 1000 * NS_MS, 5),
        ("s", 1000 * NS_MS, 6),
        ("ms", NS_MS, 7),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut last_pos = 0;
    let mut total: u64 = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return Err(invalid());
        }
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let v: u64 = s[st..i].parse().map_err(|_| invalid())?;
        let ust = i;
        while i < b.len() && !b[i].is_ascii_digit() {
            i += 1;
        }
        if ust == i {
            return Err(invalid());
        }
        // `i` stops at an ASCII digit or the end, so this slice is on char boundaries.
        let u = &s[ust..i];
        let Some(&(_, mult, pos)) = units.iter().find(|(n, _, _)| *n == u) else {
            return Err(PromDurationError::UnknownUnit {
                unit: u.to_string(),
                duration: s.to_string(),
            });
        };
        if pos <= last_pos {
            return Err(invalid());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err(PromDurationError::OutOfRange);
        }
        total = total.saturating_add(v * mult);
        if total > i64::MAX as u64 {
            return Err(PromDurationError::OutOfRange);
        }
    }
    Ok(total as i64)
}

/// Parses a Go `time.ParseDuration` string (`1.5s`, `-250ms`, `1h2m`, `3us`).
pub fn go_parse_duration(s: &str) -> Option<i64> {
    skald_gocompat::duration::parse_duration(s).ok()
}

/// Formats nanoseconds like Go's `time.Duration.String()` (`1h0m0s`, `250ms`, `1.5s`).
pub use skald_gocompat::duration::duration_string as go_duration_string;

/// Formats nanoseconds like Prometheus' `model.Duration.String()` (`5m`, `1h30m`, `1w`).
pub fn prom_duration_string(d: i64) -> String {
    let mut ms = d / NS_MS as i64;
    if ms == 0 {
        return "0s".into();
    }
    let mut r = String::new();
    if ms < 0 {
        r.push('-');
        ms = -ms;
    }
    let units: [(&str, i64, bool); 7] = [
        ("y", 1000 * 60 * 60 * 24 * 365, true),
        ("w", 1000 * 60 * 60 * 24 * 7, true),
        ("d", 1000 * 60 * 60 * 24, false),
        ("h", 1000 * 60 * 60, false),
        ("m", 1000 * 60, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            r.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    r
}

/// Parses a byte size like go-humanize's `ParseBytes` (`5MB`, `1.5KiB`, `512B`, `3k`).
pub fn humanize_parse_bytes(s: &str) -> Option<u64> {
    skald_gocompat::humanize::parse_bytes(s).ok()
}

/// Formats a byte count like go-humanize's `Bytes` with spaces removed (`5.0MB`, `20MB`, `5B`).
pub use skald_gocompat::humanize::bytes_compact as humanize_bytes;

/// Turns a regex that failed to compile into Go's `regexp/syntax` error text, e.g.
/// ``error parsing regexp: missing closing ): `(unclosed` ``. `src` is the full pattern given
/// to the compiler. Falls back to the Rust message when the cause is not recognised.
pub fn go_regex_error(src: &str, rust_err: &str) -> String {
    let p = |code: &str, expr: &str| format!("error parsing regexp: {code}: `{expr}`");
    // Scan once, tracking groups and classes, the way Go reports the first problem.
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut depth: i32 = 0;
    let mut i = 0;
    let mut prev_repeatable = false;
    let mut prev_was_repeat = false;
    while i < chars.len() {
        let (off, c) = chars[i];
        match c {
            '\\' => {
                let Some(&(_, e)) = chars.get(i + 1) else {
                    return "error parsing regexp: trailing backslash at end of expression: ``"
                        .into();
                };
                let ok = e.is_ascii_punctuation() || "afnrtvdDsSwWbBAzpPxQEC0123456789".contains(e);
                if !ok {
                    let end = chars.get(i + 2).map_or(src.len(), |x| x.0);
                    return p("invalid escape sequence", &src[off..end]);
                }
                i += 2;
                prev_repeatable = true;
                prev_was_repeat = false;
                continue;
            }
            '[' => {
                // find the closing bracket
                let mut j = i + 1;
                if chars.get(j).is_some_and(|x| x.1 == '^') {
                    j += 1;
                }
                if chars.get(j).is_some_and(|x| x.1 == ']') {
                    j += 1;
                }
                let mut closed = false;
                while j < chars.len() {
                    match chars[j].1 {
                        '\\' => j += 2,
                        '[' if chars.get(j + 1).is_some_and(|x| x.1 == ':') => {
                            let rest = &src[chars[j].0..];
                            match rest.find(":]") {
                                Some(k) => {
                                    let endb = chars[j].0 + k + 2;
                                    while j < chars.len() && chars[j].0 < endb {
                                        j += 1;
                                    }
                                }
                                None => j += 1,
                            }
                        }
                        ']' => {
                            closed = true;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                if !closed {
                    return p("missing closing ]", &src[off..]);
                }
                i = j + 1;
                prev_repeatable = true;
                prev_was_repeat = false;
                continue;
            }
            '(' => {
                depth += 1;
                prev_repeatable = false;
                prev_was_repeat = false;
                if chars.get(i + 1).is_some_and(|x| x.1 == '?') {
                    // flags or named group
                    let rest = &src[off..];
                    if rest.starts_with("(?P<") || rest.starts_with("(?<") {
                        let st = if rest.starts_with("(?P<") { 4 } else { 3 };
                        match rest[st..].find('>') {
                            Some(k) => {
                                let name = &rest[st..st + k];
                                let valid = !name.is_empty()
                                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                                if !valid {
                                    return p("invalid named capture", &rest[..st + k + 1]);
                                }
                                i += rest[..st + k + 1].chars().count();
                                continue;
                            }
                            None => return p("invalid named capture", rest),
                        }
                    } else {
                        let body = &rest[2..];
                        let ok = match body.find([')', ':']) {
                            Some(k) => {
                                let flags = &body[..k];
                                flags.chars().all(|c| "imsU-".contains(c))
                                    && (!flags.is_empty() || body[k..].starts_with(':'))
                            }
                            None => false,
                        };
                        if !ok {
                            let end = rest.char_indices().nth(3).map_or(rest.len(), |x| x.0);
                            return p("invalid or unsupported Perl syntax", &rest[..end]);
                        }
                        // skip the group prefix: `(?flags)` is not a group at all
                        let body_len = body.find([')', ':']).unwrap_or(0);
                        if body[body_len..].starts_with(')') {
                            depth -= 1;
                        }
                        let skip = rest[..2 + body_len + 1].chars().count();
                        i += skip;
                        continue;
                    }
                }
            }
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return p("unexpected )", src);
                }
                prev_repeatable = true;
                prev_was_repeat = false;
            }
            '*' | '+' | '?' => {
                if prev_was_repeat {
                    let st = chars[i - 1].0;
                    let end = chars.get(i + 1).map_or(src.len(), |x| x.0);
                    // Go allows a single trailing `?` (non-greedy)
                    if c != '?' {
                        return p("invalid nested repetition operator", &src[st..end]);
                    }
                    prev_was_repeat = false;
                    prev_repeatable = false;
                    i += 1;
                    continue;
                }
                if !prev_repeatable {
                    let end = chars.get(i + 1).map_or(src.len(), |x| x.0);
                    return p("missing argument to repetition operator", &src[off..end]);
                }
                prev_was_repeat = true;
                i += 1;
                continue;
            }
            '|' => {
                prev_repeatable = false;
                prev_was_repeat = false;
            }
            _ => {
                prev_repeatable = true;
                prev_was_repeat = false;
            }
        }
        i += 1;
    }
    if depth > 0 {
        return p("missing closing )", src);
    }
    let first = rust_err.lines().rev().find(|l| l.starts_with("error:")).unwrap_or(rust_err);
    format!("error parsing regexp: {}", first.trim_start_matches("error:").trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(go_parse_float("1.5").unwrap(), 1.5);
        assert_eq!(
            go_parse_float("0x10").unwrap_err().to_string(),
            "strconv.ParseFloat: parsing \"0x10\": invalid syntax"
        );
        assert!(go_parse_float("1e400").unwrap_err().to_string().ends_with("value out of range"));
    }

    #[test]
    fn durations() {
        assert_eq!(prom_parse_duration("5m").unwrap(), 300_000_000_000);
        assert_eq!(prom_parse_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(
            prom_parse_duration("5minutes").unwrap_err().to_string(),
            "unknown unit \"minutes\" in duration \"5minutes\""
        );
        assert!(prom_parse_duration("1.5s").is_err());
        assert_eq!(go_parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(go_parse_duration("-250ms"), Some(-250_000_000));
        assert_eq!(go_parse_duration("750us"), Some(750_000));
        assert_eq!(go_parse_duration("2m3s"), Some(123_000_000_000));
        assert_eq!(go_parse_duration("5"), None);
        assert_eq!(go_duration_string(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration_string(1_800_000_000_000), "30m0s");
        assert_eq!(go_duration_string(250_000_000), "250ms");
        assert_eq!(go_duration_string(1_500_000_000), "1.5s");
        assert_eq!(go_duration_string(750_000), "750µs");
        assert_eq!(go_duration_string(-300_000_000_000), "-5m0s");
        assert_eq!(prom_duration_string(300_000_000_000), "5m");
        assert_eq!(prom_duration_string(90_000_000_000), "1m30s");
        assert_eq!(prom_duration_string(7 * 86_400_000_000_000), "1w");
        assert_eq!(prom_duration_string(8 * 86_400_000_000_000), "8d");
    }

    #[test]
    fn bytes() {
        assert_eq!(humanize_parse_bytes("5MB"), Some(5_000_000));
        assert_eq!(humanize_parse_bytes("1.5KiB"), Some(1536));
        assert_eq!(humanize_parse_bytes("512B"), Some(512));
        assert_eq!(humanize_parse_bytes("3k"), Some(3000));
        assert_eq!(humanize_parse_bytes("3x"), None);
        assert_eq!(humanize_bytes(5_000_000), "5.0MB");
        assert_eq!(humanize_bytes(20_000_000), "20MB");
        assert_eq!(humanize_bytes(1536), "1.5kB");
        assert_eq!(humanize_bytes(5), "5B");
    }

    #[test]
    fn regex_errors() {
        assert_eq!(
            go_regex_error("(unclosed", ""),
            "error parsing regexp: missing closing ): `(unclosed`"
        );
        assert_eq!(go_regex_error("a)", ""), "error parsing regexp: unexpected ): `a)`");
        assert_eq!(go_regex_error("[a", ""), "error parsing regexp: missing closing ]: `[a`");
        assert_eq!(
            go_regex_error("x\\q", ""),
            "error parsing regexp: invalid escape sequence: `\\q`"
        );
        assert_eq!(
            go_regex_error("*a", ""),
            "error parsing regexp: missing argument to repetition operator: `*`"
        );
        assert_eq!(
            go_regex_error("a**", ""),
            "error parsing regexp: invalid nested repetition operator: `**`"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\\n\u{1}é\u{a0}"), "\"a\\\"b\\\\\\n\\x01é\\u00a0\"");
    }
}
