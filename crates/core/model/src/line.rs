//! [`Line`]: a log line's bytes, exactly as pushed.

use std::borrow::Cow;
use std::fmt;

/// A log line, kept as the bytes that were pushed. Loki keeps a line's bytes even when they
/// are not UTF-8 (a protobuf push carries any bytes in its Go `string`); its byte counts
/// (`bytes_over_time`, `len`, logfmt error positions) count those bytes, and only its JSON
/// answers show U+FFFD, one per invalid byte. [`Line::to_str_lossy`] gives that text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Line(Vec<u8>);

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line(Vec::new())
    }

    /// The line's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, consuming the line.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the line has no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The line as text when it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The line as text, Go style: borrowed when it is UTF-8, else every byte of an invalid
    /// sequence becomes one U+FFFD ([`skald_gocompat::utf8::lossy`]).
    pub fn to_str_lossy(&self) -> Cow<'_, str> {
        skald_gocompat::utf8::lossy(&self.0)
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

impl fmt::Display for Line {
    /// Writes the Go-style lossy text ([`Line::to_str_lossy`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl std::ops::Deref for Line {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Line {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Line {
    fn from(b: Vec<u8>) -> Self {
        Line(b)
    }
}

impl From<&[u8]> for Line {
    fn from(b: &[u8]) -> Self {
        Line(b.to_vec())
    }
}

impl From<String> for Line {
    fn from(s: String) -> Self {
        Line(s.into_bytes())
    }
}

impl From<&str> for Line {
    fn from(s: &str) -> Self {
        Line(s.as_bytes().to_vec())
    }
}

impl From<&&str> for Line {
    fn from(s: &&str) -> Self {
        Line(s.as_bytes().to_vec())
    }
}

impl From<Cow<'_, str>> for Line {
    fn from(s: Cow<'_, str>) -> Self {
        Line(s.into_owned().into_bytes())
    }
}

impl From<Line> for Vec<u8> {
    fn from(l: Line) -> Self {
        l.0
    }
}

impl PartialEq<str> for Line {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<String> for Line {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for Line {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

impl PartialEq<&[u8]> for Line {
    fn eq(&self, other: &&[u8]) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_invalid_bytes_and_shows_them_go_style() {
        let l = Line::from(b"caf\xe9 ok".to_vec());
        assert_eq!(l.len(), 7);
        assert_eq!(l.as_str(), None);
        assert_eq!(l.to_str_lossy(), "caf\u{FFFD} ok");
        assert_eq!(l.to_string(), "caf\u{FFFD} ok");
        assert_eq!(format!("{l:?}"), "b\"caf\\xe9 ok\"");
        assert_eq!(Line::from("x"), "x");
    }
}
