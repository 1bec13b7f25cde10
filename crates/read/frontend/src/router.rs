//! [`RouterHandler`]: a querier's axum router (with the server's tenant layer on it) as the
//! [`Handler`] its workers run requests with.

use axum::body::Body;
use axum::http::{self, HeaderName, HeaderValue};
use axum::Router;
use futures::future::BoxFuture;
use futures::FutureExt;
use tower::ServiceExt;

use crate::transport::{Handler, HttpRequest, HttpResponse};

/// Runs each request through an axum [`Router`] and collects its answer. Dropping the future
/// drops the router's handler, which cancels the query.
#[derive(Clone)]
pub struct RouterHandler {
    router: Router,
}

impl RouterHandler {
    /// The handler over `router` (already carrying the layers a querier's HTTP edge has).
    pub fn new(router: Router) -> Self {
        RouterHandler { router }
    }
}

impl Handler for RouterHandler {
    fn handle(&self, req: HttpRequest) -> BoxFuture<'static, HttpResponse> {
        let router = self.router.clone();
        async move {
            let request = match to_http(req) {
                Ok(request) => request,
                Err(error) => return plain(400, error),
            };
            let response = match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(body) => body,
                Err(error) => return plain(500, format!("reading the answer: {error}")),
            };
            HttpResponse {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
                    })
                    .collect(),
                body,
            }
        }
        .boxed()
    }
}

fn to_http(req: HttpRequest) -> Result<http::Request<Body>, String> {
    let method = http::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| format!("invalid method `{}`", req.method))?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(&req.uri)
        .body(Body::from(req.body))
        .map_err(|error| format!("invalid request `{}`: {error}", req.uri))?;
    let headers = request.headers_mut();
    for (name, value) in req.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name `{name}`"))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("invalid value of header `{name}`"))?;
        headers.append(name, value);
    }
    Ok(request)
}

fn plain(status: u16, body: String) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::Query;
    use axum::routing::get;

    use super::*;

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn requests_go_through_the_router_and_dropping_stops_the_handler() {
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let router = Router::new()
            .route(
                "/echo",
                get(
                    |Query(q): Query<Vec<(String, String)>>, headers: http::HeaderMap| async move {
                        let org = headers.get("x-scope-orgid").and_then(|v| v.to_str().ok());
                        (
                            [("X-Seen", org.unwrap_or("none").to_string())],
                            format!("{}={}", q[0].0, q[0].1),
                        )
                    },
                ),
            )
            .route(
                "/hang",
                get(move || {
                    let guard = SetOnDrop(flag.clone());
                    async move {
                        let _guard = guard;
                        futures::future::pending::<()>().await;
                    }
                }),
            );
        let handler = RouterHandler::new(router);
        let answer = handler
            .handle(HttpRequest {
                method: "GET".into(),
                uri: "/echo?query=%7Bjob%3D%22a%22%7D".into(),
                headers: vec![("X-Scope-OrgID".into(), "t1".into())],
                body: Default::default(),
            })
            .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "query={job=\"a\"}");
        assert_eq!(answer.header("x-seen"), Some("t1"));

        let missing = handler.handle(HttpRequest {
            method: "GET".into(),
            uri: "/nope".into(),
            ..Default::default()
        });
        assert_eq!(missing.await.status, 404);
        let bad = handler.handle(HttpRequest {
            method: "GET".into(),
            uri: "/echo".into(),
            headers: vec![("bad header".into(), "x".into())],
            ..Default::default()
        });
        assert_eq!(bad.await.status, 400);

        let hanging = handler.handle(HttpRequest {
            method: "GET".into(),
            uri: "/hang".into(),
            ..Default::default()
        });
        assert!(tokio::time::timeout(Duration::from_millis(50), hanging).await.is_err());
        assert!(dropped.load(Ordering::SeqCst), "dropping the future dropped the route's handler");
    }
}
