//! An [`IngesterService`] over several ingesters: pushes go to each stream's replicas on the
//! ring and succeed only with a quorum of acknowledgements; queries ask every ingester and
//! merge, tolerating as many failures as the replication factor allows.
//!
//! Membership is static for now (the configured addresses, all ACTIVE): every distributor and
//! querier given the same list computes the same ring, because tokens are generated from the
//! sorted addresses. A dead ingester fails its calls, which count against the quorum.

use std::collections::BTreeMap;

use async_trait::async_trait;
use skald_model::{Labels, Stream};
use skald_proto::ingester::{
    merge_samples, IngesterClient, IngesterQuery, IngesterService, SeriesSamples, TailStream,
};
use skald_proto::{ErrorCode, ServiceError};

use crate::{quorum, stream_key, tokens_for, InstanceDesc, InstanceState, Operation, Ring};

/// Tokens per ingester (Loki's `num_tokens` default).
pub const TOKENS_PER_INGESTER: usize = 128;

/// Ingesters behind a ring, used as one.
pub struct ReplicatedIngesters {
    ring: Ring,
    /// Clients in the ring's instance order.
    clients: Vec<IngesterClient>,
    replication_factor: usize,
    /// Health is judged at this time (ms since the epoch) ...
    now_ms: i64,
    /// ... against this heartbeat timeout (0: heartbeats are not checked).
    heartbeat_timeout_ms: i64,
}

/// The static ring over ingester addresses: tokens come from the sorted, deduplicated
/// addresses, so every process given the same list builds the same ring. All instances are
/// ACTIVE; `heartbeat_ms` is `now_ms` (there are no heartbeats without gossip).
pub fn static_ring(addrs: &[String], now_ms: i64) -> Ring {
    let mut addrs: Vec<&String> = addrs.iter().collect();
    addrs.sort();
    addrs.dedup();
    let mut taken: Vec<u32> = Vec::new();
    let mut instances = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let tokens = tokens_for(addr, TOKENS_PER_INGESTER, &taken);
        taken.extend_from_slice(&tokens);
        instances.push(InstanceDesc {
            id: addr.clone(),
            addr: addr.clone(),
            state: InstanceState::Active,
            tokens,
            heartbeat_ms: now_ms,
        });
    }
    Ring::new(instances)
}

impl ReplicatedIngesters {
    /// A static ring over `members` (address, client). Every process given the same
    /// addresses builds the same ring.
    pub fn new(mut members: Vec<(String, IngesterClient)>, replication_factor: usize) -> Self {
        members.sort_by(|a, b| a.0.cmp(&b.0));
        members.dedup_by(|a, b| a.0 == b.0);
        let addrs: Vec<String> = members.iter().map(|(a, _)| a.clone()).collect();
        ReplicatedIngesters {
            ring: static_ring(&addrs, 0),
            clients: members.into_iter().map(|(_, c)| c).collect(),
            replication_factor: replication_factor.max(1),
            now_ms: 0,
            heartbeat_timeout_ms: 0,
        }
    }

    /// Over a ring from membership: `clients[i]` reaches `ring.instances()[i]`; health is
    /// judged at `now_ms` against `heartbeat_timeout_ms`.
    pub fn with_ring(
        ring: Ring,
        clients: Vec<IngesterClient>,
        replication_factor: usize,
        now_ms: i64,
        heartbeat_timeout_ms: i64,
    ) -> Self {
        ReplicatedIngesters {
            ring,
            clients,
            replication_factor: replication_factor.max(1),
            now_ms,
            heartbeat_timeout_ms,
        }
    }

    /// The ring (for status pages).
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The members a read reaches: (address, client) of every instance healthy for reads.
    pub fn read_members(&self) -> Vec<(String, IngesterClient)> {
        self.ring
            .instances()
            .iter()
            .zip(&self.clients)
            .filter(|(d, _)| d.is_healthy(Operation::Read, self.now_ms, self.heartbeat_timeout_ms))
            .map(|(d, c)| (d.addr.clone(), c.clone()))
            .collect()
    }

    /// Failures a read may meet and still be complete: every stream is on `rf` ingesters, so
    /// `rf - quorum` of them may be missing.
    fn read_max_errors(&self) -> usize {
        let rf = self.replication_factor.min(self.clients.len()).max(1);
        rf - quorum(rf)
    }

    /// Asks every ingester; fails when more than [`Self::read_max_errors`] fail.
    async fn all<T, F, Fut>(&self, call: F) -> Result<Vec<T>, ServiceError>
    where
        F: Fn(IngesterClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let results = futures::future::join_all(self.clients.iter().map(|c| call(c.clone()))).await;
        let mut out = Vec::with_capacity(results.len());
        let mut errors: Vec<ServiceError> = Vec::new();
        for r in results {
            match r {
                Ok(v) => out.push(v),
                Err(e) => errors.push(e),
            }
        }
        if errors.len() > self.read_max_errors() {
            let first = errors.swap_remove(0);
            return Err(ServiceError::new(
                first.code,
                format!(
                    "{} of {} ingesters failed: {}",
                    errors.len() + 1,
                    self.clients.len(),
                    first.message
                ),
            ));
        }
        Ok(out)
    }
}

/// An ingester that answers with one of these looked at the data and refused it (the
/// client's fault, reported as such); anything else, including a cancelled call (what a
/// connection cut by a dying ingester looks like), is a failure that does not count towards
/// the quorum.
fn is_client_error(e: &ServiceError) -> bool {
    matches!(
        e.code,
        ErrorCode::BadRequest | ErrorCode::PayloadTooLarge | ErrorCode::TooManyRequests
    )
}

#[async_trait]
impl IngesterService for ReplicatedIngesters {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        let n = self.clients.len();
        if n == 0 {
            return Err(ServiceError::new(ErrorCode::Unavailable, "no ingesters in the ring"));
        }
        let index: BTreeMap<&str, usize> =
            self.ring.instances().iter().enumerate().map(|(i, d)| (d.id.as_str(), i)).collect();
        let mut per: Vec<Vec<Stream>> = vec![Vec::new(); n];
        // Per stream: its replicas and the acknowledgements it needs.
        let mut needs: Vec<(Vec<usize>, usize)> = Vec::with_capacity(streams.len());
        for s in streams {
            let key = stream_key(tenant, &s.labels.to_string());
            let set = self
                .ring
                .get(
                    key,
                    self.replication_factor,
                    Operation::Write,
                    self.now_ms,
                    self.heartbeat_timeout_ms,
                )
                .map_err(|e| ServiceError::new(ErrorCode::Unavailable, e.to_string()))?;
            let replicas: Vec<usize> =
                set.instances.iter().filter_map(|d| index.get(d.id.as_str()).copied()).collect();
            for &i in &replicas {
                per[i].push(s.clone());
            }
            needs.push((replicas, set.quorum()));
        }
        let results = futures::future::join_all(per.into_iter().enumerate().map(|(i, batch)| {
            let client = self.clients[i].clone();
            let tenant = tenant.to_string();
            async move {
                if batch.is_empty() {
                    None
                } else {
                    Some(client.push(&tenant, batch).await)
                }
            }
        }))
        .await;
        let mut client_error: Option<ServiceError> = None;
        for (replicas, needed) in needs {
            let mut answered = 0;
            let mut last_failure: Option<&ServiceError> = None;
            for &i in &replicas {
                match &results[i] {
                    Some(Ok(())) => answered += 1,
                    Some(Err(e)) if is_client_error(e) => {
                        answered += 1;
                        client_error.get_or_insert_with(|| e.clone());
                    }
                    Some(Err(e)) => last_failure = Some(e),
                    None => {}
                }
            }
            if answered < needed {
                let why = last_failure.map(|e| e.message.as_str()).unwrap_or("no answer");
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "at least {needed} live replicas required, could only find {answered}: {why}"
                    ),
                ));
            }
        }
        match client_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        let answers = self
            .all(|c| {
                let q = query.clone();
                let t = tenant.to_string();
                async move { c.query(&t, q).await }
            })
            .await?;
        let mut merged: BTreeMap<Labels, Vec<skald_model::Entry>> = BTreeMap::new();
        for s in answers.into_iter().flatten() {
            merged.entry(s.labels).or_default().extend(s.entries);
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut entries)| {
                // Replicas hold the same entries: keep one of each (timestamp, line).
                entries.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.line.cmp(&b.line)));
                entries.dedup_by(|a, b| a.ts == b.ts && a.line == b.line);
                Stream { labels, entries }
            })
            .collect())
    }

    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        let answers = self
            .all(|c| {
                let q = query.clone();
                let t = tenant.to_string();
                async move { c.query_samples(&t, q).await }
            })
            .await?;
        // Replicas extract the same samples from the same entries: keep one of each.
        Ok(merge_samples(answers.into_iter().flatten()))
    }

    async fn series(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<Labels>, ServiceError> {
        let answers = self
            .all(|c| {
                let q = query.clone();
                let t = tenant.to_string();
                async move { c.series(&t, q).await }
            })
            .await?;
        let set: std::collections::BTreeSet<Labels> = answers.into_iter().flatten().collect();
        Ok(set.into_iter().collect())
    }

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<skald_proto::chunk_stats::StreamChunks>, ServiceError> {
        let answers = self
            .all(|c| {
                let q = query.clone();
                let t = tenant.to_string();
                async move { c.chunk_stats(&t, q).await }
            })
            .await?;
        // Replicas cut the same chunks from the same entries: keep one of each.
        Ok(skald_proto::chunk_stats::merge_stream_chunks(answers.into_iter().flatten()))
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        let results = futures::future::join_all(self.clients.iter().map(|c| c.flush_all())).await;
        results.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ())
    }

    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        let members = self.read_members();
        if members.is_empty() {
            return Err(crate::tail::no_ingesters());
        }
        let list: crate::tail::Members = std::sync::Arc::new(move || {
            let members = members.clone();
            Box::pin(async move { Ok(members) })
        });
        crate::tail::fan_out(tenant, query, list).await
    }
}

/// Builds a client for a `host:port` address.
pub type Connect = Box<dyn Fn(&str) -> Result<IngesterClient, ServiceError> + Send + Sync>;

/// An [`IngesterService`] over the ingesters that gossip membership currently shows: each call
/// reads the ring from the live members and reaches every instance at its address (clients
/// are created once per address and kept).
pub struct GossipIngesters {
    state: std::sync::Arc<GossipState>,
}

struct GossipState {
    membership: std::sync::Arc<crate::membership::Membership>,
    connect: Connect,
    clients: parking_lot::Mutex<std::collections::HashMap<String, IngesterClient>>,
    /// The ring as last read, and when.
    ring: parking_lot::Mutex<Option<(std::time::Instant, Ring)>>,
    replication_factor: usize,
    heartbeat_timeout_ms: i64,
}

/// How long a ring read from gossip is reused.
const RING_REFRESH: std::time::Duration = std::time::Duration::from_millis(100);

impl GossipIngesters {
    /// `connect` builds a client for a `host:port` address.
    pub fn new(
        membership: std::sync::Arc<crate::membership::Membership>,
        connect: Connect,
        replication_factor: usize,
        heartbeat_timeout_ms: i64,
    ) -> Self {
        GossipIngesters {
            state: std::sync::Arc::new(GossipState {
                membership,
                connect,
                clients: parking_lot::Mutex::new(std::collections::HashMap::new()),
                ring: parking_lot::Mutex::new(None),
                replication_factor,
                heartbeat_timeout_ms,
            }),
        }
    }

    async fn current(&self) -> Result<ReplicatedIngesters, ServiceError> {
        self.state.current().await
    }
}

impl GossipState {
    async fn current(&self) -> Result<ReplicatedIngesters, ServiceError> {
        // Reading the ring parses every member's entry and sorts the tokens: once per
        // RING_REFRESH, not once per request.
        let cached = self
            .ring
            .lock()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < RING_REFRESH)
            .map(|(_, r)| r.clone());
        let ring = match cached {
            Some(r) => r,
            None => {
                let r = self.membership.ring_desc().await.ring();
                *self.ring.lock() = Some((std::time::Instant::now(), r.clone()));
                r
            }
        };
        let mut clients = Vec::with_capacity(ring.instances().len());
        {
            let mut cache = self.clients.lock();
            for d in ring.instances() {
                let c = match cache.get(&d.addr) {
                    Some(c) => c.clone(),
                    None => {
                        let c = (self.connect)(&d.addr)?;
                        cache.insert(d.addr.clone(), c.clone());
                        c
                    }
                };
                clients.push(c);
            }
        }
        let now_ms = crate::now_ms();
        Ok(ReplicatedIngesters::with_ring(
            ring,
            clients,
            self.replication_factor,
            now_ms,
            self.heartbeat_timeout_ms,
        ))
    }
}

#[async_trait]
impl IngesterService for GossipIngesters {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        self.current().await?.push(tenant, streams).await
    }

    async fn query(&self, tenant: &str, query: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        self.current().await?.query(tenant, query).await
    }

    async fn series(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<Labels>, ServiceError> {
        self.current().await?.series(tenant, query).await
    }

    async fn chunk_stats(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<skald_proto::chunk_stats::StreamChunks>, ServiceError> {
        self.current().await?.chunk_stats(tenant, query).await
    }

    async fn query_samples(
        &self,
        tenant: &str,
        query: IngesterQuery,
    ) -> Result<Vec<SeriesSamples>, ServiceError> {
        self.current().await?.query_samples(tenant, query).await
    }

    async fn flush_all(&self) -> Result<(), ServiceError> {
        self.current().await?.flush_all().await
    }

    async fn tail(&self, tenant: &str, query: IngesterQuery) -> Result<TailStream, ServiceError> {
        // the member list is read again on every reconnect round: ingesters come and go
        let state = self.state.clone();
        let list: crate::tail::Members = std::sync::Arc::new(move || {
            let state = state.clone();
            Box::pin(async move { Ok(state.current().await?.read_members()) })
        });
        crate::tail::fan_out(tenant, query, list).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use parking_lot::Mutex;
    use skald_model::Entry;

    use super::*;

    /// An ingester in memory that can be switched off.
    #[derive(Default)]
    struct Fake {
        streams: Mutex<Vec<Stream>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl Fake {
        fn check(&self) -> Result<(), ServiceError> {
            if self.down.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(ServiceError::new(ErrorCode::Unavailable, "connection refused"));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl IngesterService for Fake {
        async fn push(&self, _t: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
            self.check()?;
            self.streams.lock().extend(streams);
            Ok(())
        }
        async fn query(&self, _t: &str, _q: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
            self.check()?;
            Ok(self.streams.lock().clone())
        }
        async fn query_samples(
            &self,
            _t: &str,
            _q: IngesterQuery,
        ) -> Result<Vec<skald_proto::ingester::SeriesSamples>, ServiceError> {
            Ok(Vec::new())
        }
        async fn series(&self, _t: &str, _q: IngesterQuery) -> Result<Vec<Labels>, ServiceError> {
            self.check()?;
            Ok(self.streams.lock().iter().map(|s| s.labels.clone()).collect())
        }
        async fn flush_all(&self) -> Result<(), ServiceError> {
            self.check()
        }
    }

    fn stream(i: usize) -> Stream {
        Stream {
            labels: Labels::parse(&format!("{{job=\"s{i}\"}}")).unwrap(),
            entries: vec![Entry {
                ts: i as i64,
                line: format!("line {i}").into(),
                structured_metadata: vec![],
            }],
        }
    }

    fn cluster(rf: usize) -> (Vec<Arc<Fake>>, ReplicatedIngesters) {
        let fakes: Vec<Arc<Fake>> = (0..3).map(|_| Arc::new(Fake::default())).collect();
        let members = fakes
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("ingester-{i}:9095"), f.clone() as IngesterClient))
            .collect();
        (fakes, ReplicatedIngesters::new(members, rf))
    }

    fn query() -> IngesterQuery {
        IngesterQuery {
            matchers: vec![],
            start: i64::MIN,
            end: i64::MAX,
            line_contains: vec![],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn every_stream_lands_on_rf_ingesters_and_reads_merge() {
        let (fakes, r) = cluster(3);
        r.push("t", (0..20).map(stream).collect()).await.unwrap();
        for f in &fakes {
            assert_eq!(f.streams.lock().len(), 20);
        }
        let got = r.query("t", query()).await.unwrap();
        assert_eq!(got.len(), 20);
        assert!(got.iter().all(|s| s.entries.len() == 1));

        let (fakes, r) = cluster(1);
        r.push("t", (0..30).map(stream).collect()).await.unwrap();
        let held: usize = fakes.iter().map(|f| f.streams.lock().len()).sum();
        assert_eq!(held, 30);
        assert!(fakes.iter().all(|f| !f.streams.lock().is_empty()), "keys spread");
    }

    #[tokio::test]
    async fn one_down_keeps_the_quorum_two_down_do_not() {
        let (fakes, r) = cluster(3);
        fakes[0].down.store(true, std::sync::atomic::Ordering::Relaxed);
        r.push("t", (0..10).map(stream).collect()).await.unwrap();
        assert_eq!(r.query("t", query()).await.unwrap().len(), 10);
        fakes[1].down.store(true, std::sync::atomic::Ordering::Relaxed);
        let err = r.push("t", vec![stream(99)]).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Unavailable);
        assert!(err.message.contains("at least 2 live replicas required"), "{}", err.message);
        assert!(r.query("t", query()).await.is_err());
    }
}
