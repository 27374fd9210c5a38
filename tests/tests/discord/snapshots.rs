//! Everything a person reads in Discord, as whole messages: interaction responses (with their
//! flags, mentions and components), forms, the approval message in each state, the
//! requester's DMs and the audit feed. A change to any of it shows up as a snapshot diff.

use super::discord_app;
use chrono::Duration;
use elevate_tests::{
    TestApp,
    discord::{AUDIT_CHANNEL, DiscordAnswer, user},
    render::{discord_message, discord_response},
};
use insta::assert_snapshot;
use serde_json::json;

fn shown(a: &DiscordAnswer) -> String {
    assert_eq!(a.status, 200, "{:?}", a.body);
    discord_response(&a.body)
}

fn card(app: &TestApp, id: i64) -> String {
    let c = app.discord_card(id);
    discord_message(&c.content, &c.components)
}

fn last_dm(app: &TestApp) -> String {
    let m = app.fake_discord().dms(&user("alice")).pop().expect("a DM");
    discord_message(&m.content, &m.components)
}

#[tokio::test]
async fn a_request_from_command_to_expiry() {
    let app = discord_app().await;
    let options =
        [("role", json!("prod")), ("duration", json!("1h")), ("reason", json!("INC-4211 fix @everyone *now*"))];
    let answer = app.discord_command("alice", "request", &options).await;
    assert_snapshot!(shown(&answer), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    Request #1 for `prod` (1h) sent to <#1300000000000000002>; it needs 2 approvals. I'll DM you when it changes.
    "#);
    let id = TestApp::id_in(&answer.text());

    app.deliver().await;
    assert_snapshot!(card(&app, id), @r#"
    **Request #1: <@1500000000000000001> asks for `prod` for 1h**
    **Reason:** INC-4211 fix \@everyone \*now\*
    Waiting for 2 approvals
    row: [Approve] approve:1 (style 3) {"disabled":false} [Deny] deny:1 (style 4) {"disabled":false}
    "#);

    assert_snapshot!(shown(&app.discord_click("bob", &format!("approve:{id}")).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    You approved #1: 1 of 2 approvals so far.
    "#);
    app.deliver().await;
    assert_snapshot!(card(&app, id), @r#"
    **Request #1: <@1500000000000000001> asks for `prod` for 1h**
    **Reason:** INC-4211 fix \@everyone \*now\*
    1 of 2 approvals: <@1500000000000000002>
    row: [Approve] approve:1 (style 3) {"disabled":false} [Deny] deny:1 (style 4) {"disabled":false}
    "#);

    app.discord_click("carol", &format!("approve:{id}")).await;
    app.tick().await;
    assert_snapshot!(card(&app, id), @r"
    **Request #1: <@1500000000000000001> asks for `prod` for 1h**
    **Reason:** INC-4211 fix \@everyone \*now\*
    Approved by <@1500000000000000002>, <@1500000000000000003> — active until 2026-03-02 10:00 UTC
    ");
    assert_snapshot!(last_dm(&app), @"Granted: you have `prod` until 2026-03-02 10:00 UTC (#1).");

    app.advance(Duration::minutes(50));
    app.tick().await;
    assert_snapshot!(last_dm(&app), @r#"
    Your `prod` access (#1) expires in 10 min.
    row: [Extend] extend:1 (style 1) {"disabled":false}
    "#);

    app.advance(Duration::minutes(10));
    app.tick().await;
    app.tick().await;
    assert_snapshot!(card(&app, id), @r"
    **Request #1: <@1500000000000000001> asks for `prod` for 1h**
    **Reason:** INC-4211 fix \@everyone \*now\*
    Approved by <@1500000000000000002>, <@1500000000000000003> — expired at 2026-03-02 10:00 UTC
    ");
    assert_snapshot!(last_dm(&app), @"Expired: your `prod` access (#1) has been removed.");

    let feed: Vec<String> = app.fake_discord().messages(AUDIT_CHANNEL).into_iter().map(|m| m.content).collect();
    assert_snapshot!(feed.join("\n"), @r#"
    #1 alice requested prod for 1h: "INC-4211 fix \@everyone \*now\*" (needs 2 approvals)
    #1 approval 1 of 2 by bob
    #1 approved by bob, carol
    #1 granted: alice has prod until 2026-03-02 10:00 UTC
    #1 alice's prod access expires in 10 min
    #1 removing alice's prod access (time is up)
    #1 alice's prod access expired and was removed
    "#);
}

#[tokio::test]
async fn answers_to_each_command() {
    let app = discord_app().await;
    assert_snapshot!(shown(&app.discord_command("alice", "help", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    **elevate**: just-in-time access.
    • `/elevate request role reason [duration] [ticket] [at] [in]`: ask for a role, e.g. prod-db 2h INC-4211 fix replication lag; several at once with commas (prod-db,logs 2h …) or a bundle's name (`/elevate` alone opens a form in Slack)
    • `/elevate status`: your pending requests and active grants
    • `/elevate mine`: the same with buttons, and what waits for your decision
    • `/elevate show id`: one request as its card shows it, with what you may do about it
    • `/elevate release [id]`: give access back early
    • `/elevate extend id duration [reason]`: ask for more time
    • `/elevate cancel id`: withdraw a pending request
    **Approvers and security**
    • `/elevate approve id`: approve a request
    • `/elevate deny id [reason]`: deny a request
    • `/elevate breakglass role duration justification`: emergency access without approval (alerts security)
    • `/elevate revoke id`: take a grant away (approvers, security)
    • `/elevate lockdown scope`: kill switch: refuse a role (or all) and revoke its grants (security)
    • `/elevate unlock scope`: lift a lockdown (security)
    • `/elevate review id note`: close the review of a break-glass grant (security)
    You may request: `busy` (up to 2h), `db` (up to 4h), `db-ro` (up to 4h), `esc` (up to 4h), `logs` (up to 8h), `oncall-db` (up to 4h), `prod` (up to 2h), `sandbox` (up to 8h)
    "#);
    let id = app.discord_request("alice", "db", "30m", "INC-1 rotate keys").await;
    app.discord_command("bob", "approve", &[("id", json!(id))]).await;
    app.tick().await;
    app.discord_request("alice", "prod", "30m", "INC-2 deploy").await;
    assert_snapshot!(shown(&app.discord_command("alice", "status", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    • #2 `prod` for 30m: pending
    • #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    "#);
    assert_snapshot!(shown(&app.discord_command("alice", "mine", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    **Your access**
    #2 `prod` for 30m: pending
    #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    row: [Cancel #2] cancel:2 (style 2) {"disabled":false}
    row: [Extend #1] extend:1 (style 1) {"disabled":false} [Release #1] release:1 (style 2) {"disabled":false}
    row: [Request access] request:form (style 1) {"disabled":false}
    "#);
    assert_snapshot!(shown(&app.discord_command("bob", "mine", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    **Your access**
    You have no pending requests and no active grants.
    **Waiting for your decision**
    #2 <@1500000000000000001> asks for `prod` for 30m: INC-2 deploy
    row: [Request access] request:form (style 1) {"disabled":false}
    row: [Approve #2] approve:2 (style 3) {"disabled":false} [Deny #2] deny:2 (style 4) {"disabled":false}
    "#);
    let extend = [("id", json!(id)), ("duration", json!("30m"))];
    assert_snapshot!(shown(&app.discord_command("alice", "extend", &extend).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    Extension #3 of #1 by 30m: Request #3 for `db` (30m) sent to <#1300000000000000001>; it needs 1 approval. I'll DM you when it changes.
    "#);
    assert_snapshot!(shown(&app.discord_command("alice", "release", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    Releasing #1 (`db`): access is being removed.
    "#);
    let bg = [("role", json!("db")), ("duration", json!("15m")), ("justification", json!("primary is down"))];
    assert_snapshot!(shown(&app.discord_command("erin", "breakglass", &bg).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    🚨 Break-glass #4: `db` for 15m is being applied now. The security team has been alerted and will review it.
    "#);
    assert_snapshot!(shown(&app.discord_command("dave", "lockdown", &[("scope", json!("db"))]).await), @r#"
    modal lockdown-confirm:db "Lock down db?"
    row: input reason "Reason (submitting revokes every grant now)" (style 2) placeholder "What happened?" {"max_length":500}
    "#);
    assert_snapshot!(shown(&app.discord_command("bob", "deny", &[("id", json!(id + 1))]).await), @r#"
    modal deny:2 "Deny request #2"
    row: input reason "Reason" (style 2) placeholder "Why is this denied?" {"max_length":500}
    "#);
    assert_snapshot!(shown(&app.discord_command("dave", "revoke", &[("id", json!(id))]).await), @r#"
    modal revoke-confirm:1 "Revoke #1 (db)?"
    row: input reason "Reason (submitting revokes it now)" (style 2) placeholder "Why is it revoked?" {"max_length":500}
    "#);
}

#[tokio::test]
async fn refusals_name_the_problem() {
    let app = discord_app().await;
    let request = |role: &'static str, duration: &'static str| {
        [("role", json!(role)), ("duration", json!(duration)), ("reason", json!("INC-1 x"))]
    };
    assert_snapshot!(shown(&app.discord_command("alice", "request", &request("dbb", "1h")).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    ⚠️ There is no role `dbb`. Did you mean `db`?
    "#);
    assert_snapshot!(shown(&app.discord_command("alice", "request", &request("db", "5mins")).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    ⚠️ `5mins` is not a duration: use a number with a unit, like 30m, 2h, 1h30m or 1d
    "#);
    assert_snapshot!(shown(&app.discord_command("alice", "cancel", &[]).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    ⚠️ Usage: `/elevate cancel id`.
    "#);
    assert_snapshot!(shown(&app.discord_click("alice", "approve:abc").await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    ⚠️ `abc` is not a request number (expected something like 41 or #41)
    "#);
    assert_snapshot!(shown(&app.discord_command("mallory", "request", &request("db", "1h")).await), @r#"
    message (flags 64, mentions {"parse":[],"roles":[],"users":[]}):
    ⚠️ You may not request `db`: it is open to members of `engineers`.
    "#);
}
