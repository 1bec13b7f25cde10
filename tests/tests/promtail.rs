//! promtail against a real `skald`.
//!
//! `tests/data/shippers/promtail/` holds the requests a real promtail (Grafana Loki v3.6.15,
//! built from its public source) sent while tailing two files of Loghub lines, captured byte
//! for byte (`PROVENANCE.md` there). Grafana Alloy's `loki.write` sends the same request shape:
//! snappy-compressed protobuf `PushRequest`s with `Content-Type: application/x-protobuf`.
//!
//! The replay test sends every recorded request unchanged (request line, headers in their
//! order, body; only `Host` names Skald's port), then reads everything back through
//! `/loki/api/v1/query_range` and compares it with what the recorded bodies contain, decoded
//! here: every line, timestamp, stream label set (the scrape labels, the `labels` stage's and
//! the client's `external_labels`) and the structured metadata, once with
//! `X-Loki-Response-Encoding-Flags: categorize-labels` and once without (metadata then joins the
//! stream labels). Skald adds what Loki's distributor adds by default: `service_name` (from
//! `job`) and `detected_level` metadata; the test expects those too. When a Grafana `promtail` is on PATH, the second test runs it against Skald
//! on a temporary file and checks that its lines arrive; without one it says so and passes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;
use skald_integration_tests::{
    data_dir, get, grafana_tool_on_path, not_run, now_ns, post, temp_dir, Skald,
};
use skald_proto::logproto::PushRequest;

const CONFIG: &str = "auth_enabled: true
limits_config:
  reject_old_samples: false
  allow_structured_metadata: true
";

/// Most a recorded body may decompress to (promtail's default batch is 1 MiB).
const MAX_DECOMPRESSED: usize = 16 << 20;

type Labels = BTreeMap<String, String>;
/// One entry: timestamp (ns), line, structured metadata.
type Row = (i64, String, Labels);

// ------------------------------------------------------------------------------ the recording

/// One captured request.
struct Recorded {
    name: String,
    method: String,
    path: String,
    /// Header lines in the order promtail sent them.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn fixture_dir() -> PathBuf {
    data_dir().join("shippers").join("promtail")
}

/// Every `NNN-headers.json` / `NNN-body.bin` pair, in capture order.
fn recorded() -> Vec<Recorded> {
    let dir = fixture_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.unwrap().file_name().to_str()?.strip_suffix("-headers.json").map(String::from)
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let meta: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("{name}-headers.json"))).unwrap(),
            )
            .unwrap();
            let headers = meta["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().to_string(), h[1].as_str().unwrap().to_string()))
                .collect();
            Recorded {
                method: meta["method"].as_str().unwrap().to_string(),
                path: meta["path"].as_str().unwrap().to_string(),
                headers,
                body: std::fs::read(dir.join(format!("{name}-body.bin"))).unwrap(),
                name,
            }
        })
        .collect()
}

/// Decodes a promtail body: raw (block) snappy around a protobuf `PushRequest`.
fn decode(body: &[u8]) -> PushRequest {
    let len = snap::raw::decompress_len(body).unwrap();
    assert!(len <= MAX_DECOMPRESSED, "body decompresses to {len} bytes");
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    PushRequest::decode(raw.as_slice()).unwrap()
}

/// Parses a label set as promtail writes it: `{a="x", b="y"}`, names sorted, values quoted with
/// Go's `strconv.Quote`.
fn parse_labels(s: &str) -> Labels {
    let inner = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')).unwrap();
    let mut out = Labels::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label {name} in {s}");
        let mut value = String::new();
        loop {
            match chars.next().unwrap() {
                '"' => break,
                '\\' => match chars.next().unwrap() {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    c @ ('\\' | '"') => value.push(c),
                    c => panic!("escape \\{c} in {s}: not expected in this recording"),
                },
                c => value.push(c),
            }
        }
        out.insert(name, value);
    }
}

fn ts_ns(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

/// What the recorded bodies contain: label set → entries, sorted.
fn expected(recs: &[Recorded]) -> BTreeMap<Labels, Vec<Row>> {
    let mut out: BTreeMap<Labels, Vec<Row>> = BTreeMap::new();
    for r in recs {
        for s in decode(&r.body).streams {
            let rows = out.entry(parse_labels(&s.labels)).or_default();
            for e in s.entries {
                let sm = e.structured_metadata.into_iter().map(|p| (p.name, p.value)).collect();
                rows.push((
                    ts_ns(e.timestamp.as_ref().unwrap()),
                    String::from_utf8(e.line).unwrap(),
                    sm,
                ));
            }
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

// ------------------------------------------------------------------------------ talking to skald

/// The recorded request as bytes for `port`: its request line and headers in the recorded
/// order (only `Host` rewritten), then the body.
fn raw_request(r: &Recorded, port: u16) -> Vec<u8> {
    let mut raw = format!("{} {} HTTP/1.1\r\n", r.method, r.path).into_bytes();
    for (k, v) in &r.headers {
        let v =
            if k.eq_ignore_ascii_case("host") { format!("127.0.0.1:{port}") } else { v.clone() };
        raw.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(&r.body);
    raw
}

/// A log query over `[start, end)`, forward; returns `(stream labels, entries)` per stream.
fn query(
    url: &str,
    tenant: &str,
    q: &str,
    start: i64,
    end: i64,
    categorize: bool,
) -> Vec<(Labels, Vec<Row>)> {
    let (st, en) = (start.to_string(), end.to_string());
    let mut headers = vec![("X-Scope-OrgID", tenant)];
    if categorize {
        headers.push(("X-Loki-Response-Encoding-Flags", "categorize-labels"));
    }
    let r = get(
        &format!("{url}/loki/api/v1/query_range"),
        &[("query", q), ("start", &st), ("end", &en), ("direction", "forward"), ("limit", "5000")],
        &headers,
    );
    assert_eq!(r.status, 200, "{q}: {}", r.body);
    let v = r.json();
    if categorize {
        assert_eq!(
            v["data"]["encodingFlags"],
            serde_json::json!(["categorize-labels"]),
            "{}",
            r.body
        );
    }
    let map = |m: &Value| -> Labels {
        m.as_object()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
            .unwrap_or_default()
    };
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let rows = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    if categorize {
                        let cat = e.get(2).unwrap_or_else(|| panic!("no 3rd element: {e}"));
                        let parsed = cat.get("parsed").and_then(Value::as_object);
                        assert!(
                            parsed.is_none_or(|p| p.is_empty()),
                            "parsed labels from a query without parsers: {e}"
                        );
                    } else {
                        assert_eq!(e.as_array().unwrap().len(), 2, "{e}");
                    }
                    (
                        e[0].as_str().unwrap().parse().unwrap(),
                        e[1].as_str().unwrap().to_string(),
                        map(&e
                            .get(2)
                            .map(|c| c["structuredMetadata"].clone())
                            .unwrap_or(Value::Null)),
                    )
                })
                .collect();
            (map(&s["stream"]), rows)
        })
        .collect()
}

/// Groups a query answer by stream, entries sorted.
fn by_stream(result: Vec<(Labels, Vec<Row>)>) -> BTreeMap<Labels, Vec<Row>> {
    let mut out: BTreeMap<Labels, Vec<Row>> = BTreeMap::new();
    for (labels, rows) in result {
        out.entry(labels).or_default().extend(rows);
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

/// Describes the first difference between two answers, if any.
fn diff(want: &BTreeMap<Labels, Vec<Row>>, got: &BTreeMap<Labels, Vec<Row>>) -> Option<String> {
    let want_keys: BTreeSet<_> = want.keys().collect();
    let got_keys: BTreeSet<_> = got.keys().collect();
    if want_keys != got_keys {
        return Some(format!(
            "streams differ:\n missing {:?}\n unexpected {:?}",
            want_keys.difference(&got_keys).collect::<Vec<_>>(),
            got_keys.difference(&want_keys).collect::<Vec<_>>()
        ));
    }
    for (labels, rows) in want {
        let g = &got[labels];
        if rows.len() != g.len() {
            return Some(format!(
                "{labels:?}: {} entries expected, {} returned",
                rows.len(),
                g.len()
            ));
        }
        if let Some((w, g)) = rows.iter().zip(g).find(|(w, g)| w != g) {
            return Some(format!("{labels:?}:\n expected {w:?}\n returned {g:?}"));
        }
    }
    None
}

/// Loki's default `limits_config.discover_service_name`: without a `service_name` label, the
/// distributor adds one from the first of these labels the stream has (else `unknown_service`).
/// Written out from Loki's documentation on purpose rather than taken from
/// `skald_common::limits::DEFAULT_DISCOVER_SERVICE_NAME`: the test's expectation stays
/// independent of the server's own list, so a wrong entry there fails here.
const SERVICE_NAME_SOURCES: [&str; 13] = [
    "service",
    "app",
    "application",
    "app_name",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "k8s_container_name",
    "component",
    "workload",
    "job",
    "k8s_job_name",
];

/// The values Loki's log level detection gives.
const LEVELS: [&str; 8] =
    ["trace", "debug", "info", "warn", "error", "critical", "fatal", "unknown"];

/// The stream labels Loki stores for pushed labels `l`.
fn with_service_name(mut l: Labels) -> Labels {
    if !l.contains_key("service_name") {
        let v = SERVICE_NAME_SOURCES.iter().find_map(|k| l.get(*k)).cloned();
        l.insert("service_name".into(), v.unwrap_or_else(|| "unknown_service".into()));
    }
    l
}

fn flush(url: &str) {
    let r = post(&format!("{url}/flush"), &[], b"");
    assert_eq!(r.status, 204, "flush: {}", r.body);
}

/// The lines of a Loghub sample as a file tailer sees them (split on `\n`; the samples end
/// lines with `\r\n`, and the `\r` stays part of the line).
fn loghub_lines(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data_dir().join("loghub").join(file)).unwrap();
    text.split_terminator('\n').map(String::from).collect()
}

// ------------------------------------------------------------------------------ replay

#[test]
fn recorded_promtail_pushes_replayed() {
    let recs = recorded();
    assert!(recs.len() >= 2, "expected several recorded pushes, found {}", recs.len());

    // The recording is what promtail's client sends (clients/pkg/promtail/client/client.go).
    let tenant = recs[0].header("X-Scope-OrgID").unwrap().to_string();
    for r in &recs {
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/loki/api/v1/push"),
            "{}",
            r.name
        );
        assert_eq!(r.header("Content-Type"), Some("application/x-protobuf"), "{}", r.name);
        assert!(r.header("User-Agent").unwrap().starts_with("promtail/"), "{}", r.name);
        assert_eq!(r.header("X-Scope-OrgID"), Some(tenant.as_str()), "{}", r.name);
        assert_eq!(
            r.header("Content-Length"),
            Some(r.body.len().to_string().as_str()),
            "{}",
            r.name
        );
        let streams = decode(&r.body).streams;
        let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
        println!(
            "{}: {} bytes, {} streams, {entries} entries",
            r.name,
            r.body.len(),
            streams.len()
        );
    }

    // What the bodies hold: the lines of the two tailed Loghub files, the scrape labels, the
    // `labels` stage's labels, the external labels and the structured metadata stage's pairs.
    let want = expected(&recs);
    let known: BTreeSet<String> =
        loghub_lines("OpenSSH_2k.log").into_iter().chain(loghub_lines("Apache_2k.log")).collect();
    let mut total = 0;
    let mut with_metadata = 0;
    for (labels, rows) in &want {
        assert_eq!(labels.get("cluster").map(String::as_str), Some("capture-lab"), "{labels:?}");
        assert_eq!(labels.get("shipper").map(String::as_str), Some("promtail"), "{labels:?}");
        match labels["job"].as_str() {
            "openssh" => assert!(labels.contains_key("host") && labels.contains_key("process")),
            "apache" => assert!(labels.contains_key("level")),
            j => panic!("unexpected job {j}"),
        }
        for (_, line, sm) in rows {
            assert!(known.contains(line), "not a Loghub line: {line:?}");
            with_metadata += usize::from(!sm.is_empty());
        }
        total += rows.len();
    }
    assert!(with_metadata > 0 && total > 200, "{total} entries, {with_metadata} with metadata");
    let min = want.values().flatten().map(|r| r.0).min().unwrap();
    let max = want.values().flatten().map(|r| r.0).max().unwrap();
    println!(
        "recording: {} requests, {} streams, {total} entries ({with_metadata} with structured metadata)",
        recs.len(),
        want.len()
    );

    let dir = temp_dir("promtail-replay");
    let skald = Skald::start(&dir, CONFIG);
    for r in &recs {
        let (status, _, body) =
            skald_integration_tests::send_raw(skald.http_port, &raw_request(r, skald.http_port));
        let body = String::from_utf8_lossy(&body).to_string();
        assert_eq!(status, 204, "{}: {body}", r.name);
    }
    // The recording's timestamps are old by now: queriers read them from the store.
    flush(&skald.url);

    // Stored as Loki stores them: with the discovered `service_name` (here: the job).
    let want: BTreeMap<Labels, Vec<Row>> =
        want.into_iter().map(|(l, rows)| (with_service_name(l), rows)).collect();
    let q = r#"{job=~".+"}"#;
    let mut got = by_stream(query(&skald.url, &tenant, q, min, max + 1, true));
    // Loki's `discover_log_levels` (on by default) adds `detected_level` to each entry's
    // metadata: a `level` stream label's value when there is one, else a guess from the line.
    for (labels, rows) in &mut got {
        for (_, line, sm) in rows.iter_mut() {
            let level = sm.remove("detected_level");
            let level = level.unwrap_or_else(|| panic!("no detected_level: {line:?} {labels:?}"));
            match labels.get("level") {
                Some(l) => assert_eq!(&level, l, "{line:?}"),
                None => assert!(LEVELS.contains(&level.as_str()), "{level} for {line:?}"),
            }
        }
        rows.sort();
    }
    if let Some(d) = diff(&want, &got) {
        panic!("categorize-labels answer differs from the recording: {d}");
    }

    // Without categorize-labels, structured metadata joins the stream labels (streams split).
    let mut want_flat: BTreeMap<Labels, Vec<Row>> = BTreeMap::new();
    for (labels, rows) in &want {
        for (ts, line, sm) in rows {
            let mut l = labels.clone();
            l.extend(sm.clone());
            want_flat.entry(l).or_default().push((*ts, line.clone(), Labels::new()));
        }
    }
    for rows in want_flat.values_mut() {
        rows.sort();
    }
    let mut got_flat = query(&skald.url, &tenant, q, min, max + 1, false);
    for (labels, _) in &mut got_flat {
        assert!(labels.remove("detected_level").is_some(), "no detected_level in {labels:?}");
    }
    let got_flat = by_stream(got_flat);
    if let Some(d) = diff(&want_flat, &got_flat) {
        panic!("plain answer differs from the recording: {d}");
    }

    // Another tenant sees nothing.
    assert!(query(&skald.url, "someone-else", q, min, max + 1, true).is_empty());
    println!(
        "replayed {} requests: {total} entries in {} streams read back",
        recs.len(),
        want.len()
    );
}

// ------------------------------------------------------------------------------ a real promtail

/// Kills the promtail process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn promtail_config(dir: &Path, url: &str, tenant: &str, log: &Path) -> String {
    format!(
        r#"server:
  disable: true
positions:
  filename: {positions}
clients:
  - url: {url}/loki/api/v1/push
    tenant_id: {tenant}
    batchwait: 200ms
    external_labels:
      cluster: live
scrape_configs:
  - job_name: live
    static_configs:
      - targets: [localhost]
        labels:
          job: promtail-live
          __path__: {log}
    pipeline_stages:
      - regex:
          expression: '^\w+ +\d+ [\d:]+ (?P<host>\S+) (?P<process>[\w-]+)\[(?P<pid>\d+)\]: (?P<msg>.*)$'
      - labels:
          host:
          process:
      - structured_metadata:
          pid:
"#,
        positions = dir.join("positions.yaml").display(),
        log = log.display(),
    )
}

/// Waits until the live stream holds `n` entries (30 s at most) and returns them.
fn wait_for(url: &str, tenant: &str, start: i64, n: usize) -> Vec<(Labels, Vec<Row>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let end = now_ns() + 60_000_000_000;
        let got = query(url, tenant, r#"{job="promtail-live"}"#, start, end, true);
        let count: usize = got.iter().map(|(_, r)| r.len()).sum();
        if count >= n || Instant::now() > deadline {
            assert_eq!(count, n, "entries from the live promtail");
            return got;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn real_promtail_against_skald_when_on_path() {
    let Some(bin) = grafana_tool_on_path("promtail") else {
        not_run(
            "promtail::real_promtail_against_skald_when_on_path",
            "no Grafana promtail on PATH (scripts/test.sh puts one there from ../shared/tools/grafana; see tests/README.md)",
        );
        return;
    };
    println!("running {}", bin.display());
    let tenant = "promtail-live";
    let dir = temp_dir("promtail-live");
    let skald = Skald::start(&dir, CONFIG);
    let start = now_ns() - 60_000_000_000;

    let ssh = loghub_lines("OpenSSH_2k.log");
    let (first, later) = (&ssh[300..340], &ssh[340..345]);
    let log = dir.join("live.log");
    std::fs::write(&log, first.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let config = dir.join("promtail.yaml");
    std::fs::write(&config, promtail_config(&dir, &skald.url, tenant, &log)).unwrap();
    let out = std::fs::File::create(dir.join("promtail.log")).unwrap();
    let _promtail = Running(
        Command::new(&bin)
            .arg(format!("-config.file={}", config.display()))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap(),
    );

    wait_for(&skald.url, tenant, start, first.len());
    // Lines appended while promtail runs arrive too.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for l in later {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let got = wait_for(&skald.url, tenant, start, first.len() + later.len());

    let mut lines = Vec::new();
    for (labels, rows) in &got {
        assert_eq!(labels.get("cluster").map(String::as_str), Some("live"), "{labels:?}");
        assert_eq!(labels.get("host").map(String::as_str), Some("LabSZ"), "{labels:?}");
        assert_eq!(labels.get("process").map(String::as_str), Some("sshd"), "{labels:?}");
        assert!(labels.contains_key("filename"), "{labels:?}");
        for (ts, line, sm) in rows {
            assert!(*ts >= start && *ts <= now_ns(), "timestamp {ts}");
            let pid = line.split_once('[').and_then(|(_, r)| r.split_once(']')).unwrap().0;
            assert_eq!(sm.get("pid").map(String::as_str), Some(pid), "{line:?}: {sm:?}");
            lines.push((*ts, line.clone()));
        }
    }
    // In file order: entries sorted by timestamp, where equal timestamps may come in any order.
    lines.sort();
    let sent: Vec<&String> = first.iter().chain(later).collect();
    assert_eq!(lines.len(), sent.len());
    let mut i = 0;
    while i < lines.len() {
        let j = i + lines[i..].iter().take_while(|(ts, _)| *ts == lines[i].0).count();
        let mut got: Vec<&String> = lines[i..j].iter().map(|(_, l)| l).collect();
        let mut want = sent[i..j].to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want, "lines {i}..{j} (by timestamp) differ from the file's");
        i = j;
    }
    println!("promtail delivered {} lines, with labels and structured metadata", lines.len());
}
