//! PostgreSQL goes away: every answer comes at once and says so, nothing changes, and the
//! server is back by itself when the database is. The test runs its own server (see
//! `pg_instance.rs`) and stops it; the shared one is never touched.

use elevate_core::error::UNAVAILABLE;
use elevate_tests::{TestApp, TestDb, db::Dialect, pg_instance::PgInstance};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Generous on purpose: the bound that matters (2 s for an answer, 1 s for `/readyz`) is
/// measured by the bench (BENCHMARKS.md); this only catches the old 10 s waits.
const PROMPT: Duration = Duration::from_secs(5);

async fn get(url: &str) -> (u16, Option<String>, String) {
    let resp = reqwest::get(url).await.expect("server reachable");
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (resp.status().as_u16(), retry, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_stopped_every_answer_is_prompt_and_clear_and_the_server_recovers_by_itself() {
    let Some(pg) = PgInstance::start() else { return };
    let app = TestApp::builder().db(TestDb::existing(&pg.url, Dialect::Postgres)).slack().spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 look at the lag").await.id();
    assert_eq!(get(&format!("{}/readyz", app.base)).await.0, 200);

    pg.stop();

    // The API: reads and writes alike are 503 with Retry-After and say what happened.
    let calls: Vec<(&str, reqwest::Method, String, Option<Value>)> = vec![
        (
            "create",
            reqwest::Method::POST,
            "/api/v1/requests".into(),
            Some(json!({"role": "db", "duration": "1h", "reason": "INC-2 again"})),
        ),
        ("show", reqwest::Method::GET, format!("/api/v1/requests/{id}"), None),
        ("list", reqwest::Method::GET, "/api/v1/requests?mine=true".into(), None),
        ("approve", reqwest::Method::POST, format!("/api/v1/requests/{id}/approve"), Some(json!({}))),
        ("cancel", reqwest::Method::POST, format!("/api/v1/requests/{id}/cancel"), Some(json!({}))),
    ];
    for (what, method, path, body) in calls {
        let t = Instant::now();
        let person = if what == "approve" { app.bob() } else { app.alice() };
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", app.base)).bearer_auth(&person.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("server reachable");
        let elapsed = t.elapsed();
        assert_eq!(resp.status().as_u16(), 503, "{what}");
        assert_eq!(resp.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("5"), "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unavailable", "{what}: {body}");
        assert_eq!(body["error"]["message"], UNAVAILABLE, "{what}: {body}");
        assert!(elapsed < PROMPT, "{what} took {elapsed:?}");
    }

    // Chat: an ephemeral answer saying the same, in time for Slack's three seconds.
    let t = Instant::now();
    let answer = app.slack_command("alice", "db 1h INC-3 still lagging").await;
    assert!(t.elapsed() < PROMPT, "chat took {:?}", t.elapsed());
    assert_eq!(answer.body["response_type"], "ephemeral", "{:?}", answer.body);
    assert!(answer.text().contains(UNAVAILABLE), "{}", answer.text());

    let t = Instant::now();
    let (status, _, text) = get(&format!("{}/readyz", app.base)).await;
    assert_eq!((status, text.as_str()), (503, "database unavailable\n"));
    assert!(t.elapsed() < PROMPT, "readyz took {:?}", t.elapsed());

    // Back by itself: no restart of elevate, only of the database.
    pg.start_again();
    let t = Instant::now();
    while get(&format!("{}/readyz", app.base)).await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(15), "not ready again after the database returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = app.alice().request("db", "1h", "INC-4 once more").await.id();
    // Nothing was changed while it was away: the first request is still pending, and the
    // refused create made no request in between.
    assert_eq!(app.state(id).await, "pending");
    assert_eq!(again, id + 1, "no request was made while the database was away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_an_unreachable_database_fails_in_seconds_naming_it() {
    let Some(pg) = PgInstance::start() else { return };
    pg.stop();
    // SAFETY of set_var: the value the harness sets too, before any reader starts.
    unsafe { std::env::set_var("ELEVATE_TEST_WEBHOOK_SECRET", elevate_tests::policy::WEBHOOK_SECRET) };
    let config = elevate_bot::config::Config::parse(&elevate_tests::policy::config("http://127.0.0.1:9"))
        .unwrap_or_else(|e| panic!("{e:?}"));
    let opts = elevate_bot::app::AppOptions { database_url: Some(pg.url.clone()), ..Default::default() };
    let t = Instant::now();
    let err = elevate_bot::app::App::build(config, opts).await.err().expect("no database, no start");
    assert!(t.elapsed() < PROMPT, "took {:?}", t.elapsed());
    assert!(err.to_string().contains("cannot connect to PostgreSQL"), "{err}");
}
