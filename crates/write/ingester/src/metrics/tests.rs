#![allow(clippy::unwrap_used)]

use std::time::Duration;

use prometheus::core::Collector;
use skald_proto::ingester::IngesterService;

use crate::testing::{ingester, streams};
use crate::IngesterConfig;

/// The value of `name{label=value}` (summed over its other labels).
fn value(c: &dyn Collector, label: Option<(&str, &str)>) -> f64 {
    c.collect()
        .iter()
        .flat_map(|f| f.get_metric())
        .filter(|m| {
            label.is_none_or(|(k, v)| m.get_label().iter().any(|l| l.name() == k && l.value() == v))
        })
        .map(|m| m.get_counter().get_value() + m.get_gauge().get_value())
        .sum()
}

#[tokio::test]
async fn a_forced_flush_is_observed_as_loki_observes_a_stored_chunk() {
    let ing = ingester(IngesterConfig::default());
    ing.push("t", streams(0, 300)).await.unwrap();
    let m = ing.inner.metrics.clone();
    assert_eq!(value(&m.streams_created, Some(("tenant", "t"))), 1.0);
    assert_eq!(value(&m.memory_streams, Some(("tenant", "t"))), 1.0, "counted at once");
    assert_eq!(m.chunks_created.get(), 1);
    ing.push("t", streams(300, 10)).await.unwrap();
    assert_eq!(value(&m.streams_created, None), 1.0, "the same stream");

    ing.flush(true).await.unwrap();
    assert_eq!(value(&m.chunks_flushed, Some(("reason", "forced"))), 1.0);
    assert_eq!(m.chunks_flushed_total(), 1);
    assert_eq!(value(&m.chunks_stored, Some(("tenant", "t"))), 1.0);
    let stored = value(&m.stored_bytes, Some(("tenant", "t")));
    assert!(stored > 0.0);
    assert_eq!(value(&m.memory_streams, Some(("tenant", "t"))), 0.0, "flushed and forgotten");
    assert_eq!(m.memory_chunks.get(), 0);
    assert_eq!(m.flush_queue_length.get(), 0);

    let h = &m.chunk;
    for hist in [
        &h.utilization,
        &h.entries,
        &h.size_bytes,
        &h.compression_ratio,
        &h.age_seconds,
        &h.bounds_hours,
    ] {
        assert_eq!(hist.get_sample_count(), 1);
    }
    assert_eq!(h.entries.get_sample_sum(), 310.0);
    assert_eq!(h.size_bytes.get_sample_sum(), stored, "the compressed size, as stored");
    let util = h.utilization.get_sample_sum();
    assert!(util > 0.0 && util < 0.1, "a few KB against a 1.5 MB target: {util}");
    assert!(h.compression_ratio.get_sample_sum() > 1.0, "repetitive lines compress");
    // the entries are at 1000 ns after the epoch: decades old, and spanning 309 ns
    assert!(h.age_seconds.get_sample_sum() > 50.0 * 365.0 * 86400.0);
    assert!(h.bounds_hours.get_sample_sum() < 1e-9);
}

#[tokio::test]
async fn an_idle_chunk_is_flushed_for_being_idle() {
    let config =
        IngesterConfig { chunk_idle_period: Duration::from_millis(1), ..Default::default() };
    let ing = ingester(config);
    ing.push("t", streams(0, 10)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    ing.flush(false).await.unwrap();
    let m = &ing.inner.metrics;
    assert_eq!(value(&m.chunks_flushed, Some(("reason", "idle"))), 1.0);
    assert_eq!(value(&m.chunks_flushed, Some(("reason", "forced"))), 0.0);
}
