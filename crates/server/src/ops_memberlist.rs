//! `/memberlist`: the gossip members this process knows of (the `memberlist` block), as
//! Loki's page shows them: an HTML table by default (`Name`, `Address`, `State`), or with
//! `Accept: application/json` a JSON object in the shape of Loki's (`Now`, `Memberlist`,
//! `SortedMembers` with `Name`, `Addr`, `Port`, `Meta` and `State`; memberlist's states: 0
//! alive, 2 dead). Loki's page also lists its KV store and message history, which Skald's
//! gossip (chitchat, one key per member) does not have. A process that does not gossip says
//! so in Loki's words.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::http::HttpState;

/// memberlist's `StateAlive` and `StateDead`.
const ALIVE: u8 = 0;
const DEAD: u8 = 2;

/// `/memberlist`.
pub async fn page(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    let Some(m) = &state.membership else {
        let mut r = (StatusCode::OK, "This instance doesn't use memberlist.\n").into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return r;
    };
    let members = m.members().await;
    let now = skald_gocompat::time::rfc3339_nano(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    );
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let sorted: Vec<serde_json::Value> = members
            .iter()
            .map(|m| {
                serde_json::json!({
                    "Name": m.name,
                    "Addr": m.addr.ip().to_string(),
                    "Port": m.addr.port(),
                    "Meta": null,
                    "State": if m.live { ALIVE } else { DEAD },
                })
            })
            .collect();
        let body = serde_json::json!({ "Now": now, "Memberlist": {}, "SortedMembers": sorted });
        let mut r = (StatusCode::OK, body.to_string()).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    }
    let mut rows = String::new();
    for m in &members {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            crate::http::html_escape(&m.name),
            m.addr,
            if m.live { ALIVE } else { DEAD }
        ));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Memberlist Status</title></head><body>\n<h1>Memberlist Status</h1>\n<p>Current time: {now}</p>\n<h2>Memberlist Cluster Members</h2>\n<table border=\"1\">\n<thead><tr><th>Name</th><th>Address</th><th>State</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n<p>State: 0 alive, 2 dead.</p>\n</body></html>\n"
    );
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}
