//! Input an attacker or a careless person might send through Discord's interactions endpoint:
//! hidden characters, durations that only look like durations, custom_ids elevate never made,
//! oversized bodies and ambiguous signature headers. Several variants per class; each refused
//! clearly, nothing changed.

use super::discord_app;
use ed25519_dalek::Signer;
use elevate_tests::{
    TestApp,
    discord::{Member, signing_key},
};
use serde_json::json;

async fn requests(app: &TestApp) -> usize {
    app.events().await.iter().filter(|e| e.kind == "request.created").count()
}

#[tokio::test]
async fn hidden_characters_and_false_durations_are_refused() {
    let app = discord_app().await;
    for (c, class) in [
        ("\u{202E}", "bidirectional"),
        ("\u{2067}", "bidirectional"),
        ("\u{200B}", "invisible"),
        ("\u{FEFF}", "invisible"),
    ] {
        let opts = [("role", json!("db")), ("reason", json!(format!("INC-1 fix{c}"))), ("duration", json!("1h"))];
        let answer = app.discord_command("alice", "request", &opts).await.text();
        assert!(answer.contains(class), "{c:?}: {answer}");
        let opts = [("role", json!("db")), ("reason", json!("fix")), ("ticket", json!(format!("INC-1{c}")))];
        let answer = app.discord_command("alice", "request", &opts).await.text();
        assert!(answer.contains(class) && answer.contains("ticket"), "{c:?}: {answer}");
    }
    for bad in ["-5m", "1.5h", "5mins", "2"] {
        let opts = [("role", json!("db")), ("reason", json!("INC-1 fix")), ("duration", json!(bad))];
        let answer = app.discord_command("alice", "request", &opts).await.text();
        assert!(answer.contains("not a duration"), "{bad}: {answer}");
    }
    assert_eq!(requests(&app).await, 0);
}

#[tokio::test]
async fn custom_ids_elevate_never_made_are_refused_before_any_lookup() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix").await;
    for custom_id in
        ["approve:abc", "approve:-1", "approve:", "approve", &format!("approve:{id}:1"), "nuke:1", "release:1e3"]
    {
        let data = json!({ "custom_id": custom_id, "component_type": 2 });
        let answer =
            app.discord_send(elevate_tests::discord::interaction(3, Member::of("bob"), data, None)).await.text();
        assert!(
            answer.contains("is not a request number") || answer.contains("not one elevate can read"),
            "{custom_id}: {answer}"
        );
    }
    for custom_id in ["deny:x", "revoke-confirm:0"] {
        let answer = app.discord_submit_as(Member::of("bob"), custom_id, &[("reason", "because")]).await.text();
        assert!(answer.contains("is not a request number"), "{custom_id}: {answer}");
    }
    assert_eq!(app.state(id).await, "pending");
    assert!(app.request(id).await.approvals.is_empty());
}

fn signed(body: &str, ts: &str) -> String {
    hex::encode(signing_key().sign(format!("{ts}{body}").as_bytes()).to_bytes())
}

#[tokio::test]
async fn oversized_bodies_and_ambiguous_signature_headers_are_refused() {
    let app = discord_app().await;
    let url = format!("{}/discord/interactions", app.base);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let big = json!({ "type": 1, "pad": "x".repeat(70 * 1024) }).to_string();
    let resp = reqwest::Client::new()
        .post(&url)
        .header("x-signature-ed25519", signed(&big, &now))
        .header("x-signature-timestamp", &now)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["error"]["code"], "payload_too_large");

    let ping = json!({ "type": 1 }).to_string();
    let variants: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("x-signature-timestamp", now.clone()),
            ("x-signature-ed25519", signed(&ping, &now)),
            ("x-signature-ed25519", signed(&ping, &now)),
        ],
        vec![
            ("x-signature-timestamp", now.clone()),
            ("x-signature-timestamp", now.clone()),
            ("x-signature-ed25519", signed(&ping, &now)),
        ],
        vec![("x-signature-timestamp", format!(" {now}")), ("x-signature-ed25519", signed(&ping, &format!(" {now}")))],
        vec![
            ("x-signature-timestamp", format!("{now}.5")),
            ("x-signature-ed25519", signed(&ping, &format!("{now}.5"))),
        ],
    ];
    for (i, headers) in variants.into_iter().enumerate() {
        let mut req = reqwest::Client::new().post(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        assert_eq!(req.body(ping.clone()).send().await.unwrap().status().as_u16(), 401, "variant {i}");
    }
    let ok = reqwest::Client::new()
        .post(&url)
        .header("x-signature-timestamp", &now)
        .header("x-signature-ed25519", signed(&ping, &now))
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200, "signed once, a PING is answered");
}

#[tokio::test]
async fn bots_and_members_of_other_servers_are_refused_and_audited() {
    let app = discord_app().await;
    let id = app.discord_request("alice", "db", "1h", "INC-1 fix").await;
    // A bot with bob's user id (a webhook or an app can present any id it was given).
    let mut click = elevate_tests::discord::interaction(
        3,
        Member::of("bob"),
        json!({ "custom_id": format!("approve:{id}"), "component_type": 2 }),
        None,
    );
    click["member"]["user"]["bot"] = json!(true);
    let answer = app.discord_send(click).await.text();
    assert!(answer.contains("acts only for active human members"), "{answer}");
    let other = app
        .discord_click_as(Member::of("bob").in_guild(elevate_tests::discord::OTHER_GUILD), &format!("approve:{id}"))
        .await
        .text();
    assert!(other.contains("another workspace or server"), "{other}");

    assert!(app.request(id).await.approvals.is_empty());
    let why: Vec<String> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "security.actor_refused")
        .map(|e| e.details["why"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(why, ["bot", "other_tenant"]);
}
