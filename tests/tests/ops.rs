//! Operations endpoints and query aliases over real HTTP: `/config` (`?mode=diff|defaults`),
//! `/services`, `/log_level`, `/memberlist`, `/loki/api/v1/status/buildinfo`, the legacy
//! `/api/prom/query`, and cross-tenant queries (`X-Scope-OrgID: a|b` with `__tenant_id__`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};
use skald_integration_tests::{get, now_ns, post, temp_dir, Skald};

fn push(url: &str, tenant: &str, job: &str, lines: &[(i64, &str)]) -> u16 {
    let values: Vec<Value> = lines.iter().map(|(ts, l)| json!([ts.to_string(), l])).collect();
    let body = json!({"streams": [{"stream": {"job": job}, "values": values}]});
    post(
        &format!("{url}/loki/api/v1/push"),
        &[("Content-Type", "application/json"), ("X-Scope-OrgID", tenant)],
        body.to_string().as_bytes(),
    )
    .status
}

#[test]
fn config_services_and_log_level() {
    let dir = temp_dir("ops");
    let skald = Skald::start(&dir, "auth_enabled: true\nlimits_config:\n  max_query_series: 777\n");
    let r = get(&format!("{}/config", skald.url), &[], &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let actual: serde_yaml_like::Doc = serde_yaml_like::parse(&r.body);
    assert!(actual.has("auth_enabled: true"), "{}", r.body);
    assert!(actual.has("max_query_series: 777"));
    let d = get(&format!("{}/config", skald.url), &[("mode", "diff")], &[]);
    assert_eq!(d.status, 200);
    // Loki's name is `diff`; `diffs` is kept
    assert_eq!(get(&format!("{}/config", skald.url), &[("mode", "diffs")], &[]).body, d.body);
    assert!(d.body.contains("auth_enabled: true"), "{}", d.body);
    assert!(d.body.contains("max_query_series: 777"));
    // only what differs from the defaults
    assert!(!d.body.contains("max_entries_limit_per_query"), "{}", d.body);
    let def = get(&format!("{}/config", skald.url), &[("mode", "defaults")], &[]);
    assert!(def.body.contains("auth_enabled: false"));
    assert!(def.body.contains("max_query_series: 500"));
    assert_eq!(get(&format!("{}/config", skald.url), &[("mode", "nope")], &[]).status, 400);

    let s = get(&format!("{}/services", skald.url), &[], &[]);
    assert_eq!(s.status, 200);
    for name in ["ingester", "distributor", "querier"] {
        assert!(s.body.contains(&format!("{name} => Running")), "{}", s.body);
    }

    let url = format!("{}/log_level", skald.url);
    let g = get(&url, &[], &[]);
    assert_eq!(g.status, 200);
    assert_eq!(g.json()["message"], "Current log level is info");
    let p = post(&format!("{url}?log_level=debug"), &[], b"");
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.json()["message"], "Log level set to debug");
    assert_eq!(get(&url, &[], &[]).json()["message"], "Current log level is debug");
    let form =
        post(&url, &[("Content-Type", "application/x-www-form-urlencoded")], b"log_level=warn");
    assert_eq!(form.status, 200);
    let bad = post(&format!("{url}?log_level=loud"), &[], b"");
    assert_eq!(bad.status, 400);
    // Loki's answers, word for word
    assert_eq!(
        bad.json(),
        json!({"status": "failed", "message": "unrecognized log level \"loud\""})
    );
    assert_eq!(g.content_type, "application/json; charset=utf-8");
    assert_eq!(g.json(), json!({"message": "Current log level is info"}));
}

#[test]
fn buildinfo_and_memberlist() {
    let dir = temp_dir("ops-memberlist");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gossip = udp.local_addr().unwrap().port();
    drop(udp);
    let skald = Skald::start(
        &dir,
        &format!(
            "memberlist:\n  node_name: skald-a\n  bind_addr: [127.0.0.1]\n  bind_port: {gossip}\n"
        ),
    );
    let b = get(&format!("{}/loki/api/v1/status/buildinfo", skald.url), &[], &[]);
    assert_eq!((b.status, b.content_type.as_str()), (200, "application/json"));
    let v = b.json();
    for key in ["version", "revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(v[key].is_string(), "{key}: {v}");
    }
    assert!(!v["version"].as_str().unwrap().is_empty());

    let url = format!("{}/memberlist", skald.url);
    let html = get(&url, &[], &[]);
    assert_eq!(html.status, 200);
    assert!(html.content_type.starts_with("text/html"), "{}", html.content_type);
    assert!(html.body.contains("<td>skald-a</td>"), "{}", html.body);
    assert!(html.body.contains(&format!("<td>127.0.0.1:{gossip}</td><td>0</td>")), "{}", html.body);
    let j = get(&url, &[], &[("Accept", "application/json")]);
    assert_eq!(j.content_type, "application/json");
    let v = j.json();
    assert_eq!(
        v["SortedMembers"],
        json!([{"Name": "skald-a", "Addr": "127.0.0.1", "Port": gossip, "Meta": null, "State": 0}]),
        "{v}"
    );
    assert!(v["Now"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["SentMessages"], json!(null));

    // the KV store: the gossiped ring under Loki's key, with Loki's codec name
    let (mut version, mut store) = (0, json!(null));
    for _ in 0..100 {
        store = get(&url, &[], &[("Accept", "application/json")]).json()["Store"].clone();
        version = store["collectors/ring"]["Version"].as_u64().unwrap_or(0);
        if version > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(version > 0, "{store}");
    assert_eq!(store["collectors/ring"]["CodecID"], "ringDesc", "{store}");
    assert_eq!(store["collectors/ring"]["Deleted"], false, "{store}");
    let html = get(&url, &[], &[]);
    assert!(html.body.contains("<td>collectors/ring</td><td>ringDesc</td>"), "{}", html.body);
    assert!(html.body.contains("Message history buffer is disabled"), "{}", html.body);
    let ring = get(&url, &[("viewKey", "collectors/ring"), ("format", "json")], &[]);
    assert_eq!(ring.status, 200, "{}", ring.body);
    let ring = ring.json();
    let ingesters = ring["ingesters"].as_object().expect("ingesters");
    assert_eq!(ingesters.len(), 1, "{ring}");
    let (_, me) = ingesters.iter().next().unwrap();
    assert_eq!(me["state"], 0, "ACTIVE: {ring}");
    assert!(me["tokens"].as_array().is_some_and(|t| !t.is_empty()), "{ring}");
    assert!(me["timestamp"].as_i64().is_some_and(|t| t > 1_700_000_000), "{ring}");
    let dl = get(&url, &[("downloadKey", "collectors/ring")], &[]);
    assert_eq!((dl.status, dl.content_type.as_str()), (200, "application/octet-stream"));
    assert_eq!(dl.json()["ingesters"], ring["ingesters"]);
    assert_eq!(get(&url, &[("viewKey", "nope")], &[]).status, 404);
    assert_eq!(get(&url, &[("viewMsg", "1")], &[]).status, 404);
    assert_eq!(get(&url, &[("viewMsg", "x")], &[]).status, 400);

    // without gossip, Loki's words
    let plain_dir = temp_dir("ops-no-memberlist");
    let plain = Skald::start(&plain_dir, "");
    let r = get(&format!("{}/memberlist", plain.url), &[], &[]);
    assert_eq!((r.status, r.body.as_str()), (200, "This instance doesn't use memberlist.\n"));
}

#[test]
fn legacy_query_answers_in_the_legacy_shape() {
    let dir = temp_dir("ops-legacy");
    let skald = Skald::start(&dir, "auth_enabled: true\n");
    let t = now_ns() - 1_000_000_000;
    assert_eq!(push(&skald.url, "t1", "app", &[(t, "GET /a 200"), (t + 1, "GET /b 500")]), 204);
    let hdr = [("X-Scope-OrgID", "t1")];
    let url = format!("{}/api/prom/query", skald.url);
    let r = get(&url, &[("query", r#"{job="app"}"#), ("regexp", "5.0")], &hdr);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        v["streams"][0]["labels"],
        json!(r#"{detected_level="unknown", job="app", service_name="app"}"#),
        "{v}"
    );
    assert_eq!(v["streams"][0]["entries"].as_array().unwrap().len(), 1);
    assert_eq!(v["streams"][0]["entries"][0]["line"], "GET /b 500");
    assert!(v["streams"][0]["entries"][0]["ts"].as_str().unwrap().ends_with('Z'));
    let m = get(&url, &[("query", r#"count_over_time({job="app"}[1m])"#)], &hdr);
    assert_eq!(m.status, 400);
}

#[test]
fn cross_tenant_queries_label_every_stream_with_its_tenant() {
    let dir = temp_dir("ops-multi");
    let skald =
        Skald::start(&dir, "auth_enabled: true\nquerier:\n  multi_tenant_queries_enabled: true\n");
    let t = now_ns() - 2_000_000_000;
    assert_eq!(push(&skald.url, "team-a", "app", &[(t, "a one"), (t + 1, "a two")]), 204);
    assert_eq!(push(&skald.url, "team-b", "app", &[(t + 2, "b one")]), 204);
    // a push acts for one tenant only
    assert_eq!(push(&skald.url, "team-a|team-b", "app", &[(t, "x")]), 400);

    let both = [("X-Scope-OrgID", "team-a|team-b")];
    let range = |q: &str| {
        let r = get(
            &format!("{}/loki/api/v1/query_range", skald.url),
            &[
                ("query", q),
                ("start", &(t - 1_000_000_000).to_string()),
                ("end", &(t + 1_000_000_000).to_string()),
                ("step", "1"),
            ],
            &both,
        );
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.json()
    };
    let v = range(r#"{job="app"}"#);
    let mut by_tenant: Vec<(String, usize)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stream"]["__tenant_id__"].as_str().unwrap().to_string(),
                s["values"].as_array().unwrap().len(),
            )
        })
        .collect();
    by_tenant.sort();
    assert_eq!(by_tenant, vec![("team-a".to_string(), 2), ("team-b".to_string(), 1)]);
    // a __tenant_id__ matcher picks tenants
    let v = range(r#"{job="app", __tenant_id__="team-b"}"#);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"]["result"][0]["values"][0][1], "b one");
    // metric queries aggregate over the tenants
    let v = range(r#"sum(count_over_time({job="app"}[5s]))"#);
    let max = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(max, 3.0, "{v}");
    let v = range(r#"sum by (__tenant_id__) (count_over_time({job="app"}[5s]))"#);
    assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);

    let labels = get(&format!("{}/loki/api/v1/labels", skald.url), &[], &both).json();
    assert!(labels["data"].as_array().unwrap().contains(&json!("__tenant_id__")), "{labels}");
    let values =
        get(&format!("{}/loki/api/v1/label/__tenant_id__/values", skald.url), &[], &both).json();
    assert_eq!(values["data"], json!(["team-a", "team-b"]));
    let series =
        get(&format!("{}/loki/api/v1/series", skald.url), &[("match[]", r#"{job="app"}"#)], &both)
            .json();
    assert_eq!(series["data"].as_array().unwrap().len(), 2);

    // one tenant alone sees only its own data, without the label
    let one = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[
            ("query", r#"{job="app"}"#),
            ("start", &(t - 1_000_000_000).to_string()),
            ("end", &(t + 1_000_000_000).to_string()),
        ],
        &[("X-Scope-OrgID", "team-b")],
    )
    .json();
    assert_eq!(one["data"]["result"].as_array().unwrap().len(), 1);
    assert!(one["data"]["result"][0]["stream"].get("__tenant_id__").is_none());
}

#[test]
fn cross_tenant_queries_are_refused_unless_enabled() {
    let dir = temp_dir("ops-multi-off");
    let skald = Skald::start(&dir, "auth_enabled: true\n");
    let r = get(
        &format!("{}/loki/api/v1/query_range", skald.url),
        &[("query", r#"{job="app"}"#)],
        &[("X-Scope-OrgID", "a|b")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("multi_tenant_queries_enabled"), "{}", r.body);
}

/// Just enough YAML reading for these assertions: a line-wise search.
mod serde_yaml_like {
    pub struct Doc(String);

    impl Doc {
        pub fn has(&self, line: &str) -> bool {
            self.0.lines().any(|l| l.trim() == line)
        }
    }

    pub fn parse(text: &str) -> Doc {
        Doc(text.to_string())
    }
}
