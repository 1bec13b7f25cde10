//! The query HTTP API: `/loki/api/v1/{query,query_range,labels,label/<name>/values,series,
//! format_query}` and their legacy `/api/prom` aliases where Loki keeps them.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use skald_logql::engine::{self, QueryParams};
use skald_logql::syntax::ast::{Expr, VectorOp};
use skald_logql::syntax::{self, goutil};
use skald_model::{LabelMatcher, Labels};
use skald_proto::ingester::IngesterQuery;

use crate::error::QuerierError;
use crate::multitenant;
use crate::params::{self, Params};
use crate::{marshal, Querier};

/// The tenant a request acts for, put into request extensions by the server after it checked
/// `X-Scope-OrgID`.
#[derive(Debug, Clone)]
pub struct TenantId(pub String);

const JSON_UPPER: &str = "application/json; charset=UTF-8";
const JSON_LOWER: &str = "application/json; charset=utf-8";

/// Writes a plain-text error the way Loki's `WriteError` does.
pub fn error_response(err: &QuerierError) -> Response {
    let status =
        StatusCode::from_u16(err.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, err.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn json_response(v: &Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn reply(r: Result<Value, QuerierError>) -> Response {
    match r {
        Ok(v) => json_response(&v, JSON_UPPER),
        Err(e) => error_response(&e),
    }
}

/// A JSON body written already (a query answer, marshalled on the query's blocking thread).
fn reply_body(r: Result<Vec<u8>, QuerierError>) -> Response {
    match r {
        Ok(body) => {
            let mut resp = (StatusCode::OK, body).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UPPER));
            resp
        }
        Err(e) => error_response(&e),
    }
}

/// Collects query-string and form-body parameters.
fn collect_params(
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: &Bytes,
) -> Params {
    let mut p = Params::default();
    if let Some(q) = query {
        p.extend_from_urlencoded(q.as_bytes());
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && (is_form || !body.is_empty()) {
        p.extend_from_urlencoded(body);
    }
    p
}

/// What a query endpoint reads from a request: the tenant (put there by the server's tenant
/// layer), the parameters (query string, plus the form body of a POST) and the headers.
pub(crate) struct LokiRequest {
    pub(crate) tenant: String,
    pub(crate) params: Params,
    pub(crate) headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for LokiRequest {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let Some(tenant) = req.extensions().get::<TenantId>().map(|t| t.0.clone()) else {
            return Err(error_response(&QuerierError::Internal("no tenant on the request".into())));
        };
        let method = req.method().clone();
        let headers = req.headers().clone();
        let query = req.uri().query().map(str::to_string);
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let params = collect_params(&method, &headers, query, &body);
        Ok(LokiRequest { tenant, params, headers })
    }
}

pub(crate) fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all("X-Loki-Response-Encoding-Flags")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|f| f.trim() == "categorize-labels")
}

/// The router for every query endpoint. Expects a [`TenantId`] extension on each request.
pub fn router(querier: Arc<Querier>) -> Router {
    Router::new()
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/query", get(query_instant).post(query_instant))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label", get(labels).post(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values).post(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route("/loki/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/prom/label", get(labels))
        .route("/api/prom/label/{name}/values", get(label_values))
        .route("/api/prom/series", get(series).post(series))
        .route("/api/prom/query", get(legacy_query))
        .with_state(querier.clone())
        .merge(crate::discovery::router(querier.clone()))
        .merge(crate::volume::router(querier.clone()))
        .merge(crate::tail::router(querier))
}

/// `/api/prom/query`: Loki's deprecated log query, answered in the legacy shape
/// (`{"streams": [{"labels": "{..}", "entries": [{"ts", "line"}]}]}`). `regexp` adds a
/// `|~` filter.
async fn legacy_query(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.legacy_query(&r.tenant, &r.params).await)
}

async fn query_range(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply_body(q.query_range(&r.tenant, &r.params, categorize(&r.headers)).await)
}

async fn query_instant(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply_body(q.query_instant(&r.tenant, &r.params, categorize(&r.headers)).await)
}

async fn labels(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.labels(&r.tenant, &r.params, None).await)
}

async fn label_values(
    State(q): State<Arc<Querier>>,
    Path(name): Path<String>,
    r: LokiRequest,
) -> Response {
    reply(q.labels(&r.tenant, &r.params, Some(&name)).await)
}

async fn series(State(q): State<Arc<Querier>>, r: LokiRequest) -> Response {
    reply(q.series(&r.tenant, &r.params).await)
}

async fn format_query(
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let p = collect_params(&method, &headers, raw, &body);
    // Loki formats what its parser accepts, without building the pipeline.
    match syntax::parse_expr_unchecked(p.get("query").unwrap_or("")) {
        Ok(expr) => {
            json_response(&json!({"status": "success", "data": expr.to_string()}), JSON_LOWER)
        }
        Err(e) => error_response(&QuerierError::BadRequest(e.to_string())),
    }
}

const HOUR_NS: i64 = 3_600_000_000_000;

impl Querier {
    pub(crate) fn parse_query(&self, p: &Params) -> Result<Expr, QuerierError> {
        syntax::parse_expr(p.get("query").unwrap_or(""))
            .map_err(|e| QuerierError::BadRequest(e.to_string()))
    }

    pub(crate) fn check_limit(&self, limit: u32) -> Result<(), QuerierError> {
        let max = self.limits.max_entries_limit_per_query;
        if max > 0 && limit as u64 > max as u64 {
            return Err(QuerierError::BadRequest(format!(
                "max entries limit per query exceeded, limit > max_entries_limit_per_query ({limit} > {max})"
            )));
        }
        Ok(())
    }

    /// Loki's query frontend refuses `approx_topk` unless `shard_aggregations` lists it, and
    /// then runs it (on count-min sketches) for instant queries only; both answers are 500s.
    /// Skald computes it exactly, which is within any sketch's error bound.
    fn check_shard_aggregations(&self, expr: &Expr, instant: bool) -> Result<(), QuerierError> {
        let Expr::Sample(e) = expr else { return Ok(()) };
        if !e.uses_vector_op(VectorOp::ApproxTopk) {
            return Ok(());
        }
        let status = 500;
        if !self.limits.shard_aggregations.iter().any(|a| a == "approx_topk") {
            let message = "approx_topk is not enabled. See -limits.shard_aggregations".to_string();
            return Err(QuerierError::Status { status, message });
        }
        if !instant {
            let message = "count min sketches are only supported on instant queries".to_string();
            return Err(QuerierError::Status { status, message });
        }
        Ok(())
    }

    /// Loki's `max_query_lookback` (0 disables it): a range that ends before
    /// `now - max_query_lookback` gives an empty answer (`None`); one that starts before it
    /// starts there instead. In whole milliseconds, as Loki's frontend decides it.
    pub(crate) fn lookback_range(&self, start: i64, end: i64) -> Option<(i64, i64)> {
        let lookback = self.limits.max_query_lookback;
        if lookback.is_zero() {
            return Some((start, end));
        }
        let lookback_ms = lookback.as_millis().min(i64::MAX as u128) as i64;
        let min_start_ms = (params::now_ns() / 1_000_000).saturating_sub(lookback_ms);
        if end.div_euclid(1_000_000) < min_start_ms {
            return None;
        }
        Some((start.max(min_start_ms.saturating_mul(1_000_000)), end))
    }

    /// Loki's `max_query_length` check (query frontend): the range, in whole milliseconds as
    /// the frontend sees it, must not exceed the limit (0 disables it).
    pub(crate) fn check_query_length(&self, start: i64, end: i64) -> Result<(), QuerierError> {
        let max = self.limits.max_query_length;
        if max.is_zero() {
            return Ok(());
        }
        let max_ns = max.as_nanos().min(i64::MAX as u128) as i64;
        let len_ns = (end.div_euclid(1_000_000) - start.div_euclid(1_000_000)) * 1_000_000;
        if len_ns > max_ns {
            return Err(QuerierError::BadRequest(format!(
                "the query time range exceeds the limit (query length: {}, limit: {})",
                goutil::go_duration_string(len_ns),
                goutil::prom_duration_string(max_ns)
            )));
        }
        Ok(())
    }

    /// `/loki/api/v1/query_range`: the JSON answer.
    pub async fn query_range(
        self: &Arc<Self>,
        tenant: &str,
        p: &Params,
        categorize: bool,
    ) -> Result<Vec<u8>, QuerierError> {
        let (start, end) = params::parse_range(p, HOUR_NS)?;
        if end < start {
            return Err(QuerierError::BadRequest(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let limit = params::parse_limit(p.get("limit"))?;
        let direction = params::parse_direction(p.get("direction"))?;
        let step_ns = params::parse_step(p, start, end)?;
        let interval_ns = match p.get("interval").filter(|s| !s.is_empty()) {
            Some(s) => params::parse_seconds_or_duration(s)?,
            None => 0,
        };
        let expr = self.parse_query(p)?;
        if matches!(expr, Expr::Log(_)) {
            self.check_limit(limit)?;
        }
        // older than `max_query_lookback`: the steps start later; when nothing is recent
        // enough the range shrinks to its end, where the store reads nothing (an empty
        // answer, before `max_query_length` is checked, as in Loki's frontend)
        let start = self.lookback_range(start, end).map_or(end, |(s, _)| s);
        self.check_query_length(start, end)?;
        let qp = QueryParams {
            start,
            end,
            step_ns,
            interval_ns,
            limit,
            direction,
            instant: false,
            categorize_labels: categorize,
        };
        self.run(tenant, expr, qp, categorize).await
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
        self.check_limit(limit)?;
        self.check_query_length(start, end)?;
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
        let qp = QueryParams {
            start: ts,
            end: ts,
            step_ns: 0,
            interval_ns: 0,
            limit,
            direction,
            instant: true,
            categorize_labels: categorize,
        };
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
        self.evaluate_then(tenant, expr, qp, move |out, cancel| {
            let exec = started.elapsed().as_secs_f64();
            marshal::query_body(&out, categorize, exec, max_bytes, cancel)
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
        self.evaluate_then(tenant, expr, qp, |out, _| Ok(out)).await
    }

    /// [`evaluate`](Self::evaluate), then `then` on the output, on the same blocking thread
    /// and under the same cancel flag.
    async fn evaluate_then<T: Send + 'static>(
        self: &Arc<Self>,
        tenant: &str,
        expr: Expr,
        qp: QueryParams,
        then: impl FnOnce(engine::QueryOutput, &AtomicBool) -> Result<T, engine::EngineError>
            + Send
            + 'static,
    ) -> Result<T, QuerierError> {
        self.check_shard_aggregations(&expr, qp.instant)?;
        let limits = self.engine_limits();
        self.on_source(tenant, move |source, cancel| {
            then(engine::evaluate(&expr, &qp, &limits, source)?, cancel)
        })
        .await
    }

    /// The per-tenant limits the engine enforces, and the response size cap.
    pub(crate) fn engine_limits(&self) -> engine::Limits {
        engine::Limits {
            max_query_series: self.limits.max_query_series,
            max_entries_limit_per_query: self.limits.max_entries_limit_per_query as u32,
            max_result_bytes: self.config.max_response_bytes(),
        }
    }

    fn selector_matchers(&self, q: Option<&str>) -> Result<Vec<LabelMatcher>, QuerierError> {
        match q.filter(|s| !s.trim().is_empty()) {
            None => Ok(Vec::new()),
            Some(s) => {
                syntax::parse_matchers(s).map_err(|e| QuerierError::BadRequest(e.to_string()))
            }
        }
    }

    /// Label sets of every stream matching `matchers` with data in `[start, end)`, from the
    /// index and the ingesters.
    pub(crate) async fn stream_labels(
        &self,
        tenant: &str,
        matchers: &[LabelMatcher],
        start: i64,
        end: i64,
    ) -> Result<BTreeSet<Labels>, QuerierError> {
        let ids = multitenant::tenants(tenant);
        if ids.len() > 1 {
            let (picked, rest) = multitenant::pick(&ids, matchers);
            let mut out = BTreeSet::new();
            for t in picked {
                let one = Box::pin(self.stream_labels(t, &rest, start, end)).await?;
                out.extend(one.iter().map(|l| multitenant::with_tenant(l, t)));
            }
            return Ok(out);
        }
        let mut out = BTreeSet::new();
        let series = self
            .index
            .series(tenant, matchers, start, end.saturating_sub(1))
            .await
            .map_err(|e| QuerierError::Unavailable(format!("index lookup failed: {e}")))?;
        out.extend(series.into_iter().map(|s| s.labels));
        if let Some(ing) = &self.ingester {
            let q = IngesterQuery {
                matchers: matchers.to_vec(),
                start,
                end,
                line_contains: vec![],
                ..Default::default()
            };
            out.extend(ing.series(tenant, q).await?);
        }
        Ok(out)
    }

    /// `/loki/api/v1/labels` (name = None) and `/loki/api/v1/label/<name>/values`.
    pub async fn labels(
        &self,
        tenant: &str,
        p: &Params,
        name: Option<&str>,
    ) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, 6 * HOUR_NS)?;
        if end < start {
            return Err(QuerierError::BadRequest(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let matchers = self.selector_matchers(p.get("query"))?;
        let Some((start, end)) = self.lookback_range(start, end) else {
            return Ok(json!({"status": "success"}));
        };
        let streams = self.stream_labels(tenant, &matchers, start, end).await?;
        let mut values: BTreeSet<String> = BTreeSet::new();
        for labels in &streams {
            match name {
                None => values.extend(labels.iter().map(|l| l.name.clone())),
                Some(n) => values.extend(labels.get(n).map(str::to_string)),
            }
        }
        if values.is_empty() {
            return Ok(json!({"status": "success"}));
        }
        Ok(json!({"status": "success", "data": values.into_iter().collect::<Vec<_>>()}))
    }

    /// `/loki/api/v1/series`.
    pub async fn series(&self, tenant: &str, p: &Params) -> Result<Value, QuerierError> {
        let (start, end) = params::parse_range(p, 6 * HOUR_NS)?;
        if end < start {
            return Err(QuerierError::BadRequest(
                "end timestamp must not be before or equal to start time".into(),
            ));
        }
        let mut selectors = p.get_all("match[]");
        selectors.extend(p.get_all("match"));
        if selectors.is_empty() {
            return Err(QuerierError::BadRequest("0 matchers provided".into()));
        }
        let mut all: BTreeSet<Labels> = BTreeSet::new();
        let Some((start, end)) = self.lookback_range(start, end) else {
            return Ok(json!({"status": "success", "data": []}));
        };
        for s in selectors {
            let matchers = self.selector_matchers(Some(s))?;
            all.extend(self.stream_labels(tenant, &matchers, start, end).await?);
        }
        let data: Vec<Value> = all.iter().map(marshal::labels_json).collect();
        Ok(json!({"status": "success", "data": data}))
    }
}

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
