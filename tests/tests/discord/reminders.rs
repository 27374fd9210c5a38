//! Discord's side of the card's story: later events are replies to the approval message, and
//! reminders reach the approvers yet to decide by DM when the role sets `remind_by_dm`.

use chrono::Duration;
use elevate_tests::{TestApp, policy};

#[tokio::test]
async fn events_are_replies_to_the_approval_message_and_reminders_reach_approvers() {
    let text = policy::config("{WEBHOOK_URL}").replacen(
        "reminder_interval = \"20m\"\n",
        "reminder_interval = \"20m\"\nremind_by_dm = true\n",
        1,
    );
    let app = TestApp::builder().config(&text).discord().spawn().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix lag").await;
    app.deliver().await;
    app.advance(Duration::minutes(20));
    app.tick().await;
    assert_eq!(app.discord_replies(id), ["Still waiting: 0 of 1 approval, 40m left before it times out."]);
    for approver in ["bob", "carol"] {
        let dms = app.discord_dms(approver);
        assert!(dms.iter().any(|d| d.contains("is still waiting for your approval")), "{approver}: {dms:?}");
    }

    app.discord_click("bob", &format!("approve:{id}")).await;
    app.tick().await;
    let replies = app.discord_replies(id);
    assert!(replies.iter().any(|r| r.contains("approved by bob")), "{replies:?}");
    assert!(replies.iter().any(|r| r.contains("granted: alice has db until")), "{replies:?}");
}
