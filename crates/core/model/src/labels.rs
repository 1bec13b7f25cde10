use std::fmt;

/// One label name/value pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Label {
    /// Label name.
    pub name: String,
    /// Label value.
    pub value: String,
}

impl Label {
    /// Builds a label from anything string-like.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label { name: name.into(), value: value.into() }
    }
}

/// A label set sorted by name, with unique names. Printing gives Loki's canonical form
/// `{a="1", b="2"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Labels(Vec<Label>);

/// Why a label-set string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LabelsParseError {
    /// Human-readable reason, in Loki's wording where it has one.
    pub message: String,
}

impl Labels {
    /// Builds a label set from pairs, sorting by name. When a name repeats, the last value wins.
    pub fn from_pairs<I, N, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (N, V)>,
        N: Into<String>,
        V: Into<String>,
    {
        let mut v: Vec<Label> = pairs.into_iter().map(|(n, v)| Label::new(n, v)).collect();
        Self::normalize(&mut v);
        Labels(v)
    }

    /// Builds a label set from labels, sorting by name. When a name repeats, the last wins.
    pub fn from_vec(mut v: Vec<Label>) -> Self {
        Self::normalize(&mut v);
        Labels(v)
    }

    fn normalize(v: &mut Vec<Label>) {
        if v.windows(2).all(|w| w[0].name < w[1].name) {
            return;
        }
        // stable sort keeps push order among equal names; keep the last one of each name
        v.sort_by(|a, b| a.name.cmp(&b.name));
        if v.windows(2).all(|w| w[0].name != w[1].name) {
            return;
        }
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v.drain(..) {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        *v = out;
    }

    /// Returns the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// Returns the labels as a slice, in name order.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Consumes the set and returns its labels in name order.
    pub fn into_vec(self) -> Vec<Label> {
        self.0
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].value.as_str())
    }

    /// Sets `name` to `value`, replacing an existing value.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => self.0[i].value = value.to_string(),
            Err(i) => self.0.insert(i, Label::new(name, value)),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.0.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => Some(self.0.remove(i).value),
            Err(_) => None,
        }
    }

    /// A stable 64-bit hash of the set (xxh3 over names and values with separators).
    pub fn hash(&self) -> u64 {
        let mut buf = Vec::with_capacity(64);
        for l in &self.0 {
            buf.extend_from_slice(l.name.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(l.value.as_bytes());
            buf.push(0xff);
        }
        xxhash_rust::xxh3::xxh3_64(&buf)
    }

    /// Prometheus' `labels.Hash()`: xxHash64 over each name and value followed by `0xff`.
    /// Loki's ingesters fingerprint streams with it (and offset their chunk synchronisation
    /// points by it), so Skald uses it where it must cut chunks where Loki would.
    pub fn prometheus_hash(&self) -> u64 {
        let mut buf = Vec::with_capacity(64);
        for l in &self.0 {
            buf.extend_from_slice(l.name.as_bytes());
            buf.push(0xff);
            buf.extend_from_slice(l.value.as_bytes());
            buf.push(0xff);
        }
        xxhash_rust::xxh64::xxh64(&buf, 0)
    }

    /// Parses Prometheus/Loki label-set syntax: `{a="b", c="d"}`. Values are Go-style
    /// double-quoted strings (backtick raw strings are accepted too). Names must be valid
    /// Prometheus label names. An empty set `{}` is allowed.
    pub fn parse(s: &str) -> Result<Labels, LabelsParseError> {
        let err = |m: &str| LabelsParseError { message: m.to_string() };
        let b = s.trim().as_bytes();
        let mut i = 0;
        if b.first() != Some(&b'{') {
            return Err(err("expected '{' at the start of the label set"));
        }
        i += 1;
        let mut out: Vec<Label> = Vec::new();
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && (b[*i] as char).is_ascii_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            if start == i {
                return Err(err("expected a label name"));
            }
            let name = &s.trim()[start..i];
            if !is_valid_label_name(name) {
                return Err(LabelsParseError { message: format!("invalid label name `{name}`") });
            }
            skip_ws(&mut i);
            if i >= b.len() || b[i] != b'=' {
                return Err(err("expected '=' after a label name"));
            }
            i += 1;
            skip_ws(&mut i);
            let (value, next) = unquote_at(&s.trim()[i..]).map_err(|m| err(&m.to_string()))?;
            i += next;
            out.push(Label::new(name, value));
            skip_ws(&mut i);
            if i < b.len() && b[i] == b',' {
                i += 1;
                continue;
            }
            skip_ws(&mut i);
            if i < b.len() && b[i] == b'}' {
                i += 1;
                break;
            }
            return Err(err("expected ',' or '}' in the label set"));
        }
        skip_ws(&mut i);
        if i != b.len() {
            return Err(err("unexpected characters after the label set"));
        }
        let mut names: Vec<&str> = out.iter().map(|l| l.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(LabelsParseError { message: format!("duplicate label name `{}`", w[0]) });
        }
        Ok(Labels::from_vec(out))
    }
}

impl fmt::Display for Labels {
    /// Writes `{a="1", b="2"}` with Go `strconv.Quote` escaping, as Loki prints label sets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&l.name)?;
            f.write_str("=")?;
            f.write_str(&go_quote(&l.value))?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// True when `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.bytes();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Quotes `s` like Go's `strconv.Quote` for ASCII, leaving non-ASCII runes as they are
/// (`skald_gocompat::strconv::quote_lenient`; `skald_gocompat::strconv::quote` is the exact one).
pub use skald_gocompat::strconv::quote_lenient as go_quote;

/// Why [`unquote_at`] could not read a Go string literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnquoteError {
    /// A backtick string without its closing backtick.
    #[error("unterminated raw string")]
    UnterminatedRaw,
    /// A double-quoted string without its closing quote.
    #[error("unterminated string")]
    Unterminated,
    /// A raw newline inside a double-quoted string.
    #[error("newline in string")]
    Newline,
    /// A backslash escape Go does not know, or a bad code point.
    #[error("invalid escape")]
    InvalidEscape,
    /// The input does not start with `"` or a backtick.
    #[error("expected a quoted string")]
    NotQuoted,
}

/// Reads one Go string literal (double-quoted with escapes, or backtick raw) at the start of
/// `s`. Returns the unescaped value and the number of bytes consumed.
pub fn unquote_at(s: &str) -> Result<(String, usize), UnquoteError> {
    let b = s.as_bytes();
    match b.first() {
        Some(b'`') => match s[1..].find('`') {
            Some(end) => Ok((s[1..1 + end].to_string(), end + 2)),
            None => Err(UnquoteError::UnterminatedRaw),
        },
        Some(b'"') => {
            let mut out = String::new();
            let mut chars = s[1..].char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => return Ok((out, i + 2)),
                    '\\' => {
                        let Some((_, e)) = chars.next() else { break };
                        match e {
                            'n' => out.push('\n'),
                            't' => out.push('\t'),
                            'r' => out.push('\r'),
                            'a' => out.push('\u{7}'),
                            'b' => out.push('\u{8}'),
                            'f' => out.push('\u{c}'),
                            'v' => out.push('\u{b}'),
                            '\\' => out.push('\\'),
                            '"' => out.push('"'),
                            '\'' => out.push('\''),
                            'x' | 'u' | 'U' => {
                                let n = match e {
                                    'x' => 2,
                                    'u' => 4,
                                    _ => 8,
                                };
                                let mut hex = String::new();
                                for _ in 0..n {
                                    match chars.next() {
                                        Some((_, h)) => hex.push(h),
                                        None => return Err(UnquoteError::InvalidEscape),
                                    }
                                }
                                let v = u32::from_str_radix(&hex, 16)
                                    .map_err(|_| UnquoteError::InvalidEscape)?;
                                if e == 'x' {
                                    // Go \x is a byte; treat values < 0x80 as chars
                                    out.push(char::from_u32(v).ok_or(UnquoteError::InvalidEscape)?);
                                } else {
                                    out.push(char::from_u32(v).ok_or(UnquoteError::InvalidEscape)?);
                                }
                            }
                            '0'..='7' => {
                                let mut oct = String::from(e);
                                for _ in 0..2 {
                                    match chars.next() {
                                        Some((_, h)) => oct.push(h),
                                        None => return Err(UnquoteError::InvalidEscape),
                                    }
                                }
                                let v = u32::from_str_radix(&oct, 8)
                                    .map_err(|_| UnquoteError::InvalidEscape)?;
                                out.push(char::from_u32(v).ok_or(UnquoteError::InvalidEscape)?);
                            }
                            _ => return Err(UnquoteError::InvalidEscape),
                        }
                    }
                    '\n' => return Err(UnquoteError::Newline),
                    c => out.push(c),
                }
            }
            Err(UnquoteError::Unterminated)
        }
        _ => Err(UnquoteError::NotQuoted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_hash_is_xxhash64_of_the_label_bytes() {
        let l =
            Labels::parse(r#"{env="test", format="json", job="web", service_name="web"}"#).unwrap();
        let raw = b"env\xfftest\xffformat\xffjson\xffjob\xffweb\xffservice_name\xffweb\xff";
        assert_eq!(l.prometheus_hash(), xxhash_rust::xxh64::xxh64(raw, 0));
        // the fingerprint that reproduces Loki's chunk cuts of web in the reference recording
        assert_eq!(l.prometheus_hash(), 18_189_115_945_074_186_073);
        assert_ne!(l.prometheus_hash(), l.hash());
    }

    #[test]
    fn parse_and_print() {
        let l = Labels::parse(r#"{job="web", env="te\"st"}"#).unwrap();
        assert_eq!(l.get("job"), Some("web"));
        assert_eq!(l.to_string(), r#"{env="te\"st", job="web"}"#);
        assert_eq!(Labels::parse(&l.to_string()).unwrap(), l);
        assert!(Labels::parse("{a=\"b\",a=\"c\"}").is_err());
        assert!(Labels::parse("{1a=\"b\"}").is_err());
        assert!(Labels::parse("{}").unwrap().is_empty());
    }

    proptest::proptest! {
        /// Printing a label set and parsing it back gives the same set, for any valid names
        /// and any values (quotes, backslashes, control characters, unicode).
        #[test]
        fn parse_print_identity(
            pairs in proptest::collection::vec(
                ("[a-zA-Z_][a-zA-Z0-9_]{0,12}", proptest::string::string_regex("(?s).{0,24}").unwrap()),
                0..8,
            )
        ) {
            let labels = Labels::from_pairs(pairs);
            let printed = labels.to_string();
            let parsed = Labels::parse(&printed).unwrap();
            proptest::prop_assert_eq!(parsed, labels);
        }

        /// Parsing never panics on arbitrary input.
        #[test]
        fn parse_never_panics(s in proptest::string::string_regex("(?s).{0,64}").unwrap()) {
            let _ = Labels::parse(&s);
        }
    }
}
