//! The live tail through a query-frontend that runs apart (Loki's `frontend.tail_proxy_url`):
//! `/loki/api/v1/tail` and `/api/prom/tail` are WebSocket connections, which the queue does
//! not carry, so the frontend passes them to a querier at `tail_proxy_url`. The client's
//! upgrade request goes to the querier as it came (with the tenant the frontend resolved);
//! the querier's answer comes back, and once it switched protocols the two connections are
//! spliced byte for byte, both ways, until either side closes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use skald_common::tenant::TenantId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes of a querier's answer head the proxy reads.
const MAX_HEAD: usize = 64 << 10;

/// Where tails go: `host:port` of a querier's HTTP listener, from `tail_proxy_url`.
#[derive(Debug, Clone)]
pub struct TailProxy {
    addr: String,
}

impl TailProxy {
    /// The proxy to `url` (`http://host:port`, or `host:port`); `None` when it is empty.
    pub fn new(url: &str) -> Option<TailProxy> {
        let rest = url.trim().trim_start_matches("http://").trim_end_matches('/');
        if rest.is_empty() {
            return None;
        }
        let addr = if rest.contains(':') { rest.to_string() } else { format!("{rest}:80") };
        Some(TailProxy { addr })
    }
}

/// The live tail's routes, passed to the querier at `proxy`. Expects the [`TenantId`]
/// extension the server's tenant layer puts on each request.
pub fn routes(proxy: TailProxy) -> Router {
    Router::new()
        .route("/loki/api/v1/tail", get(tail))
        .route("/api/prom/tail", get(tail))
        .with_state(Arc::new(proxy))
}

fn text(status: StatusCode, message: String) -> Response {
    let mut r = (status, message).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn tail(State(proxy): State<Arc<TailProxy>>, mut req: Request) -> Response {
    let tenant = req.extensions().get::<TenantId>().map(|t| t.0.clone()).unwrap_or_default();
    let mut head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        req.uri().path_and_query().map_or("/", |p| p.as_str()),
        proxy.addr
    );
    for (name, value) in req.headers() {
        let skip = [axum::http::header::HOST.as_str(), "x-scope-orgid"];
        if skip.contains(&name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str(&format!("X-Scope-OrgID: {tenant}\r\n\r\n"));
    let mut upstream = match TcpStream::connect(&proxy.addr).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!("cannot reach the tail proxy {}: {e}", proxy.addr);
            return text(StatusCode::BAD_GATEWAY, message);
        }
    };
    if let Err(e) = upstream.write_all(head.as_bytes()).await {
        return text(StatusCode::BAD_GATEWAY, format!("tail proxy: {e}"));
    }
    let (status, headers, rest) = match read_head(&mut upstream).await {
        Ok(h) => h,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("tail proxy: {e}")),
    };
    if status != StatusCode::SWITCHING_PROTOCOLS {
        // the querier refused (a bad query, a bad tenant...): its answer as it is
        let body = read_body(&mut upstream, &headers, rest).await;
        return answer(status, &headers, Body::from(body));
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let client = match on_upgrade.await {
            Ok(u) => u,
            Err(error) => {
                tracing::debug!(%error, "tail proxy: the client's upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        // frames the querier sent with its answer head
        if !rest.is_empty() && client.write_all(&rest).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
    answer(status, &headers, Body::empty())
}

fn answer(status: StatusCode, headers: &[(String, String)], body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") && status == StatusCode::SWITCHING_PROTOCOLS
        {
            continue;
        }
        if let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value))
        {
            r.headers_mut().append(n, v);
        }
    }
    r
}

/// Reads an HTTP/1.1 answer head: its status, headers, and the bytes read past it.
async fn read_head(
    s: &mut TcpStream,
) -> Result<(StatusCode, Vec<(String, String)>, Vec<u8>), String> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err("the querier's answer head is too large".into());
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the querier closed the connection".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| "the querier's answer has no status".to_string())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers, rest))
}

/// The body of a refused upgrade: `Content-Length` bytes (at most [`MAX_HEAD`]), or what
/// arrives until the querier closes.
async fn read_body(s: &mut TcpStream, headers: &[(String, String)], mut body: Vec<u8>) -> Vec<u8> {
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let want = length.unwrap_or(MAX_HEAD).min(MAX_HEAD);
    let mut chunk = [0u8; 4096];
    while body.len() < want {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(want);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_addresses() {
        assert_eq!(TailProxy::new("http://q:3100/").map(|p| p.addr), Some("q:3100".into()));
        assert_eq!(TailProxy::new("q:3100").map(|p| p.addr), Some("q:3100".into()));
        assert_eq!(TailProxy::new("querier").map(|p| p.addr), Some("querier:80".into()));
        assert!(TailProxy::new(" ").is_none());
    }
}
