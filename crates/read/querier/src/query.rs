//! The query runner: `query_range`, `query` (instant) and the legacy `/api/prom/query`, from
//! their parameters to Loki's JSON answer. Every query (and every other read that goes through
//! the LogQL engine: detected fields, patterns, the tail's history) runs on a blocking thread
//! with a cancel flag, within the querier's concurrency limit and the query timeout
//! ([`Querier::on_source`]); the query limits Loki's frontend applies are checked here (the query-size ones in
//! [`crate::bytes_read`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_loghttp::params::{self, Params};
use skald_loghttp::query::{self, PartQuery, RangeQuery};
use skald_loghttp::{marshal, part, ParamError, StoreFigures};
use skald_logql::engine::{self, EngineError, QueryParams, Source};
use skald_logql::syntax::ast::{Expr, VectorOp};
use skald_logql::syntax::{self, goutil};

use crate::error::QuerierError;
use crate::multitenant::{self, MultiTenantSource};
use crate::source::StoreSource;
use crate::store_stats::StoreStats;
use crate::Querier;

pub(crate) use skald_loghttp::query::HOUR_NS;

impl Querier {
    pub(crate) fn parse_query(&self, p: &Params) -> Result<Expr, QuerierError> {
        Ok(query::parse_query(p)?)
    }

    pub(crate) fn check_limit(&self, tenant: &str, limit: u32) -> Result<(), QuerierError> {
        Ok(query::check_limit(&self.limits(tenant), limit)?)
    }

    /// Loki's query frontend refuses `approx_topk` unless `shard_aggregations` lists it, and
    /// then runs it (on count-min sketches) for instant queries only; both answers are 500s.
    /// Skald computes it exactly, which is within any sketch's error bound.
    fn check_shard_aggregations(
        &self,
        tenant: &str,
        expr: &Expr,
        instant: bool,
    ) -> Result<(), QuerierError> {
        let Expr::Sample(e) = expr else { return Ok(()) };
        if !e.uses_vector_op(VectorOp::ApproxTopk) {
            return Ok(());
        }
        let status = 500;
        if !self.limits(tenant).shard_aggregations.iter().any(|a| a == "approx_topk") {
            let message = "approx_topk is not enabled. See -limits.shard_aggregations".to_string();
            return Err(QuerierError::Status { status, message });
        }
        if !instant {
            let message = "count min sketches are only supported on instant queries".to_string();
            return Err(QuerierError::Status { status, message });
        }
        Ok(())
    }

    /// Loki's `max_query_lookback` ([`query::lookback_range`]) at the current time.
    ///
    /// Retention, too: the start moves up to the oldest time any stream of the tenant keeps
    /// (`now - ` the longest of `retention_period` and the `retention_stream` periods), so
    /// that nothing past retention is returned even before the compactor deleted it; the
    /// streams a shorter `retention_stream` rule covers are cut in [`Self::retention`]'s
    /// cutoffs by the store source.
    pub(crate) fn lookback_range(&self, tenant: &str, start: i64, end: i64) -> Option<(i64, i64)> {
        let now = params::now_ns();
        let (start, end) = query::lookback_range(&self.limits(tenant), start, end, now)?;
        let Some(earliest) = self.retention(tenant).map(|r| r.earliest_kept(now)) else {
            return Some((start, end));
        };
        if start >= earliest {
            // untouched: a reversed range is still the caller's to report
            return Some((start, end));
        }
        (earliest < end).then_some((earliest, end))
    }

    /// The tenant's retention rules, when any stream expires (`None`: all kept forever, or a
    /// `retention_stream` selector that does not parse, logged: the compactor refuses it too).
    pub(crate) fn retention(&self, tenant: &str) -> Option<skald_compactor::Retention> {
        let limits = self.limits(tenant);
        if limits.retention_period.is_zero() && limits.retention_stream.is_empty() {
            return None;
        }
        match skald_compactor::Retention::new(&limits) {
            Ok(r) if !r.keeps_everything() => Some(r),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "retention rules unusable, not applied to queries");
                None
            }
        }
    }

    /// Loki's `max_query_length` check ([`query::check_query_length`]).
    pub(crate) fn check_query_length(
        &self,
        tenant: &str,
        start: i64,
        end: i64,
    ) -> Result<(), QuerierError> {
        Ok(query::check_query_length(&self.limits(tenant), start, end)?)
    }

    /// `/loki/api/v1/query_range`: the JSON answer. The parameters are read and checked by
    /// [`RangeQuery::prepare`] (shared with the query-frontend).
    pub async fn query_range(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
        categorize: bool,
    ) -> Result<Vec<u8>, QuerierError> {
        let q = RangeQuery::prepare(p, &self.limits(tenant), params::now_ns())?;
        let qp = range_params(&q, q.start, q.end, categorize);
        self.check_bytes_read(tenant, &q.expr, q.start, q.end).await?;
        self.run(tenant, q.expr, qp, categorize).await
    }

    /// One part of a query the query-frontend split (a `query_range` request with
    /// `skald_part_start` and `skald_part_end`): every check of the whole query, as
    /// [`query_range`](Self::query_range) makes them, then the evaluation of the part alone
    /// (a metric query's steps inside `[part_start, part_end]`, a log query's entries in
    /// `[part_start, part_end)`), answered as an encoded `QueryPart`
    /// ([`skald_loghttp::part`]). With `skald_shard=I_of_N` only the streams of that shard
    /// are read (the index's and the ingesters'). `None` when the request is not a part
    /// request.
    ///
    /// `query_id` names the whole query (the frontend's `X-Skald-Query-Id`): its parts that
    /// run here at the same time share one `max_query_memory` budget.
    pub async fn query_range_part(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
        categorize: bool,
        query_id: Option<&str>,
    ) -> Option<Result<Vec<u8>, QuerierError>> {
        let part = RangeQuery::prepare_part(p, &self.limits(tenant), params::now_ns())?;
        Some(self.run_part(tenant, part, categorize, query_id).await)
    }

    async fn run_part(
        self: &Arc<Self>,
        tenant: &str,
        part: Result<PartQuery, ParamError>,
        categorize: bool,
        query_id: Option<&str>,
    ) -> Result<Vec<u8>, QuerierError> {
        let PartQuery { whole: q, start, end, shard } = part?;
        self.check_bytes_read(tenant, &q.expr, q.start, q.end).await?;
        self.check_shard_aggregations(tenant, &q.expr, false)?;
        let Some(qp) = q.part_query_params((start, end), categorize) else {
            // nothing of the whole query in the part
            let result = if q.is_log() {
                engine::QueryResult::Streams(Vec::new())
            } else {
                engine::QueryResult::Matrix(Vec::new())
            };
            let out = engine::QueryOutput { result, stats: engine::Stats::default() };
            return Ok(part::encode_part(&out, &StoreFigures::default()));
        };
        let encode = |out, _: &AtomicBool, store: &StoreFigures| Ok(part::encode_part(&out, store));
        let budget =
            query_id.map(|id| self.budgets.of(tenant, id, self.limits(tenant).max_query_memory));
        self.evaluate_within(tenant, q.expr, qp, shard, budget, encode).await
    }

    /// `/api/prom/query`.
    pub async fn legacy_query(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
    ) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        let limit = params::parse_limit(p.get("limit"))?;
        let direction = params::parse_direction(p.get("direction"))?;
        let mut expr = self.parse_query(p)?;
        let Expr::Log(sel) = &mut expr else {
            return Err(QuerierError::BadRequest(
                "legacy endpoints only support streams result type".into(),
            ));
        };
        if let Some(re) = p.get("regexp").filter(|r| !r.is_empty()) {
            let text = format!("{sel} |~ {}", goutil::go_quote(re));
            expr =
                syntax::parse_expr(&text).map_err(|e| QuerierError::BadRequest(e.to_string()))?;
        }
        self.check_limit(tenant, limit)?;
        self.check_query_length(tenant, start, end)?;
        let end = params::log_query_end(start, end);
        let qp = QueryParams {
            start,
            end,
            step_ns: 0,
            interval_ns: 0,
            limit,
            direction,
            instant: false,
            categorize_labels: false,
        };
        let out = self.evaluate(tenant, expr, qp).await?;
        match &out.result {
            engine::QueryResult::Streams(streams) => {
                Ok(json!({"streams": marshal::legacy_streams_json(streams)}))
            }
            _ => Err(QuerierError::BadRequest(
                "legacy endpoints only support streams result type".into(),
            )),
        }
    }

    /// `/loki/api/v1/query`: the JSON answer.
    pub async fn query_instant(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
        categorize: bool,
    ) -> Result<Vec<u8>, QuerierError> {
        let ts = params::parse_timestamp(p.get("time"), params::now_ns())?;
        let limit = params::parse_limit(p.get("limit"))?;
        let direction = params::parse_direction(p.get("direction"))?;
        let expr = self.parse_query(p)?;
        let qp = QueryParams::instant(ts, limit, direction, categorize);
        if matches!(expr, Expr::Sample(_)) {
            self.check_bytes_read(tenant, &expr, ts, ts).await?;
        }
        self.run(tenant, expr, qp, categorize).await
    }

    /// Evaluates the query and writes its JSON answer, both on the query's blocking thread:
    /// marshalling stops too when the query is canceled or times out, and when the answer
    /// outgrows `skald_max_query_response_size`.
    async fn run(
        self: &Arc<Self>,
        tenant: &str,
        expr: Expr,
        qp: QueryParams,
        categorize: bool,
    ) -> Result<Vec<u8>, QuerierError> {
        let started = Instant::now();
        let max_bytes = self.config.max_response_bytes();
        // run whole: no split, and the shards Loki would report for it
        let plan = marshal::PlanFigures { splits: 0, shards: query::shards_per_split(&expr) };
        self.evaluate_then(tenant, expr, qp, None, move |out, cancel, store| {
            let exec = started.elapsed().as_secs_f64();
            marshal::query_body(&out, store, &plan, categorize, exec, max_bytes, cancel)
        })
        .await
    }

    /// Evaluates a parsed query over the store and the ingesters, within the concurrency
    /// limit and the query timeout.
    pub(crate) async fn evaluate(
        self: &Arc<Self>,
        tenant: &str,
        expr: Expr,
        qp: QueryParams,
    ) -> Result<engine::QueryOutput, QuerierError> {
        self.evaluate_then(tenant, expr, qp, None, |out, _, _| Ok(out)).await
    }

    /// [`evaluate`](Self::evaluate) over the streams of `shard` (all without one), then
    /// `then` on the output and what the query read, on the same blocking thread and under
    /// the same cancel flag.
    async fn evaluate_then<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        expr: Expr,
        qp: QueryParams,
        shard: Option<skald_model::Shard>,
        then: impl FnOnce(engine::QueryOutput, &AtomicBool, &StoreFigures) -> Result<T, EngineError>
            + Send
            + 'static,
    ) -> Result<T, QuerierError> {
        self.evaluate_within(tenant, expr, qp, shard, None, then).await
    }

    /// [`evaluate_then`](Self::evaluate_then) with the query's memory counted in `budget`
    /// when given: the budget of the whole query a part belongs to, which its parts on this
    /// querier share ([`crate::budgets`]).
    async fn evaluate_within<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        expr: Expr,
        qp: QueryParams,
        shard: Option<skald_model::Shard>,
        budget: Option<Arc<engine::QueryMemory>>,
        then: impl FnOnce(engine::QueryOutput, &AtomicBool, &StoreFigures) -> Result<T, EngineError>
            + Send
            + 'static,
    ) -> Result<T, QuerierError> {
        self.check_shard_aggregations(tenant, &expr, qp.instant)?;
        let mut limits = self.engine_limits(tenant);
        if shard.is_some() {
            // a leg of a sharded query: the series limit is the frontend's, over the query it
            // evaluates from the legs (a leg may hold every stream's series)
            limits.max_query_series = usize::MAX;
        }
        let stats = Arc::new(StoreStats::default());
        let read = stats.clone();
        let mem = match budget.clone() {
            Some(whole) => engine::QueryMemory::within(whole),
            None => engine::QueryMemory::new(limits.max_query_memory),
        };
        // the chunks read ahead of the engine take up to the prefetch window (less when the
        // parts of one query share the budget and others hold some of it)
        let full = crate::source::prefetch_window(limits.max_query_memory);
        let window = crate::budgets::reserve_window(&mem, full).map_err(|e| {
            QuerierError::Status { status: e.status_code(), message: e.to_string() }
        })?;
        self.on_source_counted(tenant, stats, shard, window, move |source, cancel| {
            let resident_before = skald_common::memory::resident_bytes();
            let window = window as u64;
            let result = engine::evaluate_in(&expr, &qp, &limits, source, &mem)
                .and_then(|out| then(out, cancel, &read.snapshot()));
            let grown = skald_common::memory::resident_bytes().zip(resident_before).is_some_and(
                |(after, before)| after >= before.saturating_add(GIVE_BACK_AFTER_GROWTH),
            );
            // a part of a split query: what the whole query held decides (its parts are
            // each small, and together they leave their memory in several threads' arenas)
            let held = budget.as_ref().map_or(mem.peak(), |whole| whole.peak());
            if held.saturating_sub(window) >= GIVE_BACK_AFTER_HELD || grown {
                skald_common::memory::give_back();
            }
            result
        })
        .await
    }

    /// The per-tenant limits the engine enforces, and the response size cap.
    pub(crate) fn engine_limits(&self, tenant: &str) -> engine::Limits {
        let limits = self.limits(tenant);
        engine::Limits {
            max_query_series: limits.max_query_series,
            max_entries_limit_per_query: limits.max_entries_limit_per_query as u32,
            max_result_bytes: self.config.max_response_bytes(),
            max_query_memory: limits.max_query_memory,
        }
    }
}

/// A query whose engine held at least this much (as its [`engine::QueryMemory`] counted,
/// beyond the prefetch window) hands the memory it freed back to the system when it ends:
/// glibc keeps freed memory in the arenas of the threads that used it, so without this the
/// process holds on to the peak of each such query, and the next one piles on top.
const GIVE_BACK_AFTER_HELD: u64 = 8 << 20;

/// The same after a query during which the process's resident memory grew by this much,
/// whatever the engine counted: its reads went through buffers on every decoding thread. A
/// query that reuses what the one before it left (the same dashboard again) does not trim,
/// so it does not pay for faulting that memory in again.
const GIVE_BACK_AFTER_GROWTH: u64 = 16 << 20;

/// Stops a query's blocking evaluation when its request future is dropped (the client
/// disconnected: Loki's 499) or the query timed out.
pub(crate) struct CancelOnDrop {
    pub(crate) flag: Arc<AtomicBool>,
    pub(crate) finished: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.flag.store(true, Ordering::Relaxed);
        if !self.finished {
            tracing::info!(status = 499, "query canceled: the client closed the request");
        }
    }
}

impl Querier {
    /// Runs `f` on a blocking thread with the query source of `tenant` (index, chunks and
    /// ingesters; one source per tenant, read as one, for `a|b`) and its cancel flag, within
    /// the querier's concurrency limit and the query timeout; the source stops reading when the
    /// request goes away or the time is up.
    pub(crate) async fn on_source<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        f: impl FnOnce(&dyn Source, &AtomicBool) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, QuerierError> {
        let window = crate::source::prefetch_window(self.limits(tenant).max_query_memory);
        self.on_source_counted(tenant, Arc::default(), None, window, f).await
    }

    /// [`on_source`](Self::on_source), with the sources counting what they read into `stats`
    /// and reading only the streams of `shard` (all without one).
    async fn on_source_counted<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        stats: Arc<StoreStats>,
        shard: Option<skald_model::Shard>,
        window: usize,
        f: impl FnOnce(&dyn Source, &AtomicBool) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, QuerierError> {
        let _permit = self
            .concurrency
            .acquire()
            .await
            .map_err(|_| QuerierError::Unavailable("querier is shutting down".into()))?;
        let mut guard = CancelOnDrop { flag: Arc::new(AtomicBool::new(false)), finished: false };
        let store = |t: &str| StoreSource {
            querier: self.clone(),
            tenant: t.to_string(),
            handle: tokio::runtime::Handle::current(),
            cancel: guard.flag.clone(),
            chunks_seen: Default::default(),
            stats: stats.clone(),
            shard,
            window,
        };
        let ids = multitenant::tenants(tenant);
        let source: Box<dyn Source> = if ids.len() > 1 {
            Box::new(MultiTenantSource { sources: ids.iter().map(|t| store(t)).collect() })
        } else {
            Box::new(store(tenant))
        };
        let cancel = guard.flag.clone();
        let task = tokio::task::spawn_blocking(move || f(source.as_ref(), &cancel));
        let timeout = self.limits(tenant).query_timeout;
        let timeout = if timeout.is_zero() { Duration::from_secs(60) } else { timeout };
        let result = tokio::time::timeout(timeout, task).await;
        guard.finished = true;
        match result {
            Err(_) => Err(QuerierError::Timeout),
            Ok(Err(e)) => Err(QuerierError::Internal(format!("query task failed: {e}"))),
            Ok(Ok(Err(e))) => {
                Err(QuerierError::Status { status: e.status_code(), message: e.to_string() })
            }
            Ok(Ok(Ok(v))) => Ok(v),
        }
    }
}

/// The engine's parameters of a prepared range query over `[start, end]`.
fn range_params(q: &RangeQuery, start: i64, end: i64, categorize: bool) -> QueryParams {
    QueryParams {
        start,
        end,
        step_ns: q.step_ns,
        interval_ns: q.interval_ns,
        limit: q.limit,
        direction: q.direction,
        instant: false,
        categorize_labels: categorize,
    }
}
