//! The audit chain: every event is chained, verify walks it, tampering is named by seq.

use chrono::Duration;
use elevate_core::service::verify_store;
use elevate_tests::{TestApp, on_both_dbs};

on_both_dbs!(a_tampered_row_is_found_by_verify, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = app.active_grant("db", "1h").await;
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "expired");
    let ok = verify_store(app.store()).await.unwrap();
    assert!(ok.broken.is_none());
    assert_eq!(ok.checked, app.events().await.len() as u64);

    // A DB admin rewrites the reason of event 1 to hide what the access was for.
    let n = app
        .app
        .store
        .execute_raw_for_tests("UPDATE audit_events SET details = '{\"reason\":\"routine\"}' WHERE seq = 1")
        .await
        .unwrap();
    assert_eq!(n, 1);
    let broken = verify_store(app.store()).await.unwrap().broken.expect("tampering detected");
    assert_eq!(broken.seq, 1);
});

on_both_dbs!(a_deleted_row_is_found_by_verify, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    app.active_grant("db", "1h").await;
    app.app.store.execute_raw_for_tests("DELETE FROM audit_events WHERE seq = 2").await.unwrap();
    let broken = verify_store(app.store()).await.unwrap().broken.expect("deletion detected");
    assert_eq!(broken.seq, 2);
});

#[tokio::test]
async fn every_state_change_has_exactly_one_event() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    app.alice().release(id).await.ok();
    app.run_due().await;
    let kinds = app.event_kinds(id).await;
    assert_eq!(kinds, ["request.created", "request.approved", "grant.applied", "grant.revoking", "grant.released"]);
}

#[tokio::test]
async fn the_audit_checkpoint_records_the_chain_head() {
    let app = TestApp::spawn().await;
    app.active_grant("db", "1h").await;
    let head = app.events().await.last().unwrap().clone();
    elevate_bot::scheduler::run_job(&app.app.service, app.store(), "audit_checkpoint").await.unwrap();
    let cp = app.events().await.last().unwrap().clone();
    assert_eq!(cp.kind, "audit.checkpoint");
    assert_eq!(cp.details["seq"], head.seq);
    assert_eq!(cp.details["hash"], head.hash);
}
