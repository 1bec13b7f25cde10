//! How the DynamoDB index meets throttling and partial batches, against a scripted stand-in
//! for DynamoDB's JSON protocol (real DynamoDB Local never throttles; the conformance suite
//! runs against it in `dynamodb.rs`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skald_index::{
    ChunkRef, DynamoClientConfig, DynamoIndexConfig, DynamoIndexStore, DynamoMetrics, IndexStore,
};
use skald_model::Labels;

/// Serves HTTP/1.1 on loopback, answering each request with the next scripted (status, body)
/// and recording the request bodies.
fn scripted_server(script: Vec<(u16, String)>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (seen2, script) = (seen.clone(), Arc::new(Mutex::new(script.into_iter())));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let (seen, script) = (seen2.clone(), script.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut conn = conn;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                    let (status, answer) = script
                        .lock()
                        .unwrap()
                        .next()
                        .unwrap_or((200, r#"{"UnprocessedItems":{}}"#.to_string()));
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn store(endpoint: String, metrics: DynamoMetrics) -> DynamoIndexStore {
    let client = DynamoClientConfig {
        region: "us-east-1".into(),
        endpoint: Some(endpoint),
        credentials: Some(("k".into(), "s".into())),
    }
    .connect()
    .unwrap();
    let config = DynamoIndexConfig {
        prefix: "t_".into(),
        min_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        ..Default::default()
    };
    DynamoIndexStore::new(client, config, metrics)
}

fn chunks(n: usize) -> Vec<(Labels, ChunkRef)> {
    (0..n)
        .map(|i| {
            let l = Labels::parse(&format!(r#"{{app="a{i}"}}"#)).unwrap();
            let c = ChunkRef {
                fingerprint: l.hash(),
                from: 10,
                through: 20,
                checksum: i as u32,
                entries: 1,
                uncompressed_bytes: 1,
                compressed_bytes: 1,
                stats_bytes: 1,
            };
            (l, c)
        })
        .collect()
}

const THROTTLED: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_and_counted() {
    let (url, seen) = scripted_server(vec![(400, THROTTLED.into()), (400, THROTTLED.into())]);
    let metrics = DynamoMetrics::new();
    let index = store(url, metrics.clone());
    // 5 series: 5 series rows + 5 chunk rows + 1 day row = 11 items, one batch
    index.write_chunks("tenant", chunks(5)).await.unwrap();
    assert_eq!(metrics.throttled.with_label_values(&["BatchWriteItem"]).get(), 2);
    assert_eq!(metrics.items_written.get(), 11);
    assert_eq!(seen.lock().unwrap().len(), 3, "two throttled attempts, then the write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessed_items_are_sent_again_and_batches_hold_25() {
    // the first batch comes back with one item unprocessed
    let first_unprocessed = r#"{"UnprocessedItems":{"t_0":[{"PutRequest":{"Item":{"h":{"S":"tenant:d0:c"},"r":{"B":"AAAAAAAAAAE="},"v":{"B":"AQEB"}}}}]}}"#;
    let (url, seen) = scripted_server(vec![(200, first_unprocessed.into())]);
    let metrics = DynamoMetrics::new();
    let index = store(url, metrics.clone());
    // 20 series: 41 items = batches of 25 and 16, plus the resent one
    index.write_chunks("tenant", chunks(20)).await.unwrap();
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies[0].matches("PutRequest").count(), 25);
    assert_eq!(bodies[1].matches("PutRequest").count(), 1, "the unprocessed item, again");
    assert_eq!(bodies[2].matches("PutRequest").count(), 16);
    assert_eq!(metrics.items_written.get(), 41);
    assert_eq!(metrics.throttled.with_label_values(&["BatchWriteItem"]).get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_fails_at_once() {
    let bad = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"no"}"#;
    let (url, seen) = scripted_server(vec![(400, bad.into())]);
    let metrics = DynamoMetrics::new();
    let index = store(url, metrics.clone());
    let err = index.write_chunks("tenant", chunks(1)).await.unwrap_err();
    assert!(err.to_string().contains("BatchWriteItem"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(metrics.failures.with_label_values(&["BatchWriteItem"]).get(), 1);
}
