//! A request of several roles seen through Slack: typed with commas or picked in the modal's
//! multi-select, one card with a line per role saying what each still needs, one click
//! approving every role the clicker may approve, and each role's own end shown on the card.

use elevate_tests::{
    TestApp, on_both_dbs, policy,
    render::slack_message,
    slack::{DB_CHANNEL, PROD_CHANNEL},
};
use insta::assert_snapshot;

async fn app_on(db: elevate_tests::TestDb) -> TestApp {
    let config = policy::config("{WEBHOOK_URL}") + policy::BATCHES;
    TestApp::builder().db(db).config(&config).slack().spawn().await
}

on_both_dbs!(one_card_shows_every_role_and_what_each_still_needs, |db| async move {
    let app = app_on(db).await;
    let slack = app.fake_slack().clone();
    let answer = app.slack_command("alice", "db,prod,audit 1h INC-7 outage in orders").await;
    let text = answer.text();
    assert!(text.contains("for `db`, `prod`, `audit` (1h) sent to their approvers"), "{text}");
    let lead = TestApp::id_in(&text);
    let (db, prod, audit) = (lead, lead + 1, lead + 2);

    app.deliver().await;
    let cards: Vec<_> = [DB_CHANNEL, PROD_CHANNEL]
        .iter()
        .flat_map(|c| slack.messages(c))
        .filter(|m| m.text.starts_with("Request #"))
        .collect();
    assert_eq!(cards.len(), 1, "one card for the whole request, in its first role's channel");
    let card = app.card(lead);
    assert_eq!(card.channel, DB_CHANNEL);
    assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"]);
    let shown = card.all_text();
    for want in [
        "asks for `db`, `prod`, `audit` for 1h",
        &format!("`db` (#{db}): Waiting for 1 approval — needs 1 more from `approvers`"),
        &format!("`prod` (#{prod}): Waiting for 2 approvals — needs 2 more from `approvers`"),
        &format!("`audit` (#{audit}): Waiting for 1 approval — needs 1 more from `security`"),
    ] {
        assert!(shown.contains(want), "card lacks {want}: {shown}");
    }

    // bob approves db and prod with one click; prod still needs a second approver.
    assert_eq!(app.slack_click("bob", "elevate_approve", lead).await.status, 200);
    app.deliver().await;
    let shown = app.card(lead).all_text();
    for want in [
        &format!("`db` (#{db}): Approved by <@UBOB> — waiting for the other roles of this request"),
        &format!("`prod` (#{prod}): 1 of 2 approvals: <@UBOB> — needs 1 more from `approvers`"),
        &format!("`audit` (#{audit}): Waiting for 1 approval — needs 1 more from `security`"),
        "still waiting for `prod`, `audit`",
    ] {
        assert!(shown.contains(want), "card lacks {want}: {shown}");
    }
    app.slack_click("carol", "elevate_approve", lead).await;
    app.slack_click("dave", "elevate_approve", lead).await;
    app.tick().await;
    app.tick().await;
    let card = app.card(lead);
    assert!(card.buttons().is_empty(), "every role decided: no buttons");
    let shown = card.all_text();
    for id in [db, prod, audit] {
        assert!(shown.contains(&format!("(#{id}): Approved by")), "{shown}");
    }
    assert!(shown.contains("active until 2026-03-02 10:00 UTC"), "{shown}");

    // One role revoked: the card shows it, the others stay active.
    app.dave().revoke(audit, "audit done").await.ok();
    app.tick().await;
    app.tick().await;
    let shown = app.card(lead).all_text();
    assert!(
        shown.contains(&format!("`audit` (#{audit}): Approved by <@UDAVE> — revoked by <@UDAVE>: audit done")),
        "{shown}"
    );
    assert!(shown.contains(&format!("`db` (#{db}): Approved by <@UBOB> — active until")), "{shown}");

    let status = app.slack_command("alice", "status").await.text();
    assert!(
        status.contains(&format!("#{prod} `prod` active")) && status.contains(&format!("(request #{lead})")),
        "{status}"
    );
});

#[tokio::test]
async fn the_modal_takes_several_roles_and_a_refusal_names_the_role() {
    let app = app_on(elevate_tests::TestDb::sqlite()).await;
    let slack = app.fake_slack().clone();
    app.slack_command("alice", "").await;
    let view = slack.calls("views.open").pop().unwrap().args["view"].clone();
    let role = &view["blocks"][0]["element"];
    assert_eq!(role["type"], "multi_static_select");
    let options: Vec<&str> = role["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert!(options.contains(&"audit") && options.contains(&"incident"), "bundles are offered too: {options:?}");

    let errors = app
        .slack_submit("alice", "elevate_request", "", &[("role", "db,prod"), ("duration", "3h"), ("reason", "INC-7 x")])
        .await;
    assert_eq!(errors.body["response_action"], "errors");
    let why = errors.body["errors"]["duration"].as_str().unwrap();
    assert!(why.contains("prod can be held for at most 2h"), "{why}");

    let ok =
        app.slack_submit("alice", "elevate_request", "", &[("role", "db,audit"), ("reason", "INC-7 outage")]).await;
    app.deliver().await;
    let card = app.card(1);
    assert_snapshot!(slack_message(&card.text, &card.blocks), @"
    text: Request #1: <@UALICE> asks for `db`, `audit` for 1h
    Reason: INC-7 outage
    Ticket: INC-7
    Granted only when every role is approved; still waiting for `db`, `audit`. Approve approves every role you may approve.
    • `db` (#1): Waiting for 1 approval — needs 1 more from `approvers`
    • `audit` (#2): Waiting for 1 approval — needs 1 more from `security`
    section: *Request #1: <@UALICE> asks for `db`, `audit` for 1h*
    section fields: *Reason*
    INC-7 outage | *Ticket*
    INC-7
    section: Granted only when every role is approved; still waiting for `db`, `audit`. Approve approves every role you may approve.
    section: • `db` (#1): Waiting for 1 approval — needs 1 more from `approvers`
    • `audit` (#2): Waiting for 1 approval — needs 1 more from `security`
    actions: [Approve] elevate_approve=1 (primary)
             [Deny] elevate_deny=1 (danger)
    ");
    app.slack_click("bob", "elevate_approve", 1).await;
    app.deliver().await;
    let card = app.card(1);
    assert_snapshot!(slack_message(&card.text, &card.blocks), @"
    text: Request #1: <@UALICE> asks for `db`, `audit` for 1h
    Reason: INC-7 outage
    Ticket: INC-7
    Granted only when every role is approved; still waiting for `audit`. Approve approves every role you may approve.
    • `db` (#1): Approved by <@UBOB> — waiting for the other roles of this request
    • `audit` (#2): Waiting for 1 approval — needs 1 more from `security`
    section: *Request #1: <@UALICE> asks for `db`, `audit` for 1h*
    section fields: *Reason*
    INC-7 outage | *Ticket*
    INC-7
    section: Granted only when every role is approved; still waiting for `audit`. Approve approves every role you may approve.
    section: • `db` (#1): Approved by <@UBOB> — waiting for the other roles of this request
    • `audit` (#2): Waiting for 1 approval — needs 1 more from `security`
    actions: [Approve] elevate_approve=1 (primary)
             [Deny] elevate_deny=1 (danger)
    ");
    assert_snapshot!(slack.ephemerals("UBOB").join("\n"), @"You approved `db` of #1; still waiting for approvals of `audit`.");
    assert_eq!(ok.body, serde_json::Value::Null, "the modal closes");
    let (db, audit) = (app.request(1).await, app.request(2).await);
    assert_eq!((db.role.as_str(), audit.role.as_str()), ("db", "audit"));
    assert_eq!(db.batch, audit.batch);
    assert_eq!(db.duration.to_string(), "1h", "no duration: the shortest of the roles' defaults");
}
