//! `/loki/api/v1/query` through the frontend: a metric query whose range aggregations
//! recombine exactly across shards ([`plan::shard_plan`]) is sharded by stream as a split of
//! a range query is ([`crate::query_range`]): `ceil(bytes / tsdb_max_bytes_per_shard)` shards
//! (at most `tsdb_max_query_parallelism`; the bytes from the index statistics of its selector
//! over `[time - range, time]`), each leg a part request of one step at `time` per shard,
//! the legs' matrices combined and the query evaluated here as an instant query over them.
//! The answer is byte for byte the querier's, `stats` aside. Everything else (a log query, a
//! query that fails its checks, one that fits one shard, `approx_topk`) goes to a querier
//! whole, unchanged; so does a sharded query whose combination is undecided or one of whose
//! legs fails for its data (it then answers as the querier does).

use std::time::Instant;

use skald_loghttp::marshal::PlanFigures;
use skald_loghttp::params;
use skald_loghttp::query::RangeQuery;
use skald_logql::engine::QueryParams;
use skald_logql::plan;
use skald_logql::syntax::ast::{Expr, VectorOp};
use skald_model::{Direction, Shard};

use crate::frontend::QueryFrontend;
use crate::query_range::{engine_error, evaluate_legs, part_request, query_id, Outcome, Rerun};
use crate::{HttpRequest, HttpResponse};

impl QueryFrontend {
    /// Answers a `query` (instant) request for `tenant`, sharded when it can be (see the
    /// module).
    pub async fn query_instant(&self, tenant: &str, req: HttpRequest) -> HttpResponse {
        let started = Instant::now();
        let p = crate::frontend::request_params(&req);
        let now = params::now_ns();
        let parsed = (
            params::parse_timestamp(p.get("time"), now),
            params::parse_limit(p.get("limit")),
            params::parse_direction(p.get("direction")),
            skald_loghttp::query::parse_query(&p),
        );
        let (Ok(ts), Ok(limit), Ok(direction), Ok(expr)) = parsed else {
            return self.forward(tenant, req).await;
        };
        let plan = match &expr {
            Expr::Sample(e)
                if self.sharding_on(tenant) && !e.uses_vector_op(VectorOp::ApproxTopk) =>
            {
                plan::shard_plan(&expr)
            }
            _ => None,
        };
        let Some(plan) = plan else {
            return self.forward(tenant, req).await;
        };
        let n = self.shard_counts(tenant, &req, &plan, &[(ts, ts)]).await;
        let n = n.first().copied().unwrap_or(1);
        if n <= 1 {
            return self.forward(tenant, req).await;
        }
        // each leg as a range query of one step at `time` (a step of 1 ns: nothing to align)
        let one_step = |leg: Expr| RangeQuery {
            expr: leg,
            start: ts,
            end: ts,
            step_ns: 1,
            interval_ns: 0,
            limit,
            direction: Direction::Backward,
        };
        let id = query_id();
        let mut requests = Vec::new();
        for leg in &plan.legs {
            let q = one_step(leg.query.clone());
            let text = leg.query.to_string();
            for i in 0..n {
                let shard = Shard::new(i, n);
                requests.push(part_request(&req, tenant, &id, &text, &q, (ts, ts), shard));
            }
        }
        let total = requests.len();
        let whole = one_step(expr);
        let parallelism = self.limits(tenant).tsdb_max_query_parallelism;
        let mut outcomes = self.run_parts(tenant, &whole, requests, parallelism).await;
        if outcomes.len() < total {
            // the frontend's own failure (a full queue, no querier): the query fails with it
            return match outcomes.pop() {
                Some(Outcome::Failed(resp)) => resp,
                _ => crate::frontend::text_response(500, "a part of the query was not run"),
            };
        }
        let categorize = skald_loghttp::reply::categorize_flags(
            req.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("X-Loki-Response-Encoding-Flags"))
                .map(|(_, v)| v.as_str()),
        );
        let qp = QueryParams::instant(ts, limit, direction, categorize);
        let limits = self.engine_limits(tenant);
        let evaluated = tokio::task::spawn_blocking(move || {
            evaluate_legs(&plan, &limits, Some(qp), n as usize, outcomes)
        })
        .await;
        let (out, store) = match evaluated {
            Ok(Ok(Outcome::Part(out, store))) => (out, store),
            Ok(Ok(Outcome::Failed(resp))) => return resp,
            Ok(Err(Rerun)) => return self.forward(tenant, req).await,
            Err(e) => {
                return engine_error(&skald_logql::engine::EngineError::Execution(e.to_string()))
            }
        };
        let figures = PlanFigures { splits: 0, shards: total as u64 };
        self.answer(&out, &store, &figures, categorize, started)
    }
}
