//! Body limits, enforced before any other work: a request larger than its endpoint allows is
//! answered 413 with a JSON body before signatures are checked or anything is parsed, so a
//! flood of large bodies costs elevate no more than reading the allowed prefix. The declared
//! `Content-Length` is refused at once; a body sent without one (chunked) is read only up to
//! the limit.

use axum::{
    Json, Router,
    body::Body,
    extract::Request,
    http::{StatusCode, header::CONTENT_LENGTH},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;

/// Chat platforms' endpoints: their payloads are a few kilobytes.
pub const CHAT_BODY_MAX: usize = 64 * 1024;
/// The REST API.
pub const API_BODY_MAX: usize = 1024 * 1024;

/// `router` with every request body limited to `max` bytes.
pub fn limited(router: Router, max: usize) -> Router {
    router.layer(middleware::from_fn(move |req: Request, next: Next| limit(req, next, max)))
}

fn too_large(max: usize) -> Response {
    let message = format!("The request body is larger than the {} KB this endpoint accepts.", max / 1024);
    (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({ "error": { "code": "payload_too_large", "message": message } })))
        .into_response()
}

async fn limit(req: Request, next: Next, max: usize) -> Response {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(max);
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(max),
        Err(_) => {
            let body = json!({ "error": { "code": "bad_request", "message": "The request body could not be read." } });
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}
