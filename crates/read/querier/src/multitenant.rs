//! Cross-tenant queries (`X-Scope-OrgID: a|b`, when `querier.multi_tenant_queries_enabled`):
//! every tenant's data is read as if it were one tenant's, with a `__tenant_id__` label added
//! to each stream, as Loki's multi-tenant querier does. A `__tenant_id__` matcher in a
//! selector picks tenants; the other matchers select streams within each.

use skald_logql::engine::{EngineError, SelectLimit, Source};
use skald_logql::syntax::ast::LogSelectorExpr;
use skald_model::{LabelMatcher, Labels, StreamBatch};

use crate::source::StoreSource;

/// The label that names a stream's tenant in a cross-tenant answer.
pub const TENANT_LABEL: &str = "__tenant_id__";

/// Splits `X-Scope-OrgID`'s `a|b|c` into tenants.
pub fn tenants(org_id: &str) -> Vec<&str> {
    org_id.split('|').filter(|t| !t.is_empty()).collect()
}

/// Splits `matchers` into the `__tenant_id__` ones and the rest, and lists the tenants the
/// former accept.
pub fn pick<'a>(
    org_ids: &[&'a str],
    matchers: &[LabelMatcher],
) -> (Vec<&'a str>, Vec<LabelMatcher>) {
    let (by_tenant, rest): (Vec<LabelMatcher>, Vec<LabelMatcher>) =
        matchers.iter().cloned().partition(|m| m.name == TENANT_LABEL);
    let picked = org_ids
        .iter()
        .copied()
        .filter(|t| {
            let l = Labels::from_vec(vec![skald_model::Label::new(TENANT_LABEL, *t)]);
            LabelMatcher::all_match(&by_tenant, &l)
        })
        .collect();
    (picked, rest)
}

/// `labels` with `__tenant_id__` added.
pub fn with_tenant(labels: &Labels, tenant: &str) -> Labels {
    let mut l = labels.clone();
    l.set(TENANT_LABEL, tenant);
    l
}

/// One source per tenant, read as one.
pub(crate) struct MultiTenantSource {
    pub(crate) sources: Vec<StoreSource>,
}

impl Source for MultiTenantSource {
    fn check_canceled(&self) -> Result<(), EngineError> {
        // every tenant's source shares the query's one cancel flag
        self.sources.first().map_or(Ok(()), Source::check_canceled)
    }

    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let ids: Vec<&str> = self.sources.iter().map(|s| s.tenant.as_str()).collect();
        let (picked, rest) = pick(&ids, &selector.matchers);
        let inner = LogSelectorExpr { matchers: rest, stages: selector.stages.clone() };
        let mut out: Vec<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>> =
            Vec::new();
        for src in self.sources.iter().filter(|s| picked.contains(&s.tenant.as_str())) {
            let tenant = src.tenant.clone();
            // the selection is collected per tenant: the inner selector borrows locally
            let batches: Vec<Result<StreamBatch, EngineError>> = src
                .select(&inner, start, end, limit)?
                .map(|r| {
                    r.map(|b| StreamBatch {
                        labels: with_tenant(&b.labels, &tenant),
                        entries: b.entries,
                    })
                })
                .collect();
            out.push(Box::new(batches.into_iter()));
        }
        Ok(Box::new(out.into_iter().flatten()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::MatchType;

    #[test]
    fn tenant_matchers_pick_tenants() {
        let ids = tenants("a|b||c");
        assert_eq!(ids, vec!["a", "b", "c"]);
        let m =
            |n: &str, t, v: &str| LabelMatcher::new(n, t, v).unwrap_or_else(|e| panic!("{e:?}"));
        let (picked, rest) = pick(
            &ids,
            &[m(TENANT_LABEL, MatchType::NotEqual, "b"), m("job", MatchType::Equal, "x")],
        );
        assert_eq!(picked, vec!["a", "c"]);
        assert_eq!(rest.len(), 1);
        let l = with_tenant(&Labels::from_vec(vec![skald_model::Label::new("job", "x")]), "a");
        assert_eq!(l.to_string(), r#"{__tenant_id__="a", job="x"}"#);
    }
}
