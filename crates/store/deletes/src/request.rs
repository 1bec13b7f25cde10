//! A delete request as stored ([`RequestGroup`]: the parts Loki's `max_interval` split it
//! into, each with its own status) and as listed ([`DeleteRequest`]).

use serde::{Deserialize, Serialize};

/// A part's processing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting: its lines are hidden from queries; the chunks still hold them.
    Received,
    /// The chunks holding its lines were rewritten without them.
    Processed,
}

/// One part of a request: a window of the request's query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// First millisecond deleted (inclusive).
    pub start_ms: i64,
    /// Last millisecond deleted (inclusive, as in Loki).
    pub end_ms: i64,
    /// Its state.
    pub status: Status,
    /// When it was marked processed, ms since the epoch (absent in parts processed before
    /// Skald recorded it, and in received ones). For the re-application window of
    /// `rewrite::process_pending`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_at_ms: Option<i64>,
}

/// A delete request as stored: one object per request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestGroup {
    /// Eight hex digits, as Loki's ids.
    pub request_id: String,
    /// The LogQL log selector (with optional line filters), as given.
    pub query: String,
    /// When it was created, ms since the epoch.
    pub created_at_ms: i64,
    /// Its parts, by time.
    pub parts: Vec<Part>,
}

impl RequestGroup {
    /// The merged view `GET /loki/api/v1/delete` lists: the parts' whole window, and
    /// `received`, `processed` or Loki's `N% Complete`.
    pub fn listed(&self) -> DeleteRequest {
        let start = self.parts.iter().map(|p| p.start_ms).min().unwrap_or(0);
        let end = self.parts.iter().map(|p| p.end_ms).max().unwrap_or(0);
        let done = self.parts.iter().filter(|p| p.status == Status::Processed).count();
        let status = match done {
            0 => "received".to_string(),
            n if n == self.parts.len() => "processed".to_string(),
            n => format!("{}% Complete", n * 100 / self.parts.len()),
        };
        DeleteRequest {
            request_id: self.request_id.clone(),
            start_time_ms: start,
            end_time_ms: end,
            query: self.query.clone(),
            status,
            created_at_ms: self.created_at_ms,
        }
    }
}

/// A listed delete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// The request's id.
    pub request_id: String,
    /// Start of its window, ms.
    pub start_time_ms: i64,
    /// End of its window, ms.
    pub end_time_ms: i64,
    /// Its query.
    pub query: String,
    /// `received`, `processed` or `N% Complete`.
    pub status: String,
    /// Creation time, ms.
    pub created_at_ms: i64,
}

/// A Prometheus `model.Time` as JSON: seconds, with the milliseconds as the shortest
/// decimal fraction (`1796437794`, `1796441394.625`, `1796432400.5`).
fn model_time(ms: i64) -> String {
    let (s, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        return s.to_string();
    }
    let f = format!("{frac:03}");
    format!("{s}.{}", f.trim_end_matches('0'))
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

/// The JSON answer of `GET /loki/api/v1/delete`, with Loki's fields and number forms (an
/// empty list is `[]`; `user_id` is always empty, as Loki writes it).
pub fn list_json(requests: &[DeleteRequest]) -> String {
    let mut out = String::from("[");
    for (i, r) in requests.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{{\"request_id\":{},\"start_time\":{},\"end_time\":{},\"query\":{},\"status\":{},\"created_at\":{},\"user_id\":\"\"}}",
            json_string(&r.request_id),
            model_time(r.start_time_ms),
            model_time(r.end_time_ms),
            json_string(&r.query),
            json_string(&r.status),
            model_time(r.created_at_ms),
        ));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start_ms: i64, end_ms: i64, status: Status) -> Part {
        Part { start_ms, end_ms, status, processed_at_ms: None }
    }

    /// The shape recorded from Loki 3.x (`main-65e30f8`).
    #[test]
    fn lists_like_loki() {
        let g = RequestGroup {
            request_id: "c0fb687a".into(),
            query: r#"{a="c"} |= "x""#.into(),
            created_at_ms: 1_796_441_404_491,
            parts: vec![part(1_796_432_400_500, 1_796_440_000_000, Status::Received)],
        };
        assert_eq!(
            list_json(&[g.listed()]),
            r#"[{"request_id":"c0fb687a","start_time":1796432400.5,"end_time":1796440000,"query":"{a=\"c\"} |= \"x\"","status":"received","created_at":1796441404.491,"user_id":""}]"#
        );
        assert_eq!(list_json(&[]), "[]");
    }

    #[test]
    fn merged_status() {
        let mut g = RequestGroup {
            request_id: "1".into(),
            query: "{a=\"b\"}".into(),
            created_at_ms: 0,
            parts: vec![
                part(0, 10, Status::Processed),
                part(10, 20, Status::Received),
                part(20, 30, Status::Received),
            ],
        };
        let l = g.listed();
        assert_eq!((l.start_time_ms, l.end_time_ms, l.status.as_str()), (0, 30, "33% Complete"));
        for p in &mut g.parts {
            p.status = Status::Processed;
        }
        assert_eq!(g.listed().status, "processed");
        assert_eq!(model_time(1_796_441_394_620), "1796441394.62");
    }
}
