//! Recovery: replaying the write-ahead log into memory at start ([`Ingester::open_wal`]),
//! and the checkpoints that fold what memory holds into one file so that old segments can
//! be deleted and replay stays short.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use skald_common::tenant;

use crate::error::{IngesterError, Result};
use crate::instance::TenantStreams;
use crate::wal::{self, RecordBuilder, ReplayStats, Wal};
use crate::Ingester;

impl Ingester {
    /// Replays the write-ahead log in `dir` into memory, then starts logging pushes to it.
    /// Call once, before the ingester serves (it is ready only afterwards). With
    /// `ingester.wal.enabled: false` it does nothing.
    pub async fn open_wal(&self, dir: &Path) -> Result<ReplayStats> {
        let config = self.inner.config.wal.clone();
        if !config.enabled {
            return Ok(ReplayStats::default());
        }
        let started = Instant::now();
        let this = self.clone();
        let path = dir.to_path_buf();
        let ceiling = config.replay_memory_ceiling;
        let handle = tokio::runtime::Handle::current();
        let skipped = Arc::new(Mutex::new((0u64, 0u64))); // (records, entries)
        let skipped_in_replay = skipped.clone();
        let stats = tokio::task::spawn_blocking(move || {
            let mut held = 0u64;
            wal::replay(&path, |tenant, streams| {
                // A record of a tenant id no push may use today (an empty one, written by an
                // older version) is skipped and counted: it can never be flushed, and it must
                // not hold the rest of the log back.
                if let Err(error) = tenant::validate_stored_tenant_id(&tenant) {
                    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
                    let mut skipped = skipped_in_replay.lock();
                    if skipped.0 == 0 {
                        tracing::warn!(%error, tenant, "WAL record of an invalid tenant id skipped");
                    }
                    skipped.0 += 1;
                    skipped.1 += entries as u64;
                    return;
                }
                held += streams
                    .iter()
                    .flat_map(|s| s.entries.iter())
                    .map(|e| e.line.len() as u64 + 32)
                    .sum::<u64>();
                // Entries outside the out-of-order window, or over a stream limit, were
                // refused when first pushed too: nothing to report again.
                let _ = this.push_sync(&tenant, streams, false);
                if ceiling > 0 && held >= ceiling {
                    tracing::info!(held, "WAL replay reached replay_memory_ceiling; flushing");
                    if let Err(error) = handle.block_on(this.flush(true)) {
                        tracing::warn!(%error, "flush during WAL replay failed; continuing");
                    }
                    held = 0;
                }
            })
        })
        .await
        .map_err(|cause| IngesterError::Task { task: "WAL replay", cause })?
        .map_err(|cause| IngesterError::WalReplay { dir: dir.to_path_buf(), cause })?;
        let mut stats = stats;
        let (skipped_records, skipped_entries) = *skipped.lock();
        stats.skipped_records = skipped_records;
        stats.records -= skipped_records.min(stats.records);
        stats.entries -= skipped_entries.min(stats.entries);
        self.inner.metrics.wal_corruptions.inc_by(stats.corruptions);
        self.inner.metrics.wal_recovered_entries.inc_by(stats.entries);
        self.inner.metrics.wal_skipped_records.inc_by(stats.skipped_records);
        let wal = Wal::open(dir, config, stats.next_segment)
            .map_err(|cause| IngesterError::WalOpen { dir: dir.to_path_buf(), cause })?;
        if self.inner.wal.set(wal).is_err() {
            return Err(IngesterError::WalAlreadyOpen);
        }
        self.update_gauges();
        tracing::info!(
            dir = %dir.display(),
            records = stats.records,
            entries = stats.entries,
            corruptions = stats.corruptions,
            skipped_records = stats.skipped_records,
            segments = stats.segments,
            checkpoint = ?stats.checkpoint,
            elapsed = ?started.elapsed(),
            "WAL replayed"
        );
        if stats.records > 0 {
            // Fold what was replayed into a checkpoint, so old segments go away now.
            if let Err(error) = self.checkpoint().await {
                tracing::warn!(%error, "checkpoint after WAL replay failed");
            }
        }
        Ok(stats)
    }

    /// Writes a WAL checkpoint of everything held in memory and deletes the segments it
    /// replaces. Does nothing without a WAL.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.inner.wal.get().is_none() {
            return Ok(());
        }
        let _guard = self.inner.checkpoint_lock.lock().await;
        let this = self.clone();
        let started = Instant::now();
        let res = tokio::task::spawn_blocking(move || this.checkpoint_sync())
            .await
            .map_err(|cause| IngesterError::Task { task: "checkpoint", cause })
            .and_then(|r| r);
        match &res {
            Ok(bytes) => {
                self.inner.metrics.checkpoints.inc();
                self.inner.metrics.checkpoint_bytes.inc_by(*bytes);
                tracing::debug!(bytes, elapsed = ?started.elapsed(), "WAL checkpoint written");
            }
            Err(_) => self.inner.metrics.checkpoint_failures.inc(),
        }
        res.map(|_| ())
    }

    fn checkpoint_sync(&self) -> Result<u64> {
        let Some(wal) = self.inner.wal.get() else { return Ok(0) };
        // Every record in the segments up to `seq` was applied to memory before it was
        // written, so the snapshot taken after this rotation holds all their unflushed data.
        let seq = wal.rotate().map_err(|cause| IngesterError::WalRotate { cause })?;
        let tenants: Vec<(String, Arc<Mutex<TenantStreams>>)> =
            self.inner.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        wal.checkpoint(seq, |out| {
            for (tenant, streams) in &tenants {
                let fps: Vec<u64> = streams.lock().streams.keys().copied().collect();
                for fp in fps {
                    let (labels, entries) = {
                        let guard = streams.lock();
                        let Some(st) = guard.streams.get(&fp) else { continue };
                        let entries = st
                            .entries_in_range(i64::MIN, i64::MAX)
                            .map_err(std::io::Error::other)?;
                        (st.labels.clone(), entries)
                    };
                    let mut rec = RecordBuilder::new(tenant);
                    rec.begin_stream(&labels);
                    for e in &entries {
                        rec.entry(e);
                        if rec.len() >= 4 << 20 {
                            let full = std::mem::replace(&mut rec, RecordBuilder::new(tenant));
                            if let Some(r) = full.finish() {
                                out(&r)?;
                            }
                            rec.begin_stream(&labels);
                        }
                    }
                    if let Some(r) = rec.finish() {
                        out(&r)?;
                    }
                }
            }
            Ok(())
        })
        .map_err(|cause| IngesterError::Checkpoint { seq, cause })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use skald_model::{Entry, Label, LabelMatcher, Labels, MatchType, Stream};
    use skald_proto::ingester::{IngesterQuery, IngesterService};

    use super::*;
    use crate::testing::{held, ingester, streams, temp_wal};
    use crate::{IngesterConfig, WalConfig};

    /// Every entry of every tenant and stream, with its structured metadata.
    async fn everything(ing: &Ingester, tenant: &str) -> Vec<(String, Entry)> {
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Regex, ".+").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            ..Default::default()
        };
        let mut out: Vec<(String, Entry)> = ing
            .query(tenant, q)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|s| {
                let labels = s.labels.to_string();
                s.entries.into_iter().map(move |e| (labels.clone(), e))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1.ts, &a.1.line).cmp(&(&b.0, b.1.ts, &b.1.line)));
        out
    }

    /// A checkpoint holds everything in memory: replaying it alone (its segments are gone)
    /// gives back the same entries, tenant by tenant, with their structured metadata.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_replays_to_the_same_entries() {
        let dir = temp_wal("checkpoint");
        let config = IngesterConfig { chunk_block_size: 4096, ..IngesterConfig::default() };
        let ing = ingester(config.clone());
        ing.open_wal(&dir).await.unwrap();
        for (tenant, job) in [("t", "api"), ("t", "db"), ("u", "api")] {
            let entries = (0..3000i64)
                .map(|i| Entry {
                    // out of order within the window, so that the head and sealed blocks differ
                    ts: 1_000_000 + (i * 7919) % 3000,
                    line: format!("{tenant} {job} line {i}").into(),
                    structured_metadata: if i % 2 == 0 {
                        vec![Label::new("trace_id", format!("{i:x}"))]
                    } else {
                        vec![]
                    },
                })
                .collect();
            let labels = Labels::parse(&format!(r#"{{job="{job}"}}"#)).unwrap();
            ing.push(tenant, vec![Stream { labels, entries }]).await.unwrap();
        }
        let before = (everything(&ing, "t").await, everything(&ing, "u").await);
        assert_eq!((before.0.len(), before.1.len()), (6000, 3000));
        ing.checkpoint().await.unwrap();
        drop(ing); // a crash right after the checkpoint

        let again = ingester(config);
        let stats = again.open_wal(&dir).await.unwrap();
        assert!(stats.checkpoint.is_some(), "{stats:?}");
        assert_eq!((stats.entries, stats.corruptions), (9000, 0), "{stats:?}");
        // the segment the pushes went to was deleted: only the checkpoint held them
        assert!(!dir.join("00000001").try_exists().unwrap());
        assert_eq!((everything(&again, "t").await, everything(&again, "u").await), before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_records_of_an_invalid_tenant_are_skipped_at_replay() {
        let dir = temp_wal("bad-tenant");
        let next = wal::replay(&dir, |_, _| {}).unwrap().next_segment;
        let log = Wal::open(&dir, WalConfig::default(), next).unwrap();
        for tenant in ["", "t", "a/b"] {
            let mut rec = RecordBuilder::new(tenant);
            let s = &streams(0, 10)[0];
            rec.begin_stream(&s.labels);
            for e in &s.entries {
                rec.entry(e);
            }
            log.append(&rec.finish().unwrap()).unwrap();
        }
        drop(log);
        let ing = ingester(IngesterConfig::default());
        let stats = ing.open_wal(&dir).await.unwrap();
        assert_eq!((stats.skipped_records, stats.records, stats.entries), (2, 1, 10), "{stats:?}");
        assert_eq!(held(&ing).await, 10);
        assert_eq!(ing.inner.metrics.wal_skipped_records.get(), 2);
        // and nothing of them is flushed or kept
        ing.flush(true).await.unwrap();
        assert!(ing.inner.tenants.lock().keys().all(|t| t == "t"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_crashed_ingester_replays_its_wal() {
        let dir = std::env::temp_dir().join(format!("skald-ingester-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ing = ingester(IngesterConfig::default());
        ing.open_wal(&dir).await.unwrap();
        ing.push("t", streams(0, 500)).await.unwrap();
        ing.checkpoint().await.unwrap();
        ing.push("t", streams(500, 500)).await.unwrap();
        // entries too far behind are refused and never logged
        let old = vec![Stream {
            labels: Labels::parse(r#"{job="replay"}"#).unwrap(),
            entries: vec![Entry { ts: -1 << 50, line: "old".into(), structured_metadata: vec![] }],
        }];
        assert!(ing.push("t", old).await.is_err());
        drop(ing); // a crash: no flush, no shutdown checkpoint

        let again = ingester(IngesterConfig::default());
        let stats = again.open_wal(&dir).await.unwrap();
        assert_eq!(stats.entries, 1000, "{stats:?}");
        assert!(stats.checkpoint.is_some());
        assert_eq!(held(&again).await, 1000);
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            line_contains: vec!["line 99".to_string()],
            ..Default::default()
        };
        let lines = |q| async {
            let got: Vec<String> = again
                .query("t", q)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|s| s.entries.into_iter().map(|e| e.line.to_string()))
                .collect();
            got
        };
        let got = lines(q).await;
        assert_eq!(got.len(), 11, "{got:?}"); // line 99, line 990..999
                                              // the whole pipeline and the limit are pushed down too
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            pipeline: r#"{job="replay"} |~ "line 9[0-9]+$" != "line 95""#.to_string(),
            limit: 3,
            backward: true,
            ..Default::default()
        };
        assert_eq!(lines(q).await, vec!["line 997", "line 998", "line 999"]);
        // metric queries get samples, not lines: one per matching entry, each with its hash
        let q = IngesterQuery {
            matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            sample_expr: r#"bytes_over_time({job="replay"} |= "line 99" [1h])"#.to_string(),
            ..Default::default()
        };
        let series = again.query_samples("t", q).await.unwrap();
        assert_eq!(series.len(), 1);
        let samples = &series[0].samples;
        assert_eq!(samples.len(), 11);
        assert!(samples.iter().all(|p| p.value == 7.0 || p.value == 8.0), "{samples:?}");
        let hashes: std::collections::HashSet<u64> = samples.iter().map(|p| p.hash).collect();
        assert_eq!(hashes.len(), 11);
        // a pipeline that does not parse is refused
        let q = IngesterQuery { pipeline: "{job=".to_string(), ..Default::default() };
        assert!(again.query("t", q).await.is_err());

        // with a tiny replay ceiling the replay flushes to storage as it goes
        drop(again);
        let mut config = IngesterConfig::default();
        config.wal.replay_memory_ceiling = 1;
        let small = ingester(config);
        small.open_wal(&dir).await.unwrap();
        assert!(small.inner.metrics.chunks_flushed_total() > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Lines are bytes (Skald issue 20): one that is not UTF-8 comes back byte for byte from
    /// a WAL segment, from a checkpoint and from the chunk a flush writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lines_that_are_not_utf8_survive_replay_and_flush_byte_exact() {
        let lines: Vec<&[u8]> = vec![b"caf\xe9 \xff \xfe", b"x\xe2\x82y", b"plain", b"\x80"];
        let stream = || {
            let entries = lines
                .iter()
                .enumerate()
                .map(|(i, l)| Entry {
                    ts: 1_000 + i as i64,
                    line: l.to_vec().into(),
                    structured_metadata: vec![],
                })
                .collect();
            vec![Stream { labels: Labels::parse(r#"{job="replay"}"#).unwrap(), entries }]
        };
        let got = |ing: Ingester| async move {
            let all = everything(&ing, "t").await;
            all.into_iter().map(|(_, e)| e.line.into_bytes()).collect::<Vec<_>>()
        };
        let want: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();

        // from a WAL segment (a crash before any checkpoint)
        let dir = temp_wal("bytes");
        let ing = ingester(IngesterConfig::default());
        ing.open_wal(&dir).await.unwrap();
        ing.push("t", stream()).await.unwrap();
        drop(ing);
        let again = ingester(IngesterConfig::default());
        assert_eq!(again.open_wal(&dir).await.unwrap().entries, 4);
        assert_eq!(got(again.clone()).await, want);
        // from a checkpoint
        again.checkpoint().await.unwrap();
        drop(again);
        let third = ingester(IngesterConfig::default());
        assert!(third.open_wal(&dir).await.unwrap().checkpoint.is_some());
        assert_eq!(got(third).await, want);
        let _ = std::fs::remove_dir_all(&dir);

        // from the chunk a flush writes
        let chunks = std::sync::Arc::new(skald_chunk_store::ObjectChunkStore::in_memory());
        let index = std::sync::Arc::new(skald_index::MemIndexStore::new());
        let ing = Ingester::new(
            IngesterConfig::default(),
            skald_common::limits::Limits::default(),
            chunks.clone(),
            index.clone(),
            &prometheus::Registry::new(),
        );
        ing.push("t", stream()).await.unwrap();
        ing.flush(true).await.unwrap();
        let job = LabelMatcher::new("job", MatchType::Equal, "replay").unwrap();
        let series = skald_index::IndexStore::series(&*index, "t", &[job], i64::MIN, i64::MAX)
            .await
            .unwrap();
        let mut flushed = Vec::new();
        for c in &series[0].chunks {
            let bytes = skald_chunk_store::ChunkStore::get(&*chunks, &c.key("t")).await.unwrap();
            let chunk = skald_chunk::Chunk::parse(&bytes).unwrap();
            for e in chunk.iter_entries(i64::MIN, i64::MAX) {
                flushed.push(e.unwrap().line.into_bytes());
            }
        }
        assert_eq!(flushed, want);
    }
}
