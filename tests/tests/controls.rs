//! Lockdown (the kill switch) and break-glass with its review.

use chrono::Duration;
use elevate_tests::TestApp;
use reqwest::Method;
use serde_json::json;

async fn lockdown(app: &TestApp, who: &str, scope: &str, blocks_breakglass: bool) -> elevate_tests::Answer {
    app.person(who)
        .call(
            Method::POST,
            "/api/v1/lockdowns",
            Some(json!({ "scope": scope, "reason": "credential leak", "blocks_breakglass": blocks_breakglass })),
        )
        .await
}

async fn breakglass(app: &TestApp, who: &str, duration: &str) -> elevate_tests::Answer {
    app.person(who)
        .call(
            Method::POST,
            "/api/v1/breakglass",
            Some(json!({ "role": "db", "duration": duration, "justification": "orders table locked, prod down" })),
        )
        .await
}

#[tokio::test]
async fn lockdown_revokes_everything_in_scope_refuses_new_requests_and_survives_a_restart() {
    let app = TestApp::spawn().await;
    let active = app.active_grant("db", "2h").await;
    let pending = app.alice().request("db", "1h", "INC-1 later").await.id();
    let other = app.active_grant("prod", "1h").await;
    lockdown(&app, "bob", "db", false).await.refused(403);

    let report = lockdown(&app, "dave", "db", false).await.ok();
    assert_eq!(report["revoked"], json!([active]));
    assert_eq!(report["denied"], json!([pending]));
    app.run_due().await;
    assert_eq!(app.state(active).await, "revoked");
    assert_eq!(app.state(pending).await, "denied");
    assert_eq!(app.state(other).await, "active", "other roles are untouched");
    assert!(!app.receiver.holds(&TestApp::grant_id(active)));
    let msg = app.alice().request("db", "1h", "INC-1 x").await.refused(403);
    assert!(msg.contains("locked down by dave") && msg.contains("credential leak"), "{msg}");

    let app = app.crash_and_restart(false).await;
    app.alice().request("db", "1h", "INC-1 x").await.refused(403);
    let list = app.alice().call(Method::GET, "/api/v1/lockdowns", None).await.ok();
    assert_eq!(list["lockdowns"][0]["scope"], "db");

    app.bob().call(Method::DELETE, "/api/v1/lockdowns/db", None).await.refused(403);
    app.dave().call(Method::DELETE, "/api/v1/lockdowns/db", None).await.ok();
    app.alice().request("db", "1h", "INC-1 x").await.ok();
    app.dave().call(Method::DELETE, "/api/v1/lockdowns/db", None).await.refused(404);
    let kinds: Vec<String> =
        app.events().await.into_iter().map(|e| e.kind).filter(|k| k.starts_with("security.")).collect();
    assert_eq!(kinds, ["security.lockdown", "security.unlock"]);
}

#[tokio::test]
async fn lockdown_of_all_covers_every_role() {
    let app = TestApp::spawn().await;
    let a = app.active_grant("db", "1h").await;
    let b = app.active_grant("prod", "1h").await;
    let report = lockdown(&app, "dave", "all", false).await.ok();
    assert_eq!(report["revoked"].as_array().unwrap().len(), 2);
    app.run_due().await;
    assert_eq!((app.state(a).await, app.state(b).await), ("revoked".into(), "revoked".into()));
    app.alice().request("sandbox", "1h", "x").await.refused(403);
    lockdown(&app, "dave", "nope", false).await.refused(404);
}

#[tokio::test]
async fn breakglass_grants_at_once_alerts_and_keeps_reminding_until_reviewed() {
    let app = TestApp::spawn().await;
    breakglass(&app, "alice", "10m").await.refused(403);
    let msg = breakglass(&app, "erin", "2h").await.refused(400);
    assert!(msg.contains("at most 30m"), "{msg}");

    let r = breakglass(&app, "erin", "20m").await.ok();
    let id = r["id"].as_i64().unwrap();
    assert_eq!(r["state"], "approved");
    assert_eq!(r["kind"], "breakglass");
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");
    assert!(app.receiver.holds(&TestApp::grant_id(id)));
    let kinds = app.event_kinds(id).await;
    assert_eq!(kinds, ["request.created", "request.approved", "security.alert", "grant.applied"]);

    app.after(Duration::hours(4)).await;
    app.after(Duration::hours(4)).await;
    let pending = app.event_kinds(id).await.iter().filter(|k| *k == "breakglass.review_pending").count();
    assert_eq!(pending, 2, "reminded every 4h");
    assert_eq!(app.state(id).await, "expired", "it still expires on time");

    let note = json!({ "note": "INC-99: lock held by a migration; access was needed" });
    app.alice().act(id, "review", note.clone()).await.refused(403);
    let reviewed = app.dave().act(id, "review", note.clone()).await.ok();
    assert_eq!(reviewed["review"]["state"], "done");
    assert_eq!(reviewed["review"]["by"], "dave");
    app.dave().act(id, "review", note).await.refused(409);
    app.after(Duration::hours(8)).await;
    let pending = app.event_kinds(id).await.iter().filter(|k| *k == "breakglass.review_pending").count();
    assert_eq!(pending, 2, "no reminders after the review");
}

#[tokio::test]
async fn lockdown_blocks_breakglass_only_when_it_says_so() {
    let app = TestApp::spawn().await;
    lockdown(&app, "dave", "db", false).await.ok();
    breakglass(&app, "erin", "10m").await.ok();
    lockdown(&app, "dave", "db", true).await.ok();
    let msg = breakglass(&app, "erin", "10m").await.refused(403);
    assert!(msg.contains("break-glass included"), "{msg}");
}

#[tokio::test]
async fn a_drill_runs_the_emergency_path_and_proves_access_was_removed() {
    let app = TestApp::spawn().await;
    let body = json!({ "role": "db", "hold": "1m" });
    app.alice().call(Method::POST, "/api/v1/drills", Some(body.clone())).await.refused(403);
    let id = app.dave().call(Method::POST, "/api/v1/drills", Some(body)).await.id();
    app.run_due().await;
    let during = app.dave().call(Method::GET, &format!("/api/v1/drills/{id}"), None).await.ok();
    assert_eq!((during["state"].as_str(), during["listed_now"].as_bool()), (Some("active"), Some(true)));
    assert!(app.receiver.holds(&TestApp::grant_id(id)));
    app.after(Duration::minutes(1)).await;
    let after = app.dave().call(Method::GET, &format!("/api/v1/drills/{id}"), None).await.ok();
    assert_eq!(after["state"], "expired");
    assert_eq!(after["removed"], true);
    let steps: Vec<&str> = after["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "requested",
            "approved (break-glass, no human)",
            "granted by the provider",
            "expiry reached, revoking",
            "revoked by the provider"
        ]
    );
    assert_eq!(after["steps"][4]["after_secs"], 60.0);
    let line = app.events().await.into_iter().find(|e| e.kind == "request.approved").unwrap();
    assert_eq!(line.details["drill"], true);
    app.dave().call(Method::GET, "/api/v1/drills/999", None).await.refused(404);
}
