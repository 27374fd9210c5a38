//! Scheduled access seen through Slack: the start typed at the end of the command or given in
//! the form, the card and the requester's DM saying when it starts, `status` showing it as
//! scheduled, and the grant appearing at the start.

use super::slack_app;
use chrono::Duration;

#[tokio::test]
async fn a_start_typed_after_the_reason_is_approved_ahead_and_applied_at_the_start() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();
    let answer = app.slack_command("alice", "db 1h INC-9 planned failover at 2026-03-02 13:00 Europe/Berlin").await;
    let text = answer.text();
    assert!(text.contains("Request #1 for `db` (1h from 2026-03-02 12:00 UTC) sent to"), "{text}");
    let req = app.request(1).await;
    assert_eq!(req.reason.as_str(), "INC-9 planned failover", "the start is not part of the reason");

    app.deliver().await;
    assert!(app.card(1).all_text().contains("asks for `db` for 1h from 2026-03-02 12:00 UTC"));
    app.slack_click("bob", "elevate_approve", 1).await;
    app.deliver().await;
    let shown = app.card(1).all_text();
    assert!(shown.contains("Approved by <@UBOB> — starts at 2026-03-02 12:00 UTC"), "{shown}");
    assert!(app.card(1).buttons().is_empty());
    let dm = slack.dms("UALICE").pop().unwrap();
    assert!(dm.contains("Approved by <@UBOB>: your request #1 for `db` starts at 2026-03-02 12:00 UTC."), "{dm}");
    let status = app.slack_command("alice", "status").await.text();
    assert!(status.contains("#1 `db` for 1h: scheduled, starts 2026-03-02 12:00 UTC"), "{status}");

    app.advance(Duration::hours(3));
    app.tick().await;
    app.tick().await;
    assert!(app.card(1).all_text().contains("active until 2026-03-02 13:00 UTC"), "{}", app.card(1).all_text());

    let bad = app.slack_command("alice", "db 1h INC-9 x at 2026-03-02 25:00").await.text();
    assert!(bad.contains("is not a time of day"), "{bad}");
    assert!(app.store().get_request(elevate_core::RequestId(2)).await.unwrap().is_none(), "nothing was written");

    let ok = app
        .slack_submit("alice", "elevate_request", "", &[("role", "db"), ("reason", "INC-9 later"), ("start", "in 2h")])
        .await;
    assert_eq!(ok.body, serde_json::Value::Null, "the modal closes");
    let req = app.request(2).await;
    assert_eq!(req.starts_at, Some(req.created_at + Duration::hours(2)));
    app.slack_click("bob", "elevate_approve", 2).await;
    assert!(app.slack_command("alice", "cancel 2").await.text().contains("Cancelled #2"));
    assert_eq!(app.state(2).await, "cancelled");
}
