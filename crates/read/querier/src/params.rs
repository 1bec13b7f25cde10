//! Request parameters as Loki reads them: timestamps, steps, limits, directions. The texts of
//! the errors are Loki's, since clients show them to users.

use std::collections::HashMap;

use skald_model::Direction;

use crate::error::QuerierError;

/// Request parameters, from the query string and (for POST) the form body.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (query string or body) and appends.
    pub fn extend_from_urlencoded(&mut self, raw: &[u8]) {
        for (k, v) in url::form_urlencoded::parse(raw) {
            self.pairs.push((k.into_owned(), v.into_owned()));
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// All parameters as a map of first values.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        for (k, v) in &self.pairs {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
        m
    }
}

/// Parses a Loki timestamp: integer nanoseconds (or seconds when at most 10 digits), float
/// seconds, or RFC3339(Nano). Empty → `default`.
pub fn parse_timestamp(value: Option<&str>, default: i64) -> Result<i64, QuerierError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(default) };
    if value.contains('.') {
        if let Ok(f) = value.parse::<f64>() {
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round() / 1000.0;
            return Ok((secs as i64).saturating_mul(1_000_000_000) + (frac * 1e9) as i64);
        }
    }
    match value.parse::<i64>() {
        Ok(n) if value.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => match chrono::DateTime::parse_from_rfc3339(value) {
            Ok(t) => Ok(t.timestamp_nanos_opt().unwrap_or(i64::MAX)),
            Err(_) => Err(QuerierError::BadRequest(format!(
                "cannot parse \"{value}\" to a valid timestamp"
            ))),
        },
    }
}

/// Parses a duration given as float seconds or as a Prometheus/Go duration (`5m`, `1h30m`,
/// `250ms`), returning nanoseconds.
pub fn parse_seconds_or_duration(value: &str) -> Result<i64, QuerierError> {
    if let Ok(f) = value.parse::<f64>() {
        if !f.is_finite() {
            return Err(QuerierError::BadRequest(format!(
                "cannot parse \"{value}\" to a valid duration"
            )));
        }
        return Ok((f * 1e9).round() as i64);
    }
    parse_duration(value).ok_or_else(|| {
        QuerierError::BadRequest(format!("cannot parse \"{value}\" to a valid duration"))
    })
}

/// Parses a Prometheus-style duration with Go units (`1h30m`, `250ms`, `1d`, `2w`, `1y`).
pub fn parse_duration(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: f64 = 0.0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        let num: f64 = s.get(start..i)?.parse().ok()?;
        let ustart = i;
        while i < b.len() && (b[i].is_ascii_alphabetic() || b[i] >= 0x80) {
            i += 1;
        }
        let unit = s.get(ustart..i)?;
        let mult: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            "w" => 7.0 * 86400e9,
            "y" => 365.0 * 86400e9,
            _ => return None,
        };
        total += num * mult;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    Some(total as i64)
}

/// Parses `direction`.
pub fn parse_direction(value: Option<&str>) -> Result<Direction, QuerierError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(Direction::Backward),
        Some(v) if v.is_empty() || v == "backward" => Ok(Direction::Backward),
        Some(v) if v == "forward" => Ok(Direction::Forward),
        Some(_) => Err(QuerierError::BadRequest(format!(
            "invalid direction '{}'",
            value.unwrap_or_default()
        ))),
    }
}

/// Parses `limit` (default 100).
pub fn parse_limit(value: Option<&str>) -> Result<u32, QuerierError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(100),
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| {
                QuerierError::BadRequest(format!(
                    "strconv.ParseInt: parsing \"{v}\": invalid syntax"
                ))
            })?;
            if n <= 0 {
                return Err(QuerierError::BadRequest("limit must be a positive value".to_string()));
            }
            Ok(n.min(u32::MAX as i64) as u32)
        }
    }
}

/// Now in nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Start and end of a range request: `start` (default end - since or end - 1h), `end`
/// (default now), `since` (relative to end).
pub fn parse_range(params: &Params, default_lookback_ns: i64) -> Result<(i64, i64), QuerierError> {
    let end = parse_timestamp(params.get("end"), now_ns())?;
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        Some(s) => parse_duration(s).ok_or_else(|| {
            QuerierError::BadRequest(format!("cannot parse \"{s}\" to a valid duration"))
        })?,
        None => default_lookback_ns,
    };
    let start = parse_timestamp(params.get("start"), end - since)?;
    Ok((start, end))
}

/// Loki's default step: `max(1s, floor((end - start) / 250))`, in whole seconds.
pub fn default_step_ns(start: i64, end: i64) -> i64 {
    let secs = ((end - start) as f64 / 1e9 / 250.0).floor().max(1.0);
    (secs as i64) * 1_000_000_000
}

/// `step` (a duration or float seconds; default [`default_step_ns`]), checked as Loki checks
/// it: positive, and at most 11,000 points over `[start, end]`.
pub fn parse_step(params: &Params, start: i64, end: i64) -> Result<i64, QuerierError> {
    let step_ns = match params.get("step").filter(|s| !s.is_empty()) {
        Some(s) => parse_seconds_or_duration(s)?,
        None => default_step_ns(start, end),
    };
    if step_ns <= 0 {
        return Err(QuerierError::BadRequest(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if (end - start) / step_ns > 11_000 {
        return Err(QuerierError::BadRequest(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    Ok(step_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(Some("1793491200000000000"), 0).unwrap(), 1793491200000000000);
        assert_eq!(parse_timestamp(Some("1793491200"), 0).unwrap(), 1793491200000000000);
        assert_eq!(parse_timestamp(Some("1793491200.5"), 0).unwrap(), 1793491200500000000);
        assert_eq!(parse_timestamp(Some("2026-11-01T00:00:00Z"), 0).unwrap(), 1793491200000000000);
        assert!(parse_timestamp(Some("yesterday"), 0).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds_or_duration("300").unwrap(), 300_000_000_000);
        assert_eq!(parse_seconds_or_duration("600000ms").unwrap(), 600_000_000_000);
        assert_eq!(parse_seconds_or_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert!(parse_seconds_or_duration("abc").is_err());
    }
}
