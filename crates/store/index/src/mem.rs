//! [`MemIndexStore`]: a brute-force in-memory reference implementation for tests.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::RwLock;
use skald_model::{LabelMatcher, Labels};

use crate::chunk_ref::{sort_dedup, ChunkRef};
use crate::error::Result;
use crate::store::{day_of, deleted_by_day, group_by_day, IndexStore, SeriesChunks};

/// An [`IndexStore`] that keeps every `(labels, chunk)` pair in memory and answers queries by
/// checking each series with [`LabelMatcher::all_match`]. It shares no query code with
/// [`crate::ObjectIndexStore`], so the conformance suite cross-checks the postings logic.
#[derive(Debug, Default)]
pub struct MemIndexStore {
    tenants: RwLock<HashMap<String, HashMap<Labels, Vec<ChunkRef>>>>,
}

impl MemIndexStore {
    /// An empty store.
    pub fn new() -> Self {
        MemIndexStore::default()
    }

    fn matching(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Vec<SeriesChunks> {
        let tenants = self.tenants.read();
        let Some(series) = tenants.get(tenant) else { return Vec::new() };
        let mut out: Vec<SeriesChunks> = series
            .iter()
            .filter(|(labels, _)| LabelMatcher::all_match(matchers, labels))
            .filter_map(|(labels, chunks)| {
                let mut chunks: Vec<ChunkRef> =
                    chunks.iter().filter(|c| c.overlaps(from, through)).copied().collect();
                sort_dedup(&mut chunks);
                (!chunks.is_empty()).then(|| SeriesChunks { labels: labels.clone(), chunks })
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

#[async_trait]
impl IndexStore for MemIndexStore {
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        // Same validation as the object store; the day grouping itself is not needed here.
        let grouped = group_by_day(tenant, refs)?;
        let mut tenants = self.tenants.write();
        let series = tenants.entry(tenant.to_string()).or_default();
        for (labels, c) in grouped.into_values().flatten() {
            series.entry(labels).or_default().push(c);
        }
        Ok(())
    }

    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()> {
        self.write_chunks(tenant, new).await?;
        group_by_day(tenant, old.clone())?;
        let mut tenants = self.tenants.write();
        let Some(series) = tenants.get_mut(tenant) else { return Ok(()) };
        for (labels, gone) in old {
            if let Some(chunks) = series.get_mut(&labels) {
                chunks.retain(|c| c.identity() != gone.identity());
                if chunks.is_empty() {
                    series.remove(&labels);
                }
            }
        }
        Ok(())
    }

    async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        skald_chunk_store::validate_tenant(tenant)?;
        let tenants = self.tenants.read();
        let mut days: Vec<i64> = tenants
            .get(tenant)
            .into_iter()
            .flat_map(|series| series.values().flatten())
            .flat_map(|c| day_of(c.from)..=day_of(c.through))
            .collect();
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        skald_chunk_store::validate_tenant(tenant)?;
        let gone: std::collections::HashSet<_> =
            deleted_by_day(&refs).into_values().flatten().collect();
        let mut tenants = self.tenants.write();
        if let Some(series) = tenants.get_mut(tenant) {
            for chunks in series.values_mut() {
                chunks.retain(|c| !gone.contains(&c.identity()));
            }
            series.retain(|_, chunks| !chunks.is_empty());
        }
        Ok(())
    }

    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>> {
        skald_chunk_store::validate_tenant(tenant)?;
        Ok(self.matching(tenant, matchers, from, through))
    }
}
