//! The security team's and on-call's commands from Slack: lockdown behind a confirm dialog,
//! break-glass, review.

use super::slack_app;

#[tokio::test]
async fn lockdown_asks_for_confirmation_and_only_the_click_acts() {
    let app = slack_app().await;
    let id = app.active_grant("db", "1h").await;
    let refused = app.slack_command("alice", "lockdown db leaked creds").await.text();
    assert!(refused.contains("Only the security team"), "{refused}");

    let ask = app.slack_command("dave", "lockdown db leaked <!channel> creds").await;
    let button = &ask.body["blocks"][1]["elements"][0];
    assert_eq!(button["style"], "danger");
    assert_eq!(button["confirm"]["title"]["text"], "Are you sure?", "Slack shows a confirm dialog first");
    assert!(!ask.body["text"].as_str().unwrap().contains("<!channel>"), "echoed reason is escaped");
    assert!(app.app.service.lockdowns().await.unwrap().is_empty(), "asking changes nothing");
    assert_eq!(app.state(id).await, "active");

    let value = button["value"].as_str().unwrap().to_string();
    app.slack_button("alice", "elevate_confirm_lockdown", &value).await;
    assert!(app.app.service.lockdowns().await.unwrap().is_empty(), "authority is checked at the click");
    app.slack_button("dave", "elevate_confirm_lockdown", &value).await;
    assert_eq!(app.app.service.lockdowns().await.unwrap()[0].scope, "db");
    app.run_due().await;
    assert_eq!(app.state(id).await, "revoked");
    let told: Vec<String> = app
        .fake_slack()
        .calls("chat.postEphemeral")
        .iter()
        .map(|c| c.args["text"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(told.iter().any(|t| t.contains("Locked down `db`: 1 grant(s) being revoked")), "{told:?}");

    let msg = app.slack_command("alice", "db 1h INC-1 x").await.text();
    assert!(msg.contains("locked down by dave"), "{msg}");
    assert!(app.slack_command("dave", "unlock db").await.text().contains("Unlocked"));
}

#[tokio::test]
async fn breakglass_from_slack_grants_at_once_and_security_reviews_it() {
    let app = slack_app().await;
    let no = app.slack_command("alice", "breakglass db 10m prod down").await.text();
    assert!(no.contains("may not use break-glass"), "{no}");
    let yes = app.slack_command("erin", "breakglass db 10m orders table locked").await.text();
    assert!(yes.contains("Break-glass #1"), "{yes}");
    app.run_due().await;
    assert_eq!(app.state(1).await, "active");
    app.deliver().await;
    let security: Vec<String> =
        app.fake_slack().messages(elevate_tests::slack::SECURITY_CHANNEL).iter().map(|m| m.text.clone()).collect();
    assert_eq!(security.len(), 1, "only security matters reach the security channel: {security:?}");
    assert!(security[0].contains("SECURITY ALERT #1") && security[0].contains("BREAK-GLASS"), "{security:?}");
    let reviewed = app.slack_command("dave", "review 1 INC-9 migration lock; justified").await.text();
    assert!(reviewed.contains("Review of #1 recorded"), "{reviewed}");
    assert!(app.slack_command("dave", "help").await.text().contains("/elevate lockdown"));
}
