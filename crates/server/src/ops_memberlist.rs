//! `/memberlist`: this process's gossip (the `memberlist` block) as Loki's page shows it. An
//! HTML page by default: the KV store, the members (`Name`, `Address`, `State`) and the message
//! history; with `Accept: application/json` a JSON object in the shape of Loki's (`Now`,
//! `Memberlist`, `SortedMembers` with `Name`, `Addr`, `Port`, `Meta` and `State`, memberlist's
//! states 0 alive and 2 dead; `Store`; `SentMessages`, `ReceivedMessages`).
//!
//! Loki's KV store holds the ingester ring under `collectors/ring` (codec `ringDesc`). Skald's
//! gossip (chitchat) carries one ring entry per member instead; the page shows their merge
//! under Loki's key, its version being the sum of the entries' gossip versions (it grows with
//! every update received, as Loki's node-specific version does). `?viewKey=collectors/ring`
//! with `format=json` or `json-pretty` shows the ring in Loki's JSON shape (`ingesters` by id:
//! `addr`, `timestamp`, `state`, `tokens`, `zone`, `registered_timestamp`), `format=struct`
//! Skald's own form; `?downloadKey=` the JSON as an attachment. Skald's gossip keeps no message
//! history: the page says so in Loki's words for a disabled history buffer, `?viewMsg=` is a
//! 404 (400 when not a number) and `?deleteMessages=true` redirects as Loki's does. A process
//! that does not gossip says so in Loki's words.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use skald_ring::membership::RingStore;
use skald_ring::{InstanceState, RingDesc};

use crate::http::{html_escape, HttpState};

/// memberlist's `StateAlive` and `StateDead`.
const ALIVE: u8 = 0;
const DEAD: u8 = 2;
/// Loki's KV key and codec for the ingester ring.
const RING_KV_KEY: &str = "collectors/ring";
const RING_CODEC: &str = "ringDesc";

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The ring in the JSON shape of Loki's ring `Desc` (dskit's `ring.proto`: states ACTIVE 0,
/// LEAVING 1, PENDING 2, JOINING 3; timestamps in Unix seconds).
fn loki_ring_json(desc: &RingDesc) -> Value {
    let ingesters: serde_json::Map<String, Value> = desc
        .instances
        .values()
        .map(|d| {
            let state = match d.state {
                InstanceState::Active => 0,
                InstanceState::Leaving => 1,
                InstanceState::Pending => 2,
                InstanceState::Joining => 3,
            };
            let entry = json!({
                "addr": d.addr,
                "timestamp": d.heartbeat_ms.div_euclid(1000),
                "state": state,
                "tokens": d.tokens,
                "zone": "",
                "registered_timestamp": 0,
            });
            (d.id.clone(), entry)
        })
        .collect();
    json!({ "ingesters": ingesters })
}

/// `?viewKey=`, `?downloadKey=`, `?viewMsg=`, `?deleteMessages=`: `None` for the page itself.
fn key_request(query: &str, store: Option<&RingStore>) -> Option<Response> {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let value = |key: &str| store.filter(|_| key == RING_KV_KEY);
    if let Some(key) = param("downloadKey") {
        let Some(s) = value(key) else {
            return Some(respond(StatusCode::NOT_FOUND, "text/plain", "value not found\n".into()));
        };
        let mut r = respond(
            StatusCode::OK,
            "application/octet-stream",
            loki_ring_json(&s.desc).to_string(),
        );
        let name = format!("attachment; filename={}-{key}", s.version);
        if let Ok(v) = HeaderValue::from_str(&name) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Some(r);
    }
    if let Some(key) = param("viewKey") {
        let Some(s) = value(key) else {
            return Some(respond(StatusCode::NOT_FOUND, "text/plain", "value not found\n".into()));
        };
        let body = match param("format").unwrap_or("") {
            "json" => format!("{}\n", loki_ring_json(&s.desc)),
            "json-pretty" => {
                let pretty = serde_json::to_string_pretty(&loki_ring_json(&s.desc));
                format!("{}\n", pretty.unwrap_or_default())
            }
            _ => format!("{:#?}\n", s.desc),
        };
        return Some(respond(StatusCode::OK, "text/plain", body));
    }
    if let Some(id) = param("viewMsg") {
        return Some(match id.parse::<i64>() {
            Ok(_) => respond(StatusCode::NOT_FOUND, "text/plain", "message not found\n".into()),
            Err(e) => respond(StatusCode::BAD_REQUEST, "text/plain", format!("{e}\n")),
        });
    }
    if param("deleteMessages") == Some("true") {
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("?deleteMessages=false"));
        return Some(r);
    }
    None
}

/// `/memberlist`.
pub async fn page(
    State(state): State<HttpState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(m) = &state.membership else {
        return respond(
            StatusCode::OK,
            "text/plain",
            "This instance doesn't use memberlist.\n".into(),
        );
    };
    let store = m.ring_store().await;
    if let Some(r) = key_request(query.as_deref().unwrap_or(""), store.as_ref()) {
        return r;
    }
    let members = m.members().await;
    let now = skald_gocompat::time::rfc3339_nano(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    );
    let updated =
        |s: &RingStore| skald_gocompat::time::rfc3339_nano(s.updated_ms.saturating_mul(1_000_000));
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let sorted: Vec<Value> = members
            .iter()
            .map(|m| {
                json!({
                    "Name": m.name,
                    "Addr": m.addr.ip().to_string(),
                    "Port": m.addr.port(),
                    "Meta": null,
                    "State": if m.live { ALIVE } else { DEAD },
                })
            })
            .collect();
        let mut kv = serde_json::Map::new();
        if let Some(s) = &store {
            kv.insert(
                RING_KV_KEY.into(),
                json!({"Version": s.version, "CodecID": RING_CODEC, "Deleted": false, "UpdateTime": updated(s)}),
            );
        }
        let body = json!({
            "Now": now, "Memberlist": {}, "SortedMembers": sorted, "Store": kv,
            "SentMessages": null, "ReceivedMessages": null,
        });
        return respond(StatusCode::OK, "application/json", body.to_string());
    }
    let mut kv_rows = String::new();
    if let Some(s) = &store {
        kv_rows = format!(
            "<tr><td>{k}</td><td>{RING_CODEC}</td><td>{}</td><td>false</td><td>{}</td><td><a href=\"?viewKey={k}&amp;format=json\">json</a> | <a href=\"?viewKey={k}&amp;format=json-pretty\">json-pretty</a> | <a href=\"?viewKey={k}&amp;format=struct\">struct</a> | <a href=\"?downloadKey={k}\">download</a></td></tr>\n",
            s.version,
            updated(s),
            k = RING_KV_KEY,
        );
    }
    let mut rows = String::new();
    for m in &members {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            html_escape(&m.name),
            m.addr,
            if m.live { ALIVE } else { DEAD }
        ));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Memberlist Status</title></head><body>\n<h1>Memberlist Status</h1>\n<p>Current time: {now}</p>\n<ul><li>Members: {count}</li></ul>\n<h2>KV Store</h2>\n<table width=\"100%\" border=\"1\">\n<thead><tr><th>Key</th><th>Codec</th><th>Version</th><th>Deleted</th><th>Update Time</th><th>Actions</th></tr></thead>\n<tbody>\n{kv_rows}</tbody></table>\n<p>The version is this member's own: the sum of the gossip versions of the members' ring entries, growing with every update it receives.</p>\n<h2>Memberlist Cluster Members</h2>\n<table width=\"100%\" border=\"1\">\n<thead><tr><th>Name</th><th>Address</th><th>State</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n<p>State: 0 = Alive, 2 = Dead</p>\n<h2>Message History</h2>\n<p><i>Message history buffer is disabled: Skald's gossip keeps no message history.</i></p>\n</body></html>\n",
        count = members.len(),
    );
    respond(StatusCode::OK, "text/html", body)
}
