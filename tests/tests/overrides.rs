//! Per-tenant overrides (Loki's `runtime_config` file) over a real `skald`: a tenant's
//! `max_line_size` and `max_entries_limit_per_query` apply to its pushes and queries only,
//! a rewritten file takes effect within a couple of periods, a bad file is logged and the last
//! good overrides stay, and `/runtime_config` shows what is in force.
//!
//! The push and query error texts are those real Loki answered with the same runtime file
//! (recorded from Loki 3.x, `loki, version main-65e30f8`). That Loki no longer serves
//! `/runtime_config` (404); Skald's answer has the shape older Loki versions gave it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use serde_json::json;
use skald_integration_tests::{get, metric_sum, now_ns, post, temp_dir, Skald};

fn push(url: &str, tenant: &str, line_len: usize) -> (u16, String) {
    let line = "x".repeat(line_len);
    let body = json!({"streams": [{"stream": {"job": "a"}, "values": [
        [now_ns().to_string(), line],
    ]}]});
    let r = post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
        body.to_string().as_bytes(),
    );
    (r.status, r.body)
}

fn query(url: &str, tenant: &str, limit: &str) -> (u16, String) {
    let r = get(
        &format!("{url}/loki/api/v1/query_range"),
        &[("query", r#"{job="a"}"#), ("limit", limit)],
        &[("X-Scope-OrgID", tenant)],
    );
    (r.status, r.body)
}

/// Waits until `check` holds (the reload period is 1s), or fails with `what`.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 10s");
}

/// The `sha256` label of the one `loki_runtime_config_hash` series (its value must be 1).
fn config_hash(url: &str) -> String {
    let body = get(&format!("{url}/metrics"), &[], &[]).body;
    let series: Vec<&str> =
        body.lines().filter(|l| l.starts_with("loki_runtime_config_hash{")).collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert!(series[0].ends_with("} 1"), "{}", series[0]);
    assert!(series[0].contains(r#"config="loki""#), "{}", series[0]);
    let label = series[0].split("sha256=\"").nth(1).unwrap();
    label.split('"').next().unwrap().to_string()
}

/// What `sha256sum` prints for `file`.
fn sha256sum(file: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum").arg(file).output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[test]
fn tenants_get_their_overrides_and_reloads_apply() {
    let dir = temp_dir("overrides");
    let file = dir.join("runtime.yaml");
    std::fs::write(
        &file,
        "overrides:\n  small:\n    max_line_size: 100\n    max_entries_limit_per_query: 7\n  big: {}\n",
    )
    .unwrap();
    let skald = Skald::start(
        &dir,
        &format!("auth_enabled: true\nruntime_config:\n  file: {}\n  period: 1s\n", file.display()),
    );
    let url = &skald.url;

    // the push path: small's max_line_size, everyone else the default (256KB)
    let (status, body) = push(url, "small", 150);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body.trim(),
        "max entry size '100' bytes exceeded for stream '{job=\"a\", service_name=\"a\"}' while adding an entry with length '150' bytes"
    );
    assert_eq!(push(url, "big", 150).0, 204);
    assert_eq!(push(url, "other", 150).0, 204);

    // the query path: small's max_entries_limit_per_query
    let (status, body) = query(url, "small", "8");
    assert_eq!(
        (status, body.trim()),
        (400, "max entries limit per query exceeded, limit > max_entries_limit_per_query (8 > 7)")
    );
    assert_eq!(query(url, "small", "7").0, 200);
    assert_eq!(query(url, "big", "8").0, 200);

    // what is in force
    let r = get(&format!("{url}/runtime_config"), &[], &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("overrides:\n  big:\n"), "{}", r.body);
    assert!(r.body.contains("\n  small:\n"), "{}", r.body);
    assert!(r.body.contains("    max_line_size: 100B\n"), "{}", r.body);
    let r = get(&format!("{url}/runtime_config"), &[("mode", "diff")], &[]);
    assert_eq!(
        r.body,
        "overrides:\n  small:\n    max_entries_limit_per_query: 7\n    max_line_size: 100B\n"
    );
    assert_eq!(metric_sum(url, "loki_runtime_config_last_reload_successful"), 1.0);
    // dskit's hash of the configuration in force (one file: its bytes' SHA-256)
    let first_hash = sha256sum(&file);
    assert_eq!(config_hash(url), first_hash);
    // Loki 3's per-tenant view: the published keys of the request tenant's limits
    let limits = |tenant: &str| {
        let r = get(&format!("{url}/config/tenant/v1/limits"), &[], &[("X-Scope-OrgID", tenant)]);
        assert_eq!(r.status, 200);
        r.body
    };
    assert!(limits("small").contains("\nmax_entries_limit_per_query: 7\n"));
    assert!(limits("big").contains("\nmax_entries_limit_per_query: 5000\n"));
    assert!(limits("big").contains("\nquery_timeout: 1m\n"));
    let r = get(&format!("{url}/config/tenant/v1/limits"), &[], &[]);
    assert_eq!((r.status, r.body.as_str()), (401, "no org id"));

    // a rewritten file applies within a couple of periods
    std::fs::write(&file, "overrides:\n  small:\n    max_line_size: 1000\n").unwrap();
    eventually("the new max_line_size", || push(url, "small", 150).0 == 204);
    assert_eq!(push(url, "small", 1500).0, 400);
    assert_eq!(query(url, "small", "8").0, 200);
    let good_hash = sha256sum(&file);
    assert_ne!(good_hash, first_hash);
    eventually("the new hash", || config_hash(url) == good_hash);

    // a bad file: logged, and the last good overrides stay
    std::fs::write(&file, "overrides:\n  small:\n    max_line_sise: 10\n").unwrap();
    eventually("the failed reload", || {
        metric_sum(url, "loki_runtime_config_last_reload_successful") == 0.0
    });
    let log = skald.log();
    let line = log.lines().find(|l| l.contains("failed to load config")).unwrap_or_default();
    assert!(line.contains("invalid override for tenant small") && line.contains("max_line_sise"));
    assert_eq!(push(url, "small", 150).0, 204);
    assert_eq!(push(url, "small", 1500).0, 400);
    let r = get(&format!("{url}/runtime_config"), &[("mode", "diff")], &[]);
    assert_eq!(r.body, "overrides:\n  small:\n    max_line_size: 1000B\n");
    assert_eq!(config_hash(url), good_hash, "the hash of what is in force, not of the bad file");

    // fixed again
    std::fs::write(&file, "overrides: {}\n").unwrap();
    eventually("the reload", || push(url, "small", 1500).0 == 204);
    assert_eq!(metric_sum(url, "loki_runtime_config_last_reload_successful"), 1.0);
    assert_eq!(config_hash(url), sha256sum(&file));
    drop(skald);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_runtime_file_stops_the_start_and_none_configured_says_so() {
    let dir = temp_dir("overrides-missing");
    let missing = dir.join("missing.yaml");
    let config = dir.join("skald.yaml");
    let port = skald_integration_tests::free_port();
    std::fs::write(
        &config,
        format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {port}\ncommon:\n  path_prefix: {}\nruntime_config:\n  file: {}\n",
            dir.join("data").display(),
            missing.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(skald_integration_tests::skald_bin())
        .arg(format!("-config.file={}", config.display()))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed to load runtime config: read \""), "{text}");

    let skald = Skald::start(&dir, "");
    let r = get(&format!("{}/runtime_config", skald.url), &[], &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "runtime config file doesn't exist"));
    drop(skald);
    let _ = std::fs::remove_dir_all(&dir);
}
