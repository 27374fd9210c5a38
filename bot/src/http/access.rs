//! One log line per HTTP request (method, route, status, latency, request id) and the HTTP
//! metrics. Only the matched route pattern is logged, never the path's values, the query, the
//! headers or the body: tokens and signatures travel in those. A caller's `X-Request-Id` is
//! kept (when it is short and plain), else one is made; it is returned on the response so that
//! a person can quote it.

use crate::metrics::Metrics;
use axum::{
    extract::{MatchedPath, Request, State},
    http::HeaderValue,
    middleware::Next,
    response::Response,
};
use std::{sync::Arc, time::Instant};

const REQUEST_ID: &str = "x-request-id";

pub async fn log(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(String::from)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let mut resp = next.run(req).await;
    let took = started.elapsed();
    let status = resp.status().as_u16();
    metrics.http_request(&route, &method, status, took);
    // Probes and scrapes are frequent and say nothing: debug level.
    if matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics") {
        tracing::debug!(target: "elevate::http", %method, %route, status, ms = took.as_millis() as u64, request_id = %id, "request");
    } else {
        tracing::info!(target: "elevate::http", %method, %route, status, ms = took.as_millis() as u64, request_id = %id, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
