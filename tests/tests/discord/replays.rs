//! An interaction that arrives twice (Discord's retry, or a signed copy replayed within the
//! timestamp window) acts once: the interaction `id` is remembered in the database.

use super::discord_app;
use elevate_core::chat::ALREADY_RECEIVED;
use elevate_tests::{
    TestApp,
    discord::{Member, command},
    on_both_dbs,
};
use serde_json::json;

async fn created(app: &TestApp) -> usize {
    app.events().await.iter().filter(|e| e.kind == "request.created").count()
}

fn request(person: &str) -> serde_json::Value {
    let opts = [("role", json!("db")), ("duration", json!("1h")), ("reason", json!("INC-1 fix lag"))];
    command(Member::of(person), "request", &opts)
}

#[tokio::test]
async fn the_same_command_interaction_twice_creates_one_request() {
    let app = discord_app().await;
    let typed = request("alice");
    let id = TestApp::id_in(&app.discord_send(typed.clone()).await.text());
    app.deliver().await;
    let sent = app.fake_discord().all_calls().len();

    assert_eq!(app.discord_send(typed).await.text(), ALREADY_RECEIVED);
    app.deliver().await;
    assert_eq!(created(&app).await, 1);
    assert_eq!(app.fake_discord().all_calls().len(), sent, "no second card");
    assert_eq!(app.state(id).await, "pending");
}

#[tokio::test]
async fn a_click_delivered_twice_is_only_acknowledged_the_second_time() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix").await;
    app.deliver().await;
    let click = app.click(Member::of("mallory"), &format!("approve:{id}"));
    let first = app.discord_send(click.clone()).await.text();
    assert!(!first.is_empty(), "the first click is answered (here: refused)");
    let events = app.events().await.len();

    let second = app.discord_send(click).await;
    assert_eq!(second.kind(), 6, "a deferred update that changes nothing: {:?}", second.body);
    assert_eq!(app.events().await.len(), events, "not even a second refusal is audited");
}

on_both_dbs!(a_replay_after_a_restart_is_still_recognised, |db| async move {
    let app = TestApp::builder().db(db).discord().spawn().await;
    let typed = request("alice");
    TestApp::id_in(&app.discord_send(typed.clone()).await.text());
    let app = app.crash_and_restart(false).await;
    assert_eq!(app.discord_send(typed).await.text(), ALREADY_RECEIVED);
    assert_eq!(created(&app).await, 1);
});

#[tokio::test]
async fn autocomplete_is_answered_every_time() {
    let app = discord_app().await;
    let typing = elevate_tests::discord::interaction(
        4,
        Member::of("alice"),
        json!({ "id": "1700000000000000001", "name": "elevate", "type": 1,
                "options": [{ "name": "request", "type": 1,
                              "options": [{ "name": "role", "type": 3, "value": "d", "focused": true }] }] }),
        None,
    );
    for _ in 0..2 {
        assert_eq!(app.discord_send(typing.clone()).await.kind(), 8, "choices, not a duplicate notice");
    }
}
