//! The audit chain: every event is chained, verify walks it, tampering is named by seq.

use chrono::Duration;
use elevate_core::service::verify_store;
use elevate_tests::{TestApp, on_both_dbs};
use serde_json::json;

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

async fn checkpoint(app: &TestApp) -> elevate_core::audit::AuditEvent {
    elevate_bot::scheduler::run_job(&app.app.service, app.store(), "audit_checkpoint").await.unwrap();
    let cp = app.events().await.last().unwrap().clone();
    assert_eq!(cp.kind, "audit.checkpoint");
    cp
}

async fn tamper(app: &TestApp, seq: i64) {
    let sql = format!("UPDATE audit_events SET details = '{{\"reason\":\"routine\"}}' WHERE seq = {seq}");
    assert_eq!(app.app.store.execute_raw_for_tests(Box::leak(sql.into_boxed_str())).await.unwrap(), 1);
}

on_both_dbs!(the_checkpoint_job_walks_only_what_came_after_its_last_checkpoint, |db| async move {
    use elevate_core::service::{CHECKPOINT_CURSOR, verify_since_checkpoint};
    let app = TestApp::builder().db(db).spawn().await;
    app.active_grant("db", "1h").await;
    let first = checkpoint(&app).await;
    assert_eq!(app.store().cursor(CHECKPOINT_CURSOR).await.unwrap(), first.seq);
    app.active_grant("db", "1h").await;
    let head = app.events().await.last().unwrap().clone();
    let second = checkpoint(&app).await;
    assert_eq!((&second.details["seq"], &second.details["hash"]), (&json!(head.seq), &json!(head.hash)));
    assert_eq!(app.store().cursor(CHECKPOINT_CURSOR).await.unwrap(), second.seq);
    let since = verify_since_checkpoint(app.store()).await.unwrap();
    let all = verify_store(app.store()).await.unwrap();
    assert_eq!((since.checked, all.checked), (1, second.seq as u64), "only the checkpoint itself is new");
    assert_eq!((since.head, since.broken), (all.head, None));

    // A break after the last checkpoint is reported as a full walk reports it.
    app.active_grant("db", "1h").await;
    tamper(&app, second.seq + 2).await;
    let broken = checkpoint(&app).await;
    assert_eq!(broken.details["broken_at"], second.seq + 2);
    assert_eq!(verify_store(app.store()).await.unwrap().broken.unwrap().seq, second.seq + 2);
    assert_eq!(app.store().cursor(CHECKPOINT_CURSOR).await.unwrap(), second.seq, "a broken checkpoint is no start");
});

on_both_dbs!(the_checkpoint_job_finds_the_head_it_starts_from_edited_or_gone, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    app.active_grant("db", "1h").await;
    let cp = checkpoint(&app).await;
    let named = cp.details["seq"].as_i64().unwrap();
    tamper(&app, named).await;
    assert_eq!(checkpoint(&app).await.details["broken_at"], named);

    let other = TestApp::spawn().await;
    other.active_grant("db", "1h").await;
    let cp = checkpoint(&other).await;
    let named = cp.details["seq"].as_i64().unwrap();
    let sql = format!("DELETE FROM audit_events WHERE seq = {named}");
    other.app.store.execute_raw_for_tests(Box::leak(sql.into_boxed_str())).await.unwrap();
    assert_eq!(checkpoint(&other).await.details["broken_at"], named);
});

#[tokio::test]
async fn an_edit_before_the_last_checkpoint_is_left_to_a_full_verify() {
    // The hourly job trusts what an earlier checkpoint verified; `elevate audit verify` walks
    // everything and finds it.
    let app = TestApp::spawn().await;
    app.active_grant("db", "1h").await;
    checkpoint(&app).await;
    tamper(&app, 1).await;
    let cp = checkpoint(&app).await;
    assert!(cp.details.get("broken_at").is_none(), "{}", cp.details);
    assert_eq!(verify_store(app.store()).await.unwrap().broken.unwrap().seq, 1);
}

/// Rewrites the whole chain from `seq` 1 with event 1's details replaced, recomputing every
/// hash, as a DB admin covering their tracks would.
async fn recompute_chain(db_path: &str, forged: serde_json::Value) {
    use elevate_core::audit::AuditEvent;
    use sqlx::{Connection, Row};
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{db_path}")).await.unwrap();
    let rows = sqlx::query("SELECT seq, at, actor, kind, subject, details FROM audit_events ORDER BY seq")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let mut prev = elevate_core::audit::GENESIS.to_string();
    for row in rows {
        let seq: i64 = row.get("seq");
        let details: String = row.get("details");
        let mut ev = AuditEvent {
            seq,
            at: elevate_core::time::from_millis(row.get("at")),
            actor: row.get("actor"),
            kind: row.get("kind"),
            subject: row.get("subject"),
            details: if seq == 1 { forged.clone() } else { serde_json::from_str(&details).unwrap() },
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        sqlx::query("UPDATE audit_events SET details = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(ev.details.to_string())
            .bind(&ev.prev_hash)
            .bind(&ev.hash)
            .bind(seq)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = ev.hash;
    }
}

#[tokio::test]
async fn signed_checkpoints_catch_a_recomputed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let seed = [7u8; 32];
    let key_file = dir.path().join("checkpoint.key");
    std::fs::write(&key_file, hex_encode(&seed)).unwrap();
    let config = elevate_tests::policy::config("{WEBHOOK_URL}")
        + &format!("\n[audit]\nsigning_key_file = \"{}\"\n", key_file.display());
    let app = TestApp::builder().config(&config).spawn().await;
    app.active_grant("db", "1h").await;
    elevate_bot::scheduler::run_job_with(&app.app.service, app.store(), "audit_checkpoint", &app.app.config.scheduler)
        .await
        .unwrap();
    let (_, public) = elevate_core::audit::sign_checkpoint(&seed, 0, "");
    let cp = app.events().await.last().unwrap().clone();
    assert_eq!(cp.details["public_key"], public.as_str());
    let ok = elevate_core::service::verify_store_with(app.store(), Some(&public)).await.unwrap();
    assert_eq!((ok.checkpoints, ok.signed_checkpoints, ok.broken.is_none()), (1, 1, true));
    let other = elevate_core::audit::sign_checkpoint(&[8u8; 32], 0, "").1;
    let wrong = elevate_core::service::verify_store_with(app.store(), Some(&other)).await.unwrap();
    assert!(wrong.broken.unwrap().why.contains("signature"), "a key that did not sign is refused");

    recompute_chain(&app.db.url, serde_json::json!({ "reason": "routine" })).await;
    let walk = verify_store(app.store()).await.unwrap();
    let broken = walk.broken.expect("the checkpoint no longer matches the recomputed chain");
    assert_eq!(broken.seq, cp.seq);
    assert!(broken.why.contains("checkpoint names hash"), "{}", broken.why);
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// PostgreSQL seals events onto the chain after their transaction commits (in batches, so the
/// chain's head is not locked once per transition). A replica that stopped between a commit
/// and its seal leaves its event pending: another replica's sweep seals it, after what came
/// before, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_left_pending_by_a_stopped_replica_is_sealed_by_another() {
    let Some(db) = elevate_tests::db::TestDb::postgres().await else {
        return;
    };
    let app = TestApp::builder().db(db).spawn().await;
    let id = app.active_grant("db", "1h").await;
    let before = app.events().await;
    assert_eq!(app.event_kinds(id).await, ["request.created", "request.approved", "grant.applied"]);
    // What a transition's transaction writes, committed by a replica that then died.
    app.app
        .store
        .execute_raw_for_tests(
            "INSERT INTO audit_pending (at, actor, kind, subject, details) \
             VALUES (1796000000000, 'person:alice', 'grant.released', NULL, '{\"note\":\"left pending\"}')",
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let sealed = loop {
        let now = app.events().await;
        if now.len() > before.len() {
            break now;
        }
        assert!(std::time::Instant::now() < deadline, "the pending event was never sealed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let last = sealed.last().unwrap();
    assert_eq!((last.seq, last.kind.as_str()), (before.last().unwrap().seq + 1, "grant.released"));
    assert_eq!(last.details, json!({ "note": "left pending" }));
    assert_eq!(last.prev_hash, before.last().unwrap().hash);
    let report = verify_store(app.store()).await.unwrap();
    assert!(report.broken.is_none(), "{:?}", report.broken);
    assert_eq!(report.checked, sealed.len() as u64);
}
