//! The logfmt decoder of Loki's `| logfmt` stage: go-logfmt's `Decoder`
//! (github.com/go-logfmt/logfmt, MIT) as Loki forked it into `pkg/logql/log/logfmt`.
//!
//! Quirks kept: a syntax error is recorded (`logfmt syntax error at pos N : unexpected '='`,
//! positions 1-based, bytes quoted as Go quotes a rune) and the decoder skips to the next
//! blank and goes on, so the caller decides whether to stop (`--strict`) or keep the pairs
//! after it; keys holding U+FFFD (or invalid UTF-8) are `invalid key`; quoted values are
//! unquoted with JSON escapes plus `\'`, lone surrogates become U+FFFD, and a `"` left inside
//! is `invalid quoted value`; an unterminated quote is `unterminated quoted value`.

/// A streaming logfmt decoder over one line.
pub struct Decoder<'a> {
    line: &'a [u8],
    pos: usize,
    /// The key of the pair [`Decoder::scan`] read (`None` when it had none).
    pub key: Option<&'a [u8]>,
    /// The value of that pair, unquoted (`None` for a bare key or an empty value).
    pub value: Option<std::borrow::Cow<'a, [u8]>>,
    /// The last syntax error, as go-logfmt words it.
    pub err: Option<String>,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `line`.
    pub fn new(line: &'a [u8]) -> Self {
        Decoder { line, pos: 0, key: None, value: None, err: None }
    }

    /// True once the whole line is consumed.
    pub fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn syntax_error(&mut self, msg: &str) {
        self.err = Some(format!("logfmt syntax error at pos {} : {msg}", self.pos + 1));
    }

    fn unexpected_byte(&mut self, c: u8) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : unexpected {}",
            self.pos + 1,
            crate::strconv::quote_rune(char::from(c))
        ));
    }

    fn invalid_key(key: &[u8]) -> bool {
        // Go's decoder rejects keys holding U+FFFD (also what invalid UTF-8 decodes to)
        String::from_utf8_lossy(key).contains('\u{FFFD}')
    }

    fn skip_value(&mut self) -> bool {
        let line = self.line;
        match line[self.pos..].iter().position(|&c| c <= b' ') {
            Some(p) => self.pos += p,
            None => self.pos = line.len(),
        }
        false
    }

    /// Scans the next key/value pair. False when the pair is invalid (or only blanks remain).
    pub fn scan(&mut self) -> bool {
        self.key = None;
        self.value = None;
        let line = self.line;
        match line[self.pos..].iter().position(|&c| c > b' ') {
            Some(p) => self.pos += p,
            None => {
                self.pos = line.len();
                return false;
            }
        }
        // key
        let start = self.pos;
        let mut multibyte = false;
        let mut i = self.pos;
        loop {
            if i >= line.len() {
                self.pos = line.len();
                if self.pos > start {
                    let key = &line[start..self.pos];
                    if multibyte && Self::invalid_key(key) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                    self.key = Some(key);
                }
                return true;
            }
            let c = line[i];
            if c == b'=' {
                self.pos = i;
                if self.pos > start {
                    let key = &line[start..self.pos];
                    if multibyte && Self::invalid_key(key) {
                        self.syntax_error("invalid key");
                        return self.skip_value();
                    }
                    self.key = Some(key);
                }
                if self.key.is_none() {
                    self.unexpected_byte(c);
                    return self.skip_value();
                }
                break;
            } else if c == b'"' {
                self.pos = i;
                self.unexpected_byte(c);
                return self.skip_value();
            } else if c <= b' ' {
                self.pos = i;
                if self.pos > start {
                    let key = &line[start..self.pos];
                    if multibyte && Self::invalid_key(key) {
                        self.syntax_error("invalid key");
                        return false;
                    }
                    self.key = Some(key);
                }
                return true;
            } else if c >= 0x80 {
                multibyte = true;
            }
            i += 1;
        }
        // equal sign
        self.pos += 1;
        if self.pos >= line.len() {
            return true;
        }
        let c = line[self.pos];
        if c <= b' ' {
            return true;
        }
        if c == b'"' {
            return self.quoted_value();
        }
        let start = self.pos;
        let mut i = self.pos;
        while i < line.len() {
            let c = line[i];
            if c == b'=' || c == b'"' {
                self.pos = i;
                self.unexpected_byte(c);
                return self.skip_value();
            }
            if c <= b' ' {
                self.pos = i;
                if self.pos > start {
                    self.value = Some(std::borrow::Cow::Borrowed(&line[start..self.pos]));
                }
                return true;
            }
            i += 1;
        }
        self.pos = line.len();
        if self.pos > start {
            self.value = Some(std::borrow::Cow::Borrowed(&line[start..self.pos]));
        }
        true
    }

    fn quoted_value(&mut self) -> bool {
        let line = self.line;
        let start = self.pos;
        let mut has_esc = false;
        let mut from = self.pos + 1;
        while let Some(p) = memchr::memchr2(b'"', b'\\', &line[from..]) {
            let at = from + p;
            if line[at] == b'\\' {
                has_esc = true;
                from = at + 2;
                if from > line.len() {
                    break;
                }
                continue;
            }
            self.pos = at + 1;
            if has_esc {
                match unquote(&line[start..self.pos]) {
                    Some(v) => self.value = Some(std::borrow::Cow::Owned(v)),
                    None => {
                        self.syntax_error("invalid quoted value");
                        return false;
                    }
                }
            } else {
                let s = start + 1;
                let e = self.pos - 1;
                if e > s {
                    self.value = Some(std::borrow::Cow::Borrowed(&line[s..e]));
                }
            }
            return true;
        }
        self.pos = line.len();
        self.syntax_error("unterminated quoted value");
        false
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 6 || b[0] != b'\\' || b[1] != b'u' {
        return None;
    }
    let s = std::str::from_utf8(&b[2..6]).ok()?;
    u32::from_str_radix(s, 16).ok()
}

/// Unquotes a JSON-style quoted value (with its quotes).
fn unquote(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() < 2 || s[0] != b'"' || s[s.len() - 1] != b'"' {
        return None;
    }
    let s = &s[1..s.len() - 1];
    let mut out = Vec::with_capacity(s.len());
    let mut r = 0;
    while r < s.len() {
        let c = s[r];
        if c == b'\\' {
            r += 1;
            let e = *s.get(r)?;
            let simple = match e {
                b'"' | b'\\' | b'/' | b'\'' => Some(e),
                b'b' => Some(8),
                b'f' => Some(12),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'u' => None,
                _ => return None,
            };
            if let Some(x) = simple {
                out.push(x);
                r += 1;
                continue;
            }
            r -= 1;
            let rr = hex4(&s[r..])?;
            r += 6;
            let mut ch = char::from_u32(rr);
            if (0xD800..0xE000).contains(&rr) {
                ch = None;
                if let Some(rr1) = hex4(&s[r..]) {
                    if (0xD800..0xDC00).contains(&rr) && (0xDC00..0xE000).contains(&rr1) {
                        ch = char::from_u32(((rr - 0xD800) << 10 | (rr1 - 0xDC00)) + 0x10000);
                        r += 6;
                    }
                }
            }
            let ch = ch.unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        } else if c == b'"' {
            return None;
        } else {
            out.push(c);
            r += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(line: &str) -> (Vec<(String, String)>, Option<String>) {
        let mut dec = Decoder::new(line.as_bytes());
        let mut out = Vec::new();
        while !dec.eol() {
            if dec.scan() {
                if let Some(k) = dec.key {
                    let v = dec.value.as_deref().unwrap_or(b"");
                    out.push((
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    ));
                }
            }
        }
        (out, dec.err)
    }

    #[test]
    fn decodes_and_goes_on_after_errors() {
        assert_eq!(
            pairs(r#"a=1 b="x \"y\" \u00e9" c d="#),
            (
                vec![
                    ("a".into(), "1".into()),
                    ("b".into(), "x \"y\" é".into()),
                    ("c".into(), "".into()),
                    ("d".into(), "".into()),
                ],
                None
            )
        );
        let (got, err) = pairs("a=1 =x b=2 c=d=e f=\"open");
        assert_eq!(got, vec![("a".to_string(), "1".to_string()), ("b".into(), "2".into())]);
        assert_eq!(
            err.as_deref(),
            Some("logfmt syntax error at pos 25 : unterminated quoted value")
        );
        assert_eq!(pairs("=x").1.as_deref(), Some("logfmt syntax error at pos 1 : unexpected '='"));
        assert_eq!(
            pairs(r#"a="\q""#).1.as_deref(),
            Some("logfmt syntax error at pos 7 : invalid quoted value")
        );
    }
}
