//! One tenant's share of the ingester ([`TenantStreams`]) and the push path into it: the
//! stream limit, appending to streams, and logging the accepted entries to the WAL before
//! the push is acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use skald_model::{fingerprint, Stream};

use crate::error::{IngesterError, Result};
use crate::flush::Backoff;
use crate::stream::{AppendError, StreamState};
use crate::wal::{wal_size, RecordBuilder, Wal};
use crate::{push_errors, tail, Ingester};

/// One tenant's streams.
#[derive(Default)]
pub(crate) struct TenantStreams {
    pub(crate) streams: HashMap<u64, StreamState>,
    /// WAL records whose write failed (a full disk): their entries are in memory, but their
    /// push was refused. They are written, in order, before any later push of the tenant is
    /// acknowledged, so that a retry of the refused push, whose entries memory now holds and
    /// the retry's own record therefore leaves out as duplicates, is never acknowledged before
    /// they are logged.
    pub(crate) unlogged: Vec<Vec<u8>>,
    /// Flushes of this tenant failing in a row (its index writes): when the next may run.
    /// Another tenant's failures never delay this tenant's flushes.
    pub(crate) flush_backoff: Option<Backoff>,
    /// The same for single streams whose chunk uploads fail; other streams go on.
    pub(crate) stream_backoff: HashMap<u64, Backoff>,
}

impl Ingester {
    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantStreams>> {
        let mut tenants = self.inner.tenants.lock();
        tenants.entry(tenant.to_string()).or_default().clone()
    }

    /// Applies a push to memory and, when `log` and a WAL is open, writes the accepted
    /// entries to the WAL before returning: a push is acknowledged only once it is logged.
    /// Blocking (it waits for the tenant's lock, seals blocks, writes and may sync the WAL):
    /// `IngesterService::push` runs it off the runtime's workers (`block_in_place` or the
    /// blocking pool).
    pub(crate) fn push_sync(&self, tenant: &str, streams: Vec<Stream>, log: bool) -> Result<()> {
        let wal = if log { self.inner.wal.get() } else { None };
        // (sized for the whole push up front: growing a megabyte record copies it again)
        let mut record = wal.map(|_| RecordBuilder::with_capacity(tenant, wal_size(&streams)));
        let now = Instant::now();
        let t = self.tenant(tenant);
        let mut guard = t.lock();
        let max_streams = self.inner.overrides.tenant(tenant).max_global_streams_per_user;
        let mut errors = push_errors::PushErrors::default();
        let (mut accepted, mut rejected) = (0u64, 0u64);
        let (mut streams_created, mut chunks_created) = (0u64, 0u64);
        // live tails get what this push added, once it is acknowledged
        let tailers = if log { self.inner.tailers.of(tenant) } else { Vec::new() };
        let mut tailed: Vec<Stream> = Vec::new();
        for s in streams {
            let fp = fingerprint(&s.labels);
            if !guard.streams.contains_key(&fp) {
                if max_streams > 0 && guard.streams.len() >= max_streams {
                    rejected += s.entries.len() as u64;
                    errors.add(push_errors::Reason::StreamLimit, || format!(
                        "maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{}'",
                        s.labels, tenant
                    ));
                    continue;
                }
                guard.streams.insert(fp, StreamState::new(s.labels.clone(), &self.inner.config));
                streams_created += 1;
            }
            let Some(st) = guard.streams.get_mut(&fp) else { continue };
            if let Some(r) = record.as_mut() {
                r.begin_stream(&s.labels);
            }
            let total = s.entries.len();
            let mut too_far: Vec<AppendError> = Vec::new();
            let mut tail_copy = (!tailers.is_empty()
                && tail::Tailers::any_wants(&tailers, &s.labels))
            .then(|| Stream { labels: s.labels.clone(), entries: Vec::new() });
            for e in s.entries {
                let mark = record.as_mut().map(|r| r.entry(&e));
                let copy = tail_copy.as_ref().map(|_| e.clone());
                let res = st.append(e, now, &self.inner.config);
                if let (Ok(()), Some(t), Some(copy)) = (&res, tail_copy.as_mut(), copy) {
                    t.entries.push(copy);
                }
                if let (Some(r), Some(mark)) = (record.as_mut(), mark) {
                    if res.is_err() {
                        r.rollback(mark);
                    }
                }
                match res {
                    Ok(()) => accepted += 1,
                    Err(AppendError::Duplicate) => accepted += 1,
                    Err(err) => {
                        rejected += 1;
                        too_far.push(err);
                    }
                }
            }
            chunks_created += std::mem::take(&mut st.chunks_opened);
            if let Some(t) = tail_copy {
                tailed.push(t);
            }
            if let Some(first) = too_far.first() {
                errors.add(push_errors::Reason::TooFarBehind, || {
                    format!(
                    "{first} for stream: {},\nuser '{tenant}', total ignored: {} out of {total}",
                    s.labels,
                    too_far.len()
                )
                });
            }
        }
        // Logged before the tenant's lock is released: a later push whose entries this one
        // added (a retry) finds them as duplicates and leaves them out of its own record, so
        // it must not be acknowledged before this record (or, if it failed, the record kept
        // in `unlogged`) is in the WAL.
        if let Some(wal) = wal {
            let bytes = record.and_then(RecordBuilder::finish);
            if let Err(cause) = self.log_locked(wal, &mut guard, bytes) {
                self.inner.metrics.wal_failures.inc();
                tracing::error!(error = %cause, tenant, "WAL write failed; push refused");
                return Err(IngesterError::WalWrite { cause });
            }
        }
        drop(guard);
        self.inner.metrics.entries.with_label_values(&["accepted"]).inc_by(accepted);
        self.inner.metrics.entries.with_label_values(&["rejected"]).inc_by(rejected);
        if streams_created > 0 {
            let m = &self.inner.metrics;
            m.streams_created.with_label_values(&[tenant]).inc_by(streams_created);
            // the flush loop recounts them; a new stream shows at once
            m.memory_streams.with_label_values(&[tenant]).add(streams_created as i64);
        }
        self.inner.metrics.chunks_created.inc_by(chunks_created);
        if !tailed.is_empty() {
            let dropped = self.inner.tailers.dispatch(tenant, &tailers, &tailed);
            self.inner.metrics.tail_dropped_entries.inc_by(dropped as u64);
            self.inner.metrics.tailers.set(self.inner.tailers.count() as i64);
        }
        match errors.into_error() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Writes the tenant's records that failed before (`unlogged`, in order), then `record`.
    /// A record that cannot be written joins `unlogged`, and the push fails: its entries stay
    /// in memory, and the next push of the tenant writes the record before it is acknowledged.
    fn log_locked(
        &self,
        wal: &Wal,
        streams: &mut TenantStreams,
        record: Option<Vec<u8>>,
    ) -> std::io::Result<()> {
        let mut result = Ok(());
        let pending = std::mem::take(&mut streams.unlogged);
        for bytes in pending.into_iter().chain(record) {
            if result.is_ok() {
                match wal.append(&bytes) {
                    Ok(()) => {
                        self.inner.metrics.wal_records.inc();
                        self.inner.metrics.wal_bytes.inc_by(bytes.len() as u64);
                        continue;
                    }
                    Err(e) => result = Err(e),
                }
            }
            streams.unlogged.push(bytes);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use skald_chunk_store::ObjectChunkStore;
    use skald_common::limits::Limits;
    use skald_index::MemIndexStore;
    use skald_model::{Entry, Labels, Stream};
    use skald_proto::ingester::IngesterService;
    use skald_proto::ErrorCode;

    use crate::error::IngesterError;
    use crate::testing::{held, ingester, streams, temp_wal};
    use crate::{Ingester, IngesterConfig};

    fn stream(app: &str, ts: i64) -> Stream {
        Stream {
            labels: Labels::parse(&format!(r#"{{app="{app}"}}"#)).unwrap(),
            entries: vec![Entry {
                ts,
                line: format!("{app} {ts}").into(),
                structured_metadata: vec![],
            }],
        }
    }

    /// The stream limit is the tenant's: a runtime override lowers it for one tenant only,
    /// and a reload applies to the next push.
    #[test]
    fn the_stream_limit_is_per_tenant() {
        use skald_common::overrides::{parse_runtime_config, Overrides};
        let overrides = Overrides::new(Limits::default());
        let file = "overrides:\n  small:\n    max_global_streams_per_user: 1\n";
        overrides.replace(parse_runtime_config(file, &Limits::default()).unwrap());
        let ing = Ingester::new(
            IngesterConfig::default(),
            overrides.clone(),
            Arc::new(ObjectChunkStore::in_memory()),
            Arc::new(MemIndexStore::new()),
            &prometheus::Registry::new(),
        );
        let two = || vec![stream("a", 1_000), stream("b", 1_000)];
        assert!(ing.push_sync("small", two(), false).is_err());
        ing.push_sync("big", two(), false).unwrap();
        overrides.replace(Default::default());
        ing.push_sync("small", two(), false).unwrap();
    }

    /// With `max_global_streams_per_user: 2`, a push that would create a third stream has
    /// that stream refused with a 429, once per reason however many streams it refused, while
    /// its entries for streams held already are taken; entries too far behind add a 400 line.
    #[test]
    fn the_stream_limit_refuses_new_streams_only() {
        let limits = Limits { max_global_streams_per_user: 2, ..Default::default() };
        let ing = Ingester::new(
            IngesterConfig::default(),
            limits,
            Arc::new(ObjectChunkStore::in_memory()),
            Arc::new(MemIndexStore::new()),
            &prometheus::Registry::new(),
        );
        ing.push_sync("t", vec![stream("a", 1_000), stream("b", 1_000)], true).unwrap();
        let push = vec![
            stream("c", 1_000),
            stream("a", 2_000),
            stream("d", 1_000),
            stream("e", 1_000),
            stream("b", -1 << 50),
        ];
        let err = ing.push_sync("t", push, true).unwrap_err();
        let IngesterError::PushRefused { stream_limit: true, message } = &err else {
            panic!("{err:?}")
        };
        let lines: Vec<&str> = message.lines().collect();
        assert_eq!(lines.len(), 3, "{message}");
        assert!(
            lines[0].starts_with(
                "maximum active stream limit exceeded when trying to create stream {app=\"c\"}"
            ),
            "{message}"
        );
        assert!(
            lines[0].ends_with("user: 't' (and 2 more streams refused for the same reason)"),
            "{message}"
        );
        assert!(lines[2].starts_with("user 't', total ignored: 1 out of 1"), "{message}");
        assert_eq!(skald_proto::ServiceError::from(err).code, ErrorCode::TooManyRequests);
        // the held streams took their new entry; no stream was created
        let guard = ing.inner.tenants.lock().get("t").cloned().unwrap();
        let t = guard.lock();
        assert_eq!(t.streams.len(), 2);
        let held: usize =
            t.streams.values().map(|s| s.entries_in_range(i64::MIN, i64::MAX).unwrap().len()).sum();
        assert_eq!(held, 3);
        drop(t);
        // another tenant has its own limit
        ing.push_sync("u", vec![stream("c", 1_000), stream("d", 1_000)], true).unwrap();
        // without the stream limit, only the entries too far behind: a 400
        let err = ing.push_sync("t", vec![stream("a", -1 << 50)], true).unwrap_err();
        assert!(matches!(err, IngesterError::PushRefused { stream_limit: false, .. }), "{err:?}");
        assert_eq!(err.code(), ErrorCode::BadRequest);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_after_a_failed_wal_write_is_logged_before_it_is_acknowledged() {
        let dir = temp_wal("full");
        let ing = ingester(IngesterConfig::default());
        ing.open_wal(&dir).await.unwrap();
        ing.push("t", streams(0, 100)).await.unwrap();
        // the disk is full for two writes: the push and its first retry are refused
        let wal = ing.inner.wal.get().unwrap();
        wal.fail_appends.store(2, std::sync::atomic::Ordering::Relaxed);
        let unlogged = || ing.tenant("t").lock().unlogged.len();
        let err = ing.push("t", streams(100, 200)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable, "{err:?}");
        assert!(err.message.contains("no space left on device"), "{err:?}");
        assert_eq!(unlogged(), 1, "the refused push's record is kept");
        // the retry's own record is empty (its entries are duplicates now): only the kept
        // record is left to write, and it fails again
        assert!(ing.push("t", streams(100, 200)).await.is_err());
        assert_eq!(unlogged(), 1);
        // the retry that succeeds finds every entry in memory already (duplicates): it is
        // acknowledged only once the refused pushes' records are written
        ing.push("t", streams(100, 200)).await.unwrap();
        assert_eq!(unlogged(), 0);
        assert_eq!(ing.inner.metrics.wal_failures.get(), 2);
        drop(ing); // SIGKILL: no flush, no checkpoint

        let again = ingester(IngesterConfig::default());
        let stats = again.open_wal(&dir).await.unwrap();
        assert_eq!(held(&again).await, 300, "{stats:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A push runs off the runtime's workers: one waiting for its tenant's lock (held by
    /// another push sealing a block, say) or for the disk leaves the runtime free. On a
    /// one-thread runtime (the push goes to the blocking pool), a timer still fires on time
    /// meanwhile.
    #[tokio::test(flavor = "current_thread")]
    async fn a_push_waiting_for_its_tenant_leaves_the_runtime_free() {
        push_waiting_for_its_tenant().await;
    }

    /// The same on a multi-thread runtime with one worker (the push hands the worker's duty
    /// to another thread, `block_in_place`): the worker's timer still fires on time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_push_waiting_for_its_tenant_leaves_the_only_worker_free() {
        // (the test's body runs outside the worker: run it as a task, on the worker)
        tokio::spawn(push_waiting_for_its_tenant()).await.unwrap();
    }

    async fn push_waiting_for_its_tenant() {
        let ing = ingester(IngesterConfig::default());
        ing.push("t", streams(0, 1)).await.unwrap();
        let (locked, holder) = hold_tenant(&ing, "t", Duration::from_millis(600));
        locked.recv().unwrap();
        let push = tokio::spawn({
            let ing = ing.clone();
            async move { ing.push("t", streams(1, 1)).await }
        });
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(!push.is_finished(), "the push waits for the tenant's lock");
        push.await.unwrap().unwrap();
        holder.join().unwrap();
        assert_eq!(held(&ing).await, 2);
    }

    /// The same for the flush loop's cut (which seals and encodes chunks under the lock).
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_cutting_chunks_leaves_the_runtime_free() {
        let ing = ingester(IngesterConfig::default());
        ing.push("t", streams(0, 10)).await.unwrap();
        let (locked, holder) = hold_tenant(&ing, "t", Duration::from_millis(600));
        locked.recv().unwrap();
        let flush = tokio::spawn({
            let ing = ing.clone();
            async move { ing.flush(true).await }
        });
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        assert!(!flush.is_finished());
        flush.await.unwrap().unwrap();
        holder.join().unwrap();
        assert!(ing.tenant("t").lock().streams.is_empty(), "flushed");
    }

    /// Holds tenant `tenant`'s lock on another thread for `hold`; the receiver hears once it
    /// is held.
    fn hold_tenant(
        ing: &Ingester,
        tenant: &str,
        hold: Duration,
    ) -> (std::sync::mpsc::Receiver<()>, std::thread::JoinHandle<()>) {
        let t = ing.tenant(tenant);
        let (tx, rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _guard = t.lock();
            tx.send(()).unwrap();
            std::thread::sleep(hold);
        });
        (rx, holder)
    }

    /// Pushes of one tenant that run at once are logged in the order memory applied them.
    /// Which entries are taken depends on that order (with a 100 ns out-of-order window, an
    /// entry older than the window behind the newest taken is refused, and a record holds only
    /// the entries taken), so a replay of the WAL rebuilds exactly what memory held only if
    /// the records are in the order their pushes were applied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pushes_of_one_tenant_are_logged_in_the_order_they_were_applied() {
        let config =
            IngesterConfig { max_chunk_age: Duration::from_nanos(200), ..Default::default() };
        let dir = temp_wal("order");
        let ing = ingester(config.clone());
        ing.open_wal(&dir).await.unwrap();
        let mut pushes = Vec::new();
        for p in 0..64i64 {
            let ing = ing.clone();
            pushes.push(tokio::spawn(async move {
                // each push: a few entries around its own point in time, spread over 0..2000
                let base = (p * 7_919) % 2_000;
                let entries = (0..8)
                    .map(|j| Entry {
                        ts: base + j * 37 % 150,
                        line: format!("push {p} entry {j}").into(),
                        structured_metadata: vec![],
                    })
                    .collect();
                let labels = Labels::parse(r#"{job="replay"}"#).unwrap();
                // refusals (too far behind) are part of the test: only the taken entries count
                let _ = ing.push("t", vec![Stream { labels, entries }]).await;
            }));
        }
        for p in pushes {
            p.await.unwrap();
        }
        let before = entries(&ing).await;
        assert!(!before.is_empty() && before.len() < 64 * 8, "{} entries taken", before.len());
        drop(ing); // SIGKILL: no flush, no checkpoint

        let again = ingester(config);
        again.open_wal(&dir).await.unwrap();
        assert_eq!(entries(&again).await, before);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Every entry tenant `t` holds, sorted.
    async fn entries(ing: &Ingester) -> Vec<(i64, String)> {
        let q = skald_proto::ingester::IngesterQuery {
            matchers: vec![skald_model::LabelMatcher::new(
                "job",
                skald_model::MatchType::Equal,
                "replay",
            )
            .unwrap()],
            start: i64::MIN,
            end: i64::MAX,
            limit: 1_000_000,
            ..Default::default()
        };
        let mut out: Vec<(i64, String)> = ing
            .query("t", q)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|s| s.entries.into_iter().map(|e| (e.ts, e.line.to_string())))
            .collect();
        out.sort();
        out
    }
}
