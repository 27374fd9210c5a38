//! The App Home tab: published when a person opens it (`app_home_opened`), refreshed when what
//! it shows changes, and its buttons act through the same checks as the card's.

use super::slack_app;
use elevate_tests::{TestApp, slack::user};
use insta::assert_snapshot;

#[tokio::test]
async fn a_requesters_home_shows_their_access_and_follows_their_requests() {
    let app = slack_app().await;
    app.slack_open_home("alice").await;
    assert_snapshot!(app.slack_home("alice"), @"
    section: *Your access*
    section: You have no pending requests and no active grants.
    actions: [Request access] elevate_request_form= (primary)
    ");

    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    assert_snapshot!(app.slack_home("alice"), @"
    section: *Your access*
    section: #1 `db` for 1h: pending
    actions: [Cancel #1] elevate_cancel=1
    actions: [Request access] elevate_request_form= (primary)
    ");

    app.slack_click("bob", "elevate_approve", id).await;
    app.tick().await;
    let home = app.slack_home("alice");
    assert!(home.contains("active, 1h00m left") && home.contains("elevate_release="), "{home}");

    // Release from the Home tab: the answer is a DM (there is no channel), the tab refreshes.
    app.slack_home_click("alice", "elevate_release", &id.to_string()).await;
    app.tick().await;
    assert_eq!(app.state(id).await, "released");
    assert!(app.slack_home("alice").contains("You have no pending requests and no active grants."));
}

#[tokio::test]
async fn an_approver_decides_from_home_with_the_cards_checks() {
    let app = slack_app().await;
    for p in ["bob", "mallory", "alice"] {
        app.slack_open_home(p).await;
    }
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    let bobs = app.slack_home("bob");
    assert!(bobs.contains("Waiting for your decision") && bobs.contains(&format!("elevate_approve={id}")), "{bobs}");
    assert!(!app.slack_home("mallory").contains("Waiting for your decision"), "not an approver");
    assert!(!app.slack_home("alice").contains("Waiting for your decision"), "never one's own request");

    // A forged click from a home that never showed the button is refused like one on the card.
    app.slack_home_click("mallory", "elevate_approve", &id.to_string()).await;
    assert_eq!(app.state(id).await, "pending");
    let told = app.fake_slack().dms(&user("mallory")).join("\n");
    assert!(told.contains("approve"), "mallory is told why: {told}");
    app.slack_home_click("alice", "elevate_approve", &id.to_string()).await;
    assert_eq!(app.state(id).await, "pending", "no self-approval from home either");

    app.slack_home_click("bob", "elevate_approve", &id.to_string()).await;
    app.deliver().await;
    assert_eq!(app.state(id).await, "approved");
    assert!(!app.slack_home("bob").contains("Waiting for your decision"), "decided: gone from bob's home");

    // A stale Home tab clicked again: already decided, refused, nothing changes.
    app.slack_home_click("bob", "elevate_approve", &id.to_string()).await;
    let told = app.fake_slack().dms(&user("bob")).join("\n");
    assert!(told.contains("already"), "bob is told it was decided: {told}");
    assert_eq!(app.state(id).await, "approved");
    let approved = app.events().await.into_iter().filter(|e| e.kind == "request.approved").count();
    assert_eq!(approved, 1, "approved once");
}

#[tokio::test]
async fn the_security_team_sees_break_glass_reviews_and_lockdowns() {
    let app = slack_app().await;
    app.slack_open_home("dave").await;
    let home = app.slack_home("dave");
    assert!(home.contains("Break-glass grants to review") && home.contains("Lockdowns in force"), "{home}");

    let bg = TestApp::id_in(&app.slack_command("erin", "breakglass db 15m INC-9 primary down").await.text());
    app.tick().await;
    let home = app.slack_home("dave");
    assert!(home.contains(&format!("#{bg}")) && home.contains("used break-glass for `db`"), "{home}");

    app.slack_command("dave", "lockdown prod INC-9 suspicious activity").await;
    app.slack_button("dave", "elevate_confirm_lockdown", r#"{"scope":"prod","reason":"INC-9 suspicious activity"}"#)
        .await;
    app.tick().await;
    assert!(app.slack_home("dave").contains("`prod` since"), "{}", app.slack_home("dave"));
    assert!(!app.slack_home("dave").contains("None.\nsection: *Lockdowns"), "the lockdown is listed");
}

#[tokio::test]
async fn request_access_on_home_opens_the_request_form() {
    let app = slack_app().await;
    app.slack_open_home("alice").await;
    assert!(app.slack_home("alice").contains("[Request access] elevate_request_form="));
    app.slack_home_click("alice", "elevate_request_form", "").await;
    let opened = app.fake_slack().calls("views.open");
    assert_eq!(opened.len(), 1);
    assert!(opened[0].args.to_string().contains("elevate_request"), "{:?}", opened[0].args);
}
