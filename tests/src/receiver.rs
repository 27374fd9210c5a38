//! A webhook receiver on loopback that behaves like a real one: it verifies the signature and
//! timestamp, holds the grants it was given (so `list` and idempotency are real), answers revoke
//! of an unknown grant with 404, and fails on purpose when told to (429 with Retry-After, 5xx,
//! slow answers, permanent 4xx), or holds grant calls until the test lets them go (a provider
//! call in flight for as long as a story needs).

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

/// A failure to answer with, consumed one per call in order.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `status` with an optional `Retry-After` (seconds).
    Status(u16, Option<u64>),
    /// Answer only after this long (longer than the provider's timeout → a timeout).
    Delay(Duration),
    /// A 4xx with this error message.
    Reject(u16, String),
}

/// One call as received.
#[derive(Debug, Clone)]
pub struct Call {
    pub action: String,
    pub grant_id: Option<String>,
    pub body: Value,
    pub signature_ok: bool,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    grants: BTreeMap<String, Value>,
    calls: Vec<Call>,
    faults: VecDeque<Fault>,
    /// Grant calls waiting to be let go.
    waiting: usize,
}

/// The running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    secret: String,
    inner: Arc<Mutex<Inner>>,
    /// While true, grant calls wait (see `hold`).
    holding: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Receiver {
    pub async fn start(secret: &str) -> Receiver {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let url = format!("http://{}/elevate", listener.local_addr().expect("addr"));
        let holding = Arc::new(tokio::sync::watch::channel(false).0);
        let r = Receiver { url, secret: secret.to_string(), inner, holding };
        let app = Router::new().route("/elevate", post(handle)).with_state(r.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        r
    }

    /// From now on, grant calls wait (unanswered, as a slow provider's would) until `let_go`.
    pub fn hold(&self) {
        self.holding.send_replace(true);
    }

    /// Answers the grant calls held, and the next ones at once.
    pub fn let_go(&self) {
        self.holding.send_replace(false);
    }

    /// Waits (bounded, real time) until `n` grant calls are held: they reached the provider.
    pub async fn wait_held(&self, n: usize) {
        for _ in 0..500 {
            if self.inner.lock().unwrap().waiting >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{n} grant call(s) did not reach the receiver within 5 s");
    }

    /// Queues faults for the next calls.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.lock().unwrap().faults.extend(faults);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Calls of one action about one grant.
    pub fn calls_for(&self, action: &str, grant_id: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.action == action && c.grant_id.as_deref() == Some(grant_id)).collect()
    }

    pub fn holds(&self, grant_id: &str) -> bool {
        self.inner.lock().unwrap().grants.contains_key(grant_id)
    }

    pub fn held(&self) -> Vec<String> {
        self.inner.lock().unwrap().grants.keys().cloned().collect()
    }

    /// Creates a grant behind elevate's back (drift).
    pub fn plant(&self, grant_id: &str) {
        self.inner
            .lock()
            .unwrap()
            .grants
            .insert(grant_id.to_string(), json!({ "grant_id": grant_id, "planted": true }));
    }

    /// Removes a grant by hand, as an operator would.
    pub fn remove(&self, grant_id: &str) {
        self.inner.lock().unwrap().grants.remove(grant_id);
    }
}

async fn handle(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let ts: i64 = headers
        .get(elevate_webhook::TIMESTAMP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sig = headers.get(elevate_webhook::SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let fresh = (chrono::Utc::now().timestamp() - ts).abs() <= 300;
    let signature_ok = fresh && elevate_webhook::verify(&r.secret, ts, &body, sig);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let action = v["action"].as_str().unwrap_or("").to_string();
    let grant_id = v["grant_id"].as_str().map(String::from);
    let fault = r.inner.lock().unwrap().faults.pop_front();
    let (status, resp): (u16, Response) = if !signature_ok {
        (401, (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad signature" }))).into_response())
    } else {
        match fault {
            Some(Fault::Status(code, retry)) => {
                let mut resp =
                    (StatusCode::from_u16(code).unwrap(), Json(json!({ "error": "injected failure" }))).into_response();
                if let Some(s) = retry {
                    resp.headers_mut().insert("Retry-After", s.to_string().parse().unwrap());
                }
                (code, resp)
            }
            Some(Fault::Reject(code, msg)) => {
                (code, (StatusCode::from_u16(code).unwrap(), Json(json!({ "error": msg }))).into_response())
            }
            other => {
                if let Some(Fault::Delay(d)) = other {
                    tokio::time::sleep(d).await;
                }
                if action == "grant" && *r.holding.borrow() {
                    r.inner.lock().unwrap().waiting += 1;
                    let mut rx = r.holding.subscribe();
                    let _ = rx.wait_for(|held| !held).await;
                    r.inner.lock().unwrap().waiting -= 1;
                }
                let mut inner = r.inner.lock().unwrap();
                match (action.as_str(), &grant_id) {
                    ("grant", Some(id)) => {
                        inner.grants.insert(id.clone(), v.clone());
                        (200, Json(json!({ "applied": id })).into_response())
                    }
                    ("revoke", Some(id)) => {
                        let existed = inner.grants.remove(id).is_some();
                        if existed {
                            (200, Json(json!({ "revoked": id })).into_response())
                        } else {
                            (404, (StatusCode::NOT_FOUND, Json(json!({ "error": "no such grant" }))).into_response())
                        }
                    }
                    ("list", _) => {
                        let grants: Vec<Value> = inner
                            .grants
                            .keys()
                            .map(|k| json!({ "grant_id": k, "description": format!("receiver grant {k}") }))
                            .collect();
                        (200, Json(json!({ "grants": grants })).into_response())
                    }
                    _ => (400, (StatusCode::BAD_REQUEST, Json(json!({ "error": "unknown action" }))).into_response()),
                }
            }
        }
    };
    r.inner.lock().unwrap().calls.push(Call { action, grant_id, body: v, signature_ok, status });
    resp
}
