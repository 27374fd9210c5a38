//! Who may do what, and what cannot get through: signatures, role-backed approvers,
//! self-approval, non-approvers, double clicks, mentions, unknown users, other servers, command
//! registration, and Discord's own rate limits and errors.

use super::discord_app;
use elevate_tests::{
    discord::{DB_CHANNEL, GUILD, Member, ONCALL_ROLE, OTHER_GUILD, Signing, interaction, user},
    fake_discord::DiscordFault,
};
use serde_json::json;

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let app = discord_app().await;
    let ping = json!({ "id": "1600000000000000001", "application_id": "1100000000000000001", "type": 1,
                       "token": "ping-token", "version": 1 });
    let answer = app.discord_post(ping.to_string(), Signing::Good).await;
    assert_eq!((answer.status, answer.body), (200, json!({ "type": 1 })));
}

#[tokio::test]
async fn bad_missing_stale_and_tampered_signatures_are_refused_with_no_effect() {
    let app = discord_app().await;
    let opts = json!([{ "name": "request", "type": 1, "options": [
        { "name": "role", "type": 3, "value": "db" }, { "name": "reason", "type": 3, "value": "INC-1 sneaky" }] }]);
    let request = interaction(2, Member::of("alice"), json!({ "name": "elevate", "type": 1, "options": opts }), None);
    let ping = json!({ "type": 1, "id": "1", "application_id": "1100000000000000001", "token": "t", "version": 1 });
    for signing in [Signing::WrongKey, Signing::AgedSecs(6 * 60), Signing::Missing, Signing::Tampered] {
        for body in [request.to_string(), ping.to_string()] {
            assert_eq!(app.discord_post(body, signing).await.status, 401);
        }
    }
    assert!(app.events().await.is_empty(), "nothing happened");
    let fresh_enough = app.discord_post(ping.to_string(), Signing::AgedSecs(4 * 60)).await;
    assert_eq!(fresh_enough.status, 200, "inside the five-minute window");
    let calls: Vec<String> = app.fake_discord().all_calls().into_iter().map(|c| c.kind).collect();
    assert_eq!(calls, ["register_commands"], "refused payloads reached nothing");
}

#[tokio::test]
async fn a_discord_role_backs_an_approver_group_at_click_time() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "db-ro", "1h", "read the orders table").await;
    app.deliver().await;

    let without = app.discord_click_as(Member::of("erin"), &format!("approve:{id}")).await.text();
    assert!(without.contains("not an approver for `db-ro`"), "{without}");
    let elsewhere = Member::of("erin").with_roles(&[ONCALL_ROLE]).in_guild(OTHER_GUILD);
    let refused = app.discord_click_as(elsewhere, &format!("approve:{id}")).await.text();
    assert!(refused.contains("another workspace or server"), "{refused}");
    assert_eq!(app.state(id).await, "pending");

    let with_role = Member::of("erin").with_roles(&["1400000000000000777", ONCALL_ROLE]);
    assert!(app.discord_click_as(with_role, &format!("approve:{id}")).await.text().starts_with("You approved"));
    assert_eq!(app.state(id).await, "approved");
    app.deliver().await;
    assert!(app.discord_card(id).content.contains(&format!("Approved by <@{}>", user("erin"))));
}

#[tokio::test]
async fn approvers_cannot_approve_themselves_and_others_cannot_approve_at_all() {
    let app = discord_app().await;
    let own = app.discord_request("bob", "db", "1h", "INC-1 own work").await;
    let other = app.discord_request("alice", "db", "1h", "INC-2 work").await;
    app.deliver().await;

    let mine = app.discord_click("bob", &format!("approve:{own}")).await.text();
    assert!(mine.contains("cannot approve your own request"), "{mine}");
    let erin = app.discord_click("erin", &format!("approve:{other}")).await.text();
    assert!(erin.contains("not an approver for `db`"), "{erin}");

    app.deliver().await;
    for id in [own, other] {
        assert_eq!(app.state(id).await, "pending");
        assert_eq!(app.discord_card(id).buttons().len(), 2);
    }
    assert_eq!(app.event_kinds(other).await, ["request.created", "request.approval_refused"], "audited");
}

#[tokio::test]
async fn a_double_click_is_one_approval() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "prod", "30m", "INC-9 deploy").await;
    app.deliver().await;
    assert!(app.discord_click("bob", &format!("approve:{id}")).await.text().contains("1 of 2 approvals"));
    let again = app.discord_click("bob", &format!("approve:{id}")).await.text();
    assert!(again.contains("already approved"), "{again}");
    assert_eq!(app.request(id).await.approvals.len(), 1);
    assert_eq!(app.state(id).await, "pending");
}

#[tokio::test]
async fn echoed_text_pings_nobody() {
    let app = discord_app().await;
    let bob = user("bob");
    let reason = format!("INC-1 @everyone ask <@{bob}> and <@&{ONCALL_ROLE}> see [the runbook](https://evil.example)");
    let id = app.discord_request("alice", "db", "1h", &reason).await;
    app.deliver().await;
    app.discord_submit_as(Member::of("bob"), &format!("deny:{id}"), &[("reason", "no @here")]).await;
    app.tick().await;

    let discord = app.fake_discord();
    let sent: Vec<_> = discord.all_calls().into_iter().filter(|c| c.body.get("content").is_some()).collect();
    assert!(sent.len() >= 4, "card, edit, DM and feed lines were sent: {}", sent.len());
    for call in &sent {
        let mentions = &call.body["allowed_mentions"];
        assert_eq!(mentions["parse"], json!([]), "{} {} pings: {}", call.method, call.path, call.body);
        assert!(
            mentions["users"].as_array().is_none_or(Vec::is_empty)
                && mentions["roles"].as_array().is_none_or(Vec::is_empty)
        );
        // What is left once Discord's backslash escapes are taken out must hold no live syntax.
        let content = call.body["content"].as_str().unwrap();
        let bare = content.replace("\\@", "").replace("\\<", "").replace("\\[", "");
        for raw in ["@everyone", "@here", "[the runbook]", "<@&", &format!("ask <@{bob}>")] {
            assert!(!bare.contains(raw), "{raw} reached Discord unescaped: {content}");
        }
    }
    assert!(app.discord_card(id).content.contains("\\@everyone ask \\<\\@"), "{}", app.discord_card(id).content);
}

#[tokio::test]
async fn unknown_people_and_other_servers_are_refused() {
    let app = discord_app().await;
    let opts = [("role", json!("db")), ("reason", json!("INC-1 let me in"))];
    let nobody = app.discord_command("nobody", "request", &opts).await.text();
    assert!(nobody.contains("not linked to anyone in elevate's policy"), "{nobody}");
    assert!(nobody.contains(&format!("discord_id = \"{}\"", user("nobody"))), "says how to fix it: {nobody}");

    let other = app.discord_command_as(Member::of("bob").in_guild(OTHER_GUILD), "request", &opts).await.text();
    assert!(other.contains(&format!("another workspace or server (`{OTHER_GUILD}`)")), "{other}");
    let kinds: Vec<String> = app.events().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["security.actor_refused"], "only the refusal of a stranger is recorded");
    assert!(app.discord_autocomplete(Member::of("alice").in_guild(OTHER_GUILD), "").await.is_empty());
}

#[tokio::test]
async fn the_role_option_suggests_only_what_the_member_may_request() {
    let app = discord_app().await;
    assert_eq!(app.discord_autocomplete(Member::of("alice"), "db").await, ["db", "db-ro", "oncall-db", "sandbox"]);
    assert_eq!(app.discord_autocomplete(Member::of("alice"), "pro").await, ["prod"]);
    assert_eq!(app.discord_autocomplete(Member::of("alice"), "").await.len(), 8);
    assert!(app.discord_autocomplete(Member::of("mallory"), "").await.is_empty(), "mallory may request nothing");
}

#[tokio::test]
async fn registering_commands_twice_leaves_one_command_set() {
    let app = discord_app().await;
    app.app.discord.as_ref().unwrap().register_commands().await.unwrap();
    let discord = app.fake_discord();
    let puts = discord.calls("register_commands");
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0].path, format!("/api/v10/applications/1100000000000000001/guilds/{GUILD}/commands"));
    assert_eq!(
        (puts[0].method.as_str(), &puts[0].body),
        ("PUT", &puts[1].body),
        "a bulk overwrite, the same both times"
    );

    let commands = discord.commands(GUILD);
    assert_eq!(commands.len(), 1, "one /elevate");
    let mut subs: Vec<&str> =
        commands[0]["options"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    subs.sort();
    let mut model: Vec<&str> = elevate_core::chat::USAGES.iter().map(|u| u.name).chain(["help"]).collect();
    model.sort();
    assert_eq!(subs, model, "Discord registers exactly core's command model");
    let role = &commands[0]["options"][0]["options"][0];
    assert_eq!((role["name"].clone(), role["autocomplete"].clone()), (json!("role"), json!(true)));
}

#[tokio::test]
async fn discord_rate_limits_and_errors_delay_messages_but_lose_none() {
    let app = discord_app().await;
    let discord = app.fake_discord().clone();
    discord.fail_next("create_message", DiscordFault::RateLimited(0.2));
    discord.fail_next("edit_message", DiscordFault::ServerError);
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix").await;
    app.deliver().await;
    assert_eq!(app.discord_card(id).buttons().len(), 2, "posted after the 429");
    let to_db = |c: &&elevate_tests::fake_discord::DiscordCall| c.path.contains(DB_CHANNEL);
    assert_eq!(discord.calls("create_message").iter().filter(to_db).count(), 2, "the 429 was retried once");

    app.discord_click("bob", &format!("approve:{id}")).await;
    app.deliver().await;
    assert!(app.discord_card(id).content.contains("Approved by"), "edited after the 502");
    assert_eq!(discord.calls("edit_message").len(), 2, "the failed edit was delivered again");
}

#[tokio::test]
async fn a_requester_who_refuses_dms_does_not_hold_up_the_approval_message() {
    let app = discord_app().await;
    let discord = app.fake_discord().clone();
    discord.refuse_dms(&user("alice"));
    let id = app.discord_request("alice", "db", "1h", "INC-1 quiet please").await;
    app.deliver().await;
    app.discord_click("bob", &format!("approve:{id}")).await;
    app.deliver().await;
    assert!(app.discord_card(id).content.contains("Approved by"), "{}", app.discord_card(id).content);
    assert!(app.discord_dms("alice").is_empty());
    let dm_posts = discord
        .calls("create_message")
        .into_iter()
        .filter(|c| !c.path.contains(DB_CHANNEL) && !c.path.contains(elevate_tests::discord::AUDIT_CHANNEL))
        // (the refusal is reported once to the security channel)
        .filter(|c| !c.path.contains(elevate_tests::discord::SECURITY_CHANNEL));
    assert_eq!(dm_posts.count(), 1, "Discord's refusal is taken as final, not retried");
}
