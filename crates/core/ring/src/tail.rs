//! Live tails over several ingesters: every ingester may hold a matching stream, so a tail
//! subscribes to all of them and merges what they send. Replicas send the same entries; the
//! querier removes the copies.
//!
//! Membership changes under a long tail (ingesters restart, join, leave): every
//! [`RECONNECT_EVERY`] the member list is read again and every member without a live
//! subscription is subscribed to, as Loki's querier re-checks its ingester connections.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use parking_lot::Mutex;
use skald_proto::ingester::{IngesterClient, IngesterQuery, TailBatch, TailStream};
use skald_proto::{ErrorCode, ServiceError};
use tokio::sync::mpsc;

/// How often a tail looks for members it is not subscribed to.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(3);

/// Lists the members to tail: (address, client).
pub type Members = Arc<
    dyn Fn() -> BoxFuture<'static, Result<Vec<(String, IngesterClient)>, ServiceError>>
        + Send
        + Sync,
>;

struct FanOut {
    tenant: String,
    query: IngesterQuery,
    members: Members,
    /// Addresses with a live subscription.
    active: Mutex<HashSet<String>>,
    tx: mpsc::Sender<Result<TailBatch, ServiceError>>,
}

/// Subscribes to every member now (failing only when there are members and none could be
/// subscribed to), then keeps the subscriptions up until the returned stream is dropped.
pub async fn fan_out(
    tenant: &str,
    query: IngesterQuery,
    members: Members,
) -> Result<TailStream, ServiceError> {
    let (tx, rx) = mpsc::channel(64);
    let f = Arc::new(FanOut {
        tenant: tenant.to_string(),
        query,
        members,
        active: Mutex::new(HashSet::new()),
        tx,
    });
    let (connected, mut errors) = f.connect_missing().await?;
    if connected == 0 {
        if let Some(first) = errors.pop() {
            return Err(ServiceError::new(
                first.code,
                format!("no ingester could be tailed: {}", first.message),
            ));
        }
    }
    let keeper = f.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = keeper.tx.closed() => break,
                _ = tokio::time::sleep(RECONNECT_EVERY) => {}
            }
            if let Err(error) = keeper.connect_missing().await {
                tracing::warn!(%error, "tail: reading the ingester list failed");
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

impl FanOut {
    /// Subscribes to the members that have no live subscription. Returns how many were
    /// subscribed to and the errors of those that could not be.
    async fn connect_missing(self: &Arc<Self>) -> Result<(usize, Vec<ServiceError>), ServiceError> {
        let members = (self.members)().await?;
        let todo: Vec<(String, IngesterClient)> = {
            let active = self.active.lock();
            members.into_iter().filter(|(addr, _)| !active.contains(addr)).collect()
        };
        let results = futures::future::join_all(
            todo.iter().map(|(_, c)| c.tail(&self.tenant, self.query.clone())),
        )
        .await;
        let mut connected = 0;
        let mut errors = Vec::new();
        for ((addr, _), r) in todo.into_iter().zip(results) {
            match r {
                Ok(stream) => {
                    connected += 1;
                    self.active.lock().insert(addr.clone());
                    tokio::spawn(self.clone().forward(addr, stream));
                }
                Err(error) => {
                    tracing::debug!(%error, addr, "tail: ingester not subscribed (retried)");
                    errors.push(error);
                }
            }
        }
        Ok((connected, errors))
    }

    /// Copies one member's batches into the merged stream until either side ends.
    async fn forward(self: Arc<Self>, addr: String, mut stream: TailStream) {
        loop {
            let next = tokio::select! {
                _ = self.tx.closed() => break,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(batch)) => {
                    if self.tx.send(Ok(batch)).await.is_err() {
                        break;
                    }
                }
                Some(Err(error)) => {
                    tracing::debug!(%error, addr, "tail: ingester stream failed (resubscribing)");
                    break;
                }
                None => break,
            }
        }
        self.active.lock().remove(&addr);
    }
}

/// The error a tail gets when there is nobody to tail.
pub(crate) fn no_ingesters() -> ServiceError {
    ServiceError::new(ErrorCode::Unavailable, "no ingesters in the ring")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use async_trait::async_trait;
    use skald_model::{Entry, Label, Labels, Stream};
    use skald_proto::ingester::IngesterService;

    /// An ingester whose tail sends one batch per subscription, then ends: every
    /// resubscription is visible as another batch.
    struct Once {
        subscriptions: Mutex<u32>,
        up: Mutex<bool>,
    }

    #[async_trait]
    impl IngesterService for Once {
        async fn push(&self, _: &str, _: Vec<Stream>) -> Result<(), ServiceError> {
            Ok(())
        }
        async fn query(&self, _: &str, _: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
            Ok(vec![])
        }
        async fn query_samples(
            &self,
            _: &str,
            _: IngesterQuery,
        ) -> Result<Vec<skald_proto::ingester::SeriesSamples>, ServiceError> {
            Ok(vec![])
        }
        async fn series(&self, _: &str, _: IngesterQuery) -> Result<Vec<Labels>, ServiceError> {
            Ok(vec![])
        }
        async fn flush_all(&self) -> Result<(), ServiceError> {
            Ok(())
        }
        async fn tail(&self, _: &str, _: IngesterQuery) -> Result<TailStream, ServiceError> {
            if !*self.up.lock() {
                return Err(ServiceError::new(ErrorCode::Unavailable, "down"));
            }
            let n = {
                let mut s = self.subscriptions.lock();
                *s += 1;
                *s
            };
            let batch = TailBatch {
                streams: vec![Stream {
                    labels: Labels::from_vec(vec![Label::new("n", n.to_string())]),
                    entries: vec![Entry { ts: 1, line: "x".into(), structured_metadata: vec![] }],
                }],
                dropped: vec![],
            };
            Ok(Box::pin(futures::stream::iter(vec![Ok(batch)])))
        }
    }

    #[tokio::test]
    async fn subscribes_to_all_and_resubscribes_after_an_end() {
        let a = Arc::new(Once { subscriptions: Mutex::new(0), up: Mutex::new(true) });
        let b = Arc::new(Once { subscriptions: Mutex::new(0), up: Mutex::new(false) });
        let (ca, cb): (IngesterClient, IngesterClient) = (a.clone(), b.clone());
        let members: Members = Arc::new(move || {
            let list = vec![("a".to_string(), ca.clone()), ("b".to_string(), cb.clone())];
            Box::pin(async move { Ok(list) })
        });
        // b is down: the tail still starts
        let mut s = fan_out("t", IngesterQuery::default(), members).await.unwrap();
        assert!(s.next().await.unwrap().is_ok());
        *b.up.lock() = true;
        // a's stream ended and b came up: both are subscribed to on the next round
        let mut seen = 0;
        while seen < 2 {
            assert!(s.next().await.unwrap().is_ok());
            seen += 1;
        }
        assert_eq!(*a.subscriptions.lock(), 2);
        assert_eq!(*b.subscriptions.lock(), 1);
    }

    #[tokio::test]
    async fn fails_when_no_member_can_be_tailed() {
        let b: IngesterClient =
            Arc::new(Once { subscriptions: Mutex::new(0), up: Mutex::new(false) });
        let members: Members = Arc::new(move || {
            let list = vec![("b".to_string(), b.clone())];
            Box::pin(async move { Ok(list) })
        });
        assert!(fan_out("t", IngesterQuery::default(), members).await.is_err());
    }
}
