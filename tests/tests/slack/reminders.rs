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

/// A rule that adds an approval is part of the threshold everywhere it is shown or decided: the
/// answer to the command, the card, the reminder in the thread and by DM, the audit feed line,
/// the API, and the approval itself (one does not grant).
#[tokio::test]
async fn a_rule_that_adds_an_approval_needs_two_everywhere() {
    let mut text = policy::config("{WEBHOOK_URL}").replacen(
        "reminder_interval = \"20m\"\n",
        "reminder_interval = \"20m\"\nremind_by_dm = true\n",
        1,
    );
    text.push_str(
        r#"
[rules.release-week]
kind = "freeze"
from = "2026-03-01T00:00:00Z"
until = "2026-03-08T00:00:00Z"
effect = "extra_approval"
roles = ["db"]
"#,
    );
    let app = TestApp::builder().config(&text).slack().spawn().await;
    let answer = app.slack_command("alice", "db 1h INC-1 fix lag").await.text();
    assert!(answer.contains("it needs 2 approvals"), "{answer}");
    let id = TestApp::id_in(&answer);
    app.deliver().await;
    assert!(app.card(id).all_text().contains("Waiting for 2 approvals"), "{}", app.card(id).all_text());
    let shown = app.alice().show(id).await.ok();
    assert_eq!((shown["approvals_required"].as_i64(), shown["approvals_missing"].as_i64()), (Some(2), Some(2)));

    app.advance(Duration::minutes(20));
    app.tick().await;
    assert_eq!(app.thread(id), ["Still waiting: 0 of 2 approvals, 40m left before it times out."]);
    let dm = dms(&app, "bob");
    assert!(dm.iter().any(|d| d.contains("(0 of 2 approvals, 40m left")), "{dm:?}");
    let reminder = app.events().await.into_iter().find(|e| e.kind == "request.reminder").unwrap();
    assert_eq!(reminder.details["required"], 2, "the reminder's event says 2 as well");

    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    assert_eq!(app.state(id).await, "pending", "one approval of two does not grant");
    let card = app.card(id);
    assert!(card.all_text().contains("1 of 2 approvals"), "{}", card.all_text());
    assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"]);
    assert_eq!(app.alice().show(id).await.ok()["approvals_missing"], 1);
    app.slack_click("carol", "elevate_approve", id).await;
    assert_eq!(app.state(id).await, "approved");
}
