//! Slack: a deleted card, a channel the bot is not in, a ten-minute outage and a burst of 500
//! events, each against the fake Slack's documented errors and rate limits.

use super::{deliver_paced, expected_feed, metrics, step_now};
use chrono::Duration;
use elevate_core::{
    Clock,
    audit::{Actor, EventKind, NewEvent},
};
use elevate_tests::{
    TestApp,
    fake_time::{Limit, Outage},
    on_both_dbs,
    slack::{AUDIT_CHANNEL, DB_CHANNEL, PROD_CHANNEL, SECURITY_CHANNEL},
};
use serde_json::json;

fn feed_lines(app: &TestApp) -> Vec<String> {
    app.fake_slack()
        .messages(AUDIT_CHANNEL)
        .iter()
        .flat_map(|m| m.text.lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

on_both_dbs!(a_deleted_card_is_posted_again_and_delays_no_other_card, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    let first = app.alice().request("db", "1h", "INC-1 first").await.id();
    app.deliver().await;
    let old = app.card(first);

    // Someone deletes the card; then the request is approved and another one arrives.
    slack.delete_message(DB_CHANNEL, &old.ts);
    app.bob().approve(first).await.ok();
    let second = app.person("erin").request("db", "1h", "INC-2 second").await.id();
    step_now(&app).await;

    assert!(app.card(second).buttons().len() == 2, "the next request's card came at once");
    let again = app.card(first);
    assert_ne!(again.ts, old.ts, "the deleted card was posted again as a new message");
    assert!(again.all_text().contains("Approved by"), "{}", again.all_text());
    assert_eq!(slack.calls("chat.update").len(), 1, "message_not_found is final: not retried");

    // Later events update the new card in place.
    app.bob().deny(second, "not now").await.ok();
    app.deliver().await;
    assert_eq!(
        slack.messages(DB_CHANNEL).iter().filter(|m| m.text.starts_with(&format!("Request #{first}:"))).count(),
        1
    );
});

on_both_dbs!(a_channel_the_bot_is_not_in_delays_no_other_roles_card, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    slack.remove_bot(PROD_CHANNEL);
    let prod = app.alice().request("prod", "30m", "INC-1 deploy").await.id();
    let db_req = app.person("erin").request("db", "1h", "INC-2 lag").await.id();
    step_now(&app).await;

    assert_eq!(app.card(db_req).buttons().len(), 2, "the db approvers see their card at once");
    let to_prod = || slack.calls("chat.postMessage").iter().filter(|c| c.args["channel"] == PROD_CHANNEL).count();
    assert_eq!(to_prod(), 1, "not_in_channel is final: tried once");
    let reports = slack.messages(SECURITY_CHANNEL);
    assert_eq!(reports.len(), 1, "reported once to the security channel");
    assert!(reports[0].text.contains("not_in_channel"), "{}", reports[0].text);
    assert!(reports[0].text.contains(&format!("invite @elevate to channel {PROD_CHANNEL}")), "{}", reports[0].text);

    // Another card for the same channel: tried once, counted, not reported again.
    let again = app.person("erin").request("prod", "30m", "INC-3 again").await.id();
    app.deliver().await;
    assert_eq!(to_prod(), 2);
    assert_eq!(slack.messages(SECURITY_CHANNEL).len(), 1, "once per channel and code");
    let m = metrics(&app);
    assert!(m.contains(r#"elevate_chat_refusals_total{code="not_in_channel",platform="slack"} 2"#), "{m}");
    assert!(
        m.contains(r#"elevate_chat_deliveries_total{destination="card",outcome="permanent",platform="slack"} 2"#),
        "{m}"
    );
    assert!(m.contains(r#"elevate_chat_deliveries_total{destination="card",outcome="ok",platform="slack"}"#), "{m}");
    assert!(
        app.request(again).await.state.as_str() == "pending" && app.request(prod).await.state.as_str() == "pending"
    );
});

on_both_dbs!(a_ten_minute_outage_ends_with_every_feed_event_posted_once_in_order, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    let start = app.clock.now();
    slack.go_down(start + Duration::minutes(10), Outage::ServerError);

    // Work goes on while Slack is down: requests, approvals, denials.
    for i in 0..4 {
        let id = app.alice().request("sandbox", "1h", &format!("INC-{i} outage work")).await.id();
        app.bob().approve(id).await.ok();
        app.advance(Duration::minutes(2));
        app.app.deliver_step(elevate_bot::feed::Mode::Paced).await;
    }
    let took = deliver_paced(&app, 2000).await;
    assert!(app.clock.now() >= start + Duration::minutes(10));

    let lines = feed_lines(&app);
    assert_eq!(lines, expected_feed(&app).await, "every event once, in order");
    let m = metrics(&app);
    assert!(m.contains(r#"elevate_feed_lag_events{feed="slack-feed"} 0"#), "{m}");
    assert!(m.contains(r#"elevate_chat_deliveries_total{destination="channel",outcome="transient",platform="slack"}"#));
    // Backoff is capped: delivery resumed soon after Slack came back, without hammering it.
    assert!(took < Duration::minutes(3), "caught up {took} after the last event");
    let feed_calls = slack.calls("chat.postMessage").iter().filter(|c| c.args["channel"] == AUDIT_CHANNEL).count();
    assert!(feed_calls < 60, "{feed_calls} feed posts for a ten-minute outage");
    for id in 1..=4 {
        assert!(app.card(id).all_text().contains("Approved by"), "card #{id} caught up too");
    }
});

on_both_dbs!(a_burst_of_500_events_reaches_the_feed_in_batches_within_the_rate_limit, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    // Tighter than Slack's usual one per second, so that the feed meets 429s and must honour them.
    slack.limit_posts(AUDIT_CHANNEL, Limit { burst: 2.0, per_second: 0.5 });
    for i in 0..500 {
        let details = json!({ "seq": i, "hash": format!("{i:064x}") });
        let ev = NewEvent::new(app.clock.now(), Actor::System, EventKind::AuditCheckpoint, None, details);
        app.store().append_event(ev).await.unwrap();
    }
    let took = deliver_paced(&app, 2000).await;

    let messages = slack.messages(AUDIT_CHANNEL);
    assert_eq!(feed_lines(&app), expected_feed(&app).await, "all 500, once each, in order");
    assert!(messages.len() <= 20, "batched: {} messages", messages.len());
    assert!(messages.iter().all(|m| m.text.chars().count() <= 4000 && m.text.lines().count() <= 50));
    assert!(slack.rate_limited("chat.postMessage") > 0, "the fake did push back");
    assert_eq!(slack.early_retries(), 0, "every 429's Retry-After was honoured");
    assert!(took <= Duration::seconds(60), "took {took}");
});

on_both_dbs!(a_crash_during_an_outage_loses_no_card_and_no_feed_line, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    slack.go_down(app.clock.now() + Duration::minutes(5), Outage::Timeout);
    let id = app.alice().request("db", "1h", "INC-1 before the crash").await.id();
    step_now(&app).await;
    assert!(slack.messages(DB_CHANNEL).is_empty() && slack.messages(AUDIT_CHANNEL).is_empty());

    // The process dies with the card and the feed line only in its memory.
    let app = app.crash_and_restart(false).await;
    app.advance(Duration::minutes(6));
    deliver_paced(&app, 200).await;
    assert_eq!(app.card(id).buttons().len(), 2, "the card came after the restart");
    assert_eq!(feed_lines(&app), expected_feed(&app).await, "the feed line too, once");
});

on_both_dbs!(many_cards_for_one_channel_keep_within_its_rate_without_a_herd_of_retries, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            app.person(if i % 2 == 0 { "alice" } else { "erin" })
                .request("db", "1h", &format!("INC-{i} rush"))
                .await
                .id(),
        );
    }
    let took = deliver_paced(&app, 5000).await;

    for id in ids {
        assert_eq!(app.card(id).buttons().len(), 2, "card #{id}");
    }
    assert_eq!(slack.early_retries(), 0, "no card came back before its Retry-After");
    assert_eq!(slack.rate_limited("chat.postMessage"), 0, "paced below Slack's limit: no 429 at all");
    assert!(took <= Duration::seconds(60), "about one card per second after the burst: {took}");
});
