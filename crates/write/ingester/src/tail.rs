//! Live tails: queriers subscribe with a selector and a pipeline; every push that lands in a
//! matching stream is forwarded, after the pipeline's filters, once it is acknowledged (in
//! memory and, when on, in the WAL).
//!
//! A subscriber that cannot keep up does not slow pushes down: its batches are bounded, and
//! what does not fit is dropped and reported to it (`dropped_entries`) with the next batch
//! that fits, as Loki's ingester tailers do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use skald_logql::engine::push_down;
use skald_logql::log::Pipeline;
use skald_model::{LabelMatcher, Labels, Stream};
use skald_proto::ingester::{DroppedEntry, TailBatch};
use tokio::sync::mpsc;

/// Batches a subscriber may have in flight before new entries are dropped for it.
const TAIL_BUFFER_BATCHES: usize = 256;
/// Dropped entries remembered per subscriber until they can be reported (Loki keeps a bounded
/// list too); the rest are counted only in the metric.
const MAX_DROPPED_REPORTED: usize = 1000;

/// One subscriber.
pub(crate) struct Tailer {
    matchers: Vec<LabelMatcher>,
    pipeline: Option<Pipeline>,
    tx: mpsc::Sender<TailBatch>,
    dropped: Mutex<Vec<DroppedEntry>>,
}

impl Tailer {
    pub(crate) fn new(
        matchers: Vec<LabelMatcher>,
        pipeline: Option<Pipeline>,
    ) -> (Arc<Tailer>, mpsc::Receiver<TailBatch>) {
        let (tx, rx) = mpsc::channel(TAIL_BUFFER_BATCHES);
        (Arc::new(Tailer { matchers, pipeline, tx, dropped: Mutex::new(Vec::new()) }), rx)
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
        match self.tx.try_send(TailBatch { streams, dropped }) {
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
                .map(|(ts, l)| Entry { ts: *ts, line: l.to_string(), structured_metadata: vec![] })
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
}
