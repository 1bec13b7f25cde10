//! Request parameters as Loki reads them: timestamps, steps, limits, directions. The texts of
//! the errors are Loki's, since clients show them to users.

use std::collections::HashMap;

use skald_gocompat::strconv;
use skald_gocompat::time::layout::parse;
use skald_model::Direction;

use crate::error::ParamError;

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

/// Loki's layout for RFC 3339 timestamps (`time.RFC3339Nano`), as Go's `time.Parse` reads it.
const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// Parses a Loki timestamp as Loki's `parseTimestamp` does: float seconds when the value has a
/// `.` (Go's `ParseFloat`, milliseconds rounded), else integer seconds (at most 10 characters,
/// sign included) or nanoseconds, else RFC 3339. Empty → `default`. The error is Go's
/// `strconv.ParseInt` text, which Loki answers as it is for `time` (see [`parse_range`] for
/// `start` and `end`).
pub fn parse_timestamp(value: Option<&str>, default: i64) -> Result<i64, ParamError> {
    let Some(value) = value.filter(|v| !v.is_empty()) else { return Ok(default) };
    parse_time(value).map_err(|e| ParamError(e.to_string()))
}

fn parse_time(value: &str) -> Result<i64, strconv::NumError> {
    if value.contains('.') {
        if let Ok(f) = strconv::parse_float(value) {
            let secs = f.trunc();
            let frac = ((f - secs) * 1000.0).round() / 1000.0;
            return Ok((secs as i64)
                .saturating_mul(1_000_000_000)
                .saturating_add((frac * 1e9) as i64));
        }
    }
    match strconv::parse_int(value) {
        Ok(n) if value.len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(e) => match parse(RFC3339_NANO, value) {
            Some(t) => Ok(t.unix_nano()),
            None => Err(e),
        },
    }
}

/// Parses a duration as Loki's `parseSecondsOrDuration` does (`step`, `interval`): float
/// seconds (Go's `ParseFloat`, truncated to nanoseconds), else a Prometheus duration
/// ([`parse_model_duration`]); returns nanoseconds, with Loki's texts.
pub fn parse_seconds_or_duration(value: &str) -> Result<i64, ParamError> {
    if let Ok(f) = strconv::parse_float(value) {
        let ns = f * 1e9;
        // Go compares with float64(MaxInt64), i.e. 2^63
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if !ns.is_nan() && !(-LIMIT..=LIMIT).contains(&ns) {
            return Err(ParamError(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                strconv::quote(value)
            )));
        }
        // Go's float-to-int conversion truncates; 2^63 itself (and NaN) become MinInt64 on
        // amd64, which Loki then refuses as a negative step
        return Ok(if ns == LIMIT || ns.is_nan() { i64::MIN } else { ns as i64 });
    }
    parse_model_duration(value).map_err(|_| {
        ParamError(format!("cannot parse {} to a valid duration", strconv::quote(value)))
    })
}

/// Why Prometheus' `model.ParseDuration` refused its input; prints its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelDurationError {
    /// Not `<digits><unit>...` with units from the largest to the smallest.
    #[error("not a valid duration string: {}", strconv::quote(.0))]
    Invalid(String),
    /// A unit other than `y w d h m s ms`.
    #[error("unknown unit {} in duration {}", strconv::quote(.unit), strconv::quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// More than `i64::MAX` nanoseconds.
    #[error("duration out of range")]
    OutOfRange,
    /// The empty string.
    #[error("empty duration string")]
    Empty,
}

/// Prometheus' `model.ParseDuration` (Loki's `since`): whole numbers, each followed by one of
/// the units `y w d h m s ms` (365-day years, 7-day weeks), each unit at most once and from
/// the largest to the smallest; `0` alone is zero; no sign, no fraction. Nanoseconds.
pub fn parse_model_duration(s: &str) -> Result<i64, ModelDurationError> {
    match s {
        "0" => return Ok(0),
        "" => return Err(ModelDurationError::Empty),
        _ => {}
    }
    let invalid = || ModelDurationError::Invalid(s.to_string());
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_pos = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let v: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| !b.is_ascii_digit()).count();
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (pos, mult): (u32, u64) = match unit {
            "y" => (1, 365 * 86_400 * 1_000_000_000),
            "w" => (2, 7 * 86_400 * 1_000_000_000),
            "d" => (3, 86_400 * 1_000_000_000),
            "h" => (4, 3_600 * 1_000_000_000),
            "m" => (5, 60 * 1_000_000_000),
            "s" => (6, 1_000_000_000),
            "ms" => (7, 1_000_000),
            _ => {
                return Err(ModelDurationError::UnknownUnit {
                    unit: unit.to_string(),
                    input: s.to_string(),
                })
            }
        };
        if pos <= last_pos {
            return Err(invalid());
        }
        last_pos = pos;
        if v > (1u64 << 63) / mult {
            return Err(ModelDurationError::OutOfRange);
        }
        total = total.checked_add(v * mult).ok_or(ModelDurationError::OutOfRange)?;
        if total > i64::MAX as u64 {
            return Err(ModelDurationError::OutOfRange);
        }
    }
    Ok(total as i64)
}

/// Parses `direction`.
pub fn parse_direction(value: Option<&str>) -> Result<Direction, ParamError> {
    match value.map(|v| v.to_ascii_lowercase()) {
        None => Ok(Direction::Backward),
        Some(v) if v.is_empty() || v == "backward" => Ok(Direction::Backward),
        Some(v) if v == "forward" => Ok(Direction::Forward),
        Some(_) => Err(ParamError(format!("invalid direction '{}'", value.unwrap_or_default()))),
    }
}

/// Parses `limit` (default 100) as Loki does: Go's `strconv.Atoi`, then positive.
pub fn parse_limit(value: Option<&str>) -> Result<u32, ParamError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(100),
        Some(v) => {
            let n = strconv::atoi(v).map_err(|e| ParamError(e.to_string()))?;
            if n <= 0 {
                return Err(ParamError("limit must be a positive value".to_string()));
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

/// Start and end of a range request, as Loki's `bounds` reads them: `since` (a Prometheus
/// duration, default `default_lookback_ns`), then `end` (default now), then `start` (default
/// `since` before `end`, or before now when `end` is in the future). Each error names its
/// parameter, in Loki's words.
pub fn parse_range(params: &Params, default_lookback_ns: i64) -> Result<(i64, i64), ParamError> {
    parse_range_at(params, default_lookback_ns, now_ns())
}

/// [`parse_range`] with the current time given.
pub fn parse_range_at(
    params: &Params,
    default_lookback_ns: i64,
    now: i64,
) -> Result<(i64, i64), ParamError> {
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        Some(s) => parse_model_duration(s).map_err(|e| param_error("since", e))?,
        None => default_lookback_ns,
    };
    let end = match params.get("end").filter(|s| !s.is_empty()) {
        Some(v) => parse_time(v).map_err(|e| param_error("end", e))?,
        None => now,
    };
    let start = match params.get("start").filter(|s| !s.is_empty()) {
        Some(v) => parse_time(v).map_err(|e| param_error("start", e))?,
        // Loki counts `since` back from `end`, or from now when `end` is in the future (with
        // `end` a year ahead, `since=1h` still means the last hour)
        None => end.min(now).saturating_sub(since),
    };
    Ok((start, end))
}

/// The exclusive end a log query reads to. A log query reads `[start, end)`, except that
/// Loki reads the entries at `start` when `start == end`: the range becomes one nanosecond
/// long (recorded from Loki 3.x, main @ 65e30f8, `edge_log_start_equals_end_at_entry` in
/// tests/data/reference/loki-edges, for `query_range` and `/api/prom/query` alike).
pub fn log_query_end(start: i64, end: i64) -> i64 {
    if start == end {
        end.saturating_add(1)
    } else {
        end
    }
}

fn param_error(name: &str, e: impl std::fmt::Display) -> ParamError {
    ParamError(format!("could not parse '{name}' parameter: {e}"))
}

/// Loki's default step: `max(1s, floor((end - start) / 250))`, in whole seconds.
pub fn default_step_ns(start: i64, end: i64) -> i64 {
    let secs = (end.saturating_sub(start) as f64 / 1e9 / 250.0).floor().max(1.0);
    (secs as i64) * 1_000_000_000
}

/// `step` (a duration or float seconds; default [`default_step_ns`]), checked as Loki checks
/// it: positive, and at most 11,000 points over `[start, end]`.
pub fn parse_step(params: &Params, start: i64, end: i64) -> Result<i64, ParamError> {
    let step_ns = match params.get("step").filter(|s| !s.is_empty()) {
        Some(s) => parse_seconds_or_duration(s)?,
        None => default_step_ns(start, end),
    };
    check_step(step_ns, start, end)?;
    Ok(step_ns)
}

/// `step`'s checks, as Loki makes them: positive, and at most 11,000 points over
/// `[start, end]`.
pub fn check_step(step_ns: i64, start: i64, end: i64) -> Result<(), ParamError> {
    if step_ns <= 0 {
        return Err(ParamError(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end.saturating_sub(start) / step_ns > 11_000 {
        return Err(ParamError(
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter".into(),
        ));
    }
    Ok(())
}

/// `interval` (a duration or float seconds; default 0), which must not be negative.
pub fn parse_interval(params: &Params) -> Result<i64, ParamError> {
    let interval = match params.get("interval").filter(|s| !s.is_empty()) {
        Some(s) => parse_seconds_or_duration(s)?,
        None => 0,
    };
    if interval < 0 {
        return Err(ParamError("interval must be >= 0".into()));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<i64, ParamError>) -> String {
        r.unwrap_err().to_string()
    }

    fn params(q: &str) -> Params {
        let mut p = Params::default();
        p.extend_from_urlencoded(q.as_bytes());
        p
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(Some("1793491200000000000"), 0).unwrap(), 1793491200000000000);
        assert_eq!(parse_timestamp(Some("1793491200"), 0).unwrap(), 1793491200000000000);
        assert_eq!(parse_timestamp(Some("1793491200.5"), 0).unwrap(), 1793491200500000000);
        assert_eq!(parse_timestamp(Some("2026-11-01T00:00:00Z"), 0).unwrap(), 1793491200000000000);
        assert_eq!(
            parse_timestamp(Some("2026-11-01T01:00:00+01:00"), 0).unwrap(),
            1793491200000000000
        );
        // Go's ParseFloat reads hexadecimal floats; ParseInt a sign
        assert_eq!(parse_timestamp(Some("0x1.8p1"), 0).unwrap(), 3_000_000_000);
        assert_eq!(parse_timestamp(Some("+5"), 0).unwrap(), 5_000_000_000);
        // at most 10 characters, the sign included, are seconds
        assert_eq!(parse_timestamp(Some("-123456789"), 0).unwrap(), -123_456_789_000_000_000);
        assert_eq!(parse_timestamp(Some("-1234567890"), 0).unwrap(), -1_234_567_890);
        assert_eq!(parse_timestamp(None, 7).unwrap(), 7);
        // out of range: saturated, never a panic
        assert_eq!(parse_timestamp(Some("9223372036.9"), 0).unwrap(), i64::MAX);
        assert_eq!(parse_timestamp(Some("-1.5e300"), 0).unwrap(), i64::MIN);
        assert_eq!(parse_timestamp(Some(""), 7).unwrap(), 7);
    }

    #[test]
    fn timestamp_errors_are_go_texts() {
        // recorded from Loki 3.x (main-65e30f8), `/loki/api/v1/query?time=...`
        for (v, text) in [
            ("yesterday", r#"strconv.ParseInt: parsing "yesterday": invalid syntax"#),
            ("1e400", r#"strconv.ParseInt: parsing "1e400": invalid syntax"#),
            ("1.5e400", r#"strconv.ParseInt: parsing "1.5e400": invalid syntax"#),
            ("1.5.5", r#"strconv.ParseInt: parsing "1.5.5": invalid syntax"#),
            (
                "99999999999999999999",
                r#"strconv.ParseInt: parsing "99999999999999999999": value out of range"#,
            ),
            (
                "2026-13-01T00:00:00Z",
                r#"strconv.ParseInt: parsing "2026-13-01T00:00:00Z": invalid syntax"#,
            ),
            (
                "2026-12-01t00:00:00Z",
                r#"strconv.ParseInt: parsing "2026-12-01t00:00:00Z": invalid syntax"#,
            ),
            ("0x1p31", r#"strconv.ParseInt: parsing "0x1p31": invalid syntax"#),
        ] {
            assert_eq!(err(parse_timestamp(Some(v), 0)), text, "{v}");
        }
    }

    #[test]
    fn range_errors_name_the_parameter_since_first() {
        let e = |q: &str| parse_range(&params(q), 3_600_000_000_000).unwrap_err().to_string();
        assert_eq!(
            e("start=abc"),
            r#"could not parse 'start' parameter: strconv.ParseInt: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            e("end=abc&start=abc"),
            r#"could not parse 'end' parameter: strconv.ParseInt: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            e("end=abc&since=xyz"),
            r#"could not parse 'since' parameter: not a valid duration string: "xyz""#
        );
        assert_eq!(
            e("since=1.5h"),
            r#"could not parse 'since' parameter: unknown unit "." in duration "1.5h""#
        );
        assert_eq!(
            e("since=99999999y"),
            "could not parse 'since' parameter: duration out of range"
        );
        let (start, end) = parse_range(&params("end=7200&since=1h30m"), 0).unwrap();
        assert_eq!((start, end), (1_800_000_000_000, 7_200_000_000_000));
    }

    #[test]
    fn since_counts_back_from_now_when_end_is_in_the_future() {
        const H: i64 = 3_600_000_000_000;
        let now = 1_000 * H;
        let range = |q: &str| parse_range_at(&params(q), H, now).unwrap();
        // end in the past or now: since before end (recorded edge_log_since_with_end)
        assert_eq!(range(&format!("end={}&since=2h", 500 * H)), (498 * H, 500 * H));
        assert_eq!(range(&format!("end={now}&since=2h")), (998 * H, now));
        // end in the future: since before now, as in Loki 3.x (end 3h10s ahead and since=720h
        // gave `query length: 723h0m9.98s`)
        assert_eq!(range(&format!("end={}&since=2h", 2_000 * H)), (998 * H, 2_000 * H));
        assert_eq!(range(&format!("end={}", 2_000 * H)), (999 * H, 2_000 * H));
        assert_eq!(range(""), (999 * H, now));
        // start wins over since (recorded edge_log_since_and_start)
        assert_eq!(
            range(&format!("start={}&end={}&since=2h", 10 * H, 2_000 * H)),
            (10 * H, 2_000 * H)
        );
    }

    #[test]
    fn log_query_end_includes_start_when_start_equals_end() {
        assert_eq!(log_query_end(5, 5), 6);
        assert_eq!(log_query_end(5, 9), 9);
        assert_eq!(log_query_end(i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn model_durations() {
        assert_eq!(parse_model_duration("0").unwrap(), 0);
        assert_eq!(parse_model_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_model_duration("1d").unwrap(), 86_400_000_000_000);
        assert_eq!(parse_model_duration("1y2w3d4h5m6s7ms").unwrap(), 33_019_506_007_000_000);
        for (v, text) in [
            ("xyz", r#"not a valid duration string: "xyz""#),
            ("-1h", r#"not a valid duration string: "-1h""#),
            ("30m1h", r#"not a valid duration string: "30m1h""#),
            ("1h1h", r#"not a valid duration string: "1h1h""#),
            ("5", r#"not a valid duration string: "5""#),
            ("5ns", r#"unknown unit "ns" in duration "5ns""#),
            ("1.5h", r#"unknown unit "." in duration "1.5h""#),
            ("99999999y", "duration out of range"),
            ("", "empty duration string"),
        ] {
            assert_eq!(parse_model_duration(v).unwrap_err().to_string(), text, "{v}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds_or_duration("300").unwrap(), 300_000_000_000);
        assert_eq!(parse_seconds_or_duration("600000ms").unwrap(), 600_000_000_000);
        assert_eq!(parse_seconds_or_duration("1h30m").unwrap(), 5_400_000_000_000);
        assert_eq!(parse_seconds_or_duration("0.5").unwrap(), 500_000_000);
        // recorded from Loki 3.x (main-65e30f8), `query_range?step=...`
        for (v, text) in [
            ("abc", r#"cannot parse "abc" to a valid duration"#),
            ("1.5m", r#"cannot parse "1.5m" to a valid duration"#),
            ("5us", r#"cannot parse "5us" to a valid duration"#),
            ("-1m", r#"cannot parse "-1m" to a valid duration"#),
            ("1e400", r#"cannot parse "1e400" to a valid duration"#),
            ("1e300", r#"cannot parse "1e300" to a valid duration. It overflows int64"#),
            ("inf", r#"cannot parse "inf" to a valid duration. It overflows int64"#),
        ] {
            assert_eq!(err(parse_seconds_or_duration(v)), text, "{v}");
        }
        // NaN and 2^63 ns become negative, as Go's conversion makes them on amd64
        assert!(parse_seconds_or_duration("NaN").unwrap() < 0);
        assert!(parse_seconds_or_duration("9223372036.854775808").unwrap() < 0);
    }

    #[test]
    fn steps_and_intervals() {
        let step = |q: &str| parse_step(&params(q), 0, 600_000_000_000);
        assert_eq!(step("step=60").unwrap(), 60_000_000_000);
        assert_eq!(step("").unwrap(), 2_000_000_000);
        let negative = "zero or negative query resolution step widths are not accepted. Try a positive integer";
        for q in ["step=0", "step=-1", "step=1e-10", "step=NaN"] {
            assert_eq!(err(step(q)), negative, "{q}");
        }
        assert_eq!(
            err(step("step=0.01")),
            "exceeded maximum resolution of 11,000 points per time series. Try increasing the value of the step parameter"
        );
        assert_eq!(parse_interval(&params("interval=5m")).unwrap(), 300_000_000_000);
        assert_eq!(err(parse_interval(&params("interval=-1"))), "interval must be >= 0");
        assert_eq!(
            err(parse_interval(&params("interval=abc"))),
            r#"cannot parse "abc" to a valid duration"#
        );
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(Some("5")).unwrap(), 5);
        let e = |v: &str| parse_limit(Some(v)).unwrap_err().to_string();
        assert_eq!(e("abc"), r#"strconv.Atoi: parsing "abc": invalid syntax"#);
        assert_eq!(
            e("99999999999999999999"),
            r#"strconv.Atoi: parsing "99999999999999999999": value out of range"#
        );
        assert_eq!(e("0"), "limit must be a positive value");
    }
}
