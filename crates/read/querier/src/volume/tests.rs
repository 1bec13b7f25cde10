#![allow(clippy::unwrap_used)]

use super::*;

const T0: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z, ms

fn labels(s: &str) -> Labels {
    Labels::parse(s).unwrap()
}

fn stream(l: &str, chunks: &[(i64, i64, u32, u64)]) -> StreamStats {
    StreamStats {
        labels: labels(l),
        chunks: chunks
            .iter()
            .map(|&(f, t, entries, kib)| ChunkStat { from_ms: f, through_ms: t, entries, kib })
            .collect(),
    }
}

#[test]
fn chunk_bounds_round_outwards_and_size_to_nearest_kib() {
    let c = ChunkStat::new(1_500_000, 2_000_001, 3, 1535);
    assert_eq!((c.from_ms, c.through_ms, c.kib), (1, 3, 1));
    let c = ChunkStat::new(1_000_000, 2_000_000, 3, 1536);
    assert_eq!((c.from_ms, c.through_ms, c.kib), (1, 2, 2));
}

#[test]
fn partly_covered_chunks_are_pro_rated_and_truncated() {
    // openssh node-0 in the reference data: 1000 entries over 999 s, 115 KiB; the first
    // 10 minutes hold 599.993 s of it
    let s = stream(r#"{job="openssh"}"#, &[(T0 + 7, T0 + 999_007, 1000, 115)]);
    let st = index_stats(std::slice::from_ref(&s), &[(T0, T0 + 600_000)]);
    assert_eq!(st, IndexStats { streams: 1, chunks: 1, bytes: 69 << 10, entries: 600 });
    // wholly inside: everything
    let st = index_stats(std::slice::from_ref(&s), &[(T0, T0 + 7_200_000)]);
    assert_eq!(st, IndexStats { streams: 1, chunks: 1, bytes: 115 << 10, entries: 1000 });
    // `through` is exclusive for the overlap: a chunk starting there is not counted
    let st = index_stats(std::slice::from_ref(&s), &[(T0 - 100, T0 + 7)]);
    assert_eq!(st, IndexStats::default());
    // a chunk of one instant counts whole
    let one = stream(r#"{job="x"}"#, &[(T0 + 5, T0 + 5, 1, 2)]);
    assert_eq!(index_stats(&[one], &[(T0, T0 + 6)]).bytes, 2 << 10);
    // a stream whose share rounds down to no entry is not counted
    let thin = stream(r#"{job="y"}"#, &[(T0, T0 + 1_000_000, 1, 100)]);
    assert_eq!(index_stats(&[thin], &[(T0, T0 + 10)]), IndexStats::default());
}

#[test]
fn splits_like_lokis_frontend() {
    // steps of 30 minutes over 2 hours: every bucket but the last ends 1 ms early
    let b = for_interval(1_800_000 * MS, T0 * MS, (T0 + 7_200_000) * MS, true);
    assert_eq!(b.len(), 4);
    assert_eq!(b[0], (T0 * MS, (T0 + 1_799_999) * MS));
    assert_eq!(b[3], ((T0 + 5_400_000) * MS, (T0 + 7_200_000) * MS));
    // the first bucket starts at the range's start, the rest at multiples of the step
    let b = for_interval(10 * SECOND, 25 * SECOND, 50 * SECOND, true);
    assert_eq!(
        b,
        vec![
            (25 * SECOND, 30 * SECOND - MS),
            (30 * SECOND, 40 * SECOND - MS),
            (40 * SECOND, 50 * SECOND)
        ]
    );
    // an empty range: nothing when it starts at a multiple, else one empty piece (as Go)
    assert!(for_interval(10 * SECOND, 10 * SECOND, 10 * SECOND, true).is_empty());
    assert_eq!(for_interval(10 * SECOND, 5, 5, true), vec![(5, 5)]);
    assert_eq!(for_interval(0, 5, 9, true), vec![(5, 9)]);
    // per-day index requests in whole seconds: 1 s lost at each day boundary
    let d = day_pieces(T0 - 3_600_500, T0 + 3_600_000);
    assert_eq!(d, vec![(T0 - 3_601_000, T0 - 1000), (T0, T0 + 3_600_000)]);
    // an empty range: in whole seconds, or as it is on a day boundary
    assert_eq!(day_pieces(T0 + 5, T0 + 5), vec![(T0, T0)]);
    assert_eq!(day_pieces(T0, T0), vec![(T0, T0)]);
}

fn reference_streams() -> Vec<StreamStats> {
    vec![
        stream(
            r#"{env="test", host="node-0", job="a", source="loghub"}"#,
            &[(T0, T0 + 999_000, 1000, 100)],
        ),
        stream(
            r#"{env="test", host="node-1", job="a", source="loghub"}"#,
            &[(T0 + 500, T0 + 999_500, 1000, 90)],
        ),
        stream(
            r#"{env="test", host="node-1", job="b", source="loghub"}"#,
            &[(T0 + 1, T0 + 999_001, 1000, 50)],
        ),
        // two chunks, cut at a sync point
        stream(
            r#"{env="test", format="json", job="web"}"#,
            &[(T0 + 580, T0 + 1_327_306, 664, 157), (T0 + 1_328_715, T0 + 4_927_641, 1800, 426)],
        ),
    ]
}

fn spec(matchers: &[(&str, &str)], targets: &[&str], by_labels: bool, limit: usize) -> VolumeSpec {
    let ms = matchers
        .iter()
        .map(|(n, v)| LabelMatcher::new(*n, MatchType::Equal, *v).unwrap())
        .collect();
    VolumeSpec::new(ms, false, targets.iter().map(|t| t.to_string()).collect(), by_labels, limit).0
}

#[test]
fn volume_by_series_keeps_the_matched_labels() {
    let all = [(T0, T0 + 7_200_000)];
    let v = volumes(&[reference_streams()], &spec(&[("env", "test")], &[], false, 100), &all);
    assert_eq!(
        v,
        vec![(VolumeKey::Series(labels(r#"{env="test"}"#)), (100 + 90 + 50 + 157 + 426) << 10)]
    );
}

#[test]
fn target_labels_select_and_group() {
    let (s, ms, none) = VolumeSpec::new(
        vec![LabelMatcher::new("env", MatchType::Equal, "test").unwrap()],
        false,
        vec!["source".into(), "host".into()],
        false,
        5,
    );
    assert!(!none);
    // streams lacking a target label are not selected
    assert_eq!(ms.len(), 3);
    assert!(ms.iter().any(|m| m.name == "host" && m.op == MatchType::Regex && m.value == ".+"));
    let streams: Vec<StreamStats> = reference_streams()
        .into_iter()
        .filter(|st| LabelMatcher::all_match(&ms, &st.labels))
        .collect();
    let v = volumes(std::slice::from_ref(&streams), &s, &[(T0, T0 + 7_200_000)]);
    assert_eq!(
        v,
        vec![
            (VolumeKey::Series(labels(r#"{host="node-1", source="loghub"}"#)), 140 << 10),
            (VolumeKey::Series(labels(r#"{host="node-0", source="loghub"}"#)), 100 << 10),
        ]
    );
    // limit keeps the largest
    let v = volumes(&[streams], &VolumeSpec { limit: 1, ..s }, &[(T0, T0 + 7_200_000)]);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, 140 << 10);
}

#[test]
fn volume_max_series_fails_like_loki() {
    let all = [(T0, T0 + 7_200_000)];
    let streams = [reference_streams()];
    // by label name: env, format, host, job, source
    let s = spec(&[("env", "test")], &[], true, 100);
    let names = volumes(&streams, &s, &all).len();
    assert!(names > 1);
    assert!(check_max_series(&streams, &s, &all, names).is_ok());
    assert!(check_max_series(&streams, &s, &all, 0).is_ok());
    let err = check_max_series(&streams, &s, &all, names - 1).unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert_eq!(
            err.to_string(),
            format!("rpc error: code = Unknown desc = the query hit the max number of series limit (limit: {} series)", names - 1)
        );
}

#[test]
fn aggregate_by_labels_sums_per_label_name() {
    let v = volumes(
        &[reference_streams()[..3].to_vec()],
        &spec(&[("source", "loghub")], &[], true, 100),
        &[(T0, T0 + 7_200_000)],
    );
    let names: Vec<(String, u64)> = v
        .iter()
        .map(|(k, n)| match k {
            VolumeKey::Label(l) => (l.clone(), *n),
            VolumeKey::Series(_) => unreachable!(),
        })
        .collect();
    // equal volumes: sorted by name
    assert_eq!(
        names,
        ["env", "host", "job", "source"]
            .iter()
            .map(|n| (n.to_string(), 240u64 << 10))
            .collect::<Vec<_>>()
    );
    // with target labels, only those
    let v = volumes(
        &[reference_streams()[..3].to_vec()],
        &spec(&[("source", "loghub")], &["host"], true, 100),
        &[(T0, T0 + 7_200_000)],
    );
    assert_eq!(v, vec![(VolumeKey::Label("host".into()), 240 << 10)]);
}

#[test]
fn volume_range_buckets_pro_rate_each_chunk() {
    // web's three chunks in the reference data, cut where Loki's sync points cut them
    let web = StreamStats {
        labels: labels(r#"{job="web"}"#),
        chunks: vec![
            ChunkStat::new(1_793_491_200_580_250_000, 1_793_492_527_305_250_000, 664, 160_510),
            ChunkStat::new(1_793_492_528_715_250_000, 1_793_496_127_640_250_000, 1800, 436_604),
            ChunkStat::new(1_793_496_129_708_250_000, 1_793_497_198_097_250_000, 536, 129_617),
        ],
    };
    let s = spec(&[("job", "web")], &[], false, 100);
    let buckets: Vec<(i64, Vec<(VolumeKey, u64)>)> =
        for_interval(1_800_000 * MS, T0 * MS, (T0 + 7_200_000) * MS, true)
            .into_iter()
            .map(|(a, b)| {
                let pieces = day_pieces(whole_seconds_ms(a), whole_seconds_ms(b));
                (b, volumes(&[vec![web.clone()]], &s, &pieces))
            })
            .collect();
    let (series, matrix) = collect_buckets(buckets);
    assert!(matrix);
    assert_eq!(series.len(), 1);
    // what Loki answered (index_volume_range): 212, 212, 212 and 71 KiB
    let kib: Vec<u64> = series[0].samples.iter().map(|(_, v)| v >> 10).collect();
    assert_eq!(kib, vec![212, 212, 212, 71]);
    let stamps: Vec<i64> = series[0].samples.iter().map(|(t, _)| *t).collect();
    assert_eq!(stamps[0], (T0 + 1_799_999) * MS);
    assert_eq!(stamps[3], (T0 + 7_200_000) * MS);
    // the whole range in one request: 157 + 426 + 127 KiB, as index_stats says for web
    let all = volumes(&[vec![web]], &s, &day_pieces(T0, T0 + 7_200_000));
    assert_eq!(all[0].1, 710 << 10);
}

#[test]
fn tenants_add_up_and_match_any_keeps_every_label() {
    let a = vec![stream(r#"{job="x", pod="1"}"#, &[(T0, T0 + 10, 5, 3)])];
    let b = vec![
        stream(r#"{job="x", pod="1"}"#, &[(T0, T0 + 10, 5, 4)]),
        stream(r#"{job="y", pod="2"}"#, &[(T0, T0 + 10, 5, 1)]),
    ];
    let all = [(T0, T0 + 100)];
    let v = volumes(&[a.clone(), b.clone()], &spec(&[("job", "x")], &[], false, 100), &all);
    assert_eq!(v[0], (VolumeKey::Series(labels(r#"{job="x"}"#)), 7 << 10));
    // `{}`: every label of every stream
    let (any, ms, _) = VolumeSpec::new(Vec::new(), true, Vec::new(), false, 100);
    assert!(ms.is_empty());
    let v = volumes(&[a, b], &any, &all);
    assert_eq!(
        v,
        vec![
            (VolumeKey::Series(labels(r#"{job="x", pod="1"}"#)), 7 << 10),
            (VolumeKey::Series(labels(r#"{job="y", pod="2"}"#)), 1 << 10),
        ]
    );
}

#[test]
fn results_sort_by_first_value_then_name() {
    let a = VolumeKey::Label("a".into());
    let b = VolumeKey::Label("b".into());
    let c = VolumeKey::Label("c".into());
    let (series, matrix) = collect_buckets(vec![
        (10, vec![(b.clone(), 5), (a.clone(), 5)]),
        (20, vec![(c.clone(), 9)]),
    ]);
    assert!(!matrix, "one sample each: a vector");
    let keys: Vec<&VolumeKey> = series.iter().map(|s| &s.key).collect();
    assert_eq!(keys, vec![&c, &a, &b]);
}

#[test]
fn parameters() {
    let mut p = Params::default();
    p.extend_from_urlencoded(b"limit=0&aggregateBy=labels&targetLabels=a,b");
    assert_eq!(volume_limit(&p).unwrap(), 100);
    assert!(aggregate_by_labels(&p).unwrap());
    assert_eq!(target_labels(&p), vec!["a", "b"]);
    let mut p = Params::default();
    p.extend_from_urlencoded(b"limit=-3&aggregateBy=streams");
    assert_eq!(volume_limit(&p).unwrap_err().to_string(), "limit must be a positive value");
    assert_eq!(aggregate_by_labels(&p).unwrap_err().to_string(), "invalid aggregation option");
    assert!(target_labels(&p).is_empty());
    assert_eq!(round_to_ms(1_500_000, 2_000_001), (1, 3));
}
