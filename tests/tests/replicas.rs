//! Several replicas on one PostgreSQL database share the due work; each item runs once.

use chrono::Duration;
use elevate_tests::{TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_revoke_each_grant_exactly_once() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let a = TestApp::builder().db(db).spawn().await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        let id = a.alice().request("db", "1h", "INC-1 load").await.id();
        a.bob().approve(id).await.ok();
        ids.push(id);
    }
    a.run_due().await;
    // A second replica: same database and receiver, its own scheduler.
    let b = TestApp::builder()
        .db(TestDb::existing(&url, elevate_tests::db::Dialect::Postgres))
        .config(&elevate_tests::policy::config(&a.receiver.url))
        .spawn()
        .await;
    a.advance(Duration::hours(1));
    b.clock.set(elevate_core::Clock::now(a.clock.as_ref()));
    let (na, nb) = tokio::join!(a.run_due(), b.run_due());
    assert!(na + nb >= 60, "expire and revoke items for 30 grants: ran {na} + {nb}");
    for id in ids {
        assert_eq!(a.state(id).await, "expired");
        assert_eq!(a.receiver.calls_for("revoke", &TestApp::grant_id(id)).len(), 1, "grant {id} revoked once");
    }
}

/// Replica A only serves the API (its scheduler is off); replica B runs the due work but looks
/// at the database only once an hour. An approval on A makes the apply due at once, and B
/// applies it because A's transaction signalled the work (PostgreSQL `NOTIFY`), not because B
/// looked. The wait below is a guard against hanging, not a measurement: without the signal B
/// would find the work an hour later. (Paused tokio time cannot stand in for it here: with real
/// database I/O the runtime is idle while it waits, and paused time would then jump straight
/// to B's hour.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_replica_picks_up_work_another_made_due_without_waiting_for_its_poll() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let a = TestApp::builder().db(db).spawn().await;
    let config = format!("{}\n[scheduler]\npoll = \"1h\"\n", elevate_tests::policy::config(&a.receiver.url));
    let b = TestApp::builder()
        .db(TestDb::existing(&url, elevate_tests::db::Dialect::Postgres))
        .config(&config)
        .background()
        .spawn()
        .await;
    let id = a.alice().request("db", "1h", "INC-7 replicas").await.id();
    a.bob().approve(id).await.ok();
    let mut waited = 0;
    while a.state(id).await != "active" {
        assert!(waited < 1_500, "replica B did not apply {id}: the signal did not wake it");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(a.receiver.calls_for("grant", &TestApp::grant_id(id)).len(), 1, "applied once");
    drop(b);
}
