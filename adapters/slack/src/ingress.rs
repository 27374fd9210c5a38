//! The HTTP endpoints Slack calls. Each one first checks Slack's signature over the raw body
//! (HMAC-SHA256 with the signing secret, timestamp within five minutes, by slack-morphism's
//! verifier) and answers 401 with nothing done when it does not hold: the signature and
//! timestamp headers must each appear exactly once and the timestamp must be plain digits. The
//! bot limits bodies to 64 KB before any of this runs.

use crate::{Slack, commands::CommandForm};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use slack_morphism::prelude::SlackSigningSecret;
use slack_morphism::signature_verifier::SlackEventSignatureVerifier;

/// `/slack/commands`, `/slack/interactions`, `/slack/events`, to merge into the bot's router.
pub fn routes(slack: Slack) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .with_state(slack)
}

fn unauthorized(why: &str) -> Box<Response> {
    tracing::warn!(why, "refused a Slack payload");
    Box::new((StatusCode::UNAUTHORIZED, "invalid Slack signature").into_response())
}

/// The body as text, if Slack signed it with our secret within the last five minutes.
fn verified(slack: &Slack, headers: &HeaderMap, body: &Bytes) -> Result<String, Box<Response>> {
    let Some(secret) = slack.settings().signing_secret.as_deref() else {
        return Err(unauthorized("no signing secret configured (Socket Mode only)"));
    };
    let (Some(sig), Some(ts)) = (
        once(headers, SlackEventSignatureVerifier::SLACK_SIGNED_HASH_HEADER),
        once(headers, SlackEventSignatureVerifier::SLACK_SIGNED_TIMESTAMP),
    ) else {
        return Err(unauthorized("signature headers missing or repeated"));
    };
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(unauthorized("timestamp is not plain digits"));
    }
    let body = std::str::from_utf8(body).map_err(|_| unauthorized("body is not UTF-8"))?;
    SlackEventSignatureVerifier::new(&SlackSigningSecret::new(secret.to_string()))
        .verify(sig, body, ts)
        .map_err(|e| unauthorized(&e.to_string()))?;
    Ok(body.to_string())
}

/// A header that appears exactly once: a repeated signature or timestamp header could make the
/// verifier and a proxy in front of it disagree about which one was checked.
fn once<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    }
}

fn answer(v: Option<Value>) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => StatusCode::OK.into_response(),
    }
}

async fn commands(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&slack, &headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    match serde_urlencoded::from_str::<CommandForm>(&body) {
        Ok(form) => answer(slack.handle_command(form).await),
        Err(e) => (StatusCode::BAD_REQUEST, format!("not a slash command: {e}")).into_response(),
    }
}

async fn interactions(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&slack, &headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let payload = serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "payload"))
        .and_then(|(_, p)| serde_json::from_str::<Value>(&p).ok());
    match payload {
        Some(p) => answer(slack.handle_interaction(p).await),
        None => (StatusCode::BAD_REQUEST, "expected payload=<json>").into_response(),
    }
}

async fn events(State(slack): State<Slack>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match verified(&slack, &headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let Ok(event) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "expected JSON").into_response();
    };
    match event["type"].as_str() {
        Some("url_verification") => Json(json!({ "challenge": event["challenge"] })).into_response(),
        // Events are retried by Slack (`X-Slack-Retry-Num`); each `event_id` is acted on once.
        Some("event_callback") => {
            if slack.first_delivery(event["event_id"].as_str().unwrap_or("")).await {
                slack.handle_event(&event);
            }
            StatusCode::OK.into_response()
        }
        // Anything else is acknowledged so that Slack does not retry it.
        _ => StatusCode::OK.into_response(),
    }
}
