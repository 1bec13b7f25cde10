//! Push body decoding, as Loki's `pkg/loghttp/push/push.go` does it:
//!
//! - `Content-Encoding`: none, `snappy` (a no-op: protobuf bodies are snappy-compressed anyway),
//!   `gzip` or `deflate`; anything else is an error.
//! - `Content-Type` (parsed like Go's `mime.ParseMediaType`, so an empty or malformed value is
//!   an error): `application/json` is the JSON push format; every other type is a raw-snappy
//!   `logproto.PushRequest`.
//! - The compressed body is capped at `max_recv_msg_size` and the decompressed body at
//!   `max_decompressed_size`; decompression stops as soon as the cap is passed.

use std::collections::BTreeMap;
use std::io::Read;

use prost::Message;
use skald_model::labels::go_quote;
use skald_model::{Entry, Label};
use skald_proto::logproto;

use crate::error::MediaTypeError;
use skald_gocompat::json::jsoniter::{error_context, Cursor, JsonError, Kind};

/// Formats an error the way json-iterator reports one at byte `head` of `buf`
/// ([`error_context`]).
fn jsoniter_error(op: &str, msg: &str, buf: &[u8], head: usize) -> DecodeError {
    DecodeError::Invalid(error_context(op, msg, buf, head))
}

/// A decoded stream, before label parsing and validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawStream {
    /// The label string as pushed, e.g. `{job="web"}`.
    pub labels: String,
    /// Entries in push order.
    pub entries: Vec<Entry>,
}

/// Size caps for [`decode_push_body`]; 0 disables a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted body as received (compressed), in bytes.
    pub max_recv_msg_size: u64,
    /// Largest accepted body after decompression, in bytes.
    pub max_decompressed_size: u64,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A size cap was passed (HTTP 413). The text is Loki's, without the
    /// `request body too large: ` prefix.
    #[error("{0}")]
    TooLarge(String),
    /// The body is malformed (HTTP 400).
    #[error("{0}")]
    Invalid(String),
}

const APPLICATION_JSON: &str = "application/json";
const READ_CHUNK: usize = 64 * 1024;

pub(crate) fn too_large(what: &str, size: u64, max: u64) -> DecodeError {
    DecodeError::TooLarge(format!("{what} than max ({size} vs {max})"))
}

/// Decodes a push body into raw streams.
pub fn decode_push_body(
    body: &[u8],
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    limits: &DecodeLimits,
) -> Result<Vec<RawStream>, DecodeError> {
    let max_recv = limits.max_recv_msg_size;
    if max_recv > 0 && body.len() as u64 > max_recv {
        return Err(too_large("message size too large", body.len() as u64, max_recv));
    }
    let decompressed: Option<Vec<u8>> = match content_encoding.unwrap_or("") {
        "" | "snappy" => None,
        "gzip" => {
            if body.len() < 10 || body[0] != 0x1f || body[1] != 0x8b {
                let msg = match body.len() {
                    0 => "EOF",
                    n if n < 10 && body.starts_with(&[0x1f, 0x8b][..n.min(2)]) => "unexpected EOF",
                    _ => "gzip: invalid header",
                };
                return Err(DecodeError::Invalid(msg.to_string()));
            }
            Some(read_capped(
                flate2::read::MultiGzDecoder::new(body),
                limits.max_decompressed_size,
            )?)
        }
        "deflate" => {
            let data = if looks_like_zlib(body) {
                read_capped(flate2::read::ZlibDecoder::new(body), limits.max_decompressed_size)?
            } else {
                read_capped(flate2::read::DeflateDecoder::new(body), limits.max_decompressed_size)?
            };
            Some(data)
        }
        other => {
            return Err(DecodeError::Invalid(format!(
                "Content-Encoding {} not supported",
                go_quote(other)
            )))
        }
    };
    let data: &[u8] = decompressed.as_deref().unwrap_or(body);
    let media_type = parse_media_type(content_type.unwrap_or(""))
        .map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if media_type == APPLICATION_JSON {
        return decode_json(data);
    }
    decode_snappy_proto(data, limits)
}

/// Zlib-wrapped deflate (RFC 1950), which some clients send as `deflate`; Loki only reads raw
/// deflate, we accept both.
fn looks_like_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// Reads all of `r`, failing as soon as more than `cap` bytes come out (0: no cap).
pub(crate) fn read_capped<R: Read>(mut r: R, cap: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let msg = match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => "unexpected EOF".to_string(),
                    _ => format!("flate: corrupt input ({e})"),
                };
                return Err(DecodeError::Invalid(msg));
            }
        };
        if cap > 0 && (out.len() + n) as u64 > cap {
            return Err(too_large("decompressed message size too large", cap + 1, cap));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn decode_snappy_proto(data: &[u8], limits: &DecodeLimits) -> Result<Vec<RawStream>, DecodeError> {
    let max_recv = limits.max_recv_msg_size;
    if max_recv > 0 && data.len() as u64 > max_recv {
        return Err(too_large("message size too large", data.len() as u64, max_recv));
    }
    let corrupt = || DecodeError::Invalid("snappy: corrupt input".to_string());
    let size = snap::raw::decompress_len(data).map_err(|_| corrupt())?;
    let max_dec = limits.max_decompressed_size;
    if max_dec > 0 && size as u64 > max_dec {
        return Err(too_large("decompressed message size too large", size as u64, max_dec));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(data).map_err(|_| corrupt())?;
    let req = logproto::PushRequest::decode(raw.as_slice())
        .map_err(|e| DecodeError::Invalid(format!("proto: {e}")))?;
    Ok(req
        .streams
        .into_iter()
        .map(|s| RawStream {
            labels: s.labels,
            entries: s
                .entries
                .into_iter()
                .map(|e| Entry {
                    ts: e.timestamp.map(timestamp_ns).unwrap_or(0),
                    line: e.line.into(),
                    structured_metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|l| Label { name: l.name, value: l.value })
                        .collect(),
                })
                .collect(),
        })
        .collect())
}

fn timestamp_ns(t: prost_types::Timestamp) -> i64 {
    t.seconds.saturating_mul(1_000_000_000).saturating_add(i64::from(t.nanos))
}

fn is_token_char(c: char) -> bool {
    c.is_ascii() && c > ' ' && c != '\u{7f}' && !"()<>@,;:\\\"/[]?=".contains(c)
}

fn consume_token(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !is_token_char(c)).unwrap_or(s.len());
    s.split_at(end)
}

/// Go's `mime.ParseMediaType`, reduced to what matters here: returns the lower-cased media
/// type, or Go's error text.
pub(crate) fn parse_media_type(v: &str) -> Result<String, MediaTypeError> {
    let (base, mut rest) = match v.find(';') {
        Some(i) => (&v[..i], &v[i..]),
        None => (v, ""),
    };
    let base = base.trim().to_ascii_lowercase();
    let (tok, after) = consume_token(&base);
    if tok.is_empty() {
        return Err(MediaTypeError::NoMediaType);
    }
    if !after.is_empty() {
        let Some(sub) = after.strip_prefix('/') else {
            return Err(MediaTypeError::ExpectedSlash);
        };
        let (subtok, tail) = consume_token(sub);
        if subtok.is_empty() {
            return Err(MediaTypeError::ExpectedToken);
        }
        if !tail.is_empty() {
            return Err(MediaTypeError::UnexpectedContent);
        }
    }
    let mut seen: Vec<String> = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(after_semi) = rest.strip_prefix(';') else { break };
        let p = after_semi.trim_start();
        let (key, r) = consume_token(p);
        let parsed = if key.is_empty() {
            None
        } else {
            r.trim_start().strip_prefix('=').and_then(|r| {
                let r = r.trim_start();
                if let Some(q) = r.strip_prefix('"') {
                    let mut esc = false;
                    q.char_indices()
                        .find(|&(_, c)| {
                            let end = !esc && c == '"';
                            esc = !esc && c == '\\';
                            end
                        })
                        .map(|(i, _)| &q[i + 1..])
                } else {
                    let (val, r2) = consume_token(r);
                    (!val.is_empty()).then_some(r2)
                }
            })
        };
        match parsed {
            Some(r) => {
                let k = key.to_ascii_lowercase();
                if seen.contains(&k) {
                    return Err(MediaTypeError::DuplicateParameter);
                }
                seen.push(k);
                rest = r;
            }
            None if rest.trim() == ";" => break,
            None => return Err(MediaTypeError::InvalidParameter),
        }
    }
    Ok(base)
}

const STREAMS_OP: &str = "loghttp.PushRequest.Streams: []loghttp.LogProtoStream";

/// Decodes the JSON push format. Errors carry Loki-like texts.
pub(crate) fn decode_json(b: &[u8]) -> Result<Vec<RawStream>, DecodeError> {
    let mut c = Cursor::new(b);
    match c.peek() {
        None => return Err(DecodeError::Invalid("EOF".to_string())),
        Some(b'n') => {
            return match c.scalar() {
                Ok(b"null") => Ok(Vec::new()),
                _ => Err(jsoniter_error("loghttp.PushRequest: ReadNull", "expect null", b, c.pos)),
            }
        }
        Some(b'{') => {}
        Some(other) => {
            return Err(jsoniter_error(
                "loghttp.PushRequest: ReadObjectCB",
                &format!("expect {{ or n, but found {}", char::from(other)),
                b,
                c.pos + 1,
            ))
        }
    }
    let syntax = |c: &Cursor<'_>, e: JsonError| {
        jsoniter_error("loghttp.PushRequest: ReadObjectCB", e.message(), b, c.pos)
    };
    let mut streams = Vec::new();
    if !c.begin_object().map_err(|e| syntax(&c, e))? {
        return Ok(streams);
    }
    loop {
        let key = c.member_key().map_err(|e| syntax(&c, e))?;
        if key.eq_ignore_ascii_case("streams") {
            match c.kind().map_err(|e| syntax(&c, e))? {
                Kind::Null => {
                    c.scalar().map_err(|e| syntax(&c, e))?;
                }
                Kind::Array => {
                    if c.begin_array()
                        .map_err(|e| jsoniter_error(STREAMS_OP, e.message(), b, c.pos))?
                    {
                        loop {
                            let (kind, s, e) = c
                                .skip_value()
                                .map_err(|e| jsoniter_error(STREAMS_OP, e.message(), b, c.pos))?;
                            if kind != Kind::Null {
                                let stream = decode_stream(&b[s..e]).map_err(|err| {
                                    jsoniter_error(
                                        &format!("{STREAMS_OP}: unmarshalerDecoder"),
                                        err.message(),
                                        b,
                                        e,
                                    )
                                })?;
                                streams.push(stream);
                            }
                            if !c
                                .next_element()
                                .map_err(|e| jsoniter_error(STREAMS_OP, e.message(), b, c.pos))?
                            {
                                break;
                            }
                        }
                    }
                }
                _ => {
                    return Err(jsoniter_error(
                        STREAMS_OP,
                        "decode slice: expect [ or n, but found something else",
                        b,
                        c.pos + 1,
                    ))
                }
            }
        } else {
            c.skip_value().map_err(|e| syntax(&c, e))?;
        }
        if !c.next_member().map_err(|e| syntax(&c, e))? {
            break;
        }
    }
    Ok(streams)
}

fn decode_stream(obj: &[u8]) -> Result<RawStream, JsonError> {
    let mut c = Cursor::new(obj);
    let mut out = RawStream::default();
    if !c.begin_object()? {
        out.labels = "{}".to_string();
        return Ok(out);
    }
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let key = c.member_key()?;
        match key.as_ref() {
            "stream" => {
                if c.kind()? != Kind::Object {
                    return Err(JsonError::MalformedObject);
                }
                if c.begin_object()? {
                    loop {
                        let name = c.member_key()?;
                        let value = match c.kind()? {
                            Kind::String => c.string()?.into_owned(),
                            _ => {
                                let (_, s, e) = c.skip_value()?;
                                String::from_utf8_lossy(&obj[s..e]).into_owned()
                            }
                        };
                        labels.insert(name.into_owned(), value);
                        if !c.next_member()? {
                            break;
                        }
                    }
                }
            }
            "values" => match c.kind()? {
                Kind::Null => {
                    c.scalar()?;
                }
                Kind::Array => {
                    if c.begin_array()? {
                        loop {
                            if c.kind()? == Kind::Null {
                                c.scalar()?;
                            } else {
                                out.entries.push(decode_entry(&mut c)?);
                            }
                            if !c.next_element()? {
                                break;
                            }
                        }
                    }
                }
                _ => return Err(JsonError::MalformedArray),
            },
            _ => {
                c.skip_value()?;
            }
        }
        if !c.next_member()? {
            break;
        }
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&go_quote(v));
    }
    s.push('}');
    out.labels = s;
    Ok(out)
}

fn decode_entry(c: &mut Cursor<'_>) -> Result<Entry, JsonError> {
    let mut e = Entry::default();
    if !c.begin_array()? {
        return Ok(e);
    }
    let mut i = 0;
    loop {
        match i {
            0 => {
                if c.kind()? != Kind::String {
                    return Err(JsonError::MalformedString);
                }
                let (s, end) = c.raw_string()?;
                e.ts = parse_int(&c.b[s..end])?;
            }
            1 => {
                if c.kind()? != Kind::String {
                    return Err(JsonError::MalformedString);
                }
                // json-iterator keeps a string's bytes: a line that is not UTF-8 stays so
                e.line = c.string_bytes()?.into_owned().into();
            }
            2 => {
                if c.kind()? != Kind::Object {
                    return Err(JsonError::MalformedObject);
                }
                if c.begin_object()? {
                    loop {
                        let name = c.member_key()?;
                        if c.kind()? != Kind::String {
                            return Err(JsonError::MalformedString);
                        }
                        let value = c.string()?;
                        e.structured_metadata
                            .push(Label::new(name.into_owned(), value.into_owned()));
                        if !c.next_member()? {
                            break;
                        }
                    }
                }
            }
            _ => {
                c.skip_value()?;
            }
        }
        i += 1;
        if !c.next_element()? {
            break;
        }
    }
    Ok(e)
}

/// jsonparser's `ParseInt`: optional `-`, then digits only.
fn parse_int(raw: &[u8]) -> Result<i64, JsonError> {
    let (neg, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(JsonError::MalformedValue);
    }
    let mut v: i64 = 0;
    for d in digits {
        let d = i64::from(d - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| if neg { v.checked_sub(d) } else { v.checked_add(d) })
            .ok_or(JsonError::Overflow)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_like_go() {
        assert_eq!(parse_media_type("application/json").unwrap(), "application/json");
        assert_eq!(
            parse_media_type("Application/JSON; charset=utf-8").unwrap(),
            "application/json"
        );
        assert_eq!(parse_media_type("application/json;").unwrap(), "application/json");
        assert_eq!(
            parse_media_type("application/json; charset=\"utf-8\"").unwrap(),
            "application/json"
        );
        assert_eq!(parse_media_type("").unwrap_err().to_string(), "mime: no media type");
        assert_eq!(
            parse_media_type("application/json; charsetutf-8").unwrap_err().to_string(),
            "mime: invalid media parameter"
        );
        assert_eq!(
            parse_media_type("application/").unwrap_err().to_string(),
            "mime: expected token after slash"
        );
        assert_eq!(
            parse_media_type("a/b; x=1; x=2").unwrap_err().to_string(),
            "mime: duplicate parameter name"
        );
        assert_eq!(parse_media_type("application/jsonn").unwrap(), "application/jsonn");
    }

    #[test]
    fn json_bodies() {
        let s = decode_json(
            br#"{"streams": [{ "stream": { "foo": "bar2", "a": 1 }, "values": [ [ "1570818238000000000", "fizz\nbuzz", {"k": "v"} ], null, ["-5"] ] }, null]}"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels, r#"{a="1", foo="bar2"}"#);
        assert_eq!(s[0].entries.len(), 2);
        assert_eq!(s[0].entries[0].ts, 1_570_818_238_000_000_000);
        assert_eq!(s[0].entries[0].line, "fizz\nbuzz");
        assert_eq!(s[0].entries[0].structured_metadata, vec![Label::new("k", "v")]);
        assert_eq!(s[0].entries[1].ts, -5);
        assert!(decode_json(br#"{"streams": null}"#).unwrap().is_empty());
        assert!(decode_json(b"null").unwrap().is_empty());
        assert_eq!(decode_json(b"").unwrap_err().to_string(), "EOF");
        let err = decode_json(br#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "loghttp.PushRequest.Streams: []loghttp.LogProtoStream: unmarshalerDecoder: Value is string, but can't find closing '\"' symbol, error found in #10 byte of ...|"
            ),
            "{err}"
        );
        assert!(decode_json(br#"{"streams":[{"values":[["1", {"a":"b"}]]}]}"#).is_err());
        assert!(decode_json(br#"{"streams":[{"values":[["1","x",{"a":1}]]}]}"#).is_err());
        assert!(decode_json(br#"{"streams":[{"values":[["x1","x"]]}]}"#).is_err());
        assert!(decode_json(br#"{"streams":[{"values":[["99999999999999999999","x"]]}]}"#).is_err());
        assert!(decode_json(br#"{"streams":[{"values":[["1","x"]]}"#).is_err());
        assert!(decode_json(br#"[1]"#).is_err());
    }

    #[test]
    fn lines_keep_bytes_that_are_not_utf8() {
        // JSON: json-iterator keeps a string's raw bytes; escapes still decode
        let body = b"{\"streams\":[{\"stream\":{\"a\":\"b\"},\"values\":[[\"1\",\"caf\xe9 \xff\"],[\"2\",\"\xfe\\n\\u00e9\"]]}]}";
        let s = decode_json(body).unwrap();
        assert_eq!(s[0].entries[0].line, &b"caf\xe9 \xff"[..]);
        assert_eq!(s[0].entries[1].line, &b"\xfe\n\xc3\xa9"[..]);
        // protobuf: `line` is a Go string on the wire; its bytes arrive unchanged
        let req = logproto::PushRequest {
            streams: vec![logproto::StreamAdapter {
                labels: r#"{a="b"}"#.into(),
                entries: vec![logproto::EntryAdapter {
                    timestamp: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
                    line: b"x\xe2\x82y".to_vec(),
                    structured_metadata: vec![],
                    parsed: vec![],
                }],
                hash: 0,
            }],
            format: String::new(),
        };
        let body = snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap();
        let limits = DecodeLimits { max_recv_msg_size: 0, max_decompressed_size: 0 };
        let s = decode_push_body(&body, Some("application/x-protobuf"), None, &limits).unwrap();
        assert_eq!(s[0].entries[0].line, &b"x\xe2\x82y"[..]);
        assert_eq!(s[0].entries[0].ts, 1_000_000_000);
    }
}
