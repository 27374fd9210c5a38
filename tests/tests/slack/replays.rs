//! A delivery that arrives twice acts once: Slack's own retries and copies of a signed payload
//! replayed within the signature window. Each kind of delivery (slash command, button click,
//! modal submission, Events API callback) is sent twice with the same identity; the second is
//! acknowledged and changes nothing, including after a restart and on a second replica.

use super::slack_app;
use elevate_core::chat::ALREADY_RECEIVED;
use elevate_tests::{
    TestApp, TestDb, on_both_dbs,
    slack::{Signing, TEAM, command_body, submission, user},
};
use serde_json::json;

async fn created(app: &TestApp) -> usize {
    app.events().await.iter().filter(|e| e.kind == "request.created").count()
}

async fn send_command(app: &TestApp, body: &str) -> String {
    app.slack_post("/slack/commands", "application/x-www-form-urlencoded", body.to_string(), Signing::Good).await.text()
}

#[tokio::test]
async fn the_same_slash_command_twice_creates_one_request() {
    let app = slack_app().await;
    let body = command_body(TEAM, &user("alice"), "alice", "db 1h INC-1 fix lag");
    let first = send_command(&app, &body).await;
    let id = TestApp::id_in(&first);
    app.deliver().await;
    let cards = app.fake_slack().calls("chat.postMessage").len();

    let second = send_command(&app, &body).await;
    assert_eq!(second, ALREADY_RECEIVED);
    app.deliver().await;
    assert_eq!(created(&app).await, 1, "one request");
    assert_eq!(app.fake_slack().calls("chat.postMessage").len(), cards, "no second card");
    assert_eq!(app.state(id).await, "pending");

    // A different command with the same text is a new delivery, and acts.
    let again = app.slack_command("alice", "db 1h INC-1 fix lag").await.text();
    assert_ne!(again, ALREADY_RECEIVED, "a new trigger_id is a new command");
}

#[tokio::test]
async fn a_click_delivered_twice_is_acknowledged_once() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    app.deliver().await;
    let click = app.click_payload(TEAM, "bob", "approve", id);
    let first = app.slack_interaction(click.clone(), Signing::Good).await;
    assert_eq!(first.status, 200);
    app.deliver().await;
    let events = app.events().await.len();
    let calls = app.fake_slack().everything_sent();

    let second = app.slack_interaction(click, Signing::Good).await;
    assert_eq!((second.status, second.body), (200, serde_json::Value::Null), "an empty acknowledgement");
    app.deliver().await;
    assert_eq!(app.events().await.len(), events, "no event for the repeat, not even a refusal");
    assert_eq!(app.fake_slack().everything_sent(), calls, "nothing said to anyone");
}

#[tokio::test]
async fn a_modal_submitted_twice_creates_one_request() {
    let app = slack_app().await;
    let form =
        submission("alice", "elevate_request", "", &[("role", "db"), ("duration", "1h"), ("reason", "INC-7 fix")]);
    let first = app.slack_interaction(form.clone(), Signing::Good).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(created(&app).await, 1);
    let second = app.slack_interaction(form, Signing::Good).await;
    assert_eq!((second.status, second.body), (200, serde_json::Value::Null));
    assert_eq!(created(&app).await, 1, "the repeat created nothing");
}

#[tokio::test]
async fn events_api_retries_are_acknowledged() {
    let app = slack_app().await;
    let event = json!({
        "token": "gIkuvaNzQIHg97ATvDxqgjtO", "team_id": TEAM, "api_app_id": "A0ELEVATE",
        "type": "event_callback", "event_id": "Ev08MFMKH6", "event_time": 1_700_000_000,
        "event": { "type": "app_home_opened", "user": user("alice"), "channel": "DALICE", "tab": "home",
                   "event_ts": "1700000000.000100" },
    });
    for _ in 0..3 {
        let a = app.slack_post("/slack/events", "application/json", event.to_string(), Signing::Good).await;
        assert_eq!(a.status, 200, "Slack stops retrying only on a 2xx: {:?}", a.body);
    }
    // The event was acted on once: one Home tab published for three deliveries.
    assert_eq!(app.fake_slack().calls("views.publish").len(), 1);
}

on_both_dbs!(a_replay_after_a_restart_is_still_recognised, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let body = command_body(TEAM, &user("alice"), "alice", "db 1h INC-1 fix lag");
    TestApp::id_in(&send_command(&app, &body).await);
    let app = app.crash_and_restart(false).await;
    assert_eq!(send_command(&app, &body).await, ALREADY_RECEIVED);
    assert_eq!(created(&app).await, 1);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_given_the_same_command_create_one_request() {
    let Some(db) = TestDb::postgres().await else { return };
    let url = db.url.clone();
    let a = TestApp::builder().db(db).slack().spawn().await;
    let b = TestApp::builder()
        .db(TestDb::existing(&url, elevate_tests::db::Dialect::Postgres))
        .config(&elevate_tests::policy::config(&a.receiver.url))
        .slack()
        .spawn()
        .await;
    let body = command_body(TEAM, &user("alice"), "alice", "db 1h INC-1 fix lag");
    let (x, y) = tokio::join!(send_command(&a, &body), send_command(&b, &body));
    let answers = [x, y];
    assert_eq!(answers.iter().filter(|t| *t == ALREADY_RECEIVED).count(), 1, "{answers:?}");
    assert_eq!(created(&a).await, 1);
}
