//! A strict pull cursor over JSON bytes, as Loki's push decoding behaves: the body is read
//! with json-iterator (github.com/json-iterator/go, MIT; `ReadObjectCB`, `ReadArrayCB`,
//! `Skip`), whose error context [`error_context`] reproduces, while the stream and entry
//! values inside it are Loki `UnmarshalJSON` methods built on buger/jsonparser, so the
//! scanning errors ([`JsonError::message`]) carry jsonparser's texts.
//!
//! Quirks kept: byte offsets are exposed (`Cursor::pos`) for error context; scalars are
//! validated only by their alphabet (`1-2e+` is a number); nesting beyond 512 levels is a
//! syntax error instead of a stack overflow; [`unescape`] turns a lone surrogate into U+FFFD
//! and invalid UTF-8 into U+FFFD.
//!
//! Users: the distributor's JSON push decoder and its `detected_level` JSON walk, and the
//! Elasticsearch bulk rewriter.

use std::borrow::Cow;

/// The kind of a JSON value, judged by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Number,
    Object,
    Array,
    Bool,
    Null,
}

/// A scanning error; the texts are the ones of `buger/jsonparser`, which Loki uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    Eof,
    MalformedJson,
    MalformedString,
    MalformedArray,
    MalformedObject,
    MalformedValue,
    Overflow,
    BadEscape,
}

impl JsonError {
    pub fn message(self) -> &'static str {
        match self {
            JsonError::Eof => "EOF",
            JsonError::MalformedJson => "Malformed JSON error",
            JsonError::MalformedString => "Value is string, but can't find closing '\"' symbol",
            JsonError::MalformedArray => "Value is array, but can't find closing ']' symbol",
            JsonError::MalformedObject => {
                "Value looks like object, but can't find closing '}' symbol"
            }
            JsonError::MalformedValue => {
                "Value looks like Number/Boolean/None, but can't find its end: ',' or '}' symbol"
            }
            JsonError::Overflow => "Value is number, but overflowed while parsing",
            JsonError::BadEscape => "Encountered an invalid escape sequence in a string",
        }
    }
}

/// Nesting deeper than this is rejected, so that hostile bodies cannot exhaust the stack.
const MAX_NESTING: usize = 512;

/// A cursor over JSON bytes.
pub struct Cursor<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    pub fn skip_ws(&mut self) {
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.pos).copied()
    }

    /// Consumes `c` (after whitespace) and returns whether it was there.
    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The kind of the next value.
    pub fn kind(&mut self) -> Result<Kind, JsonError> {
        match self.peek() {
            None => Err(JsonError::Eof),
            Some(b'"') => Ok(Kind::String),
            Some(b'{') => Ok(Kind::Object),
            Some(b'[') => Ok(Kind::Array),
            Some(b't' | b'f') => Ok(Kind::Bool),
            Some(b'n') => Ok(Kind::Null),
            Some(b'-' | b'0'..=b'9') => Ok(Kind::Number),
            Some(_) => Err(JsonError::MalformedJson),
        }
    }

    /// Consumes a string and returns the byte range of its raw (still escaped) contents.
    pub fn raw_string(&mut self) -> Result<(usize, usize), JsonError> {
        if !self.eat(b'"') {
            return Err(JsonError::MalformedString);
        }
        let start = self.pos;
        let mut i = start;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'"' => {
                    self.pos = i + 1;
                    return Ok((start, i));
                }
                _ => i += 1,
            }
        }
        Err(JsonError::MalformedString)
    }

    /// Consumes a string and returns its unescaped value.
    pub fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let (s, e) = self.raw_string()?;
        unescape(&self.b[s..e])
    }

    /// Consumes a string and returns its unescaped bytes, invalid UTF-8 kept as is
    /// ([`unescape_bytes`]).
    pub fn string_bytes(&mut self) -> Result<Cow<'a, [u8]>, JsonError> {
        let (s, e) = self.raw_string()?;
        unescape_bytes(&self.b[s..e])
    }

    /// Consumes a scalar (number, bool, null) and returns its raw bytes.
    pub fn scalar(&mut self) -> Result<&'a [u8], JsonError> {
        self.skip_ws();
        let start = self.pos;
        while let Some(c) = self.b.get(self.pos) {
            if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(JsonError::MalformedValue);
        }
        let raw = &self.b[start..self.pos];
        let ok = match raw[0] {
            b't' => raw == b"true",
            b'f' => raw == b"false",
            b'n' => raw == b"null",
            _ => raw.iter().all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')),
        };
        if ok {
            Ok(raw)
        } else {
            Err(JsonError::MalformedValue)
        }
    }

    /// Skips one value of any kind and returns its kind and byte range.
    pub fn skip_value(&mut self) -> Result<(Kind, usize, usize), JsonError> {
        self.skip_value_at(0)
    }

    fn skip_value_at(&mut self, depth: usize) -> Result<(Kind, usize, usize), JsonError> {
        if depth > MAX_NESTING {
            return Err(JsonError::MalformedJson);
        }
        let kind = self.kind()?;
        let start = self.pos;
        match kind {
            Kind::String => {
                self.raw_string()?;
            }
            Kind::Number | Kind::Bool | Kind::Null => {
                self.scalar()?;
            }
            Kind::Object => {
                self.pos += 1;
                if !self.eat(b'}') {
                    loop {
                        self.raw_string().map_err(|_| JsonError::MalformedObject)?;
                        if !self.eat(b':') {
                            return Err(JsonError::MalformedObject);
                        }
                        self.skip_value_at(depth + 1)?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b'}') {
                            break;
                        }
                        return Err(JsonError::MalformedObject);
                    }
                }
            }
            Kind::Array => {
                self.pos += 1;
                if !self.eat(b']') {
                    loop {
                        self.skip_value_at(depth + 1)?;
                        if self.eat(b',') {
                            continue;
                        }
                        if self.eat(b']') {
                            break;
                        }
                        return Err(JsonError::MalformedArray);
                    }
                }
            }
        }
        Ok((kind, start, self.pos))
    }

    /// Starts an object: consumes `{`. Returns false for an empty object (also consumed).
    pub fn begin_object(&mut self) -> Result<bool, JsonError> {
        if !self.eat(b'{') {
            return Err(JsonError::MalformedObject);
        }
        Ok(!self.eat(b'}'))
    }

    /// Reads the next member key and the colon.
    pub fn member_key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let k = self.string().map_err(|e| match e {
            JsonError::BadEscape => e,
            _ => JsonError::MalformedObject,
        })?;
        if !self.eat(b':') {
            return Err(JsonError::MalformedObject);
        }
        Ok(k)
    }

    /// After a member value: returns true when another member follows, false at `}`.
    pub fn next_member(&mut self) -> Result<bool, JsonError> {
        if self.eat(b',') {
            Ok(true)
        } else if self.eat(b'}') {
            Ok(false)
        } else {
            Err(JsonError::MalformedObject)
        }
    }

    /// Starts an array: consumes `[`. Returns false for an empty array (also consumed).
    pub fn begin_array(&mut self) -> Result<bool, JsonError> {
        if !self.eat(b'[') {
            return Err(JsonError::MalformedArray);
        }
        Ok(!self.eat(b']'))
    }

    /// After an element: returns true when another element follows, false at `]`.
    pub fn next_element(&mut self) -> Result<bool, JsonError> {
        if self.eat(b',') {
            Ok(true)
        } else if self.eat(b']') {
            Ok(false)
        } else {
            Err(JsonError::MalformedArray)
        }
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let s = std::str::from_utf8(&b[..4]).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Unescapes the raw contents of a JSON string as text, each byte of an invalid UTF-8
/// sequence one U+FFFD, as Go reads the string json-iterator returns ([`crate::utf8::lossy`]).
pub fn unescape(raw: &[u8]) -> Result<Cow<'_, str>, JsonError> {
    Ok(match unescape_bytes(raw)? {
        Cow::Borrowed(b) => crate::utf8::lossy(b),
        Cow::Owned(b) => Cow::Owned(match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => crate::utf8::lossy(e.as_bytes()).into_owned(),
        }),
    })
}

/// Unescapes the raw contents of a JSON string into bytes, as json-iterator's `ReadString`
/// does: bytes that are not UTF-8 are kept as they are (a Go string holds any bytes).
pub fn unescape_bytes(raw: &[u8]) -> Result<Cow<'_, [u8]>, JsonError> {
    if !raw.contains(&b'\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = *raw.get(i + 1).ok_or(JsonError::BadEscape)?;
        i += 2;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(JsonError::BadEscape),
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let hi = hex4(&raw[i..]).ok_or(JsonError::BadEscape)?;
        i += 4;
        let ch = if (0xD800..0xDC00).contains(&hi) {
            // a surrogate pair, when the low half follows
            if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                match hex4(&raw[i + 2..]) {
                    Some(lo) if (0xDC00..0xE000).contains(&lo) => {
                        i += 6;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                    }
                    _ => None,
                }
            } else {
                None
            }
        } else {
            char::from_u32(hi)
        };
        let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    Ok(Cow::Owned(out))
}

/// Formats an error the way json-iterator reports one at byte `head` of `buf`:
/// `{op}: {msg}, error found in #N byte of ...|peek|..., bigger context ...|context|...`.
pub fn error_context(op: &str, msg: &str, buf: &[u8], head: usize) -> String {
    let head = head.min(buf.len());
    let peek_start = head.saturating_sub(10);
    let peek_end = (head + 10).min(buf.len());
    let ctx_start = head.saturating_sub(50);
    let ctx_end = (head + 50).min(buf.len());
    format!(
        "{op}: {msg}, error found in #{} byte of ...|{}|..., bigger context ...|{}|...",
        head - peek_start,
        String::from_utf8_lossy(&buf[peek_start..peek_end]),
        String::from_utf8_lossy(&buf[ctx_start..ctx_end]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_values() {
        let mut c = Cursor::new(br#" {"a": [1, "x\n", {"b": null}], "c": true} "#);
        let (k, s, e) = c.skip_value().unwrap();
        assert_eq!(k, Kind::Object);
        assert_eq!((s, e), (1, 42));
        assert_eq!(unescape(br"a\u00e9\ud83d\ude00\t").unwrap(), "aé😀\t");
        assert_eq!(unescape(br"\x").unwrap_err(), JsonError::BadEscape);
        assert!(Cursor::new(b"[1, 2").skip_value().is_err());
        assert!(Cursor::new(b"{\"a\" 1}").skip_value().is_err());
        let deep = "[".repeat(10_000);
        assert!(Cursor::new(deep.as_bytes()).skip_value().is_err());
    }

    #[test]
    fn error_context_is_jsoniters() {
        assert_eq!(
            error_context("op", "msg", b"0123456789abcdefghij", 12),
            "op: msg, error found in #10 byte of ...|23456789abcdefghij|..., \
             bigger context ...|0123456789abcdefghij|..."
        );
        assert_eq!(
            error_context("op", "m", b"", 9),
            "op: m, error found in #0 byte of ...||..., bigger context ...||..."
        );
    }
}
