//! Nothing is lost on a crash: due work lives in the database, and after a restart every
//! overdue item runs at once.

use chrono::Duration;
use elevate_tests::{TestApp, on_both_dbs};
use std::time::Duration as StdDuration;

/// Waits (real time, bounded) until `id` reaches `state`, with the background loop running.
async fn wait_for(app: &TestApp, id: i64, state: &str) {
    for _ in 0..100 {
        if app.state(id).await == state {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    panic!("request {id} is {} after 2 s, expected {state}", app.state(id).await);
}

on_both_dbs!(overdue_grants_are_revoked_at_once_after_a_restart, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let ids =
        [app.active_grant("db", "1h").await, app.active_grant("db", "2h").await, app.active_grant("db", "4h").await];
    // The server dies; while it is down, every grant's time runs out.
    app.advance(Duration::hours(5));
    let app = app.crash_and_restart(true).await;
    for id in ids {
        wait_for(&app, id, "expired").await;
        assert!(!app.receiver.holds(&TestApp::grant_id(id)));
    }
});

#[tokio::test]
async fn an_approval_committed_before_a_crash_is_applied_once_after_it() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    let app = app.crash_and_restart(true).await;
    wait_for(&app, id, "active").await;
    assert_eq!(app.receiver.calls_for("grant", &TestApp::grant_id(id)).len(), 1);
}

#[tokio::test]
async fn work_claimed_by_a_process_that_died_runs_again() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    // The dying process had claimed the apply item but never ran it.
    let claimed = app
        .store()
        .claim_due(elevate_core::Clock::now(app.clock.as_ref()), 10, StdDuration::from_secs(300))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let app = app.crash_and_restart(true).await;
    wait_for(&app, id, "active").await;
}

#[tokio::test]
async fn the_background_loop_wakes_for_new_work_without_polling_lag() {
    let app = TestApp::builder().background().spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    wait_for(&app, id, "active").await;
    app.alice().release(id).await.ok();
    wait_for(&app, id, "released").await;
}
