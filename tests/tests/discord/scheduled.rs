//! Scheduled access seen through Discord: the `at` and `in` options of `/elevate request`.

use super::discord_app;
use serde_json::json;

#[tokio::test]
async fn the_at_and_in_options_schedule_a_request() {
    let app = discord_app().await;
    let opts =
        [("role", json!("db")), ("duration", json!("1h")), ("reason", json!("INC-9 failover")), ("in", json!("3h"))];
    let text = app.discord_command("alice", "request", &opts).await.text();
    assert!(text.contains("Request #1 for `db` (1h from 2026-03-02 12:00 UTC) sent to"), "{text}");
    let opts = [("role", json!("db")), ("reason", json!("INC-9 x")), ("at", json!("2026-03-02 14:00 Asia/Tokyo"))];
    let past = app.discord_command("alice", "request", &opts).await.text();
    assert!(past.contains("has passed"), "{past}");
    let opts =
        [("role", json!("db")), ("reason", json!("INC-9 x")), ("at", json!("2026-03-03 10:00")), ("in", json!("3h"))];
    let both = app.discord_command("alice", "request", &opts).await.text();
    assert!(both.contains("not both"), "{both}");

    app.deliver().await;
    let approved = app.discord_click("bob", "approve:1").await.text();
    assert_eq!(approved, "You approved #1: it is approved.");
    app.deliver().await;
    assert!(app.discord_card(1).content.contains("starts at 2026-03-02 12:00 UTC"), "{}", app.discord_card(1).content);
    assert_eq!(app.state(1).await, "scheduled");
}
