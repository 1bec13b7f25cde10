//! Go's view of bytes that are not UTF-8: a Go string holds any bytes, and the places that
//! need text (`encoding/json`, `range` over a string, `utf8.DecodeRune`) read each byte of an
//! invalid sequence as one U+FFFD. Rust's `String::from_utf8_lossy` differs: it writes one
//! U+FFFD per maximal invalid subpart (`"\xe2\x82"` is one U+FFFD there, two in Go).

use std::borrow::Cow;

/// Returns `b` as text the way Go's `encoding/json` writes it: valid UTF-8 unchanged
/// (borrowed), every byte of an invalid sequence replaced by one U+FFFD.
pub fn lossy(b: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(lossy_owned(b)),
    }
}

fn lossy_owned(mut b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len() + 8);
    loop {
        match std::str::from_utf8(b) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // the prefix is valid by construction
                out.push_str(std::str::from_utf8(&b[..good]).unwrap_or_default());
                let bad = e.error_len().unwrap_or(b.len() - good);
                for _ in 0..bad {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
                b = &b[good + bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_borrowed() {
        assert!(matches!(lossy("héllo".as_bytes()), Cow::Borrowed("héllo")));
    }

    #[test]
    fn each_invalid_byte_is_one_replacement_character() {
        // Go: json.Marshal(string([]byte{'a', 0xe2, 0x82, 'b', 0xff})) == "a\ufffd\ufffdb\ufffd"
        assert_eq!(lossy(b"a\xe2\x82b\xff"), "a\u{FFFD}\u{FFFD}b\u{FFFD}");
        assert_eq!(String::from_utf8_lossy(b"a\xe2\x82b\xff"), "a\u{FFFD}b\u{FFFD}");
        // a truncated sequence at the end
        assert_eq!(lossy(b"x\xf0\x9f\x98"), "x\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(lossy(b"\xe9 \xff \xfe"), "\u{FFFD} \u{FFFD} \u{FFFD}");
    }
}
