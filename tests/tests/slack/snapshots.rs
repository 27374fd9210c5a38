//! Everything a person reads in Slack, as whole messages: the answers to commands, the forms,
//! the approval card in each state, the requester's DMs and the audit feed. A change to any
//! wording, markup, button or limit shows up here as a snapshot diff to review.

use super::slack_app;
use chrono::Duration;
use elevate_tests::{
    TestApp,
    render::{slack_message, slack_view},
    slack::{AUDIT_CHANNEL, SlackAnswer},
};
use insta::assert_snapshot;

/// An ephemeral slash-command answer as Slack shows it.
fn shown(a: &SlackAnswer) -> String {
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["response_type"], "ephemeral", "{:?}", a.body);
    slack_message(a.body["text"].as_str().unwrap_or(""), &a.body["blocks"])
}

fn card(app: &TestApp, id: i64) -> String {
    let c = app.card(id);
    slack_message(&c.text, &c.blocks)
}

fn last_dm(app: &TestApp) -> String {
    let m = app.fake_slack().messages("DUALICE").pop().expect("a DM");
    slack_message(&m.text, &m.blocks)
}

#[tokio::test]
async fn a_request_from_command_to_expiry() {
    let app = slack_app().await;
    let answer = app.slack_command("alice", "prod 1h INC-4211 fix <!channel> & lag").await;
    assert_snapshot!(shown(&answer), @"
    text: Request #1 for `prod` (1h) sent to <#CPRODAPPROVERS>; it needs 2 approvals. I'll DM you when it changes.
    section: Request #1 for `prod` (1h) sent to <#CPRODAPPROVERS>; it needs 2 approvals. I'll DM you when it changes.
    ");
    let id = TestApp::id_in(&answer.text());

    app.deliver().await;
    assert_snapshot!(card(&app, id), @"
    text: Request #1: <@UALICE> asks for `prod` for 1h
    Reason: INC-4211 fix &lt;!channel&gt; &amp; lag
    Waiting for 2 approvals
    section: *Request #1: <@UALICE> asks for `prod` for 1h*
    section fields: *Reason*
    INC-4211 fix &lt;!channel&gt; &amp; lag
    section: Waiting for 2 approvals
    actions: [Approve] elevate_approve=1 (primary)
             [Deny] elevate_deny=1 (danger)
    ");

    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    assert_snapshot!(card(&app, id), @"
    text: Request #1: <@UALICE> asks for `prod` for 1h
    Reason: INC-4211 fix &lt;!channel&gt; &amp; lag
    1 of 2 approvals: <@UBOB>
    section: *Request #1: <@UALICE> asks for `prod` for 1h*
    section fields: *Reason*
    INC-4211 fix &lt;!channel&gt; &amp; lag
    section: 1 of 2 approvals: <@UBOB>
    actions: [Approve] elevate_approve=1 (primary)
             [Deny] elevate_deny=1 (danger)
    ");
    assert_snapshot!(app.fake_slack().ephemerals("UBOB").join("\n"), @"You approved #1: 1 of 2 approvals so far.");

    app.slack_click("carol", "elevate_approve", id).await;
    app.tick().await;
    assert_snapshot!(card(&app, id), @"
    text: Request #1: <@UALICE> asks for `prod` for 1h
    Reason: INC-4211 fix &lt;!channel&gt; &amp; lag
    Approved by <@UBOB>, <@UCAROL> — active until 2026-03-02 10:00 UTC
    section: *Request #1: <@UALICE> asks for `prod` for 1h*
    section fields: *Reason*
    INC-4211 fix &lt;!channel&gt; &amp; lag
    section: Approved by <@UBOB>, <@UCAROL> — active until 2026-03-02 10:00 UTC
    ");
    assert_snapshot!(last_dm(&app), @"text: Granted: you have `prod` until 2026-03-02 10:00 UTC (#1).");

    app.advance(Duration::minutes(50));
    app.tick().await;
    assert_snapshot!(last_dm(&app), @"
    text: Your `prod` access (#1) expires in 10 min.
    section: Your `prod` access (#1) expires in 10 min.
    actions: [Extend] elevate_extend=1 (primary)
    ");

    app.advance(Duration::minutes(10));
    app.tick().await;
    app.tick().await;
    assert_snapshot!(card(&app, id), @"
    text: Request #1: <@UALICE> asks for `prod` for 1h
    Reason: INC-4211 fix &lt;!channel&gt; &amp; lag
    Approved by <@UBOB>, <@UCAROL> — expired at 2026-03-02 10:00 UTC
    section: *Request #1: <@UALICE> asks for `prod` for 1h*
    section fields: *Reason*
    INC-4211 fix &lt;!channel&gt; &amp; lag
    section: Approved by <@UBOB>, <@UCAROL> — expired at 2026-03-02 10:00 UTC
    ");
    assert_snapshot!(last_dm(&app), @"text: Expired: your `prod` access (#1) has been removed.");

    // The card's thread tells the whole story; the card itself only where it stands.
    assert_snapshot!(app.thread(id).join("\n"), @"
    #1 approval 1 of 2 by bob
    #1 approved by bob, carol
    #1 granted: alice has prod until 2026-03-02 10:00 UTC
    #1 alice's prod access expires in 10 min
    #1 alice's prod access expired and was removed
    ");

    let feed: Vec<String> = app.fake_slack().messages(AUDIT_CHANNEL).into_iter().map(|m| m.text).collect();
    assert_snapshot!(feed.join("\n"), @r#"
    #1 alice requested prod for 1h: "INC-4211 fix &lt;!channel&gt; &amp; lag" (needs 2 approvals)
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
    let app = slack_app().await;
    assert_snapshot!(shown(&app.slack_command("alice", "help").await), @"
    text: *elevate*: just-in-time access.
    • `/elevate ROLE DURATION REASON… [at YYYY-MM-DD HH:MM [ZONE] | in DURATION]`: ask for a role, e.g. prod-db 2h INC-4211 fix replication lag; several at once with commas (prod-db,logs 2h …) or a bundle's name (`/elevate` alone opens a form in Slack)
    • `/elevate status`: your pending requests and active grants
    • `/elevate mine`: the same with buttons, and what waits for your decision
    • `/elevate show ID`: one request as its card shows it, with what you may do about it
    • `/elevate release [ID]`: give access back early
    • `/elevate extend ID DURATION [REASON…]`: ask for more time
    • `/elevate cancel ID`: withdraw a pending request
    *Approvers and security*
    • `/elevate approve ID`: approve a request
    • `/elevate deny ID [REASON…]`: deny a request
    • `/elevate breakglass ROLE DURATION JUSTIFICATION…`: emergency access without approval (alerts security)
    • `/elevate revoke ID REASON…`: take a grant away (approvers, security)
    • `/elevate lockdown ROLE|all REASON…`: kill switch: refuse a role (or all) and revoke its grants (security)
    • `/elevate unlock ROLE|all`: lift a lockdown (security)
    • `/elevate review ID NOTE…`: close the review of a break-glass grant (security)
    You may request: `busy` (up to 2h), `db` (up to 4h), `db-ro` (up to 4h), `esc` (up to 4h), `logs` (up to 8h), `oncall-db` (up to 4h), `prod` (up to 2h), `sandbox` (up to 8h)
    section: *elevate*: just-in-time access.
    section: • `/elevate ROLE DURATION REASON… [at YYYY-MM-DD HH:MM [ZONE] | in DURATION]`: ask for a role, e.g. prod-db 2h INC-4211 fix replication lag; several at once with commas (prod-db,logs 2h …) or a bundle's name (`/elevate` alone opens a form in Slack)
    • `/elevate status`: your pending requests and active grants
    • `/elevate mine`: the same with buttons, and what waits for your decision
    • `/elevate show ID`: one request as its card shows it, with what you may do about it
    • `/elevate release [ID]`: give access back early
    • `/elevate extend ID DURATION [REASON…]`: ask for more time
    • `/elevate cancel ID`: withdraw a pending request
    section: *Approvers and security*
    section: • `/elevate approve ID`: approve a request
    • `/elevate deny ID [REASON…]`: deny a request
    • `/elevate breakglass ROLE DURATION JUSTIFICATION…`: emergency access without approval (alerts security)
    • `/elevate revoke ID REASON…`: take a grant away (approvers, security)
    • `/elevate lockdown ROLE|all REASON…`: kill switch: refuse a role (or all) and revoke its grants (security)
    • `/elevate unlock ROLE|all`: lift a lockdown (security)
    • `/elevate review ID NOTE…`: close the review of a break-glass grant (security)
    section: You may request: `busy` (up to 2h), `db` (up to 4h), `db-ro` (up to 4h), `esc` (up to 4h), `logs` (up to 8h), `oncall-db` (up to 4h), `prod` (up to 2h), `sandbox` (up to 8h)
    ");
    assert_snapshot!(shown(&app.slack_command("alice", "status").await), @"
    text: You have no pending requests and no active grants.
    section: You have no pending requests and no active grants.
    ");
    let id = TestApp::id_in(&app.slack_command("alice", "db 30m INC-1 rotate keys").await.text());
    app.slack_command("bob", &format!("approve {id}")).await;
    app.tick().await;
    app.slack_command("alice", "prod INC-2 deploy").await;
    assert_snapshot!(shown(&app.slack_command("alice", "status").await), @"
    text: • #2 `prod` for 30m: pending
    • #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    section: • #2 `prod` for 30m: pending
    • #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    ");
    assert_snapshot!(shown(&app.slack_command("alice", "mine").await), @"
    text: *Your access*
    #2 `prod` for 30m: pending
    #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    section: *Your access*
    section: #2 `prod` for 30m: pending
    actions: [Cancel #2] elevate_cancel=2
    section: #1 `db` active, 0h30m left (until 2026-03-02 09:30 UTC)
    actions: [Extend #1] elevate_extend=1 (primary)
             [Release #1] elevate_release=1
    actions: [Request access] elevate_request_form= (primary)
    ");
    assert_snapshot!(shown(&app.slack_command("bob", "mine").await), @"
    text: *Your access*
    You have no pending requests and no active grants.
    *Waiting for your decision*
    #2 <@UALICE> asks for `prod` for 30m: INC-2 deploy
    section: *Your access*
    section: You have no pending requests and no active grants.
    actions: [Request access] elevate_request_form= (primary)
    section: *Waiting for your decision*
    section: #2 <@UALICE> asks for `prod` for 30m: INC-2 deploy
    actions: [Approve #2] elevate_approve=2 (primary)
             [Deny #2] elevate_deny=2 (danger)
    ");
    assert_snapshot!(shown(&app.slack_command("alice", &format!("extend {id} 30m more time")).await), @"
    text: Extension #3 of #1 by 30m: Request #3 for `db` (30m) sent to <#CDBAPPROVERS>; it needs 1 approval. I'll DM you when it changes.
    section: Extension #3 of #1 by 30m: Request #3 for `db` (30m) sent to <#CDBAPPROVERS>; it needs 1 approval. I'll DM you when it changes.
    ");
    assert_snapshot!(shown(&app.slack_command("alice", "release").await), @"
    text: Releasing #1 (`db`): access is being removed.
    section: Releasing #1 (`db`): access is being removed.
    ");
    assert_snapshot!(shown(&app.slack_command("erin", "breakglass db 15m primary is down").await), @"
    text: :rotating_light: Break-glass #4: `db` for 15m is being applied now. The security team has been alerted and will review it.
    section: :rotating_light: Break-glass #4: `db` for 15m is being applied now. The security team has been alerted and will review it.
    ");
    assert_snapshot!(shown(&app.slack_command("dave", "lockdown db leaked <creds>").await), @r#"
    text: :warning: Lock down `db`? New requests are refused and every grant of it is revoked now. Reason: leaked &lt;creds&gt;
    section: :warning: Lock down `db`? New requests are refused and every grant of it is revoked now. Reason: leaked &lt;creds&gt;
    actions: [Lock down] elevate_confirm_lockdown={"reason":"leaked <creds>","scope":"db"} (danger)
        confirm: Are you sure? / Lock down `db`? New requests are refused and every grant of it is revoked now. Reason: leaked &lt;creds&gt; [Lock down] [Cancel]
    "#);
    assert_snapshot!(shown(&app.slack_command("dave", "unlock db").await), @"text: :warning: There is no lockdown on `db`.");
}

#[tokio::test]
async fn refusals_name_the_problem() {
    let app = slack_app().await;
    assert_snapshot!(shown(&app.slack_command("alice", "dbb 1h INC-1 typo").await), @"text: :warning: There is no role `dbb`. Did you mean `db`?");
    assert_snapshot!(shown(&app.slack_command("alice", "db 1.5h INC-1 odd duration").await), @"text: :warning: `1.5h` is not a duration: use a number with a unit, like 30m, 2h, 1h30m or 1d");
    assert_snapshot!(shown(&app.slack_command("alice", "db 9h INC-1 too long").await), @"text: :warning: `db` can be held for at most 4h; ask for 4h or less.");
    assert_snapshot!(shown(&app.slack_command("alice", "cancel x").await), @"text: :warning: `x` is not a request number (expected something like 41 or #41)");
    assert_snapshot!(shown(&app.slack_command("alice", "review 3").await), @"text: :warning: Usage: `/elevate review ID NOTE…`.");
    assert_snapshot!(shown(&app.slack_command("mallory", "db 1h INC-1 who am i").await), @"text: :warning: You may not request `db`: it is open to members of `engineers`.");
    assert_snapshot!(shown(&app.slack_command("alice", "lockdown db now").await), @"text: :warning: Only the security team (members of `security`) can lock roles down.");
}

#[tokio::test]
async fn forms() {
    let app = slack_app().await;
    app.slack_command("alice", "").await;
    let opened = app.fake_slack().calls("views.open");
    assert_snapshot!(slack_view(&opened[0].args["view"]), @r#"
    modal elevate_request "Request access" [Request] [Cancel]
    input role "Roles": multi_static_select placeholder "Choose one or more roles" options [busy, db, db-ro, esc, logs, oncall-db, prod, sandbox]
    input duration "Duration" (optional): plain_text_input placeholder "e.g. 30m, 2h (empty: the role's default)"
    input reason "Reason": plain_text_input placeholder "What do you need it for?"
    input ticket "Ticket" (optional): plain_text_input placeholder "e.g. INC-4211"
    input start "Start" (optional): plain_text_input placeholder "Later: 2026-12-05 22:00 Europe/Berlin, or in 3h (empty: now)"
    "#);

    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    app.deliver().await;
    app.slack_click("bob", "elevate_deny", id).await;
    app.slack_command("dave", "lockdown db").await;
    app.slack_command("dave", &format!("revoke {id}")).await;
    let views: Vec<String> =
        app.fake_slack().calls("views.open").iter().skip(1).map(|c| slack_view(&c.args["view"])).collect();
    assert_snapshot!(views.join("\n\n"), @r#"
    modal elevate_deny "Deny request #1" [Deny] [Cancel] metadata=1
    input reason "Reason": plain_text_input placeholder "Why is this denied?" multiline

    modal elevate_lockdown "Lock down db?" [Lock down] [Cancel] metadata=db
    input reason "Reason (submitting revokes every grant now)": plain_text_input placeholder "What happened?" multiline

    modal elevate_revoke "Revoke #1 (db)?" [Revoke] [Cancel] metadata=1
    input reason "Reason (submitting revokes it now)": plain_text_input placeholder "Why is it revoked?" multiline
    "#);

    let errors = app
        .slack_submit("alice", "elevate_request", "", &[("role", "db"), ("duration", "-5m"), ("reason", "INC-7 x")])
        .await;
    assert_snapshot!(errors.body.to_string(), @r#"{"errors":{"duration":"-5m is not a duration: use a number with a unit, like 30m, 2h, 1h30m or 1d"},"response_action":"errors"}"#);
}
