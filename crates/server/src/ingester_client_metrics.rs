//! `loki_ingester_client_request_duration_seconds{operation, status_code}`: the gRPC client
//! histogram of the calls a distributor or a querier makes to an ingester, as Loki's ingester
//! client records it (Loki's buckets, 1 ms × 4ⁿ; `operation` is the method under Loki's name,
//! `/logproto.Pusher/Push`, `/logproto.Querier/Query`, ...; `status_code` is dskit's masked
//! client label: `2xx`, `cancel` or `error`). A decorator around each remote ingester client.
//!
//! The same decorator counts the distributor's pushes to each ingester as Loki's distributor
//! does, by the ingester's address (`ingester`): `loki_distributor_ingester_appends_total`
//! (every push), `loki_distributor_ingester_append_failures_total` (those that failed, for
//! any reason: unreachable, refused, rate limited) and
//! `loki_distributor_ingester_append_timeouts_total` (those that failed by timing out).

use std::time::Instant;

use async_trait::async_trait;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use skald_model::{Labels, Stream};
use skald_proto::chunk_stats::StreamChunks;
use skald_proto::ingester::{
    IngesterClient, IngesterQuery, IngesterService, SeriesSamples, TailStream,
};
use skald_proto::{ErrorCode, ServiceError};

/// The histogram and the push counters, shared by every remote ingester client of the process.
#[derive(Clone)]
pub struct IngesterClientMetrics {
    duration: HistogramVec,
    appends: IntCounterVec,
    append_failures: IntCounterVec,
    append_timeouts: IntCounterVec,
}

impl IngesterClientMetrics {
    /// Creates the metrics and registers them (a failed registration is logged).
    pub fn new(registry: &Registry) -> Self {
        let buckets = (0..6).map(|i| 0.001 * 4f64.powi(i)).collect();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "loki_ingester_client_request_duration_seconds",
                "Time spent doing Ingester requests.",
            )
            .buckets(buckets),
            &["operation", "status_code"],
        )
        .expect("constant metric name and labels are valid");
        let counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["ingester"])
                .expect("constant metric name and labels are valid")
        };
        let appends = counter(
            "loki_distributor_ingester_appends_total",
            "The total number of batch appends sent to ingesters.",
        );
        let append_failures = counter(
            "loki_distributor_ingester_append_failures_total",
            "The total number of failed batch appends sent to ingesters.",
        );
        let append_timeouts = counter(
            "loki_distributor_ingester_append_timeouts_total",
            "The total number of failed batch appends sent to ingesters due to timeouts.",
        );
        for c in [
            Box::new(duration.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(appends.clone()),
            Box::new(append_failures.clone()),
            Box::new(append_timeouts.clone()),
        ] {
            if let Err(error) = registry.register(c) {
                tracing::warn!(%error, "ingester client metric not registered");
            }
        }
        IngesterClientMetrics { duration, appends, append_failures, append_timeouts }
    }

    /// `inner`, the client of the ingester at `addr`, with its calls observed.
    pub fn wrap(&self, addr: &str, inner: IngesterClient) -> IngesterClient {
        std::sync::Arc::new(Instrumented { inner, addr: addr.to_string(), metrics: self.clone() })
    }

    fn observe<T>(&self, operation: &str, start: Instant, res: &Result<T, ServiceError>) {
        let status = match res {
            Ok(_) => "2xx",
            Err(e) if e.code == ErrorCode::Cancelled => "cancel",
            Err(_) => "error",
        };
        self.duration
            .with_label_values(&[operation, status])
            .observe(start.elapsed().as_secs_f64());
    }

    fn count_append(&self, addr: &str, res: &Result<(), ServiceError>) {
        self.appends.with_label_values(&[addr]).inc();
        if let Err(e) = res {
            self.append_failures.with_label_values(&[addr]).inc();
            if e.code == ErrorCode::Timeout {
                self.append_timeouts.with_label_values(&[addr]).inc();
            }
        }
    }
}

struct Instrumented {
    inner: IngesterClient,
    addr: String,
    metrics: IngesterClientMetrics,
}

#[async_trait]
impl IngesterService for Instrumented {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        let start = Instant::now();
        let res = self.inner.push(tenant, streams).await;
        self.metrics.observe("/logproto.Pusher/Push", start, &res);
        self.metrics.count_append(&self.addr, &res);
        res
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let start = Instant::now();
        let res = self.inner.query(tenant, query).await;
        self.metrics.observe("/logproto.Querier/Query", start, &res);
        res
    }

    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        let start = Instant::now();
        let res = self.inner.query_samples(tenant, query).await;
        self.metrics.observe("/logproto.Querier/QuerySample", start, &res);
        res
    }

    async fn series(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<Labels>, ServiceError> {
        let start = Instant::now();
        let res = self.inner.series(tenant, query).await;
        self.metrics.observe("/logproto.Querier/Series", start, &res);
        res
    }

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<StreamChunks>, ServiceError> {
        let start = Instant::now();
        let res = self.inner.chunk_stats(tenant, query).await;
        self.metrics.observe("/logproto.Querier/GetStats", start, &res);
        res
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        let start = Instant::now();
        let res = self.inner.flush_all().await;
        self.metrics.observe("/skald.ingester.v1.Ingester/FlushAll", start, &res);
        res
    }

    /// Observed until the tail is established (the stream then runs as long as the client).
    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        let start = Instant::now();
        let res = self.inner.tail(tenant, query).await;
        self.metrics.observe("/logproto.Querier/Tail", start, &res);
        res
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Pushes of tenant `ok` work, of `gone` are cancelled, the rest fail.
    struct Fake;

    #[async_trait]
    impl IngesterService for Fake {
        async fn push(&self, tenant: &str, _: Vec<Stream>) -> Result<(), ServiceError> {
            match tenant {
                "ok" => Ok(()),
                "gone" => Err(ServiceError::new(ErrorCode::Cancelled, "client went away")),
                "slow" => Err(ServiceError::new(ErrorCode::Timeout, "deadline exceeded")),
                _ => Err(ServiceError::new(ErrorCode::Unavailable, "down")),
            }
        }
        async fn query(&self, _: &str, _: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
            Ok(Vec::new())
        }
        async fn query_samples(
            &self,
            _: &str,
            _: IngesterQuery,
        ) -> Result<Vec<SeriesSamples>, ServiceError> {
            Ok(Vec::new())
        }
        async fn series(&self, _: &str, _: IngesterQuery) -> Result<Vec<Labels>, ServiceError> {
            Ok(Vec::new())
        }
        async fn chunk_stats(
            &self,
            _: &str,
            _: IngesterQuery,
        ) -> Result<Vec<StreamChunks>, ServiceError> {
            Ok(Vec::new())
        }
        async fn flush_all(&self) -> Result<(), ServiceError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn calls_are_observed_by_lokis_operation_and_status() {
        let registry = Registry::new();
        let metrics = IngesterClientMetrics::new(&registry);
        let client = metrics.wrap("10.0.0.1:9095", std::sync::Arc::new(Fake));
        client.push("ok", Vec::new()).await.unwrap();
        client.push("ok", Vec::new()).await.unwrap();
        client.push("gone", Vec::new()).await.unwrap_err();
        client.push("other", Vec::new()).await.unwrap_err();
        client.query("ok", IngesterQuery::default()).await.unwrap();
        client.chunk_stats("ok", IngesterQuery::default()).await.unwrap();
        let count = |op: &str, status: &str| {
            metrics.duration.with_label_values(&[op, status]).get_sample_count()
        };
        assert_eq!(count("/logproto.Pusher/Push", "2xx"), 2);
        assert_eq!(count("/logproto.Pusher/Push", "cancel"), 1);
        assert_eq!(count("/logproto.Pusher/Push", "error"), 1);
        assert_eq!(count("/logproto.Querier/Query", "2xx"), 1);
        assert_eq!(count("/logproto.Querier/GetStats", "2xx"), 1);
        let families = registry.gather();
        let f =
            families.iter().find(|f| f.name() == "loki_ingester_client_request_duration_seconds");
        let bounds: Vec<f64> = f.unwrap().get_metric()[0]
            .get_histogram()
            .get_bucket()
            .iter()
            .map(|b| b.upper_bound())
            .collect();
        assert_eq!(bounds, [0.001, 0.004, 0.016, 0.064, 0.256, 1.024]);
    }

    #[tokio::test]
    async fn pushes_are_counted_by_ingester_as_lokis_distributor_does() {
        let registry = Registry::new();
        let metrics = IngesterClientMetrics::new(&registry);
        let a = metrics.wrap("10.0.0.1:9095", std::sync::Arc::new(Fake));
        let b = metrics.wrap("10.0.0.2:9095", std::sync::Arc::new(Fake));
        a.push("ok", Vec::new()).await.unwrap();
        a.push("down", Vec::new()).await.unwrap_err();
        a.push("slow", Vec::new()).await.unwrap_err();
        b.push("ok", Vec::new()).await.unwrap();
        a.query("ok", IngesterQuery::default()).await.unwrap();
        let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
        for line in [
            r#"loki_distributor_ingester_appends_total{ingester="10.0.0.1:9095"} 3"#,
            r#"loki_distributor_ingester_appends_total{ingester="10.0.0.2:9095"} 1"#,
            r#"loki_distributor_ingester_append_failures_total{ingester="10.0.0.1:9095"} 2"#,
            r#"loki_distributor_ingester_append_timeouts_total{ingester="10.0.0.1:9095"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        assert!(!text.contains(r#"append_failures_total{ingester="10.0.0.2:9095"}"#));
    }
}
