//! Label filter expressions: string matchers, numbers, durations, bytes and `ip()`, combined
//! with `and` / `or`.

use regex::Regex;
use skald_model::{LabelMatcher, MatchType};

use super::conv::{parse_bytes, parse_duration, parse_float};
use super::error::StageError;
use super::filter::compile_go_regex;
use super::ip::IpMatcher;
use super::labels::{LabelsBuilder, ERROR_LABEL};
use crate::syntax::ast::{CmpOp, LabelFilterExpr};

/// The label filter error label value.
pub(crate) const LABEL_FILTER_ERR: &str = "LabelFilterErr";

/// A compiled label filter.
#[derive(Debug, Clone)]
pub(crate) enum LabelFilterC {
    And(Box<LabelFilterC>, Box<LabelFilterC>),
    Or(Box<LabelFilterC>, Box<LabelFilterC>),
    String { name: String, op: MatchType, value: String, regex: Option<Regex> },
    Number { name: String, op: CmpOp, value: f64 },
    Duration { name: String, op: CmpOp, value_ns: i64 },
    Bytes { name: String, op: CmpOp, value: u64 },
    Ip { name: String, equal: bool, matcher: IpMatcher },
}

fn cmp<T: PartialOrd>(op: CmpOp, a: T, b: T) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
    }
}

impl LabelFilterC {
    /// Compiles a filter expression. Errors carry Loki's message.
    pub(crate) fn new(e: &LabelFilterExpr) -> Result<LabelFilterC, StageError> {
        Ok(match e {
            LabelFilterExpr::And(a, b) => {
                LabelFilterC::And(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                LabelFilterC::Or(Box::new(Self::new(a)?), Box::new(Self::new(b)?))
            }
            LabelFilterExpr::Paren(inner) => Self::new(inner)?,
            LabelFilterExpr::String(m) => Self::from_matcher(m)?,
            LabelFilterExpr::Number { name, op, value } => {
                LabelFilterC::Number { name: name.clone(), op: *op, value: *value }
            }
            LabelFilterExpr::Duration { name, op, value_ns, .. } => {
                LabelFilterC::Duration { name: name.clone(), op: *op, value_ns: *value_ns }
            }
            LabelFilterExpr::Bytes { name, op, value, .. } => {
                LabelFilterC::Bytes { name: name.clone(), op: *op, value: *value }
            }
            LabelFilterExpr::Ip { name, equal, pattern } => LabelFilterC::Ip {
                name: name.clone(),
                equal: *equal,
                matcher: IpMatcher::new(pattern)?,
            },
        })
    }

    fn from_matcher(m: &LabelMatcher) -> Result<LabelFilterC, StageError> {
        let regex = match m.op {
            MatchType::Regex | MatchType::NotRegex => Some(compile_go_regex(&m.value, true)?),
            _ => None,
        };
        Ok(LabelFilterC::String { name: m.name.clone(), op: m.op, value: m.value.clone(), regex })
    }

    /// Applies the filter; may set `__error__` on conversion failures (and then keeps the line).
    pub(crate) fn process(&self, lbs: &mut LabelsBuilder) -> bool {
        match self {
            LabelFilterC::And(a, b) => {
                let l = a.process(lbs);
                let r = b.process(lbs);
                l && r
            }
            LabelFilterC::Or(a, b) => a.process(lbs) || b.process(lbs),
            LabelFilterC::String { name, op, value, regex } => {
                let v = if name == ERROR_LABEL { lbs.err() } else { lbs.get(name).unwrap_or("") };
                match op {
                    MatchType::Equal => v == value,
                    MatchType::NotEqual => v != value,
                    MatchType::Regex => regex.as_ref().is_some_and(|r| r.is_match(v)),
                    MatchType::NotRegex => !regex.as_ref().is_some_and(|r| r.is_match(v)),
                }
            }
            LabelFilterC::Number { name, op, value } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_float(v) {
                    Ok(x) => cmp(*op, x, *value),
                    Err(e) => conversion_error(lbs, &e.to_string()),
                }
            }
            LabelFilterC::Duration { name, op, value_ns } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_duration(v) {
                    Ok(x) => cmp(*op, x, *value_ns),
                    Err(e) => conversion_error(lbs, &e.to_string()),
                }
            }
            LabelFilterC::Bytes { name, op, value } => {
                let Some(v) = lbs.get(name) else { return false };
                match parse_bytes(v) {
                    Ok(x) => cmp(*op, x, *value),
                    Err(e) => conversion_error(lbs, &e.to_string()),
                }
            }
            LabelFilterC::Ip { name, equal, matcher } => {
                if lbs.has_err() {
                    // only string matchers filter out lines with errors
                    return true;
                }
                let Some(v) = lbs.get(name) else { return false };
                matcher.matches_in(v) == *equal
            }
        }
    }
}

fn conversion_error(lbs: &mut LabelsBuilder, details: &str) -> bool {
    // don't overwrite what might be a more useful error
    if !lbs.has_err() {
        lbs.set_error(LABEL_FILTER_ERR, Some(details));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::Labels;

    fn lbs(pairs: &[(&str, &str)]) -> LabelsBuilder {
        let mut b = LabelsBuilder::new(Labels::parse(r#"{job="web"}"#).unwrap());
        for (k, v) in pairs {
            b.set(super::super::labels::Category::Parsed, k, v);
        }
        b
    }

    fn num(name: &str, op: CmpOp, value: f64) -> LabelFilterExpr {
        LabelFilterExpr::Number { name: name.into(), op, value }
    }

    fn string(name: &str, op: MatchType, v: &str) -> LabelFilterExpr {
        LabelFilterExpr::String(LabelMatcher::new(name, op, v).unwrap())
    }

    #[test]
    fn numbers_and_errors() {
        let f = LabelFilterC::new(&num("status", CmpOp::Ge, 500.0)).unwrap();
        assert!(f.process(&mut lbs(&[("status", "503")])));
        assert!(!f.process(&mut lbs(&[("status", "200")])));
        assert!(!f.process(&mut lbs(&[])));
        let mut b = lbs(&[("status", "abc")]);
        assert!(f.process(&mut b));
        assert_eq!(b.err(), LABEL_FILTER_ERR);
        assert_eq!(b.err_details(), r#"strconv.ParseFloat: parsing "abc": invalid syntax"#);
    }

    /// Go's `ParseFloat` grammar, as a real Loki answered `{job="x"} | logfmt | v > 999`
    /// (2026-12): `1_000` and `1e3` pass, `0x10p0` is 16, `1__0` and `+nan` are invalid
    /// syntax, `1e400` and `0x1p1024` out of range.
    #[test]
    fn numbers_follow_go_parse_float() {
        let f = LabelFilterC::new(&num("v", CmpOp::Gt, 999.0)).unwrap();
        for v in ["1_000", "1e3"] {
            let mut b = lbs(&[("v", v)]);
            assert!(f.process(&mut b), "{v}");
            assert_eq!(b.err(), "", "{v}");
        }
        let mut b = lbs(&[("v", "0x10p0")]);
        assert!(!f.process(&mut b));
        assert_eq!(b.err(), "");
        for (v, why) in [
            ("1__0", "invalid syntax"),
            ("+nan", "invalid syntax"),
            ("1e400", "value out of range"),
            ("0x1p1024", "value out of range"),
        ] {
            let mut b = lbs(&[("v", v)]);
            assert!(f.process(&mut b), "{v}");
            assert_eq!(b.err(), LABEL_FILTER_ERR);
            assert_eq!(b.err_details(), format!("strconv.ParseFloat: parsing \"{v}\": {why}"));
        }
    }

    #[test]
    fn nested_and_or() {
        // (status = 500 or status = 503) and latency_ms > 900 or upstream_host = "static-1" and method = "DELETE"
        let e = LabelFilterExpr::Or(
            Box::new(LabelFilterExpr::And(
                Box::new(LabelFilterExpr::Paren(Box::new(LabelFilterExpr::Or(
                    Box::new(num("status", CmpOp::Eq, 500.0)),
                    Box::new(num("status", CmpOp::Eq, 503.0)),
                )))),
                Box::new(num("latency_ms", CmpOp::Gt, 900.0)),
            )),
            Box::new(LabelFilterExpr::And(
                Box::new(string("upstream_host", MatchType::Equal, "static-1")),
                Box::new(string("method", MatchType::Equal, "DELETE")),
            )),
        );
        let f = LabelFilterC::new(&e).unwrap();
        assert!(f.process(&mut lbs(&[("status", "503"), ("latency_ms", "901.5")])));
        assert!(!f.process(&mut lbs(&[("status", "503"), ("latency_ms", "12")])));
        assert!(f.process(&mut lbs(&[("upstream_host", "static-1"), ("method", "DELETE")])));
    }

    #[test]
    fn durations_bytes_ip_error_label() {
        let d = LabelFilterC::new(&LabelFilterExpr::Duration {
            name: "took".into(),
            op: CmpOp::Gt,
            value_ns: 60_000_000_000,
            literal: "1m".into(),
        })
        .unwrap();
        assert!(d.process(&mut lbs(&[("took", "2m3s")])));
        assert!(!d.process(&mut lbs(&[("took", "750us")])));
        let b = LabelFilterC::new(&LabelFilterExpr::Bytes {
            name: "size".into(),
            op: CmpOp::Gt,
            value: 5_000_000,
            literal: "5MB".into(),
        })
        .unwrap();
        assert!(b.process(&mut lbs(&[("size", "5.9MB")])));
        assert!(!b.process(&mut lbs(&[("size", "3KiB")])));
        let ip = LabelFilterC::new(&LabelFilterExpr::Ip {
            name: "client_ip".into(),
            equal: true,
            pattern: "10.0.0.0/8".into(),
        })
        .unwrap();
        assert!(ip.process(&mut lbs(&[("client_ip", "10.0.3.134")])));
        assert!(!ip.process(&mut lbs(&[("client_ip", "172.16.0.1")])));
        let e = LabelFilterC::new(&string("__error__", MatchType::NotEqual, "")).unwrap();
        let mut with_err = lbs(&[]);
        with_err.set_err("JSONParserErr");
        assert!(e.process(&mut with_err));
        assert!(!e.process(&mut lbs(&[])));
        let re = LabelFilterC::new(&string("job", MatchType::Regex, "hdfs|spark")).unwrap();
        assert!(!re.process(&mut lbs(&[])));
        assert!(re.process(&mut lbs(&[("job", "spark")])));
    }
}
