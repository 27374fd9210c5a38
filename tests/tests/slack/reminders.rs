//! Reminders and escalations where approvers look: a reply in the card's thread saying how
//! many approvals are still missing and how long is left, and, when the role sets
//! `remind_by_dm`, a DM to each approver who has not decided (on escalation: to the escalation
//! group). Time is the test's: the reminder is due 20 minutes after the request.

use chrono::Duration;
use elevate_tests::{
    TestApp, policy,
    slack::{DB_CHANNEL, PROD_CHANNEL, user},
};

async fn app(remind_by_dm: bool) -> TestApp {
    let mut text = policy::config("{WEBHOOK_URL}");
    if remind_by_dm {
        text = text.replacen("reminder_interval = \"20m\"\n", "reminder_interval = \"20m\"\nremind_by_dm = true\n", 1);
        text =
            text.replacen("escalate_to = [\"security\"]\n", "escalate_to = [\"security\"]\nremind_by_dm = true\n", 1);
    }
    text = text.replacen("[roles.esc]\n", &format!("[roles.esc]\nslack_channel = \"{DB_CHANNEL}\"\n"), 1);
    text = text.replacen(
        "[groups.security]\nmembers = [\"dave\"]\n",
        &format!("[groups.security]\nmembers = [\"dave\"]\nslack_channel = \"{PROD_CHANNEL}\"\n"),
        1,
    );
    TestApp::builder().config(&text).slack().spawn().await
}

fn dms(app: &TestApp, person: &str) -> Vec<String> {
    app.fake_slack().dms(&user(person))
}

#[tokio::test]
async fn a_reminder_is_a_reply_under_the_card_and_a_dm_to_each_approver_yet_to_decide() {
    let app = app(true).await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    assert!(app.thread(id).is_empty(), "nothing under a new card");

    app.advance(Duration::minutes(20));
    app.tick().await;
    assert_eq!(app.thread(id), ["Still waiting: 0 of 1 approval, 40m left before it times out."]);
    for approver in ["bob", "carol"] {
        let got = dms(&app, approver);
        assert_eq!(got.len(), 1, "{approver}: {got:?}");
        assert!(
            got[0]
                .contains("Request #1 by alice for `db` is still waiting for your approval (0 of 1 approval, 40m left")
                && got[0].contains("/elevate approve 1"),
            "{approver}: {got:?}"
        );
    }
    assert!(dms(&app, "dave").is_empty(), "not an approver of db");
    assert!(!dms(&app, "alice").iter().any(|d| d.contains("waiting for your approval")), "not the requester");
}

#[tokio::test]
async fn without_remind_by_dm_the_reminder_stays_in_the_thread() {
    let app = app(false).await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix lag").await.text());
    app.deliver().await;
    app.advance(Duration::minutes(20));
    app.tick().await;
    assert_eq!(app.thread(id).len(), 1);
    assert!(dms(&app, "bob").is_empty() && dms(&app, "carol").is_empty());
}

#[tokio::test]
async fn an_escalation_is_said_in_the_thread_and_reaches_the_escalation_group() {
    let app = app(true).await;
    let id = TestApp::id_in(&app.slack_command("alice", "esc 1h INC-1 fix").await.text());
    app.deliver().await;
    app.advance(Duration::minutes(30));
    app.tick().await;
    let thread = app.thread(id);
    assert!(
        thread.iter().any(|t| t
            == "Escalated: members of security may approve it now (0 of 1 approval, 30m left before it times out)."),
        "{thread:?}"
    );
    let dave = dms(&app, "dave");
    assert!(dave.iter().any(|d| d.contains("was escalated to you")), "{dave:?}");
    assert!(thread.iter().any(|t| t.contains(&format!("the card was posted to <#{PROD_CHANNEL}> too"))), "{thread:?}");
    let copy = || {
        app.fake_slack()
            .messages(PROD_CHANNEL)
            .into_iter()
            .find(|m| m.text.starts_with(&format!("Request #{id}:")))
            .expect("a copy of the card in the security group's channel")
    };
    assert_eq!(copy().buttons(), ["elevate_approve", "elevate_deny"]);

    // Dave approves from the copy: the same authority checks as the card; both copies follow.
    app.slack_click("dave", "elevate_approve", id).await;
    app.deliver().await;
    assert_eq!(app.state(id).await, "approved");
    assert!(copy().buttons().is_empty() && copy().all_text().contains("Approved by"), "{}", copy().all_text());
    assert!(app.card(id).buttons().is_empty());
}
