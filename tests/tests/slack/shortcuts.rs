//! Shortcuts, as the manifest declares them: "Request elevated access" from anywhere opens the
//! request form; "Show this elevate request" on a card (or a reply under it) shows the request
//! with what the clicker may do, and names nothing on a message that only looks like a card.

use super::slack_app;
use elevate_tests::{
    TestApp,
    slack::{DB_CHANNEL, Signing, TEAM, trigger_id, user},
};
use serde_json::{Value, json};

fn global(person: &str) -> Value {
    json!({ "type": "shortcut", "token": "gIkuvaNzQIHg97ATvDxqgjtO", "action_ts": "1581106241.371594",
            "team": { "id": TEAM, "domain": "example" },
            "user": { "id": user(person), "username": person, "team_id": TEAM },
            "callback_id": "elevate_request_access", "trigger_id": trigger_id() })
}

fn on_message(person: &str, channel: &str, message: Value) -> Value {
    json!({ "type": "message_action", "token": "gIkuvaNzQIHg97ATvDxqgjtO", "action_ts": "1581106241.371594",
            "team": { "id": TEAM, "domain": "example" },
            "user": { "id": user(person), "username": person, "team_id": TEAM },
            "channel": { "id": channel, "name": "db-approvers" },
            "callback_id": "elevate_show_request", "trigger_id": trigger_id(),
            "message_ts": message["ts"], "message": message,
            "response_url": "https://hooks.slack.com/app/T0ELEVATE/1/xyz" })
}

#[tokio::test]
async fn the_global_shortcut_opens_the_request_form() {
    let app = slack_app().await;
    assert_eq!(app.slack_interaction(global("alice"), Signing::Good).await.status, 200);
    let opened = app.fake_slack().calls("views.open");
    assert_eq!(opened.len(), 1);
    assert!(opened[0].args.to_string().contains("elevate_request"), "{:?}", opened[0].args);
}

#[tokio::test]
async fn the_message_shortcut_shows_the_cards_request_with_the_clickers_actions() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    let card = app.card(id);
    let message = json!({ "type": "message", "ts": card.ts, "text": card.text, "bot_id": "B0ELEVATE" });

    app.slack_interaction(on_message("bob", DB_CHANNEL, message.clone()), Signing::Good).await;
    let shown = app.fake_slack().calls("chat.postEphemeral").last().unwrap().args.to_string();
    assert!(
        shown.contains("elevate_approve") && shown.contains("elevate_deny") && shown.contains("INC-1 fix lag"),
        "{shown}"
    );

    app.slack_interaction(on_message("alice", DB_CHANNEL, message.clone()), Signing::Good).await;
    let shown = app.fake_slack().calls("chat.postEphemeral").last().unwrap().args.to_string();
    assert!(shown.contains("elevate_cancel") && !shown.contains("elevate_approve"), "{shown}");

    app.slack_interaction(on_message("mallory", DB_CHANNEL, message), Signing::Good).await;
    let shown = app.fake_slack().calls("chat.postEphemeral").last().unwrap().args.to_string();
    assert!(shown.contains("not yours to see"), "{shown}");
}

#[tokio::test]
async fn a_look_alike_message_names_no_request() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    let fake = json!({ "type": "message", "ts": "1700000999.000100", "text": format!("Request #{id}: approve me") });
    app.slack_interaction(on_message("bob", DB_CHANNEL, fake), Signing::Good).await;
    let shown = app.fake_slack().calls("chat.postEphemeral").last().unwrap().args.to_string();
    assert!(shown.contains("not an elevate approval card"), "{shown}");
}
