//! The parameters of `POST /loki/api/v1/delete` and the tenant's `deletion_mode`, with Loki's
//! texts (recorded from Loki 3.x, `main-65e30f8`: each refusal is a 400 with the text as the
//! whole plain-text body).

use skald_logql::syntax::ast::{Expr, LogSelectorExpr, Stage};

/// A refused parameter: a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

fn err(s: &str) -> ParamError {
    ParamError(s.to_string())
}

/// Loki's `deletion_mode` (`limits_config`, per tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionMode {
    /// The delete API answers 403.
    Disabled,
    /// Requests hide lines from queries; chunks are never rewritten.
    FilterOnly,
    /// Requests hide lines, and the compactor rewrites the chunks holding them.
    FilterAndDelete,
}

/// Loki's text for a tenant whose `deletion_mode` is `disabled` (403).
pub const DELETION_NOT_AVAILABLE: &str = "deletion is not available for this tenant";

impl DeletionMode {
    /// Parses Loki's values; anything else is an error naming them.
    pub fn parse(s: &str) -> Result<DeletionMode, ParamError> {
        match s {
            "disabled" => Ok(DeletionMode::Disabled),
            "filter-only" => Ok(DeletionMode::FilterOnly),
            "filter-and-delete" => Ok(DeletionMode::FilterAndDelete),
            other => Err(ParamError(format!(
                "invalid deletion mode {other:?}: must be one of disabled, filter-only, filter-and-delete"
            ))),
        }
    }

    /// Whether the delete API is served and requests hide lines.
    pub fn enabled(self) -> bool {
        self != DeletionMode::Disabled
    }
}

/// A parsed creation request: the query as given, its window in ms (inclusive) and the
/// windows it is split into.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// The query, as given.
    pub query: String,
    /// The parts' windows `[start_ms, end_ms]`, in order; one unless split by `max_interval`.
    pub windows: Vec<(i64, i64)>,
}

/// Parses a deletion query: a log selector with optional pipeline stages (Loki's
/// `ParseLogSelector`; refused: `invalid query expression`).
pub fn parse_query(query: &str) -> Result<LogSelectorExpr, ParamError> {
    match skald_logql::syntax::parse_expr_unchecked(query) {
        Ok(Expr::Log(sel)) => Ok(sel),
        _ => Err(err("invalid query expression")),
    }
}

/// Loki's time parameter of the delete API: RFC 3339, else exactly ten digits of Unix
/// seconds; empty is `now_ms`. Milliseconds.
fn parse_time(value: Option<&str>, now_ms: i64) -> Result<i64, ()> {
    let Some(v) = value.filter(|v| !v.is_empty()) else { return Ok(now_ms) };
    if let Some(t) = skald_gocompat::time::layout::parse("2006-01-02T15:04:05Z07:00", v) {
        return Ok(t.unix_milli());
    }
    if v.len() != 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    v.parse::<i64>().map(|s| s * 1000).map_err(|_| ())
}

/// Parses `query`, `start`, `end` and `max_interval` as Loki's `AddDeleteRequestHandler`
/// does. `max_interval_ns` is `compactor.delete_max_interval` (0 = no limit).
pub fn parse_new_request(
    query: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    max_interval: Option<&str>,
    now_ms: i64,
    max_interval_ns: i64,
) -> Result<NewRequest, ParamError> {
    let query = query.filter(|q| !q.is_empty()).ok_or_else(|| err("query not set"))?;
    let sel = parse_query(query)?;
    let start = start.filter(|s| !s.is_empty()).ok_or_else(|| err("start time not set"))?;
    let start = parse_time(Some(start), now_ms)
        .map_err(|_| err("invalid start time: require unix seconds or RFC3339 format"))?;
    let end = parse_time(end, now_ms)
        .map_err(|_| err("invalid end time: require unix seconds or RFC3339 format"))?;
    if end > now_ms {
        return Err(err("deletes in the future are not allowed"));
    }
    if start >= end {
        return Err(err("start time can't be greater than or equal to end time"));
    }
    let span_ms = end - start;
    let max_ms = max_interval_ns / 1_000_000;
    // Loki splits only requests with line filters
    let mut interval_ms = 0;
    if has_filter(&sel) {
        interval_ms = match max_interval.filter(|m| !m.is_empty()) {
            None => {
                if span_ms < 1000 {
                    return Err(err(
                        "difference between start time and end time must be at least one second",
                    ));
                }
                if max_ms == 0 {
                    span_ms
                } else {
                    span_ms.min(max_ms)
                }
            }
            Some(m) => {
                let ns = skald_gocompat::duration::parse_duration(m)
                    .ok()
                    .filter(|ns| *ns >= 1_000_000_000)
                    .ok_or_else(|| {
                        err("invalid max_interval: valid time units are 's', 'm', 'h'")
                    })?;
                if max_interval_ns != 0 && ns > max_interval_ns {
                    return Err(ParamError(format!(
                        "max_interval can't be greater than {}",
                        skald_gocompat::duration::duration_string(max_interval_ns)
                    )));
                }
                if ns / 1_000_000 > span_ms {
                    return Err(ParamError(format!(
                        "max_interval can't be greater than the interval to be deleted ({})",
                        skald_gocompat::duration::duration_string(span_ms * 1_000_000)
                    )));
                }
                ns / 1_000_000
            }
        };
    }
    let windows = if interval_ms == 0 || interval_ms >= span_ms {
        vec![(start, end)]
    } else {
        // consecutive windows of `interval_ms`, each ending where the next starts (Loki keeps
        // that overlap of one millisecond so that no entry falls between two parts)
        let mut out = Vec::new();
        let mut s = start;
        while s < end {
            let e = (s + interval_ms).min(end);
            out.push((s, e));
            s = e;
        }
        out
    };
    Ok(NewRequest { query: query.to_string(), windows })
}

/// Whether the selector filters lines (Loki's `HasFilter`: a line filter or a label filter
/// stage). Without one a request deletes every line of its streams in its window, whatever
/// other stages it has; with one the whole pipeline decides per line.
pub fn has_filter(sel: &LogSelectorExpr) -> bool {
    sel.stages.iter().any(|s| matches!(s, Stage::LineFilter(_) | Stage::LabelFilter(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_441_394_625;

    fn parse(q: &str, s: &str, e: &str, m: &str) -> Result<NewRequest, ParamError> {
        let opt = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        let (q, s, e, m) = (opt(q), opt(s), opt(e), opt(m));
        parse_new_request(
            q.as_deref(),
            s.as_deref(),
            e.as_deref(),
            m.as_deref(),
            NOW,
            24 * 3600 * 1_000_000_000,
        )
    }

    fn text(r: Result<NewRequest, ParamError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.0,
        }
    }

    /// Answers recorded from Loki 3.x (`main-65e30f8`), `deletion_mode: filter-and-delete`.
    #[test]
    fn loki_texts() {
        assert_eq!(text(parse("", "", "", "")), "query not set");
        assert_eq!(text(parse(r#"{a="b"}"#, "", "", "")), "start time not set");
        assert_eq!(text(parse(r#"{a="b""#, "1796437794", "", "")), "invalid query expression");
        assert_eq!(
            text(parse(r#"sum(rate({a="b"}[1m]))"#, "1796437794", "", "")),
            "invalid query expression"
        );
        assert_eq!(
            text(parse(r#"{a="b"}"#, "abc", "", "")),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            text(parse(r#"{a="b"}"#, "1796430000.5", "", "")),
            "invalid start time: require unix seconds or RFC3339 format"
        );
        assert_eq!(
            text(parse(r#"{a="b"}"#, "1796437794", "1796444994", "")),
            "deletes in the future are not allowed"
        );
        assert_eq!(
            text(parse(r#"{a="b"}"#, "1796437794", "1796437794", "")),
            "start time can't be greater than or equal to end time"
        );
        assert_eq!(
            text(parse(r#"{a="b"} |= "x""#, "1796437794", "", "abc")),
            "invalid max_interval: valid time units are 's', 'm', 'h'"
        );
        assert_eq!(
            text(parse(r#"{a="b"} |= "x""#, "1796437794", "", "0.5s")),
            "invalid max_interval: valid time units are 's', 'm', 'h'"
        );
        assert_eq!(
            text(parse(r#"{a="b"} |= "x""#, "1796437794", "", "100h")),
            "max_interval can't be greater than 24h0m0s"
        );
        // Loki accepts a line filter whose regex does not compile
        assert_eq!(text(parse(r#"{a="b"} |~ "(x""#, "1796437794", "", "")), "ok");
        assert_eq!(text(parse(r#"{a="b"} | json"#, "1796437794", "", "")), "ok");
    }

    #[test]
    fn splits_by_max_interval_with_filters_only() {
        let r = parse(r#"{a="c"} |= "x""#, "2026-12-05T01:00:00Z", "2026-12-05T03:00:00Z", "1h")
            .unwrap();
        assert_eq!(
            r.windows,
            vec![(1_796_432_400_000, 1_796_436_000_000), (1_796_436_000_000, 1_796_439_600_000)]
        );
        let r = parse(r#"{a="c"}"#, "1796430000", "", "1h").unwrap();
        assert_eq!(r.windows, vec![(1_796_430_000_000, NOW)]);
        let r = parse(r#"{a="c"} |= "x""#, "2026-12-05T01:00:00.5Z", "1796440000", "").unwrap();
        assert_eq!(r.windows, vec![(1_796_432_400_500, 1_796_440_000_000)]);
    }

    #[test]
    fn deletion_modes() {
        assert_eq!(DeletionMode::parse("disabled").unwrap(), DeletionMode::Disabled);
        assert!(DeletionMode::parse("filter-only").unwrap().enabled());
        assert!(DeletionMode::parse("x").is_err());
    }
}
