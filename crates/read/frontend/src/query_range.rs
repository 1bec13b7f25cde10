//! `/loki/api/v1/query_range` through the frontend: the query is prepared as the querier
//! prepares it ([`RangeQuery::prepare`]), cut into time splits (`split_queries_by_interval`,
//! [`plan::split_range`] for a metric query, [`plan::split_log_range`] for a log query), each
//! split sent to a querier as a part request (the whole, prepared range and the split's own:
//! [`query::part_params`]) at most `max_query_parallelism` at once, and the parts merged
//! ([`plan::merge_matrix`], [`plan::merge_streams`]) into the answer of the whole query,
//! written as the querier writes it ([`marshal::query_body`]). The answer is byte for byte
//! the querier's, `stats` aside.
//!
//! A log query runs its splits in its direction (newest first for `backward`), its first split
//! alone and twice as many at once after each split that leaves `limit` unfilled, and stops
//! once the splits done in order hold `limit` entries: the splits after them are dropped,
//! which cancels them wherever they are. A query that cannot be split goes to a querier whole,
//! unchanged: one that fails its checks (the querier answers with exactly its error), a log
//! query with `interval` (its thinning carries across split edges), a query with splitting
//! off (`split_queries_by_interval: 0`) or inside one split (unless it is sharded).
//!
//! A metric query whose range aggregations recombine exactly across shards
//! ([`plan::shard_plan`]) is also sharded by stream: each split gets
//! `ceil(bytes / tsdb_max_bytes_per_shard)` shards (at most `tsdb_max_query_parallelism`; the
//! bytes from the index statistics of its selector), and each of its legs (its range
//! aggregations) a part request per shard with `skald_shard=I_of_N`. The shards' matrices of
//! each leg are combined ([`ShardPlan::combine`]) and the split is evaluated here over them
//! ([`ShardPlan::evaluate`]) before the splits are merged. A split whose combination is
//! undecided, or one of whose legs fails for its data (a pipeline error, a limit), runs again
//! unsharded and answers as the querier does. `parallelise_shardable_queries` off, or one
//! shard everywhere, runs it as before.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use futures::StreamExt;
use skald_loghttp::marshal::{self, PlanFigures};
use skald_loghttp::params;
use skald_loghttp::part::{self, PART_CONTENT_TYPE};
use skald_loghttp::query::{self, RangeQuery};
use skald_loghttp::reply::JSON_UPPER;
use skald_loghttp::StoreFigures;
use skald_logql::engine::{
    EngineError, QueryMemory, QueryOutput, QueryResult, ResultStream, Series, Stats,
};
use skald_logql::plan::{self, ShardPlan};
use skald_logql::syntax::ast::LogSelectorExpr;
use skald_model::Shard;

use crate::frontend::{text_response, QueryFrontend};
use crate::{HttpRequest, HttpResponse};

/// The path of a part request.
const QUERY_RANGE_PATH: &str = "/loki/api/v1/query_range";
/// The path of the index statistics that size the shards.
const INDEX_STATS_PATH: &str = "/loki/api/v1/index/stats";

/// What one split answered: its part, or the querier's (or the queue's) failure, as an
/// answer to send on as it is.
pub(crate) enum Outcome {
    Part(QueryOutput, StoreFigures),
    Failed(HttpResponse),
}

impl QueryFrontend {
    /// Answers a `query_range` request for `tenant`, split and sharded when it can be (see
    /// the module).
    pub async fn query_range(&self, tenant: &str, req: HttpRequest) -> HttpResponse {
        let started = Instant::now();
        let p = crate::frontend::request_params(&req);
        let Ok(q) = RangeQuery::prepare(&p, &self.limits(tenant), params::now_ns()) else {
            return self.forward(tenant, req).await;
        };
        let splits = self.splits(tenant, &q);
        let shard_plan = self.shard_plan(tenant, &q);
        if splits.len() <= 1 && shard_plan.is_none() {
            return self.forward(tenant, req).await;
        }
        let counts = match &shard_plan {
            Some(plan) => self.shard_counts(tenant, &req, plan, &splits).await,
            None => vec![1; splits.len()],
        };
        if splits.len() <= 1 && counts.iter().all(|&n| n <= 1) {
            return self.forward(tenant, req).await;
        }
        let text = p.get("query").unwrap_or("").to_string();
        let id = query_id();
        let categorize = skald_loghttp::reply::categorize_flags(
            req.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("X-Loki-Response-Encoding-Flags"))
                .map(|(_, v)| v.as_str()),
        );
        // one request per split, or one per leg and shard of a sharded split
        let legs: Vec<String> = shard_plan
            .as_ref()
            .map(|plan| plan.legs.iter().map(|l| l.query.to_string()).collect())
            .unwrap_or_default();
        let mut requests: Vec<HttpRequest> = Vec::new();
        for (&s, &n) in splits.iter().zip(&counts) {
            if n > 1 {
                for leg in &legs {
                    for i in 0..n {
                        let shard = Shard::new(i, n);
                        requests.push(part_request(&req, tenant, &id, leg, &q, s, shard));
                    }
                }
            } else {
                requests.push(part_request(&req, tenant, &id, &text, &q, s, None));
            }
        }
        let total = requests.len();
        // a sharded query runs up to `tsdb_max_query_parallelism` parts at once (Loki's
        // parallelism for the sub-queries of TSDB schemas), others `max_query_parallelism`
        let limits = self.limits(tenant);
        let parallelism = if counts.iter().any(|&n| n > 1) {
            limits.tsdb_max_query_parallelism
        } else {
            limits.max_query_parallelism
        };
        let outcomes = self.run_parts(tenant, &q, requests, parallelism).await;
        let (outcomes, legs) = match shard_plan {
            // the queue refused a request: the query fails with it
            Some(_) if outcomes.len() < total => (outcomes, 0),
            Some(plan) => {
                let whole = Whole { client: &req, tenant, id: &id, text: &text, q: &q };
                self.combine_shards(&whole, &plan, &splits, &counts, outcomes).await
            }
            None => {
                let legs = outcomes.len() as u64 * query::shards_per_split(&q.expr);
                (outcomes, legs)
            }
        };
        // a query run in one split reports no splits, as one run whole
        let ran = if splits.len() > 1 { outcomes.len() as u64 } else { 0 };
        let plan_figures = PlanFigures { splits: ran, shards: legs };
        self.merge(tenant, &q, outcomes, plan_figures, categorize, started)
    }

    /// How the query is sharded by stream, or `None` when it runs unsharded: not a
    /// shardable metric query ([`plan::shard_plan`]), `parallelise_shardable_queries` off,
    /// a tenant whose limits never shard (`tsdb_max_query_parallelism` under 2,
    /// `tsdb_max_bytes_per_shard` 0), or a step under a millisecond (the legs' answers carry
    /// milliseconds, which must name one step each).
    fn shard_plan(&self, tenant: &str, q: &RangeQuery) -> Option<ShardPlan> {
        if !self.sharding_on(tenant) || q.step_ns < 1_000_000 {
            return None;
        }
        plan::shard_plan(&q.expr)
    }

    /// Whether this frontend shards queries: `parallelise_shardable_queries` on, and limits
    /// that may give a query two shards or more.
    pub(crate) fn sharding_on(&self, tenant: &str) -> bool {
        let limits = self.limits(tenant);
        self.config().parallelise_shardable_queries
            && limits.tsdb_max_query_parallelism >= 2
            && limits.tsdb_max_bytes_per_shard > 0
    }

    /// The shards of each split: `ceil(bytes / tsdb_max_bytes_per_shard)`, at most
    /// `tsdb_max_query_parallelism`, the bytes from the index statistics of the query's
    /// selector over the data the split reads (`[start - range, end]`), asked of a querier
    /// (`/loki/api/v1/index/stats`, through the caches and the queue). The whole range is
    /// asked first: when it fits in one shard, so does every split (one request for a small
    /// query). A split whose statistics cannot be had runs unsharded (1).
    pub(crate) async fn shard_counts(
        &self,
        tenant: &str,
        client: &HttpRequest,
        shard_plan: &ShardPlan,
        splits: &[(i64, i64)],
    ) -> Vec<u32> {
        let limits = self.limits(tenant);
        let max_bytes = limits.tsdb_max_bytes_per_shard.max(1);
        let max_shards = limits.tsdb_max_query_parallelism.clamp(1, u32::MAX as usize) as u64;
        let Some(selector) = shard_plan.selector() else {
            return vec![1; splits.len()];
        };
        // a needle search (every leg's selector the same, with needles) is sized by what its
        // chunks' filters leave to read
        let text = selector.to_string();
        let same = shard_plan.legs.iter().all(|l| match &l.leaf {
            skald_logql::syntax::ast::SampleExpr::RangeAggregation { range, .. } => {
                range.selector.to_string() == text
            }
            _ => false,
        });
        let needles = (same && !skald_logql::log::needles(&selector.stages).clauses.is_empty())
            .then_some(text);
        let selector =
            LogSelectorExpr { matchers: selector.matchers.clone(), stages: Vec::new() }.to_string();
        let range_ns = shard_plan.range_ns();
        let request = |&(s, e): &(i64, i64)| {
            let mut uri = url::form_urlencoded::Serializer::new(String::new());
            uri.append_pair("query", &selector)
                .append_pair("start", &query::time_param(s.saturating_sub(range_ns)))
                .append_pair("end", &query::time_param(e));
            if let Some(n) = &needles {
                uri.append_pair(skald_loghttp::part::NEEDLE_SELECTOR_PARAM, n);
            }
            let uri = format!("{INDEX_STATS_PATH}?{}", uri.finish());
            querier_request(client, tenant, uri, None)
        };
        let shards = |bytes: u64| bytes.div_ceil(max_bytes).clamp(1, max_shards) as u32;
        let (Some(first), Some(last)) = (splits.first(), splits.last()) else {
            return Vec::new();
        };
        let whole = stats_bytes(self.next().round_trip(tenant, request(&(first.0, last.1))).await);
        if splits.len() == 1 || whole <= max_bytes {
            return vec![shards(whole); splits.len()];
        }
        let next = self.next();
        let tenant = tenant.to_string();
        futures::stream::iter(splits.iter().map(request).collect::<Vec<_>>())
            .map(move |r| next.round_trip(&tenant, r))
            .buffered(limits.max_query_parallelism.max(1))
            .map(|answer| shards(stats_bytes(answer)))
            .collect()
            .await
    }

    /// The outcomes of the splits of a sharded query (`outcomes` holds, in split order, one
    /// per unsharded split and `counts[i]` per leg of a sharded one), one per split: the
    /// split evaluated over its legs' combined matrices ([`ShardPlan::combine`],
    /// [`ShardPlan::evaluate`]; a split whose combination is undecided, or a leg of which
    /// failed for its data, runs again unsharded), or the failure the split gives. Also the
    /// legs that ran, as `stats.summary.shards` counts them.
    async fn combine_shards(
        &self,
        whole: &Whole<'_>,
        shard_plan: &ShardPlan,
        splits: &[(i64, i64)],
        counts: &[u32],
        outcomes: Vec<Outcome>,
    ) -> (Vec<Outcome>, u64) {
        let per_split = query::shards_per_split(&whole.q.expr);
        let mut outcomes = outcomes.into_iter();
        let mut out = Vec::with_capacity(splits.len());
        let mut legs = 0u64;
        for (&s, &n) in splits.iter().zip(counts) {
            if n <= 1 {
                out.extend(outcomes.next());
                legs += per_split;
                continue;
            }
            let per_leg = n as usize;
            let total = per_leg * shard_plan.legs.len();
            legs += total as u64;
            let shards: Vec<Outcome> = outcomes.by_ref().take(total).collect();
            // the evaluation is the engine's work: off the runtime's threads
            let (q, plan, limits) =
                (whole.q.clone(), shard_plan.clone(), self.engine_limits(whole.tenant));
            let evaluated = tokio::task::spawn_blocking(move || {
                evaluate_legs(&plan, &limits, q.part_query_params(s, false), per_leg, shards)
            })
            .await
            .unwrap_or_else(|e| Ok(Outcome::Failed(text_response(500, &e.to_string()))));
            match evaluated {
                Ok(outcome) => out.push(outcome),
                Err(Rerun) => {
                    legs += per_split;
                    let r = part_request(
                        whole.client,
                        whole.tenant,
                        whole.id,
                        whole.text,
                        whole.q,
                        s,
                        None,
                    );
                    out.push(outcome(self.next().round_trip(whole.tenant, r).await));
                }
            }
        }
        (out, legs)
    }

    /// The splits of a prepared query; one (the whole) when it cannot be split.
    fn splits(&self, tenant: &str, q: &RangeQuery) -> Vec<(i64, i64)> {
        let interval =
            self.limits(tenant).split_queries_by_interval.as_nanos().min(i64::MAX as u128);
        let interval = interval as i64;
        if interval == 0 {
            return vec![(q.start, q.end)];
        }
        if q.is_log() {
            if q.interval_ns > 0 {
                return vec![(q.start, q.end)];
            }
            plan::split_log_range(q.start, q.end, interval, q.direction)
        } else {
            plan::split_range(q.start, q.end, q.step_ns, interval, plan::max_range(&q.expr))
        }
    }

    /// Runs the part requests, at most `parallelism` at once, and returns their
    /// outcomes in split order: all of them for a metric query; for a log query, those up to
    /// the first failure or up to the one that brings the entries to `limit` (the rest are
    /// dropped, which cancels them).
    pub(crate) async fn run_parts(
        &self,
        tenant: &str,
        q: &RangeQuery,
        requests: Vec<HttpRequest>,
        parallelism: usize,
    ) -> Vec<Outcome> {
        let parallelism = parallelism.max(1);
        let next = self.next();
        let mut pending = requests.into_iter();
        let mut running = futures::stream::FuturesOrdered::new();
        // a log query's first split runs alone, and each one after which the limit is still
        // not filled doubles the splits in flight: the newest split of a dashboard's logs
        // panel usually holds `limit` entries, and the others need not run at all
        let mut window = if q.is_log() { 1 } else { parallelism };
        let mut out = Vec::new();
        let mut entries = 0usize;
        loop {
            while running.len() < window {
                let Some(r) = pending.next() else { break };
                let (next, tenant) = (next.clone(), tenant.to_string());
                running.push_back(async move { next.round_trip(&tenant, r).await });
            }
            let Some(answer) = running.next().await else { break };
            // the frontend's own failure (a full queue, no querier): the query fails with it,
            // and its other parts go (dropping them takes them off the queue)
            let refused = answer.is_err();
            let outcome = outcome(answer);
            if refused {
                return vec![outcome];
            }
            if q.is_log() {
                match &outcome {
                    Outcome::Part(o, _) => entries += result_entries(&o.result),
                    Outcome::Failed(_) => entries = usize::MAX,
                }
            }
            out.push(outcome);
            if q.is_log() && entries >= q.limit as usize {
                break;
            }
            window = (window * 2).min(parallelism);
        }
        out
    }

    /// The answer of the whole query from the outcomes of its splits.
    fn merge(
        &self,
        tenant: &str,
        q: &RangeQuery,
        outcomes: Vec<Outcome>,
        plan_figures: PlanFigures,
        categorize: bool,
        started: Instant,
    ) -> HttpResponse {
        let Gathered { stats, store, results, mut failed } = gather(outcomes);
        let mut matrices: Vec<Vec<Series>> = Vec::new();
        let mut streams: Vec<Vec<ResultStream>> = Vec::new();
        for result in results {
            match result {
                QueryResult::Matrix(m) if !q.is_log() => matrices.push(m),
                QueryResult::Streams(s) if q.is_log() => streams.push(s),
                _ => failed.push(other_kind()),
            }
        }
        if !failed.is_empty() {
            return choose_failure(failed);
        }
        let result = if q.is_log() {
            QueryResult::Streams(plan::merge_streams(streams, q.limit as usize, q.direction))
        } else {
            let merged =
                plan::merge_matrix(matrices, q.start, q.end, q.step_ns, plan::max_range(&q.expr));
            if let Err(e) = plan::check_series_limit(&merged, self.limits(tenant).max_query_series)
            {
                return engine_error(&e);
            }
            QueryResult::Matrix(merged)
        };
        let out = QueryOutput { result, stats };
        self.answer(&out, &store, &plan_figures, categorize, started)
    }

    /// The JSON answer of a query evaluated here, as the querier writes it
    /// ([`marshal::query_body`], within the response size cap), or its error.
    pub(crate) fn answer(
        &self,
        out: &QueryOutput,
        store: &StoreFigures,
        plan_figures: &PlanFigures,
        categorize: bool,
        started: Instant,
    ) -> HttpResponse {
        let exec = started.elapsed().as_secs_f64();
        let no = AtomicBool::new(false);
        let max_bytes = self.config().max_response_bytes();
        match marshal::query_body(out, store, plan_figures, categorize, exec, max_bytes, &no) {
            Ok(body) => HttpResponse {
                status: 200,
                headers: vec![("Content-Type".into(), JSON_UPPER.into())],
                body: body.into(),
            },
            Err(e) => engine_error(&e),
        }
    }
}

/// The `bytes` of an index statistics answer (0 when there is none).
fn stats_bytes(answer: Result<HttpResponse, crate::FrontendError>) -> u64 {
    answer
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
        .and_then(|v| v.get("bytes").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// The whole query a split belongs to: the client's request, its tenant, the query text and
/// the prepared query.
struct Whole<'a> {
    client: &'a HttpRequest,
    tenant: &'a str,
    id: &'a str,
    text: &'a str,
    q: &'a RangeQuery,
}

/// A sharded split that is to run again unsharded: the combination of a leg's shards was
/// undecided, or a leg failed for its data (the whole part answers as the querier does).
pub(crate) struct Rerun;

impl QueryFrontend {
    /// The limits the engine evaluates a sharded split within, as a querier evaluates it.
    pub(crate) fn engine_limits(&self, tenant: &str) -> skald_logql::engine::Limits {
        let limits = self.limits(tenant);
        skald_logql::engine::Limits {
            max_query_series: limits.max_query_series,
            max_entries_limit_per_query: u32::MAX,
            max_result_bytes: 0,
            max_query_memory: limits.max_query_memory,
        }
    }
}

/// One sharded split's (or instant query's) outcome from the outcomes of its legs' shards
/// (`per_leg` for each leg, in leg order): the query evaluated over `params` (`None`: no step
/// of the query lies in the split) from each leg's combined matrix within `limits`, their
/// stats and store figures added; the failure the split gives when a shard failed for another
/// reason than its data (a timeout, an unreachable querier).
pub(crate) fn evaluate_legs(
    shard_plan: &ShardPlan,
    limits: &skald_logql::engine::Limits,
    params: Option<skald_logql::engine::QueryParams>,
    per_leg: usize,
    outcomes: Vec<Outcome>,
) -> Result<Outcome, Rerun> {
    let mut stats = Stats::default();
    let mut store = StoreFigures::default();
    let mut combined = Vec::with_capacity(shard_plan.legs.len());
    let mut outcomes = outcomes.into_iter();
    for leg in 0..shard_plan.legs.len() {
        let shards: Vec<Outcome> = outcomes.by_ref().take(per_leg).collect();
        let mut g = gather(shards);
        for result in g.results {
            match result {
                QueryResult::Matrix(m) => combined_leg(&mut combined, leg, m),
                _ => g.failed.push(other_kind()),
            }
        }
        if !g.failed.is_empty() {
            let failure = choose_failure(g.failed);
            return match failure.status {
                400..=499 if failure.status != 429 && failure.status != 499 => Err(Rerun),
                _ => Ok(Outcome::Failed(failure)),
            };
        }
        stats.add(&g.stats);
        store.add(&g.store);
    }
    let combined = combined
        .into_iter()
        .enumerate()
        .map(|(leg, parts)| shard_plan.combine(leg, parts))
        .collect::<Result<Vec<_>, plan::Undecided>>()
        .map_err(|plan::Undecided| Rerun)?;
    let result = match params {
        Some(params) => {
            let mem = QueryMemory::new(limits.max_query_memory);
            match shard_plan.evaluate(combined, &params, limits, &mem) {
                Ok(result) => result,
                Err(e) => return Ok(Outcome::Failed(engine_error(&e))),
            }
        }
        None => QueryResult::Matrix(Vec::new()),
    };
    Ok(Outcome::Part(QueryOutput { result, stats }, store))
}

/// Adds one shard's matrix of leg `leg` to the shards' matrices of each leg so far.
fn combined_leg(combined: &mut Vec<Vec<Vec<Series>>>, leg: usize, m: Vec<Series>) {
    if combined.len() <= leg {
        combined.resize_with(leg + 1, Vec::new);
    }
    combined[leg].push(m);
}

/// The part request of split `s` (of `shard` of the streams, when given): a `GET` with the
/// part parameters, the client's headers (less those of its body and its `Accept`), the
/// tenant, and `Accept` asking for a part.
pub(crate) fn part_request(
    client: &HttpRequest,
    tenant: &str,
    query_id: &str,
    text: &str,
    q: &RangeQuery,
    s: (i64, i64),
    shard: Option<Shard>,
) -> HttpRequest {
    let params = match shard {
        Some(shard) => query::shard_part_params(text, q, s, shard),
        None => query::part_params(text, q, s),
    };
    let uri = format!("{QUERY_RANGE_PATH}?{params}");
    let mut r = querier_request(client, tenant, uri, Some(PART_CONTENT_TYPE));
    r.headers.push((part::QUERY_ID_HEADER.into(), query_id.into()));
    r
}

/// A name for one split query, unique in this process and unlikely to repeat across
/// frontends (the parts of one query that run on one querier share a memory budget by it).
pub(crate) fn query_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    });
    format!("{:x}-{:x}-{}", start, std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A `GET` of `uri` for a querier, with the client's headers (less those of its body and its
/// `Accept`), the tenant, and `accept`.
fn querier_request(
    client: &HttpRequest,
    tenant: &str,
    uri: String,
    accept: Option<&str>,
) -> HttpRequest {
    let mut headers: Vec<(String, String)> = client
        .headers
        .iter()
        .filter(|(n, _)| {
            !["accept", "content-type", "content-length", "x-scope-orgid", "transfer-encoding"]
                .iter()
                .any(|h| n.eq_ignore_ascii_case(h))
        })
        .cloned()
        .collect();
    headers.push(("X-Scope-OrgID".into(), tenant.into()));
    if let Some(accept) = accept {
        headers.push(("Accept".into(), accept.into()));
    }
    HttpRequest { method: "GET".into(), uri, headers, body: Default::default() }
}

/// A split's answer as its outcome: a part, or an answer to send on (a querier's error, a
/// part that does not decode, the queue's refusal).
pub(crate) fn outcome(answer: Result<HttpResponse, crate::FrontendError>) -> Outcome {
    let resp = match answer {
        Ok(resp) => resp,
        Err(e) => return Outcome::Failed(text_response(e.status_code(), &e.to_string())),
    };
    let is_part = resp.header("Content-Type").is_some_and(|ct| ct == PART_CONTENT_TYPE);
    if resp.status != 200 || !is_part {
        return Outcome::Failed(resp);
    }
    match part::decode_part(&resp.body) {
        Ok((out, figures)) => Outcome::Part(out, figures),
        Err(e) => Outcome::Failed(text_response(500, &e.to_string())),
    }
}

/// The answer of a query whose splits failed: the failure the whole query gives
/// ([`plan::merge_errors`]: the pipeline error naming the smallest series, else the first in
/// split order), as its querier answered it.
fn choose_failure(mut failed: Vec<HttpResponse>) -> HttpResponse {
    let errors: Vec<EngineError> = failed
        .iter()
        .map(|r| {
            let text = String::from_utf8_lossy(&r.body).into_owned();
            if text.starts_with("pipeline error: ") {
                EngineError::Pipeline(text)
            } else {
                EngineError::Execution(text)
            }
        })
        .collect();
    let chosen = match plan::merge_errors(errors) {
        Some(EngineError::Pipeline(text)) => {
            failed.iter().position(|r| r.body == text.as_bytes()).unwrap_or(0)
        }
        _ => 0,
    };
    failed.swap_remove(chosen)
}

/// An engine error as the querier answers it: its status and text.
pub(crate) fn engine_error(e: &EngineError) -> HttpResponse {
    text_response(e.status_code(), &e.to_string())
}

fn result_entries(r: &QueryResult) -> usize {
    match r {
        QueryResult::Streams(s) => s.iter().map(|s| s.entries.len()).sum(),
        _ => 0,
    }
}

/// What the parts of a query answered: their results, their stats and store figures added,
/// and the failures.
struct Gathered {
    stats: Stats,
    store: StoreFigures,
    results: Vec<QueryResult>,
    failed: Vec<HttpResponse>,
}

fn gather(outcomes: Vec<Outcome>) -> Gathered {
    let mut g = Gathered {
        stats: Stats::default(),
        store: StoreFigures::default(),
        results: Vec::with_capacity(outcomes.len()),
        failed: Vec::new(),
    };
    for o in outcomes {
        match o {
            Outcome::Failed(resp) => g.failed.push(resp),
            Outcome::Part(out, figures) => {
                g.stats.add(&out.stats);
                g.store.add(&figures);
                g.results.push(out.result);
            }
        }
    }
    g
}

/// The failure of a part whose answer is not of the query's kind.
fn other_kind() -> HttpResponse {
    text_response(500, "a querier answered a part of another kind")
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_loghttp::params::Params;
    use skald_logql::engine::ResultEntry;
    use skald_model::Labels;

    fn failure(status: u16, text: &str) -> HttpResponse {
        text_response(status, text)
    }

    #[test]
    fn the_failure_of_the_whole_is_chosen() {
        let pipeline = |series: &str| {
            format!("pipeline error: 'SampleExtractionErr' for series: '{series}'.\nUse a label filter to intercept this error.")
        };
        let a = pipeline(r#"{app="b"}"#);
        let b = pipeline(r#"{app="a"}"#);
        // pipeline errors: the smallest series
        let chosen = choose_failure(vec![failure(400, &a), failure(400, &b)]);
        assert_eq!(chosen.body, b.as_bytes());
        // any other: the first in split order
        let chosen =
            choose_failure(vec![failure(504, "timed out"), failure(400, &b), failure(500, "x")]);
        assert_eq!((chosen.status, &chosen.body[..]), (504, &b"timed out"[..]));
    }

    #[test]
    fn part_requests_carry_the_whole_range_and_ask_for_a_part() {
        let client = HttpRequest {
            method: "POST".into(),
            uri: "/loki/api/v1/query_range".into(),
            headers: vec![
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                ("Accept".into(), "application/json".into()),
                ("X-Scope-OrgID".into(), " a ".into()),
                ("X-Loki-Response-Encoding-Flags".into(), "categorize-labels".into()),
            ],
            body: "query=%7Ba%3D%22b%22%7D&start=1793491200&end=1793498400&limit=5".into(),
        };
        let p = crate::frontend::request_params(&client);
        let limits = skald_common::limits::Limits::default();
        let q = RangeQuery::prepare(&p, &limits, 1_793_500_000_000_000_000).unwrap_or_else(|e| {
            panic!("{e}");
        });
        let r = part_request(&client, "a", "q7", r#"{a="b"}"#, &q, (q.start, q.start + 1), None);
        assert_eq!(r.method, "GET");
        assert!(r.body.is_empty());
        assert_eq!(r.header("Accept"), Some(PART_CONTENT_TYPE));
        assert_eq!(r.header("X-Scope-OrgID"), Some("a"));
        assert_eq!(r.header("Content-Type"), None);
        assert_eq!(r.header("X-Loki-Response-Encoding-Flags"), Some("categorize-labels"));
        assert_eq!(r.header(part::QUERY_ID_HEADER), Some("q7"));
        let (path, query) = r.uri.split_once('?').unwrap_or_default();
        assert_eq!(path, QUERY_RANGE_PATH);
        let mut back = Params::default();
        back.extend_from_urlencoded(query.as_bytes());
        assert_eq!(back.get("start"), Some("1793491200000000000"));
        assert_eq!(back.get("end"), Some("1793498400000000000"));
        assert_eq!(back.get("skald_part_end"), Some("1793491200000000001"));
        assert_eq!(back.get("limit"), Some("5"));
    }

    #[test]
    fn entries_are_counted_across_streams() {
        let entry = |ts| ResultEntry {
            ts,
            line: String::new().into(),
            structured_metadata: Labels::default(),
            parsed: Labels::default(),
        };
        let s = |n: i64| ResultStream {
            labels: Labels::default(),
            entries: (0..n).map(entry).collect(),
        };
        assert_eq!(result_entries(&QueryResult::Streams(vec![s(2), s(3)])), 5);
        assert_eq!(result_entries(&QueryResult::Matrix(vec![])), 0);
    }
}
