//! [`PeriodIndexStore`]: several index stores in sequence, one per `schema_config` period,
//! answering as one.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use skald_model::{LabelMatcher, Labels};

use crate::chunk_ref::ChunkRef;
use crate::error::Result;
use crate::store::{sorted_union, IndexStore, Merger, SeriesChunks};

/// Index stores by period: period `i` covers `[start_i, start_{i+1})` (ns), the last one
/// everything after its start, and the first one everything before its start too (data older
/// than the first period is still found). A chunk is recorded in every period it overlaps; a
/// query asks every period its range overlaps, each for its part of the range, and merges the
/// answers (series by labels, chunks deduplicated).
pub struct PeriodIndexStore {
    periods: Vec<(i64, Arc<dyn IndexStore>)>,
}

impl std::fmt::Debug for PeriodIndexStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let starts: Vec<i64> = self.periods.iter().map(|p| p.0).collect();
        f.debug_struct("PeriodIndexStore").field("starts", &starts).finish()
    }
}

impl PeriodIndexStore {
    /// `periods`: (start in ns, store), in any order; must not be empty.
    pub fn new(mut periods: Vec<(i64, Arc<dyn IndexStore>)>) -> Self {
        periods.sort_by_key(|p| p.0);
        PeriodIndexStore { periods }
    }

    /// The closed range period `i` answers for: from its start (the first one from the
    /// beginning of time) to just before the next one's.
    fn bounds(&self, i: usize) -> (i64, i64) {
        let lo = if i == 0 { i64::MIN } else { self.periods[i].0 };
        let hi = self.periods.get(i + 1).map_or(i64::MAX, |n| n.0.saturating_sub(1));
        (lo, hi)
    }

    /// The periods overlapping `[from, through]`, each with its clipped range.
    fn spans(&self, from: i64, through: i64) -> Vec<(&Arc<dyn IndexStore>, i64, i64)> {
        let mut out = Vec::new();
        for (i, (_, store)) in self.periods.iter().enumerate() {
            let (lo, hi) = self.bounds(i);
            let (f, t) = (from.max(lo), through.min(hi));
            if f <= t {
                out.push((store, f, t));
            }
        }
        out
    }
}

#[async_trait]
impl IndexStore for PeriodIndexStore {
    async fn write_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        if self.periods.len() == 1 {
            return self.periods[0].1.write_chunks(tenant, refs).await;
        }
        let mut per: BTreeMap<usize, Vec<(Labels, ChunkRef)>> = BTreeMap::new();
        for (labels, c) in refs {
            for i in 0..self.periods.len() {
                let (lo, hi) = self.bounds(i);
                if c.from <= hi && c.through >= lo {
                    per.entry(i).or_default().push((labels.clone(), c));
                }
            }
        }
        for (i, refs) in per {
            self.periods[i].1.write_chunks(tenant, refs).await?;
        }
        Ok(())
    }

    /// Each period gets the refs overlapping it, as [`IndexStore::write_chunks`] splits them.
    async fn replace_chunks(
        &self,
        tenant: &str,
        old: Vec<(Labels, ChunkRef)>,
        new: Vec<(Labels, ChunkRef)>,
    ) -> Result<()> {
        if self.periods.len() == 1 {
            return self.periods[0].1.replace_chunks(tenant, old, new).await;
        }
        let mut per: BTreeMap<usize, (Vec<(Labels, ChunkRef)>, Vec<(Labels, ChunkRef)>)> =
            BTreeMap::new();
        for (which, refs) in [(0, old), (1, new)] {
            for (labels, c) in refs {
                for i in 0..self.periods.len() {
                    let (lo, hi) = self.bounds(i);
                    if c.from <= hi && c.through >= lo {
                        let slot = per.entry(i).or_default();
                        let list = if which == 0 { &mut slot.0 } else { &mut slot.1 };
                        list.push((labels.clone(), c));
                    }
                }
            }
        }
        for (i, (old, new)) in per {
            self.periods[i].1.replace_chunks(tenant, old, new).await?;
        }
        Ok(())
    }

    async fn days(&self, tenant: &str) -> Result<Vec<i64>> {
        let answers =
            futures::future::try_join_all(self.periods.iter().map(|(_, s)| s.days(tenant))).await?;
        let mut days: Vec<i64> = answers.into_iter().flatten().collect();
        days.sort_unstable();
        days.dedup();
        Ok(days)
    }

    async fn delete_chunks(&self, tenant: &str, refs: Vec<(Labels, ChunkRef)>) -> Result<()> {
        // every period may list a chunk (it is written to each it overlaps), and removing
        // what a period does not hold is a no-op
        for (_, s) in &self.periods {
            s.delete_chunks(tenant, refs.clone()).await?;
        }
        Ok(())
    }

    async fn compact_day(&self, tenant: &str, day: i64) -> Result<usize> {
        let mut replaced = 0;
        for (_, s) in &self.periods {
            replaced += s.compact_day(tenant, day).await?;
        }
        Ok(replaced)
    }

    async fn series(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from: i64,
        through: i64,
    ) -> Result<Vec<SeriesChunks>> {
        let spans = self.spans(from, through);
        if spans.len() == 1 {
            let (s, f, t) = spans[0];
            return s.series(tenant, matchers, f, t).await;
        }
        let answers = futures::future::try_join_all(
            spans.into_iter().map(|(s, f, t)| s.series(tenant, matchers, f, t)),
        )
        .await?;
        let mut merged = Merger::default();
        for s in answers.into_iter().flatten() {
            merged.add(s.labels, s.chunks);
        }
        Ok(merged.finish())
    }

    async fn label_names(
        &self,
        tenant: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        let answers = futures::future::try_join_all(
            self.spans(from, through)
                .into_iter()
                .map(|(s, f, t)| s.label_names(tenant, f, t, matchers)),
        )
        .await?;
        Ok(sorted_union(answers))
    }

    async fn label_values(
        &self,
        tenant: &str,
        name: &str,
        from: i64,
        through: i64,
        matchers: &[LabelMatcher],
    ) -> Result<Vec<String>> {
        let answers = futures::future::try_join_all(
            self.spans(from, through)
                .into_iter()
                .map(|(s, f, t)| s.label_values(tenant, name, f, t, matchers)),
        )
        .await?;
        Ok(sorted_union(answers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemIndexStore;

    fn chunk(fp: u64, from: i64, through: i64) -> ChunkRef {
        ChunkRef {
            fingerprint: fp,
            from,
            through,
            checksum: 1,
            entries: 1,
            uncompressed_bytes: 1,
            compressed_bytes: 1,
            stats_bytes: 1,
        }
    }

    #[tokio::test]
    async fn a_boundary_is_invisible_to_queries() {
        let a = Arc::new(MemIndexStore::new());
        let b = Arc::new(MemIndexStore::new());
        let p =
            PeriodIndexStore::new(vec![(100, b.clone() as Arc<dyn IndexStore>), (0, a.clone())]);
        let x = Labels::parse(r#"{app="x"}"#).unwrap();
        let y = Labels::parse(r#"{app="y"}"#).unwrap();
        p.write_chunks(
            "t",
            vec![
                (x.clone(), chunk(1, 10, 20)),
                (x.clone(), chunk(1, 90, 110)),
                (y.clone(), chunk(2, 150, 160)),
            ],
        )
        .await
        .unwrap();
        // the chunk across the boundary is in both periods, the others in one
        assert_eq!(a.series("t", &[], i64::MIN, i64::MAX).await.unwrap()[0].chunks.len(), 2);
        assert_eq!(b.series("t", &[], i64::MIN, i64::MAX).await.unwrap().len(), 2);
        let all = p.series("t", &[], 0, 200).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].chunks.len(), 2, "deduplicated across periods");
        assert_eq!(p.series("t", &[], 95, 105).await.unwrap().len(), 1);
        assert_eq!(p.label_values("t", "app", 0, 200, &[]).await.unwrap(), vec!["x", "y"]);
        assert_eq!(p.label_names("t", 140, 200, &[]).await.unwrap(), vec!["app"]);
        assert_eq!(p.label_values("t", "app", 140, 200, &[]).await.unwrap(), vec!["y"]);
    }
}
