//! From `/elevate request` to expiry, seen through Discord: the ephemeral answer, the approval
//! message counting approvals and losing its buttons, every final state, the DMs, the Extend
//! button, and answers that had to be deferred.

use super::discord_app;
use chrono::Duration;
use elevate_tests::{
    TestApp,
    discord::{AUDIT_CHANNEL, DB_CHANNEL, Member, user},
    on_both_dbs,
};
use serde_json::json;

on_both_dbs!(a_request_runs_to_expiry_seen_only_through_discord, |db| async move {
    let app = TestApp::builder().db(db).discord().spawn().await;
    let discord = app.fake_discord().clone();
    let (alice, bob) = (user("alice"), user("bob"));

    let opts = [("role", json!("db")), ("duration", json!("1h")), ("reason", json!("INC-4211 fix replication lag"))];
    let text = app.discord_command("alice", "request", &opts).await.text();
    assert!(text.contains(&format!("sent to <#{DB_CHANNEL}>")), "{text}");
    let id = TestApp::id_in(&text);

    app.deliver().await;
    let card = app.discord_card(id);
    assert_eq!(card.buttons(), [format!("approve:{id}"), format!("deny:{id}")], "custom_ids carry only the id");
    for want in [format!("<@{alice}>"), "`db`".into(), "1h".into(), "INC-4211 fix replication lag".into()] {
        assert!(card.content.contains(&want), "card lacks {want}: {}", card.content);
    }
    assert!(card.content.ends_with("Waiting for 1 approval"), "{}", card.content);

    let approved = app.discord_click("bob", &format!("approve:{id}")).await.text();
    assert_eq!(approved, format!("You approved #{id}: it is approved."), "told privately; the card follows");
    app.deliver().await;
    let card = app.discord_card(id);
    assert!(card.buttons().is_empty(), "a decided card has no buttons");
    assert!(card.content.contains(&format!("Approved by <@{bob}>")), "{}", card.content);
    assert!(app.discord_dms("alice").last().unwrap().contains(&format!("Approved by <@{bob}>")));

    app.tick().await;
    assert!(app.discord_card(id).content.contains("active until 2026-03-02 10:00 UTC"));
    assert!(app.discord_dms("alice").last().unwrap().contains("Granted: you have `db` until 2026-03-02 10:00 UTC"));

    app.advance(Duration::minutes(50));
    app.tick().await;
    let warning = discord.dms(&alice).pop().unwrap();
    assert!(warning.content.contains("expires in 10 min"), "{}", warning.content);
    assert_eq!(warning.buttons(), [format!("extend:{id}")]);

    app.advance(Duration::minutes(10));
    app.tick().await;
    app.tick().await;
    assert!(app.discord_dms("alice").last().unwrap().contains("Expired: your `db` access"));
    assert!(app.discord_card(id).content.contains("expired at 2026-03-02 10:00 UTC"));
    assert_eq!(discord.calls("open_dm").len(), app.discord_dms("alice").len(), "one DM channel call per DM");

    let feed: Vec<String> = discord.messages(AUDIT_CHANNEL).into_iter().map(|m| m.content).collect();
    assert!(feed.iter().any(|l| l.starts_with(&format!("#{id} alice requested db for 1h"))), "{feed:#?}");
    assert!(feed.iter().any(|l| l.contains("access expired and was removed")), "{feed:#?}");
    // Lines that arrive together are posted as one message; every event is one line.
    let lines = feed.iter().map(|m| m.lines().count()).sum::<usize>();
    assert_eq!(app.events().await.len(), lines, "one feed line per audit event");
});

#[tokio::test]
async fn two_approver_roles_are_counted_in_place() {
    let app = discord_app().await;
    let (bob, carol) = (user("bob"), user("carol"));
    let id = app.discord_request("alice", "prod", "30m", "INC-9 deploy").await;
    app.deliver().await;
    app.discord_click("bob", &format!("approve:{id}")).await;
    app.deliver().await;
    let card = app.discord_card(id);
    assert!(card.content.contains(&format!("1 of 2 approvals: <@{bob}>")), "{}", card.content);
    assert_eq!(card.buttons().len(), 2, "still open for the second");

    app.discord_click("carol", &format!("approve:{id}")).await;
    app.deliver().await;
    assert!(app.discord_card(id).content.contains(&format!("Approved by <@{bob}>, <@{carol}>")));
    assert_eq!(app.discord_card(id).buttons().len(), 0);
    assert_eq!(app.state(id).await, "approved");
}

#[tokio::test]
async fn the_card_is_updated_on_every_final_state() {
    let app = discord_app().await;
    let mut ids = Vec::new();
    for reason in ["INC-1 deny me", "INC-2 cancel me", "INC-3 time me out", "INC-4 revoke me", "INC-5 release me"] {
        ids.push(app.discord_request("alice", "db", "1h", reason).await);
    }
    let [deny, cancel, timeout, revoke, release] = ids[..] else { unreachable!() };
    app.deliver().await;

    let modal = app.discord_click("bob", &format!("deny:{deny}")).await;
    assert_eq!(modal.kind(), 9, "Deny opens a form");
    assert_eq!(modal.body["data"]["custom_id"], format!("deny:{deny}"));
    let deny_id = format!("deny:{deny}");
    let denied = app.discord_submit_as(Member::of("bob"), &deny_id, &[("reason", "use the replica")]).await;
    assert!(denied.text().contains(&format!("Denied #{deny}")));
    let cancelled = app.discord_command("alice", "cancel", &[("id", json!(cancel))]).await.text();
    assert!(cancelled.contains("Cancelled"), "{cancelled}");
    for id in [revoke, release] {
        app.discord_click("carol", &format!("approve:{id}")).await;
    }
    app.tick().await;
    app.dave().revoke(revoke, "INC-4 is closed").await.ok();
    let released = app.discord_command("alice", "release", &[("id", json!(release))]).await.text();
    assert!(released.contains("Releasing"), "{released}");
    app.tick().await;
    app.advance(Duration::hours(1));
    app.tick().await;

    let (alice, bob, dave) = (user("alice"), user("bob"), user("dave"));
    let expect = [
        (deny, format!("Denied by <@{bob}>: use the replica")),
        (cancel, format!("Cancelled by <@{alice}>")),
        (timeout, "Timed out".to_string()),
        (revoke, format!("revoked by <@{dave}>: INC-4 is closed")),
        (release, format!("released by <@{alice}>")),
    ];
    for (id, want) in expect {
        let card = app.discord_card(id);
        assert!(card.content.contains(&want), "#{id}: {}", card.content);
        assert!(card.buttons().is_empty(), "#{id} still has buttons");
    }
    let dms = app.discord_dms("alice").join("\n");
    for want in ["Denied by", "Timed out", "Revoked by", "INC-4 is closed", "Released: your `db` access"] {
        assert!(dms.contains(want), "no DM with {want}: {dms}");
    }
}

#[tokio::test]
async fn status_release_extend_and_help() {
    let app = discord_app().await;
    assert!(app.discord_command("alice", "help", &[]).await.text().contains("You may request: `busy`"));
    assert!(app.discord_command("alice", "status", &[]).await.text().contains("no pending requests"));
    let typo = [("role", json!("dbb")), ("reason", json!("INC-1 x"))];
    let typo = app.discord_command("alice", "request", &typo).await.text();
    assert!(typo.contains("There is no role `dbb`. Did you mean `db`?"), "{typo}");

    let id = app.discord_request("alice", "db", "2h", "INC-1 work").await;
    app.discord_click("bob", &format!("approve:{id}")).await;
    app.tick().await;
    app.advance(Duration::minutes(30));
    let status = app.discord_command("alice", "status", &[]).await.text();
    assert!(status.contains(&format!("#{id} `db` active, 1h30m left")), "{status}");

    let ext = app.discord_command("alice", "extend", &[("id", json!(id)), ("duration", json!("1h"))]).await.text();
    assert!(ext.contains(&format!("of #{id} by 1h")), "{ext}");
    let too_much = [("id", json!(id)), ("duration", json!("5h"))];
    assert!(app.discord_command("alice", "extend", &too_much).await.text().contains("you can extend by at most"));

    assert!(app.discord_command("alice", "release", &[]).await.text().contains(&format!("Releasing #{id}")));
    app.tick().await;
    assert_eq!(app.state(id).await, "released");
    assert!(app.discord_command("alice", "release", &[]).await.text().contains("no active grant"));
}

#[tokio::test]
async fn the_extend_button_in_a_dm_asks_for_more_time() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 long job").await;
    app.discord_click("bob", &format!("approve:{id}")).await;
    app.tick().await;
    app.advance(Duration::minutes(50));
    app.tick().await;

    let in_dm = Member::of("alice").in_dm();
    let modal = app.discord_click_as(in_dm, &format!("extend:{id}")).await;
    assert_eq!((modal.kind(), modal.body["data"]["custom_id"].clone()), (9, json!(format!("extend:{id}"))));
    let done = app.discord_submit_as(in_dm, &format!("extend:{id}"), &[("duration", "30m"), ("reason", "")]).await;
    assert!(done.text().contains(&format!("Extension #{} of #{id}", id + 1)), "{:?}", done.body);
    app.deliver().await;
    assert!(app.discord_card(id + 1).content.contains(&format!("asks to extend #{id}")));

    app.discord_click("bob", &format!("approve:{}", id + 1)).await;
    app.tick().await;
    app.tick().await;
    let dms = app.discord_dms("alice").join("\n");
    assert!(dms.contains("now runs until 2026-03-02 10:30 UTC"), "{dms}");
}

#[tokio::test]
async fn slow_answers_are_deferred_and_finished_through_the_interaction_token() {
    let app = discord_app().await;
    app.app.discord.as_ref().unwrap().set_ack_budget(std::time::Duration::ZERO);
    let discord = app.fake_discord().clone();

    let opts = [("role", json!("db")), ("reason", json!("INC-3 slow day"))];
    let answer = app.discord_command("alice", "request", &opts).await;
    assert_eq!((answer.kind(), answer.body["data"]["flags"].clone()), (5, json!(64)), "deferred, ephemeral");
    let edit = discord.calls("edit_original").pop().expect("the deferred answer is filled in");
    assert!(edit.path.contains("/webhooks/1100000000000000001/interaction-token-"), "{}", edit.path);
    assert!(edit.body["content"].as_str().unwrap().contains("Request #1 for `db` (1h) sent to"), "{}", edit.body);

    let click = app.discord_click("alice", "approve:1").await;
    assert_eq!(click.kind(), 6, "a click is deferred without a message");
    let follow = discord.calls("followup").pop().expect("the refusal follows up");
    assert!(follow.body["content"].as_str().unwrap().contains("not an approver for `db`"), "{}", follow.body);
    assert_eq!(follow.body["flags"], 64, "only the clicker sees it");
}
