//! The provider on the other end of the webhook: verifies each call's signature as a real
//! receiver must, waits `latency` (what a cloud IAM call costs), and records when each grant
//! and revoke arrived, so scenarios can measure lateness against `expires_at` and count
//! revokes per grant.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// One revoke as received.
#[derive(Debug, Clone)]
pub struct Revoke {
    pub grant_id: String,
    /// Milliseconds since the epoch, on arrival.
    pub at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// The `?by=` of the URL the calling server was given (which replica called).
    pub by: String,
    /// Whether elevate said another live grant still needs the same access.
    pub still_needed: bool,
}

#[derive(Default)]
struct Inner {
    grants: HashMap<String, i64>,
    /// Every grant call as it arrived (before the latency): `(grant_id, ms since the epoch)`.
    arrivals: Vec<(String, i64)>,
    revokes: Vec<Revoke>,
    bad_signatures: u64,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    latency: Duration,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Receiver {
    pub async fn start(latency: Duration) -> anyhow::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/elevate", listener.local_addr()?);
        let r = Receiver { url, latency, inner: Arc::default(), changed: Arc::default() };
        let app = Router::new().route("/elevate", post(handle)).with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(r)
    }

    pub fn revokes(&self) -> Vec<Revoke> {
        self.inner.lock().unwrap().revokes.clone()
    }

    pub fn revoke_count(&self) -> usize {
        self.inner.lock().unwrap().revokes.len()
    }

    /// When the grant call for `grant_id` arrived (milliseconds since the epoch), if it did.
    pub fn granted_at(&self, grant_id: &str) -> Option<i64> {
        self.inner.lock().unwrap().grants.get(grant_id).copied()
    }

    /// Waits until the grant call for `grant_id` arrived or `limit` passed.
    pub async fn wait_grant(&self, grant_id: &str, limit: Duration) -> Option<i64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if let Some(at) = self.granted_at(grant_id) {
                return Some(at);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.granted_at(grant_id);
            }
        }
    }

    /// Waits until `n` grant calls arrived (all grants, or those for `grant_id`) or `limit`
    /// passed; their arrival times.
    pub async fn wait_arrivals(&self, grant_id: Option<&str>, n: usize, limit: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            let at: Vec<i64> = {
                let inner = self.inner.lock().unwrap();
                inner.arrivals.iter().filter(|(g, _)| grant_id.is_none_or(|w| w == g)).map(|(_, at)| *at).collect()
            };
            if at.len() >= n || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return at;
            }
        }
    }

    pub fn bad_signatures(&self) -> u64 {
        self.inner.lock().unwrap().bad_signatures
    }

    /// Waits until at least `n` revokes arrived or `limit` passed; true when they did.
    pub async fn wait_revokes(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if self.revoke_count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.revoke_count() >= n;
            }
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn handle(
    State(r): State<Receiver>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let ts: i64 = headers
        .get(elevate_webhook::TIMESTAMP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sig = headers.get(elevate_webhook::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !elevate_webhook::verify(crate::node::WEBHOOK_SECRET, ts, &body, sig) {
        r.inner.lock().unwrap().bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad signature" })));
    }
    let arrived = now_ms();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if v["action"] == "grant" {
        let grant_id = v["grant_id"].as_str().unwrap_or("").to_string();
        r.inner.lock().unwrap().arrivals.push((grant_id, arrived));
        r.changed.notify_waiters();
    }
    if !r.latency.is_zero() {
        tokio::time::sleep(r.latency).await;
    }
    let grant_id = v["grant_id"].as_str().unwrap_or("").to_string();
    let expires_at_ms = v["expires_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis());
    let answer = match v["action"].as_str() {
        Some("grant") => {
            r.inner.lock().unwrap().grants.insert(grant_id.clone(), arrived);
            json!({ "applied": grant_id })
        }
        Some("revoke") => {
            let mut inner = r.inner.lock().unwrap();
            inner.grants.remove(&grant_id);
            let by = query.as_deref().and_then(|q| q.strip_prefix("by=")).unwrap_or("").to_string();
            let still_needed = v["still_needed"].as_bool().unwrap_or(false);
            inner.revokes.push(Revoke { grant_id: grant_id.clone(), at_ms: arrived, expires_at_ms, by, still_needed });
            json!({ "revoked": grant_id })
        }
        Some("list") => {
            let inner = r.inner.lock().unwrap();
            json!({ "grants": inner.grants.keys().map(|k| json!({ "grant_id": k })).collect::<Vec<_>>() })
        }
        _ => return (StatusCode::BAD_REQUEST, Json(json!({ "error": "unknown action" }))),
    };
    r.changed.notify_waiters();
    (StatusCode::OK, Json(answer))
}
