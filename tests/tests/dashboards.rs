//! Skald's Grafana dashboards (`deploy/grafana/dashboards/*.json`) against a real Prometheus
//! (Debian's `prometheus`) scraping real `skald` processes under load: every expression of
//! every panel, with Grafana's variables filled in, returns data.
//!
//! Three processes share one filesystem store: a single binary (`-target=all`, auth on, the
//! compactor applying retention every second and processing deletes), and a distributor and a
//! querier that reach its ingester over gRPC, so that the ingester's gRPC routes
//! (`/logproto.Pusher/Push`, `/logproto.Querier/*`) are served too. The load: pushes of two
//! tenants (JSON and protobuf, with structured metadata), a line too long (discarded), lines
//! older than the retention period (deleted by the compactor), a delete request (processed),
//! and queries of every kind on both query paths. Beyond "has data", a few facts the load must
//! have produced are checked the same way (gRPC pushes counted under Loki's route, the line too
//! long discarded for its tenant, the deleted lines), and `docs/metrics.md` must name every
//! metric the three processes serve (checked even without Prometheus).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skald_integration_tests::{
    free_port, free_port_pair, get, not_run, now_ns, post, temp_dir, Skald,
};

const TEST: &str = "dashboards::every_panel_of_every_dashboard_returns_data";

/// Grafana's variables as the test fills them in: every job, Grafana's rate interval.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("${job}", ".*")
        .replace("$job", ".*")
}

/// The Prometheus binary: `SKALD_PROMETHEUS`, else `prometheus` on `PATH`.
fn prometheus_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SKALD_PROMETHEUS") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("prometheus")).find(|p| p.is_file())
}

/// A Prometheus server of the test's own, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, targets: &[(&str, u16)]) -> Prometheus {
        let jobs: String = targets
            .iter()
            .map(|(job, port)| {
                format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        let p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready =
                ureq::get(&format!("{}/-/ready", p.url)).timeout(Duration::from_secs(1)).call();
            if ready.is_ok_and(|r| r.status() == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus not ready; log:\n{}", p.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The instant query's result, or why there is none.
    fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let r = get(&format!("{}/api/v1/query", self.url), &[("query", expr)], &[]);
        let body: Value = serde_json::from_str(&r.body).map_err(|e| format!("{e}: {}", r.body))?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", r.status, body["error"]));
        }
        match body["data"]["result"].as_array() {
            Some(v) if !v.is_empty() => Ok(v.clone()),
            Some(_) => Err("no data".to_string()),
            None => Err(format!("not a vector: {}", body["data"])),
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every `(dashboard, panel title, expression)` of `deploy/grafana/dashboards/`.
fn panel_expressions() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for want in
        ["skald-writes.json", "skald-reads.json", "skald-resources.json", "skald-retention.json"]
    {
        assert!(names.iter().any(|n| n == want), "{want} missing from {}", dir.display());
    }
    let mut out = Vec::new();
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let mut panels: Vec<&Value> = d["panels"].as_array().unwrap().iter().collect();
        while let Some(p) = panels.pop() {
            if let Some(inner) = p["panels"].as_array() {
                panels.extend(inner);
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{name}: no expr in {t}"));
                out.push((
                    name.clone(),
                    p["title"].as_str().unwrap_or("").to_string(),
                    expr.into(),
                ));
            }
        }
    }
    out
}

/// Starts a member named `name` of the test's processes with `body` after the `server` block.
fn start(dir: &Path, name: &str, body: &str) -> Skald {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (http, grpc) = free_port_pair();
    let config = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: {http}\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: {grpc}\n  log_level: warn\nauth_enabled: true\n{body}"
    );
    let path = dir.join("skald.yaml");
    std::fs::write(&path, config).unwrap();
    Skald::start_with_config(&dir, &path, http, grpc)
}

fn common(dir: &Path, name: &str) -> String {
    format!(
        "common:\n  path_prefix: {}\n  replication_factor: 1\nstorage_config:\n  filesystem:\n    directory: {}\nlimits_config:\n  reject_old_samples: false\n  retention_period: 72h\n  max_line_size: 2048\n  allow_structured_metadata: true\n  volume_enabled: true\n",
        dir.join(name).join("data").display(),
        dir.join("shared").display()
    )
}

fn push(url: &str, tenant: &str, body: &Value) -> u16 {
    let headers = [("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)];
    post(&format!("{url}/loki/api/v1/push"), &headers, body.to_string().as_bytes()).status
}

/// One round of load on `url`: pushes of both tenants and, with `queries`, queries of every
/// kind.
fn load(url: &str, round: i64, queries: bool) {
    let now = now_ns();
    for tenant in ["tenant-a", "tenant-b"] {
        let values: Vec<Value> = (0..20)
            .map(|i| json!([(now - 1_000_000 * (20 - i)).to_string(), format!("round {round} line {i} level=info"), {"trace_id": format!("t{round}-{i}")}]))
            .collect();
        let streams = json!({"streams": [
            {"stream": {"app": "web", "round": (round % 3).to_string()}, "values": values},
            {"stream": {"app": "api"}, "values": [[now.to_string(), format!("api round {round}")]]},
        ]});
        assert_eq!(push(url, tenant, &streams), 204);
    }
    if !queries {
        return;
    }
    let h = [("X-Scope-OrgID", "tenant-a")];
    let (start, end) = ((now - 3_600_000_000_000).to_string(), (now + 1_000_000_000).to_string());
    let range = [("start", start.as_str()), ("end", end.as_str())];
    for (path, extra) in [
        ("query_range", vec![("query", "{app=\"web\"} |= \"line\""), ("limit", "100")]),
        (
            "query_range",
            vec![("query", "sum by (app) (count_over_time({app=~\".+\"}[1m]))"), ("step", "60")],
        ),
        ("query", vec![("query", "sum(rate({app=\"web\"}[5m]))")]),
        ("labels", vec![]),
        ("label/app/values", vec![]),
        ("series", vec![("match[]", "{app=\"web\"}")]),
        ("index/stats", vec![("query", "{app=\"web\"}")]),
        ("index/volume", vec![("query", "{app=~\".+\"}")]),
        ("index/volume_range", vec![("query", "{app=~\".+\"}"), ("step", "60")]),
    ] {
        let mut params = extra.clone();
        if path != "query" {
            params.extend(range);
        }
        let r = get(&format!("{url}/loki/api/v1/{path}"), &params, &h);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // a query error: a 400 on the query route
    let r = get(&format!("{url}/loki/api/v1/query_range"), &[("query", "{app=")], &h);
    assert_eq!(r.status, 400, "{}", r.body);
}

#[test]
fn every_panel_of_every_dashboard_returns_data() {
    let exprs = panel_expressions();
    assert!(exprs.len() >= 60, "only {} panel expressions", exprs.len());
    let began = Instant::now();
    let dir = temp_dir("dashboards");
    let all = start(
        &dir,
        "all",
        &format!(
            "target: all\n{}ingester:\n  chunk_idle_period: 2s\n  flush_check_period: 1s\n  sync_period: 0s\ncompactor:\n  compaction_interval: 1s\n  retention_enabled: true\n  retention_delete_delay: 0s\n  delete_request_store: filesystem\n  delete_request_cancel_period: 1s\n",
            common(&dir, "all")
        ),
    );
    let client = format!("ingester_client:\n  addresses:\n    - 127.0.0.1:{}\n", all.grpc_port);
    let distributor = start(
        &dir,
        "distributor",
        &format!("target: distributor\n{}{client}", common(&dir, "distributor")),
    );
    let querier =
        start(&dir, "querier", &format!("target: querier\n{}{client}", common(&dir, "querier")));
    let jobs =
        [("skald/all", &all), ("skald/distributor", &distributor), ("skald/querier", &querier)];
    let targets: Vec<(&str, u16)> = jobs.iter().map(|(j, s)| (*j, s.http_port)).collect();
    let prom = prometheus_bin().map(|bin| Prometheus::start(&bin, &dir, &targets));

    // lines past the 72h retention (deleted by the compactor), and lines a delete request
    // removes: both flushed to the store at once
    let old = now_ns() - 5 * 24 * 3_600_000_000_000;
    let old_lines = json!({"streams": [{"stream": {"app": "expired"}, "values": [[old.to_string(), "too old"]]}]});
    assert_eq!(push(&all.url, "tenant-a", &old_lines), 204);
    let del_ts = now_ns() - 600_000_000_000;
    let doomed = json!({"streams": [{"stream": {"app": "doomed"}, "values": [
        [del_ts.to_string(), "secret one"], [(del_ts + 1).to_string(), "secret two"]]}]});
    assert_eq!(push(&all.url, "tenant-a", &doomed), 204);
    assert_eq!(post(&format!("{}/flush", all.url), &[], b"").status, 204);
    let secs = |ns: i64| (ns / 1_000_000_000).to_string();
    let r = post(
        &format!(
            "{}/loki/api/v1/delete?query={}&start={}&end={}",
            all.url,
            "%7Bapp%3D%22doomed%22%7D",
            secs(del_ts - 60_000_000_000),
            secs(del_ts + 60_000_000_000)
        ),
        &[("X-Scope-OrgID", "tenant-a")],
        b"",
    );
    assert_eq!(r.status, 204, "delete request: {}", r.body);
    // a line too long for `max_line_size`: discarded
    let long = json!({"streams": [{"stream": {"app": "web"}, "values": [[now_ns().to_string(), "x".repeat(4096)]]}]});
    assert_eq!(push(&distributor.url, "tenant-b", &long), 400);

    // load on both paths for a few scrapes, then every expression until each has data
    let mut round = 0;
    let load_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < load_until {
        load(&all.url, round, true);
        load(&distributor.url, round, false);
        let h = [("X-Scope-OrgID", "tenant-b")];
        for (path, q) in [
            ("query_range", "{app=\"web\"}"),
            ("query_range", "count_over_time({app=\"web\"}[1m])"),
        ] {
            let r = get(&format!("{}/loki/api/v1/{path}", querier.url), &[("query", q)], &h);
            assert_eq!(r.status, 200, "{}", r.body);
        }
        let r = get(
            &format!("{}/loki/api/v1/series", querier.url),
            &[("match[]", "{app=\"web\"}")],
            &h,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = get(
            &format!("{}/loki/api/v1/index/stats", querier.url),
            &[("query", "{app=\"web\"}")],
            &h,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        round += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(post(&format!("{}/flush", all.url), &[], b"").status, 204);

    // docs/metrics.md names every metric the processes serve
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"))
            .unwrap();
    let mut undocumented = std::collections::BTreeSet::new();
    for (job, s) in jobs {
        let text = get(&format!("{}/metrics", s.url), &[], &[]).body;
        for name in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()) {
            if !doc.contains(&format!("`{name}`")) {
                undocumented.insert(format!("{name} ({job})"));
            }
        }
    }
    assert!(undocumented.is_empty(), "not in docs/metrics.md: {undocumented:?}");
    let Some(prom) = prom else {
        not_run(TEST, "no `prometheus` (Debian package `prometheus`; scripts/test.sh installs it)");
        return;
    };

    // beyond "has data": what the load must have made the metrics say (each a filter that
    // returns nothing when it does not hold)
    // the distributor's pushes, by the address of the ingester it sent them to
    let appends = format!(
        "sum(loki_distributor_ingester_appends_total{{job=\"skald/distributor\", ingester=\"127.0.0.1:{}\"}}) > 0",
        all.grpc_port
    );
    let mut facts: Vec<(String, String, String)> = [
        "sum(loki_request_duration_seconds_count{job=\"skald/all\", route=\"/logproto.Pusher/Push\", method=\"gRPC\", status_code=\"success\"}) > 0",
        "sum(loki_request_duration_seconds_count{job=\"skald/all\", route=\"/logproto.Querier/Query\", status_code=\"success\"}) > 0",
        "sum(loki_request_duration_seconds_count{job=\"skald/all\", route=\"/logproto.Querier/GetStats\"}) > 0",
        "sum(loki_request_duration_seconds_count{job=\"skald/all\", route=\"loki_api_v1_label_name_values\", method=\"GET\", status_code=\"200\", ws=\"false\"}) > 0",
        "sum(loki_request_duration_seconds_count{job=\"skald/all\", route=\"loki_api_v1_query_range\", status_code=\"400\"}) > 0",
        "sum(loki_request_duration_seconds_count{job=\"skald/distributor\", route=\"loki_api_v1_push\", status_code=\"204\"}) > 0",
        "sum(loki_discarded_samples_total{job=\"skald/distributor\", reason=\"line_too_long\", tenant=\"tenant-b\"}) == 1",
        // a gauge: held during the load, flushed and forgotten since
        "max_over_time(sum(loki_ingester_memory_streams{tenant=\"tenant-b\"})[1m:1s]) > 0",
        "sum(loki_ingester_streams_created_total{tenant=\"tenant-a\"}) >= 4",
        "sum(loki_ingester_client_request_duration_seconds_count{job=\"skald/distributor\", operation=\"/logproto.Pusher/Push\", status_code=\"2xx\"}) > 0",
        "sum(loki_ingester_client_request_duration_seconds_count{job=\"skald/querier\", operation=\"/logproto.Querier/Query\", status_code=\"2xx\"}) > 0",
        "sum(loki_ingester_chunks_flushed_total{reason=\"forced\"}) > 0",
        "sum(loki_ingester_chunk_entries_count) > 0",
        "sum(skald_compactor_deleted_chunks_total) >= 1",
        "sum(loki_compactor_deleted_lines{user=\"tenant-a\"}) == 2",
        "count(loki_build_info{version!=\"\"}) == 3",
        "min(process_resident_memory_bytes) > 1e6",
        // the index, timed under Loki's operations: flushes write, queries read
        "sum(loki_index_request_duration_seconds_count{job=\"skald/all\", operation=\"index_chunk\", status_code=\"200\"}) > 0",
        "sum(loki_index_request_duration_seconds_count{job=\"skald/querier\", operation=\"chunk_refs\", status_code=\"200\"}) > 0",
        "sum(loki_index_request_duration_seconds_count{job=\"skald/all\", operation=\"chunk_refs\", status_code=\"200\"}) > 0",
        "sum(loki_chunk_store_index_entries_per_chunk_count{job=\"skald/all\"}) > 0",
        "sum(loki_distributor_ingester_append_failures_total{job=\"skald/distributor\"}) == 0 or absent(loki_distributor_ingester_append_failures_total{job=\"skald/distributor\"})",
        "sum(loki_chunk_store_deduped_chunks_total{job=\"skald/all\"}) == 0",
    ]
    .iter()
    .map(|e| ("(load)".to_string(), "fact".to_string(), e.to_string()))
    .collect();
    facts.push(("(load)".to_string(), "fact".to_string(), appends));
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut pending: Vec<&(String, String, String)> = exprs.iter().chain(&facts).collect();
    let mut last_errors: Vec<String> = Vec::new();
    while !pending.is_empty() && Instant::now() < deadline {
        last_errors.clear();
        pending.retain(|(dash, title, expr)| match prom.query(&substitute(expr)) {
            Ok(_) => false,
            Err(why) => {
                last_errors.push(format!("{dash} / {title}: {why}\n    {expr}"));
                true
            }
        });
        if !pending.is_empty() {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    println!(
        "{} panel expressions of 4 dashboards and {} facts evaluated in Prometheus; {} without data; {:.1}s",
        exprs.len(),
        facts.len(),
        pending.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(
        pending.is_empty(),
        "{} of {} expressions returned no data:\n{}\nskald all log:\n{}",
        pending.len(),
        exprs.len() + facts.len(),
        last_errors.join("\n"),
        all.log()
    );
}
