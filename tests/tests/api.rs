//! Bad input gets a clear 4xx with a JSON body naming the problem, and changes nothing.

use elevate_tests::{Person, TestApp};
use reqwest::Method;
use serde_json::json;

async fn nothing_written(app: &TestApp, before: (usize, usize)) {
    let requests = app.store().list_requests(&Default::default()).await.unwrap().len();
    assert_eq!((requests, app.events().await.len()), before, "a refused call wrote something");
}

async fn counts(app: &TestApp) -> (usize, usize) {
    (app.store().list_requests(&Default::default()).await.unwrap().len(), app.events().await.len())
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_named_problem_and_write_nothing() {
    let app = TestApp::spawn().await;
    let alice = app.alice();
    let before = counts(&app).await;
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (json!({ "role": "dv", "duration": "1h", "reason": "x" }), 404, "There is no role `dv`. Did you mean `db`?"),
        (json!({ "role": "db", "duration": "0m", "reason": "INC-1 x" }), 400, "longer than zero"),
        (json!({ "role": "db", "duration": "5h", "reason": "INC-1 x" }), 400, "at most 4h"),
        (json!({ "role": "db", "duration": "soon", "reason": "INC-1 x" }), 400, "is not a duration"),
        (json!({ "role": "db", "duration": "1h", "reason": "" }), 400, "a reason is required"),
        (json!({ "role": "db", "duration": "1h", "reason": "x".repeat(1001) }), 400, "1001 characters"),
        (json!({ "role": "db", "duration": "1h", "reason": "fix\nlag" }), 400, "a control character"),
        (
            json!({ "role": "db", "duration": "1h", "reason": "x", "requester": "bob" }),
            400,
            "unknown field `requester`",
        ),
        (json!({ "role": "db", "duration": "1h", "reason": "x", "ticket": "JIRA-1" }), 400, "does not match"),
    ];
    for (body, status, needle) in cases {
        let a = alice.call(Method::POST, "/api/v1/requests", Some(body.clone())).await;
        let msg = a.refused(status);
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let not_json = reqwest::Client::new()
        .post(format!("{}/api/v1/requests", app.base))
        .bearer_auth("token-alice")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let body: serde_json::Value = not_json.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Invalid JSON"));
    nothing_written(&app, before).await;
}

#[tokio::test]
async fn a_person_outside_the_requester_groups_is_refused() {
    let app = TestApp::spawn().await;
    let before = counts(&app).await;
    let msg = app.person("mallory").request("db", "1h", "INC-1 x").await.refused(403);
    assert!(msg.contains("engineers"), "names who may: {msg}");
    nothing_written(&app, before).await;
}

#[tokio::test]
async fn wrong_or_missing_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let before = counts(&app).await;
    let stranger = Person { name: "x".into(), token: "not-a-token".into(), base: app.base.clone() };
    stranger.request("db", "1h", "INC-1 x").await.refused(401);
    let bare = reqwest::Client::new().get(format!("{}/api/v1/requests/1", app.base)).send().await.unwrap();
    assert_eq!(bare.status(), 401);
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    nothing_written(&app, before).await;
}

#[tokio::test]
async fn unknown_requests_and_actions_are_named() {
    let app = TestApp::spawn().await;
    app.alice().show(999).await.refused(404);
    app.bob().approve(999).await.refused(404);
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    let msg = app.bob().act(id, "bless", json!({})).await.refused(404);
    assert!(msg.contains("Unknown action"), "{msg}");
    let msg = app.alice().call(Method::GET, "/api/v1/requests/abc", None).await.refused(400);
    assert!(msg.contains("not a request number"), "{msg}");
}

#[tokio::test]
async fn the_actor_is_the_tokens_person() {
    let app = TestApp::spawn().await;
    let r = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(r["requester"], "alice");
    assert_eq!(r["source"]["platform"], "api");
    assert_eq!(r["source"]["tenant"], "alice", "the token's name");
}

#[tokio::test]
async fn grants_and_requests_can_be_listed() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    let pending = app.alice().request("db", "1h", "INC-2 y").await.id();
    let grants = app.bob().call(Method::GET, "/api/v1/grants?active=true", None).await.ok();
    let ids: Vec<i64> = grants["grants"].as_array().unwrap().iter().map(|g| g["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [id]);
    let mine = app.alice().call(Method::GET, "/api/v1/requests?state=pending&mine=true", None).await.ok();
    assert_eq!(mine["requests"][0]["id"], pending);
    app.alice().call(Method::GET, "/api/v1/requests?state=bogus", None).await.refused(400);
    app.alice().call(Method::GET, "/api/v1/grants?active=maybe", None).await.refused(400);
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    app.active_grant("db", "1h").await;
    let get = |p: &str| reqwest::get(format!("{}{p}", app.base));
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let m = get("/metrics").await.unwrap().text().await.unwrap();
    for needle in [
        "elevate_requests{state=\"active\"} 1",
        "elevate_grants_active 1",
        "elevate_scheduler_lag_seconds",
        "elevate_provider_calls_total{op=\"grant\",outcome=\"ok\",provider=\"hook\"} 1",
        "elevate_provider_call_seconds_count{op=\"grant\",provider=\"hook\"} 1",
        "elevate_requests_open{state=\"active\"} 1",
        "elevate_requests_finished_total{outcome=\"expired\"} 0",
        "elevate_build_info{commit=\"",
        "elevate_http_requests_total{method=\"POST\",route=\"/api/v1/requests\",status=\"201\"}",
        "elevate_http_request_seconds_count{route=\"/api/v1/requests/{id}/{action}\"}",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(m.contains(needle), "metrics lack {needle}:\n{m}");
    }
    // Every scrape is valid Prometheus text: each sample line is `name{labels} value`.
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "not a sample: {line}");
    }
    // The request id is returned, and a caller's own is kept.
    let r = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(r.headers()["x-request-id"].len(), 16);
}
