//! A push refused for thousands of streams gets a short answer over real HTTP: the ingester's
//! stream limit (429, as Loki) and the distributor's validation errors (400) are grouped per
//! reason with a count.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use skald_integration_tests::{now_ns, post, temp_dir, Skald};

fn push(skald: &Skald, streams: Vec<Value>) -> (u16, String) {
    let body = json!({ "streams": streams }).to_string();
    let r = post(
        &format!("{}/loki/api/v1/push", skald.url),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", "limits")],
        body.as_bytes(),
    );
    (r.status, r.body)
}

#[test]
fn a_push_of_5000_streams_over_the_limit_gets_a_short_answer() {
    let dir = temp_dir("push-errors");
    let skald = Skald::start(
        &dir,
        "auth_enabled: true\nlimits_config:\n  max_global_streams_per_user: 10\n  ingestion_rate_mb: 1000\n  ingestion_burst_size_mb: 1000\n",
    );
    let ts = now_ns().to_string();
    // 5,000 new streams over a limit of 10
    let streams: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"stream": {"job": "many", "instance": format!("host-{i:05}-{}", "x".repeat(80))},
                "values": [[ts, "line"]]})
        })
        .collect();
    let (status, body) = push(&skald, streams);
    // Loki's ingester answers 429 with the message of one stream
    assert_eq!(status, 429, "{body}");
    assert!(body.len() < 4096, "{} bytes: {}", body.len(), &body[..body.len().min(500)]);
    assert!(body.starts_with("maximum active stream limit exceeded"), "{body}");
    assert!(body.contains("(and 4989 more streams refused for the same reason)"), "{body}");

    // 5,000 streams the distributor refuses, each with its own message: at most 10 are listed
    let streams: Vec<Value> = (0..5000)
        .map(|i| {
            json!({"stream": {"job": "bad", "v": format!("{i:05}{}", "y".repeat(3000))},
                "values": [[ts, "line"]]})
        })
        .collect();
    let (status, body) = push(&skald, streams);
    assert_eq!(status, 400, "{}", &body[..body.len().min(500)]);
    assert!(body.contains("... and 4990 more errors"), "{}", &body[..body.len().min(500)]);
    assert!(body.len() < 64 << 10, "{} bytes", body.len());
}
