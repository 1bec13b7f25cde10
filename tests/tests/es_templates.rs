//! The Elasticsearch objects (index templates, ILM policies, ...) over real HTTP against a real
//! `skald`: they need a tenant with `auth_enabled`, each tenant sees only its own, a body over
//! `max_template_bytes` is 413, a tenant keeps at most `max_templates_per_tenant`, and they are
//! still there after a restart on the same data directory.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};
use skald_integration_tests::{gzip, temp_dir, Resp, Skald};

const CONFIG: &str = "auth_enabled: true
distributor:
  elasticsearch:
    max_templates_per_tenant: 3
";

/// One request; `tenant` becomes `X-Scope-OrgID`.
fn call(method: &str, url: &str, tenant: Option<&str>, body: &[u8], gzipped: bool) -> Resp {
    let mut req = ureq::request(method, url)
        .timeout(Duration::from_secs(30))
        .set("Content-Type", "application/json");
    if let Some(t) = tenant {
        req = req.set("X-Scope-OrgID", t);
    }
    if gzipped {
        req = req.set("Content-Encoding", "gzip");
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url} failed: {e}"),
    };
    let status = resp.status();
    let content_type = resp.header("Content-Type").unwrap_or("").to_string();
    let mut text = String::new();
    resp.into_reader().read_to_string(&mut text).unwrap();
    Resp { status, content_type, body: text }
}

fn es_error_type(r: &Resp) -> String {
    let v: Value = r.json();
    assert_eq!(v["status"], r.status, "{}", r.body);
    v["error"]["type"].as_str().unwrap_or_default().to_string()
}

#[test]
fn templates_are_per_tenant_capped_and_survive_a_restart() {
    let dir = temp_dir("es-templates");
    let mut skald = Skald::start(&dir, CONFIG);
    let url = |path: &str| format!("{}{path}", skald.url);
    let template = json!({"index_patterns": ["filebeat-8.19.0"], "data_stream": {},
        "template": {"settings": {"index": {"number_of_shards": 1}}}});
    let body = template.to_string();
    let t = "/_index_template/filebeat-8.19.0";

    // the handshake needs no tenant; the objects do
    assert_eq!(call("GET", &url("/"), None, b"", false).status, 200);
    assert_eq!(call("PUT", &url(t), None, body.as_bytes(), false).status, 401);
    assert_eq!(call("GET", &url(t), None, b"", false).status, 401);
    assert_eq!(call("DELETE", &url(t), None, b"", false).status, 401);

    // tenant a's template is invisible to tenant b
    let r = call("PUT", &url(t), Some("a"), body.as_bytes(), false);
    assert_eq!((r.status, r.json()), (200, json!({"acknowledged": true})));
    let r = call("GET", &url(t), Some("a"), b"", false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"index_templates": [{"name": "filebeat-8.19.0", "index_template": template}]})
    );
    assert_eq!(call("HEAD", &url(t), Some("a"), b"", false).status, 200);
    let r = call("GET", &url(t), Some("b"), b"", false);
    assert_eq!((r.status, es_error_type(&r).as_str()), (404, "resource_not_found_exception"));
    assert_eq!(call("HEAD", &url(t), Some("b"), b"", false).status, 404);
    assert_eq!(call("DELETE", &url(t), Some("b"), b"", false).status, 404);

    // over max_template_bytes (1 MiB): 413, as sent or once decompressed
    let big = json!({"_meta": {"pad": "x".repeat((1 << 20) + 10)}}).to_string();
    let r = call("PUT", &url("/_component_template/big"), Some("a"), big.as_bytes(), false);
    assert_eq!((r.status, es_error_type(&r).as_str()), (413, "content_too_long_exception"));
    let r = call("PUT", &url("/_component_template/big"), Some("a"), &gzip(big.as_bytes()), true);
    assert_eq!((r.status, es_error_type(&r).as_str()), (413, "content_too_long_exception"));
    assert!(r.body.contains("max_template_bytes"), "{}", r.body);
    assert_eq!(call("GET", &url("/_component_template/big"), Some("a"), b"", false).status, 404);

    // at most 3 objects per tenant, of all kinds; replacing one is fine; other tenants unaffected
    let policy = br#"{"policy":{"phases":{"hot":{"actions":{}}}}}"#;
    assert_eq!(call("PUT", &url("/_ilm/policy/filebeat"), Some("a"), policy, false).status, 200);
    assert_eq!(call("PUT", &url("/_template/legacy"), Some("a"), b"{}", false).status, 200);
    let r = call("PUT", &url("/_ingest/pipeline/fourth"), Some("a"), b"{}", false);
    assert_eq!((r.status, es_error_type(&r).as_str()), (400, "illegal_argument_exception"));
    assert!(r.body.contains("max_templates_per_tenant"), "{}", r.body);
    assert_eq!(call("PUT", &url("/_template/legacy"), Some("a"), b"{\"v\":2}", false).status, 200);
    assert_eq!(call("PUT", &url("/_ingest/pipeline/fourth"), Some("b"), b"{}", false).status, 200);

    // a restart on the same data directory keeps them, in the object store under the tenant
    skald.restart();
    let url = |path: &str| format!("{}{path}", skald.url);
    let r = call("GET", &url(t), Some("a"), b"", false);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["index_templates"][0]["index_template"], template);
    let r = call("GET", &url("/_template/legacy"), Some("a"), b"", false);
    assert_eq!(r.json(), json!({"legacy": {"v": 2}}));
    assert_eq!(call("GET", &url(t), Some("b"), b"", false).status, 404);
    assert!(dir.join("data/chunks/a/es-templates/index_template/filebeat-8.19.0.json").is_file());

    // a delete frees a place
    assert_eq!(call("DELETE", &url(t), Some("a"), b"", false).status, 200);
    assert_eq!(call("GET", &url(t), Some("a"), b"", false).status, 404);
    assert_eq!(call("PUT", &url("/_ingest/pipeline/fourth"), Some("a"), b"{}", false).status, 200);
}
