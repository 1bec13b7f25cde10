#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use proptest::prelude::*;
use skald_model::Label;

use super::*;

fn entry(ts: i64, line: &str, level: Option<&str>) -> Entry {
    let structured_metadata =
        level.map(|l| vec![Label::new("detected_level", l)]).unwrap_or_default();
    Entry { ts, line: line.into(), structured_metadata }
}

proptest! {
    /// The head holds the first of each (ts, line) in (ts, line) order, with its metadata,
    /// and refuses exactly the repeats, whatever order the entries come in.
    #[test]
    fn head_is_sorted_and_deduplicated(
        input in prop::collection::vec((0i64..20, 0usize..4, prop::option::of(0usize..3)), 0..200)
    ) {
        let lines = ["", "a", "ab", "b"];
        let levels = ["info", "warn", "error"];
        let mut head = Head::default();
        // by timestamp, then in arrival order; the first of a (ts, line) pair wins
        let mut model: BTreeMap<i64, Vec<Entry>> = BTreeMap::new();
        for (ts, line, level) in input {
            let e = entry(ts, lines[line], level.map(|l| levels[l]));
            let group = model.entry(ts).or_default();
            let fresh = !group.iter().any(|g| g.line == lines[line]);
            prop_assert_eq!(head.insert(&e), fresh);
            if fresh {
                group.push(e);
            }
        }
        let got: Vec<Entry> = head.iter().map(|e| e.to_entry()).collect();
        let want: Vec<Entry> = model.into_values().flatten().collect();
        prop_assert_eq!(got, want);
    }
}

proptest! {
    /// Dropping the first entries in place keeps the rest in (ts, arrival) order, and the
    /// head goes on ordering and deduplicating the entries inserted afterwards.
    #[test]
    fn drop_first_keeps_the_rest_in_order(
        before in prop::collection::vec((0i64..30, 0usize..4, prop::option::of(0usize..3)), 0..120),
        drop in 0usize..130,
        after in prop::collection::vec((0i64..40, 0usize..4, prop::option::of(0usize..3)), 0..60),
    ) {
        let lines = ["", "a", "ab", "b"];
        let levels = ["info", "warn", "error"];
        let make = |&(ts, line, level): &(i64, usize, Option<usize>)| {
            entry(ts, lines[line], level.map(|l| levels[l]))
        };
        let mut head = Head::default();
        for e in before.iter().map(make) {
            head.insert(&e);
        }
        let mut want: Vec<Entry> = head.iter().skip(drop).map(|e| e.to_entry()).collect();
        head.drop_first(drop);
        let got: Vec<Entry> = head.iter().map(|e| e.to_entry()).collect();
        prop_assert_eq!(&got, &want);
        for e in after.iter().map(make) {
            let fresh = !want.iter().any(|w| w.ts == e.ts && w.line == e.line);
            prop_assert_eq!(head.insert(&e), fresh);
            if fresh {
                // after every entry with its timestamp or an older one
                let pos = want.partition_point(|w| w.ts <= e.ts);
                want.insert(pos, e);
            }
        }
        let got: Vec<Entry> = head.iter().map(|e| e.to_entry()).collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn out_of_order_entries_are_sealed_in_order_and_read_back() {
    let config = IngesterConfig { chunk_block_size: 64, ..IngesterConfig::default() };
    let labels = Labels::from_vec(vec![Label::new("job", "test")]);
    let mut stream = StreamState::new(labels, &config);
    let now = Instant::now();
    let mut pushed = Vec::new();
    for i in 0..100i64 {
        // Each group of ten arrives newest first; a block seals every few entries.
        let ts = 1_000 + (i / 10) * 10 + (9 - i % 10);
        let e = entry(ts, &format!("line {ts}"), (ts % 3 == 0).then_some("info"));
        pushed.push(e.clone());
        stream.append(e, now, &config).unwrap();
    }
    pushed.sort_by_key(|e| e.ts);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap(), pushed);
    stream.cut_if_due(now, &config, true);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap(), pushed);
    assert!(stream.head.is_empty());
}

const SEC: i64 = 1_000_000_000;

/// Blocks of `block_size` bytes, chunks that never fill and no synchronised cuts: seals
/// are decided by the head alone.
fn block_config(block_size: usize) -> IngesterConfig {
    IngesterConfig {
        chunk_block_size: block_size,
        chunk_target_size: 1 << 30,
        sync_period: std::time::Duration::ZERO,
        ..IngesterConfig::default()
    }
}

/// A block of 8 KiB and lines of ~50 bytes one second apart: a slow stream, whose
/// newest [`SEAL_SLACK_NANOS`] of data (~1.5 KB) stays in the head when it is sealed.
fn slow_config() -> IngesterConfig {
    block_config(8192)
}

fn line(i: i64) -> String {
    format!("{i:08} the quick brown fox jumps over the lazy dog")
}

fn sorted_by_ts_line(mut v: Vec<Entry>) -> Vec<Entry> {
    v.sort_by(|a, b| (a.ts, &a.line).cmp(&(b.ts, &b.line)));
    v
}

/// What two concurrent clients deliver: bodies of ten entries one second apart, every
/// pair of bodies arriving newest first, so entries come up to 20 s out of order.
fn two_client_order(bodies: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    for pair in 0..bodies / 2 {
        for body in [2 * pair + 1, 2 * pair] {
            for k in 0..10 {
                let i = body * 10 + k;
                out.push(entry(1_000 * SEC + i * SEC, &line(i), (i % 7 == 0).then_some("warn")));
            }
        }
    }
    out
}

#[test]
fn stragglers_within_the_slack_join_the_open_chunk() {
    let config = slow_config();
    let labels = Labels::from_vec(vec![Label::new("job", "test")]);
    let mut stream = StreamState::new(labels, &config);
    let now = Instant::now();
    let pushed = two_client_order(200);
    for e in &pushed {
        stream.append(e.clone(), now, &config).unwrap();
    }
    // Several blocks were sealed, none of them closed the chunk.
    let blocks = stream.builder.as_ref().map_or(0, ChunkBuilder::blocks_cut);
    assert!(blocks >= 5, "{blocks} blocks");
    assert!(stream.closed.is_empty());
    assert!(!stream.head.is_empty());
    let want = sorted_by_ts_line(pushed);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap(), want);
    stream.cut_if_due(now, &config, true);
    assert_eq!(stream.closed.len(), 1, "one chunk, no overlapping ones");
    assert!(stream.head.is_empty() && stream.builder.is_none());
    assert_eq!(stream.head_stats_bytes, 0);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap(), want);
    let chunk = Chunk::parse(&stream.closed[0].bytes).unwrap();
    let stored: Vec<Entry> = chunk.iter_entries(i64::MIN, i64::MAX).map(|e| e.unwrap()).collect();
    assert_eq!(stored, want, "the chunk holds every entry in order");
}

#[test]
fn a_seal_keeps_the_newest_entries_in_the_head() {
    let config = slow_config();
    let labels = Labels::from_vec(vec![Label::new("job", "test")]);
    let mut stream = StreamState::new(labels, &config);
    let now = Instant::now();
    let mut i = 0;
    while stream.builder.is_none() {
        stream.append(entry(i * SEC, &line(i), None), now, &config).unwrap();
        i += 1;
    }
    // The entries of the last 30 s (the newest one included) stayed, with their size.
    let newest = (i - 1) * SEC;
    let kept: Vec<i64> = stream.head.iter().map(|e| e.ts).collect();
    let want: Vec<i64> =
        (0..i).map(|j| j * SEC).filter(|&ts| ts >= newest - SEAL_SLACK_NANOS).collect();
    assert_eq!(kept, want);
    assert_eq!(stream.head_stats_bytes, kept.len() as u64 * line(0).len() as u64);
    assert_eq!(stream.builder_max_ts, newest - SEAL_SLACK_NANOS - SEC);
    // A duplicate of an entry kept in the head is still dropped.
    let dup = entry(newest, &line(i - 1), None);
    assert!(matches!(stream.append(dup, now, &config), Err(AppendError::Duplicate)));
    // An entry older than the sealed ones still closes the chunk; nothing is lost.
    stream.append(entry(3 * SEC, "late", None), now, &config).unwrap();
    assert_eq!(stream.closed.len(), 1);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap().len() as i64, i + 1);
}

#[test]
fn a_fast_stream_seals_whole_blocks() {
    // 100-byte lines a millisecond apart: a block's worth is far less than the slack.
    let config = block_config(1024);
    let labels = Labels::from_vec(vec![Label::new("job", "test")]);
    let mut stream = StreamState::new(labels, &config);
    let now = Instant::now();
    let text = "x".repeat(100);
    let mut pushed = Vec::new();
    for i in 0..1000i64 {
        let e = entry(i * 1_000_000, &text, None);
        pushed.push(e.clone());
        stream.append(e, now, &config).unwrap();
        // the head never holds a block
        assert!(stream.head_stats_bytes < 1024);
        if i % 11 == 10 {
            assert!(stream.head.is_empty(), "sealed whole at {i}");
        }
    }
    assert_eq!(stream.builder.as_ref().unwrap().blocks_cut(), 1000 / 11);
    stream.cut_if_due(now, &config, true);
    assert_eq!(stream.closed.len(), 1);
    assert_eq!(stream.entries_in_range(0, i64::MAX).unwrap(), pushed);
}

#[test]
fn closing_the_chunk_seals_the_kept_entries_too() {
    let config = slow_config();
    let labels = Labels::from_vec(vec![Label::new("job", "test")]);
    let now = Instant::now();
    // Closed by force, by a full chunk, and by a synchronised cut.
    let sync = IngesterConfig {
        sync_period: std::time::Duration::from_secs(60),
        sync_min_utilization: 0.0,
        ..slow_config()
    };
    let full = IngesterConfig { chunk_target_size: 4096, ..slow_config() };
    for (name, config) in [("force", &config), ("full", &full), ("sync", &sync)] {
        let mut stream = StreamState::new(labels.clone(), config);
        let pushed = two_client_order(100);
        for e in &pushed {
            stream.append(e.clone(), now, config).unwrap();
        }
        stream.cut_if_due(now, config, true);
        assert!(stream.head.is_empty() && stream.builder.is_none(), "{name}");
        assert!(!stream.closed.is_empty(), "{name}");
        let mut stored = Vec::new();
        for c in &stream.closed {
            let chunk = Chunk::parse(&c.bytes).unwrap();
            let entries: Vec<Entry> =
                chunk.iter_entries(i64::MIN, i64::MAX).map(|e| e.unwrap()).collect();
            assert!(entries.windows(2).all(|w| w[0].ts <= w[1].ts), "{name}");
            assert_eq!(c.chunk_ref.entries as usize, entries.len(), "{name}");
            stored.extend(entries);
        }
        assert_eq!(sorted_by_ts_line(stored), sorted_by_ts_line(pushed), "{name}");
    }
}

proptest! {
    /// Whatever the arrival order and block size, every accepted entry is read back,
    /// before and after the chunk is closed, and every chunk is in time order.
    #[test]
    fn out_of_order_appends_read_back_complete(
        jitter in prop::collection::vec(0i64..60, 1..400),
        step_ms in prop::sample::select(vec![1i64, 100, 1_000, 5_000]),
        block_size in prop::sample::select(vec![256usize, 1024, 4096]),
    ) {
        let config = block_config(block_size);
        let labels = Labels::from_vec(vec![Label::new("job", "test")]);
        let mut stream = StreamState::new(labels, &config);
        let now = Instant::now();
        let mut pushed = Vec::new();
        for (i, j) in jitter.iter().enumerate() {
            let i = i as i64;
            // up to 60 steps behind the arrival position
            let ts = 10_000 * SEC + (i - j) * step_ms * 1_000_000;
            let e = entry(ts, &line(i), (i % 3 == 0).then_some("info"));
            stream.append(e.clone(), now, &config).unwrap();
            pushed.push(e);
        }
        let want = sorted_by_ts_line(pushed);
        let got = stream.entries_in_range(i64::MIN, i64::MAX).unwrap();
        prop_assert_eq!(sorted_by_ts_line(got), want.clone());
        stream.cut_if_due(now, &config, true);
        prop_assert!(stream.head.is_empty() && stream.builder.is_none());
        let mut stored = Vec::new();
        for c in &stream.closed {
            let chunk = Chunk::parse(&c.bytes).unwrap();
            let entries: Vec<Entry> =
                chunk.iter_entries(i64::MIN, i64::MAX).map(|e| e.unwrap()).collect();
            prop_assert!(entries.windows(2).all(|w| w[0].ts <= w[1].ts));
            stored.extend(entries);
        }
        prop_assert_eq!(sorted_by_ts_line(stored), want);
    }
}
