//! Live tails: queriers subscribe with a selector and a pipeline; every push that lands in a
//! matching stream is forwarded, after the pipeline's filters, once it is acknowledged (in
//! memory and, when on, in the WAL).
//!
//! A subscriber that cannot keep up does not slow pushes down: what waits for it is bounded
//! in batches ([`TAIL_BUFFER_BATCHES`]) and in bytes ([`TAIL_BUFFER_BYTES`]), and what does
//! not fit is dropped, counted (`skald_ingester_tail_dropped_entries_total`) and reported to
//! it (`dropped_entries`) with the next batch that fits, as Loki's ingester tailers do.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use skald_logql::engine::push_down;
use skald_logql::log::Pipeline;
use skald_model::{LabelMatcher, Labels, Stream};
use skald_proto::ingester::{DroppedEntry, TailBatch};
use tokio::sync::mpsc;

/// Batches a subscriber may have in flight before new entries are dropped for it.
const TAIL_BUFFER_BATCHES: usize = 256;
/// Bytes (lines, labels and metadata, as [`batch_bytes`] counts them) a subscriber may have in
/// flight before new entries are dropped for it. A batch larger than this still goes through
/// when nothing else waits, so that one large push reaches a subscriber that keeps up.
pub(crate) const TAIL_BUFFER_BYTES: usize = 8 << 20;
/// Dropped entries remembered per subscriber until they can be reported (Loki keeps a bounded
/// list too); the rest are counted only in the metric.
const MAX_DROPPED_REPORTED: usize = 1000;

/// One subscriber.
pub(crate) struct Tailer {
    matchers: Vec<LabelMatcher>,
    pipeline: Option<Pipeline>,
    tx: mpsc::Sender<TailBatch>,
    dropped: Mutex<Vec<DroppedEntry>>,
    /// Bytes sent and not yet taken by the receiver.
    buffered: Arc<AtomicUsize>,
    /// The byte budget ([`TAIL_BUFFER_BYTES`]; smaller in tests).
    max_bytes: usize,
}

/// The memory a batch holds, roughly: lines, label and metadata strings, and a fixed cost per
/// entry and stream.
fn batch_bytes(batch: &TailBatch) -> usize {
    let streams: usize = batch
        .streams
        .iter()
        .map(|s| {
            let labels: usize = s.labels.iter().map(|l| l.name.len() + l.value.len() + 16).sum();
            let entries: usize = s
                .entries
                .iter()
                .map(|e| {
                    let sm: usize = e
                        .structured_metadata
                        .iter()
                        .map(|m| m.name.len() + m.value.len() + 16)
                        .sum();
                    e.line.len() + sm + 48
                })
                .sum();
            labels + entries + 64
        })
        .sum();
    streams + batch.dropped.len() * 64
}

/// What a subscriber receives: its batches, each given back to the byte budget once taken.
pub(crate) struct TailReceiver {
    rx: mpsc::Receiver<TailBatch>,
    buffered: Arc<AtomicUsize>,
}

impl TailReceiver {
    fn taken(&self, batch: TailBatch) -> TailBatch {
        self.buffered.fetch_sub(batch_bytes(&batch), Ordering::Relaxed);
        batch
    }

    /// The next batch if one waits (tests).
    #[cfg(test)]
    fn try_recv(&mut self) -> Result<TailBatch, mpsc::error::TryRecvError> {
        let b = self.rx.try_recv()?;
        Ok(self.taken(b))
    }
}

impl futures::Stream for TailReceiver {
    type Item = TailBatch;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TailBatch>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => Poll::Ready(Some(self.taken(b))),
            other => other,
        }
    }
}

impl Tailer {
    pub(crate) fn new(
        matchers: Vec<LabelMatcher>,
        pipeline: Option<Pipeline>,
    ) -> (Arc<Tailer>, TailReceiver) {
        Self::with_budget(matchers, pipeline, TAIL_BUFFER_BYTES)
    }

    fn with_budget(
        matchers: Vec<LabelMatcher>,
        pipeline: Option<Pipeline>,
        max_bytes: usize,
    ) -> (Arc<Tailer>, TailReceiver) {
        let (tx, rx) = mpsc::channel(TAIL_BUFFER_BATCHES);
        let buffered = Arc::new(AtomicUsize::new(0));
        let tailer = Tailer {
            matchers,
            pipeline,
            tx,
            dropped: Mutex::new(Vec::new()),
            buffered: buffered.clone(),
            max_bytes,
        };
        (Arc::new(tailer), TailReceiver { rx, buffered })
    }

    /// Bytes waiting for the receiver.
    #[cfg(test)]
    fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// Whether entries of a stream with these labels go to this subscriber.
    fn wants(&self, labels: &Labels) -> bool {
        LabelMatcher::all_match(&self.matchers, labels)
    }

    /// Sends what the pipeline accepts of `streams`. Returns the number of entries dropped,
    /// or `None` once the subscriber hung up.
    fn send(&self, streams: Vec<Stream>) -> Option<usize> {
        if self.tx.is_closed() {
            return None;
        }
        let streams = match &self.pipeline {
            Some(p) => push_down(p, streams, None),
            None => streams.into_iter().filter(|s| !s.entries.is_empty()).collect(),
        };
        if streams.is_empty() {
            return Some(0);
        }
        let dropped = std::mem::take(&mut *self.dropped.lock());
        let batch = TailBatch { streams, dropped };
        let size = batch_bytes(&batch);
        // reserve the bytes first: concurrent pushes of one tenant cannot overshoot together
        let before = self.buffered.fetch_add(size, Ordering::Relaxed);
        let sent = if before > 0 && before + size > self.max_bytes {
            Err(mpsc::error::TrySendError::Full(batch))
        } else {
            self.tx.try_send(batch)
        };
        if sent.is_err() {
            self.buffered.fetch_sub(size, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Some(0),
            Err(mpsc::error::TrySendError::Closed(_)) => None,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                let mut kept = self.dropped.lock();
                // what was waiting to be reported still is
                let mut pending = batch.dropped;
                pending.append(&mut kept);
                *kept = pending;
                let mut n = 0;
                for s in batch.streams {
                    for e in &s.entries {
                        n += 1;
                        if kept.len() < MAX_DROPPED_REPORTED {
                            kept.push(DroppedEntry { labels: s.labels.clone(), ts: e.ts });
                        }
                    }
                }
                Some(n)
            }
        }
    }
}

/// Every subscriber, per tenant.
#[derive(Default)]
pub(crate) struct Tailers {
    /// Subscribers in all tenants: a push checks this before anything else.
    count: AtomicUsize,
    by_tenant: Mutex<HashMap<String, Vec<Arc<Tailer>>>>,
}

impl Tailers {
    pub(crate) fn add(&self, tenant: &str, tailer: Arc<Tailer>) {
        let mut map = self.by_tenant.lock();
        let list = map.entry(tenant.to_string()).or_default();
        list.retain(|t| !t.tx.is_closed());
        list.push(tailer);
        self.recount(&map);
    }

    fn recount(&self, map: &HashMap<String, Vec<Arc<Tailer>>>) {
        self.count.store(map.values().map(Vec::len).sum(), Ordering::Relaxed);
    }

    /// The subscribers of `tenant` (empty, without locking, when nobody tails).
    pub(crate) fn of(&self, tenant: &str) -> Vec<Arc<Tailer>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        self.by_tenant.lock().get(tenant).cloned().unwrap_or_default()
    }

    /// Whether any of `tailers` wants entries of a stream with these labels.
    pub(crate) fn any_wants(tailers: &[Arc<Tailer>], labels: &Labels) -> bool {
        tailers.iter().any(|t| t.wants(labels))
    }

    /// Forwards acknowledged entries to `tailers`. Returns the number of entries dropped for
    /// slow subscribers; subscribers that hung up are removed.
    pub(crate) fn dispatch(
        &self,
        tenant: &str,
        tailers: &[Arc<Tailer>],
        streams: &[Stream],
    ) -> usize {
        let mut dropped = 0;
        let mut gone = false;
        for t in tailers {
            let mine: Vec<Stream> =
                streams.iter().filter(|s| t.wants(&s.labels)).cloned().collect();
            if mine.is_empty() {
                continue;
            }
            match t.send(mine) {
                Some(n) => dropped += n,
                None => gone = true,
            }
        }
        if gone {
            let mut map = self.by_tenant.lock();
            if let Some(list) = map.get_mut(tenant) {
                list.retain(|t| !t.tx.is_closed());
                if list.is_empty() {
                    map.remove(tenant);
                }
            }
            self.recount(&map);
        }
        dropped
    }

    /// Ends every subscription (at shutdown: open tails would keep the gRPC server up).
    pub(crate) fn close_all(&self) {
        let mut map = self.by_tenant.lock();
        map.clear();
        self.recount(&map);
    }

    /// Subscribers right now (for the gauge).
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use skald_model::{Entry, Label, MatchType};

    fn stream(job: &str, lines: &[(i64, &str)]) -> Stream {
        Stream {
            labels: Labels::from_vec(vec![Label::new("job", job)]),
            entries: lines
                .iter()
                .map(|(ts, l)| Entry { ts: *ts, line: l.into(), structured_metadata: vec![] })
                .collect(),
        }
    }

    fn pipeline(text: &str) -> Pipeline {
        match skald_logql::syntax::parse_expr(text).unwrap() {
            skald_logql::syntax::ast::Expr::Log(sel) => Pipeline::new(&sel.stages).unwrap(),
            _ => panic!("not a log query"),
        }
    }

    #[test]
    fn forwards_matching_filtered_entries_and_reports_drops() {
        let tailers = Tailers::default();
        let m = vec![LabelMatcher::new("job", MatchType::Equal, "a").unwrap()];
        let (t, mut rx) = Tailer::new(m, Some(pipeline(r#"{job="a"} |= "keep""#)));
        tailers.add("t1", t);
        assert!(tailers.of("t2").is_empty());
        let subs = tailers.of("t1");
        assert!(Tailers::any_wants(&subs, &stream("a", &[]).labels));
        assert!(!Tailers::any_wants(&subs, &stream("b", &[]).labels));
        let pushed =
            vec![stream("a", &[(1, "keep 1"), (2, "drop 2")]), stream("b", &[(3, "keep")])];
        assert_eq!(tailers.dispatch("t1", &subs, &pushed), 0);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.streams, vec![stream("a", &[(1, "keep 1")])]);
        assert!(got.dropped.is_empty());

        // fill the buffer: the overflow is dropped, then reported with the next batch that fits
        for i in 0..TAIL_BUFFER_BATCHES as i64 {
            tailers.dispatch("t1", &subs, &[stream("a", &[(10 + i, "keep")])]);
        }
        assert_eq!(tailers.dispatch("t1", &subs, &[stream("a", &[(5000, "keep")])]), 1);
        while rx.try_recv().is_ok() {}
        tailers.dispatch("t1", &subs, &[stream("a", &[(6000, "keep")])]);
        let got = rx.try_recv().unwrap();
        assert_eq!(got.dropped, vec![DroppedEntry { labels: stream("a", &[]).labels, ts: 5000 }]);

        // a subscriber that hung up is forgotten
        drop(rx);
        tailers.dispatch("t1", &subs, &[stream("a", &[(7000, "keep")])]);
        assert_eq!(tailers.count(), 0);
        assert!(tailers.of("t1").is_empty());
    }

    #[test]
    fn a_subscriber_that_never_receives_holds_a_bounded_number_of_bytes() {
        let tailers = Tailers::default();
        let m = vec![LabelMatcher::new("job", MatchType::Equal, "a").unwrap()];
        let (t, mut rx) = Tailer::new(m, None);
        tailers.add("t1", t.clone());
        let subs = tailers.of("t1");
        let line = "x".repeat(64 << 10);
        let lines: Vec<(i64, &str)> = (0..16).map(|i| (i, line.as_str())).collect();
        // 100 pushes of 1 MiB each: the first 7 fit in the 8 MiB budget, the rest are dropped
        let mut dropped = 0;
        for _ in 0..100 {
            dropped += tailers.dispatch("t1", &subs, &[stream("a", &lines)]);
            assert!(t.buffered() <= TAIL_BUFFER_BYTES, "{} bytes buffered", t.buffered());
        }
        let kept = TAIL_BUFFER_BYTES
            / batch_bytes(&TailBatch { streams: vec![stream("a", &lines)], dropped: vec![] });
        assert_eq!(dropped, (100 - kept) * 16);
        // once the receiver takes what waits, the budget is free again and the drops are told
        let mut got = 0;
        while let Ok(b) = rx.try_recv() {
            got += b.streams[0].entries.len();
        }
        assert_eq!(got, kept * 16);
        assert_eq!(t.buffered(), 0);
        assert_eq!(tailers.dispatch("t1", &subs, &[stream("a", &[(99, "small")])]), 0);
        let b = rx.try_recv().unwrap();
        assert_eq!(b.dropped.len(), MAX_DROPPED_REPORTED.min(dropped));
        assert_eq!(t.buffered(), 0);
    }
}
