//! Log queries: run the pipeline over every entry and keep the `limit` entries closest to the
//! query's starting edge (`end` for backward, `start` for forward).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use skald_model::{Direction, Labels, Line};

use super::memory::{batch_bytes, labels_bytes, QueryMemory};
use super::{
    account, result_too_large, CancelCheck, EngineError, Limits, QueryParams, QueryResult,
    ResultEntry, ResultStream, SelectLimit, Source, Stats,
};
use crate::log::Pipeline;
use crate::syntax::ast;

/// Checks a log query's `limit` against `max_entries_limit_per_query`, with Loki's message.
pub fn check_entries_limit(limit: u32, limits: &Limits) -> Result<(), EngineError> {
    if limit > limits.max_entries_limit_per_query {
        return Err(EngineError::Limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit_per_query ({} > {})",
            limit, limits.max_entries_limit_per_query
        )));
    }
    Ok(())
}

/// A result stream's labels and their hash, shared by the kept entries that carry them.
struct Key {
    labels: Labels,
    hash: u64,
}

impl Key {
    fn new(labels: Labels) -> Arc<Key> {
        let hash = labels.hash();
        Arc::new(Key { labels, hash })
    }
}

/// One kept entry. `Ord` puts the *worst* entry (the first to evict) at the top of a max-heap.
struct Candidate {
    ts: i64,
    backward: bool,
    key: Arc<Key>,
    /// The labels of the stream the entry was stored in (before the pipeline).
    src: Arc<Labels>,
    /// Position in the source's order: a stream's entries with one timestamp come in arrival
    /// order, which Loki keeps (reversed for `backward`).
    seq: u64,
    entry: ResultEntry,
}

impl Candidate {
    /// What this entry adds to the response: its line and the labels returned with it.
    fn size(&self) -> usize {
        let labels = |l: &Labels| l.iter().map(|l| l.name.len() + l.value.len()).sum::<usize>();
        self.entry.line.len() + labels(&self.entry.structured_metadata) + labels(&self.entry.parsed)
    }

    /// What keeping this entry takes from the query's memory: the candidate itself, its line,
    /// its key and the labels returned with it.
    fn held(&self) -> u64 {
        std::mem::size_of::<Candidate>() as u64
            + self.entry.line.len() as u64
            + labels_bytes(&self.key.labels)
            + labels_bytes(&self.entry.structured_metadata)
            + labels_bytes(&self.entry.parsed)
    }

    /// Rank order: the best entry first. Nearest the edge first; then by the labels of the
    /// stream it was stored in; then in arrival order (forward) or its reverse (backward).
    /// Like Loki, which reads each stored stream in order and runs the pipeline as it reads:
    /// the entries of one stored stream with one timestamp keep their order whatever result
    /// streams the pipeline puts them in (labels, structured metadata), and so `interval`
    /// and `limit` keep the same ones.
    fn rank(&self, other: &Self) -> Ordering {
        let (near, far) = if self.backward { (other, self) } else { (self, other) };
        near.ts
            .cmp(&far.ts)
            .then_with(|| {
                if Arc::ptr_eq(&self.src, &other.src) {
                    Ordering::Equal
                } else {
                    self.src.cmp(&other.src)
                }
            })
            .then_with(|| near.seq.cmp(&far.seq))
    }

    /// What makes two entries one in Loki's answer: the same labels, timestamp and line
    /// (Loki's result iterator merges them, e.g. after a `line_format` made two lines equal).
    fn identity(&self) -> (i64, u64) {
        (self.ts, skald_model::entry_hash(self.key.hash, &self.entry.line))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.rank(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank(other)
    }
}

/// The labels an entry is returned with: its result stream's key, and with
/// `categorize_labels` its structured-metadata and parsed labels.
#[derive(Clone)]
struct EntryLabels {
    key: Arc<Key>,
    structured_metadata: Labels,
    parsed: Labels,
}

/// Most structured-metadata sets of a batch whose entries share their labels (a batch with
/// more, say a trace id per line, builds each entry's).
const MAX_SHARED_KEYS: usize = 256;

/// Where kept entries go: a bounded heap, or (with an interval) every candidate.
enum Keeper {
    Heap(BinaryHeap<Candidate>),
    All(Vec<Candidate>),
}

pub(super) fn evaluate_logs(
    sel: &ast::LogSelectorExpr,
    params: &QueryParams,
    limits: &Limits,
    source: &dyn Source,
    stats: &mut Stats,
    mem: &QueryMemory,
) -> Result<QueryResult, EngineError> {
    let limit = params.limit as usize;
    let max_bytes = limits.max_result_bytes;
    // Bytes of the entries kept so far: they are what the response will hold.
    let mut kept_bytes = 0usize;
    let mut check = CancelCheck::new(source);
    let backward = params.direction == Direction::Backward;
    if limit == 0 || params.end <= params.start {
        return Ok(QueryResult::Streams(Vec::new()));
    }
    let pipeline = Pipeline::new(&sel.stages).map_err(|e| EngineError::Pipeline(e.to_string()))?;
    // Interval thinning depends on the whole ordered sequence, so it needs every candidate.
    let mut keeper = if params.interval_ns > 0 {
        Keeper::All(Vec::new())
    } else {
        Keeper::Heap(BinaryHeap::with_capacity(limit.min(1 << 16) + 1))
    };

    // The identities of the kept entries: an entry equal to a kept one is the same entry.
    let mut kept: HashSet<(i64, u64)> = HashSet::new();
    let mut seq = 0u64;
    // Interval thinning reaches past the `limit` nearest entries, so only a plain limit is a hint.
    // Nor when stages can make two entries one (equal lines or equal labels): the
    // `limit` nearest entries the source keeps may then merge into fewer.
    let merges = sel.stages.iter().any(|s| {
        use ast::Stage::*;
        matches!(s, LineFormat(_) | Decolorize | LabelFormat(_) | Drop(_) | Keep(_))
    });
    let hint = (params.interval_ns == 0 && !merges).then_some(SelectLimit { limit, backward });
    // Line filters leave the labels as the stream and the structured metadata make them.
    let labels_fixed = sel.stages.iter().all(|s| matches!(s, ast::Stage::LineFilter(_)));
    for batch in source.select(sel, params.start, params.end, hint)? {
        let stream = batch?;
        // the batch is held while its entries are processed
        let batch_held = batch_bytes(&stream);
        mem.charge(batch_held)?;
        let mut sp = pipeline.for_stream(&stream.labels);
        let src = Arc::new(stream.labels.clone());
        let sets = stream.entries.metadata_sets();
        let mut shared: Vec<Option<EntryLabels>> =
            vec![None; if labels_fixed && sets <= MAX_SHARED_KEYS { sets } else { 0 }];
        for e in stream.entries.iter() {
            check.tick()?;
            if e.ts < params.start || e.ts >= params.end {
                continue;
            }
            account(stats, &e);
            if let Keeper::Heap(h) = &keeper {
                if h.len() >= limit {
                    if let Some(worst) = h.peek() {
                        let strictly_worse =
                            if backward { e.ts < worst.ts } else { e.ts > worst.ts };
                        if strictly_worse {
                            continue;
                        }
                    }
                }
            }
            let Some(p) = sp.process_ref(e.ts, e.line, e.structured_metadata) else {
                continue;
            };
            stats.total_post_filter_lines += 1;
            // When the pipeline only filters lines, an entry's labels depend on its stream and
            // structured metadata alone: entries with the same metadata set (the batch interns
            // them) share one key instead of each building its own.
            let labels = match shared.get(e.metadata_id as usize).and_then(Option::as_ref) {
                Some(l) => l.clone(),
                None => {
                    let labels = if params.categorize_labels {
                        let r = p.labels();
                        EntryLabels {
                            key: Key::new(r.stream),
                            structured_metadata: r.structured_metadata,
                            parsed: r.parsed,
                        }
                    } else {
                        EntryLabels {
                            key: Key::new(p.all_labels()),
                            structured_metadata: Labels::default(),
                            parsed: Labels::default(),
                        }
                    };
                    if let Some(slot) = shared.get_mut(e.metadata_id as usize) {
                        *slot = Some(labels.clone());
                    }
                    labels
                }
            };
            let key = labels.key;
            let entry = ResultEntry {
                ts: e.ts,
                line: Line::from(p.line.into_owned()),
                structured_metadata: labels.structured_metadata,
                parsed: labels.parsed,
            };
            seq += 1;
            let cand = Candidate { ts: e.ts, backward, key, src: src.clone(), seq, entry };
            let size = cand.size();
            let identity = cand.identity();
            if kept.contains(&identity) {
                continue;
            }
            match &mut keeper {
                Keeper::Heap(h) => {
                    if h.len() < limit {
                        mem.charge(cand.held())?;
                        kept_bytes += size;
                        kept.insert(identity);
                        h.push(cand);
                    } else if let Some(mut worst) = h.peek_mut() {
                        if cand < *worst {
                            mem.charge(cand.held())?;
                            mem.release(worst.held());
                            kept_bytes = kept_bytes.saturating_sub(worst.size()) + size;
                            kept.remove(&worst.identity());
                            kept.insert(identity);
                            *worst = cand;
                        }
                    }
                }
                Keeper::All(v) => {
                    mem.charge(cand.held())?;
                    kept_bytes += size;
                    kept.insert(identity);
                    v.push(cand);
                }
            }
            // Stop as soon as the kept entries outgrow the cap, before they take more memory.
            if max_bytes > 0 && kept_bytes > max_bytes {
                return Err(result_too_large(max_bytes));
            }
        }
        mem.release(batch_held);
    }

    let selected: Vec<Candidate> = match keeper {
        Keeper::Heap(h) => h.into_sorted_vec(),
        Keeper::All(mut v) => {
            v.sort();
            thin(v, params.interval_ns, backward, limit)
        }
    };
    stats.total_entries_returned = selected.len() as u64;

    // Group by key; Loki sorts streams by their printed label set. Each shared key is
    // printed once (it is held here, so its address names it for the whole loop).
    let mut printed: HashMap<*const Key, (Arc<Key>, String)> = HashMap::new();
    let mut streams: BTreeMap<String, ResultStream> = BTreeMap::new();
    for c in selected {
        let (key, name) = printed
            .entry(Arc::as_ptr(&c.key))
            .or_insert_with(|| (c.key.clone(), c.key.labels.to_string()));
        match streams.get_mut(name.as_str()) {
            Some(s) => s.entries.push(c.entry),
            None => {
                let stream = ResultStream { labels: key.labels.clone(), entries: vec![c.entry] };
                streams.insert(name.clone(), stream);
            }
        }
    }
    Ok(QueryResult::Streams(streams.into_values().collect()))
}

/// Loki's interval thinning over entries sorted best-first: keep the first entry, then each
/// entry at least `interval` away from the previously kept one, up to `limit` entries.
fn thin(sorted: Vec<Candidate>, interval: i64, backward: bool, limit: usize) -> Vec<Candidate> {
    let mut out = Vec::new();
    let mut last: Option<i64> = None;
    for c in sorted {
        if out.len() >= limit {
            break;
        }
        let keep = match last {
            None => true,
            Some(l) if backward => c.ts <= l.saturating_sub(interval),
            Some(l) => c.ts >= l.saturating_add(interval),
        };
        if keep {
            last = Some(c.ts);
            out.push(c);
        }
    }
    out
}
