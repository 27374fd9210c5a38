//! On-call approval: a request is auto-approved when its requester is on call now in a schedule
//! the rule names (at a level it names, for a role it names), read from fakes of PagerDuty's and
//! Opsgenie's on-call APIs; when the service cannot be asked the rule does not fire, a human
//! decides, and the card and the audit trail say so.
//!
//! The test clock starts on Monday 2026-03-02 at 09:00 UTC; shifts below run 08:00–20:00.

use chrono::Duration;
use elevate_tests::{
    TestApp, TestDb,
    fake_opsgenie::OgFault,
    fake_pagerduty::PdFault,
    on_both_dbs,
    oncall::{self, OnCallFakes, at, notes, pagerduty_schedules},
};
use serde_json::Value;

const PD_RULE: &str = r#"
[rules.pd-primary]
kind = "on_call"
service = "pagerduty"
roles = ["db"]
schedules = ["PSCHED1"]
escalation_levels = [1]
match_by = "pagerduty_user"
"#;

const OG_RULE: &str = r#"
[rules.og-dba]
kind = "on_call"
service = "opsgenie"
roles = ["db"]
schedules = ["dba-schedule"]
match_by = "opsgenie_user"
"#;

async fn app_with(db: TestDb, f: &OnCallFakes, rules: &str) -> TestApp {
    TestApp::builder().db(db).config(&oncall::config(f, "1m", rules)).spawn().await
}

async fn event(app: &TestApp, id: i64, kind: &str) -> Value {
    app.events()
        .await
        .into_iter()
        .find(|e| e.subject == Some(id) && e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event for #{id}"))
        .details
}

on_both_dbs!(on_call_in_pagerduty_at_level_one_is_auto_approved_and_says_where, |db| async move {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = app_with(db, &f, PD_RULE).await;

    let body = app.alice().request("db", "1h", "INC-7 replica lag").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["state"], "approved", "{body}");
    assert_eq!(notes(&body), ["pd-primary on_call: alice is on call in PagerDuty schedule PSCHED1 (Primary), level 1"]);
    let approved = event(&app, id, "request.approved").await;
    assert_eq!(approved["on_call"]["rule"], "pd-primary");
    assert_eq!(approved["on_call"]["schedule"], "PSCHED1");
    assert_eq!(approved["on_call"]["level"], 1);
    assert_eq!(approved["on_call"]["service"], "pagerduty");
    let created = event(&app, id, "request.created").await;
    assert_eq!(created["rules"][0]["effect"], "on_call");

    let call = &f.pd.calls()[0];
    for want in ["schedule_ids%5B%5D=PSCHED1", "user_ids%5B%5D=PALICE1", "since=2026-03-02T09%3A00%3A00Z"] {
        assert!(call.contains(want), "{want} missing from {call}");
    }
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");
    assert!(app.receiver.holds(&TestApp::grant_id(id)), "the grant was applied");
});

on_both_dbs!(pagerduty_unreachable_falls_back_to_a_human_and_says_so, |db| async move {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    f.pd.set_down(true);
    let app = app_with(db, &f, PD_RULE).await;

    let body = app.alice().request("db", "1h", "INC-7 replica lag").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["state"], "pending", "no auto-approval without an answer");
    let note = &notes(&body)[0];
    assert!(
        note.starts_with("pd-primary on_call_unavailable: PagerDuty could not be reached (PagerDuty answered HTTP 503")
            && note.ends_with("not auto-approved, a human approves"),
        "{note}"
    );
    assert_eq!(f.pd.calls().len(), 3, "one call and two retries");
    let created = event(&app, id, "request.created").await;
    assert_eq!(created["rules"][0]["effect"], "on_call_unavailable");
    assert!(created.to_string().contains("could not be reached"));

    app.bob().approve(id).await.ok();
    assert_eq!(app.state(id).await, "approved", "a human still can");
    f.pd.set_down(false);
    let again = app.alice().request("db", "1h", "INC-8 more lag").await.ok();
    assert_eq!(again["state"], "approved", "a failure is not cached: back up, asked again");
});

#[tokio::test]
async fn pagerduty_pages_are_followed_and_a_429_is_waited_out() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    // 130 people on call in the primary schedule (say, per-region layers); alice is the last:
    // with pages of 100 she is on the second.
    for i in 0..129 {
        let id = format!("PU{i:05}");
        f.pd.add_user(&id, "someone", &format!("u{i}@example.com"));
        f.pd.add_shift("PSCHED1", &id, at(8), at(20));
    }
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let rule = PD_RULE.replace("match_by = \"pagerduty_user\"", "match_by = \"email\"");
    let app = app_with(TestDb::sqlite(), &f, &rule).await;
    f.pd.fail_next(PdFault::RateLimited(1));

    let body = app.alice().request("db", "1h", "INC-9").await.ok();
    assert_eq!(body["state"], "approved", "{body}");
    let calls = f.pd.calls();
    assert_eq!(f.pd.rate_limited(), 1);
    assert_eq!(calls.len(), 3, "429, then page 1, then page 2: {calls:#?}");
    assert!(calls[1].contains("offset=0") && calls[2].contains("offset=100"), "{calls:#?}");
    assert!(calls[1].contains("include%5B%5D=users") && !calls[1].contains("user_ids"), "matched by email");
}

#[tokio::test]
async fn a_server_error_is_retried_within_the_lookup() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = app_with(TestDb::sqlite(), &f, PD_RULE).await;
    f.pd.fail_next(PdFault::ServerError);
    assert_eq!(app.alice().request("db", "1h", "INC-9").await.ok()["state"], "approved");
    assert_eq!(f.pd.calls().len(), 2);
}

#[tokio::test]
async fn on_call_elsewhere_or_at_another_level_or_for_another_role_is_not_enough() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("POTHER", "PALICE1", at(8), at(20));
    f.pd.add_shift("PSCHED2", "PERIN01", at(8), at(20));
    let rule = PD_RULE.replace("schedules = [\"PSCHED1\"]", "schedules = [\"PSCHED1\", \"PSCHED2\"]");
    let app = app_with(TestDb::sqlite(), &f, &rule).await;

    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "pending", "on call, but in another team's schedule");
    assert_eq!(
        notes(&body),
        ["pd-primary not_on_call: alice is not on call now in PagerDuty schedule PSCHED1, PSCHED2 at level 1"]
    );
    let body = app.person("erin").request("db", "1h", "INC-2 x").await.ok();
    assert_eq!(body["state"], "pending", "erin is on call in a named schedule, but at level 2");

    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    app.advance(Duration::minutes(2)); // past the cache
    let body = app.alice().request("db-ro", "1h", "INC-3 x").await.ok();
    assert_eq!(body["state"], "pending", "the rule is for `db` only");
    assert!(notes(&body).is_empty(), "no on-call lookup for a role the rule does not name");
    assert_eq!(app.alice().request("db", "1h", "INC-4 x").await.ok()["state"], "approved");

    app.advance(Duration::hours(11)); // 20:02: the shift is over
    assert_eq!(app.alice().request("db", "1h", "INC-5 x").await.ok()["state"], "pending");
}

#[tokio::test]
async fn answers_are_cached_for_the_ttl() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = app_with(TestDb::sqlite(), &f, PD_RULE).await;
    app.alice().request("db", "1h", "INC-1 x").await.ok();
    app.alice().request("db", "1h", "INC-2 x").await.ok();
    assert_eq!(f.pd.calls().len(), 1, "the second request used the cached answer");
    app.advance(Duration::seconds(61));
    app.alice().request("db", "1h", "INC-3 x").await.ok();
    assert_eq!(f.pd.calls().len(), 2, "after the TTL, asked again");
}

on_both_dbs!(on_call_in_opsgenie_is_auto_approved_and_an_outage_falls_back, |db| async move {
    let f = oncall::start().await;
    f.og.add_schedule("dba-schedule", "DBA rotation");
    f.og.add_schedule("web-schedule", "Web rotation");
    f.og.add_shift("dba-schedule", "alice@example.com", at(8), at(20));
    f.og.add_shift("web-schedule", "erin@example.com", at(8), at(20));
    let app = TestApp::builder().db(db).config(&oncall::config(&f, "1m", OG_RULE)).spawn().await;

    f.og.fail_next(OgFault::RateLimited);
    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "approved", "{body}");
    assert_eq!(notes(&body), ["og-dba on_call: alice is on call in Opsgenie schedule dba-schedule (DBA rotation)"]);
    assert_eq!(f.og.rate_limited(), 1);
    let call = f.og.calls().last().unwrap().clone();
    assert!(
        call.starts_with("dba-schedule?") && call.contains("flat=true") && call.contains("date=2026-03-02T09"),
        "{call}"
    );
    let approved = event(&app, body["id"].as_i64().unwrap(), "request.approved").await;
    assert_eq!(approved["on_call"]["schedule"], "dba-schedule");
    assert_eq!(approved["on_call"]["service"], "opsgenie");

    // erin has no opsgenie_user in the policy: the rule cannot place her, and says so.
    let body = app.person("erin").request("db", "1h", "INC-2 x").await.ok();
    assert_eq!(body["state"], "pending");
    assert!(notes(&body)[0].contains("erin has no opsgenie_user in the policy"), "{:?}", notes(&body));

    f.og.set_down(true);
    app.advance(Duration::minutes(2));
    let body = app.alice().request("db", "1h", "INC-3 x").await.ok();
    assert_eq!(body["state"], "pending");
    assert!(
        notes(&body)[0].contains("Opsgenie could not be reached (Opsgenie answered HTTP 503"),
        "{:?}",
        notes(&body)
    );
});

#[tokio::test]
async fn a_rule_naming_a_missing_opsgenie_schedule_does_not_fire() {
    let f = oncall::start().await;
    let app = TestApp::builder().config(&oncall::config(&f, "1m", OG_RULE)).spawn().await;
    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "pending");
    assert!(notes(&body)[0].contains("HTTP 404: No schedule exists with id [dba-schedule]"), "{:?}", notes(&body));
}

#[tokio::test]
async fn a_rule_for_an_unconfigured_service_or_every_role_is_a_config_error() {
    let text = elevate_tests::policy::config("http://127.0.0.1:9") + PD_RULE;
    let errs = elevate_bot::config::Config::parse(&text).unwrap_err();
    assert_eq!(errs[0].path, "rules.pd-primary.service");
    assert!(errs[0].message.contains("add [oncall.pagerduty]"), "{errs:?}");
    let f = oncall::start().await;
    let errs =
        elevate_bot::config::Config::parse(&oncall::config(&f, "1h", &PD_RULE.replace("roles = [\"db\"]\n", "")))
            .unwrap_err();
    let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["oncall.opsgenie.cache_ttl", "oncall.pagerduty.cache_ttl", "rules.pd-primary.roles"]);
}

on_both_dbs!(slack_cards_show_the_on_call_finding, |db| async move {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = TestApp::builder().db(db).config(&oncall::config(&f, "1m", PD_RULE)).slack().spawn().await;

    let answer = app.slack_command("alice", "db 1h INC-4211 fix replication lag").await;
    let id = TestApp::id_in(&answer.text());
    app.deliver().await;
    let card = app.card(id).all_text();
    assert!(card.contains("Auto-approved"), "{card}");
    assert!(
        card.contains("rule `pd-primary`: alice is on call in PagerDuty schedule PSCHED1 (Primary), level 1"),
        "{card}"
    );
    assert!(app.card(id).buttons().is_empty());

    f.pd.set_down(true);
    app.advance(Duration::minutes(2));
    let answer = app.slack_command("alice", "db 1h INC-4212 more lag").await;
    let id = TestApp::id_in(&answer.text());
    app.deliver().await;
    let card = app.card(id);
    assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"], "a human decides");
    assert!(card.all_text().contains("PagerDuty could not be reached"), "{}", card.all_text());
    app.slack_click("bob", "elevate_approve", id).await;
    assert_eq!(app.state(id).await, "approved");
});

#[tokio::test]
async fn a_rate_limit_longer_than_the_timeout_falls_back_at_once() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let app = app_with(TestDb::sqlite(), &f, PD_RULE).await;
    f.pd.fail_next(PdFault::RateLimited(30));
    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "pending", "not waiting 30s while the chat command waits");
    assert!(notes(&body)[0].contains("PagerDuty answered HTTP 429: Rate Limit Exceeded"), "{:?}", notes(&body));
    assert_eq!(f.pd.calls().len(), 1);
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_falls_back() {
    let f = oncall::start().await;
    pagerduty_schedules(&f);
    f.pd.add_shift("PSCHED1", "PALICE1", at(8), at(20));
    let text = oncall::config(&f, "1m", PD_RULE).replacen(
        "cache_ttl = \"1m\"\ntimeout = \"2s\"",
        "cache_ttl = \"1m\"\ntimeout = \"1s\"",
        1,
    );
    let app = TestApp::builder().config(&text).spawn().await;
    f.pd.fail_next(PdFault::Slow(5));
    let body = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(body["state"], "pending");
    assert!(notes(&body)[0].contains("PagerDuty did not answer within 1s"), "{:?}", notes(&body));
}

on_both_dbs!(discord_approval_messages_show_the_on_call_finding, |db| async move {
    let f = oncall::start().await;
    f.og.add_schedule("dba-schedule", "DBA rotation");
    f.og.add_shift("dba-schedule", "alice@example.com", at(8), at(20));
    let app = TestApp::builder().db(db).config(&oncall::config(&f, "1m", OG_RULE)).discord().spawn().await;

    let id = app.discord_request("alice", "db", "1h", "INC-1 fix replication lag").await;
    app.deliver().await;
    let card = app.discord_card(id).content;
    assert!(
        card.contains("rule `og-dba`: alice is on call in Opsgenie schedule dba-schedule (DBA rotation)"),
        "{card}"
    );
    assert!(app.discord_card(id).buttons().is_empty(), "auto-approved");

    f.og.set_down(true);
    app.advance(Duration::minutes(2));
    let id = app.discord_request("alice", "db", "1h", "INC-2 more lag").await;
    app.deliver().await;
    let card = app.discord_card(id);
    assert!(card.content.contains("Opsgenie could not be reached"), "{}", card.content);
    assert_eq!(card.buttons(), [format!("approve:{id}"), format!("deny:{id}")], "a human decides");
});
