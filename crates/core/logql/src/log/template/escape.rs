//! Base64 and the URL, HTML and JavaScript escapes of Go and Sprig.

use std::fmt::Write as _;

use super::functions::CallError;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base64.CorruptInputError`: the byte offset of the first bad input byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
pub(super) struct CorruptInputError(usize);

/// Standard base64 decoding with padding; `\r` and `\n` are ignored like Go does.
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, CorruptInputError> {
    let bad = CorruptInputError;
    let chars: Vec<(usize, u8)> =
        s.bytes().enumerate().filter(|(_, c)| *c != b'\r' && *c != b'\n').collect();
    let mut out = Vec::with_capacity(chars.len() / 4 * 3);
    let mut k = 0;
    while k < chars.len() {
        let mut vals = [0u32; 4];
        let mut n = 0;
        while n < 4 {
            let Some(&(pos, c)) = chars.get(k) else {
                return Err(bad(chars.get(k.saturating_sub(n)).map_or(s.len(), |x| x.0)));
            };
            if c == b'=' {
                // padding: only in the last quantum, after at least two symbols
                if n < 2 {
                    return Err(bad(pos));
                }
                let need = 4 - n;
                let pads = chars[k..].iter().take(need).filter(|(_, c)| *c == b'=').count();
                if pads != need {
                    return Err(bad(chars.get(k + pads).map_or(s.len(), |x| x.0)));
                }
                if k + need != chars.len() {
                    return Err(bad(chars[k + need].0));
                }
                k = chars.len();
                break;
            }
            let Some(v) = B64.iter().position(|&b| b == c) else {
                return Err(bad(pos));
            };
            vals[n] = v as u32;
            n += 1;
            k += 1;
        }
        let word = vals[0] << 18 | vals[1] << 12 | vals[2] << 6 | vals[3];
        let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
        out.extend_from_slice(&bytes[..n.saturating_sub(1).min(3)]);
    }
    Ok(out)
}

pub(super) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

pub(super) fn query_unescape(s: &str) -> Result<String, CallError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(b.len());
                        let bad = String::from_utf8_lossy(&b[i..end]).into_owned();
                        return Err(format!(
                            "invalid URL escape {}",
                            skald_model::labels::go_quote(&bad)
                        )
                        .into());
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
