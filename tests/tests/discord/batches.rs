//! A request of several roles seen through Discord: the role option takes commas (and
//! suggests the next role after one), one approval message with a line per role, one click
//! approving what the clicker may approve, and each role's own end on the message.

use elevate_tests::{
    TestApp,
    discord::{Member, user},
    on_both_dbs, policy,
};
use serde_json::json;

async fn app_on(db: elevate_tests::TestDb) -> TestApp {
    let config = policy::config("{WEBHOOK_URL}") + policy::BATCHES;
    TestApp::builder().db(db).config(&config).discord().spawn().await
}

on_both_dbs!(one_message_shows_every_role_and_each_ends_on_its_own, |db| async move {
    let app = app_on(db).await;
    let suggested = app.discord_autocomplete(Member::of("alice"), "db,pr").await;
    assert_eq!(suggested, ["db,prod"], "the roles typed so far are kept");
    let bundles = app.discord_autocomplete(Member::of("alice"), "inc").await;
    assert_eq!(bundles, ["incident"]);

    let opts = [("role", json!("incident")), ("duration", json!("1h")), ("reason", json!("INC-7 outage"))];
    let text = app.discord_command("alice", "request", &opts).await.text();
    assert!(text.contains("for `db`, `prod`, `audit` (1h) sent to their approvers"), "{text}");
    let lead = TestApp::id_in(&text);
    let (db, prod, audit) = (lead, lead + 1, lead + 2);

    app.deliver().await;
    let card = app.discord_card(lead);
    assert_eq!(card.buttons(), [format!("approve:{lead}"), format!("deny:{lead}")]);
    for want in [
        format!("`db` (#{db}): Waiting for 1 approval — needs 1 more from `approvers`"),
        format!("`audit` (#{audit}): Waiting for 1 approval — needs 1 more from `security`"),
    ] {
        assert!(card.content.contains(&want), "card lacks {want}: {}", card.content);
    }

    let told = app.discord_click("bob", &format!("approve:{lead}")).await.text();
    assert_eq!(told, format!("You approved `db`, `prod` of #{lead}; still waiting for approvals of `prod`, `audit`."));
    app.deliver().await;
    let content = app.discord_card(lead).content;
    let bob = user("bob");
    assert!(content.contains(&format!("`prod` (#{prod}): 1 of 2 approvals: <@{bob}> — needs 1 more")), "{content}");
    assert!(
        content.contains(&format!("`db` (#{db}): Approved by <@{bob}> — waiting for the other roles")),
        "{content}"
    );

    let refused = app.discord_click("erin", &format!("approve:{lead}")).await.text();
    assert!(refused.contains("not an approver"), "{refused}");
    app.discord_click("carol", &format!("approve:{lead}")).await;
    let last = app.discord_click("dave", &format!("approve:{lead}")).await.text();
    assert_eq!(last, format!("You approved `audit` of #{lead}: every role is approved; it is being granted."));
    app.tick().await;
    app.tick().await;
    let card = app.discord_card(lead);
    assert!(card.buttons().is_empty(), "{:?}", card.buttons());
    assert_eq!(card.content.matches("active until 2026-03-02 10:00 UTC").count(), 3, "{}", card.content);

    // alice gives prod back early; db and audit stay.
    let released = app.discord_command("alice", "release", &[("id", json!(prod))]).await.text();
    assert!(released.contains(&format!("Releasing #{prod}")), "{released}");
    app.tick().await;
    app.tick().await;
    let content = app.discord_card(lead).content;
    assert!(
        content.contains(&format!("`prod` (#{prod}): Approved by")) && content.contains("released by"),
        "{content}"
    );
    assert_eq!(content.matches("active until").count(), 2, "{content}");
    assert_eq!(app.state(db).await, "active");
});
