//! Live-tail WebSocket helpers (`/loki/api/v1/tail`), shared by the tail, Grafana and logcli
//! tests.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// An open tail.
pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Percent-encodes a query-string value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a tail did not open.
#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The server answered the upgrade with this HTTP status.
    Refused(u16),
    /// The connection failed.
    Failed(String),
}

/// Opens `ws://<http_url host><path>?<params>` with `headers`; reads time out after 200 ms
/// so that callers can poll.
pub fn open(
    http_url: &str,
    path: &str,
    params: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Result<Ws, OpenError> {
    let qs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    let url = format!("{}{path}?{}", http_url.replacen("http://", "ws://", 1), qs.join("&"));
    let uri = url.parse().map_err(|e| OpenError::Failed(format!("bad tail URL {url}: {e}")))?;
    let mut req = ClientRequestBuilder::new(uri);
    for (k, v) in headers {
        req = req.with_header(*k, *v);
    }
    match tungstenite::connect(req) {
        Ok((mut ws, _)) => {
            if let MaybeTlsStream::Plain(s) = ws.get_mut() {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .map_err(|e| OpenError::Failed(e.to_string()))?;
            }
            Ok(ws)
        }
        Err(tungstenite::Error::Http(resp)) => Err(OpenError::Refused(resp.status().as_u16())),
        Err(e) => Err(OpenError::Failed(e.to_string())),
    }
}

/// What [`read`] saw.
#[derive(Debug, Default)]
pub struct Read {
    /// Text frames, parsed.
    pub frames: Vec<Value>,
    /// Ping frames.
    pub pings: usize,
    /// The close frame's code and reason, when the server closed the tail.
    pub closed: Option<(u16, String)>,
}

/// Reads frames until `deadline`, until `done(frames)`, or until the tail closes.
pub fn read(
    ws: &mut Ws,
    deadline: Instant,
    mut done: impl FnMut(&[Value]) -> bool,
) -> Result<Read, String> {
    let mut r = Read::default();
    while Instant::now() < deadline && !done(&r.frames) {
        match ws.read() {
            Ok(Message::Text(t)) => r.frames.push(
                serde_json::from_str(t.as_str())
                    .map_err(|e| format!("frame is not JSON ({e}): {t}"))?,
            ),
            Ok(Message::Ping(_)) => r.pings += 1,
            Ok(Message::Close(c)) => {
                r.closed = Some(
                    c.map(|c| (c.code.into(), c.reason.to_string()))
                        .unwrap_or((1005, String::new())),
                );
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                r.closed.get_or_insert((1006, String::new()));
                break;
            }
            Err(e) => return Err(format!("tail read failed: {e}")),
        }
    }
    Ok(r)
}
