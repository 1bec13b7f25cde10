//! What the crate's tests share: an ingester that keeps what it is given.
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Mutex;

use async_trait::async_trait;
use skald_model::{Labels, Stream};
use skald_proto::ingester::{IngesterQuery, IngesterService};
use skald_proto::ServiceError;

/// An ingester that records every push (or fails each with `fail`).
#[derive(Default)]
pub struct MockIngester {
    pub pushed: Mutex<Vec<(String, Vec<Stream>)>>,
    pub fail: Option<ServiceError>,
}

#[async_trait]
impl IngesterService for MockIngester {
    async fn push(&self, tenant: &str, streams: Vec<Stream>) -> Result<(), ServiceError> {
        if let Some(e) = &self.fail {
            return Err(e.clone());
        }
        self.pushed.lock().unwrap().push((tenant.to_string(), streams));
        Ok(())
    }
    async fn query(&self, _: &str, _: IngesterQuery) -> Result<Vec<Stream>, ServiceError> {
        Ok(vec![])
    }
    async fn series(&self, _: &str, _: IngesterQuery) -> Result<Vec<Labels>, ServiceError> {
        Ok(vec![])
    }
    async fn query_samples(
        &self,
        _: &str,
        _: IngesterQuery,
    ) -> Result<Vec<skald_proto::ingester::SeriesSamples>, ServiceError> {
        Ok(vec![])
    }
    async fn flush_all(&self) -> Result<(), ServiceError> {
        Ok(())
    }
}

impl MockIngester {
    pub fn streams(&self) -> Vec<Stream> {
        self.pushed.lock().unwrap().iter().flat_map(|(_, s)| s.clone()).collect()
    }
}
