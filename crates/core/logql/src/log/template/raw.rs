//! Lines that are not UTF-8 in templates. A Go template's `__line__` is a Go string: it holds
//! the line's bytes, `len` counts them and functions that copy text (`trim`, `printf`,
//! `regexReplaceAll` outside its matches) copy them. Templates here work on Rust strings, so
//! a line with invalid bytes enters as text where each byte of an invalid sequence is one
//! character of the last 128 code points of plane 16 (private use, `U+10FF80 + (b - 0x80)`),
//! counted as one byte by `len` and turned back into its byte on output. Regexes and other
//! text functions see a private-use character where Go sees U+FFFD; both are one rune that
//! no ASCII class matches. A line that also holds genuine characters of that range is
//! ambiguous: it is rendered from Go's lossy text instead (U+FFFD per invalid byte).

const BASE: u32 = 0x10_FF80;

fn byte_char(b: u8) -> char {
    // 0x80..=0xFF map into U+10FF80..=U+10FFFF, all valid scalar values
    char::from_u32(BASE + u32::from(b - 0x80)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

fn char_byte(c: char) -> Option<u8> {
    let c = u32::from(c);
    (c >= BASE).then(|| (c - BASE + 0x80) as u8)
}

/// The text templates see for `line` when it is not UTF-8 (`None` when it is, or when it is
/// ambiguous, see the module doc).
pub(super) fn encode(line: &[u8]) -> Option<String> {
    if std::str::from_utf8(line).is_ok() {
        return None;
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = line;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                if s.chars().any(|c| char_byte(c).is_some()) {
                    return None;
                }
                out.push_str(s);
                return Some(out);
            }
            Err(e) => {
                let good = e.valid_up_to();
                let s = std::str::from_utf8(&rest[..good]).unwrap_or_default();
                if s.chars().any(|c| char_byte(c).is_some()) {
                    return None;
                }
                out.push_str(s);
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for &b in &rest[good..good + bad] {
                    out.push(byte_char(b));
                }
                rest = &rest[good + bad..];
            }
        }
    }
}

/// The bytes an output text stands for (the inverse of [`encode`]).
pub(super) fn decode(s: String) -> Vec<u8> {
    if !s.chars().any(|c| char_byte(c).is_some()) {
        return s.into_bytes();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match char_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out
}

/// Go's `len` of a string holding encoded bytes: each encoded byte counts one.
pub(super) fn byte_len(s: &str) -> usize {
    s.len() - 3 * s.chars().filter(|&c| char_byte(c).is_some()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_invalid_bytes() {
        let line = b"caf\xe9 \xff\xfe ok \xe2\x82";
        let text = encode(line).unwrap();
        assert_eq!(byte_len(&text), line.len());
        assert_eq!(decode(text), line);
        assert_eq!(encode(b"valid"), None);
        // genuine characters of the range make the line ambiguous
        assert_eq!(encode(&[b'\xff', 0xf4, 0x8f, 0xbe, 0xaa]), None);
    }
}
