//! The `logfmt` parser stage: a tolerant key=value decoder with Loki's error positions and
//! messages, and the `logfmt a="key"` expression form.

use super::json::sanitize_label_key;
use super::labels::{Category, LabelsBuilder, DUPLICATE_SUFFIX};

/// The logfmt parser error label value.
pub(crate) const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";

/// A streaming logfmt decoder over one line.
struct Decoder<'a> {
    line: &'a [u8],
    pos: usize,
    key: Option<&'a [u8]>,
    value: Option<std::borrow::Cow<'a, [u8]>>,
    err: Option<String>,
}

impl<'a> Decoder<'a> {
    fn new(line: &'a [u8]) -> Self {
        Decoder { line, pos: 0, key: None, value: None, err: None }
    }

    fn eol(&self) -> bool {
        self.pos >= self.line.len()
    }

    fn syntax_error(&mut self, msg: &str) {
        self.err = Some(format!("logfmt syntax error at pos {} : {msg}", self.pos + 1));
    }

    fn unexpected_byte(&mut self, c: u8) {
        self.err = Some(format!(
            "logfmt syntax error at pos {} : unexpected {}",
            self.pos + 1,
            skald_gocompat::strconv::quote_rune(char::from(c))
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
    fn scan(&mut self) -> bool {
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

fn to_label_value(v: &[u8]) -> std::borrow::Cow<'_, str> {
    super::json::lossy_with_spaces(v)
}

/// `| logfmt [--strict] [--keep-empty]`.
pub(crate) fn parse_logfmt(line: &str, strict: bool, keep_empty: bool, lbs: &mut LabelsBuilder) {
    let mut dec = Decoder::new(line.as_bytes());
    while !dec.eol() {
        if !dec.scan() {
            if strict {
                break;
            }
            continue;
        }
        let Some(raw_key) = dec.key else { continue };
        let lossy = String::from_utf8_lossy(raw_key);
        let mut key = sanitize_label_key(&lossy);
        if key.is_empty() {
            continue;
        }
        if lbs.collides(&key) {
            key.to_mut().push_str(DUPLICATE_SUFFIX);
        }
        if lbs.extracted(&key) {
            continue;
        }
        let val = dec.value.as_deref().unwrap_or(b"");
        if !keep_empty && val.is_empty() {
            continue;
        }
        let v = to_label_value(val);
        lbs.set(Category::Parsed, &key, &v);
    }
    if strict {
        if let Some(e) = dec.err.take() {
            lbs.set_error(LOGFMT_PARSER_ERR, Some(&e));
        }
    }
}

/// `| logfmt a="key", b`: compiled extraction expressions.
#[derive(Debug, Clone)]
pub(crate) struct LogfmtExpressions {
    /// (label name, logfmt key)
    exprs: Vec<(String, String)>,
    strict: bool,
}

impl LogfmtExpressions {
    pub(crate) fn new(exprs: &[(String, String)], strict: bool) -> Result<Self, String> {
        if exprs.is_empty() {
            return Err("no logfmt expression provided".to_string());
        }
        let mut out = Vec::new();
        for (id, expr) in exprs {
            let key = expr.trim();
            let valid = key.bytes().next().is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            if !valid {
                return Err(format!("cannot parse expression [{expr}]: syntax error"));
            }
            if !skald_model::labels::is_valid_label_name(id) {
                return Err(format!("invalid extracted label name '{id}'"));
            }
            // like a map keyed by label name: the last expression for a name wins
            out.retain(|(i, _): &(String, String)| i != id);
            out.push((id.clone(), key.to_string()));
        }
        Ok(LogfmtExpressions { exprs: out, strict })
    }

    pub(crate) fn process(&self, line: &str, lbs: &mut LabelsBuilder) {
        for (id, _) in &self.exprs {
            if !lbs.collides(id) {
                lbs.set(Category::Parsed, id, "");
            }
        }
        let always = |k: &str| self.exprs.iter().any(|(id, _)| id == k);
        let mut dec = Decoder::new(line.as_bytes());
        while !dec.eol() {
            if !dec.scan() {
                if self.strict {
                    break;
                }
                continue;
            }
            let Some(raw_key) = dec.key else { continue };
            let key = sanitize_label_key(&String::from_utf8_lossy(raw_key)).into_owned();
            if key.is_empty() || (!always(&key) && lbs.extracted(&key)) {
                continue;
            }
            let val = match dec.value.as_deref() {
                Some(v) if String::from_utf8_lossy(v).contains('\u{FFFD}') => Vec::new(),
                Some(v) => v.to_vec(),
                None => Vec::new(),
            };
            let mut key = key;
            if let Some((id, _)) = self.exprs.iter().find(|(_, k)| *k == key) {
                key = id.clone();
            }
            if self.exprs.iter().any(|(id, _)| *id == key) {
                if lbs.collides(&key) {
                    key.push_str(DUPLICATE_SUFFIX);
                }
                lbs.set(Category::Parsed, &key, &String::from_utf8_lossy(&val));
            }
        }
        if self.strict {
            if let Some(e) = dec.err.take() {
                lbs.set_error(LOGFMT_PARSER_ERR, Some(&e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::Labels;

    fn builder() -> LabelsBuilder {
        LabelsBuilder::new(Labels::parse(r#"{env="test", format="logfmt", job="worker"}"#).unwrap())
    }

    const WORKER: &str = "level=info msg=\"\x1b[1;36mjob started\x1b[0m\" job_id=job-48307 queue=default took=17.5s size=944B attempt=1";

    #[test]
    fn all_pairs() {
        let mut b = builder();
        parse_logfmt(WORKER, false, false, &mut b);
        assert_eq!(
            b.result().parsed.to_string(),
            r#"{attempt="1", job_id="job-48307", level="info", msg="\x1b[1;36mjob started\x1b[0m", queue="default", size="944B", took="17.5s"}"#
        );
        let mut b = builder();
        parse_logfmt(r#"job=x a= b c="q \"u\"" d=1=2 e"#, false, false, &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{c="q \"u\"", job_extracted="x"}"#);
        let mut b = builder();
        parse_logfmt(r#"a= b e"#, false, true, &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{a="", b="", e=""}"#);
    }

    #[test]
    fn strict_errors() {
        let mut b = builder();
        parse_logfmt(r#"a=1 b=2=3 c=4"#, true, false, &mut b);
        assert_eq!(b.err(), LOGFMT_PARSER_ERR);
        assert_eq!(b.err_details(), "logfmt syntax error at pos 8 : unexpected '='");
        assert_eq!(b.get("a"), Some("1"));
        assert_eq!(b.get("c"), None);
        let mut b = builder();
        parse_logfmt(r#"a="x"#, true, false, &mut b);
        assert_eq!(b.err_details(), "logfmt syntax error at pos 5 : unterminated quoted value");
        // non-strict: no error, later pairs still read
        let mut b = builder();
        parse_logfmt(r#"a=1 b=2=3 c=4"#, false, false, &mut b);
        assert_eq!(b.err(), "");
        assert_eq!(b.get("c"), Some("4"));
    }

    #[test]
    fn expressions() {
        let ex = LogfmtExpressions::new(
            &[
                ("lvl".into(), "level".into()),
                ("queue".into(), "queue".into()),
                ("none".into(), "nope".into()),
            ],
            false,
        )
        .unwrap();
        let mut b = builder();
        ex.process(WORKER, &mut b);
        assert_eq!(b.result().parsed.to_string(), r#"{lvl="info", none="", queue="default"}"#);
        assert!(LogfmtExpressions::new(&[("a".into(), "a.b".into())], false).is_err());
    }
}
