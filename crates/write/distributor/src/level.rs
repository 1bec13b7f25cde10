//! `detected_level` discovery, with the observable behaviour of Loki 3.x's distributor.
//!
//! Order of precedence for an entry:
//! 1. an existing `detected_level` structured-metadata pair is kept (its value normalized);
//! 2. the first configured level field present in the stream labels, then in the entry's
//!    structured metadata (normalized);
//! 3. an OTLP `severity_number` in the structured metadata;
//! 4. the line: a level field in a JSON object (up to the configured depth) or in logfmt
//!    pairs, else the first standalone level keyword in the line, else `unknown`.

use std::collections::HashSet;

use skald_model::Label;

use crate::json::{Cursor, Kind};

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
    field_set: HashSet<String>,
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
        let field_set = fields.iter().cloned().collect();
        LevelDetector { fields, field_set, json_max_depth }
    }

    /// Returns the `detected_level` to append to an entry, or `None` when the entry already
    /// has one (whose value is then normalized in place).
    pub fn detect(
        &self,
        stream_labels: &[Label],
        metadata: &mut [Label],
        line: &str,
    ) -> Option<String> {
        if let Some(existing) = metadata.iter_mut().find(|l| l.name == DETECTED_LEVEL) {
            existing.value = normalize_level(&existing.value);
            return None;
        }
        if let Some(v) = self.first_field(stream_labels) {
            return Some(normalize_level(v));
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
            json_level(line.as_bytes(), &self.field_set, self.json_max_depth).and_then(canonical)
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
fn json_level<'a>(line: &'a [u8], fields: &HashSet<String>, max_depth: i64) -> Option<&'a [u8]> {
    fn walk<'a>(
        c: &mut Cursor<'a>,
        depth: i64,
        fields: &HashSet<String>,
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
                    if fields.contains(key.as_ref()) {
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

/// Scans logfmt pairs; returns the value of the best-ranked level field (earliest in
/// `fields`, first occurrence), stopping at the first syntax error.
fn logfmt_level(line: &[u8], fields: &[String]) -> Option<&'static str> {
    let mut best_rank = fields.len();
    let mut best: Option<Vec<u8>> = None;
    let mut sc = LogfmtScanner { line, pos: 0 };
    while sc.pos < line.len() {
        let Some((key, value)) = sc.next_pair() else { break };
        let Ok(k) = std::str::from_utf8(key) else { continue };
        for (rank, f) in fields.iter().enumerate() {
            if rank < best_rank && k.eq_ignore_ascii_case(f) {
                best_rank = rank;
                best = Some(value.clone().unwrap_or_default());
                break;
            }
        }
        if best_rank == 0 {
            break;
        }
    }
    best.and_then(|v| canonical(&v))
}

struct LogfmtScanner<'a> {
    line: &'a [u8],
    pos: usize,
}

impl LogfmtScanner<'_> {
    /// Reads the next `key[=value]`. `None` means end of line or a syntax error.
    fn next_pair(&mut self) -> Option<(&[u8], Option<Vec<u8>>)> {
        let line = self.line;
        while self.pos < line.len() && line[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= line.len() {
            return None;
        }
        let start = self.pos;
        while self.pos < line.len() {
            match line[self.pos] {
                b'=' => break,
                b'"' => return None,
                c if c <= b' ' => return Some((&line[start..self.pos], None)),
                _ => self.pos += 1,
            }
        }
        if self.pos >= line.len() {
            return Some((&line[start..], None));
        }
        if self.pos == start {
            return None; // '=' without a key
        }
        let key = &line[start..self.pos];
        self.pos += 1; // '='
        if self.pos >= line.len() || line[self.pos] <= b' ' {
            return Some((key, None));
        }
        if line[self.pos] == b'"' {
            let qstart = self.pos + 1;
            let mut i = qstart;
            let mut has_esc = false;
            while i < line.len() {
                match line[i] {
                    b'\\' => {
                        has_esc = true;
                        i += 2;
                    }
                    b'"' => {
                        self.pos = i + 1;
                        let raw = &line[qstart..i];
                        let v = if has_esc {
                            crate::json::unescape(raw).ok()?.into_owned().into_bytes()
                        } else {
                            raw.to_vec()
                        };
                        return Some((key, Some(v)));
                    }
                    _ => i += 1,
                }
            }
            self.pos = line.len();
            return None;
        }
        let vstart = self.pos;
        while self.pos < line.len() {
            match line[self.pos] {
                b'=' | b'"' => return None,
                c if c <= b' ' => break,
                _ => self.pos += 1,
            }
        }
        Some((key, Some(line[vstart..self.pos].to_vec())))
    }
}

fn left_boundary(s: &[u8], pos: Option<usize>) -> bool {
    match pos.and_then(|p| s.get(p)) {
        None => true,
        Some(c) => {
            matches!(c, b' ' | b'\t' | b'\n' | b'[' | b'(' | b'{' | b'"' | b'\'' | b'=' | b'|')
        }
    }
}

fn right_boundary(s: &[u8], pos: usize) -> bool {
    match s.get(pos) {
        None => true,
        Some(c) => matches!(
            c,
            b' ' | b'\t'
                | b'\n'
                | b'['
                | b']'
                | b'('
                | b')'
                | b'{'
                | b'}'
                | b':'
                | b','
                | b'!'
                | b'"'
                | b'\''
                | b'='
                | b'|'
        ),
    }
}

/// The level of the earliest standalone level keyword in the line (ASCII case-insensitive), or
/// `unknown`.
///
/// One pass over the bytes: a keyword can only be a whole run of ASCII letters that starts
/// after a left boundary (or at the start) and ends at a right boundary (or the end), so only
/// such runs of 3 to 8 letters are compared. The keywords are ASCII, so comparing the
/// original bytes case-insensitively finds exactly what a lowercased copy would.
fn keyword_level(line: &str) -> &'static str {
    let hay = line.as_bytes();
    let mut i = 0;
    while i < hay.len() {
        if !hay[i].is_ascii_alphabetic() || !left_boundary(hay, i.checked_sub(1)) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < hay.len() && hay[j].is_ascii_alphabetic() {
            j += 1;
        }
        if (3..=8).contains(&(j - i)) && right_boundary(hay, j) {
            if let Some(level) = keyword(&hay[i..j]) {
                return level;
            }
        }
        i = j;
    }
    LEVEL_UNKNOWN
}

fn keyword(word: &[u8]) -> Option<&'static str> {
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
    WORDS.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)).map(|(_, level)| *level)
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
        let stream = vec![Label::new("level", "ERR")];
        assert_eq!(d.detect(&stream, &mut [], "info line").as_deref(), Some("error"));
        let mut sm = vec![Label::new("severity", "custom")];
        assert_eq!(d.detect(&[], &mut sm, "info line").as_deref(), Some("custom"));
        let mut sm = vec![Label::new("detected_level", "WARN")];
        assert_eq!(d.detect(&[], &mut sm, "info line"), None);
        assert_eq!(sm[0].value, "warn");
        let mut sm = vec![Label::new("severity_number", "17")];
        assert_eq!(d.detect(&[], &mut sm, "info line").as_deref(), Some("error"));
    }
}
