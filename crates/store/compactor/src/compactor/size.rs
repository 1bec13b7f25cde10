//! Size-based retention (Skald's `limits_config.retention_max_bytes`): a tenant keeps at most
//! that many bytes of chunks (the compressed sizes its index records); a pass deletes its
//! oldest chunks first (oldest end first, across streams) until it is back under the limit,
//! through the same marker, index, filter and sweep steps as time retention.

use std::collections::HashMap;

use skald_index::{ChunkRef, NANOS_PER_DAY};
use skald_model::Labels;
use skald_needle::ChunkId;

use super::{chunk_id, Compactor, CompactorError, PassReport};

/// The chunks to delete so that what remains of `chunks` weighs at most `max_bytes`: the
/// oldest first, by end (`through`), then start, then stream, so that every pass and every
/// compactor picks the same ones.
pub(crate) fn oldest_over(
    chunks: &HashMap<ChunkId, (Labels, ChunkRef)>,
    max_bytes: u64,
) -> HashMap<ChunkId, (Labels, ChunkRef)> {
    let mut total: u64 = chunks.values().map(|(_, c)| c.compressed_bytes).sum();
    let mut out = HashMap::new();
    if total <= max_bytes {
        return out;
    }
    let mut order: Vec<(&ChunkId, &(Labels, ChunkRef))> = chunks.iter().collect();
    order.sort_by_key(|(id, (_, c))| (c.through, c.from, c.fingerprint, id.checksum));
    for (id, entry) in order {
        if total <= max_bytes {
            break;
        }
        total = total.saturating_sub(entry.1.compressed_bytes);
        out.insert(*id, entry.clone());
    }
    out
}

impl Compactor {
    /// Deletes `tenant`'s oldest chunks until the bytes its index records are at most
    /// `max_bytes`.
    pub(super) async fn apply_size_retention(
        &self,
        tenant: &str,
        max_bytes: u64,
        now: i64,
        report: &mut PassReport,
    ) -> Result<(), CompactorError> {
        // what time retention left (it ran first in this pass)
        let mut all: HashMap<ChunkId, (Labels, ChunkRef)> = HashMap::new();
        for day in self.index.days(tenant).await? {
            let start = day.saturating_mul(NANOS_PER_DAY);
            for s in self.index.series(tenant, &[], start, start + NANOS_PER_DAY - 1).await? {
                for c in s.chunks {
                    all.entry(chunk_id(&c)).or_insert_with(|| (s.labels.clone(), c));
                }
            }
        }
        let stored: u64 = all.values().map(|(_, c)| c.compressed_bytes).sum();
        let over = oldest_over(&all, max_bytes);
        if over.is_empty() {
            return Ok(());
        }
        tracing::info!(
            tenant,
            stored_bytes = stored,
            retention_max_bytes = max_bytes,
            chunks = over.len(),
            "retention: the tenant stores more than retention_max_bytes, deleting its oldest chunks"
        );
        let replaced = self.remove_chunks(tenant, &over, now, report, "oldest").await?;
        report.objects_replaced += replaced;
        self.metrics.replaced_objects.inc_by(replaced as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(fp: u64, from: i64, through: i64, bytes: u64) -> (ChunkId, (Labels, ChunkRef)) {
        let c = ChunkRef {
            fingerprint: fp,
            from,
            through,
            checksum: from as u32,
            entries: 1,
            uncompressed_bytes: bytes,
            compressed_bytes: bytes,
            stats_bytes: bytes,
        };
        (chunk_id(&c), (Labels::parse(r#"{a="b"}"#).unwrap(), c))
    }

    #[test]
    fn the_oldest_ends_go_first_across_streams_until_under_the_limit() {
        let chunks: HashMap<_, _> = [
            chunk(1, 0, 100, 10),
            chunk(2, 50, 90, 10), // ends first though it starts later
            chunk(1, 100, 200, 10),
            chunk(2, 150, 300, 10),
        ]
        .into_iter()
        .collect();
        let ends = |m: &HashMap<ChunkId, (Labels, ChunkRef)>| {
            let mut v: Vec<i64> = m.values().map(|(_, c)| c.through).collect();
            v.sort_unstable();
            v
        };
        assert!(oldest_over(&chunks, 40).is_empty(), "exactly at the limit: nothing goes");
        assert!(oldest_over(&chunks, 1000).is_empty());
        assert_eq!(ends(&oldest_over(&chunks, 39)), vec![90]);
        assert_eq!(ends(&oldest_over(&chunks, 20)), vec![90, 100]);
        assert_eq!(ends(&oldest_over(&chunks, 15)), vec![90, 100, 200]);
        assert_eq!(ends(&oldest_over(&chunks, 0)).len(), 4, "0 bytes kept: everything goes");
    }
}
