//! A fake of Opsgenie's Who is On Call API (`GET /v2/schedules/{identifier}/on-calls`) on
//! loopback, modelled on the API reference: `scheduleIdentifierType` `id` (default) or `name`;
//! `date` (default now) picks the moment; `flat=true` answers `onCallRecipients` (usernames),
//! otherwise `onCallParticipants` (`{id, name, type}`); an unknown schedule is `404` with
//! Opsgenie's `{"message", "took", "requestId"}`. Authentication is `Authorization: GenieKey …`
//! (`401` otherwise). `429` comes with `X-RateLimit-State: THROTTLED`; a test scripts faults for
//! the next calls or takes the API down.

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

#[derive(Debug, Clone, Copy)]
pub enum OgFault {
    /// `429 Too Many Requests`, `X-RateLimit-State: THROTTLED`.
    RateLimited,
    /// `500`.
    ServerError,
}

/// Someone on call in a schedule: username, from, until.
type Shift = (String, DateTime<Utc>, DateTime<Utc>);

#[derive(Default)]
struct Model {
    /// schedule id → (name, [(username, start, end)])
    schedules: BTreeMap<String, (String, Vec<Shift>)>,
    faults: VecDeque<OgFault>,
    down: bool,
    /// Paths and queries of the calls received.
    calls: Vec<String>,
    rate_limited: usize,
}

#[derive(Clone)]
pub struct FakeOpsgenie {
    pub url: String,
    pub key: String,
    model: Arc<Mutex<Model>>,
}

impl FakeOpsgenie {
    pub async fn start(key: &str) -> FakeOpsgenie {
        let fake = FakeOpsgenie { url: String::new(), key: key.into(), model: Arc::default() };
        let app = Router::new().route("/v2/schedules/{id}/on-calls", get(on_calls)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeOpsgenie { url, ..fake }
    }

    pub fn add_schedule(&self, id: &str, name: &str) {
        self.model.lock().unwrap().schedules.insert(id.into(), (name.into(), Vec::new()));
    }

    pub fn add_shift(&self, schedule: &str, username: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut m = self.model.lock().unwrap();
        m.schedules.get_mut(schedule).expect("add the schedule first").1.push((username.into(), start, end));
    }

    pub fn fail_next(&self, fault: OgFault) {
        self.model.lock().unwrap().faults.push_back(fault);
    }

    pub fn set_down(&self, down: bool) {
        self.model.lock().unwrap().down = down;
    }

    pub fn calls(&self) -> Vec<String> {
        self.model.lock().unwrap().calls.clone()
    }

    pub fn rate_limited(&self) -> usize {
        self.model.lock().unwrap().rate_limited
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message, "took": 0.002, "requestId": "00000000-fake" }))).into_response()
}

async fn on_calls(
    State(fake): State<FakeOpsgenie>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let q = q.unwrap_or_default();
    let mut m = fake.model.lock().unwrap();
    m.calls.push(format!("{id}?{q}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("GenieKey {}", fake.key)) {
        return error(StatusCode::UNAUTHORIZED, "Could not authenticate");
    }
    if m.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
    }
    match m.faults.pop_front() {
        Some(OgFault::RateLimited) => {
            m.rate_limited += 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "You are making too many requests! To avoid errors, we recommend you limit requests.",
            );
            r.headers_mut().insert("X-RateLimit-State", "THROTTLED".parse().unwrap());
            return r;
        }
        Some(OgFault::ServerError) => return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        None => {}
    }
    let params: BTreeMap<String, String> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let by_name = match params.get("scheduleIdentifierType").map(String::as_str) {
        None | Some("id") => false,
        Some("name") => true,
        Some(_) => return error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid schedule identifier type"),
    };
    let at = match params.get("date").map(|d| DateTime::parse_from_rfc3339(d)) {
        None => Utc::now(),
        Some(Ok(d)) => d.with_timezone(&Utc),
        Some(Err(_)) => return error(StatusCode::UNPROCESSABLE_ENTITY, "Invalid date"),
    };
    let found = m.schedules.iter().find(|(sid, (name, _))| if by_name { *name == id } else { **sid == id });
    let Some((sid, (name, shifts))) = found else {
        return error(
            StatusCode::NOT_FOUND,
            &format!("No schedule exists with {} [{id}]", if by_name { "name" } else { "id" }),
        );
    };
    let on: Vec<&String> = shifts.iter().filter(|(_, s, e)| *s <= at && at < *e).map(|(u, _, _)| u).collect();
    let parent = json!({ "id": sid, "name": name, "enabled": true });
    let data = if params.get("flat").map(String::as_str) == Some("true") {
        json!({ "_parent": parent, "onCallRecipients": on })
    } else {
        let parts: Vec<_> = on.iter().map(|u| json!({ "id": format!("id-{u}"), "name": u, "type": "user" })).collect();
        json!({ "_parent": parent, "onCallParticipants": parts })
    };
    Json(json!({ "data": data, "took": 0.012, "requestId": "00000000-fake" })).into_response()
}
