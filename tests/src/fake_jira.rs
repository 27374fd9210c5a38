//! A fake of Jira's REST API "Get issue" on loopback, modelled on the reference: Cloud
//! (`GET /rest/api/3/issue/{key}`, basic auth with email and API token) and Data Center
//! (`GET /rest/api/2/issue/{key}`, `Authorization: Bearer` personal access token). `fields`
//! limits the fields returned; a missing issue is `404 {"errorMessages": ["Issue does not exist
//! or you do not have permission to see it."], "errors": {}}`; bad credentials `401`. Cloud
//! users are `{accountId, emailAddress, displayName}`, Data Center users `{name, key,
//! emailAddress, displayName}`. `429` carries `Retry-After`. The same fake also serves a generic
//! ticket check at `GET /tickets/{key}` in elevate's documented shape. A test changes an
//! issue's status, scripts faults for the next calls, or takes the API down.

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::Engine;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

#[derive(Debug, Clone, Copy)]
pub enum JiraFault {
    /// `429` with `Retry-After: secs`.
    RateLimited(u64),
    ServerError,
    /// Answers only after this many seconds.
    Slow(u64),
}

#[derive(Debug, Clone)]
pub struct Issue {
    pub project: String,
    pub status: String,
    /// `new`, `indeterminate` or `done`.
    pub category: String,
    /// (account id / username, email, display name)
    pub assignee: Option<(String, String, String)>,
}

#[derive(Default)]
struct Model {
    issues: BTreeMap<String, Issue>,
    faults: VecDeque<JiraFault>,
    down: bool,
    calls: Vec<String>,
}

#[derive(Clone)]
pub struct FakeJira {
    pub url: String,
    pub email: String,
    pub token: String,
    model: Arc<Mutex<Model>>,
}

impl FakeJira {
    pub async fn start(email: &str, token: &str) -> FakeJira {
        let fake = FakeJira { url: String::new(), email: email.into(), token: token.into(), model: Arc::default() };
        let app = Router::new()
            .route("/rest/api/{version}/issue/{key}", get(issue))
            .route("/tickets/{key}", get(generic))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeJira { url, ..fake }
    }

    /// An issue in `status` (of `category`), assigned to `assignee` (id, email, name).
    pub fn add_issue(&self, key: &str, status: &str, category: &str, assignee: Option<(&str, &str, &str)>) {
        let project = key.split('-').next().unwrap().to_string();
        let assignee = assignee.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        self.model
            .lock()
            .unwrap()
            .issues
            .insert(key.into(), Issue { project, status: status.into(), category: category.into(), assignee });
    }

    /// Moves an issue to another status (a workflow transition).
    pub fn transition(&self, key: &str, status: &str, category: &str) {
        let mut m = self.model.lock().unwrap();
        let i = m.issues.get_mut(key).expect("known issue");
        i.status = status.into();
        i.category = category.into();
    }

    pub fn fail_next(&self, f: JiraFault) {
        self.model.lock().unwrap().faults.push_back(f);
    }

    pub fn set_down(&self, down: bool) {
        self.model.lock().unwrap().down = down;
    }

    pub fn calls(&self) -> Vec<String> {
        self.model.lock().unwrap().calls.clone()
    }

    /// Waits out a scripted slow answer.
    async fn slow(&self) {
        let secs = {
            let mut m = self.model.lock().unwrap();
            match m.faults.front() {
                Some(JiraFault::Slow(secs)) => {
                    let secs = *secs;
                    m.faults.pop_front();
                    secs
                }
                _ => 0,
            }
        };
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    }

    /// Records the call; the scripted fault or outage to answer instead, if any.
    fn fault(&self, call: String) -> Option<Response> {
        let mut m = self.model.lock().unwrap();
        m.calls.push(call);
        if m.down {
            return Some((StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response());
        }
        match m.faults.pop_front() {
            Some(JiraFault::RateLimited(secs)) => {
                let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "errorMessages": ["Rate limit exceeded."] })))
                    .into_response();
                r.headers_mut().insert("Retry-After", secs.to_string().parse().unwrap());
                Some(r)
            }
            Some(JiraFault::ServerError) => {
                Some((StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response())
            }
            Some(JiraFault::Slow(_)) | None => None,
        }
    }

    fn issue(&self, key: &str) -> Option<Issue> {
        self.model.lock().unwrap().issues.get(key).cloned()
    }
}

fn category(key: &str) -> Value {
    let (id, name) = match key {
        "new" => (2, "To Do"),
        "indeterminate" => (4, "In Progress"),
        _ => (3, "Done"),
    };
    json!({ "id": id, "key": key, "name": name })
}

async fn issue(
    State(fake): State<FakeJira>,
    Path((version, key)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let ok = match version.as_str() {
        "3" => {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", fake.email, fake.token));
            auth == format!("Basic {basic}")
        }
        "2" => auth == format!("Bearer {}", fake.token),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    fake.slow().await;
    if let Some(r) = fake.fault(format!("{version} {key}")) {
        return r;
    }
    if !ok {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {} }))).into_response();
    }
    let Some(i) = fake.issue(&key) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {} })),
        )
            .into_response();
    };
    let fields: Vec<String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect();
    let assignee = i.assignee.as_ref().map(|(id, email, name)| match version.as_str() {
        "3" => json!({ "accountId": id, "emailAddress": email, "displayName": name, "active": true, "accountType": "atlassian" }),
        _ => json!({ "name": id, "key": format!("JIRAUSER-{id}"), "emailAddress": email, "displayName": name, "active": true }),
    });
    let all = json!({
        "status": { "name": i.status, "id": "10001", "statusCategory": category(&i.category) },
        "project": { "key": i.project, "id": "10000", "name": format!("{} project", i.project) },
        "assignee": assignee,
        "summary": "Something is on fire",
    });
    let mut out = serde_json::Map::new();
    for (k, v) in all.as_object().unwrap() {
        if fields.is_empty() || fields.iter().any(|f| f == k || f == "*all") {
            out.insert(k.clone(), v.clone());
        }
    }
    Json(json!({ "id": "10042", "key": key, "self": format!("{}/rest/api/{version}/issue/10042", fake.url), "fields": out }))
        .into_response()
}

/// The generic check: elevate's documented shape, bearer token.
async fn generic(State(fake): State<FakeJira>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    fake.slow().await;
    if let Some(r) = fake.fault(format!("generic {key}")) {
        return r;
    }
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {}", fake.token)) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "bad token" }))).into_response();
    }
    let Some(i) = fake.issue(&key) else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "no such ticket" }))).into_response();
    };
    Json(json!({
        "key": key, "project": i.project, "status": i.status, "status_category": i.category,
        "assignee": i.assignee.map(|(id, email, name)| json!({ "id": id, "email": email, "name": name })),
        "url": format!("https://tickets.example.com/{key}"),
    }))
    .into_response()
}
