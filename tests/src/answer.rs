//! Reading Loki-shaped answers the way clients do, for the tests that replay client traffic
//! (Grafana, logcli): each reader returns `Err` with a short reason instead of panicking, so a
//! test can report every failing request at once.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The outcome of one check.
pub type Check = Result<(), String>;
/// A label set of an answer.
pub type LabelMap = Map<String, Value>;
/// A matrix series: labels and `(seconds, value)` points.
pub type Series = (LabelMap, Vec<(f64, f64)>);

/// Returns `Err(format!(..))` from the enclosing function unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        let ok: bool = $cond;
        if !ok {
            return Err(format!($($arg)+));
        }
    };
}

/// The first 400 characters of a body, for messages.
pub fn short(s: &str) -> String {
    s.chars().take(400).collect()
}

/// `status: success`, the wanted `resultType`, and a `result` array.
pub fn success(b: &Value, result_type: &str) -> Check {
    ensure!(b["status"] == "success", "status field {}", b["status"]);
    ensure!(
        b["data"]["resultType"] == result_type,
        "resultType {} (want {result_type})",
        b["data"]["resultType"]
    );
    ensure!(b["data"]["result"].is_array(), "data.result is not an array");
    Ok(())
}

fn number_string(v: &Value, what: &str) -> Result<f64, String> {
    v.as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{what} is not a number string: {v}"))
}

/// The series of a matrix answer.
pub fn matrix(b: &Value) -> Result<Vec<Series>, String> {
    success(b, "matrix")?;
    let mut out = Vec::new();
    for s in b["data"]["result"].as_array().into_iter().flatten() {
        let metric = s["metric"].as_object().ok_or("a series without metric")?.clone();
        let mut points = Vec::new();
        for p in s["values"].as_array().ok_or("a series without values")? {
            let t = p[0].as_f64().ok_or_else(|| format!("point time is not a number: {p}"))?;
            points.push((t, number_string(&p[1], "point value")?));
        }
        out.push((metric, points));
    }
    Ok(out)
}

/// `(metric, seconds, value)` of a vector answer.
pub fn vector(b: &Value) -> Result<Vec<(LabelMap, f64, f64)>, String> {
    success(b, "vector")?;
    let mut out = Vec::new();
    for s in b["data"]["result"].as_array().into_iter().flatten() {
        let metric = s["metric"].as_object().ok_or("a sample without metric")?.clone();
        let p = &s["value"];
        let t = p[0].as_f64().ok_or_else(|| format!("sample time is not a number: {p}"))?;
        out.push((metric, t, number_string(&p[1], "sample value")?));
    }
    Ok(out)
}

/// A set of strings.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The names of a label set.
pub fn label_keys(m: &LabelMap) -> BTreeSet<String> {
    m.keys().cloned().collect()
}

/// Named checks reported as they run (`ok    name` / `FAIL  name: why`) and asserted together
/// at the end, so one run shows every failing request.
#[derive(Debug, Default)]
pub struct Tally {
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Reports one check's outcome.
    pub fn record(&mut self, name: &str, outcome: Check) {
        self.total += 1;
        match outcome {
            Ok(()) => println!("ok    {name}"),
            Err(e) => {
                println!("FAIL  {name}: {e}");
                self.failures.push(format!("{name}: {e}"));
            }
        }
    }

    /// Prints `<what>: <passed> of <total> <how>` and fails the test unless every check passed.
    pub fn assert_all(self, what: &str, how: &str) {
        let total = self.total;
        println!("{what}: {} of {total} {how}", total - self.failures.len());
        assert!(
            self.failures.is_empty(),
            "{} of {total} failed:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}
