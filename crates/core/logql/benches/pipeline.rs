//! Pipeline and engine throughput over in-memory data built from the loghub samples in
//! `tests/data/loghub` (the lines are replicated and turned into logfmt and JSON lines).
//! Run: `cargo bench -p skald-logql --bench pipeline`. Criterion prints bytes/s or elements/s;
//! `benches/RESULTS.md` at the repository root keeps the measured numbers.

use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use skald_logql::engine::{self, EngineError, Limits, QueryParams, SelectLimit, Source};
use skald_logql::log::{required_literals, LiteralScan, Pipeline};
use skald_logql::syntax::ast::{Expr, LogSelectorExpr};
use skald_logql::syntax::parse_expr;
use skald_model::{Direction, Entry, Label, Labels, Stream, StreamBatch};

const SYSTEMS: [&str; 10] =
    ["Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "Linux", "OpenSSH", "Spark", "Zookeeper"];

/// Every loghub line, about 2.4 MB.
fn loghub_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../tests/data/loghub");
    let mut out = Vec::new();
    for s in SYSTEMS {
        let text = std::fs::read_to_string(dir.join(format!("{s}_2k.log")))
            .unwrap_or_else(|e| panic!("reading the loghub sample {s}: {e}"));
        out.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    out
}

fn level(i: usize) -> &'static str {
    ["info", "debug", "warn", "error"][i % 4]
}

fn logfmt_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            format!(
                "ts=2026-11-23T10:{:02}:{:02}.{:03}Z level={} caller=main.go:{} duration={}ms msg={:?}",
                i / 60 % 60,
                i % 60,
                i % 1000,
                level(i),
                i % 400,
                i % 997,
                l
            )
        })
        .collect()
}

fn json_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({
                "ts": format!("2026-11-23T10:{:02}:{:02}Z", i / 60 % 60, i % 60),
                "level": level(i),
                "caller": {"file": "main.go", "line": i % 400},
                "duration_ms": i % 997,
                "msg": l,
            })
            .to_string()
        })
        .collect()
}

/// JSON lines as promtail's `pack` stage writes them: labels plus `_entry`.
fn unpack_lines(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            serde_json::json!({"level": level(i), "pod": format!("pod-{}", i % 7), "_entry": l})
                .to_string()
        })
        .collect()
}

fn concat(lines: &[String]) -> (Vec<u8>, Vec<u32>) {
    let mut buf = Vec::new();
    let mut ends = Vec::with_capacity(lines.len());
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        ends.push(buf.len() as u32);
    }
    (buf, ends)
}

fn log_selector(q: &str) -> LogSelectorExpr {
    match parse_expr(q) {
        Ok(Expr::Log(sel)) => sel,
        other => panic!("{q} is not a log query: {other:?}"),
    }
}

fn bench_line_filter(c: &mut Criterion) {
    // The querier's path: one memmem over the whole decompressed block's line bytes.
    let lines = loghub_lines();
    let (buf, ends) = concat(&lines);
    let mut g = c.benchmark_group("line_filter");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    for (name, q) in [
        ("contains_rare", r#"{job="x"} |= "Invalid user admin""#),
        ("contains_absent", r#"{job="x"} |= "needle-5kald-7f3a9c""#),
        ("contains_common", r#"{job="x"} |= "error""#),
        ("regex_literal", r#"{job="x"} |~ "Invalid user admin""#),
    ] {
        let scan = LiteralScan::new(&required_literals(&log_selector(q).stages));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut n = 0usize;
                scan.for_each_match(black_box(&buf), &ends, |_| n += 1);
                n
            })
        });
    }
    g.finish();
}

fn bench_line_filter_pipeline(c: &mut Criterion) {
    // Every line filter operator through the per-line pipeline (what runs after a block
    // passed the prefilter, or for filters the prefilter cannot use).
    let lines = loghub_lines();
    let bytes: usize = lines.iter().map(String::len).sum();
    let stream = Labels::from_pairs([("job", "bench".to_string())]);
    let mut g = c.benchmark_group("line_filter_per_line");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (name, q) in [
        ("contains", r#"{job="x"} |= "Invalid user admin""#),
        ("not_contains", r#"{job="x"} != "INFO""#),
        ("contains_or", r#"{job="x"} |= "FATAL" or "SEVERE""#),
        ("regex", r#"{job="x"} |~ "(?i)exception|error""#),
        ("not_regex", r#"{job="x"} !~ "INFO|DEBUG""#),
        ("pattern", r#"{job="x"} |> "<_> Invalid user <_> from <_>""#),
        ("not_pattern", r#"{job="x"} !> "<_>[notice]<_>""#),
        ("ip", r#"{job="x"} |= ip("173.234.31.0/24")"#),
    ] {
        let pipeline = Pipeline::new(&log_selector(q).stages).expect("pipeline compiles");
        g.bench_function(name, |b| {
            let mut sp = pipeline.for_stream(&stream);
            b.iter(|| {
                let mut kept = 0usize;
                for (i, l) in lines.iter().enumerate() {
                    kept += usize::from(
                        sp.process_ref(i as i64, black_box(l.as_bytes()), &[]).is_some(),
                    );
                }
                kept
            })
        });
    }
    g.finish();
}

fn bench_parse(c: &mut Criterion) {
    let queries = [
        r#"{job="openssh", host="node-0"}"#,
        r#"{job="openssh"} |= "Failed password" != "root""#,
        r#"{job="web"} | json method, code="status", up="upstream.host" | code = 404 | line_format "{{.method}} {{.code}} via {{.up}}""#,
        r#"{job="worker"} | logfmt | label_format lvl=level, where="{{.queue}}/{{.job_id}}" | drop msg"#,
        r#"sum by (job) (count_over_time({env="test"} |~ "(?i)error" [10m])) / on(job) sum by (job) (count_over_time({env="test"}[10m]))"#,
        r#"quantile_over_time(0.95, {job="web"} | json | __error__="" | unwrap latency_ms [15m]) by (method)"#,
    ];
    let bytes: usize = queries.iter().map(|q| q.len()).sum();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("six_queries", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for q in &queries {
                n += usize::from(parse_expr(black_box(q)).is_ok());
            }
            n
        })
    });
    g.finish();
}

fn bench_parsers(c: &mut Criterion) {
    let lines = loghub_lines();
    let mut g = c.benchmark_group("parser");
    let stream = Labels::from_pairs([("job", "bench".to_string())]);
    for (name, data, q) in [
        ("logfmt", logfmt_lines(&lines), r#"{job="bench"} | logfmt"#),
        ("json", json_lines(&lines), r#"{job="bench"} | json"#),
        (
            "logfmt_filter_format",
            logfmt_lines(&lines),
            r#"{job="bench"} | logfmt | level="error" | line_format "{{.caller}} {{.msg}}""#,
        ),
        (
            "regexp",
            logfmt_lines(&lines),
            r#"{job="bench"} | regexp "level=(?P<level>\\w+) caller=(?P<caller>\\S+)""#,
        ),
        ("pattern", logfmt_lines(&lines), r#"{job="bench"} | pattern "ts=<ts> level=<level> <_>""#),
        ("unpack", unpack_lines(&lines), r#"{job="bench"} | unpack"#),
    ] {
        let bytes: usize = data.iter().map(String::len).sum();
        g.throughput(Throughput::Bytes(bytes as u64));
        let pipeline = Pipeline::new(&log_selector(q).stages).expect("pipeline compiles");
        // The stage itself: every line parsed into the pipeline's label state (what label
        // filters, formatters and sample extraction read).
        g.bench_function(name, |b| {
            let mut sp = pipeline.for_stream(&stream);
            b.iter(|| {
                let mut kept = 0usize;
                for (i, l) in data.iter().enumerate() {
                    kept += usize::from(
                        sp.process_ref(i as i64, black_box(l.as_bytes()), &[]).is_some(),
                    );
                }
                kept
            })
        });
        // Plus copying each result out (owned line and categorised labels), as a log query
        // does for the entries it keeps.
        g.bench_function(format!("{name}_owned_result"), |b| {
            let mut sp = pipeline.for_stream(&stream);
            b.iter(|| {
                let mut kept = 0usize;
                for (i, l) in data.iter().enumerate() {
                    kept +=
                        usize::from(sp.process(i as i64, black_box(l.as_bytes()), &[]).is_some());
                }
                kept
            })
        });
    }
    g.finish();
}

/// Hands out its streams once per evaluation (the engine's input is already decoded).
struct TakeSource(Mutex<Vec<StreamBatch>>);

impl Source for TakeSource {
    fn select(
        &self,
        _selector: &LogSelectorExpr,
        _start: i64,
        _end: i64,
        _limit: Option<SelectLimit>,
    ) -> Result<Box<dyn Iterator<Item = Result<StreamBatch, EngineError>> + Send + '_>, EngineError>
    {
        let streams = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Box::new(streams.into_iter().map(Ok)))
    }
}

fn bench_count_over_time(c: &mut Criterion) {
    const T0: i64 = 1_793_491_200_000_000_000;
    let lines = loghub_lines();
    // 10 streams x 100k entries (1M), 2 ms apart, with detected_level metadata as Loki adds it.
    let streams: Vec<Stream> = SYSTEMS
        .iter()
        .enumerate()
        .map(|(s, sys)| Stream {
            labels: Labels::from_pairs([("job", sys.to_lowercase()), ("env", "bench".to_string())]),
            entries: (0..100_000usize)
                .map(|i| Entry {
                    ts: T0 + (i as i64) * 2_000_000 + s as i64,
                    line: (lines[(s * 2000 + i) % lines.len()].clone()).into(),
                    structured_metadata: vec![Label::new(
                        "detected_level",
                        if i % 10 == 0 { "error" } else { "info" },
                    )],
                })
                .collect(),
        })
        .collect();
    let streams: Vec<StreamBatch> = streams.iter().map(StreamBatch::from).collect();
    let entries: usize = streams.iter().map(|s| s.entries.len()).sum();
    let params = QueryParams {
        start: T0,
        end: T0 + 200 * 1_000_000_000,
        step_ns: 1_000_000_000,
        interval_ns: 0,
        limit: 100,
        direction: Direction::Backward,
        instant: false,
        categorize_labels: false,
    };
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(entries as u64));
    for (name, q) in [
        ("count_over_time", r#"count_over_time({env="bench"}[1m])"#),
        ("sum_by_job_count_over_time", r#"sum by (job) (count_over_time({env="bench"}[1m]))"#),
        ("sum_by_job_rate_filtered", r#"sum by (job) (rate({env="bench"} |= "error" [1m]))"#),
    ] {
        let expr = parse_expr(q).expect("query parses");
        g.bench_function(name, |b| {
            b.iter_batched(
                || TakeSource(Mutex::new(streams.clone())),
                |src| engine::evaluate(&expr, &params, &Limits::default(), &src).map(|o| o.stats),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_line_filter,
    bench_line_filter_pipeline,
    bench_parsers,
    bench_count_over_time
);
criterion_main!(benches);
