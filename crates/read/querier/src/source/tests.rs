#![allow(clippy::unwrap_used)]

use std::time::Duration;

use skald_chunk_store::ObjectChunkStore;
use skald_common::limits::Limits;
use skald_index::{ObjectIndexStore, ObjectIndexStoreConfig};
use skald_logql::syntax::ast::Expr;

use super::*;
use crate::QuerierConfig;

fn source(limits: Limits) -> StoreSource {
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(ObjectIndexStore::new(chunks.clone(), ObjectIndexStoreConfig::default()));
    let window = super::prefetch_window(limits.max_query_memory);
    let querier = Querier::new(QuerierConfig::default(), limits, chunks, index, None);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    StoreSource {
        querier: Arc::new(querier),
        tenant: "t".into(),
        handle: runtime.handle().clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        chunks_seen: AtomicUsize::new(0),
        stats: Default::default(),
        window,
        shard: None,
    }
}

fn selector(q: &str) -> LogSelectorExpr {
    match skald_logql::syntax::parse_expr(q).unwrap() {
        Expr::Log(s) => s,
        other => panic!("not a log selector: {other:?}"),
    }
}

#[test]
fn matchers_per_selector_are_limited() {
    let s = source(Limits { max_streams_matchers_per_query: 2, ..Limits::default() });
    let now = skald_loghttp::params::now_ns();
    let err = s.limit_range(&selector(r#"{a="1", b="2", c!="3"}"#), 0, now).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(
        err.to_string(),
        "max streams matchers per query exceeded, matchers-count > limit (3 > 2)"
    );
    assert_eq!(s.limit_range(&selector(r#"{a="1", b="2"}"#), 0, now).unwrap(), Some((0, now)));
}

#[test]
fn lookback_moves_the_start_up_and_empties_older_ranges() {
    let hour = 3_600_000_000_000i64;
    let s = source(Limits {
        max_query_lookback: Duration::from_secs(3600),
        max_streams_matchers_per_query: 1,
        ..Limits::default()
    });
    let now = skald_loghttp::params::now_ns();
    let (start, end) =
        s.limit_range(&selector(r#"{a="1"}"#), now - 3 * hour, now).unwrap().unwrap();
    assert_eq!(end, now);
    assert!(start >= now - hour - 1_000_000_000 && start <= now - hour + 1_000_000_000);
    // entirely older: nothing to read, before the matchers are counted (Loki's frontend)
    let old = s.limit_range(&selector(r#"{a="1", b="2"}"#), now - 3 * hour, now - 2 * hour);
    assert_eq!(old.unwrap(), None);
}

#[test]
fn chunk_refs_are_counted_per_query() {
    let s = source(Limits { max_chunks_per_query: 3, ..Limits::default() });
    s.count_chunks(2).unwrap();
    s.count_chunks(1).unwrap();
    let err = s.count_chunks(1).unwrap_err();
    assert_eq!(err.status_code(), 400);
    assert_eq!(err.to_string(), "the query hit the max number of chunks limit (limit: 3 chunks)");
    let off = source(Limits { max_chunks_per_query: 0, ..Limits::default() });
    off.count_chunks(usize::MAX / 2).unwrap();
}

/// A runtime that outlives every test source (their storage calls run on it).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    })
}

/// A source over an in-memory index and chunk store.
pub(super) fn store_source() -> StoreSource {
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(skald_index::MemIndexStore::new());
    let querier = Querier::new(QuerierConfig::default(), Limits::default(), chunks, index, None);
    StoreSource {
        querier: Arc::new(querier),
        tenant: "t".into(),
        handle: runtime().handle().clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        chunks_seen: AtomicUsize::new(0),
        stats: Default::default(),
        window: super::prefetch_window(Limits::default().max_query_memory),
        shard: None,
    }
}

/// Writes `entries` (sorted by ts) of `labels` as one chunk with blocks of about `block` bytes.
fn write_chunk(s: &StoreSource, labels: &Labels, entries: &[Entry], block: usize) {
    write_chunk_version(s, labels, entries, block, skald_chunk::FORMAT_VERSION);
}

/// [`write_chunk`] in chunk format `version`.
pub(super) fn write_chunk_version(
    s: &StoreSource,
    labels: &Labels,
    entries: &[Entry],
    block: usize,
    version: u8,
) {
    write_chunk_tabled(s, labels, entries, block, version, false);
}

/// [`write_chunk_version`], and with `table` the chunk's filter in a filter table too, as
/// the ingester's flush writes it.
pub(super) fn write_chunk_tabled(
    s: &StoreSource,
    labels: &Labels,
    entries: &[Entry],
    block: usize,
    version: u8,
    table: bool,
) {
    let mut b = skald_chunk::ChunkBuilder::new(block).with_format_version(version);
    for e in entries {
        b.append(e).unwrap();
    }
    let c = b.finish().unwrap();
    let chunk_ref = chunk_ref_of(skald_model::fingerprint(labels), &c);
    let filter = table.then(|| skald_chunk::Chunk::parse(&c.bytes).unwrap().chunk_filter());
    let q = s.querier.clone();
    let (tenant, labels) = (s.tenant.clone(), labels.clone());
    runtime().block_on(async move {
        q.chunks.put(&chunk_ref.key(&tenant), bytes::Bytes::from(c.bytes)).await.unwrap();
        if let Some(f) = filter.flatten() {
            q.filters.write(&tenant, vec![(chunk_ref, f)]).await.unwrap();
        }
        q.index.write_chunks(&tenant, vec![(labels, chunk_ref)]).await.unwrap();
    });
}

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub(super) fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

/// A source that ignores the limit hint: what the engine answers from a full read.
struct FullRead<'a>(&'a StoreSource);

impl Source for FullRead<'_> {
    fn select(
        &self,
        selector: &LogSelectorExpr,
        start: i64,
        end: i64,
        _limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        self.0.select(selector, start, end, None)
    }
}

pub(super) const SEC: i64 = 1_000_000_000;

/// Random streams written as runs of chunks, plus late chunks that overlap them and replicas
/// (the same entries cut with another block size), with many equal timestamps and copies of
/// an entry that differ in structured metadata.
fn random_store(seed: u64) -> StoreSource {
    let s = store_source();
    let mut rng = Rng(seed | 1);
    let words = ["x", "y", "xz", "xyz", "err", "warn"];
    for app in ["a", "b", "c"] {
        let labels = Labels::from_vec(vec![skald_model::Label::new("app", app)]);
        let n = 50 + rng.below(400) as usize;
        let mut entries: Vec<Entry> = (0..n)
            .map(|i| {
                let ts = 1_000 * SEC + rng.below(300) as i64 * SEC / 4;
                let w = words[rng.below(words.len() as u64) as usize];
                let sm = if rng.below(5) == 0 {
                    vec![skald_model::Label::new("k", rng.below(2).to_string())]
                } else {
                    vec![]
                };
                Entry {
                    ts,
                    line: format!("n={} w={w} i={}", rng.below(10), i % 7).into(),
                    structured_metadata: sm,
                }
            })
            .collect();
        entries.sort_by_key(|e| e.ts);
        let (main, late) = entries.split_at(n * 4 / 5);
        let mut at = 0;
        while at < main.len() {
            let len = (1 + rng.below(120) as usize).min(main.len() - at);
            let run = &main[at..at + len];
            write_chunk(&s, &labels, run, 64 + rng.below(400) as usize);
            if rng.below(4) == 0 {
                write_chunk(&s, &labels, run, 100 + rng.below(900) as usize);
            }
            at += len;
        }
        if !late.is_empty() {
            let mut late = late.to_vec();
            for e in &mut late {
                e.ts -= rng.below(200) as i64 * SEC / 4;
            }
            late.sort_by_key(|e| e.ts);
            write_chunk(&s, &labels, &late, 128);
        }
    }
    s
}

#[test]
fn limited_reads_answer_as_full_reads() {
    use skald_logql::engine::{evaluate, Limits as EngineLimits, QueryParams};
    let queries = [
        r#"{app="a"}"#,
        r#"{app=~".+"}"#,
        r#"{app=~".+"} |= "x""#,
        r#"{app=~"a|b"} != "y" |~ "n=[1-4]""#,
        r#"{app=~".+"} |= "xyz""#,
        r#"{app=~".+"} | logfmt | n > 5"#,
        r#"{app=~".+"} | k="1""#,
        r#"{app=~".+"} | drop app"#,
        r#"{app=~".+"} | line_format "{{.app}}""#,
    ];
    let limits = EngineLimits::default();
    for seed in 1..=12u64 {
        let s = random_store(seed * 7919);
        let mut rng = Rng(seed);
        for q in queries {
            let expr = skald_logql::syntax::parse_expr(q).unwrap();
            for _ in 0..6 {
                let start = 1_000 * SEC - 10 * SEC + rng.below(80) as i64 * SEC;
                let end = start + rng.below(90) as i64 * SEC + 1;
                let params = QueryParams {
                    start,
                    end,
                    step_ns: 0,
                    interval_ns: 0,
                    limit: 1 + rng.below(60) as u32,
                    direction: if rng.below(2) == 0 {
                        skald_model::Direction::Backward
                    } else {
                        skald_model::Direction::Forward
                    },
                    instant: false,
                    categorize_labels: rng.below(2) == 0,
                };
                let limited = evaluate(&expr, &params, &limits, &s).unwrap();
                let full = evaluate(&expr, &params, &limits, &FullRead(&s)).unwrap();
                assert_eq!(limited.result, full.result, "seed {seed}, {q}, {params:?}");
            }
        }
    }
}

/// Entries of one stream in `[start, end)`, as `(ts, line)`.
fn entries_of(b: &EntryBatch) -> Vec<(i64, String)> {
    b.iter().map(|e| (e.ts, String::from_utf8_lossy(e.line).into_owned())).collect()
}

#[test]
fn a_limited_read_keeps_exactly_the_entries_up_to_the_limit_th_and_its_ties() {
    let s = store_source();
    let labels = Labels::from_vec(vec![skald_model::Label::new("app", "a")]);
    let e = |ts: i64, line: &str| Entry { ts, line: line.into(), structured_metadata: vec![] };
    // 100 chunks of 10 entries, one second apart; the newest chunk ends with a tie
    for c in 0..100i64 {
        let mut run: Vec<Entry> = (0..10).map(|i| e((c * 10 + i) * SEC, "l")).collect();
        if c == 99 {
            run.push(e(999 * SEC, "m"));
        }
        write_chunk(&s, &labels, &run, 64);
    }
    let load = |limit: usize, backward: bool, stages: &str| {
        let sel = selector(&format!(r#"{{app="a"}}{stages}"#));
        let plan = s.plan(&sel, 0, 1000 * SEC, None).unwrap();
        let pending = plan.into_iter().next().unwrap().1;
        let limited = limited::Limited::new(&sel.stages, SelectLimit { limit, backward }).unwrap();
        let lines = LiteralScan::new(&skald_logql::log::required_literals(&sel.stages));
        let scan = decode::BlockScan { lines, needles: None };
        let out = limited.load(&s, &labels, pending, Vec::new(), (0, 1000 * SEC), &scan).unwrap();
        (entries_of(&out), limited.chunks_fetched.load(Ordering::Relaxed))
    };
    let (back, fetched) = load(3, true, "");
    assert_eq!(
        back,
        vec![(998 * SEC, "l".into()), (999 * SEC, "l".into()), (999 * SEC, "m".into())]
    );
    assert_eq!(fetched, 1, "only the newest chunk is read");
    let (back, _) = load(2, true, "");
    assert_eq!(back, vec![(999 * SEC, "l".into()), (999 * SEC, "m".into())]);
    let (fwd, fetched) = load(15, false, "");
    assert_eq!(fwd, (0..15).map(|i| (i * SEC, "l".to_string())).collect::<Vec<_>>());
    // the first chunk, then two at once (each fetch takes twice as many as the one before)
    assert_eq!(fetched, 3);
    // a filter that only the last entry passes: everything is read, one entry comes back
    let (only, fetched) = load(5, true, r#" |= "m""#);
    assert_eq!(only, vec![(999 * SEC, "m".into())]);
    assert_eq!(fetched, 100);
    // a pipeline that keeps every line counts like no pipeline
    let (parsed, fetched) = load(3, true, " | logfmt");
    assert_eq!(parsed.len(), 3);
    assert_eq!(fetched, 1);
    // line_format may merge entries: no shortened read
    assert!(limited::Limited::new(
        &selector(r#"{app="a"} | line_format "x""#).stages,
        SelectLimit { limit: 1, backward: true }
    )
    .is_none());
}

/// What a stream holds in `[start, end)`, read the simplest way: every chunk decoded whole.
fn naive_read(s: &StoreSource, sel: &LogSelectorExpr, start: i64, end: i64) -> Vec<StreamBatch> {
    let plan = s.index_plan(sel, start, end).unwrap();
    plan.into_iter()
        .filter_map(|(labels, pending)| {
            let mut entries = EntryBatch::new();
            for c in &pending.chunks {
                let bytes = runtime().block_on(s.querier.chunks.get(&c.key(&s.tenant))).unwrap();
                let chunk = skald_chunk::Chunk::from_bytes(bytes).unwrap();
                for e in chunk.iter_entries(start, end) {
                    let e = e.unwrap();
                    entries.push(e.ts, &e.line, &e.structured_metadata);
                }
            }
            entries.sort_dedup();
            (!entries.is_empty()).then_some(StreamBatch { labels, entries })
        })
        .collect()
}

fn batches(
    it: impl Iterator<Item = Result<StreamBatch, EngineError>>,
) -> Vec<(String, Vec<(i64, String)>)> {
    it.map(|b| {
        let b = b.unwrap();
        (b.labels.to_string(), entries_of(&b.entries))
    })
    .collect()
}

#[test]
fn a_full_read_fetched_ahead_gives_every_stream_in_order_whatever_the_window() {
    for seed in [3u64, 17, 99] {
        let s = random_store(seed * 104_729);
        for q in [r#"{app=~".+"}"#, r#"{app=~"a|c"} |= "xz""#] {
            let sel = selector(q);
            let (start, end) = (1_000 * SEC + 7 * SEC, 1_000 * SEC + 61 * SEC);
            let want: Vec<_> = naive_read(&s, &sel, start, end)
                .into_iter()
                .map(|b| {
                    let lines = entries_of(&b.entries);
                    let scan = LiteralScan::new(&skald_logql::log::required_literals(&sel.stages));
                    let lines = lines
                        .into_iter()
                        .filter(|(_, l)| scan.line_matches(l.as_bytes()))
                        .collect::<Vec<_>>();
                    (b.labels.to_string(), lines)
                })
                .filter(|b| !b.1.is_empty())
                .collect();
            // a window of one byte fetches one chunk at a time; a big one all at once
            for window in [1, 4096, prefetch::WINDOW_BYTES] {
                let plan = s.plan(&sel, start, end, None).unwrap();
                let got = batches(s.read_streams(plan, &sel, (start, end), None, window));
                assert_eq!(got, want, "seed {seed}, {q}, window {window}");
            }
        }
    }
}

#[test]
fn a_read_dropped_early_stops_its_prefetch() {
    let s = random_store(5);
    let sel = selector(r#"{app=~".+"}"#);
    let plan = s.plan(&sel, 0, 2_000 * SEC, None).unwrap();
    let mut it = s.read_streams(plan, &sel, (0, 2_000 * SEC), None, 1);
    assert!(it.next().unwrap().is_ok());
    drop(it);
    // the next query still reads everything
    let plan = s.plan(&sel, 0, 2_000 * SEC, None).unwrap();
    assert_eq!(batches(s.read_streams(plan, &sel, (0, 2_000 * SEC), None, 1)).len(), 3);
}

#[test]
fn the_limit_counts_across_streams_unless_stages_can_merge_them() {
    let s = store_source();
    let e = |ts: i64| Entry { ts, line: format!("l{ts}").into(), structured_metadata: vec![] };
    let (a, b) = (
        Labels::from_vec(vec![skald_model::Label::new("app", "a")]),
        Labels::from_vec(vec![skald_model::Label::new("app", "b")]),
    );
    // `a` holds the newest entries; `b` only older ones
    write_chunk(&s, &a, &(900..1000).map(|t| e(t * SEC)).collect::<Vec<_>>(), 256);
    write_chunk(&s, &b, &(0..100).map(|t| e(t * SEC)).collect::<Vec<_>>(), 256);
    let read = |stages: &str| {
        let sel = selector(&format!(r#"{{app=~"a|b"}}{stages}"#));
        let limited =
            limited::Limited::new(&sel.stages, SelectLimit { limit: 10, backward: true }).unwrap();
        let lines = LiteralScan::new(&skald_logql::log::required_literals(&sel.stages));
        let scan = decode::BlockScan { lines, needles: None };
        let plan = s.plan(&sel, 0, 2_000 * SEC, None).unwrap();
        let got: Vec<(String, usize, usize)> = plan
            .into_iter()
            .map(|(labels, pending)| {
                let before = limited.chunks_fetched.load(Ordering::Relaxed);
                let out = limited
                    .load(&s, &labels, pending, Vec::new(), (0, 2_000 * SEC), &scan)
                    .unwrap();
                let fetched = limited.chunks_fetched.load(Ordering::Relaxed) - before;
                (labels.to_string(), out.len(), fetched)
            })
            .collect();
        got
    };
    // 10 entries of `a` are nearer than all of `b`: `b` is not even fetched
    assert_eq!(
        read(""),
        vec![(r#"{app="a"}"#.to_string(), 10, 1), (r#"{app="b"}"#.to_string(), 0, 0)]
    );
    assert_eq!(read(r#" |= "l""#)[1], (r#"{app="b"}"#.to_string(), 0, 0));
    // `drop app` makes both streams one: each is read on its own account
    assert_eq!(read(" | drop app")[1], (r#"{app="b"}"#.to_string(), 10, 1));
}

#[test]
fn the_shards_of_a_read_partition_its_streams() {
    let s = store_source();
    let entry = |i: i64| Entry {
        ts: 1_000 * SEC + i,
        line: format!("l{i}").into(),
        structured_metadata: vec![],
    };
    for i in 0..30 {
        let labels = Labels::parse(&format!(r#"{{app="a", pod="p{i}"}}"#)).unwrap();
        write_chunk(&s, &labels, &[entry(i), entry(i + 100)], 256);
    }
    let sel = selector(r#"{app="a"}"#);
    let read = |src: &StoreSource| -> Vec<(Labels, Vec<(i64, String)>)> {
        src.select(&sel, 0, 2_000 * SEC, None)
            .unwrap()
            .map(|b| b.unwrap())
            .map(|b| (b.labels.clone(), entries_of(&b.entries)))
            .collect()
    };
    let mut whole = read(&s);
    whole.sort();
    assert_eq!(whole.len(), 30);
    let whole_refs = s.stats.snapshot().chunk_refs;
    for n in 1..=8u32 {
        let mut union = Vec::new();
        let mut refs = 0;
        for i in 0..n {
            let shard = skald_model::Shard::new(i, n).unwrap();
            let part = StoreSource {
                querier: s.querier.clone(),
                tenant: "t".into(),
                handle: runtime().handle().clone(),
                cancel: Arc::new(AtomicBool::new(false)),
                chunks_seen: AtomicUsize::new(0),
                stats: Default::default(),
                shard: Some(shard),
                window: s.window,
            };
            let got = read(&part);
            assert!(got.iter().all(|(l, _)| shard.contains(skald_model::fingerprint(l))));
            union.extend(got);
            refs += part.stats.snapshot().chunk_refs;
        }
        union.sort();
        // every stream in exactly one shard, and its chunks counted there only
        assert_eq!(union, whole, "{n} shards");
        assert_eq!(refs, whole_refs, "{n} shards");
    }
}

/// The index's ref of an encoded chunk of stream `fingerprint` (no statistics size).
pub(super) fn chunk_ref_of(fingerprint: u64, c: &skald_chunk::EncodedChunk) -> ChunkRef {
    ChunkRef::of_encoded(fingerprint, c, 0)
}

/// The querier reads each tenant's limits from the overrides at every request: a runtime
/// override applies to its tenant only, a reload at once, and `a|b` takes the smallest.
#[test]
fn query_limits_are_the_tenants() {
    use skald_common::overrides::{parse_runtime_config, Overrides};
    let chunks = Arc::new(ObjectChunkStore::in_memory());
    let index = Arc::new(ObjectIndexStore::new(chunks.clone(), ObjectIndexStoreConfig::default()));
    let overrides = Overrides::new(Limits::default());
    let file = "overrides:\n  small:\n    max_entries_limit_per_query: 10\n";
    overrides.replace(parse_runtime_config(file, &Limits::default()).unwrap());
    let q = Querier::new(QuerierConfig::default(), overrides.clone(), chunks, index, None);
    let err = q.check_limit("small", 11).unwrap_err().to_string();
    assert!(err.contains("(11 > 10)"), "{err}");
    q.check_limit("big", 11).unwrap();
    assert!(q.check_limit("big|small", 11).is_err());
    assert_eq!(q.engine_limits("small").max_entries_limit_per_query, 10);
    overrides.replace(Default::default());
    q.check_limit("small", 11).unwrap();
}

#[test]
fn retention_moves_the_start_up_and_cuts_streams_of_shorter_rules() {
    let day = 86_400_000_000_000i64;
    let limits = Limits {
        retention_period: Duration::from_secs(72 * 3600),
        retention_stream: vec![skald_common::limits::StreamRetention {
            selector: r#"{app="short"}"#.into(),
            priority: 1,
            period: Duration::from_secs(24 * 3600),
        }],
        ..Limits::default()
    };
    let mut s = source(limits);
    s.handle = runtime().handle().clone();
    let now = skald_loghttp::params::now_ns();
    let (start, end) =
        s.limit_range(&selector(r#"{app="long"}"#), now - 7 * day, now).unwrap().unwrap();
    assert_eq!(end, now);
    assert!(
        (start - (now - 3 * day)).abs() < 1_000_000_000,
        "the longest retention bounds the range"
    );
    assert_eq!(
        s.limit_range(&selector(r#"{app="x"}"#), now - 7 * day, now - 4 * day).unwrap(),
        None
    );

    // chunks of `short` older than 24h are left out; `long` keeps its chunks
    let index = s.querier.index.clone();
    let chunk = |labels: &Labels, from: i64| skald_index::ChunkRef {
        fingerprint: labels.hash(),
        from,
        through: from + 1_000,
        checksum: 1,
        entries: 1,
        uncompressed_bytes: 1,
        compressed_bytes: 1,
        stats_bytes: 1,
    };
    let (long, short) =
        (Labels::parse(r#"{app="long"}"#).unwrap(), Labels::parse(r#"{app="short"}"#).unwrap());
    let refs = vec![
        (long.clone(), chunk(&long, now - 2 * day)),
        (short.clone(), chunk(&short, now - 2 * day)),
        (short.clone(), chunk(&short, now - day / 2)),
    ];
    s.handle.block_on(index.write_chunks("t", refs)).unwrap();
    let plan = s.plan(&selector(r#"{app=~"long|short"}"#), start, end, None).unwrap();
    assert_eq!(plan[&long].chunks.len(), 1);
    assert_eq!(plan[&short].chunks.len(), 1);
    assert_eq!(plan[&short].chunks[0].from, now - day / 2);
}
