//! Fixtures for the crate's unit tests.

use std::sync::Arc;

use skald_chunk_store::ObjectChunkStore;
use skald_common::limits::Limits;
use skald_index::MemIndexStore;
use skald_model::{Entry, LabelMatcher, Labels, MatchType, Stream};
use skald_proto::ingester::{IngesterQuery, IngesterService};

use crate::{Ingester, IngesterConfig};

/// An ingester over in-memory stores, with default limits.
pub(crate) fn ingester(config: IngesterConfig) -> Ingester {
    Ingester::new(
        config,
        Limits::default(),
        Arc::new(ObjectChunkStore::in_memory()),
        Arc::new(MemIndexStore::new()),
        &prometheus::Registry::new(),
    )
}

/// One stream `{job="replay"}` of `n` entries `line {i}` from `from` on, at `1000 + i` ns.
pub(crate) fn streams(from: i64, n: i64) -> Vec<Stream> {
    vec![Stream {
        labels: Labels::parse(r#"{job="replay"}"#).unwrap(),
        entries: (from..from + n)
            .map(|i| Entry {
                ts: 1_000 + i,
                line: format!("line {i}").into(),
                structured_metadata: vec![],
            })
            .collect(),
    }]
}

/// How many entries of `{job="replay"}` tenant `t` holds.
pub(crate) async fn held(ing: &Ingester) -> usize {
    let q = IngesterQuery {
        matchers: vec![LabelMatcher::new("job", MatchType::Equal, "replay").unwrap()],
        start: i64::MIN,
        end: i64::MAX,
        ..Default::default()
    };
    ing.query("t", q).await.unwrap().iter().map(|s| s.entries.len()).sum()
}

/// An empty WAL directory of this process named `name`.
pub(crate) fn temp_wal(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("skald-ingester-wal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
