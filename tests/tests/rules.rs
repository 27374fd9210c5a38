//! Decision rules: each fires when it should and stays quiet when it should not; deny wins over
//! any approval; the person refused is told which rule refused them.

use chrono::Duration;
use elevate_tests::{TestApp, policy};

/// The test policy plus these `[rules.*]` tables.
async fn with_rules(rules: &str) -> TestApp {
    TestApp::builder().config(&(policy::config("{WEBHOOK_URL}") + rules)).spawn().await
}

async fn rule_events(app: &TestApp) -> Vec<String> {
    app.events()
        .await
        .into_iter()
        .filter(|e| e.actor.starts_with("rule:"))
        .map(|e| format!("{} {}", e.actor, e.kind))
        .collect()
}

// The test clock starts on Monday 2026-03-02 at 09:00 UTC (10:00 in Berlin).

#[tokio::test]
async fn a_change_freeze_refuses_during_it_and_not_after() {
    let app = with_rules(
        r#"
[rules.march-freeze]
kind = "freeze"
from = "2026-03-01T00:00:00Z"
until = "2026-03-03T00:00:00Z"
roles = ["db"]
advice = "Ask the release manager."
"#,
    )
    .await;
    let refused = app.alice().request("db", "1h", "INC-1 x").await;
    assert_eq!(refused.body["error"]["code"], "rule_denied");
    let msg = refused.refused(403);
    assert!(
        msg.contains("`march-freeze`")
            && msg.contains("frozen until 2026-03-03 00:00 UTC")
            && msg.contains("release manager"),
        "{msg}"
    );
    assert_eq!(rule_events(&app).await, ["rule:march-freeze request.denied"], "the refusal is a recorded decision");
    app.alice().request("db-ro", "1h", "INC-1 x").await.ok();
    app.advance(Duration::days(1));
    app.alice().request("db", "1h", "INC-1 x").await.ok();
}

#[tokio::test]
async fn working_hours_in_a_time_zone_deny_outside_them() {
    let app = with_rules(
        r#"
[rules.office-hours]
kind = "time_window"
timezone = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
roles = ["db"]
"#,
    )
    .await;
    app.alice().request("db", "1h", "INC-1 inside hours").await.ok();
    app.advance(Duration::hours(8)); // 17:00 UTC = 18:00 in Berlin
    let msg = app.alice().request("db", "1h", "INC-1 after hours").await.refused(403);
    assert!(msg.contains("09:00–17:00 Europe/Berlin"), "{msg}");
}

#[tokio::test]
async fn outside_hours_can_require_an_extra_approval_instead() {
    let app = with_rules(
        r#"
[rules.night]
kind = "time_window"
timezone = "Europe/Berlin"
hours = "09:00-17:00"
effect = "extra_approval"
"#,
    )
    .await;
    let day = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(day["approvals_required"], 1);
    app.advance(Duration::hours(10));
    let night = app.alice().request("db", "1h", "INC-1 x").await.ok();
    assert_eq!(night["approvals_required"], 2);
    assert_eq!(night["rules"][0]["rule"], "night");
    let id = night["id"].as_i64().unwrap();
    assert_eq!(app.bob().approve(id).await.ok()["state"], "pending");
    assert_eq!(app.carol().approve(id).await.ok()["state"], "approved");
}

#[tokio::test]
async fn auto_approval_is_announced_and_can_be_turned_off_by_a_rule() {
    let app = with_rules(
        r#"
[rules.humans-at-night]
kind = "time_window"
timezone = "UTC"
hours = "08:00-18:00"
effect = "no_auto_approve"
roles = ["logs"]
"#,
    )
    .await;
    let r = app.alice().request("logs", "1h", "read logs").await.ok();
    assert_eq!(r["state"], "approved");
    let approved = app.events().await.into_iter().find(|e| e.kind == "request.approved").unwrap();
    assert_eq!(approved.actor, "rule:auto-approve");
    assert_eq!(approved.details["why"], "low-risk role");
    app.run_due().await;
    assert_eq!(app.state(r["id"].as_i64().unwrap()).await, "active");
    app.advance(Duration::hours(10));
    assert_eq!(app.alice().request("logs", "1h", "read logs").await.ok()["state"], "pending");
}

#[tokio::test]
async fn on_call_requesters_are_auto_approved_and_others_are_not() {
    let app = TestApp::spawn().await;
    assert_eq!(app.person("erin").request("oncall-db", "1h", "paged").await.ok()["state"], "approved");
    assert_eq!(app.alice().request("oncall-db", "1h", "curious").await.ok()["state"], "pending");
}

#[tokio::test]
async fn rate_limits_refuse_past_the_limit_and_right_after_a_denial() {
    let app = with_rules(
        r#"
[rules.slow-down]
kind = "rate_limit"
max = 2
window = "1h"
cooldown_after_denial = "30m"
roles = ["db"]
"#,
    )
    .await;
    let first = app.alice().request("db", "1h", "INC-1 a").await.id();
    app.alice().request("db", "1h", "INC-1 b").await.ok();
    let msg = app.alice().request("db", "1h", "INC-1 c").await.refused(403);
    assert!(msg.contains("at most 2 requests"), "{msg}");
    app.person("erin").request("db", "1h", "INC-1 d").await.ok();

    app.after(Duration::hours(2)).await;
    app.bob().deny(first, "no").await.refused(409); // timed out meanwhile
    let again = app.alice().request("db", "1h", "INC-1 e").await.id();
    app.bob().deny(again, "use the replica").await.ok();
    let msg = app.alice().request("db", "1h", "INC-1 f").await.refused(403);
    assert!(msg.contains("was denied"), "{msg}");
    app.advance(Duration::minutes(31));
    app.alice().request("db", "1h", "INC-1 g").await.ok();
}

#[tokio::test]
async fn repeated_refused_attempts_revoke_active_grants_and_alert() {
    let app = with_rules(
        r#"
[rules.hammering]
kind = "rate_limit"
max = 1
window = "1h"
revoke_after_refusals = 2
roles = ["db"]
"#,
    )
    .await;
    let id = app.active_grant("db", "1h").await;
    app.alice().request("db", "1h", "INC-1 more").await.refused(403);
    assert_eq!(app.state(id).await, "active", "one refusal is not yet an attack");
    app.alice().request("db", "1h", "INC-1 more!").await.refused(403);
    assert_eq!(app.state(id).await, "revoking");
    app.run_due().await;
    assert_eq!(app.state(id).await, "revoked");
    assert!(app.events().await.iter().any(|e| e.kind == "security.alert" && e.actor == "rule:hammering"));
}

#[tokio::test]
async fn flagged_persons_are_refused_and_the_security_team_alerted() {
    let app = with_rules(
        r#"
[rules.under-review]
kind = "flagged"
persons = ["erin"]
"#,
    )
    .await;
    let msg = app.person("erin").request("db", "1h", "INC-1 x").await.refused(403);
    assert!(msg.contains("flagged"), "{msg}");
    assert!(app.events().await.iter().any(|e| e.kind == "security.alert"));
    app.alice().request("db", "1h", "INC-1 x").await.ok();
    let bg = app
        .person("erin")
        .call(
            reqwest::Method::POST,
            "/api/v1/breakglass",
            Some(serde_json::json!({
        "role": "db", "duration": "10m", "justification": "prod down" })),
        )
        .await;
    bg.refused(403);
}

#[tokio::test]
async fn allowed_sources_restrict_where_a_role_may_be_requested() {
    let app = with_rules(
        r#"
[rules.slack-only]
kind = "allowed_sources"
sources = ["slack:T0001", "api:bob"]
roles = ["db"]
"#,
    )
    .await;
    let msg = app.alice().request("db", "1h", "INC-1 x").await.refused(403);
    assert!(msg.contains("cannot be requested from here") && msg.contains("slack:T0001"), "{msg}");
    app.bob().request("db", "1h", "INC-1 x").await.ok();
}

#[tokio::test]
async fn a_veto_beats_approvals_already_given() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("prod", "30m", "deploy").await.id();
    app.bob().approve(id).await.ok();
    let vetoed = app.dave().deny(id, "security veto: freeze").await.ok();
    assert_eq!(vetoed["state"], "denied");
    app.carol().approve(id).await.refused(409);
    let denied = app.events().await.into_iter().find(|e| e.kind == "request.denied").unwrap();
    assert_eq!(denied.details["as"], "security");
}

#[tokio::test]
async fn pending_requests_escalate_to_a_second_group_after_the_delay() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("esc", "1h", "INC-1 x").await.id();
    app.dave().approve(id).await.refused(403);
    app.after(Duration::minutes(30)).await;
    assert!(app.event_kinds(id).await.contains(&"request.escalated".to_string()));
    assert_eq!(app.dave().approve(id).await.ok()["state"], "approved");
}
