//! From `/elevate` to expiry, seen through Slack: the command, the modal, the card counting
//! approvals, every final state, the DMs and the Extend button.

use super::slack_app;
use chrono::Duration;
use elevate_tests::{
    TestApp, on_both_dbs,
    slack::{AUDIT_CHANNEL, DB_CHANNEL},
};

on_both_dbs!(a_request_runs_to_expiry_seen_only_through_slack, |db| async move {
    let app = TestApp::builder().db(db).slack().spawn().await;
    let slack = app.fake_slack().clone();

    let answer = app.slack_command("alice", "db 1h INC-4211 fix replication lag").await;
    let text = answer.text();
    assert_eq!(answer.body["response_type"], "ephemeral");
    assert!(text.contains(&format!("sent to <#{DB_CHANNEL}>")), "{text}");
    let id = TestApp::id_in(&text);
    assert_eq!(slack.calls("users.info").len(), 1, "alice is found by her Slack email");

    app.deliver().await;
    let card = app.card(id);
    assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"]);
    let shown = card.all_text();
    for want in ["<@UALICE>", "`db`", "1h", "INC-4211 fix replication lag", "Waiting for 1 approval"] {
        assert!(shown.contains(want), "card lacks {want}: {shown}");
    }

    assert_eq!(app.slack_click("bob", "elevate_approve", id).await.status, 200);
    app.deliver().await;
    assert!(app.card(id).buttons().is_empty(), "a decided card has no buttons");
    assert!(app.card(id).all_text().contains("Approved by <@UBOB>"));
    assert!(slack.dms("UALICE").last().unwrap().contains("Approved by <@UBOB>"));

    app.tick().await;
    assert!(app.card(id).all_text().contains("active until 2026-03-02 10:00 UTC"));
    assert!(slack.dms("UALICE").last().unwrap().contains("Granted: you have `db` until 2026-03-02 10:00 UTC"));

    app.advance(Duration::minutes(50));
    app.tick().await;
    let warning = slack.messages("DUALICE").pop().unwrap();
    assert!(warning.all_text().contains("expires in 10 min"), "{}", warning.all_text());
    assert_eq!(warning.buttons(), ["elevate_extend"]);

    app.advance(Duration::minutes(10));
    app.tick().await;
    app.tick().await;
    assert!(slack.dms("UALICE").last().unwrap().contains("Expired: your `db` access"));
    assert!(app.card(id).all_text().contains("expired at 2026-03-02 10:00 UTC"));
    let feed: Vec<String> = slack.messages(AUDIT_CHANNEL).into_iter().map(|m| m.text).collect();
    assert!(feed.iter().any(|l| l.starts_with(&format!("#{id} alice requested db for 1h"))), "{feed:#?}");
    assert!(feed.iter().any(|l| l.contains("access expired and was removed")), "{feed:#?}");
    // Lines that arrive together are posted as one message; every event is one line.
    let lines = feed.iter().map(|m| m.lines().count()).sum::<usize>();
    assert_eq!(app.events().await.len(), lines, "one feed line per audit event");
});

#[tokio::test]
async fn the_modal_path_lists_only_requestable_roles_and_reports_field_errors() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();

    let answer = app.slack_command("alice", "").await;
    assert_eq!((answer.status, answer.body.clone()), (200, serde_json::Value::Null));
    let opened = slack.calls("views.open").pop().expect("views.open");
    assert!(opened.args["trigger_id"].as_str().unwrap().starts_with("13345224609.738474920."), "the command's trigger");
    let options: Vec<String> = opened.args["view"]["blocks"][0]["element"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(options, ["busy", "db", "db-ro", "esc", "logs", "oncall-db", "prod", "sandbox"]);

    let mallory = app.slack_command("mallory", "").await.text();
    assert!(mallory.contains("no role you may request"), "{mallory}");

    let errors = app
        .slack_submit("alice", "elevate_request", "", &[("role", "db"), ("duration", "9h"), ("reason", "INC-7 hotfix")])
        .await;
    assert_eq!(errors.body["response_action"], "errors");
    assert!(errors.body["errors"]["duration"].as_str().unwrap().contains("at most 4h"), "{:?}", errors.body);

    let ok = app
        .slack_submit(
            "alice",
            "elevate_request",
            "",
            &[("role", "db"), ("duration", "2h"), ("reason", "fix lag"), ("ticket", "INC-7")],
        )
        .await;
    assert_eq!(ok.body, serde_json::Value::Null, "the modal closes");
    let req = app.request(1).await;
    assert_eq!((req.duration.to_string().as_str(), req.ticket.as_deref()), ("2h", Some("INC-7")));
    assert!(slack.dms("UALICE")[0].contains("Request #1 for `db` (2h) sent to"));
}

#[tokio::test]
async fn two_approver_roles_are_counted_in_place() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "prod 30m INC-9 deploy").await.text());
    app.deliver().await;
    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    let card = app.card(id);
    assert!(card.all_text().contains("1 of 2 approvals: <@UBOB>"), "{}", card.all_text());
    assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"], "still open for the second");

    app.slack_click("bob", "elevate_approve", id).await;
    let told = app.fake_slack().ephemerals("UBOB");
    assert_eq!(told[0], format!("You approved #{id}: 1 of 2 approvals so far."), "the clicker is told");
    assert!(told[1].contains("already approved"), "{told:?}");
    assert_eq!(app.request(id).await.approvals.len(), 1, "a double click is one approval");

    app.slack_click("carol", "elevate_approve", id).await;
    app.deliver().await;
    assert!(app.card(id).all_text().contains("Approved by <@UBOB>, <@UCAROL>"));
    assert_eq!(app.state(id).await, "approved");
}

#[tokio::test]
async fn the_card_is_updated_on_every_final_state() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        for reason in ["INC-1 deny me", "INC-2 cancel me", "INC-3 time me out", "INC-4 revoke me", "INC-5 release me"] {
            v.push(TestApp::id_in(&app.slack_command("alice", &format!("db 1h {reason}")).await.text()));
        }
        v
    };
    let [deny, cancel, timeout, revoke, release] = ids[..] else { unreachable!() };
    app.deliver().await;

    app.slack_click("bob", "elevate_deny", deny).await;
    assert_eq!(slack.calls("views.open").pop().unwrap().args["view"]["private_metadata"], deny.to_string());
    let closed =
        app.slack_submit("bob", "elevate_deny", &deny.to_string(), &[("reason", "use the read replica")]).await;
    assert_eq!(closed.body, serde_json::Value::Null);
    assert!(app.slack_command("alice", &format!("cancel {cancel}")).await.text().contains("Cancelled"));
    for id in [revoke, release] {
        app.slack_click("carol", "elevate_approve", id).await;
    }
    app.tick().await;
    app.dave().revoke(revoke, "INC-4 is closed").await.ok();
    assert!(app.slack_command("alice", &format!("release {release}")).await.text().contains("Releasing"));
    app.tick().await;
    app.advance(Duration::hours(1));
    app.tick().await;

    let expect = [
        (deny, "Denied by <@UBOB>: use the read replica"),
        (cancel, "Cancelled by <@UALICE>"),
        (timeout, "Timed out"),
        (revoke, "revoked by <@UDAVE>: INC-4 is closed"),
        (release, "released by <@UALICE>"),
    ];
    for (id, want) in expect {
        let card = app.card(id);
        assert!(card.all_text().contains(want), "#{id}: {}", card.all_text());
        assert!(card.buttons().is_empty(), "#{id} still has buttons");
    }
    let dms = slack.dms("UALICE").join("\n");
    for want in ["Denied by <@UBOB>", "Timed out", "Revoked by <@UDAVE>: INC-4 is closed", "Released: your `db` access"]
    {
        assert!(dms.contains(want), "no DM with {want}: {dms}");
    }
}

#[tokio::test]
async fn status_release_extend_and_help() {
    let app = slack_app().await;
    assert!(app.slack_command("alice", "help").await.text().contains("You may request: `busy`"));
    assert!(app.slack_command("alice", "status").await.text().contains("no pending requests"));
    let typo = app.slack_command("alice", "dbb 1h INC-1 x").await.text();
    assert!(typo.contains("There is no role `dbb`. Did you mean `db`?"), "{typo}");

    let id = TestApp::id_in(&app.slack_command("alice", "db 2h INC-1 work").await.text());
    app.slack_click("bob", "elevate_approve", id).await;
    app.tick().await;
    app.advance(Duration::minutes(30));
    let status = app.slack_command("alice", "status").await.text();
    assert!(status.contains(&format!("#{id} `db` active, 1h30m left")), "{status}");

    let ext = app.slack_command("alice", &format!("extend {id} 1h")).await.text();
    assert!(ext.contains(&format!("of #{id} by 1h")), "{ext}");
    let too_much = app.slack_command("alice", &format!("extend {id} 5h")).await.text();
    assert!(too_much.contains("you can extend by at most"), "{too_much}");

    assert!(app.slack_command("alice", "release").await.text().contains(&format!("Releasing #{id}")));
    app.tick().await;
    assert_eq!(app.state(id).await, "released");
    assert!(app.slack_command("alice", "release").await.text().contains("no active grant"));
}

#[tokio::test]
async fn the_extend_button_in_the_expiry_warning_asks_for_more_time() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 long job").await.text());
    app.slack_click("bob", "elevate_approve", id).await;
    app.tick().await;
    app.advance(Duration::minutes(50));
    app.tick().await;

    app.slack_click("alice", "elevate_extend", id).await;
    let modal = app.fake_slack().calls("views.open").pop().expect("extend modal");
    assert_eq!(modal.args["view"]["callback_id"], "elevate_extend");
    let done =
        app.slack_submit("alice", "elevate_extend", &id.to_string(), &[("duration", "30m"), ("reason", "")]).await;
    assert_eq!(done.body, serde_json::Value::Null, "{:?}", done.body);
    app.deliver().await;
    let ext = id + 1;
    assert!(app.card(ext).all_text().contains(&format!("asks to extend #{id}")));

    app.slack_click("bob", "elevate_approve", ext).await;
    app.tick().await;
    app.tick().await;
    let dms = app.fake_slack().dms("UALICE").join("\n");
    assert!(dms.contains("now runs until 2026-03-02 10:30 UTC"), "{dms}");
}
