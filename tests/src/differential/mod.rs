//! The differential corpus (`tests/data/differential`): requests generated from LogQL's grammar
//! (`tests/tools/differential_gen.py`), recorded once against real Loki
//! (`scripts/record-differential.sh`), and replayed against `skald` on every test run.
//!
//! [`Corpus::load`] reads the push bodies, the push statuses Loki gave, the requests and Loki's
//! answers; [`run`] asks a server every request, a few at a time; [`classes`] names the
//! differences `docs/api.md` lists as deliberate deviations.

pub mod classes;
pub mod gen;
pub mod requests;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::data_dir;
use crate::replay::Request;

/// The tenant the corpus was recorded for.
pub const TENANT: &str = "tenant-d";
/// The most a decompressed answers file may hold.
const MAX_ANSWERS_BYTES: u64 = 512 * 1024 * 1024;

/// The recorded corpus.
pub struct Corpus {
    /// Push bodies, in push order: (file name, bytes).
    pub pushes: Vec<(String, Vec<u8>)>,
    /// Loki's answer to each push: `{file, status, content_type, body}`.
    pub push_results: Vec<Value>,
    /// The requests, in order.
    pub requests: Vec<Request>,
    /// Loki's answer to each request: `{name, status, content_type, body | body_bytes}`.
    pub answers: Vec<Value>,
}

/// The corpus folder, `tests/data/differential`.
pub fn corpus_dir() -> PathBuf {
    data_dir().join("differential")
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Corpus {
    /// The push bodies, in push order: (file name, bytes).
    pub fn load_pushes() -> Vec<(String, Vec<u8>)> {
        let dir = corpus_dir().join("push");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("differential push dir")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("push-"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let body = std::fs::read(dir.join(&n)).expect("push body");
                (n, body)
            })
            .collect()
    }

    /// Reads the corpus from [`corpus_dir`].
    pub fn load() -> Corpus {
        let dir = corpus_dir();
        let pushes = Self::load_pushes();
        let push_results = read_json(&dir.join("push-results.json"))
            .as_array()
            .cloned()
            .expect("push-results.json is a list");
        let requests = read_json(&dir.join("requests.json"))
            .as_array()
            .expect("requests.json is a list")
            .iter()
            .map(request)
            .collect::<Vec<_>>();
        let file = std::fs::File::open(dir.join("answers.jsonl.gz")).expect("answers.jsonl.gz");
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .take(MAX_ANSWERS_BYTES)
            .read_to_string(&mut text)
            .expect("answers.jsonl.gz is gzip of UTF-8");
        let answers: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an answers line is JSON"))
            .collect();
        assert_eq!(answers.len(), requests.len(), "one recorded answer per request");
        Corpus { pushes, push_results, requests, answers }
    }
}

/// A request of `requests.json` (`{name, path, params}`, a list value being a repeated
/// parameter), with the corpus tenant.
fn request(q: &Value) -> Request {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut params = Vec::new();
    for (k, v) in q["params"].as_object().into_iter().flatten() {
        match v {
            Value::Array(items) => params.extend(items.iter().map(|i| (k.clone(), text(i)))),
            other => params.push((k.clone(), text(other))),
        }
    }
    let headers = vec![("X-Scope-OrgID".to_string(), TENANT.to_string())];
    Request { name: text(&q["name"]), path: text(&q["path"]), params, headers }
}

/// An answer as the recorder stores it: `{status, content_type, body}` with a JSON body parsed,
/// other UTF-8 text as a string, and anything else as `{"base64": ...}` under `body_bytes`.
pub fn stored_answer(status: u16, content_type: &str, raw: &[u8]) -> Value {
    let (key, body) = match std::str::from_utf8(raw) {
        Ok(text) => {
            ("body", serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())))
        }
        Err(_) => ("body_bytes", serde_json::json!({ "base64": base64(raw) })),
    };
    let mut v = serde_json::json!({ "status": status, "content_type": content_type });
    v[key] = body;
    v
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends one request to `url` and stores the answer as [`stored_answer`] does.
pub fn ask(url: &str, r: &Request) -> Value {
    let mut req = ureq::get(&format!("{url}{}", r.path)).timeout(Duration::from_secs(120));
    for (k, v) in &r.params {
        req = req.query(k, v);
    }
    for (k, v) in &r.headers {
        req = req.set(k, v);
    }
    let resp = match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => {
            return serde_json::json!({"status": 0, "content_type": "", "body": e.to_string()})
        }
    };
    let status = resp.status();
    let ctype = resp.header("Content-Type").unwrap_or("").to_string();
    let mut raw = Vec::new();
    let read = resp.into_reader().take(MAX_ANSWERS_BYTES).read_to_end(&mut raw);
    if let Err(e) = read {
        return serde_json::json!({"status": status, "content_type": ctype, "body": e.to_string()});
    }
    stored_answer(status, &ctype, &raw)
}

/// Asks `url` every request, `workers` at a time; the answers in request order.
pub fn run(url: &str, requests: &[Request], workers: usize) -> Vec<Value> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(vec![Value::Null; requests.len()]);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = requests.get(i) else { break };
                let a = ask(url, r);
                if let Ok(mut o) = out.lock() {
                    o[i] = a;
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}
