//! The process's own logs and traces over real `skald` processes: logfmt by default (no ANSI
//! escapes in a file), JSON with `server.log_format: json`, one line per failed request with
//! its tenant (`orgID`, Loki's key), route, status and duration; `-print-config-stderr` and
//! `-log-config-reverse-order`; request spans exported over OTLP/HTTP to a real receiver,
//! with the caller's `traceparent` honoured.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use skald_integration_tests::{free_port_pair, get, temp_dir, Skald};
use skald_proto::otlp::common::any_value;
use skald_proto::otlp::trace::Span;
use skald_proto::otlp::trace_collector::ExportTraceServiceRequest;

/// Parses one logfmt line as go-logfmt writes it; `None` when it is not logfmt.
fn logfmt(line: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            if c == '"' || c < ' ' {
                return None;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return None;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        'r' => value.push('\r'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                            value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if c == '"' || c == '=' || c < ' ' {
                    return None;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// A config like `Skald::start`'s, with `server_extra` added to the `server` block.
fn config(
    dir: &std::path::Path,
    server_extra: &str,
    extra: &str,
) -> (std::path::PathBuf, (u16, u16)) {
    let (http, grpc) = free_port_pair();
    let text = format!(
        "auth_enabled: true\nserver:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\n{server_extra}common:\n  path_prefix: {}\n{extra}",
        dir.join("data").display()
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, text).unwrap();
    (path, (http, grpc))
}

fn wait_for_log(skald: &Skald, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = skald.log();
        if cond(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_are_logfmt_and_a_failed_request_logs_once() {
    let dir = temp_dir("obs-logfmt");
    let (path, ports) = config(&dir, "", "");
    let skald = Skald::start_with(&dir, &path, ports, &[], &[("RUST_LOG", "")]);
    let q = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[("query", "{job=")],
        &[("X-Scope-OrgID", "tenant-a")],
    );
    assert_eq!(q.status, 400, "{}", q.body);
    let log = wait_for_log(&skald, "request line", |l| l.contains("status=400"));
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log file:\n{log}");
    let mut failed = Vec::new();
    for line in log.lines() {
        let pairs = logfmt(line).unwrap_or_else(|| panic!("not logfmt: {line}"));
        let keys: Vec<&str> = pairs.iter().take(3).map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["level", "ts", "caller"], "{line}");
        let ts = field(&pairs, "ts").unwrap();
        assert!(ts.ends_with('Z') && ts.len() >= 20 && ts.starts_with("20"), "{line}");
        assert!(field(&pairs, "caller").unwrap().contains(".rs:"), "{line}");
        if field(&pairs, "route") == Some("/loki/api/v1/query_range") {
            failed.push(pairs);
        }
    }
    assert_eq!(failed.len(), 1, "one line for the failed request:\n{log}");
    let f = &failed[0];
    assert_eq!(field(f, "level"), Some("info"));
    assert_eq!(field(f, "orgID"), Some("tenant-a"));
    // Loki's order: the tenant before `msg`
    let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["level", "ts", "caller", "orgID", "msg", "route", "status", "duration"]);
    assert_eq!(field(f, "status"), Some("400"));
    let duration = field(f, "duration").unwrap();
    assert!(duration.ends_with('s'), "a Go duration: {duration}");
    let msg = field(f, "msg").unwrap();
    assert!(
        msg.starts_with("GET /loki/api/v1/query_range?query=") && msg.contains("(400)"),
        "{msg}"
    );
    // a request that succeeds says nothing at info; a missing tenant is a failure too
    assert_eq!(get(&format!("{}/ready", skald.url), &[], &[]).status, 200);
    let r = get(&format!("{}/loki/api/v1/labels", skald.url), &[], &[]);
    assert_eq!(r.status, 401);
    let log = wait_for_log(&skald, "401 line", |l| l.contains("status=401"));
    assert!(!log.contains("route=/ready"), "{log}");
    let line = log.lines().find(|l| l.contains("status=401")).unwrap();
    let pairs = logfmt(line).unwrap();
    assert_eq!(field(&pairs, "orgID"), None, "no tenant, no orgID: {line}");
    assert_eq!(field(&pairs, "route"), Some("/loki/api/v1/labels"), "{line}");
}

#[test]
fn json_logs_and_the_config_dumps() {
    let dir = temp_dir("obs-json");
    let (path, ports) = config(
        &dir,
        "  log_format: json\n  log_request_at_info_level_enabled: true\n",
        "limits_config:\n  max_query_series: 777\n",
    );
    let args = ["-print-config-stderr", "-log-config-reverse-order"];
    let skald = Skald::start_with(&dir, &path, ports, &args, &[("RUST_LOG", "")]);
    assert_eq!(get(&format!("{}/ready", skald.url), &[], &[]).status, 200);
    let log = wait_for_log(&skald, "/ready line", |l| l.contains("\"route\":\"/ready\""));
    // the printed config comes first, under Loki's header lines
    let (printed, rest) = log.split_once("\n\n\n").unwrap_or_else(|| panic!("{log}"));
    assert!(printed.starts_with("---\n# Skald Config\n# (version="), "{printed}");
    assert!(printed.contains("\n  max_query_series: 777\n"), "{printed}");
    assert!(printed.contains("\n  log_format: json\n"), "{printed}");
    let mut config_lines = Vec::new();
    for line in rest.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["level", "ts", "caller"] {
            assert!(v[key].is_string(), "{line}");
        }
        if v["type"] == "config" {
            config_lines.push(v["msg"].as_str().unwrap().to_string());
        }
        // with log_request_at_info_level_enabled a success is logged too, at info
        if v["route"] == "/ready" {
            assert_eq!(v["level"], "info");
            assert_eq!(v["status"], 200);
            assert!(v.get("orgID").is_none(), "{line}");
        }
    }
    // the logged config, read bottom-up, is the printed one
    config_lines.reverse();
    let yaml = printed.split_once("\n# (version=").unwrap().1.split_once('\n').unwrap().1;
    assert_eq!(config_lines.join("\n").trim_end(), yaml.trim_end());
}

/// A real OTLP/HTTP receiver: keeps every `POST /v1/traces` body's spans.
fn receiver() -> (u16, Arc<Mutex<Vec<Span>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let kept = kept.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut len = 0usize;
                    let mut content_type = String::new();
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        match k.to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap(),
                            "content-type" => content_type = v.trim().to_string(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    assert!(request_line.starts_with("POST /v1/traces "), "{request_line}");
                    assert_eq!(content_type, "application/x-protobuf");
                    let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                    for rs in req.resource_spans {
                        for ss in rs.scope_spans {
                            kept.lock().unwrap().extend(ss.spans);
                        }
                    }
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
                }
            });
        }
    });
    (port, spans)
}

fn attr(span: &Span, key: &str) -> Option<any_value::Value> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| a.value.clone()?.value)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn request_spans_reach_an_otlp_receiver() {
    let (port, spans) = receiver();
    let dir = temp_dir("obs-otlp");
    let (path, ports) =
        config(&dir, "", &format!("tracing:\n  otlp_endpoint: http://127.0.0.1:{port}\n"));
    let envs = [("RUST_LOG", ""), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let mut skald = Skald::start_with(&dir, &path, ports, &[], &envs);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let hdr = [("X-Scope-OrgID", "tenant-t"), ("traceparent", parent)];
    let url = format!("{}/loki/api/v1/labels", skald.url);
    assert_eq!(get(&url, &[], &hdr).status, 200);
    // a parent that says "not sampled" is respected
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    assert_eq!(get(&url, &[], &[("X-Scope-OrgID", "t"), ("traceparent", unsampled)]).status, 200);
    let bad = get(&format!("{}/loki/api/v1/query", skald.url), &[("query", "{")], &hdr[..1]);
    assert_eq!(bad.status, 400);
    // exported in the background (every 100 ms here), before any shutdown
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let got = spans.lock().unwrap().clone();
    let labels: Vec<&Span> = got.iter().filter(|s| s.name == "GET /loki/api/v1/labels").collect();
    assert_eq!(labels.len(), 1, "{got:?}");
    let s = labels[0];
    assert_eq!(hex(&s.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&s.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(s.span_id.len(), 8);
    assert_eq!(s.kind, 2, "SERVER");
    assert!(s.end_time_unix_nano >= s.start_time_unix_nano && s.start_time_unix_nano > 0);
    assert_eq!(
        attr(s, "http.route"),
        Some(any_value::Value::StringValue("/loki/api/v1/labels".into()))
    );
    assert_eq!(attr(s, "http.response.status_code"), Some(any_value::Value::IntValue(200)));
    assert_eq!(attr(s, "org_id"), Some(any_value::Value::StringValue("tenant-t".into())));
    let q: Vec<&Span> = got.iter().filter(|s| s.name == "GET /loki/api/v1/query").collect();
    assert_eq!(q.len(), 1, "{got:?}");
    assert_eq!(attr(q[0], "http.response.status_code"), Some(any_value::Value::IntValue(400)));
    // without a parent, a new trace: its id is in the failed request's log line
    assert!(q[0].parent_span_id.is_empty());
    let trace = hex(&q[0].trace_id);
    assert_eq!(trace.len(), 32);
    assert!(skald.log().contains(&format!("traceID={trace}")), "{}", skald.log());
    // a request just before shutdown still gets its span out
    assert_eq!(get(&format!("{}/loki/api/v1/labels", skald.url), &[], &hdr[..1]).status, 200);
    skald.stop();
    let n = spans.lock().unwrap().iter().filter(|s| s.name == "GET /loki/api/v1/labels").count();
    assert_eq!(n, 2);
}
