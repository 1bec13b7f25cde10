//! HTTP helpers: requests and their answers, push encodings, raw requests, `/metrics` scraping,
//! and the recorded reference dataset.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::{data_dir, Skald};

/// A response: status, content type and body text.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// Content-Type header.
    pub content_type: String,
    /// Body as text.
    pub body: String,
}

impl Resp {
    /// Parses the body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

fn to_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let mut body = String::new();
    resp.into_reader().take(512 * 1024 * 1024).read_to_string(&mut body).expect("read body");
    Resp { status, content_type, body }
}

/// POSTs `body` with the given headers.
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut req = ureq::post(url).timeout(Duration::from_secs(120));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.send_bytes(body))
}

/// GETs `url` with query parameters (repeated keys allowed) and headers.
pub fn get(url: &str, params: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
    let mut req = ureq::get(url).timeout(Duration::from_secs(120));
    for (k, v) in params {
        req = req.query(k, v);
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.call())
}

/// Encodes a Loki `PushRequest` as protobuf and compresses it with raw snappy, the way
/// promtail sends it.
pub fn encode_push_protobuf(streams: &[(&str, Vec<(i64, String)>)]) -> Vec<u8> {
    let owned = streams.iter().map(|(labels, entries)| (labels.to_string(), entries.clone()));
    encode_push_streams(owned.collect()).expect("snappy compress")
}

/// [`encode_push_protobuf`] for owned streams (`(labels, [(ns, line)])`), moving the lines into
/// the message instead of copying them: the benchmark harness (`skald-bench`) encodes its
/// batches with it.
pub fn encode_push_streams(
    streams: Vec<(String, Vec<(i64, String)>)>,
) -> Result<Vec<u8>, snap::Error> {
    use prost::Message;
    use skald_proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
    let req = PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| StreamAdapter {
                labels,
                entries: entries
                    .into_iter()
                    .map(|(ts, line)| EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: ts.div_euclid(1_000_000_000),
                            nanos: ts.rem_euclid(1_000_000_000) as i32,
                        }),
                        line: line.into(),
                        structured_metadata: vec![],
                        parsed: vec![],
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
        format: String::new(),
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec())
}

/// Gzips `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip finish")
}

/// Pushes every recorded push body of `tests/data/reference/push` (JSON) as tenant `tenant`,
/// then flushes so the data is read back from the store, as the Loki recording did.
pub fn push_reference_dataset(skald: &Skald, tenant: &str) {
    push_reference_dataset_to(&skald.url, std::slice::from_ref(&skald.url), tenant);
}

/// [`push_reference_dataset`] for split deployments: pushes to `push_url`, then flushes every
/// ingester in `flush_urls`.
pub fn push_reference_dataset_to(push_url: &str, flush_urls: &[String], tenant: &str) {
    let dir = data_dir().join("reference").join("push");
    let mut bodies: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("reference push dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    bodies.sort();
    assert_eq!(bodies.len(), 26, "recorded push bodies in {}", dir.display());
    for path in &bodies {
        let body = std::fs::read(path).expect("push body");
        let r = post(
            &format!("{push_url}/loki/api/v1/push"),
            &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
            &body,
        );
        assert_eq!(r.status, 204, "push {} failed: {}", path.display(), r.body);
    }
    for url in flush_urls {
        let r = post(&format!("{url}/flush"), &[], b"");
        assert_eq!(r.status, 204, "{}", r.body);
    }
}

/// The limits the reference dataset needs (weeks-old timestamps, 26 large bodies), with auth on
/// as in the recording (tenant `tenant-a`).
pub const REFERENCE_CONFIG: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  ingestion_rate_mb: 64
  ingestion_burst_size_mb: 128
  per_stream_rate_limit: 64MB
  per_stream_rate_limit_burst: 128MB
  max_entries_limit_per_query: 5000
  allow_structured_metadata: true
  volume_enabled: true
";

/// The sum of the samples of metric `name` (every label set) on `url`'s `/metrics`.
pub fn metric_sum(url: &str, name: &str) -> f64 {
    get(&format!("{url}/metrics"), &[], &[])
        .body
        .lines()
        .filter(|l| {
            l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// `ns` as JavaScript's `Date.prototype.toISOString()` writes it (ms precision, `Z`), which
/// is Go's `2006-01-02T15:04:05.000Z07:00` in UTC.
pub fn iso_ms(ns: i64) -> String {
    skald_gocompat::time::rfc3339_millis(ns.div_euclid(1_000_000))
}

/// Sends `raw` as is on a new connection (a recorded request, byte for byte) and returns
/// (status, response head, body); a `HEAD` request's answer has no body.
pub fn send_raw(port: u16, raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to skald");
    conn.set_read_timeout(Some(Duration::from_secs(30))).expect("set a read timeout");
    conn.write_all(raw).expect("send the request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("a status line");
    let is_head = raw.starts_with(b"HEAD ");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let want = if is_head { 0 } else { len };
    while buf.len() < head_end + want {
        let n = conn.read(&mut chunk).expect("read the response");
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, head, buf[head_end..head_end + want].to_vec())
}
