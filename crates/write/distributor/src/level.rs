//! `detected_level` discovery, with the observable behaviour of Loki 3.x's distributor.
//!
//! Order of precedence for an entry:
//! 1. an existing `detected_level` structured-metadata pair is kept (its value normalized);
//! 2. the first configured level field present in the stream labels, then in the entry's
//!    structured metadata (normalized);
//! 3. an OTLP `severity_number` in the structured metadata;
//! 4. the line: a level field in a JSON object (up to the configured depth) or in logfmt
//!    pairs, else the first standalone level keyword in the line, else `unknown`.

use std::borrow::Cow;

use skald_gocompat::json::jsoniter::{self, Cursor, Kind};
use skald_gocompat::logfmt::go_logfmt as logfmt;
use skald_model::Label;

/// The structured-metadata name Loki writes the level under.
pub const DETECTED_LEVEL: &str = "detected_level";
/// The level written when nothing is found.
pub const LEVEL_UNKNOWN: &str = "unknown";

const OTLP_SEVERITY_NUMBER: &str = "severity_number";

/// Maps a level spelling to its canonical name, case-insensitively; `None` if unknown.
fn canonical(v: &[u8]) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("trc", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("warn", "warn"),
        ("wrn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("critical", "critical"),
        ("fatal", "fatal"),
    ];
    TABLE.iter().find(|(word, _)| v.eq_ignore_ascii_case(word.as_bytes())).map(|(_, level)| *level)
}

/// Normalizes a level value: known spellings become `trace|debug|info|warn|error|critical|
/// fatal`; anything else is returned unchanged.
pub fn normalize_level(v: &str) -> String {
    canonical(v.as_bytes()).map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// Detects log levels with a fixed list of field names.
#[derive(Debug, Clone)]
pub struct LevelDetector {
    fields: Vec<String>,
    json_max_depth: i64,
}

impl LevelDetector {
    /// Builds a detector. An empty `fields` list means Loki's default field names.
    /// `json_max_depth <= 0` means unlimited.
    pub fn new(fields: &[String], json_max_depth: i64) -> Self {
        let fields: Vec<String> = if fields.is_empty() {
            skald_common::limits::DEFAULT_LOG_LEVEL_FIELDS.iter().map(|s| s.to_string()).collect()
        } else {
            fields.to_vec()
        };
        LevelDetector { fields, json_max_depth }
    }

    /// The level a stream's labels give every entry of it (step 2's first half), normalized;
    /// computed once per stream and passed to [`LevelDetector::detect`].
    pub fn stream_level(&self, stream_labels: &[Label]) -> Option<String> {
        self.first_field(stream_labels).map(normalize_level)
    }

    /// Returns the `detected_level` to append to an entry, or `None` when the entry already
    /// has one (whose value is then normalized in place). `stream_level` is
    /// [`LevelDetector::stream_level`] of the entry's stream.
    pub fn detect(
        &self,
        stream_level: Option<&str>,
        metadata: &mut [Label],
        line: &str,
    ) -> Option<String> {
        if let Some(existing) = metadata.iter_mut().find(|l| l.name == DETECTED_LEVEL) {
            if let Some(level) = canonical(existing.value.as_bytes()) {
                if existing.value != level {
                    existing.value = level.to_string();
                }
            }
            return None;
        }
        if let Some(v) = stream_level {
            return Some(v.to_string());
        }
        if let Some(v) = self.first_field(metadata) {
            return Some(normalize_level(v));
        }
        if let Some(sev) = metadata.iter().find(|l| l.name == OTLP_SEVERITY_NUMBER) {
            if !sev.value.is_empty() {
                return Some(otlp_severity(&sev.value).to_string());
            }
        }
        Some(self.detect_from_line(line).to_string())
    }

    fn first_field<'a>(&self, labels: &'a [Label]) -> Option<&'a str> {
        self.fields
            .iter()
            .find_map(|f| labels.iter().find(|l| &l.name == f).map(|l| l.value.as_str()))
    }

    /// Detects the level of a bare log line (steps 4 above). Always returns a level.
    pub fn detect_from_line(&self, line: &str) -> &'static str {
        let level = if looks_like_json(line) {
            json_level(line.as_bytes(), &self.fields, self.json_max_depth).and_then(canonical)
        } else if !line.is_empty() && line.contains('=') {
            logfmt_level(line.as_bytes(), &self.fields)
        } else {
            return keyword_level(line);
        };
        level.unwrap_or_else(|| keyword_level(line))
    }
}

fn otlp_severity(v: &str) -> &'static str {
    match v.parse::<i64>() {
        Err(_) => "info",
        Ok(0) => LEVEL_UNKNOWN,
        Ok(n) if n <= 4 => "trace",
        Ok(n) if n <= 8 => "debug",
        Ok(n) if n <= 12 => "info",
        Ok(n) if n <= 16 => "warn",
        Ok(n) if n <= 20 => "error",
        Ok(n) if n <= 24 => "fatal",
        Ok(_) => LEVEL_UNKNOWN,
    }
}

/// First non-space character is `{` and last non-space byte is `}`.
fn looks_like_json(line: &str) -> bool {
    let first = line.chars().find(|c| !c.is_whitespace());
    let last = line.bytes().rev().map(char::from).find(|c| !c.is_whitespace());
    first == Some('{') && last == Some('}')
}

/// Walks the object's members in order, descending into nested objects while
/// `depth < max_depth`, and returns the raw value of the first string member whose key is a
/// level field. Stops quietly at the first syntax error.
fn json_level<'a>(line: &'a [u8], fields: &[String], max_depth: i64) -> Option<&'a [u8]> {
    fn walk<'a>(
        c: &mut Cursor<'a>,
        depth: i64,
        fields: &[String],
        max: i64,
    ) -> Result<Option<(usize, usize)>, ()> {
        if max > 0 && depth >= max {
            c.skip_value().map_err(|_| ())?;
            return Ok(None);
        }
        if !c.begin_object().map_err(|_| ())? {
            return Ok(None);
        }
        loop {
            let key = c.member_key().map_err(|_| ())?;
            match c.kind().map_err(|_| ())? {
                Kind::String => {
                    let span = c.raw_string().map_err(|_| ())?;
                    if fields.iter().any(|f| f.as_str() == key.as_ref()) {
                        return Ok(Some(span));
                    }
                }
                Kind::Object => {
                    if let Some(found) = walk(c, depth + 1, fields, max)? {
                        return Ok(Some(found));
                    }
                }
                _ => {
                    c.skip_value().map_err(|_| ())?;
                }
            }
            if !c.next_member().map_err(|_| ())? {
                return Ok(None);
            }
        }
    }
    let mut c = Cursor::new(line);
    match walk(&mut c, 0, fields, max_depth) {
        Ok(Some((s, e))) => Some(&line[s..e]),
        _ => None,
    }
}

/// Scans logfmt pairs (go-logfmt's scan, `skald_gocompat::logfmt::go_logfmt`); returns the
/// value of the best-ranked level field (earliest in `fields`, first occurrence), stopping at
/// the first syntax error (a quoted value with a bad escape is one).
fn logfmt_level(line: &[u8], fields: &[String]) -> Option<&'static str> {
    let mut best_rank = fields.len();
    let mut best: Option<Cow<'_, [u8]>> = None;
    let mut sc = logfmt::Scanner::new(line);
    while let Ok(Some(pair)) = sc.next_pair() {
        let key = &line[pair.key];
        let value = match pair.value {
            logfmt::Value::None => None,
            logfmt::Value::Plain(r) | logfmt::Value::Quoted { raw: r, escaped: false } => {
                Some(Cow::Borrowed(&line[r]))
            }
            logfmt::Value::Quoted { raw, escaped: true } => match jsoniter::unescape(&line[raw]) {
                Ok(v) => Some(Cow::Owned(v.into_owned().into_bytes())),
                Err(_) => break,
            },
        };
        // (a key that is not UTF-8 cannot equal a field name, which is)
        for (rank, f) in fields.iter().enumerate().take(best_rank) {
            if key.eq_ignore_ascii_case(f.as_bytes()) {
                best_rank = rank;
                best = Some(value.unwrap_or_default());
                break;
            }
        }
        if best_rank == 0 {
            break;
        }
    }
    best.and_then(|v| canonical(&v))
}

const ALPHA: u8 = 1;
/// May precede a keyword.
const LEFT: u8 = 2;
/// May follow a keyword.
const RIGHT: u8 = 4;

/// Each byte's classes for the keyword scan.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        if (c as u8).is_ascii_alphabetic() {
            t[c] = ALPHA;
        }
        c += 1;
    }
    let left = b" \t\n[({\"'=|";
    let mut i = 0;
    while i < left.len() {
        t[left[i] as usize] |= LEFT;
        i += 1;
    }
    let right = b" \t\n[]()={}:,!\"'|";
    let mut i = 0;
    while i < right.len() {
        t[right[i] as usize] |= RIGHT;
        i += 1;
    }
    t
};

/// The level of the earliest standalone level keyword in the line (ASCII case-insensitive), or
/// `unknown`.
///
/// One pass over the bytes: a keyword can only be a whole run of ASCII letters that starts
/// after a left boundary (or at the start) and ends at a right boundary (or the end), so only
/// such runs of 3 to 8 letters are compared, each with at most one keyword. The keywords are
/// ASCII, so comparing the original bytes case-insensitively finds exactly what a lowercased
/// copy would.
fn keyword_level(line: &str) -> &'static str {
    let hay = line.as_bytes();
    let mut i = 0;
    while i < hay.len() {
        if CLASS[hay[i] as usize] & ALPHA == 0 {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < hay.len() && CLASS[hay[j] as usize] & ALPHA != 0 {
            j += 1;
        }
        let left = i == 0 || CLASS[hay[i - 1] as usize] & LEFT != 0;
        let right = j == hay.len() || CLASS[hay[j] as usize] & RIGHT != 0;
        if left && right && (3..=8).contains(&(j - i)) {
            if let Some(level) = keyword(&hay[i..j]) {
                return level;
            }
        }
        i = j;
    }
    LEVEL_UNKNOWN
}

/// The level a run of ASCII letters spells, if any: at most one keyword has its length and
/// first letter.
fn keyword(word: &[u8]) -> Option<&'static str> {
    let (spelling, level): (&[u8], &'static str) = match (word.len(), word[0] | 0x20) {
        (3, b'e') => (b"err", "error"),
        (4, b'w') => (b"warn", "warn"),
        (4, b'i') => (b"info", "info"),
        (5, b't') => (b"trace", "trace"),
        (5, b'd') => (b"debug", "debug"),
        (5, b'f') => (b"fatal", "fatal"),
        (5, b'e') => (b"error", "error"),
        (7, b'w') => (b"warning", "warn"),
        (8, b'c') => (b"critical", "critical"),
        _ => return None,
    };
    spelling.eq_ignore_ascii_case(word).then_some(level)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> LevelDetector {
        LevelDetector::new(&[], 2)
    }

    #[test]
    fn keywords() {
        let d = d();
        assert_eq!(d.detect_from_line("2024 [error] boom"), "error");
        assert_eq!(d.detect_from_line("INFO starting; later WARN"), "info");
        assert_eq!(d.detect_from_line("x warning: y"), "warn");
        assert_eq!(d.detect_from_line("misc:error happened"), "unknown");
        assert_eq!(d.detect_from_line("errors everywhere"), "unknown");
        assert_eq!(d.detect_from_line("E: fatal! then debug"), "fatal");
        assert_eq!(d.detect_from_line(""), "unknown");
    }

    #[test]
    fn structured_lines() {
        let d = d();
        assert_eq!(d.detect_from_line(r#"{"level":"WARNING","msg":"x"}"#), "warn");
        assert_eq!(d.detect_from_line(r#"{"a":{"severity":"dbg"}}"#), "debug");
        // too deep for the default depth of 2: falls back to keywords
        assert_eq!(d.detect_from_line(r#"{"a":{"b":{"level":"wrn"}}}"#), "unknown");
        assert_eq!(
            LevelDetector::new(&[], 0).detect_from_line(r#"{"a":{"b":{"level":"wrn"}}}"#),
            "warn"
        );
        assert_eq!(d.detect_from_line(r#"{"level":"custom","msg":"an error"}"#), "error");
        assert_eq!(d.detect_from_line("level=info msg=\"an error\""), "info");
        assert_eq!(d.detect_from_line("lvl=warn level=debug"), "debug");
        assert_eq!(d.detect_from_line("msg=\"unterminated level=error"), "error"); // keyword fallback
        assert_eq!(d.detect_from_line("a=b msg=\"fatal crash\""), "fatal");
    }

    #[test]
    fn labels_and_metadata_first() {
        let d = d();
        let stream = d.stream_level(&[Label::new("level", "ERR")]);
        assert_eq!(stream.as_deref(), Some("error"));
        assert_eq!(d.detect(stream.as_deref(), &mut [], "info line").as_deref(), Some("error"));
        assert_eq!(d.stream_level(&[Label::new("job", "x")]), None);
        let mut sm = vec![Label::new("severity", "custom")];
        assert_eq!(d.detect(None, &mut sm, "info line").as_deref(), Some("custom"));
        let mut sm = vec![Label::new("detected_level", "WARN")];
        assert_eq!(d.detect(None, &mut sm, "info line"), None);
        assert_eq!(sm[0].value, "warn");
        let mut sm = vec![Label::new("detected_level", "Custom")];
        assert_eq!(d.detect(stream.as_deref(), &mut sm, "info line"), None);
        assert_eq!(sm[0].value, "Custom");
        let mut sm = vec![Label::new("severity_number", "17")];
        assert_eq!(d.detect(None, &mut sm, "info line").as_deref(), Some("error"));
    }

    /// The scan as first written (a boundary check per byte, nine comparisons per word).
    fn keyword_level_plain(line: &str) -> &'static str {
        fn left(s: &[u8], pos: Option<usize>) -> bool {
            pos.and_then(|p| s.get(p)).is_none_or(|c| b" \t\n[({\"'=|".contains(c))
        }
        fn right(s: &[u8], pos: usize) -> bool {
            s.get(pos).is_none_or(|c| b" \t\n[](){}:,!\"'=|".contains(c))
        }
        const WORDS: &[(&[u8], &str)] = &[
            (b"trace", "trace"),
            (b"debug", "debug"),
            (b"fatal", "fatal"),
            (b"critical", "critical"),
            (b"error", "error"),
            (b"err", "error"),
            (b"warning", "warn"),
            (b"warn", "warn"),
            (b"info", "info"),
        ];
        let hay = line.as_bytes();
        let mut i = 0;
        while i < hay.len() {
            if !hay[i].is_ascii_alphabetic() || !left(hay, i.checked_sub(1)) {
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while j < hay.len() && hay[j].is_ascii_alphabetic() {
                j += 1;
            }
            if (3..=8).contains(&(j - i)) && right(hay, j) {
                let w = &hay[i..j];
                if let Some((_, level)) = WORDS.iter().find(|(k, _)| k.eq_ignore_ascii_case(w)) {
                    return level;
                }
            }
            i = j;
        }
        LEVEL_UNKNOWN
    }

    #[test]
    fn keyword_scan_matches_the_plain_scan() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/loghub");
        let mut lines = 0;
        for f in std::fs::read_dir(&dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    assert_eq!(keyword_level(line), keyword_level_plain(line), "{line}");
                    lines += 1;
                }
            }
        }
        assert!(lines > 10_000, "{lines} loghub lines");
        // every keyword in every case pattern next to every byte
        let words =
            ["trace", "debug", "fatal", "critical", "error", "err", "warning", "warn", "info"];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for w in words {
            for b in 0u8..128 {
                for case in 0..4u64 {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let w: String = w
                        .chars()
                        .enumerate()
                        .map(|(i, c)| {
                            if (seed >> (i + case as usize)) & 1 == 1 {
                                c.to_ascii_uppercase()
                            } else {
                                c
                            }
                        })
                        .collect();
                    let c = char::from(b);
                    for line in [
                        format!("{c}{w}"),
                        format!("{w}{c}"),
                        format!("x{c}{w}{c}y"),
                        format!("{w}s {c}{w}"),
                    ] {
                        assert_eq!(keyword_level(&line), keyword_level_plain(&line), "{line:?}");
                    }
                }
            }
        }
    }
}
