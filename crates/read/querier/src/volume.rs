//! `/loki/api/v1/index/stats`, `/loki/api/v1/index/volume` and
//! `/loki/api/v1/index/volume_range`: how much data a selector names, from the index's chunk
//! records and the chunks ingesters still hold, counted the way Loki counts it.
//!
//! Loki answers these from its chunk index, where each chunk records its entry count, its
//! first and last timestamp in milliseconds and its uncompressed size in whole KiB
//! (`ChunkRef::stats_kib`). A chunk partly inside the asked range counts for the share of its
//! time span inside it: `KiB × share` and `entries × share`, each truncated. Loki's query
//! frontend splits requests before they reach the index (volume ranges into one request per
//! `step`, every request at UTC day boundaries), and each split rounds its range to whole
//! seconds and ends 1 ms before the next one starts (so, in seconds, 1 s before): the splits
//! are reproduced here because they change the numbers.
//!
//! Chunks still in ingesters are counted exactly like stored ones (as the index will record
//! them), and a chunk held by several replicas, or both held and already in the index while it
//! is being flushed, counts once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use skald_index::stats_kib;
use skald_loghttp::params::{self, Params};
use skald_loghttp::{marshal, StoreFigures};
use skald_logql::engine::Stats;
use skald_logql::syntax;
use skald_model::{LabelMatcher, Labels, MatchType};
use skald_proto::ingester::IngesterQuery;

use crate::error::QuerierError;
use crate::source::needle::NeedleQuery;
use crate::Querier;
use skald_loghttp::part::NEEDLE_SELECTOR_PARAM;

const MS: i64 = 1_000_000;
const SECOND: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * SECOND;
/// Loki's frontend splits index requests per day (`indexStatsQuerySplitInterval`).
const DAY: i64 = 24 * HOUR;
/// The end of a split is this far before the start of the next (Loki's `SplitGap`).
const SPLIT_GAP: i64 = MS;
/// Loki's default `limit` of a volume request.
const DEFAULT_VOLUME_LIMIT: usize = 100;
/// Volume request matching every stream (`seriesvolume.MatchAny`).
const MATCH_ANY: &str = "{}";

// ---------------------------------------------------------------------------------------------
// Request parameters, as Loki's `loghttp` parses them.

/// `start`/`end` (and `limit`, `direction`, `step`) as Loki's `ParseRangeQuery` reads and
/// checks them; returns the range and the step.
/// `check_limit` is false for volume requests, whose `limit` was checked by [`volume_limit`].
fn parse_range_query(p: &Params, check_limit: bool) -> Result<(i64, i64, i64), QuerierError> {
    let (start, end) = params::parse_range(p, HOUR)?;
    if end < start {
        return Err(QuerierError::BadRequest(
            "end timestamp must not be before or equal to start time".into(),
        ));
    }
    if check_limit {
        params::parse_limit(p.get("limit"))?;
    }
    params::parse_direction(p.get("direction"))?;
    let step = params::parse_step(p, start, end)?;
    params::parse_interval(p)?;
    Ok((start, end, step))
}

/// A volume request's `limit`: like a query's, but 0 (or absent) means 100.
fn volume_limit(p: &Params) -> Result<usize, QuerierError> {
    match p.get("limit").filter(|l| !l.is_empty()) {
        None => Ok(DEFAULT_VOLUME_LIMIT),
        Some(l) if l.parse::<i64>() == Ok(0) => Ok(DEFAULT_VOLUME_LIMIT),
        Some(l) => Ok(params::parse_limit(Some(l))? as usize),
    }
}

/// `aggregateBy`: `series` (default) or `labels`; true for `labels`.
fn aggregate_by_labels(p: &Params) -> Result<bool, QuerierError> {
    match p.get("aggregateBy").unwrap_or("") {
        "" | "series" => Ok(false),
        "labels" => Ok(true),
        _ => Err(QuerierError::BadRequest("invalid aggregation option".into())),
    }
}

/// `targetLabels`: a comma-separated list (empty: none).
fn target_labels(p: &Params) -> Vec<String> {
    match p.get("targetLabels").unwrap_or("") {
        "" => Vec::new(),
        s => s.split(',').map(str::to_string).collect(),
    }
}

/// Loki's `RoundToMilliseconds`: `start` down, `end` up to whole milliseconds.
fn round_to_ms(start: i64, end: i64) -> (i64, i64) {
    let through = end.div_euclid(MS) + i64::from(end.rem_euclid(MS) != 0);
    (start.div_euclid(MS), through)
}

/// Go's `time.Unix()` as a millisecond timestamp: whole seconds, rounded down.
fn whole_seconds_ms(ns: i64) -> i64 {
    ns.div_euclid(SECOND) * 1000
}

/// Loki's `util.ForInterval`: `[start, end]` cut at multiples of `interval` (since the
/// epoch); with `end_inclusive`, each piece but the last ends [`SPLIT_GAP`] before the next.
/// Nothing for an empty range; the whole range when `interval <= 0`. Nanoseconds.
pub(crate) fn for_interval(
    interval: i64,
    start: i64,
    end: i64,
    end_inclusive: bool,
) -> Vec<(i64, i64)> {
    if interval <= 0 {
        return vec![(start, end)];
    }
    let mut out = Vec::new();
    let mut s = start - start % interval;
    let mut first = true;
    while s < end {
        let mut e = s.saturating_add(interval);
        if e >= end {
            e = end;
        } else if end_inclusive {
            e -= SPLIT_GAP;
        }
        out.push((if first { start } else { s }, e));
        first = false;
        s = s.saturating_add(interval);
    }
    out
}

/// The tenants of an `X-Scope-OrgID` (`a|b` for a cross-tenant request, which the server lets
/// through only when `querier.multi_tenant_queries_enabled`).
fn tenants(org_id: &str) -> impl Iterator<Item = &str> {
    org_id.split('|').filter(|t| !t.is_empty())
}

/// The index requests Loki's frontend makes for `[from_ms, through_ms]`: one per UTC day,
/// each in whole seconds (as milliseconds). An empty range is asked as it is.
pub(crate) fn day_pieces(from_ms: i64, through_ms: i64) -> Vec<(i64, i64)> {
    let pieces = for_interval(DAY, from_ms.saturating_mul(MS), through_ms.saturating_mul(MS), true);
    if pieces.is_empty() {
        return vec![(from_ms, through_ms)];
    }
    pieces.into_iter().map(|(s, e)| (whole_seconds_ms(s), whole_seconds_ms(e))).collect()
}

// ---------------------------------------------------------------------------------------------
// The numbers.

/// A chunk as the index records it for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkStat {
    /// First entry, ms (rounded down).
    pub from_ms: i64,
    /// Last entry, ms (rounded up).
    pub through_ms: i64,
    pub entries: u32,
    /// Size in whole KiB.
    pub kib: u64,
}

impl ChunkStat {
    /// From a chunk's nanosecond bounds, entries and size in bytes.
    pub(crate) fn new(from: i64, through: i64, entries: u32, bytes: u64) -> Self {
        let (from_ms, through_ms) = round_to_ms(from, through);
        ChunkStat { from_ms, through_ms, entries, kib: stats_kib(bytes) }
    }
}

/// A stream and its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamStats {
    pub labels: Labels,
    pub chunks: Vec<ChunkStat>,
}

/// Loki's `GetFactorOfTime`: the share of the chunk's span `[min, max]` inside
/// `[from, through]`.
fn time_share(from: i64, through: i64, min: i64, max: i64) -> f64 {
    if from > max || through < min {
        return 0.0;
    }
    if min == max {
        return 1.0;
    }
    let total = max - min;
    let leading = (from - min).max(0);
    let trailing = (max - through).max(0);
    (total - (leading + trailing)) as f64 / total as f64
}

/// What one stream contributes to a request for `[from_ms, through_ms]` (`through` exclusive
/// for the overlap test, as in Loki's index): chunks overlapping, and their pro-rated KiB and
/// entries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Share {
    chunks: u64,
    kib: u64,
    entries: u64,
}

fn stream_share(chunks: &[ChunkStat], from_ms: i64, through_ms: i64) -> Share {
    let mut s = Share::default();
    for c in chunks {
        if from_ms <= c.through_ms && through_ms > c.from_ms {
            let share = time_share(from_ms, through_ms, c.from_ms, c.through_ms);
            s.chunks += 1;
            // Go's uint32(float64(x) * factor): truncated
            s.kib += (c.kib as f64 * share) as u32 as u64;
            s.entries += (f64::from(c.entries) * share) as u32 as u64;
        }
    }
    s
}

/// The `index/stats` answer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub bytes: u64,
    pub entries: u64,
}

/// Statistics over the given index requests, summed as Loki's frontend merges its splits
/// (a stream in two of them counts twice).
pub(crate) fn index_stats(streams: &[StreamStats], pieces: &[(i64, i64)]) -> IndexStats {
    let mut out = IndexStats::default();
    for &(from, through) in pieces {
        for s in streams {
            let share = stream_share(&s.chunks, from, through);
            if share.entries > 0 {
                out.streams += 1;
                out.chunks += share.chunks;
                out.bytes += share.kib << 10;
                out.entries += share.entries;
            }
        }
    }
    out
}

/// What a volume is aggregated by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum VolumeKey {
    /// A series: the stream labels that are kept.
    Series(Labels),
    /// A label name (`aggregateBy=labels`).
    Label(String),
}

impl VolumeKey {
    /// The name Loki sorts by.
    fn name(&self) -> String {
        match self {
            VolumeKey::Series(l) => l.to_string(),
            VolumeKey::Label(n) => n.clone(),
        }
    }
}

/// How volumes are aggregated (Loki's `PrepareLabelsAndMatchers`).
#[derive(Debug, Clone, Default)]
pub(crate) struct VolumeSpec {
    /// Labels a series keeps (the target labels, else the matchers' names).
    pub keep: BTreeSet<String>,
    /// Keep every label (the `{}` selector).
    pub keep_all: bool,
    /// `targetLabels` was given.
    pub targets: bool,
    /// `aggregateBy=labels`.
    pub by_labels: bool,
    /// Most results per request.
    pub limit: usize,
}

impl VolumeSpec {
    /// Builds the spec and the matchers streams are selected with: each target label not
    /// already matched must be present (`name=~".+"`).
    pub(crate) fn new(
        mut matchers: Vec<LabelMatcher>,
        match_any: bool,
        targets: Vec<String>,
        by_labels: bool,
        limit: usize,
    ) -> (VolumeSpec, Vec<LabelMatcher>, bool) {
        let mut spec = VolumeSpec { by_labels, limit, ..VolumeSpec::default() };
        // a target label that is not a valid name matches no stream
        let mut matches_nothing = false;
        if targets.is_empty() {
            spec.keep_all = match_any;
            spec.keep = matchers.iter().map(|m| m.name.clone()).collect();
        } else {
            spec.targets = true;
            for t in &targets {
                spec.keep.insert(t.clone());
                if !matchers.iter().any(|m| &m.name == t) {
                    match LabelMatcher::new(t.clone(), MatchType::Regex, ".+") {
                        Ok(m) => matchers.push(m),
                        Err(_) => matches_nothing = true,
                    }
                }
            }
        }
        (spec, matchers, matches_nothing)
    }

    fn series_key(&self, labels: &Labels) -> VolumeKey {
        VolumeKey::Series(Labels::from_vec(
            labels
                .iter()
                .filter(|l| self.keep_all || self.keep.contains(&l.name))
                .cloned()
                .collect(),
        ))
    }
}

/// Sorts by volume, largest first (ties by name), and keeps the first `limit` (Loki's
/// `MapToVolumeResponse`).
fn top(volumes: HashMap<VolumeKey, u64>, limit: usize) -> Vec<(VolumeKey, u64)> {
    let mut v: Vec<(String, VolumeKey, u64)> =
        volumes.into_iter().map(|(k, n)| (k.name(), k, n)).collect();
    v.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v.into_iter().map(|(_, k, n)| (k, n)).collect()
}

/// Volumes of one request over the given index requests, for each tenant's streams: as Loki
/// merges them, each index request of each tenant keeps its top `limit`, the tenants' are
/// summed and cut to `limit`, then the index requests' are summed and cut to `limit` again.
pub(crate) fn volumes(
    tenants: &[Vec<StreamStats>],
    spec: &VolumeSpec,
    pieces: &[(i64, i64)],
) -> Vec<(VolumeKey, u64)> {
    let mut merged: HashMap<VolumeKey, u64> = HashMap::new();
    for &(from, through) in pieces {
        let mut piece: HashMap<VolumeKey, u64> = HashMap::new();
        for streams in tenants {
            for (k, v) in top(tenant_volumes(streams, spec, from, through), spec.limit) {
                *piece.entry(k).or_default() += v;
            }
        }
        for (k, v) in top(piece, spec.limit) {
            *merged.entry(k).or_default() += v;
        }
    }
    top(merged, spec.limit)
}

/// Loki's `volume_max_series`: an index request whose tenant volumes aggregate more than
/// `max` series (or label names) fails, with Loki's message and status as its single binary
/// answers them (the index's error comes back through its internal gRPC hop: 500,
/// `rpc error: code = Unknown desc = ...`). 0 disables the check.
pub(crate) fn check_max_series(
    tenants: &[Vec<StreamStats>],
    spec: &VolumeSpec,
    pieces: &[(i64, i64)],
    max: usize,
) -> Result<(), QuerierError> {
    if max == 0 {
        return Ok(());
    }
    for &(from, through) in pieces {
        for streams in tenants {
            if tenant_volumes(streams, spec, from, through).len() > max {
                return Err(QuerierError::Internal(format!(
                    "rpc error: code = Unknown desc = the query hit the max number of series limit (limit: {max} series)"
                )));
            }
        }
    }
    Ok(())
}

/// One tenant's volumes for one index request.
fn tenant_volumes(
    streams: &[StreamStats],
    spec: &VolumeSpec,
    from: i64,
    through: i64,
) -> HashMap<VolumeKey, u64> {
    let mut acc: HashMap<VolumeKey, u64> = HashMap::new();
    for s in streams {
        let share = stream_share(&s.chunks, from, through);
        if share.entries == 0 {
            continue;
        }
        let bytes = share.kib << 10;
        if spec.by_labels {
            for l in s.labels.iter() {
                if !spec.targets || spec.keep_all || spec.keep.contains(&l.name) {
                    *acc.entry(VolumeKey::Label(l.name.clone())).or_default() += bytes;
                }
            }
        } else {
            *acc.entry(spec.series_key(&s.labels)).or_default() += bytes;
        }
    }
    acc
}

/// One series of a volume answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VolumeSeries {
    pub key: VolumeKey,
    /// (bucket end ns, bytes), oldest first.
    pub samples: Vec<(i64, u64)>,
}

/// A volume answer: the buckets' results per series, and whether it is a matrix (some series
/// has more than one sample; Loki decides the result type so).
pub(crate) fn collect_buckets(
    buckets: Vec<(i64, Vec<(VolumeKey, u64)>)>,
) -> (Vec<VolumeSeries>, bool) {
    let mut by_key: BTreeMap<VolumeKey, Vec<(i64, u64)>> = BTreeMap::new();
    for (ts, results) in buckets {
        for (k, v) in results {
            by_key.entry(k).or_default().push((ts, v));
        }
    }
    let matrix = by_key.values().any(|s| s.len() > 1);
    let mut series: Vec<(String, VolumeSeries)> = by_key
        .into_iter()
        .map(|(key, mut samples)| {
            samples.sort_by_key(|(ts, _)| *ts);
            (key.name(), VolumeSeries { key, samples })
        })
        .collect();
    // by the first sample, largest first, ties by name
    series.sort_by(|a, b| {
        let (va, vb) = (a.1.samples[0].1, b.1.samples[0].1);
        vb.cmp(&va).then_with(|| a.0.cmp(&b.0))
    });
    (series.into_iter().map(|(_, s)| s).collect(), matrix)
}

fn volume_json(series: &[VolumeSeries], matrix: bool, splits: usize, exec_secs: f64) -> Value {
    let result: Vec<Value> = series
        .iter()
        .map(|s| {
            let metric = match &s.key {
                VolumeKey::Series(l) => marshal::labels_json(l),
                VolumeKey::Label(n) => {
                    let mut m = Map::new();
                    m.insert(n.clone(), Value::String(String::new()));
                    Value::Object(m)
                }
            };
            let point = |&(ts, v): &(i64, u64)| {
                json!([marshal::ts_seconds(ts), marshal::format_value(v as f64)])
            };
            if matrix {
                json!({"metric": metric, "values": s.samples.iter().map(point).collect::<Vec<_>>()})
            } else {
                json!({"metric": metric, "value": point(&s.samples[0])})
            }
        })
        .collect();
    let mut stats = marshal::stats_json(&Stats::default(), &StoreFigures::default(), exec_secs);
    if let Some(summary) = stats.get_mut("summary").and_then(Value::as_object_mut) {
        summary.insert("totalEntriesReturned".into(), json!(series.len()));
        summary.insert("splits".into(), json!(splits));
    }
    json!({
        "status": "success",
        "data": {
            "resultType": if matrix { "matrix" } else { "vector" },
            "result": result,
            "stats": stats,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The endpoints.

impl Querier {
    fn stats_matchers(&self, p: &Params) -> Result<Vec<LabelMatcher>, QuerierError> {
        // (the needles of `skald_needle_selector` are read by `needle_selector`)
        syntax::parse_matchers(p.get("query").unwrap_or(""))
            .map_err(|e| QuerierError::BadRequest(e.to_string()))
    }

    /// The chunks of streams matching `matchers` that overlap `[from_ms, through_ms]`, from
    /// the index and the ingesters (for any range: see `QuerierConfig::query_ingesters_within`),
    /// each chunk once.
    async fn chunk_stats(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from_ms: i64,
        through_ms: i64,
    ) -> Result<Vec<StreamStats>, QuerierError> {
        self.chunk_stats_from(tenant, matchers, from_ms, through_ms, true, None).await
    }

    /// [`chunk_stats`](Self::chunk_stats), asking the ingesters only when `ingesters` is set;
    /// with `needles`, the index's chunks whose filter in the filter tables rejects them are
    /// left out (the ingesters' are all counted).
    pub(crate) async fn chunk_stats_from(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        from_ms: i64,
        through_ms: i64,
        ingesters: bool,
        needles: Option<&NeedleQuery>,
    ) -> Result<Vec<StreamStats>, QuerierError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| QuerierError::Unavailable("querier is shutting down".into()))?;
        // a millisecond of margin each side: the exact overlap is decided in milliseconds
        let (start, end) = (
            from_ms.saturating_sub(1).saturating_mul(MS),
            through_ms.saturating_add(1).saturating_mul(MS),
        );
        let timeout = self.limits(tenant).query_timeout;
        let timeout = if timeout.is_zero() { Duration::from_secs(60) } else { timeout };
        let gather = async {
            // (from, through, checksum, entries, bytes) per stream: the same chunk from
            // several replicas, or from an ingester and the index, counts once
            type Key = (i64, i64, u32, u32, u64);
            let mut chunks: BTreeMap<Labels, BTreeSet<Key>> = BTreeMap::new();
            // every range: backfilled data may be held whatever its age
            if let (Some(ing), true) = (&self.ingester, ingesters) {
                let q =
                    IngesterQuery { matchers: matchers.to_vec(), start, end, ..Default::default() };
                for s in ing.chunk_stats(tenant, q).await? {
                    let set = chunks.entry(s.labels).or_default();
                    set.extend(
                        s.chunks
                            .iter()
                            .map(|c| (c.from, c.through, c.checksum, c.entries, c.bytes)),
                    );
                }
            }
            let series = self
                .index
                .series(tenant, matchers, start, end)
                .await
                .map_err(|e| QuerierError::Unavailable(format!("index lookup failed: {e}")))?;
            // tables that cannot be read leave every chunk in, as a query does
            let filters = match needles {
                Some(_) => self.filters.filters(tenant, start, end).await.unwrap_or_default(),
                None => Default::default(),
            };
            let may = |c: &skald_index::ChunkRef| {
                needles.is_none_or(|n| filters.get(c).is_none_or(|f| n.may_match(f)))
            };
            for s in series {
                let kept: Vec<Key> = s
                    .chunks
                    .iter()
                    .filter(|c| may(c))
                    .map(|c| (c.from, c.through, c.checksum, c.entries, c.stats_bytes))
                    .collect();
                // a stream none of whose chunks may match is not counted (without needles,
                // every series the index gives has chunks)
                if !kept.is_empty() || needles.is_none() {
                    chunks.entry(s.labels).or_default().extend(kept);
                }
            }
            Ok::<_, QuerierError>(chunks)
        };
        let chunks =
            tokio::time::timeout(timeout, gather).await.map_err(|_| QuerierError::Timeout)??;
        Ok(chunks
            .into_iter()
            .map(|(labels, set)| StreamStats {
                labels,
                chunks: set
                    .into_iter()
                    .map(|(from, through, _, entries, bytes)| {
                        ChunkStat::new(from, through, entries, bytes)
                    })
                    .collect(),
            })
            .collect())
    }

    /// `/loki/api/v1/index/stats`: `{"streams","chunks","bytes","entries"}`.
    pub async fn index_stats(&self, tenant: &str, p: &Params) -> Result<Value, QuerierError> {
        let (start, end, _) = parse_range_query(p, true)?;
        let Some((start, end)) = self.lookback_range(tenant, start, end) else {
            return Ok(json!({"streams": 0, "chunks": 0, "bytes": 0, "entries": 0}));
        };
        let (from_ms, through_ms) = round_to_ms(start, end);
        self.check_query_length(tenant, from_ms.saturating_mul(MS), through_ms.saturating_mul(MS))?;
        let matchers = self.stats_matchers(p)?;
        let needles = needle_selector(p)?;
        let pieces = day_pieces(from_ms, through_ms);
        // several tenants (`a|b`) add up, as in Loki
        let mut streams = Vec::new();
        for t in tenants(tenant) {
            let needles = needles.as_ref();
            streams.extend(
                self.chunk_stats_from(t, &matchers, from_ms, through_ms, true, needles).await?,
            );
        }
        let s = index_stats(&streams, &pieces);
        Ok(
            json!({"streams": s.streams, "chunks": s.chunks, "bytes": s.bytes, "entries": s.entries}),
        )
    }

    /// `/loki/api/v1/index/volume` (`range = false`, a vector at `end`) and
    /// `/loki/api/v1/index/volume_range` (one sample per `step` bucket, stamped with the
    /// bucket's end).
    pub async fn volume(
        &self,
        tenant: &str,
        p: &Params,
        range: bool,
    ) -> Result<Value, QuerierError> {
        let started = Instant::now();
        let limit = volume_limit(p)?;
        let (start, end, step) = if range {
            parse_range_query(p, false)?
        } else {
            params::parse_timestamp(p.get("time"), 0)?;
            params::parse_direction(p.get("direction"))?;
            let (start, end) = params::parse_range(p, HOUR)?;
            if end < start {
                return Err(QuerierError::BadRequest(
                    "end timestamp must not be before or equal to start time".into(),
                ));
            }
            (start, end, 0)
        };
        let by_labels = aggregate_by_labels(p)?;
        let targets = target_labels(p);
        if !self.limits(tenant).volume_enabled {
            return Err(QuerierError::Status { status: 404, message: "not found".into() });
        }
        let Some((start, end)) = self.lookback_range(tenant, start, end) else {
            return Ok(volume_json(&[], false, 0, started.elapsed().as_secs_f64()));
        };
        let (from_ms, through_ms) = round_to_ms(start, end);
        // One request per bucket, stamped with the bucket's end: `[start, start + step)` cut
        // at multiples of the step (in whole milliseconds), each asked in whole seconds.
        let step_ms = step.div_euclid(MS);
        let buckets: Vec<(i64, i64, i64)> = for_interval(
            step_ms.saturating_mul(MS),
            from_ms.saturating_mul(MS),
            through_ms.saturating_mul(MS),
            true,
        )
        .into_iter()
        .map(|(s, e)| (e, whole_seconds_ms(s), whole_seconds_ms(e)))
        .collect();
        for &(_, s, e) in &buckets {
            self.check_query_length(tenant, s.saturating_mul(MS), e.saturating_mul(MS))?;
        }
        let query = p.get("query").unwrap_or("");
        let match_any = query == MATCH_ANY;
        let matchers = if match_any { Vec::new() } else { self.stats_matchers(p)? };
        let (spec, matchers, matches_nothing) =
            VolumeSpec::new(matchers, match_any, targets, by_labels, limit);
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
            return Ok(volume_json(&[], false, 0, started.elapsed().as_secs_f64()));
        };
        let mut streams: Vec<Vec<StreamStats>> = Vec::new();
        if !matches_nothing {
            for t in tenants(tenant) {
                streams.push(self.chunk_stats(t, &matchers, first.1, last.2).await?);
            }
        }
        for &(_, s, e) in &buckets {
            check_max_series(
                &streams,
                &spec,
                &day_pieces(s, e),
                self.limits(tenant).volume_max_series,
            )?;
        }
        let results: Vec<(i64, Vec<(VolumeKey, u64)>)> = buckets
            .iter()
            .map(|&(stamp, s, e)| (stamp, volumes(&streams, &spec, &day_pieces(s, e))))
            .collect();
        let (series, matrix) = collect_buckets(results);
        Ok(volume_json(&series, matrix, buckets.len(), started.elapsed().as_secs_f64()))
    }
}

/// The needles of Skald's private [`NEEDLE_SELECTOR_PARAM`] (the whole log selector of a
/// needle search the query-frontend sizes its shards for), when it is given and has any.
fn needle_selector(p: &Params) -> Result<Option<NeedleQuery>, QuerierError> {
    let Some(text) = p.get(NEEDLE_SELECTOR_PARAM) else { return Ok(None) };
    match syntax::parse_expr(text) {
        Ok(syntax::ast::Expr::Log(sel)) => Ok(NeedleQuery::lines_only(&sel.stages)),
        Ok(_) => {
            Err(QuerierError::BadRequest(format!("{NEEDLE_SELECTOR_PARAM}: not a log selector")))
        }
        Err(e) => Err(QuerierError::BadRequest(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
