//! `labels`, `label/<name>/values` and `series`: the label sets of the streams a selector
//! names, from the index and the ingesters.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use skald_loghttp::marshal;
use skald_loghttp::params::{self, Params};
use skald_logql::syntax::{self, goutil};
use skald_model::{LabelMatcher, Labels};
use skald_proto::ingester::IngesterQuery;

use crate::error::QuerierError;
use crate::query::HOUR_NS;
use crate::{multitenant, Querier};

impl Querier {
    fn selector_matchers(&self, q: Option<&str>) -> Result<Vec<LabelMatcher>, QuerierError> {
        match q.filter(|s| !s.trim().is_empty()) {
            None => Ok(Vec::new()),
            Some(s) => {
                syntax::parse_matchers(s).map_err(|e| QuerierError::BadRequest(e.to_string()))
            }
        }
    }

    /// The checks Loki's querier applies to a `labels`, `label/<name>/values` or `series`
    /// range once `max_query_lookback` has moved its start: `max_query_length`, then an end
    /// before the start, which Loki reports as data past the lookback (whatever its value).
    fn check_label_range(&self, tenant: &str, start: i64, end: i64) -> Result<(), QuerierError> {
        self.check_query_length(tenant, start, end)?;
        if end < start {
            let lookback = self.limits(tenant).max_query_lookback.as_nanos().min(i64::MAX as u128);
            return Err(QuerierError::BadRequest(format!(
                "this data is no longer available, it is past now - max_query_lookback ({})",
                goutil::prom_duration_string(lookback as i64)
            )));
        }
        Ok(())
    }

    /// Label sets of every stream matching `matchers` with data in `[start, end)`, from the
    /// index and the ingesters.
    pub(crate) async fn stream_labels(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: i64,
        end: i64,
    ) -> Result<BTreeSet<Labels>, QuerierError> {
        let ids = multitenant::tenants(tenant);
        if ids.len() > 1 {
            let (picked, rest) = multitenant::pick(&ids, matchers);
            let mut out = BTreeSet::new();
            for t in picked {
                let one = Box::pin(self.stream_labels(t, &rest, start, end)).await?;
                out.extend(one.iter().map(|l| multitenant::with_tenant(l, t)));
            }
            return Ok(out);
        }
        let mut out = BTreeSet::new();
        let series = self
            .index
            .series(tenant, matchers, start, end.saturating_sub(1))
            .await
            .map_err(|e| QuerierError::Unavailable(format!("index lookup failed: {e}")))?;
        out.extend(series.into_iter().map(|s| s.labels));
        if let Some(ing) = &self.ingester {
            let q = IngesterQuery {
                matchers: matchers.to_vec(),
                start,
                end,
                line_contains: vec![],
                ..Default::default()
            };
            out.extend(ing.series(tenant, q).await?);
        }
        Ok(out)
    }

    /// `/loki/api/v1/labels` (name = None) and `/loki/api/v1/label/<name>/values`.
    pub async fn labels(
        &self,
        tenant: &str,
        p: &Params,
        name: Option<&str>,
    ) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        let matchers = self.selector_matchers(p.get("query"))?;
        let Some((start, end)) = self.lookback_range(tenant, start, end) else {
            return Ok(json!({"status": "success"}));
        };
        self.check_label_range(tenant, start, end)?;
        let streams = self.stream_labels(tenant, &matchers, start, end).await?;
        let mut values: BTreeSet<String> = BTreeSet::new();
        for labels in &streams {
            match name {
                None => values.extend(labels.iter().map(|l| l.name.clone())),
                Some(n) => values.extend(labels.get(n).map(str::to_string)),
            }
        }
        if values.is_empty() {
            return Ok(json!({"status": "success"}));
        }
        Ok(json!({"status": "success", "data": values.into_iter().collect::<Vec<_>>()}))
    }

    /// `/loki/api/v1/series`.
    pub async fn series(&self, tenant: &str, p: &Params) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        let mut selectors = p.get_all("match[]");
        selectors.extend(p.get_all("match"));
        if selectors.is_empty() {
            return Err(QuerierError::BadRequest("0 matchers provided".into()));
        }
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        let Some((start, end)) = self.lookback_range(tenant, start, end) else {
            return Ok(json!({"status": "success", "data": []}));
        };
        self.check_label_range(tenant, start, end)?;
        for s in selectors {
            let matchers = self.selector_matchers(Some(s))?;
            all.extend(self.stream_labels(tenant, &matchers, start, end).await?);
        }
        let data: Vec<Value> = all.iter().map(marshal::labels_json).collect();
        Ok(json!({"status": "success", "data": data}))
    }
}
