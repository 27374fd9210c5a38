//! Requests granted in part: a bundle with `partial = true` leaves out a role a rule refuses
//! and asks for the others, names what it left out in the answer and on the card, and grants
//! the roles approved even when another is denied or refused at its start. Other bundles, and
//! roles typed with commas, stay all or nothing.
//!
//! The test clock starts on Monday 2026-03-02 at 09:00 UTC.

use chrono::Duration;
use elevate_tests::{TestApp, TestDb, on_both_dbs, policy};
use serde_json::{Value, json};

/// `kit` (granted in part) and `strict` (all or nothing); `prod` is frozen until tomorrow.
const KIT: &str = r#"
[bundles.kit]
roles = ["db", "busy", "prod"]
partial = true

[bundles.strict]
roles = ["db", "prod"]

[rules.prod-freeze]
kind = "freeze"
from = "2026-03-01T00:00:00Z"
until = "2026-03-03T00:00:00Z"
roles = ["prod"]
advice = "Ask the release manager."
"#;

async fn app_on(db: TestDb, more: &str) -> TestApp {
    TestApp::builder().db(db).config(&(policy::config("{WEBHOOK_URL}") + more)).spawn().await
}

fn roles_and_states(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| format!("{} {}", m["role"].as_str().unwrap(), m["state"].as_str().unwrap()))
        .collect()
}

fn left_out(body: &Value) -> Vec<String> {
    body["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["effect"] == "refused_role")
        .map(|r| r["detail"].as_str().unwrap().to_string())
        .collect()
}

on_both_dbs!(a_role_refused_by_a_rule_is_left_out_and_a_denied_one_does_not_stop_the_others, |db| async move {
    let app = app_on(db, KIT).await;
    let body = app.alice().request("kit", "1h", "INC-7 outage in orders").await.ok();
    assert_eq!(roles_and_states(&body), ["db pending", "busy pending"], "{body}");
    let notes = left_out(&body);
    assert_eq!(notes.len(), 1, "{body}");
    assert!(
        notes[0].starts_with("`prod` refused; the others go ahead. Refused by rule `prod-freeze`")
            && notes[0].contains("release manager"),
        "{notes:?}"
    );
    let refused: Vec<_> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.actor == "rule:prod-freeze" && e.kind == "request.denied")
        .collect();
    assert_eq!(refused.len(), 1, "the refusal of prod is recorded as any refusal is");
    assert_eq!(refused[0].details["role"], "prod");

    // All or nothing unless the bundle says otherwise, and for roles typed with commas.
    let msg = app.alice().request("strict", "1h", "INC-7 x").await.refused(403);
    assert!(msg.starts_with("Nothing was requested: rule `prod-freeze` refuses `prod`"), "{msg}");
    app.alice().request("db,busy,prod", "1h", "INC-7 x").await.refused(403);

    // p01 may deny busy only: db goes on and is granted once bob approves it.
    let lead = body["id"].as_i64().unwrap();
    let ids: Vec<i64> = body["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    app.person("p01").deny(lead, "not for this incident").await.ok();
    app.run_due().await;
    assert_eq!((app.state(ids[0]).await, app.state(ids[1]).await), ("pending".into(), "denied".into()));
    app.bob().approve(lead).await.ok();
    app.run_due().await;
    app.run_due().await;
    assert_eq!(app.state(ids[0]).await, "active", "denying busy did not end db");
    assert!(app.receiver.holds(&TestApp::grant_id(ids[0])));
    assert_eq!(app.state(ids[1]).await, "denied");

    // More time on db is asked of db's approvers alone: the bundle's marks stay with the bundle.
    let ext = app.alice().extend(ids[0], "30m").await.id();
    let shown = app.alice().show(ext).await.ok();
    assert!(shown["rules"].as_array().unwrap().is_empty(), "{shown}");
});

#[tokio::test]
async fn when_every_role_is_refused_nothing_is_requested() {
    let app = app_on(
        TestDb::sqlite(),
        &KIT.replace("roles = [\"prod\"]\nadvice", "roles = [\"prod\", \"db\", \"busy\"]\nadvice"),
    )
    .await;
    let answer = app.alice().request("kit", "1h", "INC-7 x").await;
    assert_eq!(answer.body["error"]["code"], "rule_denied");
    let listed = app.alice().call(reqwest::Method::GET, "/api/v1/requests?state=pending", None).await.ok();
    assert_eq!(listed["requests"], json!([]), "no role was asked for");
    let denied = app.alice().call(reqwest::Method::GET, "/api/v1/requests?state=denied", None).await.ok();
    assert_eq!(denied["requests"].as_array().unwrap().len(), 3, "each refusal recorded against its role");
}

#[tokio::test]
async fn a_locked_down_role_is_left_out_too() {
    let app = app_on(TestDb::sqlite(), KIT).await;
    let lock = json!({ "scope": "busy", "reason": "suspicious queries" });
    app.dave().call(reqwest::Method::POST, "/api/v1/lockdowns", Some(lock)).await.ok();
    let body = app.alice().request("kit", "1h", "INC-7 outage in orders").await.ok();
    assert_eq!(roles_and_states(&body), ["db pending"], "{body}");
    let notes = left_out(&body);
    assert!(notes[0].starts_with("`busy` refused; the others go ahead. `busy` is locked down by dave"), "{notes:?}");
    assert!(notes[0].ends_with("suspicious queries."), "{notes:?}");
    assert!(notes[1].starts_with("`prod` refused; the others go ahead."), "{notes:?}");
}

on_both_dbs!(scheduled_roles_granted_in_part_start_each_on_their_own, |db| async move {
    let rules = r#"
[bundles.kit]
roles = ["db", "prod"]
partial = true

[rules.prod-freeze]
kind = "freeze"
from = "2026-03-02T11:00:00Z"
until = "2026-03-03T00:00:00Z"
roles = ["prod"]
"#;
    let app = app_on(db, rules).await;
    let body = app
        .alice()
        .call(
            reqwest::Method::POST,
            "/api/v1/requests",
            Some(json!({ "role": "kit", "duration": "1h", "reason": "INC-8 maintenance", "starts_in": "3h" })),
        )
        .await
        .ok();
    assert_eq!(roles_and_states(&body), ["db pending", "prod pending"], "no freeze yet at 09:00");
    let lead = body["id"].as_i64().unwrap();
    let ids: Vec<i64> = body["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    app.bob().approve(lead).await.ok();
    app.carol().approve(lead).await.ok();
    app.run_due().await;
    assert_eq!((app.state(ids[0]).await, app.state(ids[1]).await), ("scheduled".into(), "scheduled".into()));

    app.advance(Duration::hours(3)); // 12:00: prod is frozen now
    app.run_due().await;
    app.run_due().await;
    assert_eq!(app.state(ids[0]).await, "active", "db starts on its own");
    assert_eq!(app.state(ids[1]).await, "denied");
    assert_eq!(app.request(ids[1]).await.closed_by.as_deref(), Some("rule:prod-freeze"));
});

on_both_dbs!(slack_says_what_was_left_out_and_grants_the_rest, |db| async move {
    let config = policy::config("{WEBHOOK_URL}")
        + &KIT.replace("roles = [\"db\", \"busy\", \"prod\"]", "roles = [\"db\", \"logs\", \"prod\"]");
    let app = TestApp::builder().db(db).config(&config).slack().spawn().await;
    let answer = app.slack_command("alice", "kit 1h INC-7 outage in orders").await.text();
    assert!(answer.contains("for `db`, `logs` (1h) sent to their approvers"), "{answer}");
    assert!(answer.contains("a role denied does not stop the others"), "{answer}");
    assert!(answer.contains("`prod` refused; the others go ahead. Refused by rule `prod-freeze`"), "{answer}");
    let lead = TestApp::id_in(&answer);
    app.deliver().await;
    let card = app.card(lead).all_text();
    assert!(card.contains("Granted in part"), "{card}");
    assert!(card.contains("`prod` refused; the others go ahead."), "{card}");

    app.slack_click("bob", "elevate_approve", lead).await;
    app.tick().await;
    assert_eq!(app.state(lead).await, "active");
    assert_eq!(app.state(lead + 1).await, "active", "logs, approved on its own, with db");
    assert!(app.card(lead).buttons().is_empty());
});

// A cancel withdraws the roles one by one. A role approved while it goes through them must not
// be granted after the cancel, even when the request may be granted in part: the moment
// between the cancel's first role and its last is set up here by hand.
on_both_dbs!(a_role_approved_while_the_request_is_being_cancelled_is_not_granted, |db| async move {
    let app = app_on(db, KIT).await;
    let body = app.alice().request("kit", "1h", "INC-7 outage in orders").await.ok();
    let lead = body["id"].as_i64().unwrap();
    let ids: Vec<i64> = body["members"].as_array().unwrap().iter().map(|m| m["id"].as_i64().unwrap()).collect();
    app.bob().approve(lead).await.ok();
    assert_eq!(app.state(ids[0]).await, "waiting");
    // The cancel has withdrawn db, and not yet busy, when p01 approves busy.
    let sql = format!("UPDATE requests SET state = 'cancelled' WHERE id = {}", ids[0]);
    app.app.store.execute_raw_for_tests(Box::leak(sql.into_boxed_str())).await.unwrap();
    app.person("p01").approve(lead).await.ok();
    app.run_due().await;
    app.run_due().await;
    assert_eq!(app.state(ids[1]).await, "denied", "busy was not granted after the cancel");
    assert!(!app.receiver.holds(&TestApp::grant_id(ids[1])));
});
