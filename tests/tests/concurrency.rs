//! Under any concurrency exactly one caller wins a transition.

use chrono::Duration;
use elevate_tests::{TestApp, on_both_dbs};
use futures::future::join_all;

on_both_dbs!(twenty_concurrent_approvals_make_one_grant_and_one_revoke, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = app.alice().request("busy", "1h", "incident").await.id();
    let approvals = (1..=20).map(|i| {
        let p = app.person(&format!("p{i:02}"));
        async move { p.approve(id).await.status }
    });
    let statuses = join_all(approvals).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "approved");
    assert_eq!(r.approvals.len(), 1);
    assert_eq!(app.due_kinds(id).await, ["apply"], "exactly one apply scheduled");

    app.run_due().await;
    assert_eq!(app.due_kinds(id).await.iter().filter(|k| **k == "expire").count(), 1, "exactly one expiry scheduled");
    app.after(Duration::hours(1)).await;
    let gid = TestApp::grant_id(id);
    assert_eq!(app.receiver.calls_for("grant", &gid).len(), 1);
    assert_eq!(app.receiver.calls_for("revoke", &gid).len(), 1);
    assert_eq!(app.state(id).await, "expired");
});

on_both_dbs!(one_person_clicking_twenty_times_counts_once, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = app.alice().request("prod", "30m", "INC-1 deploy").await.id();
    let clicks = (0..20).map(|_| {
        let bob = app.bob();
        async move { bob.approve(id).await.status }
    });
    let statuses = join_all(clicks).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "pending", "two distinct approvers are still needed");
    assert_eq!(r.approvals.len(), 1);
});

on_both_dbs!(concurrent_release_and_revoke_end_the_grant_once, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let id = app.active_grant("db", "1h").await;
    let (alice, bob) = (app.alice(), app.bob());
    let (a, b) = tokio::join!(alice.release(id), bob.revoke(id, "stop"));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    app.run_due().await;
    assert_eq!(app.receiver.calls_for("revoke", &TestApp::grant_id(id)).len(), 1);
    assert!(["released", "revoked"].contains(&app.state(id).await.as_str()));
});

// Two approvers click at the same moment on requests that need both: whichever waits for the
// other's lock must see the other's approval (on PostgreSQL the row is locked and read in one
// statement, and approvals committed while it waited are read again), so every request ends
// approved, once.
on_both_dbs!(two_approvers_racing_on_a_role_that_needs_both_approve_it_once, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    for i in 0..20 {
        let id = app.alice().request("prod", "30m", &format!("INC-{i} race")).await.id();
        let (bob, carol) = (app.bob(), app.carol());
        let (b, c) = tokio::join!(bob.approve(id), carol.approve(id));
        assert_eq!((b.status, c.status), (200, 200), "both approvals count");
        let r = app.request(id).await;
        assert_eq!(r.state.as_str(), "approved", "request {id} with {} approvals", r.approvals.len());
        assert_eq!(r.approvals.len(), 2);
        assert_eq!(app.due_kinds(id).await, ["apply"], "exactly one apply scheduled");
    }
});
