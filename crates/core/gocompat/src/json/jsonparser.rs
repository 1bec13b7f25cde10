//! A lenient, allocation-light JSON scanner with the exact tolerance and error messages of the
//! `jsonparser` library Loki uses (github.com/buger/jsonparser, MIT): fields are visited in
//! order and fields seen before a syntax error stay extracted.

pub const ERR_MALFORMED_JSON: &str = "Malformed JSON error";
pub const ERR_MALFORMED_STRING: &str = "Value is string, but can't find closing '\"' symbol";
pub const ERR_MALFORMED_ARRAY: &str = "Value is array, but can't find closing ']' symbol";
pub const ERR_MALFORMED_OBJECT: &str = "Value looks like object, but can't find closing '}' symbol";
pub const ERR_UNKNOWN_TYPE: &str = "Unknown value type";
pub const ERR_STRING_ESCAPE: &str = "Encountered an invalid escape sequence in a string";

/// JSON value types as jsonparser reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    NotExist,
    String,
    Number,
    Object,
    Array,
    Boolean,
    Null,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

/// Offset of the next non-whitespace byte.
fn next_token(data: &[u8]) -> Option<usize> {
    data.iter().position(|&c| !is_ws(c))
}

/// Offset just past the closing quote of a string whose opening quote was already consumed,
/// and whether the string has escapes.
fn string_end(data: &[u8]) -> (Option<usize>, bool) {
    let mut escaped = false;
    let mut from = 0;
    while let Some(p) = memchr::memchr2(b'"', b'\\', &data[from..]) {
        let i = from + p;
        from = i + 1;
        if data[i] == b'\\' {
            escaped = true;
            continue;
        }
        if !escaped {
            return (Some(i + 1), false);
        }
        // count the backslashes before the quote
        let n = data[..i].iter().rev().take_while(|&&c| c == b'\\').count();
        if n % 2 == 0 {
            return (Some(i + 1), true);
        }
    }
    (None, escaped)
}

/// Offset just past the block opened at `data[0]`.
fn block_end(data: &[u8], open: u8, close: u8) -> Option<usize> {
    let mut level = 0i64;
    let mut i = 0;
    while i < data.len() {
        match data[i] {
            b'"' => {
                let (se, _) = string_end(&data[i + 1..]);
                i += se?;
            }
            c if c == open => level += 1,
            c if c == close => {
                level -= 1;
                if level == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn token_end(data: &[u8]) -> usize {
    data.iter()
        .position(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']'))
        .unwrap_or(data.len())
}

/// A located value: `data[start..end]` is the value (quotes stripped for strings) and
/// `next` is the offset just past it.
#[derive(Debug, Clone, Copy)]
pub struct Value {
    pub start: usize,
    pub end: usize,
    pub next: usize,
    pub ty: ValueType,
}

/// Reads the value at the start of `data` (after whitespace), like jsonparser's `Get` with
/// no keys.
pub fn get_value(data: &[u8]) -> Result<Value, &'static str> {
    let off = next_token(data).ok_or(ERR_MALFORMED_JSON)?;
    let c = data[off];
    match c {
        b'"' => match string_end(&data[off + 1..]).0 {
            Some(idx) => {
                let end = off + idx + 1;
                Ok(Value { start: off + 1, end: end - 1, next: end, ty: ValueType::String })
            }
            None => Err(ERR_MALFORMED_STRING),
        },
        b'[' => match block_end(&data[off..], b'[', b']') {
            Some(e) => Ok(Value { start: off, end: off + e, next: off + e, ty: ValueType::Array }),
            None => Err(ERR_MALFORMED_ARRAY),
        },
        b'{' => match block_end(&data[off..], b'{', b'}') {
            Some(e) => Ok(Value { start: off, end: off + e, next: off + e, ty: ValueType::Object }),
            None => Err(ERR_MALFORMED_OBJECT),
        },
        _ => {
            let end = off + token_end(&data[off..]);
            let v = &data[off..end];
            let ty = match c {
                b't' | b'f' if v == b"true" || v == b"false" => ValueType::Boolean,
                b'u' | b'n' if v == b"null" => ValueType::Null,
                b'0'..=b'9' | b'-' => ValueType::Number,
                _ => return Err(ERR_UNKNOWN_TYPE),
            };
            Ok(Value { start: off, end, next: end, ty })
        }
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..4] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

/// Unescapes a JSON string body like jsonparser's `Unescape`. Invalid escapes are an error.
pub fn unescape(input: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, &'static str> {
    let Some(first) = memchr::memchr(b'\\', input) else {
        return Ok(std::borrow::Cow::Borrowed(input));
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let e = *input.get(i + 1).ok_or(ERR_STRING_ESCAPE)?;
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
            continue;
        }
        if e != b'u' {
            return Err(ERR_STRING_ESCAPE);
        }
        let r = hex4(&input[i + 2..]).ok_or(ERR_STRING_ESCAPE)?;
        let (ch, used) = if r <= 0xFFFF && !(0xD800..=0xDFFF).contains(&r) {
            (char::from_u32(r).unwrap_or('\u{FFFD}'), 6)
        } else {
            let rest = &input[i + 6..];
            if rest.len() < 6 || rest[0] != b'\\' || rest[1] != b'u' {
                // jsonparser reads the next 6 bytes whatever they are; anything but \uXXXX fails
                return Err(ERR_STRING_ESCAPE);
            }
            let r2 = hex4(&rest[2..]).ok_or(ERR_STRING_ESCAPE)?;
            if r2 < 0xDC00 {
                return Err(ERR_STRING_ESCAPE);
            }
            let c = 0x10000 + ((r.wrapping_sub(0xD800)) << 10) + (r2 - 0xDC00);
            (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        i += used;
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Visits each field of the object at the start of `data`, like jsonparser's `ObjectEach`.
/// The callback gets the (unescaped) key and the value; its error stops the walk.
pub fn object_each<E>(
    data: &[u8],
    mut cb: impl FnMut(&[u8], &[u8], Value) -> Result<(), E>,
) -> Result<(), ObjectEachError<E>> {
    use ObjectEachError::{Callback, Syntax};
    let mut off = next_token(data).ok_or(Syntax(ERR_MALFORMED_OBJECT))?;
    if data[off] != b'{' {
        return Err(Syntax(ERR_MALFORMED_OBJECT));
    }
    off += 1;
    off += next_token(&data[off..]).ok_or(Syntax(ERR_MALFORMED_JSON))?;
    if data[off] == b'}' {
        return Ok(());
    }
    while off < data.len() {
        match data[off] {
            b'"' => off += 1,
            b'}' => return Ok(()),
            _ => return Err(Syntax(ERR_MALFORMED_OBJECT)),
        }
        let (end, esc) = string_end(&data[off..]);
        let end = end.ok_or(Syntax(ERR_MALFORMED_JSON))?;
        let raw_key = &data[off..off + end - 1];
        off += end;
        let key = if esc {
            unescape(raw_key).map_err(|_| Syntax(ERR_STRING_ESCAPE))?
        } else {
            std::borrow::Cow::Borrowed(raw_key)
        };
        off += next_token(&data[off..]).ok_or(Syntax(ERR_MALFORMED_JSON))?;
        if data[off] != b':' {
            return Err(Syntax(ERR_MALFORMED_JSON));
        }
        off += 1;
        let v = get_value(&data[off..]).map_err(Syntax)?;
        let value = Value { start: off + v.start, end: off + v.end, next: off + v.next, ty: v.ty };
        cb(&key, &data[value.start..value.end], value).map_err(Callback)?;
        off = value.next;
        off += next_token(&data[off..]).ok_or(Syntax(ERR_MALFORMED_ARRAY))?;
        match data[off] {
            b'}' => return Ok(()),
            b',' => off += 1,
            _ => return Err(Syntax(ERR_MALFORMED_OBJECT)),
        }
        off += next_token(&data[off..]).ok_or(Syntax(ERR_MALFORMED_ARRAY))?;
    }
    Err(Syntax(ERR_MALFORMED_OBJECT))
}

/// Why [`object_each`] stopped.
#[derive(Debug)]
pub enum ObjectEachError<E> {
    /// A jsonparser syntax error (its message).
    Syntax(&'static str),
    /// The callback's error.
    Callback(E),
}

/// Visits the elements of the array at the start of `data`, like jsonparser's `ArrayEach`.
/// Returns the offset where it stopped (the closing bracket on success).
fn array_each(data: &[u8], mut cb: impl FnMut(&[u8], Value, usize)) -> usize {
    if data.is_empty() {
        return 0;
    }
    let Some(nt) = next_token(data) else { return 0 };
    let mut off = nt + 1;
    let Some(no) = next_token(&data[off..]) else { return off };
    off += no;
    if data[off] == b']' {
        return off;
    }
    loop {
        let Ok(v) = get_value(&data[off..]) else { return off };
        if v.next == 0 {
            break;
        }
        if v.ty != ValueType::NotExist {
            let value =
                Value { start: off + v.start, end: off + v.end, next: off + v.next, ty: v.ty };
            cb(&data[value.start..value.end], value, off);
        }
        off += v.next;
        let Some(skip) = next_token(&data[off..]) else { return off };
        off += skip;
        if data[off] == b']' {
            break;
        }
        if data[off] != b',' {
            return off;
        }
        off += 1;
    }
    off
}

/// jsonparser's `searchKeys`: the offset just past the `:` of the value at `keys`, or `None`.
fn search_keys(data: &[u8], keys: &[String]) -> Option<usize> {
    let lk = keys.len();
    if lk == 0 {
        return Some(0);
    }
    let mut key_level = 0usize;
    let mut level = 0usize;
    let mut i = 0usize;
    let ln = data.len();
    let mut last_matched = true;
    while i < ln {
        match data[i] {
            b'"' => {
                i += 1;
                let key_begin = i;
                let (se, esc) = string_end(&data[i..]);
                i += se?;
                let key_end = i - 1;
                i += next_token(&data[i..])?;
                if data[i] == b':' {
                    if level < 1 {
                        return None;
                    }
                    let raw = &data[key_begin..key_end];
                    let key =
                        if esc { unescape(raw).ok()? } else { std::borrow::Cow::Borrowed(raw) };
                    if level <= lk {
                        if *key == *keys[level - 1].as_bytes() {
                            last_matched = true;
                            if key_level == level - 1 {
                                key_level += 1;
                                if key_level == lk {
                                    return Some(i + 1);
                                }
                            }
                        } else {
                            last_matched = false;
                        }
                    } else {
                        return None;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => {
                if !last_matched {
                    let end = block_end(&data[i..], b'{', b'}')?;
                    i += end - 1;
                } else {
                    level += 1;
                }
            }
            b'}' => {
                level = level.wrapping_sub(1);
                if level == key_level {
                    key_level = key_level.wrapping_sub(1);
                }
            }
            b'[' => {
                if key_level == level && keys.get(level).is_some_and(|k| k.starts_with('[')) {
                    let k = &keys[level];
                    if k.len() < 3 || !k.ends_with(']') {
                        return None;
                    }
                    let a_idx: usize = k[1..k.len() - 1].parse().ok()?;
                    let mut cur = 0usize;
                    let mut found: Option<(usize, usize)> = None;
                    let sub = &data[i..];
                    array_each(sub, |_, v, _| {
                        if cur == a_idx {
                            found = Some(if v.ty == ValueType::String {
                                (v.start - 1, v.end + 1)
                            } else {
                                (v.start, v.end)
                            });
                        }
                        cur += 1;
                    });
                    let (s, e) = found?;
                    let sub_index = search_keys(&sub[s..e], &keys[level + 1..])?;
                    return Some(i + s + sub_index);
                }
                let skip = block_end(&data[i..], b'[', b']')?;
                i += skip - 1;
            }
            b':' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

fn same_tree(p1: &[String], p2: &[String]) -> bool {
    let n = p1.len().min(p2.len());
    p1[..n] == p2[..n]
}

/// One `EachKey` callback: path index (`None` for a document-level error), the value bytes
/// and its type, or the error.
pub type EachKeyResult<'a> = (Option<usize>, Result<(&'a [u8], ValueType), &'static str>);

/// jsonparser's `EachKey`: finds the values at several paths in one pass. The callback gets
/// the path index (or `None` for a document-level error) and the value or its error.
pub fn each_key<'a>(data: &'a [u8], paths: &[Vec<String>], mut cb: impl FnMut(EachKeyResult<'a>)) {
    let ln = data.len();
    let mut level: i64 = 0;
    let mut paths_matched = 0usize;
    let mut i: i64 = 0;
    let mut flags = vec![false; paths.len()];
    let max_path = paths.iter().map(Vec::len).max().unwrap_or(0);
    let mut buf: Vec<String> = vec![String::new(); max_path];
    let at = |i: i64| -> u8 {
        if i >= 0 && (i as usize) < ln {
            data[i as usize]
        } else {
            0
        }
    };

    while (i as usize) < ln && i >= 0 {
        let iu = i as usize;
        match data[iu] {
            b'"' => {
                let mut p = iu + 1;
                let key_begin = p;
                let (se, esc) = string_end(&data[p..]);
                let Some(se) = se else { return };
                p += se;
                let key_end = p - 1;
                let Some(vo) = next_token(&data[p..]) else { return };
                p += vo;
                i = p as i64;
                if data[p] == b':' {
                    let mut matched = false;
                    let raw = &data[key_begin..key_end];
                    let key = if esc {
                        match unescape(raw) {
                            Ok(k) => k,
                            Err(_) => return,
                        }
                    } else {
                        std::borrow::Cow::Borrowed(raw)
                    };
                    if max_path as i64 >= level {
                        if level < 1 {
                            cb((None, Err(ERR_MALFORMED_JSON)));
                            return;
                        }
                        let lv = level as usize;
                        buf[lv - 1] = String::from_utf8_lossy(&key).into_owned();
                        for (pi, path) in paths.iter().enumerate() {
                            if path.len() != lv
                                || flags[pi]
                                || *key != *path[lv - 1].as_bytes()
                                || !same_tree(path, &buf[..lv])
                            {
                                continue;
                            }
                            matched = true;
                            paths_matched += 1;
                            flags[pi] = true;
                            let r = get_value(&data[p + 1..])
                                .map(|v| (&data[p + 1 + v.start..p + 1 + v.end], v.ty));
                            cb((Some(pi), r));
                            if paths_matched == paths.len() {
                                break;
                            }
                        }
                        if paths_matched == paths.len() {
                            return;
                        }
                    }
                    if !matched {
                        // mirrors jsonparser's (odd) skipping arithmetic
                        let tok = next_token(&data[p + 1..]).map_or(-1, |t| t as i64);
                        i += tok;
                        if at(i) == b'{' {
                            let skip =
                                block_end(&data[i as usize..], b'{', b'}').map_or(-1, |e| e as i64);
                            i += skip + 1;
                        }
                    }
                    if i >= 0
                        && (i as usize) < ln
                        && matches!(data[i as usize], b'{' | b'}' | b'[' | b'"')
                    {
                        i -= 1;
                    }
                } else {
                    i -= 1;
                }
            }
            b'{' => level += 1,
            b'}' => level -= 1,
            b'[' => {
                if level < 0 {
                    cb((None, Err(ERR_MALFORMED_JSON)));
                    return;
                }
                let lv = level as usize;
                let mut idx_wanted: Vec<usize> = Vec::new();
                let mut p_idx = vec![false; paths.len()];
                for (pi, path) in paths.iter().enumerate() {
                    if path.len() < lv + 1
                        || flags[pi]
                        || path[lv].is_empty()
                        || !path[lv].starts_with('[')
                        || !same_tree(path, &buf[..lv.min(buf.len())])
                    {
                        continue;
                    }
                    if path[lv].len() > 2 {
                        let a = path[lv][1..path[lv].len() - 1].parse::<usize>().unwrap_or(0);
                        idx_wanted.push(a);
                        p_idx[pi] = true;
                    }
                }
                if !idx_wanted.is_empty() {
                    level += 1;
                    let lv1 = level as usize;
                    let mut cur = 0usize;
                    let arr_off = array_each(&data[iu..], |value, v, _| {
                        if idx_wanted.contains(&cur) {
                            for (pi, path) in paths.iter().enumerate() {
                                if !p_idx[pi] {
                                    continue;
                                }
                                let a = path[lv1 - 1][1..path[lv1 - 1].len() - 1]
                                    .parse::<usize>()
                                    .unwrap_or(0);
                                if cur != a {
                                    continue;
                                }
                                let of = search_keys(value, &path[lv1..]);
                                paths_matched += 1;
                                flags[pi] = true;
                                if let Some(of) = of {
                                    let abs = iu + v.start;
                                    if v.ty == ValueType::String {
                                        cb((Some(pi), Ok((&data[abs + of..iu + v.end], v.ty))));
                                    } else {
                                        let r = get_value(&value[of..]).map(|g| {
                                            (&data[abs + of + g.start..abs + of + g.end], g.ty)
                                        });
                                        cb((Some(pi), r));
                                    }
                                }
                            }
                        }
                        cur += 1;
                    });
                    if paths_matched == paths.len() {
                        return;
                    }
                    i += arr_off as i64 - 1;
                } else {
                    let Some(skip) = block_end(&data[iu..], b'[', b']') else { return };
                    i += skip as i64 - 1;
                }
            }
            b']' => level -= 1,
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_value_and_unescape() {
        let v = get_value(br#"  "a\"b" , 1"#).unwrap();
        assert_eq!((v.start, v.end, v.next, v.ty), (3, 7, 8, ValueType::String));
        assert_eq!(get_value(b"-12,").unwrap().ty, ValueType::Number);
        assert_eq!(get_value(b"nul").unwrap_err(), ERR_UNKNOWN_TYPE);
        assert_eq!(get_value(b"[1, 2").unwrap_err(), ERR_MALFORMED_ARRAY);
        assert_eq!(get_value(b"\"open").unwrap_err(), ERR_MALFORMED_STRING);
        assert_eq!(&*unescape(br"x\u00e9\n").unwrap(), "xé\n".as_bytes());
        assert_eq!(unescape(br"\q").unwrap_err(), ERR_STRING_ESCAPE);
    }

    #[test]
    fn object_each_keeps_fields_before_an_error() {
        let mut seen = Vec::new();
        let r = object_each(br#"{"a": 1, "b\u0041": "x", "c" 3}"#, |k, v, _| {
            seen.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
            Ok::<(), ()>(())
        });
        assert!(matches!(r, Err(ObjectEachError::Syntax(ERR_MALFORMED_JSON))));
        assert_eq!(seen, vec![("a".into(), "1".into()), ("bA".into(), "x".into())]);
    }

    #[test]
    fn each_key_finds_several_paths() {
        let paths =
            vec![vec!["a".to_string(), "b".to_string()], vec!["c".to_string(), "[1]".to_string()]];
        let mut got = Vec::new();
        each_key(br#"{"a": {"b": "x"}, "c": [1, 2]}"#, &paths, |(i, r)| {
            let (v, ty) = r.unwrap();
            got.push((i, String::from_utf8_lossy(v).into_owned(), ty));
        });
        assert_eq!(
            got,
            vec![
                (Some(0), "x".to_string(), ValueType::String),
                (Some(1), "2".to_string(), ValueType::Number)
            ]
        );
    }
}
