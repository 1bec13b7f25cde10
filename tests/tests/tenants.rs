//! Tenant ids at the edge (issue 13, item 2): an `X-Scope-OrgID` that names an empty tenant
//! (`:x`, `a|:x`) or a malformed one is refused with 400 on every route that takes a tenant
//! (push, OTLP, Elasticsearch bulk, queries, metadata, tail), before anything reaches the WAL;
//! and the tenants that are valid keep flushing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::json;
use skald_integration_tests::{get, now_ns, post, temp_dir, Skald};

#[test]
fn empty_and_malformed_tenant_ids_are_refused_everywhere() {
    let dir = temp_dir("tenants");
    let mut s = Skald::start(
        &dir,
        "auth_enabled: true\ningester:\n  chunk_idle_period: 1s\n  flush_check_period: 1s\n",
    );
    let ts = now_ns() - 10_000_000_000;
    let push_body =
        json!({"streams": [{"stream": {"job": "t"}, "values": [[ts.to_string(), "hello"]]}]})
            .to_string();
    let otlp_body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}, "scopeLogs": [{"logRecords": [{"timeUnixNano": ts.to_string(), "body": {"stringValue": "hello"}}]}]}]}).to_string();
    let bulk_body = "{\"index\":{\"_index\":\"logs\"}}\n{\"message\":\"hello\"}\n";
    for (header, message) in [
        (":x", "tenant ID is empty"),
        (":", "tenant ID is empty"),
        ("a|:x", "tenant ID is empty"),
        ("a b", "tenant ID 'a b' contains unsupported character ' '"),
        ("..", "tenant ID is '.' or '..'"),
    ] {
        let org = [("X-Scope-OrgID", header)];
        let with_json = [("X-Scope-OrgID", header), ("Content-Type", "application/json")];
        let answers = [
            (
                "push",
                post(&format!("{}/loki/api/v1/push", s.url), &with_json, push_body.as_bytes()),
            ),
            ("otlp", post(&format!("{}/otlp/v1/logs", s.url), &with_json, otlp_body.as_bytes())),
            (
                "bulk",
                post(
                    &format!("{}/_bulk", s.url),
                    &[("X-Scope-OrgID", header), ("Content-Type", "application/x-ndjson")],
                    bulk_body.as_bytes(),
                ),
            ),
            (
                "query_range",
                get(
                    &format!("{}/loki/api/v1/query_range", s.url),
                    &[("query", "{job=\"t\"}")],
                    &org,
                ),
            ),
            ("labels", get(&format!("{}/loki/api/v1/labels", s.url), &[], &org)),
            (
                "series",
                get(&format!("{}/loki/api/v1/series", s.url), &[("match[]", "{job=\"t\"}")], &org),
            ),
            (
                "tail",
                get(&format!("{}/loki/api/v1/tail", s.url), &[("query", "{job=\"t\"}")], &org),
            ),
        ];
        for (route, r) in answers {
            assert_eq!(r.status, 400, "{route} with X-Scope-OrgID {header:?}: {}", r.body);
            assert!(r.body.contains(message), "{route} with {header:?}: {}", r.body);
        }
    }
    // A valid tenant is untouched: its push is acknowledged and flushed to storage.
    let r = post(
        &format!("{}/loki/api/v1/push", s.url),
        &[("X-Scope-OrgID", "a:meta"), ("Content-Type", "application/json")],
        push_body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(post(&format!("{}/flush", s.url), &[], b"").status, 204);
    // nothing of the refused pushes reached the WAL: a restart replays only tenant a
    s.kill_and_restart();
    let log = s.log();
    assert!(!log.contains("invalid tenant id"), "{log}");
    let r = get(
        &format!("{}/loki/api/v1/query_range", s.url),
        &[
            ("query", "{job=\"t\"}"),
            ("start", &(ts - 1).to_string()),
            ("end", &(ts + 1).to_string()),
        ],
        &[("X-Scope-OrgID", "a")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["result"][0]["values"][0][1], "hello", "{}", r.body);
    let ready = get(&format!("{}/ready", s.url), &[], &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
    s.stop();
}
