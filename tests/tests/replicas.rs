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
