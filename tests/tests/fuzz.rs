//! Property tests at the edges, through the real endpoints: correctly signed Slack and Discord
//! payloads of every shape (valid ones with one part replaced by anything) are answered with a
//! 2xx or 4xx, never a failure of the server, and the server goes on serving; a webhook
//! receiver answering anything at all yields a grant or a clear provider error. The budget is
//! bounded (a few hundred cases) so the suite stays quick; a failure prints the case.

use elevate_core::ports::{GrantProvider, GrantSpec, ProviderError};
use elevate_tests::{
    TestApp,
    discord::{Member, command, interaction},
    slack::{Signing, TEAM, command_body, submission, trigger_id, user},
};
use elevate_webhook::{WebhookConfig, WebhookProvider};
use proptest::{
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, TestRunner},
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

const CASES: usize = 96;

/// Any JSON leaf or small structure.
fn anything() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        Just(json!("elevate_approve")),
        Just(json!("1")),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path of a JSON value (objects' keys and arrays' indexes).
fn paths(v: &Value, at: Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| paths(c, [at.clone(), vec![k.clone()]].concat(), out)),
        Value::Array(a) => {
            a.iter().enumerate().for_each(|(i, c)| paths(c, [at.clone(), vec![i.to_string()]].concat(), out))
        }
        _ => {}
    }
}

/// `base` with the part at one of its paths replaced by `with` (or removed when `with` is null
/// and the path is a key).
fn mutate(base: &Value, pick: prop::sample::Index, with: Value) -> Value {
    let mut all = Vec::new();
    paths(base, Vec::new(), &mut all);
    let path = &all[pick.index(all.len())];
    let mut out = base.clone();
    let mut cur = &mut out;
    for (i, k) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        cur = match cur {
            Value::Object(m) if last && with.is_null() => {
                m.remove(k);
                return out;
            }
            Value::Object(m) => m.get_mut(k).unwrap(),
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            _ => unreachable!("paths only go through objects and arrays"),
        };
    }
    *cur = with;
    out
}

fn sample<S: Strategy>(runner: &mut TestRunner, s: &S) -> S::Value {
    s.new_tree(runner).expect("a case").current()
}

fn fine(status: u16, what: &str) {
    assert!((200..500).contains(&status), "{what} got {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_slack_payloads_of_any_shape_are_answered_without_a_server_failure() {
    let app = TestApp::builder().slack().spawn().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    let bases = [
        app.click_payload(TEAM, "bob", "elevate_approve", id),
        submission("alice", "elevate_request", "", &[("role", "db"), ("duration", "1h"), ("reason", "INC-2 x")]),
        submission("bob", "elevate_deny", &id.to_string(), &[("reason", "no")]),
        json!({ "type": "shortcut", "team": { "id": TEAM }, "user": { "id": user("alice"), "team_id": TEAM },
                "callback_id": "elevate_request_access", "trigger_id": trigger_id() }),
    ];
    let mut runner = TestRunner::new(Config { cases: CASES as u32, ..Config::default() });
    let cases = (0..bases.len(), any::<prop::sample::Index>(), anything());
    for _ in 0..CASES {
        let (which, at, with) = sample(&mut runner, &cases);
        let mut payload = mutate(&bases[which], at, with);
        if let Some(p) = payload.as_object_mut() {
            p.insert("trigger_id".into(), json!(trigger_id()));
        }
        let a = app.slack_interaction(payload.clone(), Signing::Good).await;
        fine(a.status, &format!("interaction {payload}"));

        let text = sample(&mut runner, &"\\PC{0,120}");
        let a = app
            .slack_post(
                "/slack/commands",
                "application/x-www-form-urlencoded",
                command_body(TEAM, &user("alice"), "alice", &text),
                Signing::Good,
            )
            .await;
        fine(a.status, &format!("command {text:?}"));

        let event = mutate(
            &json!({ "type": "event_callback", "team_id": TEAM, "event_id": trigger_id(),
            "event": { "type": "app_home_opened", "user": user("bob"), "tab": "home" } }),
            at,
            sample(&mut runner, &anything()),
        );
        let a = app.slack_post("/slack/events", "application/json", event.to_string(), Signing::Good).await;
        fine(a.status, &format!("event {event}"));
    }
    // Still serving, and what was refused changed nothing it should not have.
    let after = app.slack_command("carol", "status").await;
    assert_eq!(after.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_discord_interactions_of_any_shape_are_answered_without_a_server_failure() {
    let app = TestApp::builder().discord().spawn().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix").await;
    app.deliver().await;
    let bases = [
        command(
            Member::of("alice"),
            "request",
            &[("role", json!("db")), ("duration", json!("1h")), ("reason", json!("x"))],
        ),
        app.click(Member::of("bob"), &format!("approve:{id}")),
        interaction(
            5,
            Member::of("bob"),
            json!({ "custom_id": format!("deny:{id}"),
            "components": [{ "type": 1, "components": [{ "type": 4, "custom_id": "reason", "value": "no" }] }] }),
            None,
        ),
        interaction(
            4,
            Member::of("alice"),
            json!({ "name": "elevate", "type": 1,
            "options": [{ "name": "request", "type": 1, "options": [{ "name": "role", "type": 3, "value": "d", "focused": true }] }] }),
            None,
        ),
    ];
    let mut runner = TestRunner::new(Config { cases: CASES as u32, ..Config::default() });
    let cases = (0..bases.len(), any::<prop::sample::Index>(), anything());
    for n in 0..CASES {
        let (which, at, with) = sample(&mut runner, &cases);
        let mut payload = mutate(&bases[which], at, with);
        if let Some(p) = payload.as_object_mut() {
            p.insert("id".into(), json!(format!("17{n:017}")));
        }
        let a = app.discord_post(payload.to_string(), elevate_tests::discord::Signing::Good).await;
        fine(a.status, &format!("interaction {payload}"));
    }
    assert_eq!(app.discord_command("carol", "status", &[]).await.status, 200);
}

/// What the fake receiver answers: status, headers, body.
type Scripted = Arc<Mutex<(u16, Vec<(String, String)>, String)>>;

/// A receiver that answers whatever the test sets.
async fn receiver(answer: Scripted) -> String {
    use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
    async fn handle(State(a): State<Scripted>) -> axum::response::Response {
        let (status, headers, body) = a.lock().unwrap().clone();
        let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT), body).into_response();
        for (k, v) in headers {
            if let (Ok(k), Ok(v)) = (k.parse::<axum::http::HeaderName>(), v.parse::<axum::http::HeaderValue>()) {
                r.headers_mut().insert(k, v);
            }
        }
        r
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook?token=SECRET-IN-QUERY", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().route("/hook", post(handle)).with_state(answer)).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_webhook_answer_is_a_grant_or_a_clear_provider_error() {
    elevate_bot::install_crypto();
    let answer = Arc::new(Mutex::new((200, Vec::new(), String::new())));
    let url = receiver(answer.clone()).await;
    let p = WebhookProvider::new(WebhookConfig {
        url,
        secret: "fuzz-secret-0123456789".into(),
        timeout: std::time::Duration::from_secs(2),
        retries: 1,
        max_inline_wait: std::time::Duration::from_millis(10),
    })
    .unwrap();
    let now = chrono::Utc::now();
    let spec = GrantSpec {
        grant_id: "elevate-1".into(),
        request: elevate_core::RequestId(1),
        role: elevate_core::RoleName::parse("db").unwrap(),
        person: elevate_core::PersonId::parse("alice").unwrap(),
        principals: Default::default(),
        target: json!({}),
        starts_at: now,
        expires_at: now + chrono::Duration::hours(1),
        handle: None,
    };
    let mut runner = TestRunner::new(Config { cases: CASES as u32, ..Config::default() });
    let body = prop_oneof![anything().prop_map(|v| v.to_string()), "\\PC{0,200}"];
    let retry = prop_oneof![Just(None), "\\PC{0,12}".prop_map(Some), (0u64..100_000).prop_map(|n| Some(n.to_string()))];
    let cases = (prop_oneof![Just(200u16), Just(404), Just(429), 100u16..600], body, retry);
    for _ in 0..CASES {
        let (status, body, retry) = sample(&mut runner, &cases);
        let headers = retry.map(|r| vec![("retry-after".to_string(), r)]).unwrap_or_default();
        *answer.lock().unwrap() = (status, headers, body.clone());
        for outcome in [p.grant(&spec).await.map(|_| ()), p.list().await.map(|_| ())] {
            if let Err(e) = outcome {
                let text = e.to_string();
                assert!(!text.trim().is_empty(), "{status} {body:?}: an error without a message");
                assert!(!text.contains("SECRET-IN-QUERY"), "the URL's query leaked: {text}");
                assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
                if let ProviderError::Transient { retry_after: Some(w), .. } = e {
                    assert!(w.as_secs() <= 100_000, "a Retry-After read as {w:?}");
                }
            }
        }
    }
    // And a receiver that is gone: the error names no URL.
    drop(answer);
    let gone = WebhookProvider::new(WebhookConfig {
        url: "http://127.0.0.1:1/hook?token=SECRET-IN-QUERY".into(),
        secret: "fuzz-secret-0123456789".into(),
        timeout: std::time::Duration::from_secs(2),
        retries: 0,
        max_inline_wait: std::time::Duration::from_millis(10),
    })
    .unwrap();
    let e = gone.grant(&spec).await.unwrap_err().to_string();
    assert!(!e.contains("SECRET-IN-QUERY") && !e.contains("token="), "{e}");
}
