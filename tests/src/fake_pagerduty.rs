//! A fake of PagerDuty's REST API v2 "List all of the on-calls" (`GET /oncalls`) on loopback,
//! modelled on the API reference: on-calls are computed from escalation policies (levels that
//! target schedules) and the schedules' shifts, so a schedule that no escalation policy uses has
//! no on-calls, and one schedule used at two levels yields two entries. Filters `schedule_ids[]`,
//! `escalation_policy_ids[]`, `user_ids[]`; the window `since`/`until` (default: now); classic
//! pagination (`limit` default 25, at most 100; `offset`; `more`); `include[]=users` turns user
//! references into user objects with `email`. Authentication is `Authorization: Token token=…`
//! (`401` otherwise). Errors are PagerDuty's shape, `{"error": {"message", "code"}}`; `429` carries
//! `ratelimit-reset` (seconds). A test scripts faults for the next calls (429, 500, a slow answer)
//! or takes the API down.

use axum::{
    Json, Router,
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

/// A fault for the next call.
#[derive(Debug, Clone, Copy)]
pub enum PdFault {
    /// `429` with `ratelimit-reset: secs`.
    RateLimited(u64),
    /// `500 Internal Server Error`.
    ServerError,
    /// Answers only after this many seconds (a client should have given up by then).
    Slow(u64),
}

#[derive(Debug, Clone)]
struct Shift {
    user: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

#[derive(Default)]
struct Model {
    /// user id → (name, email)
    users: BTreeMap<String, (String, String)>,
    /// schedule id → (name, shifts)
    schedules: BTreeMap<String, (String, Vec<Shift>)>,
    /// escalation policy id → levels, each targeting schedules
    policies: BTreeMap<String, Vec<(u32, Vec<String>)>>,
    faults: VecDeque<PdFault>,
    down: bool,
    /// Query strings of the calls received, in order.
    calls: Vec<String>,
    rate_limited: usize,
}

/// The running fake. Cheap to clone.
#[derive(Clone)]
pub struct FakePagerDuty {
    pub url: String,
    pub token: String,
    model: Arc<Mutex<Model>>,
}

impl FakePagerDuty {
    pub async fn start(token: &str) -> FakePagerDuty {
        let model = Arc::new(Mutex::new(Model::default()));
        let fake = FakePagerDuty { url: String::new(), token: token.to_string(), model };
        let app = Router::new().route("/oncalls", get(oncalls)).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePagerDuty { url, ..fake }
    }

    pub fn add_user(&self, id: &str, name: &str, email: &str) {
        self.model.lock().unwrap().users.insert(id.into(), (name.into(), email.into()));
    }

    pub fn add_schedule(&self, id: &str, name: &str) {
        self.model.lock().unwrap().schedules.insert(id.into(), (name.into(), Vec::new()));
    }

    /// An escalation policy whose level `n` (1 first) targets these schedules.
    pub fn add_policy(&self, id: &str, levels: &[(u32, &[&str])]) {
        let levels = levels.iter().map(|(l, s)| (*l, s.iter().map(|s| s.to_string()).collect())).collect();
        self.model.lock().unwrap().policies.insert(id.into(), levels);
    }

    /// `user` is on call in `schedule` from `start` until `end`.
    pub fn add_shift(&self, schedule: &str, user: &str, start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut m = self.model.lock().unwrap();
        let s = m.schedules.get_mut(schedule).expect("add the schedule first");
        s.1.push(Shift { user: user.into(), start, end });
    }

    pub fn fail_next(&self, fault: PdFault) {
        self.model.lock().unwrap().faults.push_back(fault);
    }

    /// Every call answers `503` until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        self.model.lock().unwrap().down = down;
    }

    /// The query strings of the calls received so far.
    pub fn calls(&self) -> Vec<String> {
        self.model.lock().unwrap().calls.clone()
    }

    pub fn rate_limited(&self) -> usize {
        self.model.lock().unwrap().rate_limited
    }
}

fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "code": code } }))).into_response()
}

async fn oncalls(State(fake): State<FakePagerDuty>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let slow = {
        let mut m = fake.model.lock().unwrap();
        match m.faults.front() {
            Some(PdFault::Slow(secs)) => {
                let secs = *secs;
                m.faults.pop_front();
                Some(secs)
            }
            _ => None,
        }
    };
    if let Some(secs) = slow {
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }
    let q = q.unwrap_or_default();
    let mut m = fake.model.lock().unwrap();
    m.calls.push(q.clone());
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if auth != format!("Token token={}", fake.token) {
        return error(StatusCode::UNAUTHORIZED, 2006, "Authentication failed");
    }
    if m.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, 2999, "Service Unavailable");
    }
    match m.faults.pop_front() {
        Some(PdFault::RateLimited(secs)) => {
            m.rate_limited += 1;
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, 2020, "Rate Limit Exceeded");
            r.headers_mut().insert("ratelimit-reset", secs.to_string().parse().unwrap());
            return r;
        }
        Some(PdFault::ServerError) => return error(StatusCode::INTERNAL_SERVER_ERROR, 2999, "Internal Server Error"),
        Some(PdFault::Slow(_)) | None => {}
    }
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(q.as_bytes()) {
        params.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    let one = |k: &str| params.get(k).and_then(|v| v.first()).cloned();
    let list = |k: &str| params.get(k).cloned().unwrap_or_default();
    let time = |k: &str| one(k).map(|s| DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)));
    let now = Utc::now();
    let (since, until) = match (time("since"), time("until")) {
        (Some(Err(_)), _) | (_, Some(Err(_))) => {
            return error(StatusCode::BAD_REQUEST, 2001, "Invalid Input Provided: since/until");
        }
        (s, u) => (s.and_then(Result::ok).unwrap_or(now), u.and_then(Result::ok).unwrap_or(now)),
    };
    if until < since {
        return error(StatusCode::BAD_REQUEST, 2001, "Invalid Input Provided: until is before since");
    }
    let limit: usize = match one("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(l)) if (1..=100).contains(&l) => l,
        Some(_) => return error(StatusCode::BAD_REQUEST, 2001, "Invalid Input Provided: limit"),
    };
    let offset: usize = one("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    let (schedules, policies, users) = (list("schedule_ids[]"), list("escalation_policy_ids[]"), list("user_ids[]"));
    let with_users = list("include[]").iter().any(|i| i == "users");
    let mut all = Vec::new();
    for (pid, levels) in &m.policies {
        if !policies.is_empty() && !policies.contains(pid) {
            continue;
        }
        for (level, targets) in levels {
            for sid in targets {
                if !schedules.is_empty() && !schedules.contains(sid) {
                    continue;
                }
                let Some((sname, shifts)) = m.schedules.get(sid) else { continue };
                for s in shifts.iter().filter(|s| s.start <= until && since < s.end) {
                    if !users.is_empty() && !users.contains(&s.user) {
                        continue;
                    }
                    let (uname, email) = m.users.get(&s.user).cloned().unwrap_or_default();
                    let mut user = json!({ "id": s.user, "type": "user_reference", "summary": uname,
                        "self": format!("https://api.pagerduty.com/users/{}", s.user) });
                    if with_users {
                        user = json!({ "id": s.user, "type": "user", "name": uname, "email": email, "summary": uname });
                    }
                    all.push(json!({
                        "escalation_policy": { "id": pid, "type": "escalation_policy_reference" },
                        "escalation_level": level,
                        "schedule": { "id": sid, "type": "schedule_reference", "summary": sname },
                        "user": user,
                        "start": s.start.to_rfc3339(),
                        "end": s.end.to_rfc3339(),
                    }));
                }
            }
        }
    }
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let more = offset + page.len() < all.len();
    Json(json!({ "oncalls": page, "limit": limit, "offset": offset, "more": more, "total": null })).into_response()
}
