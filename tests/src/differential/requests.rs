//! The request parameters of [`Gen`]: windows, time formats, steps and the endpoints, drawn as
//! `tests/tools/differential_gen.py` draws them.

use super::gen::{Gen, T0};
use crate::replay::Request;

const NS: i64 = 1_000_000_000;
const MIN: i64 = 60 * NS;
const DAY: i64 = 86_400 * NS;

/// `ns` as RFC 3339 in UTC, with the fraction's trailing zeros cut (Python's recorder writes it
/// so).
pub fn rfc3339(ns: i64) -> String {
    let (secs, frac) = (ns.div_euclid(NS), ns.rem_euclid(NS));
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut text =
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    if frac != 0 {
        text.push_str(format!(".{frac:09}").trim_end_matches('0'));
    }
    text + "Z"
}

type Params = Vec<(String, String)>;

fn request(path: &str, params: Params) -> Request {
    Request { name: String::new(), path: path.to_string(), params, headers: Vec::new() }
}

fn add(p: &mut Params, k: &str, v: impl Into<String>) {
    p.push((k.to_string(), v.into()));
}

impl Gen {
    fn when(&mut self, ns: i64) -> String {
        match self.weighted(&[("ns", 70), ("rfc", 12), ("secs", 10), ("fsecs", 8)]) {
            "ns" => ns.to_string(),
            "secs" => (ns / NS).to_string(),
            "fsecs" => format!("{}.{:03}", ns / NS, ns / 1_000_000 % 1000),
            _ => rfc3339(ns),
        }
    }

    fn n(&mut self, n: usize) -> i64 {
        self.below(n) as i64
    }

    fn window(&mut self) -> (i64, i64) {
        match self.weighted(&[
            ("main", 70),
            ("edge", 10),
            ("backfill", 8),
            ("wide", 7),
            ("empty", 5),
        ]) {
            "main" => {
                let mut start = T0 + self.n(50) * MIN;
                if self.pct(30) {
                    start += self.n(60_000) * 1_000_000 + self.n(1000);
                }
                let mins: i64 = self
                    .pick(&["5", "10", "17", "30", "45", "60", "70", "120"])
                    .parse()
                    .unwrap_or(5);
                (start, start + mins * MIN)
            }
            "edge" => {
                let start = T0 - self.n(10) * MIN;
                (start, T0 + self.n(70) * MIN + 1)
            }
            "backfill" => {
                let start = T0 - 3 * DAY - self.n(10) * MIN;
                let mins: i64 = self.pick(&["5", "20", "60"]).parse().unwrap_or(5);
                (start, start + mins * MIN)
            }
            "wide" => (T0 - 3 * DAY - 3600 * NS, T0 + 2 * 3600 * NS),
            _ => (T0 + 5 * 3600 * NS, T0 + 5 * 3600 * NS + 30 * MIN),
        }
    }

    fn step(&mut self, start: i64, end: i64) -> Option<String> {
        let span = ((end - start) / NS).max(1);
        match self.weighted(&[("fixed", 55), ("odd", 20), ("frac", 10), ("long", 5), ("auto", 10)])
        {
            "fixed" if span <= 7200 => {
                Some(self.pick(&["15s", "30s", "1m", "60", "5m", "2m", "1m30s", "10s"]).to_string())
            }
            "fixed" => Some(self.pick(&["1h", "2h", "3600", "30m"]).to_string()),
            "odd" => Some((span / 97 + self.n(13)).max(7).to_string()),
            "frac" => {
                let whole = (span / 200).max(5) + self.n(40);
                Some(format!("{whole}.{}", 1 + self.n(9)))
            }
            "long" => Some(format!("{}s", span + 1 + self.n(3600))),
            _ => None,
        }
    }

    fn range_request(&mut self, query: String, metric: bool) -> Request {
        let (start, end) = self.window();
        let mut p = vec![("query".to_string(), query)];
        let (s, e) = (self.when(start), self.when(end));
        add(&mut p, "start", s);
        add(&mut p, "end", e);
        if metric {
            if let Some(st) = self.step(start, end) {
                add(&mut p, "step", st);
            }
            if self.pct(10) {
                let v = self.pick(&["10", "100", "1000"]);
                add(&mut p, "limit", v);
            }
        } else {
            if self.pct(80) {
                let v = self.pick(&["1", "5", "20", "50", "100", "100", "250"]);
                add(&mut p, "limit", v);
            }
            if self.pct(60) {
                let v = self.pick(&["backward", "forward", "FORWARD"]);
                add(&mut p, "direction", v);
            }
            if self.pct(12) {
                let v = self.pick(&["10s", "1m", "30", "5m"]);
                add(&mut p, "interval", v);
            }
            if self.pct(5) {
                let v = self.pick(&["1m", "15s"]);
                add(&mut p, "step", v);
            }
        }
        request("/loki/api/v1/query_range", p)
    }

    fn instant_request(&mut self) -> Request {
        let mut t = T0 + self.n(75) * MIN;
        if self.pct(30) {
            t += self.n(60_000) * 1_000_000;
        }
        let q = if self.pct(2) {
            self.log_query()
        } else if self.pct(5) {
            self.scalar()
        } else {
            self.metric(0, false)
        };
        let mut p = vec![("query".to_string(), q)];
        let when = self.when(t);
        add(&mut p, "time", when);
        if self.pct(10) {
            let v = self.pick(&["5", "100"]);
            add(&mut p, "limit", v);
        }
        if self.pct(5) {
            add(&mut p, "direction", "forward");
        }
        request("/loki/api/v1/query", p)
    }

    fn meta_request(&mut self) -> Request {
        let (start, end) = self.window();
        let mut kind = self.weighted(&[
            ("labels", 12),
            ("values", 14),
            ("series", 14),
            ("stats", 10),
            ("volume", 10),
            ("volume_range", 8),
            ("dlabels", 8),
            ("dfields", 10),
            ("dvalues", 8),
            ("since", 4),
            ("patterns", 2),
        ]);
        let (s, e) = (self.when(start), self.when(end));
        let mut p = vec![("start".to_string(), s), ("end".to_string(), e)];
        let sel = self.selector();
        if kind == "since" {
            let since = self.pick(&["1h", "30m", "72h", "5m"]);
            p = vec![
                ("end".to_string(), end.to_string()),
                ("since".to_string(), since.to_string()),
            ];
            kind = self.pick(&["labels", "values", "series"]);
        }
        match kind {
            "labels" => {
                if self.pct(50) {
                    add(&mut p, "query", sel);
                }
                request("/loki/api/v1/labels", p)
            }
            "values" => {
                let name = self.pick(&[
                    "app",
                    "cluster",
                    "pod",
                    "namespace",
                    "host",
                    "service_name",
                    "nope",
                    "level",
                ]);
                if self.pct(50) {
                    add(&mut p, "query", sel);
                }
                request(&format!("/loki/api/v1/label/{name}/values"), p)
            }
            "series" => {
                for _ in 0..1 + self.below(2) {
                    let m = self.selector();
                    add(&mut p, "match[]", m);
                }
                request("/loki/api/v1/series", p)
            }
            "stats" => {
                add(&mut p, "query", sel);
                request("/loki/api/v1/index/stats", p)
            }
            "volume" | "volume_range" => {
                add(&mut p, "query", sel);
                if self.pct(40) {
                    let v = self.pick(&["1", "3", "100"]);
                    add(&mut p, "limit", v);
                }
                if self.pct(30) {
                    let v = self.pick(&["app", "cluster,pod", "namespace"]);
                    add(&mut p, "targetLabels", v);
                }
                if self.pct(20) {
                    let v = self.pick(&["labels", "series"]);
                    add(&mut p, "aggregateBy", v);
                }
                if kind == "volume_range" {
                    let v = self.pick(&["60", "5m", "1h", "17m"]);
                    add(&mut p, "step", v);
                    return request("/loki/api/v1/index/volume_range", p);
                }
                request("/loki/api/v1/index/volume", p)
            }
            "dlabels" => {
                add(&mut p, "query", sel);
                request("/loki/api/v1/detected_labels", p)
            }
            "dfields" => {
                let parts = self.pipeline(2);
                let mut all = vec![sel];
                all.extend(parts);
                add(&mut p, "query", all.join(" "));
                if self.pct(30) {
                    let v = self.pick(&["5", "100", "1000"]);
                    add(&mut p, "limit", v);
                }
                if self.pct(20) {
                    let v = self.pick(&["10", "100"]);
                    add(&mut p, "line_limit", v);
                }
                request("/loki/api/v1/detected_fields", p)
            }
            "dvalues" => {
                let name = self.pick(&[
                    "level",
                    "status",
                    "latency",
                    "user",
                    "msg",
                    "detected_level",
                    "nope",
                    "client",
                ]);
                add(&mut p, "query", sel);
                request(&format!("/loki/api/v1/detected_field/{name}/values"), p)
            }
            _ => {
                add(&mut p, "query", sel);
                add(&mut p, "step", "1m");
                request("/loki/api/v1/patterns", p)
            }
        }
    }

    /// The next request (without a name or headers).
    pub fn request(&mut self) -> Request {
        match self.weighted(&[
            ("log", 33),
            ("metric", 35),
            ("instant", 14),
            ("meta", 16),
            ("broken", 2),
        ]) {
            "log" => {
                let q = self.log_query();
                self.range_request(q, false)
            }
            "metric" => {
                let q = self.metric(0, false);
                self.range_request(q, true)
            }
            "instant" => self.instant_request(),
            "meta" => self.meta_request(),
            _ => {
                let q = self.broken();
                self.range_request(q, false)
            }
        }
    }
}

/// `count` requests from `seed`, named `d00001`, ... as the recorder names them.
pub fn requests(seed: u64, count: usize) -> Vec<Request> {
    let mut g = Gen::new(seed);
    (0..count)
        .map(|i| {
            let mut r = g.request();
            r.name = format!("d{:05}", i + 1);
            r
        })
        .collect()
}
