//! Secrets in the config never leave the process in clear: `/config` (every mode) shows them
//! as Loki does (`********`, URL passwords as `xxxxx`), and neither the logs nor the error
//! bodies of a failing S3 endpoint quote them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use skald_integration_tests::{free_port, get, now_ns, post, skald_bin, temp_dir, Skald};

const URL_SECRET: &str = "UrlS3cretZq9";
const KEY_SECRET: &str = "KeyS3cretWp4";
const TOKEN_SECRET: &str = "TokS3cretXy7";
const DYNAMO_SECRET: &str = "DynS3cretMn5";
const RULER_SECRET: &str = "RulerS3cretVb2";
const ALL: &[&str] = &[URL_SECRET, KEY_SECRET, TOKEN_SECRET, DYNAMO_SECRET, RULER_SECRET];

fn assert_clean(what: &str, text: &str) {
    for s in ALL {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

#[test]
fn config_logs_and_errors_mask_secrets() {
    let dir = temp_dir("secrets");
    // nothing listens on this port: every S3 request fails
    let dead = free_port();
    let extra = format!(
        "schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: s3
      schema: v13
      index:
        prefix: index_
        period: 24h
storage_config:
  aws:
    s3: s3://AKIDURL:{URL_SECRET}@127.0.0.1:{dead}/bucket
    access_key_id: AKIDKEY
    secret_access_key: {KEY_SECRET}
    session_token: {TOKEN_SECRET}
    dynamodb:
      dynamodb_url: dynamodb://dkey:{DYNAMO_SECRET}@127.0.0.1:{dead}
ruler:
  storage:
    s3:
      access_key_id: AKIDRULER
      secret_access_key: {RULER_SECRET}
"
    );
    let skald = Skald::start(&dir, &extra);

    let r = get(&format!("{}/config", skald.url), &[], &[]);
    assert_eq!(r.status, 200);
    assert_clean("/config", &r.body);
    assert!(r.body.contains("secret_access_key: '********'"), "{}", r.body);
    assert!(r.body.contains("session_token: '********'"), "{}", r.body);
    assert!(r.body.contains(&format!("s3://AKIDURL:xxxxx@127.0.0.1:{dead}/bucket")), "{}", r.body);
    assert!(r.body.contains("dynamodb://dkey:xxxxx@"), "{}", r.body);
    assert!(r.body.contains("access_key_id: AKIDKEY"), "{}", r.body);
    for mode in ["diffs", "defaults"] {
        let r = get(&format!("{}/config", skald.url), &[("mode", mode)], &[]);
        assert_eq!(r.status, 200);
        assert_clean(&format!("/config?mode={mode}"), &r.body);
    }
    let diffs = get(&format!("{}/config", skald.url), &[("mode", "diffs")], &[]);
    assert!(diffs.body.contains("'********'"), "{}", diffs.body);

    // a query that reads the store fails on the dead endpoint, and its error says nothing
    let start = (now_ns() - 3_600_000_000_000).to_string();
    let q = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[("query", "{job=\"x\"}"), ("start", &start)],
        &[],
    );
    assert_clean("a failing query's body", &q.body);
    // a flush to the dead endpoint fails and is logged
    let body =
        json!({"streams": [{"stream": {"job": "x"}, "values": [[now_ns().to_string(), "l"]]}]});
    let p = post(
        &format!("{}/loki/api/v1/push", skald.url),
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    );
    assert_eq!(p.status, 204, "{}", p.body);
    let f = post(&format!("{}/flush", skald.url), &[], b"");
    assert_clean("/flush", &f.body);
    std::thread::sleep(Duration::from_secs(2));
    assert_clean("the log", &skald.log());
}

#[test]
fn startup_errors_mask_url_passwords() {
    let dir = temp_dir("secrets-startup");
    let (http, grpc) = (free_port(), free_port());
    let config = format!(
        "server:
  http_listen_port: {http}
  grpc_listen_port: {grpc}
common:
  path_prefix: {}
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: s3
      schema: v13
storage_config:
  aws:
    s3: http://AKIDURL:{URL_SECRET}@127.0.0.1:1/bucket
",
        dir.join("data").display()
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(skald_bin())
        .arg(format!("-config.file={}", path.display()))
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("http://AKIDURL:xxxxx@127.0.0.1:1/bucket"), "{text}");
    assert_clean("the startup error", &text);
}
