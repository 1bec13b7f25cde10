//! [`process_pending`]: the compactor's pass over a tenant's delete requests. Every part whose
//! cancel period has passed is applied to the stored chunks: a chunk holding deleted lines is
//! re-encoded without them (same entries otherwise, so a new checksum and a new key), its
//! filter-table entry and index ref written, the old ref removed from the index and only then
//! the old object deleted; a chunk left empty is removed from the index and deleted. A crash
//! at any point leaves either the old chunk or both (a query drops the duplicate lines, and
//! the next pass finds the old chunk again and finishes), never neither.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use skald_chunk::{Chunk, ChunkBuilder};
use skald_chunk_store::ChunkStore;
use skald_index::{ChunkRef, FilterIndex, IndexStore};
use skald_model::Labels;

use crate::error::Result;
use crate::filter::TenantDeletes;
use crate::params::{parse_query, DeletionMode};
use crate::request::{Part, RequestGroup, Status};
use crate::store::DeleteStore;

/// The stores a rewrite reads and writes.
#[derive(Clone)]
pub struct RewriteStores {
    /// Chunk objects.
    pub chunks: Arc<dyn ChunkStore>,
    /// The index.
    pub index: Arc<dyn IndexStore>,
    /// The chunks' filter tables.
    pub filters: Arc<FilterIndex>,
}

/// What one pass did, for the audit log and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessReport {
    /// Request parts marked processed.
    pub parts_processed: usize,
    /// Chunks read because a due part may cover them.
    pub chunks_examined: usize,
    /// Chunks re-encoded without deleted lines.
    pub chunks_rewritten: usize,
    /// Chunks deleted whole (every line deleted).
    pub chunks_deleted: usize,
    /// Lines removed from storage.
    pub lines_deleted: u64,
    /// Object bytes before and after, over the chunks changed.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
}

/// What became of one chunk.
enum Outcome {
    Unchanged,
    Empty { removed: u64 },
    Rewritten { bytes: Vec<u8>, new_ref: ChunkRef, removed: u64 },
}

fn is_due(g: &RequestGroup, p: &Part, now_ms: i64, cancel_period_ms: i64) -> bool {
    p.status == Status::Received && g.created_at_ms.saturating_add(cancel_period_ms) <= now_ms
}

/// A part of a request: tenant, request id, window.
type PartKey = (String, String, i64, i64);

/// The re-application of processed parts: for `period_ms` after a part is processed, each
/// pass applies it again to the chunks its selector and window reach that it has not yet
/// found clean (a chunk an ingester flushed again from its WAL after a crash, the original of
/// a rewritten chunk included, or flushed late). What each part found clean is kept here, in
/// the memory of the process running the passes (chunk keys are content-addressed, so a
/// chunk found clean stays clean); after a restart the first pass reads the part's chunks
/// once more.
#[derive(Debug, Default)]
pub struct Reapply {
    period_ms: i64,
    clean: parking_lot::Mutex<HashMap<PartKey, HashSet<ChunkRef>>>,
}

impl Reapply {
    /// Re-applies processed parts for `period` after their processing.
    pub fn new(period: std::time::Duration) -> Self {
        Reapply {
            period_ms: period.as_millis().min(i64::MAX as u128) as i64,
            clean: Default::default(),
        }
    }

    fn applies(&self, p: &Part, now_ms: i64) -> bool {
        p.status == Status::Processed
            && p.processed_at_ms.is_some_and(|at| at.saturating_add(self.period_ms) > now_ms)
    }
}

/// Applies `tenant`'s delete request parts whose cancel period (`cancel_period_ms` after
/// creation) has passed by `now_ms`, then marks them processed; and applies again the parts
/// processed less than `reapply`'s period ago to the chunks that reached the index since.
/// Only in [`DeletionMode::FilterAndDelete`]; in the other modes nothing is rewritten
/// (requests keep hiding lines at query time). The compactor calls it for each tenant on each
/// pass.
pub async fn process_pending(
    deletes: &DeleteStore,
    stores: &RewriteStores,
    reapply: &Reapply,
    tenant: &str,
    mode: DeletionMode,
    now_ms: i64,
    cancel_period_ms: i64,
) -> Result<ProcessReport> {
    let result = pass(deletes, stores, reapply, tenant, mode, now_ms, cancel_period_ms).await;
    let m = deletes.metrics();
    match &result {
        Ok(r) => {
            m.processed.with_label_values(&[tenant]).inc_by(r.parts_processed as u64);
            m.deleted_lines.with_label_values(&[tenant]).inc_by(r.lines_deleted);
            m.chunks_selected.with_label_values(&[tenant]).inc_by(r.chunks_examined as u64);
        }
        Err(e) => {
            m.failures.with_label_values(&["error"]).inc();
            tracing::error!(tenant, error = %e, "deletion pass failed; the next pass retries");
        }
    }
    result
}

async fn pass(
    deletes: &DeleteStore,
    stores: &RewriteStores,
    reapply: &Reapply,
    tenant: &str,
    mode: DeletionMode,
    now_ms: i64,
    cancel_period_ms: i64,
) -> Result<ProcessReport> {
    let mut report = ProcessReport::default();
    if mode != DeletionMode::FilterAndDelete {
        return Ok(report);
    }
    let groups = deletes.read_groups(tenant).await?;
    let due = |g: &RequestGroup, p: &Part| is_due(g, p, now_ms, cancel_period_ms);
    let again = |p: &Part| reapply.applies(p, now_ms);
    let selected = |g: &RequestGroup, p: &Part| due(g, p) || again(p);
    let part_key = |g: &RequestGroup, p: &Part| {
        (tenant.to_string(), g.request_id.clone(), p.start_ms, p.end_ms)
    };
    // what re-application knows of parts out of its window (or cancelled) is forgotten
    let live: HashSet<PartKey> = groups
        .iter()
        .flat_map(|g| g.parts.iter().filter(|p| selected(g, p)).map(move |p| part_key(g, p)))
        .collect();
    reapply.clean.lock().retain(|k, _| k.0 != tenant || live.contains(k));
    let due_groups: Vec<&RequestGroup> =
        groups.iter().filter(|g| g.parts.iter().any(|p| due(g, p))).collect();
    if live.is_empty() {
        return Ok(report);
    }
    let compiled = Arc::new(TenantDeletes::compile(&groups, selected));

    // every chunk a selected part may cover, once, with the parts that reach it; a processed
    // part skips the chunks it already found clean
    let mut candidates: BTreeMap<(Labels, ChunkRef), Vec<PartKey>> = BTreeMap::new();
    for g in &groups {
        let Ok(sel) = parse_query(&g.query) else { continue };
        for p in g.parts.iter().filter(|p| selected(g, p)) {
            let (from, through) =
                (p.start_ms.saturating_mul(1_000_000), p.end_ms.saturating_mul(1_000_000));
            let series = stores.index.series(tenant, &sel.matchers, from, through).await?;
            let key = part_key(g, p);
            let clean = reapply.clean.lock();
            let known = clean.get(&key);
            for s in series {
                for c in s.chunks {
                    if again(p) && known.is_some_and(|k| k.contains(&c)) {
                        continue;
                    }
                    candidates.entry((s.labels.clone(), c)).or_default().push(key.clone());
                }
            }
        }
    }

    for ((labels, old), parts) in candidates {
        report.chunks_examined += 1;
        let key = old.key(tenant);
        let bytes = match stores.chunks.get(&key).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                tracing::warn!(tenant, chunk = %key.path(), "indexed chunk is missing; skipped by deletion");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let compiled = compiled.clone();
        let stream_labels = labels.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            rewrite_chunk(&compiled, &stream_labels, old, bytes)
        })
        .await??;
        // the chunk that holds this one's lines now, clean of every selected part
        let clean = match outcome {
            Outcome::Unchanged => Some(old),
            Outcome::Empty { removed } => {
                stores.index.replace_chunks(tenant, vec![(labels, old)], Vec::new()).await?;
                stores.chunks.delete(&key).await?;
                report.chunks_deleted += 1;
                report.lines_deleted += removed;
                report.bytes_before += old.compressed_bytes;
                None
            }
            Outcome::Rewritten { bytes, new_ref, removed } => {
                let filter = Chunk::parse(&bytes)?.chunk_filter();
                stores.chunks.put(&new_ref.key(tenant), Bytes::from(bytes)).await?;
                if let Some(f) = filter {
                    stores.filters.write(tenant, vec![(new_ref, f)]).await?;
                }
                stores
                    .index
                    .replace_chunks(tenant, vec![(labels.clone(), old)], vec![(labels, new_ref)])
                    .await?;
                stores.chunks.delete(&key).await?;
                report.chunks_rewritten += 1;
                report.lines_deleted += removed;
                report.bytes_before += old.compressed_bytes;
                report.bytes_after += new_ref.compressed_bytes;
                Some(new_ref)
            }
        };
        if let Some(c) = clean {
            let mut known = reapply.clean.lock();
            for p in parts {
                known.entry(p).or_default().insert(c);
            }
        }
    }

    // mark the parts processed, re-reading each request: one cancelled meanwhile stays gone
    let mut done: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for g in &due_groups {
        done.insert(
            &g.request_id,
            g.parts.iter().filter(|p| due(g, p)).map(|p| (p.start_ms, p.end_ms)).collect(),
        );
    }
    for (id, windows) in done {
        let Some(mut g) = deletes.read_group(tenant, id).await? else { continue };
        let mut n = 0;
        for p in &mut g.parts {
            if p.status == Status::Received && windows.contains(&(p.start_ms, p.end_ms)) {
                p.status = Status::Processed;
                p.processed_at_ms = Some(now_ms);
                n += 1;
            }
        }
        deletes.write_group(tenant, &g).await?;
        report.parts_processed += n;
        tracing::info!(tenant, request_id = id, query = %g.query, parts = n, "delete request processed");
    }
    if report != ProcessReport::default() {
        tracing::info!(
            tenant,
            parts = report.parts_processed,
            chunks_examined = report.chunks_examined,
            chunks_rewritten = report.chunks_rewritten,
            chunks_deleted = report.chunks_deleted,
            lines_deleted = report.lines_deleted,
            bytes_before = report.bytes_before,
            bytes_after = report.bytes_after,
            "deletion pass done"
        );
    }
    Ok(report)
}

/// Decodes `bytes` (chunk `old` of a stream with `labels`) and re-encodes it without the
/// entries `deletes` covers.
fn rewrite_chunk(
    deletes: &TenantDeletes,
    labels: &Labels,
    old: ChunkRef,
    bytes: Bytes,
) -> Result<Outcome> {
    let Some(mut stream) = deletes.for_stream(labels) else { return Ok(Outcome::Unchanged) };
    if !stream.overlaps(old.from, old.through) {
        return Ok(Outcome::Unchanged);
    }
    let chunk = Chunk::from_bytes(bytes)?;
    let mut builder = ChunkBuilder::default();
    let (mut removed, mut removed_stats) = (0u64, 0u64);
    for entry in chunk.iter_entries(i64::MIN, i64::MAX) {
        let entry = entry?;
        if stream.is_deleted(entry.ts, &entry.line, &entry.structured_metadata) {
            removed += 1;
            removed_stats += entry.line.len() as u64 + 8 * entry.structured_metadata.len() as u64;
        } else {
            builder.append(&entry)?;
        }
    }
    if removed == 0 {
        return Ok(Outcome::Unchanged);
    }
    if builder.is_empty() {
        return Ok(Outcome::Empty { removed });
    }
    let encoded = builder.finish()?;
    // Loki's size less the removed lines (and their metadata pairs); the distinct metadata
    // names and values it counts once are kept as they were
    let stats_bytes = old.stats_bytes.saturating_sub(removed_stats);
    let new_ref = ChunkRef::of_encoded(old.fingerprint, &encoded, stats_bytes);
    Ok(Outcome::Rewritten { bytes: encoded.bytes, new_ref, removed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_chunk_store::ObjectChunkStore;
    use skald_index::{ObjectIndexStore, ObjectIndexStoreConfig};
    use skald_model::Entry;
    use std::time::Duration;

    const SEC: i64 = 1_000_000_000;

    struct Fixture {
        objects: Arc<dyn ChunkStore>,
        stores: RewriteStores,
        deletes: DeleteStore,
        reapply: Reapply,
    }

    fn fixture() -> Fixture {
        let objects: Arc<dyn ChunkStore> = Arc::new(ObjectChunkStore::in_memory());
        let index: Arc<dyn IndexStore> =
            Arc::new(ObjectIndexStore::new(objects.clone(), ObjectIndexStoreConfig::default()));
        let filters = Arc::new(FilterIndex::new(objects.clone(), 1 << 20));
        let deletes = DeleteStore::new(objects.clone(), Duration::from_secs(60));
        Fixture {
            stores: RewriteStores { chunks: objects.clone(), index, filters },
            objects,
            deletes,
            reapply: Reapply::new(Duration::from_secs(3600)),
        }
    }

    /// Writes one chunk of `lines` (one per second from `t0`) for `labels`, as a flush does.
    async fn flush(f: &Fixture, labels: &Labels, t0: i64, lines: &[&str]) -> ChunkRef {
        let mut b = ChunkBuilder::default();
        for (i, l) in lines.iter().enumerate() {
            b.append(&Entry {
                ts: t0 + i as i64 * SEC,
                line: l.into(),
                structured_metadata: vec![],
            })
            .unwrap();
        }
        let e = b.finish().unwrap();
        let stats = lines.iter().map(|l| l.len() as u64).sum();
        let c = ChunkRef::of_encoded(skald_model::fingerprint(labels), &e, stats);
        let filter = Chunk::parse(&e.bytes).unwrap().chunk_filter().unwrap();
        f.objects.put(&c.key("t"), Bytes::from(e.bytes)).await.unwrap();
        f.stores.filters.write("t", vec![(c, filter)]).await.unwrap();
        f.stores.index.write_chunks("t", vec![(labels.clone(), c)]).await.unwrap();
        c
    }

    /// Every line of every chunk object of tenant `t`.
    async fn stored_lines(f: &Fixture) -> Vec<String> {
        let mut out = Vec::new();
        for path in f.objects.list_prefix("t/chunks").await.unwrap() {
            let key = skald_chunk_store::ChunkKey::parse(&path).unwrap();
            let chunk = Chunk::from_bytes(f.objects.get(&key).await.unwrap()).unwrap();
            for e in chunk.iter_entries(i64::MIN, i64::MAX) {
                out.push(e.unwrap().line.to_string());
            }
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn rewrites_chunks_without_deleted_lines() {
        let f = fixture();
        let app = Labels::parse(r#"{app="a"}"#).unwrap();
        let other = Labels::parse(r#"{app="b"}"#).unwrap();
        let t0 = 1_700_000_000 * SEC;
        let old = flush(&f, &app, t0, &["keep 1", "secret 2", "keep 3", "secret 4"]).await;
        flush(&f, &app, t0 + 100 * SEC, &["secret 5", "secret 6"]).await;
        flush(&f, &other, t0, &["secret 7"]).await;
        let window = [(t0 / 1_000_000, (t0 + 200 * SEC) / 1_000_000)];
        let r = f.deletes.add("t", r#"{app="a"} |= "secret""#, &window, 10_000).await.unwrap();
        let cancelled = f.deletes.add("t", r#"{app="b"}"#, &window, 10_000).await.unwrap();
        f.deletes.cancel("t", &cancelled.request_id, false, 10_001, 1000).await.unwrap();

        // inside the cancel period nothing happens; filter-only never rewrites
        let mode = DeletionMode::FilterAndDelete;
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 10_500, 1000)
            .await
            .unwrap();
        assert_eq!(report, ProcessReport::default());
        let report = process_pending(
            &f.deletes,
            &f.stores,
            &f.reapply,
            "t",
            DeletionMode::FilterOnly,
            20_000,
            1000,
        )
        .await
        .unwrap();
        assert_eq!(report.parts_processed, 0);

        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 20_000, 1000)
            .await
            .unwrap();
        assert_eq!(report.parts_processed, 1);
        assert_eq!(f.deletes.metrics().deleted_lines.with_label_values(&["t"]).get(), 4);
        assert_eq!(f.deletes.metrics().received.with_label_values(&["t"]).get(), 2);
        assert_eq!((report.chunks_rewritten, report.chunks_deleted), (1, 1));
        assert_eq!(report.lines_deleted, 4);
        assert_eq!(stored_lines(&f).await, vec!["keep 1", "keep 3", "secret 7"]);
        // the old object is gone, the index names the new chunk only
        assert!(f.objects.get(&old.key("t")).await.unwrap_err().is_not_found());
        let series = f.stores.index.series("t", &[], t0 - SEC, t0 + 1000 * SEC).await.unwrap();
        let chunks: Vec<(String, u32)> = series
            .iter()
            .flat_map(|s| s.chunks.iter().map(move |c| (s.labels.to_string(), c.entries)))
            .collect();
        assert_eq!(chunks, vec![(app.to_string(), 2), (other.to_string(), 1)]);
        // and the filter tables know the new chunk
        let new = series[0].chunks[0];
        let tables = f.stores.filters.filters("t", new.from, new.through).await.unwrap();
        assert!(tables.get(&new).is_some());
        assert_eq!(f.deletes.list("t").await.unwrap()[0].status, "processed");
        assert_eq!(f.deletes.list("t").await.unwrap()[0].request_id, r.request_id);

        // a second pass has nothing left to do
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 30_000, 1000)
            .await
            .unwrap();
        assert_eq!(report, ProcessReport::default());
    }

    /// An ingester's WAL replayed after a crash flushes again the chunks it had flushed
    /// since its last checkpoint: the original of a chunk a processed request rewrote comes
    /// back, indexed, with its deleted lines. The passes inside the re-application window
    /// remove them again, reading only the chunks they have not found clean yet.
    #[tokio::test]
    async fn reapplies_processed_requests_to_chunks_flushed_again() {
        let mut f = fixture();
        let app = Labels::parse(r#"{app="a"}"#).unwrap();
        let t0 = 1_700_000_000 * SEC;
        let lines = ["keep 1", "secret 2"];
        let original = flush(&f, &app, t0, &lines).await;
        let window = [(t0 / 1_000_000, (t0 + 200 * SEC) / 1_000_000)];
        f.deletes.add("t", r#"{app="a"} |= "secret""#, &window, 10_000).await.unwrap();
        let mode = DeletionMode::FilterAndDelete;
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 20_000, 1000)
            .await
            .unwrap();
        assert_eq!((report.parts_processed, report.chunks_rewritten), (1, 1));
        assert_eq!(stored_lines(&f).await, vec!["keep 1"]);
        let part = f.deletes.read_groups("t").await.unwrap()[0].parts[0];
        assert_eq!(part.processed_at_ms, Some(20_000));

        // the WAL replay: the same chunk, same key, back in the store and the index; and a
        // late flush of the window
        assert_eq!(flush(&f, &app, t0, &lines).await, original);
        flush(&f, &app, t0 + 10 * SEC, &["keep 3", "secret 4"]).await;
        flush(&f, &app, t0 + 20 * SEC, &["secret 5"]).await;
        assert_eq!(stored_lines(&f).await.len(), 6);
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 30_000, 1000)
            .await
            .unwrap();
        // the rewritten chunk was known clean: only the three newcomers are read
        assert_eq!(report.chunks_examined, 3);
        assert_eq!((report.chunks_rewritten, report.chunks_deleted), (2, 1));
        assert_eq!((report.lines_deleted, report.parts_processed), (3, 0));
        assert_eq!(stored_lines(&f).await, vec!["keep 1", "keep 3"]);
        assert!(f.objects.get(&original.key("t")).await.unwrap_err().is_not_found());
        let series = f.stores.index.series("t", &[], t0 - SEC, t0 + 1000 * SEC).await.unwrap();
        assert_eq!(series[0].chunks.len(), 2);
        assert_eq!(f.deletes.list("t").await.unwrap()[0].status, "processed");
        // nothing new: nothing read
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 40_000, 1000)
            .await
            .unwrap();
        assert_eq!(report, ProcessReport::default());

        // a restarted compactor knows nothing clean: it reads the part's chunks once more
        f.reapply = Reapply::new(Duration::from_secs(3600));
        flush(&f, &app, t0, &lines).await;
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 50_000, 1000)
            .await
            .unwrap();
        assert_eq!((report.chunks_examined, report.chunks_rewritten), (3, 1));
        assert_eq!(stored_lines(&f).await, vec!["keep 1", "keep 3"]);
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, 60_000, 1000)
            .await
            .unwrap();
        assert_eq!(report, ProcessReport::default());

        // past the window the part is left alone: a chunk flushed then keeps its lines, which
        // queries still hide
        flush(&f, &app, t0 + 30 * SEC, &["secret 6"]).await;
        let late = 20_000 + 3_600_000;
        let report = process_pending(&f.deletes, &f.stores, &f.reapply, "t", mode, late, 1000)
            .await
            .unwrap();
        assert_eq!(report, ProcessReport::default());
        assert_eq!(stored_lines(&f).await, vec!["keep 1", "keep 3", "secret 6"]);
        assert!(f.reapply.clean.lock().is_empty());
    }
}
