//! [`Retention`]: how long a tenant's streams are kept, from its `limits_config`.

use std::time::Duration;

use skald_common::limits::Limits;
use skald_model::{LabelMatcher, Labels};

/// Why a retention rule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// A `retention_stream` selector does not parse.
    #[error("retention_stream selector `{selector}`: {reason}")]
    BadSelector {
        /// The selector.
        selector: String,
        /// The parser's message.
        reason: String,
    },
}

/// A tenant's retention, as Loki applies it: among the `retention_stream` rules whose selector
/// matches a stream, the one with the highest priority sets its period (on a tie, the shorter
/// period); a stream no rule matches keeps the tenant's `retention_period`. A period of 0
/// keeps data forever.
#[derive(Debug, Clone)]
pub struct Retention {
    period: Duration,
    rules: Vec<(Vec<LabelMatcher>, i64, Duration)>,
}

impl Retention {
    /// The retention `limits` set.
    pub fn new(limits: &Limits) -> Result<Retention, RetentionError> {
        let mut rules = Vec::with_capacity(limits.retention_stream.len());
        for r in &limits.retention_stream {
            let matchers = skald_logql::syntax::parse_matchers(&r.selector).map_err(|e| {
                RetentionError::BadSelector { selector: r.selector.clone(), reason: e.to_string() }
            })?;
            rules.push((matchers, r.priority, r.period));
        }
        Ok(Retention { period: limits.retention_period, rules })
    }

    /// The retention of the stream `labels`; `None`: kept forever.
    pub fn period_of(&self, labels: &Labels) -> Option<Duration> {
        let mut best: Option<(i64, Duration)> = None;
        for (matchers, priority, period) in &self.rules {
            if !LabelMatcher::all_match(matchers, labels) {
                continue;
            }
            best = match best {
                Some((p, d)) if p > *priority || (p == *priority && d <= *period) => Some((p, d)),
                _ => Some((*priority, *period)),
            };
        }
        let period = best.map_or(self.period, |(_, d)| d);
        (!period.is_zero()).then_some(period)
    }

    /// True when nothing of the tenant ever expires.
    pub fn keeps_everything(&self) -> bool {
        self.period.is_zero() && self.rules.iter().all(|r| r.2.is_zero())
    }

    /// The shortest retention of any stream (`None`: all kept forever): no data newer than
    /// `now - shortest` expires.
    pub fn shortest(&self) -> Option<Duration> {
        std::iter::once(self.period)
            .chain(self.rules.iter().map(|r| r.2))
            .filter(|d| !d.is_zero())
            .min()
    }

    /// The earliest timestamp (ns) of the stream `labels` still kept at `now_ns`: entries
    /// before it are past retention. `i64::MIN` when kept forever.
    pub fn cutoff(&self, labels: &Labels, now_ns: i64) -> i64 {
        match self.period_of(labels) {
            Some(p) => now_ns.saturating_sub(i64::try_from(p.as_nanos()).unwrap_or(i64::MAX)),
            None => i64::MIN,
        }
    }

    /// The earliest timestamp any stream keeps at `now_ns` (the tenant-wide bound of a query's
    /// range when no rule is longer than the tenant's period); `i64::MIN` when some stream
    /// is kept forever.
    pub fn earliest_kept(&self, now_ns: i64) -> i64 {
        if self.period.is_zero() || self.rules.iter().any(|r| r.2.is_zero()) {
            return i64::MIN;
        }
        let longest =
            self.rules.iter().map(|r| r.2).chain([self.period]).max().unwrap_or(self.period);
        now_ns.saturating_sub(i64::try_from(longest.as_nanos()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> Limits {
        serde_yaml::from_str(yaml).unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn the_highest_priority_matching_rule_wins_else_the_tenant_period() {
        let r = Retention::new(&limits(
            "retention_period: 744h\nretention_stream:\n\
             - selector: '{namespace=\"dev\"}'\n  priority: 1\n  period: 24h\n\
             - selector: '{container=\"nginx\", level=\"debug\"}'\n  priority: 2\n  period: 48h\n\
             - selector: '{container=\"nginx\"}'\n  priority: 1\n  period: 72h\n",
        ))
        .unwrap();
        let l = |s: &str| Labels::parse(s).unwrap();
        assert_eq!(r.period_of(&l(r#"{namespace="dev"}"#)), Some(DAY));
        assert_eq!(r.period_of(&l(r#"{container="nginx",level="debug"}"#)), Some(2 * DAY));
        assert_eq!(r.period_of(&l(r#"{container="nginx"}"#)), Some(3 * DAY));
        // same priority, both match: the shorter period
        assert_eq!(r.period_of(&l(r#"{container="nginx",namespace="dev"}"#)), Some(DAY));
        assert_eq!(r.period_of(&l(r#"{app="x"}"#)), Some(31 * DAY));
        assert_eq!(r.shortest(), Some(DAY));
        assert!(!r.keeps_everything());
        let now = 100 * 86_400_000_000_000;
        assert_eq!(r.cutoff(&l(r#"{namespace="dev"}"#), now), 99 * 86_400_000_000_000);
        assert_eq!(r.earliest_kept(now), 69 * 86_400_000_000_000);
    }

    #[test]
    fn zero_keeps_forever() {
        let r = Retention::new(&Limits::default()).unwrap();
        assert!(r.keeps_everything());
        assert_eq!(r.period_of(&Labels::parse(r#"{a="b"}"#).unwrap()), None);
        assert_eq!(r.earliest_kept(5), i64::MIN);
        // a rule on a tenant kept forever: only its streams expire
        let r =
            Retention::new(&limits("retention_stream:\n- selector: '{a=\"b\"}'\n  period: 24h\n"))
                .unwrap();
        assert!(!r.keeps_everything());
        assert_eq!(r.period_of(&Labels::parse(r#"{a="b"}"#).unwrap()), Some(DAY));
        assert_eq!(r.period_of(&Labels::parse(r#"{a="c"}"#).unwrap()), None);
        assert_eq!(r.earliest_kept(5), i64::MIN);
    }

    #[test]
    fn a_bad_selector_is_an_error() {
        let e = Retention::new(&limits("retention_stream:\n- selector: 'app=x'\n  period: 24h\n"))
            .unwrap_err();
        assert!(e.to_string().contains("app=x"), "{e}");
    }
}
