//! The security team's and on-call's sub-commands from Discord: lockdown and revoke confirmed
//! through a form, break-glass, review, unlock.

use super::discord_app;
use elevate_tests::discord::Member;
use serde_json::json;

#[tokio::test]
async fn lockdown_and_revoke_are_confirmed_by_submitting_a_form() {
    let app = discord_app().await;
    let id = app.active_grant("db", "1h").await;
    let refused = app.discord_command("alice", "lockdown", &[("scope", json!("db"))]).await.text();
    assert!(refused.contains("Only the security team"), "{refused}");

    let form = app.discord_command("dave", "lockdown", &[("scope", json!("db"))]).await;
    assert_eq!(form.kind(), 9, "a form first: {:?}", form.body);
    assert_eq!(form.body["data"]["custom_id"], "lockdown-confirm:db");
    assert!(app.app.service.lockdowns().await.unwrap().is_empty(), "asking changes nothing");

    let not_dave = app.discord_submit_as(Member::of("alice"), "lockdown-confirm:db", &[("reason", "x")]).await.text();
    assert!(not_dave.contains("Only"), "authority is checked on submit: {not_dave}");
    let done =
        app.discord_submit_as(Member::of("dave"), "lockdown-confirm:db", &[("reason", "leaked creds")]).await.text();
    assert!(done.contains("Locked down `db`: 1 grant(s) being revoked"), "{done}");
    app.run_due().await;
    assert_eq!(app.state(id).await, "revoked");
    assert!(app.discord_command("dave", "unlock", &[("scope", json!("db"))]).await.text().contains("Unlocked"));

    let other = app.active_grant("db", "1h").await;
    let form = app.discord_command("bob", "revoke", &[("id", json!(other))]).await;
    assert_eq!(form.kind(), 9);
    let revoked = app
        .discord_submit_as(Member::of("bob"), &format!("revoke-confirm:{other}"), &[("reason", "done")])
        .await
        .text();
    assert!(revoked.contains("Revoking"), "{revoked}");
    app.run_due().await;
    assert_eq!(app.state(other).await, "revoked");
}

#[tokio::test]
async fn breakglass_and_review_from_discord() {
    let app = discord_app().await;
    let opts = [("role", json!("db")), ("duration", json!("10m")), ("justification", json!("orders table locked"))];
    assert!(app.discord_command("alice", "breakglass", &opts).await.text().contains("may not use break-glass"));
    let yes = app.discord_command("erin", "breakglass", &opts).await.text();
    assert!(yes.contains("Break-glass #1"), "{yes}");
    app.run_due().await;
    assert_eq!(app.state(1).await, "active");
    app.deliver().await;
    let security: Vec<String> = app
        .fake_discord()
        .messages(elevate_tests::discord::SECURITY_CHANNEL)
        .iter()
        .map(|m| m.content.clone())
        .collect();
    assert_eq!(security.len(), 1, "{security:?}");
    assert!(security[0].contains("SECURITY ALERT #1"), "{security:?}");
    let note = [("id", json!(1)), ("note", json!("justified: migration lock"))];
    assert!(app.discord_command("dave", "review", &note).await.text().contains("Review of #1 recorded"));
}
