//! Compares Skald's answers with real Loki's recorded answers, with the rules of
//! `tests/data/reference/README.md` ("Fields and orderings to ignore") and `--ignore-stats`.

use serde_json::Value;

/// Lists Loki builds from Go maps (order varies run to run): compared as sets.
const UNORDERED_KEYS: [&str; 3] = ["detectedLabels", "fields", "values"];

fn sort_key(v: &Value) -> String {
    // serde_json's Map is a BTreeMap here, so to_string() sorts keys
    v.to_string()
}

/// Applies the normalisation rules to a recorded `{request, status, content_type, body}`.
pub fn normalise(mut record: Value) -> Value {
    let path = record["request"]["path"].as_str().unwrap_or("").to_string();
    if let Some(body) = record.get_mut("body") {
        match body {
            Value::String(s) => {
                if let (Some(a), Some(b)) = (s.find("for series: '{"), s.rfind("}'")) {
                    if b > a {
                        *s = format!("{}for series: '{{...}}'{}", &s[..a], &s[b + 2..]);
                    }
                }
            }
            Value::Object(map) => {
                for k in UNORDERED_KEYS {
                    if let Some(Value::Array(items)) = map.get_mut(k) {
                        items.sort_by_key(sort_key);
                    }
                }
                if path.ends_with("/series") || path.ends_with("/patterns") {
                    if let Some(Value::Array(items)) = map.get_mut("data") {
                        items.sort_by_key(sort_key);
                    }
                }
            }
            _ => {}
        }
    }
    record
}

fn close_numbers(a: &str, b: &str) -> bool {
    if !(a.contains(['.', 'e', 'E']) || b.contains(['.', 'e', 'E'])) {
        return false;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            if x.is_nan() && y.is_nan() {
                return true;
            }
            let diff = (x - y).abs();
            diff <= 1e-12 || diff <= 1e-9 * x.abs().max(y.abs())
        }
        _ => false,
    }
}

/// Appends a line per difference between `a` (Loki) and `b` (Skald), skipping `stats`.
pub fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if k == "stats" {
                    continue;
                }
                let sub = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, &sub, out),
                    (Some(_), None) => out.push(format!("{sub}: only in Loki")),
                    (None, Some(_)) => out.push(format!("{sub}: only in Skald")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path}: length {} != {}", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y.iter()).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (Value::String(x), Value::String(y)) if x != y && close_numbers(x, y) => {}
        (Value::Number(x), Value::Number(y)) => {
            if x.as_f64() != y.as_f64() {
                out.push(format!("{path}: {x} != {y}"));
            }
        }
        _ => {
            if a != b {
                let s = |v: &Value| v.to_string().chars().take(160).collect::<String>();
                out.push(format!("{path}: {} != {}", s(a), s(b)));
            }
        }
    }
}

/// Compares a recorded Loki answer with Skald's, returning the differences.
pub fn compare(loki: Value, skald: Value) -> Vec<String> {
    let (a, b) = (normalise(loki), normalise(skald));
    let mut out = Vec::new();
    for key in ["status", "content_type", "body"] {
        diff(&a[key], &b[key], key, &mut out);
    }
    out
}
