//! What every route shares. Reading a request (`LokiRequest`: tenant, parameters, headers)
//! and Loki's JSON replies are `skald_loghttp::reply`'s, re-used here; this file adds the
//! replies of a domain result: JSON, or a plain-text error with the status of its
//! [`QuerierError`].

use axum::response::Response;
use serde_json::Value;
use skald_loghttp::reply::{json_body_response, JSON_UPPER};

use crate::error::QuerierError;

pub(crate) use skald_loghttp::reply::{categorize, collect_params, json_response, LokiRequest};

/// Writes a plain-text error the way Loki's `WriteError` does.
pub fn error_response(err: &QuerierError) -> Response {
    skald_loghttp::reply::error_response(err.status_code(), &err.to_string())
}

pub(crate) fn reply(r: Result<Value, QuerierError>) -> Response {
    match r {
        Ok(v) => json_response(&v, JSON_UPPER),
        Err(e) => error_response(&e),
    }
}

/// A JSON body written already (a query answer, marshalled on the query's blocking thread).
pub(crate) fn reply_body(r: Result<Vec<u8>, QuerierError>) -> Response {
    match r {
        Ok(body) => json_body_response(body),
        Err(e) => error_response(&e),
    }
}
