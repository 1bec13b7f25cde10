//! The ingester's HTTP edge: Loki's `/ingester/shutdown` and `/ingester/prepare_shutdown`.
//!
//! The server mounts [`admin_routes`] without the tenant layer. Stopping the process is the
//! server's job: a shutdown with `terminate=true` notifies the `terminate` it was given, which
//! the server treats as SIGTERM.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use skald_gocompat::strconv::{parse_bool, NumError};
use tokio::sync::Notify;

use crate::Ingester;

/// What the handlers need: the ingester of this process (none when it runs no ingester) and
/// the server's stop signal.
#[derive(Clone)]
struct AdminState {
    ingester: Option<Ingester>,
    terminate: Arc<Notify>,
}

/// `/ingester/shutdown` (GET, POST) and `/ingester/prepare_shutdown` (GET, POST, DELETE). With
/// no ingester in the process both answer 404 `no ingester runs in this process`.
pub fn admin_routes(ingester: Option<Ingester>, terminate: Arc<Notify>) -> Router {
    Router::new()
        .route("/ingester/shutdown", get(shutdown).post(shutdown))
        .route(
            "/ingester/prepare_shutdown",
            get(prepare_shutdown).post(prepare_shutdown).delete(prepare_shutdown),
        )
        .with_state(AdminState { ingester, terminate })
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Go's `strconv.ParseBool`, with a default for a missing value.
fn go_bool(v: Option<&String>, default: bool) -> Result<bool, NumError> {
    match v {
        None => Ok(default),
        Some(v) => parse_bool(v),
    }
}

/// Loki's `/ingester/shutdown`: flush (default) and stop the process (default), answering
/// 204 once the flush is done. `delete_ring_tokens` is parsed (400 on a bad value) but not
/// acted on: the tokens file is kept.
async fn shutdown(
    State(state): State<AdminState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(ing) = &state.ingester else {
        return text(StatusCode::NOT_FOUND, "no ingester runs in this process");
    };
    let (flush, terminate) =
        match (go_bool(params.get("flush"), true), go_bool(params.get("terminate"), true)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
    if let Err(e) = go_bool(params.get("delete_ring_tokens"), false) {
        return text(StatusCode::BAD_REQUEST, e.to_string());
    }
    ing.set_flush_on_shutdown(flush);
    if flush {
        if let Err(e) = ing.flush(true).await {
            return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    }
    if terminate {
        tracing::info!(flush, "shutdown requested over HTTP");
        state.terminate.notify_one();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Loki's `/ingester/prepare_shutdown`: GET tells whether the next shutdown flushes ("set")
/// or not ("unset"), POST makes it flush, DELETE undoes that.
async fn prepare_shutdown(method: Method, State(state): State<AdminState>) -> Response {
    let Some(ing) = &state.ingester else {
        return text(StatusCode::NOT_FOUND, "no ingester runs in this process");
    };
    match method {
        Method::GET => text(StatusCode::OK, if ing.flush_on_shutdown() { "set" } else { "unset" }),
        Method::DELETE => {
            ing.set_flush_on_shutdown(false);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => {
            ing.set_flush_on_shutdown(true);
            StatusCode::NO_CONTENT.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::testing::ingester;
    use crate::IngesterConfig;

    async fn call(router: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let req = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn prepare_shutdown_sets_and_unsets_the_flush() {
        let ing = ingester(IngesterConfig::default());
        let r = admin_routes(Some(ing.clone()), Arc::new(Notify::new()));
        ing.set_flush_on_shutdown(false);
        assert_eq!(
            call(&r, "GET", "/ingester/prepare_shutdown").await,
            (StatusCode::OK, "unset".into())
        );
        assert_eq!(call(&r, "POST", "/ingester/prepare_shutdown").await.0, StatusCode::NO_CONTENT);
        assert!(ing.flush_on_shutdown());
        assert_eq!(
            call(&r, "GET", "/ingester/prepare_shutdown").await,
            (StatusCode::OK, "set".into())
        );
        assert_eq!(
            call(&r, "DELETE", "/ingester/prepare_shutdown").await.0,
            StatusCode::NO_CONTENT
        );
        assert!(!ing.flush_on_shutdown());
    }

    #[tokio::test]
    async fn shutdown_flushes_then_asks_the_server_to_stop() {
        let ing = ingester(IngesterConfig::default());
        let terminate = Arc::new(Notify::new());
        let r = admin_routes(Some(ing.clone()), terminate.clone());
        let (status, body) = call(&r, "POST", "/ingester/shutdown?flush=maybe").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, r#"strconv.ParseBool: parsing "maybe": invalid syntax"#);
        let (status, _) = call(&r, "POST", "/ingester/shutdown?delete_ring_tokens=2").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        assert_eq!(
            call(&r, "POST", "/ingester/shutdown?terminate=false").await.0,
            StatusCode::NO_CONTENT
        );
        assert!(ing.flush_on_shutdown());
        let notified = terminate.notified();
        assert_eq!(
            call(&r, "GET", "/ingester/shutdown?flush=false").await.0,
            StatusCode::NO_CONTENT
        );
        assert!(!ing.flush_on_shutdown());
        // the stop was requested (notify_one keeps a permit when nobody waits yet)
        tokio::time::timeout(std::time::Duration::from_secs(5), notified).await.unwrap();
    }

    #[tokio::test]
    async fn without_an_ingester_both_routes_are_404() {
        let r = admin_routes(None, Arc::new(Notify::new()));
        for (m, uri) in [("POST", "/ingester/shutdown"), ("GET", "/ingester/prepare_shutdown")] {
            assert_eq!(
                call(&r, m, uri).await,
                (StatusCode::NOT_FOUND, "no ingester runs in this process".to_string())
            );
        }
    }
}
