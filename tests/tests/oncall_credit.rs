//! On call counts as one approval (`effect = "one_approval"`): a role needing two approvals then
//! needs one person, a role needing one is approved by the rule, and a rule that asks for people
//! (an added approval, `no_auto_approve`) keeps at least one person in the loop. The credit is
//! kept with the request and shown on the card, in the API and in the audit events; it is per
//! role for a request of several roles, holds for scheduled access, and is not inherited by an
//! extension.
//!
//! The test clock starts on Monday 2026-03-02 at 09:00 UTC; shifts below run 08:00–20:00.

use chrono::Duration;
use elevate_tests::{
    TestApp, TestDb, on_both_dbs,
    oncall::{self, OnCallFakes, at, notes, pagerduty_schedules},
};
use serde_json::{Value, json};

const PD_CREDIT: &str = r#"
[rules.pd-credit]
kind = "on_call"
service = "pagerduty"
roles = ["db", "prod"]
schedules = ["PSCHED1"]
escalation_levels = [1]
match_by = "pagerduty_user"
effect = "one_approval"
"#;

async fn pd_app(db: TestDb, rules: &str) -> (OnCallFakes, TestApp) {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = TestApp::builder().db(db).config(&oncall::config(&f, "1m", rules)).spawn().await;
    (f, app)
}

async fn event(app: &TestApp, id: i64, kind: &str) -> elevate_core::audit::AuditEvent {
    app.events()
        .await
        .into_iter()
        .find(|e| e.subject == Some(id) && e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event for #{id}"))
}

/// (required, credited, missing) as the API shows them.
fn threshold(body: &Value) -> (i64, i64, Option<i64>) {
    (
        body["approvals_required"].as_i64().unwrap(),
        body["approvals_credited"].as_i64().unwrap(),
        body["approvals_missing"].as_i64(),
    )
}

on_both_dbs!(on_call_counts_as_one_approval_and_a_person_gives_the_rest, |db| async move {
    let (_f, app) = pd_app(db, PD_CREDIT).await;

    let body = app.alice().request("prod", "30m", "INC-7 failover").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["state"], "pending", "{body}");
    assert_eq!(threshold(&body), (2, 1, Some(1)));
    assert_eq!(
        notes(&body),
        ["pd-credit one_approval: alice is on call in PagerDuty schedule PSCHED1 (Primary), level 1"]
    );
    let created = event(&app, id, "request.created").await.details;
    assert_eq!((created["approvals_required"].as_i64(), created["approvals_credited"].as_i64()), (Some(2), Some(1)));
    assert_eq!(
        created["on_call"],
        json!({ "rule": "pd-credit", "service": "pagerduty", "schedule": "PSCHED1",
                "schedule_name": "Primary", "level": 1 })
    );

    let approved = app.bob().approve(id).await.ok();
    assert_eq!(approved["state"], "approved", "bob's approval and being on call make two");
    let ev = event(&app, id, "request.approved").await;
    assert_eq!(ev.actor, "person:bob");
    assert_eq!((ev.details["approvals"].as_i64(), ev.details["required"].as_i64()), (Some(2), Some(2)));
    assert_eq!(ev.details["on_call"]["rule"], "pd-credit");
    assert_eq!(ev.details["on_call"]["level"], 1);
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");
    let stored = app.request(id).await;
    assert_eq!(stored.rules[0].credit.as_ref().map(|c| c.schedule.as_str()), Some("PSCHED1"), "kept with the row");

    // A role needing one approval: being on call is that approval.
    let body = app.alice().request("db", "1h", "INC-8 lag").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["state"], "approved", "{body}");
    let ev = event(&app, id, "request.approved").await;
    assert_eq!(ev.actor, "rule:auto-approve");
    assert_eq!(ev.details["on_call"]["rule"], "pd-credit");
    assert_eq!((ev.details["approvals"].as_i64(), ev.details["required"].as_i64()), (Some(1), Some(1)));

    // Not on call: no credit.
    let body = app.person("erin").request("prod", "30m", "INC-9 curious").await.ok();
    assert_eq!(threshold(&body), (2, 0, Some(2)));
    assert_eq!(body["rules"][0]["effect"], "not_on_call");
});

#[tokio::test]
async fn a_rule_that_asks_for_people_keeps_one_person_in_the_loop() {
    let rules = format!(
        "{PD_CREDIT}
[rules.humans-decide-db]
kind = \"freeze\"
from = \"2026-03-01T00:00:00Z\"
until = \"2026-03-08T00:00:00Z\"
effect = \"no_auto_approve\"
roles = [\"db\"]

[rules.release-week]
kind = \"freeze\"
from = \"2026-03-01T00:00:00Z\"
until = \"2026-03-08T00:00:00Z\"
effect = \"extra_approval\"
roles = [\"prod\"]
"
    );
    let (_f, app) = pd_app(TestDb::sqlite(), &rules).await;

    // no_auto_approve: the credit cannot be the only approval.
    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "pending");
    assert_eq!(threshold(&body), (1, 0, Some(1)));
    let id = body["id"].as_i64().unwrap();
    assert_eq!(app.bob().approve(id).await.ok()["state"], "approved");

    // An added approval: 2 + 1 needed, on call counts for one, two people for the rest.
    let body = app.alice().request("prod", "30m", "INC-2 x").await.ok();
    assert_eq!(threshold(&body), (3, 1, Some(2)));
    let id = body["id"].as_i64().unwrap();
    assert_eq!(app.bob().approve(id).await.ok()["state"], "pending");
    assert_eq!(app.carol().approve(id).await.ok()["state"], "approved");
}

on_both_dbs!(each_role_of_a_request_the_rule_names_gets_its_credit, |db| async move {
    let (_f, app) = pd_app(db, PD_CREDIT).await;
    let body = app.alice().request("db,prod,esc", "30m", "INC-3 migration").await.ok();
    let members = body["members"].as_array().unwrap().clone();
    let by_role = |role: &str| members.iter().find(|m| m["role"] == role).unwrap().clone();
    assert_eq!(by_role("db")["state"], "waiting", "needs one, and being on call is it");
    assert_eq!(threshold(&by_role("prod")), (2, 1, Some(1)));
    assert_eq!(threshold(&by_role("esc")), (1, 0, Some(1)), "the rule does not name esc");

    let lead = body["id"].as_i64().unwrap();
    app.bob().approve(lead).await.ok();
    app.run_due().await;
    for m in &members {
        assert_eq!(app.state(m["id"].as_i64().unwrap()).await, "active", "{}", m["role"]);
    }
});

on_both_dbs!(scheduled_access_keeps_its_credit_and_an_extension_does_not_inherit_it, |db| async move {
    let (_f, app) = pd_app(db, PD_CREDIT).await;
    let body = app
        .alice()
        .call(
            reqwest::Method::POST,
            "/api/v1/requests",
            Some(json!({ "role": "prod", "duration": "1h", "reason": "INC-4 maintenance", "starts_in": "3h" })),
        )
        .await
        .ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(threshold(&body), (2, 1, Some(1)));
    assert_eq!(app.bob().approve(id).await.ok()["state"], "scheduled");
    app.advance(Duration::hours(3));
    app.run_due().await;
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");

    let ext_id = app.alice().extend(id, "30m").await.id();
    let shown = app.alice().show(ext_id).await.ok();
    assert_eq!(threshold(&shown), (2, 0, Some(2)), "on call counted for the request as it was made: {shown}");
    assert!(shown["rules"].as_array().unwrap().iter().all(|r| r["credit"].is_null()));
});

on_both_dbs!(slack_cards_say_on_call_counts_as_one_approval, |db| async move {
    let f = oncall::start().await;
    f.og.add_schedule("dba-schedule", "DBA rotation");
    f.og.add_shift("dba-schedule", "alice@example.com", at(8), at(20));
    let rule = r#"
[rules.og-credit]
kind = "on_call"
service = "opsgenie"
roles = ["prod"]
schedules = ["dba-schedule"]
match_by = "opsgenie_user"
effect = "one_approval"
"#;
    let app = TestApp::builder().db(db).config(&oncall::config(&f, "1m", rule)).slack().spawn().await;

    let answer = app.slack_command("alice", "prod 30m INC-4211 failover").await.text();
    assert!(answer.contains("it needs 1 more approval (being on call counts as one)"), "{answer}");
    let id = TestApp::id_in(&answer);
    app.deliver().await;
    let card = app.card(id).all_text();
    assert!(card.contains("1 of 2 approvals: on call"), "{card}");
    assert!(
        card.contains(
            "rule `og-credit`: alice is on call in Opsgenie schedule dba-schedule (DBA rotation): counts as one \
             approval; 1 more needed"
        ),
        "{card}"
    );
    assert_eq!(app.card(id).buttons(), ["elevate_approve", "elevate_deny"]);

    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    assert_eq!(app.state(id).await, "approved");
    let card = app.card(id);
    assert!(card.all_text().contains("counted as one approval"), "{}", card.all_text());
    assert!(card.buttons().is_empty());
});
