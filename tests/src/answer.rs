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

const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// `index/stats` answer `(streams s, chunks c, entries e)` for lines at `ts` (ns) in `streams`
/// streams, the way Loki computes it: per UTC day and summed, so lines that span midnight count
/// their streams (and chunks) once per day and each day's share of a chunk is pro-rated, which
/// may round a few entries away. Within one day the numbers are exact. `got` describes the
/// answer in the message.
pub fn index_stats(got: &str, (s, c, e): (u64, u64, u64), ts: &[i64], streams: u64) -> Check {
    let lo = ts.iter().min().copied().unwrap_or_default();
    let hi = ts.iter().max().copied().unwrap_or_default();
    let days = (hi.div_euclid(DAY_NS) - lo.div_euclid(DAY_NS) + 1) as u64;
    let n = ts.len() as u64;
    if days == 1 {
        ensure!(
            s == streams && e == n && c >= streams,
            "{got} (want {streams} streams, {n} entries)"
        );
    } else {
        ensure!(
            (streams..=streams * days).contains(&s) && e <= n && e + c >= n && c >= streams,
            "{got} for {n} lines over {days} UTC days (want {streams}..{} streams, {n} entries less rounding)",
            streams * days
        );
    }
    Ok(())
}

/// `(stream, ts, line)` of live-tail frames (`loghttp.TailResponse`), checking the shape
/// Grafana's LiveStreams and logcli read: `streams[].stream` labels, `streams[].values[] =
/// [ns string, line]`, and an optional `dropped_entries[] = {labels, timestamp}`.
pub fn tail_entries(frames: &[Value]) -> Result<Vec<(LabelMap, i64, String)>, String> {
    let mut out = Vec::new();
    for f in frames {
        if let Some(d) = f.get("dropped_entries").filter(|d| !d.is_null()) {
            for e in d.as_array().ok_or_else(|| format!("dropped_entries {d}"))? {
                ensure!(e["timestamp"].is_string() && e["labels"].is_object(), "dropped entry {e}");
            }
        }
        let streams =
            f["streams"].as_array().ok_or_else(|| format!("frame without streams: {f}"))?;
        for s in streams {
            let stream = s["stream"].as_object().ok_or("tail stream without labels")?.clone();
            for v in s["values"].as_array().ok_or("tail stream without values")? {
                let t = v.as_array().ok_or("tail value is not an array")?;
                ensure!(t.len() == 2, "tail value {v} (want [ts, line])");
                let ts = t[0]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| format!("tail ts {}", t[0]))?;
                out.push((stream.clone(), ts, t[1].as_str().ok_or("tail line")?.to_string()));
            }
        }
    }
    Ok(out)
}

/// Reads live-tail frames until `deadline` or `done(frames)`; a tail the server closed is an
/// error.
pub fn read_tail_frames(
    w: &mut crate::ws::Ws,
    deadline: std::time::Instant,
    done: impl FnMut(&[Value]) -> bool,
) -> Result<Vec<Value>, String> {
    let r = crate::ws::read(w, deadline, done)?;
    match r.closed {
        Some(c) => Err(format!("tail closed: {c:?}")),
        None => Ok(r.frames),
    }
}
