//! Audit anchors: a database admin who cuts off the newest audit rows, or rewrites the chain
//! from some point on with every hash recomputed, leaves a chain that verifies on its own; the
//! anchor each checkpoint writes outside the database shows what is missing or rewritten.

use elevate_bot::anchor::{self, Given};
use elevate_core::service::verify_store;
use elevate_tests::{TestApp, on_both_dbs, policy};

/// An app whose checkpoints are anchored to a file in `dir`.
async fn anchored(db: elevate_tests::TestDb, dir: &std::path::Path) -> TestApp {
    let file = dir.join("anchors.jsonl");
    let config = policy::config("{WEBHOOK_URL}") + &format!("\n[audit]\nanchor_file = \"{}\"\n", file.display());
    TestApp::builder().db(db).config(&config).spawn().await
}

async fn checkpoint(app: &TestApp) {
    elevate_bot::scheduler::run_job_with(&app.app.service, app.store(), "audit_checkpoint", &app.app.config.scheduler)
        .await
        .unwrap();
}

/// What a DB admin runs behind elevate's back.
async fn sql(app: &TestApp, statement: String) {
    app.app.store.execute_raw_for_tests(Box::leak(statement.into_boxed_str())).await.unwrap();
}

/// The chain walk alone, then against the anchor.
async fn verify(app: &TestApp, given: &Given) -> Result<String, String> {
    let walked = verify_store(app.store()).await.unwrap();
    assert!(walked.broken.is_none(), "the chain itself still verifies: {:?}", walked.broken);
    anchor::check(app.store(), walked.head, given, None).await
}

fn newest(dir: &std::path::Path) -> Given {
    anchor::parse_arg(dir.join("anchors.jsonl").to_str().unwrap()).unwrap()
}

/// Points the append head at the newest remaining row, as an admin covering tracks would.
async fn reset_head(app: &TestApp) {
    sql(
        app,
        "UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit_events), \
         hash = (SELECT hash FROM audit_events WHERE seq = (SELECT MAX(seq) FROM audit_events)) WHERE id = 1"
            .into(),
    )
    .await;
}

on_both_dbs!(a_cut_off_tail_is_named_against_the_anchor, |db| async move {
    let dir = tempfile::tempdir().unwrap();
    let app = anchored(db, dir.path()).await;
    app.active_grant("db", "1h").await;
    checkpoint(&app).await;
    app.active_grant("db", "1h").await;
    checkpoint(&app).await;
    let lines = std::fs::read_to_string(dir.path().join("anchors.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2, "one anchor per checkpoint: {lines}");
    let given = newest(dir.path());
    let head = app.events().await.iter().rev().find(|e| e.kind != "audit.checkpoint").unwrap().clone();
    assert_eq!((given.anchor.seq, &given.anchor.hash), (head.seq, &head.hash), "the anchor is the checkpointed head");
    let ok = verify(&app, &given).await.unwrap();
    assert!(ok.contains("matches the chain; 1 event(s) after it"), "{ok}");

    // The newest rows go: the grant just applied, and the checkpoint that named it.
    let y = given.anchor.seq;
    sql(&app, format!("DELETE FROM audit_events WHERE seq >= {}", y - 1)).await;
    let why = verify(&app, &given).await.unwrap_err();
    assert!(why.contains(&format!("the chain ends at seq {}", y - 2)), "{why}");
    assert!(why.contains(&format!("events {}..={} are missing", y - 1, y)), "{why}");
    assert!(why.contains("line 2 of"), "names the anchor it used: {why}");
});

on_both_dbs!(a_rewritten_head_is_named_against_the_anchor, |db| async move {
    let dir = tempfile::tempdir().unwrap();
    let app = anchored(db, dir.path()).await;
    app.active_grant("db", "1h").await;
    checkpoint(&app).await;
    let given = newest(dir.path());
    let y = given.anchor.seq;

    // The newest events are replaced by others, appended properly after the cut: every hash
    // and link is right, and the chain grows past the anchored seq.
    sql(&app, format!("DELETE FROM audit_events WHERE seq >= {}", y - 1)).await;
    reset_head(&app).await;
    app.active_grant("db", "2h").await;
    assert!(app.events().await.last().unwrap().seq > y);
    let why = verify(&app, &given).await.unwrap_err();
    assert!(why.contains(&format!("seq {y} has hash")), "{why}");
    assert!(why.contains(&format!("the chain was rewritten at or before seq {y}")), "{why}");

    // The same from a `seq:hash` pasted from the audit channel.
    let pasted = anchor::parse_arg(&format!("{y}:{}", given.anchor.hash)).unwrap();
    let why = verify(&app, &pasted).await.unwrap_err();
    assert!(why.contains("rewritten"), "{why}");
});

#[tokio::test]
async fn a_forged_anchor_is_refused_when_checkpoints_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let seed = [9u8; 32];
    let key = dir.path().join("checkpoint.key");
    std::fs::write(&key, seed.iter().map(|b| format!("{b:02x}")).collect::<String>()).unwrap();
    let file = dir.path().join("anchors.jsonl");
    let config = policy::config("{WEBHOOK_URL}")
        + &format!("\n[audit]\nsigning_key_file = \"{}\"\nanchor_file = \"{}\"\n", key.display(), file.display());
    let app = TestApp::builder().config(&config).spawn().await;
    app.active_grant("db", "1h").await;
    checkpoint(&app).await;
    let (_, public) = elevate_core::audit::sign_checkpoint(&seed, 0, "");
    let given = newest(dir.path());
    assert!(given.anchor.signature.is_some());
    let head = verify_store(app.store()).await.unwrap().head;
    assert!(anchor::check(app.store(), head.clone(), &given, Some(&public)).await.is_ok());

    // Someone who can write the file but has not the key moves the anchor back.
    let mut forged = given.clone();
    forged.anchor.seq -= 1;
    let why = anchor::check(app.store(), head, &forged, Some(&public)).await.unwrap_err();
    assert!(why.contains("not signed by the checkpoint key"), "{why}");
}
