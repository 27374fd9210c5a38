//! The webhook provider against a real receiver on loopback: signatures, retries honouring
//! Retry-After, timeouts, permanent failures, and reconciliation of drift.

use chrono::Duration;
use elevate_tests::{Fault, TestApp};
use std::time::{Duration as StdDuration, Instant};

#[tokio::test]
async fn every_call_is_signed_and_the_receiver_accepts_it() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    app.after(Duration::hours(1)).await;
    let calls = app.receiver.calls_for("grant", &TestApp::grant_id(id));
    assert!(!calls.is_empty() && calls.iter().all(|c| c.signature_ok));
    assert_eq!(calls[0].body["role"], "db");
    assert_eq!(calls[0].body["person"], "alice");
    assert_eq!(calls[0].body["target"]["database"], "orders");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_then_retried() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Status(429, Some(1))]);
    let t = Instant::now();
    app.run_due().await;
    assert!(t.elapsed() >= StdDuration::from_millis(950), "Retry-After: 1 was honoured");
    assert_eq!(app.state(id).await, "active");
    let statuses: Vec<u16> = app.receiver.calls_for("grant", &TestApp::grant_id(id)).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn a_long_retry_after_is_left_to_the_scheduler() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Status(429, Some(120))]);
    app.run_due().await;
    let due = app.due(id).await;
    assert_eq!(due[0].kind.as_str(), "apply");
    assert_eq!((due[0].due_at - elevate_core::Clock::now(app.clock.as_ref())).num_seconds(), 120);
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_is_a_transient_failure() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Delay(StdDuration::from_secs(3)), Fault::Delay(StdDuration::from_secs(3))]);
    app.run_due().await;
    assert_eq!(app.state(id).await, "approved");
    let events = app.events().await;
    let retry = events.iter().rfind(|e| e.kind == "grant.apply_retry").expect("retry recorded");
    assert!(retry.details["error"].as_str().unwrap().contains("did not answer"), "{}", retry.details);
}

#[tokio::test]
async fn reconciliation_removes_what_no_grant_backs_and_audits_it() {
    let app = TestApp::spawn().await;
    let live = app.active_grant("db", "1h").await;
    let ended = app.active_grant("db", "1h").await;
    app.alice().release(ended).await.ok();
    app.run_due().await;
    assert_eq!(app.state(ended).await, "released");
    app.receiver.plant("elevate-999");
    app.receiver.plant("elevate-1-old");
    app.receiver.plant(&TestApp::grant_id(ended));
    let report = app.app.service.reconcile().await.unwrap();
    let mut drift = report.drift_revoked.clone();
    drift.sort();
    assert_eq!(drift, ["elevate-1-old", TestApp::grant_id(ended).as_str(), "elevate-999"]);
    assert_eq!(app.receiver.held(), [TestApp::grant_id(live)]);
    let events = app.events().await;
    assert_eq!(events.iter().filter(|e| e.kind == "grant.drift_revoked").count(), 3);
}

#[tokio::test]
async fn revoking_something_removed_by_hand_succeeds() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    app.receiver.remove(&TestApp::grant_id(id));
    app.alice().release(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "released");
    let statuses: Vec<u16> =
        app.receiver.calls_for("revoke", &TestApp::grant_id(id)).iter().map(|c| c.status).collect();
    assert_eq!(statuses, [404]);
}
