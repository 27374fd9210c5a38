//! Requests of several roles at once, end to end through the REST API, the scheduler and the
//! webhook provider: each role approved by its own approvers, granted together or not at all,
//! ended each on its own.

use chrono::Duration;
use elevate_tests::{TestApp, on_both_dbs, policy};
use serde_json::{Value, json};

async fn app_on(db: elevate_tests::TestDb, more: &str) -> TestApp {
    let config = policy::config("{WEBHOOK_URL}") + policy::BATCHES + more;
    TestApp::builder().db(db).config(&config).spawn().await
}

fn states(body: &Value) -> Vec<(String, String)> {
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["state"].as_str().unwrap().to_string()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn ask(app: &TestApp, roles: &str, duration: &str) -> (i64, Vec<i64>) {
    let body = app.alice().request(roles, duration, "INC-7 outage in orders").await.ok();
    let ids = body["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    (body["id"].as_i64().unwrap(), ids)
}

on_both_dbs!(one_approver_covers_the_roles_they_may_approve_and_nothing_is_granted_until_all_are_in, |db| async move {
    let app = app_on(db, "").await;
    let body = app.alice().request("db,prod,audit", "1h", "INC-7 outage in orders").await.ok();
    let lead = body["id"].as_i64().unwrap();
    assert_eq!(body["batch"], lead, "the request bears its first role's number");
    assert_eq!(states(&body), pairs(&[("db", "pending"), ("prod", "pending"), ("audit", "pending")]));
    let ids: Vec<i64> = body["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    let (db, prod, audit) = (ids[0], ids[1], ids[2]);
    assert_eq!(db, lead);
    assert!(body["members"].as_array().unwrap().iter().all(|m| m["ticket"] == "INC-7" || m["role"] != "db"));

    // bob approves db and prod (both his) with one call; prod needs a second approver.
    let after_bob = app.bob().approve(lead).await.ok();
    assert_eq!(after_bob["approved"], json!([db, prod]));
    assert_eq!(states(&after_bob), pairs(&[("db", "waiting"), ("prod", "pending"), ("audit", "pending")]));
    app.run_due().await;
    assert!(!app.receiver.holds(&TestApp::grant_id(db)), "db waits for the other roles");
    assert_eq!(app.due_kinds(db).await, ["pending_timeout"], "a waiting role still times out");

    let again = app.bob().approve(lead).await.refused(409);
    assert!(again.contains("already approved"), "{again}");
    let erin = app.person("erin").approve(lead).await.refused(403);
    assert!(erin.contains("not an approver"), "{erin}");

    app.carol().approve(prod).await.ok();
    app.run_due().await;
    assert_eq!(app.state(prod).await, "waiting");
    assert_eq!(app.state(audit).await, "pending");
    assert!(app.receiver.held().is_empty(), "nothing applied while audit waits for the security team");

    let last = app.dave().approve(lead).await.ok();
    assert_eq!(last["approved"], json!([audit]));
    app.run_due().await;
    for id in [db, prod, audit] {
        assert_eq!(app.state(id).await, "active", "{id}");
        assert!(app.receiver.holds(&TestApp::grant_id(id)), "{id}");
    }
    assert_eq!(
        app.event_kinds(db).await,
        ["request.created", "request.approval_added", "request.approved", "grant.applied"]
    );
    // The refused clicks (bob twice, erin) are audited on the first role still pending.
    assert_eq!(
        app.event_kinds(prod).await,
        [
            "request.created",
            "request.approval_added",
            "request.approval_refused",
            "request.approval_refused",
            "request.approval_added",
            "request.approved",
            "grant.applied"
        ]
    );
    let shown = app.alice().show(prod).await.ok();
    assert_eq!(states(&shown), pairs(&[("db", "active"), ("prod", "active"), ("audit", "active")]));
});

on_both_dbs!(a_rule_or_a_maximum_refusing_one_role_refuses_them_all, |db| async move {
    let freeze = r#"
[rules.audit-freeze]
kind = "freeze"
from = "2026-03-01T00:00:00Z"
until = "2026-03-03T00:00:00Z"
roles = ["audit"]
advice = "Ask the auditors."
"#;
    let app = app_on(db, freeze).await;
    let refused = app.alice().request("db,audit", "1h", "INC-8 x").await;
    assert_eq!(refused.body["error"]["code"], "rule_denied");
    let msg = refused.refused(403);
    assert!(
        msg.contains("Nothing was requested") && msg.contains("`audit-freeze`") && msg.contains("`audit`"),
        "{msg}"
    );

    let too_long = app.alice().request("incident", "3h", "INC-8 x").await.refused(400);
    assert!(too_long.contains("`prod` can be held for at most 2h"), "{too_long}");
    let not_mine = app.person("mallory").request("db,prod", "1h", "INC-8 x").await.refused(403);
    assert!(not_mine.contains("Nothing was requested") && not_mine.contains("`db`"), "{not_mine}");

    let all = app.dave().call(reqwest::Method::GET, "/api/v1/requests", None).await.ok();
    let rows: Vec<(String, String)> = all["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["role"].as_str().unwrap().to_string(), r["state"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(rows, pairs(&[("audit", "denied")]), "only the refusal is recorded: nothing pending, nothing granted");
    assert!(app.receiver.held().is_empty());
});

on_both_dbs!(granted_roles_end_each_on_their_own, |db| async move {
    let app = app_on(db, "").await;
    let (lead, ids) = ask(&app, "db,prod,audit", "2h").await;
    let (db, prod, audit) = (ids[0], ids[1], ids[2]);
    app.bob().approve(lead).await.ok();
    app.carol().approve(lead).await.ok();
    app.dave().approve(lead).await.ok();
    app.run_due().await;
    assert_eq!(app.state(audit).await, "active");

    // One role revoked by its approver; the others stay.
    app.dave().revoke(audit, "audit done").await.ok();
    app.run_due().await;
    assert_eq!(app.state(audit).await, "revoked");
    assert!(!app.receiver.holds(&TestApp::grant_id(audit)));
    assert_eq!(app.state(db).await, "active");

    // db extended by an hour (its own max total allows it); prod is not.
    let ext = app.alice().extend(db, "1h").await.id();
    app.bob().approve(ext).await.ok();
    app.run_due().await;
    app.after(Duration::hours(2)).await;
    app.run_due().await;
    assert_eq!(app.state(prod).await, "expired");
    assert!(!app.receiver.holds(&TestApp::grant_id(prod)));
    assert_eq!(app.state(db).await, "active", "db runs on to its own, extended end");
    app.after(Duration::hours(1)).await;
    app.run_due().await;
    assert_eq!(app.state(db).await, "expired");
    let shown = app.alice().show(lead).await.ok();
    assert_eq!(states(&shown), pairs(&[("db", "expired"), ("prod", "expired"), ("audit", "revoked")]));
});

on_both_dbs!(a_denial_a_timeout_or_a_cancel_of_one_role_ends_the_request, |db| async move {
    let app = app_on(db, "").await;

    // bob denies db after dave approved audit: audit, already waiting, is denied with it.
    let (lead, ids) = ask(&app, "db,audit", "1h").await;
    app.dave().approve(lead).await.ok();
    assert_eq!(app.state(ids[1]).await, "waiting");
    app.bob().deny(lead, "not during the freeze").await.ok();
    assert_eq!(app.request(ids[0]).await.closed_by.as_deref(), Some("bob"), "bob denies what he may deny");
    app.run_due().await;
    let audit_row = app.request(ids[1]).await;
    assert_eq!(audit_row.state.as_str(), "denied");
    assert_eq!(audit_row.closed_by.as_deref(), Some("rule:batch"));
    assert!(audit_row.note.as_deref().unwrap().contains("`db`"), "{:?}", audit_row.note);
    assert!(app.receiver.held().is_empty());

    // Nobody decides on audit: when the hour is up, both time out; nothing was granted.
    let (lead, ids) = ask(&app, "db,audit", "1h").await;
    app.bob().approve(lead).await.ok();
    app.after(Duration::hours(1)).await;
    app.run_due().await;
    assert_eq!(app.state(ids[0]).await, "timed_out");
    assert_eq!(app.state(ids[1]).await, "timed_out");
    assert!(app.receiver.held().is_empty());

    // The requester withdraws: every role, waiting or pending.
    let (lead, ids) = ask(&app, "incident", "1h").await;
    app.bob().approve(lead).await.ok();
    app.alice().cancel(lead).await.ok();
    app.run_due().await;
    for id in ids {
        assert_eq!(app.state(id).await, "cancelled", "{id}");
    }
    assert!(app.receiver.held().is_empty());
});

#[tokio::test]
async fn a_bundle_is_asked_for_by_name_and_the_api_takes_a_list_of_roles() {
    let app = app_on(elevate_tests::TestDb::sqlite(), "").await;
    let (lead, ids) = ask(&app, "incident", "1h").await;
    assert_eq!(ids.len(), 3);
    assert_eq!(lead, ids[0]);
    let listed = app
        .alice()
        .call(
            reqwest::Method::POST,
            "/api/v1/requests",
            Some(json!({ "roles": ["db", "audit"], "duration": "30m", "reason": "INC-9 x" })),
        )
        .await
        .ok();
    assert_eq!(states(&listed), pairs(&[("db", "pending"), ("audit", "pending")]));
    let both = app
        .alice()
        .call(
            reqwest::Method::POST,
            "/api/v1/requests",
            Some(json!({ "role": "db", "roles": ["audit"], "reason": "INC-9 x" })),
        )
        .await
        .refused(400);
    assert!(both.contains("either `role` or `roles`"), "{both}");
    let typo = app.alice().request("db,adit", "1h", "INC-9 x").await.refused(404);
    assert!(typo.contains("Did you mean `audit`"), "{typo}");
}
