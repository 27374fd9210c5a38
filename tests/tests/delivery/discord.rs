//! Discord: a deleted approval message, a channel the bot lost access to, and an outage that
//! the feed rides out with nonces.

use super::{deliver_paced, expected_feed, step_now};
use chrono::Duration;
use elevate_core::Clock;
use elevate_tests::{
    TestApp,
    discord::{AUDIT_CHANNEL, DB_CHANNEL, PROD_CHANNEL, SECURITY_CHANNEL},
    fake_time::Outage,
    on_both_dbs,
};

on_both_dbs!(a_deleted_approval_message_is_posted_again_and_delays_nothing, |db| async move {
    let app = TestApp::builder().db(db).discord().spawn().await;
    let discord = app.fake_discord().clone();
    let first = app.alice().request("db", "1h", "INC-1 first").await.id();
    app.deliver().await;
    let old = app.discord_card(first);
    discord.delete_message(DB_CHANNEL, &old.id);
    app.bob().approve(first).await.ok();
    let second = app.person("erin").request("db", "1h", "INC-2 second").await.id();
    step_now(&app).await;

    assert_eq!(app.discord_card(second).buttons().len(), 2, "the next card came at once");
    let again = app.discord_card(first);
    assert_ne!(again.id, old.id, "posted again as a new message");
    assert!(again.content.contains("Approved by"), "{}", again.content);
    assert_eq!(discord.calls("edit_message").len(), 1, "Unknown Message is final: not retried");
});

on_both_dbs!(missing_access_to_one_channel_delays_no_other_card, |db| async move {
    let app = TestApp::builder().db(db).discord().spawn().await;
    let discord = app.fake_discord().clone();
    discord.revoke_access(PROD_CHANNEL);
    app.alice().request("prod", "30m", "INC-1 deploy").await.id();
    let db_req = app.person("erin").request("db", "1h", "INC-2 lag").await.id();
    step_now(&app).await;

    assert_eq!(app.discord_card(db_req).buttons().len(), 2);
    let reports = discord.messages(SECURITY_CHANNEL);
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(reports[0].content.contains("50001"), "{}", reports[0].content);
    assert!(reports[0].content.contains(&format!("give @elevate access to channel {PROD_CHANNEL}")));
});

on_both_dbs!(the_feed_rides_out_an_outage_without_losing_or_doubling_a_line, |db| async move {
    let app = TestApp::builder().db(db).discord().spawn().await;
    let discord = app.fake_discord().clone();
    let start = app.clock.now();
    discord.go_down(start + Duration::minutes(10), Outage::Timeout);
    for i in 0..3 {
        let id = app.alice().request("sandbox", "1h", &format!("INC-{i} outage work")).await.id();
        app.bob().approve(id).await.ok();
        app.advance(Duration::minutes(3));
        app.app.deliver_step(elevate_bot::feed::Mode::Paced).await;
    }
    deliver_paced(&app, 2000).await;

    let lines: Vec<String> = discord
        .messages(AUDIT_CHANNEL)
        .iter()
        .flat_map(|m| m.content.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(lines, expected_feed(&app).await, "every event once, in order");
    let posts = discord.calls("create_message");
    let feed_posts: Vec<_> = posts.iter().filter(|c| c.path.contains(AUDIT_CHANNEL)).collect();
    assert!(feed_posts.iter().all(|c| c.body["enforce_nonce"] == true && c.body["nonce"].is_string()));
});
