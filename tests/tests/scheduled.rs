//! Scheduled access end to end through the REST API and the scheduler, on virtual time:
//! approved ahead, applied at its start with the window counted from there, checked again at
//! the start against the policy, rules and lockdowns of that moment, cancellable until then,
//! and an approval that expires unused.

use chrono::{Duration, TimeZone, Utc};
use elevate_tests::{TestApp, TestDb, on_both_dbs, policy};
use serde_json::{Value, json};

// The test clock starts on Monday 2026-03-02 at 09:00 UTC.

async fn app_with(db: TestDb, extra: &str) -> TestApp {
    let config = policy::config("{WEBHOOK_URL}") + policy::BATCHES + extra;
    TestApp::builder().db(db).config(&config).spawn().await
}

async fn schedule(app: &TestApp, roles: &str, start: Value) -> Value {
    let mut body = json!({ "role": roles, "duration": "1h", "reason": "INC-9 planned failover" });
    body.as_object_mut().unwrap().extend(start.as_object().unwrap().clone());
    app.alice().call(reqwest::Method::POST, "/api/v1/requests", Some(body)).await.ok()
}

fn at(h: u32, m: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
}

on_both_dbs!(approved_ahead_applied_at_its_start_with_the_window_from_there, |db| async move {
    let app = app_with(db, "").await;
    let body = schedule(&app, "db", json!({ "starts_at": "2026-03-02 13:00 Europe/Berlin" })).await;
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["starts_at"], "2026-03-02T12:00:00Z", "13:00 in Berlin is 12:00 UTC");
    assert_eq!(body["state"], "pending");

    let approved = app.bob().approve(id).await.ok();
    assert_eq!(approved["state"], "scheduled");
    assert_eq!(app.due_kinds(id).await, ["start"], "the start is a row in the database");
    app.after(Duration::minutes(170)).await;
    assert_eq!(app.state(id).await, "scheduled");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)), "nothing is held before the start");

    // elevate is busy (or down) for ten minutes at the start: the window still counts from it.
    app.after(Duration::minutes(20)).await;
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "active");
    assert!(app.receiver.holds(&TestApp::grant_id(id)));
    assert_eq!(r.granted_at, Some(at(12, 10)));
    assert_eq!(r.expires_at, Some(at(13, 0)), "the window is counted from the start asked for");
    assert_eq!(app.event_kinds(id).await, ["request.created", "request.approved", "request.started", "grant.applied"]);
    app.after(Duration::minutes(50)).await;
    app.run_due().await;
    assert_eq!(app.state(id).await, "expired");

    // Several roles start together.
    let body = schedule(&app, "db,audit", json!({ "starts_in": "2h" })).await;
    let lead = body["id"].as_i64().unwrap();
    app.bob().approve(lead).await.ok();
    app.dave().approve(lead).await.ok();
    app.run_due().await;
    assert_eq!(app.state(lead).await, "scheduled");
    assert_eq!(app.state(lead + 1).await, "scheduled");
    app.after(Duration::hours(2)).await;
    app.run_due().await;
    assert_eq!(app.state(lead).await, "active");
    assert_eq!(app.state(lead + 1).await, "active");
});

on_both_dbs!(checked_again_at_the_start_against_the_policy_and_the_rules_of_that_moment, |db| async move {
    let freeze = r#"
[rules.failover-freeze]
kind = "freeze"
from = "2026-03-02T11:30:00Z"
until = "2026-03-02T16:00:00Z"
roles = ["db"]
advice = "Ask the release manager."
"#;
    let app = app_with(db, freeze).await;

    // A freeze in force at the start refuses it then, naming the rule.
    let frozen = schedule(&app, "db", json!({ "starts_in": "3h" })).await["id"].as_i64().unwrap();
    // A lockdown in force at the start refuses it too.
    let locked = schedule(&app, "db-ro", json!({ "starts_in": "2h" })).await["id"].as_i64().unwrap();
    // alice leaves the team before the third one starts.
    let removed = schedule(&app, "prod", json!({ "starts_in": "6h" })).await["id"].as_i64().unwrap();
    for id in [frozen, locked] {
        app.bob().approve(id).await.ok();
    }
    app.bob().approve(removed).await.ok();
    app.carol().approve(removed).await.ok();
    assert_eq!(app.state(removed).await, "scheduled");

    let report = app
        .dave()
        .call(reqwest::Method::POST, "/api/v1/lockdowns", Some(json!({ "scope": "db-ro", "reason": "leak suspected" })))
        .await
        .ok();
    assert_eq!(report["revoked"], json!([]), "a scheduled request holds nothing to revoke: {report}");
    app.after(Duration::hours(2)).await;
    let r = app.request(locked).await;
    assert_eq!((r.state.as_str(), r.closed_by.as_deref()), ("denied", Some("rule:lockdown")));
    assert!(r.note.as_deref().unwrap().contains("locked down by dave: leak suspected"), "{:?}", r.note);

    app.after(Duration::hours(1)).await;
    let r = app.request(frozen).await;
    assert_eq!((r.state.as_str(), r.closed_by.as_deref()), ("denied", Some("rule:failover-freeze")));
    assert!(r.note.as_deref().unwrap().contains("release manager"), "{:?}", r.note);
    let text = policy::config("{WEBHOOK_URL}")
        .replace(r#"members = ["alice", "bob", "carol", "erin"]"#, r#"members = ["bob", "carol", "erin"]"#)
        + policy::BATCHES
        + freeze;
    let config = elevate_bot::config::Config::parse(&text.replace("{WEBHOOK_URL}", &app.receiver.url)).unwrap();
    app.app.service.reload(None, config.policy, "test", &[]).await.unwrap();
    app.after(Duration::hours(3)).await;
    let r = app.request(removed).await;
    assert_eq!((r.state.as_str(), r.closed_by.as_deref()), ("denied", Some("rule:policy")));
    assert!(r.note.as_deref().unwrap().contains("alice may no longer request `prod`"), "{:?}", r.note);
    let said = app.events().await.into_iter().rfind(|e| e.subject == Some(removed)).unwrap();
    assert_eq!(said.kind, "request.denied");
    assert!(said.details["reason"].as_str().unwrap().contains("may no longer request"), "{}", said.details);

    assert!(app.receiver.held().is_empty(), "none of them was granted");
});

on_both_dbs!(cancelled_before_its_start_and_an_approval_that_expires_unused, |db| async move {
    let short_ttl = "[settings]\nscheduled_approval_ttl = \"2h\"\n";
    let config = policy::config("{WEBHOOK_URL}").replacen("[settings]\n", short_ttl, 1) + policy::BATCHES;
    let app = TestApp::builder().db(db).config(&config).spawn().await;

    let cancelled = schedule(&app, "db", json!({ "starts_in": "1h" })).await["id"].as_i64().unwrap();
    app.bob().approve(cancelled).await.ok();
    let refused = app.alice().release(cancelled).await.refused(409);
    assert!(refused.contains("has not started yet: cancel it instead"), "{refused}");
    assert_eq!(app.alice().cancel(cancelled).await.ok()["state"], "cancelled");
    assert!(app.due(cancelled).await.is_empty(), "no start left to run");

    // Approved at 09:00 for a start at 12:00, with approvals good for 2h: it expires at 11:00.
    let expiring = schedule(&app, "db", json!({ "starts_in": "3h" })).await["id"].as_i64().unwrap();
    app.bob().approve(expiring).await.ok();
    assert_eq!(app.due_kinds(expiring).await, ["approval_expiry", "start"]);
    app.after(Duration::hours(2)).await;
    let r = app.request(expiring).await;
    assert_eq!(r.state.as_str(), "timed_out");
    assert!(r.note.as_deref().unwrap().contains("expired unused"), "{:?}", r.note);
    app.after(Duration::hours(2)).await;
    assert_eq!(app.state(expiring).await, "timed_out", "its start does nothing");
    assert!(app.receiver.held().is_empty());

    // Limits on the start itself.
    let body = json!({ "role": "db", "reason": "INC-9 x", "starts_in": "8d" });
    let far = app.alice().call(reqwest::Method::POST, "/api/v1/requests", Some(body)).await.refused(400);
    assert!(far.contains("at most 7d ahead"), "{far}");
    let body = json!({ "role": "db", "reason": "INC-9 x", "starts_at": "2026-03-01 10:00" });
    let past = app.alice().call(reqwest::Method::POST, "/api/v1/requests", Some(body)).await.refused(400);
    assert!(past.contains("has passed"), "{past}");
    let body = json!({ "role": "db", "reason": "INC-9 x", "starts_at": "2026-03-03 10:00 Mars/Olympus" });
    let zone = app.alice().call(reqwest::Method::POST, "/api/v1/requests", Some(body)).await.refused(400);
    assert!(zone.contains("not an IANA time zone"), "{zone}");
});
