//! Loki's delete API (`/loki/api/v1/delete`: `POST`/`PUT` create, `GET` lists, `DELETE`
//! cancels) and Skald's `POST /compactor/process_deletes` (one deletion pass for the tenant);
//! the logic is `skald_deletes::DeleteService`'s, which the compactor owns (and a querier
//! without a compactor in its process). Answers are Loki's: 204, JSON lists, plain-text errors
//! ending in a newline (Go's `http.Error`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::reply::LokiRequest;
use skald_deletes::{DeleteApiError, DeleteService, NewDelete};

fn error(e: DeleteApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, format!("{e}\n")).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) async fn create(State(d): State<Arc<DeleteService>>, r: LokiRequest) -> Response {
    let p = &r.params;
    let new = NewDelete {
        query: p.get("query"),
        start: p.get("start"),
        end: p.get("end"),
        max_interval: p.get("max_interval"),
    };
    match d.create(&r.tenant, new).await {
        Ok(id) => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            if let Ok(v) = HeaderValue::from_str(&id) {
                resp.headers_mut().insert("X-Delete-Request-Id", v);
            }
            resp
        }
        Err(e) => error(e),
    }
}

pub(super) async fn list(State(d): State<Arc<DeleteService>>, r: LokiRequest) -> Response {
    match d.list(&r.tenant).await {
        Ok(body) => json(body),
        Err(e) => error(e),
    }
}

pub(super) async fn cancel(State(d): State<Arc<DeleteService>>, r: LokiRequest) -> Response {
    let id = r.params.get("request_id").unwrap_or("");
    let force = r.params.get("force") == Some("true");
    match d.cancel(&r.tenant, id, force).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

pub(super) async fn process(State(d): State<Arc<DeleteService>>, r: LokiRequest) -> Response {
    match d.process(&r.tenant).await {
        Ok(report) => json(
            serde_json::json!({
                "parts_processed": report.parts_processed,
                "chunks_examined": report.chunks_examined,
                "chunks_rewritten": report.chunks_rewritten,
                "chunks_deleted": report.chunks_deleted,
                "lines_deleted": report.lines_deleted,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
            })
            .to_string(),
        ),
        Err(e) => error(e),
    }
}
