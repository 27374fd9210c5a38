//! Input an attacker or a careless person might send through Slack's real endpoints: text that
//! displays differently from what it is, durations that only look like durations, buttons that
//! carry what elevate never put there, oversized bodies, ambiguous signature headers, and
//! accounts that are not active human members of the workspace. Each
//! class is tried over several variants, and each must be refused with a clear message while
//! nothing changes.

use super::slack_app;
use elevate_tests::{
    TestApp,
    slack::{DB_CHANNEL, SIGNING_SECRET, Signing, TEAM, command_body, now_ts, sign, user},
};

/// Characters that change how text is displayed without being seen, and the class elevate names.
const HIDDEN: &[(&str, &str)] = &[
    ("\u{202E}", "bidirectional"),
    ("\u{202A}", "bidirectional"),
    ("\u{2066}", "bidirectional"),
    ("\u{2069}", "bidirectional"),
    ("\u{200B}", "invisible"),
    ("\u{200D}", "invisible"),
    ("\u{2060}", "invisible"),
    ("\u{FEFF}", "invisible"),
    ("\u{00AD}", "invisible"),
    ("\u{E0041}", "invisible"),
];

async fn requests(app: &TestApp) -> usize {
    app.events().await.iter().filter(|e| e.kind == "request.created").count()
}

#[tokio::test]
async fn hidden_characters_are_refused_in_every_free_text() {
    let app = slack_app().await;
    for (c, class) in HIDDEN {
        let answer = app.slack_command("alice", &format!("db 1h INC-1 fix{c} lag")).await.text();
        assert!(answer.contains(class) && answer.contains("the reason contains"), "{c:?}: {answer}");

        let errors = app
            .slack_submit(
                "alice",
                "elevate_request",
                "",
                &[("role", "db"), ("reason", "fix"), ("ticket", &format!("INC-1{c}"))],
            )
            .await;
        let shown = errors.body["errors"]["ticket"].as_str().unwrap_or_default();
        assert!(shown.contains(class), "{c:?}: the ticket field shows {:?}", errors.body);
    }
    assert_eq!(requests(&app).await, 0, "nothing was created");

    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    app.deliver().await;
    for (c, class) in HIDDEN {
        let errors = app.slack_submit("bob", "elevate_deny", &id.to_string(), &[("reason", &format!("no{c}pe"))]).await;
        let shown = errors.body["errors"]["reason"].as_str().unwrap_or_default();
        assert!(shown.contains(class), "{c:?}: {:?}", errors.body);
    }
    assert_eq!(app.state(id).await, "pending", "no denial with a hidden reason");
}

#[tokio::test]
async fn a_word_that_looks_like_a_duration_must_be_one() {
    let app = slack_app().await;
    for bad in ["-5m", "1.5h", "5mins", "2", "0m", "+1h", "90x"] {
        let answer = app.slack_command("alice", &format!("db {bad} INC-1 fix lag")).await.text();
        assert!(answer.contains(&format!("`{bad}`")) || answer.contains("zero"), "{bad}: {answer}");
        assert!(answer.contains("duration"), "{bad}: {answer}");
    }
    assert_eq!(requests(&app).await, 0, "no request with the role's default instead");
    let ok = app.slack_command("alice", "db INC-1 fix lag").await.text();
    assert!(ok.contains("for `db` (1h)"), "no duration at all still means the default: {ok}");
}

#[tokio::test]
async fn buttons_carrying_what_elevate_never_put_there_are_refused_before_any_lookup() {
    let app = slack_app().await;
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    for (action, value) in [
        ("elevate_approve", "abc"),
        ("elevate_approve", "-1"),
        ("elevate_approve", "0"),
        ("elevate_approve", &format!("{id} OR 1=1")),
        ("elevate_release", ""),
        ("elevate_confirm_revoke", "{\"id\": \"1\"}"),
        ("elevate_confirm_lockdown", "not json"),
        ("elevate_self_destruct", "1"),
    ] {
        app.slack_button("bob", action, value).await;
    }
    let told = app.fake_slack().ephemerals("UBOB");
    assert_eq!(told.len(), 8, "{told:#?}");
    assert!(
        told[..5].iter().all(|t| t.contains("is not a request number") || t.contains("not one elevate can read")),
        "{told:#?}"
    );
    assert!(told[5..].iter().all(|t| t.contains("not one elevate can read")), "{told:#?}");
    assert_eq!(app.state(id).await, "pending");
    assert!(app.request(id).await.approvals.is_empty());
}

#[tokio::test]
async fn bodies_over_64_kb_are_refused_before_the_signature_is_checked() {
    let app = slack_app().await;
    let big = command_body(TEAM, &user("alice"), "alice", &format!("db 1h INC-1 {}", "x".repeat(70 * 1024)));
    for signing in ["good", "none"] {
        let ts = now_ts().to_string();
        let mut req = reqwest::Client::new()
            .post(format!("{}/slack/commands", app.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if signing == "good" {
            req = req
                .header("x-slack-request-timestamp", &ts)
                .header("x-slack-signature", sign(SIGNING_SECRET, &ts, &big));
        }
        let resp = req.body(big.clone()).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 413, "{signing}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "payload_too_large", "{signing}: {body}");
    }
    assert_eq!(requests(&app).await, 0);
}

#[tokio::test]
async fn signature_headers_must_appear_once_with_a_plain_timestamp() {
    let app = slack_app().await;
    let body = command_body(TEAM, &user("alice"), "alice", "db 1h INC-1 fix");
    let ts = now_ts().to_string();
    let good = sign(SIGNING_SECRET, &ts, &body);
    let post = |headers: Vec<(&'static str, String)>| {
        let mut req = reqwest::Client::new()
            .post(format!("{}/slack/commands", app.base))
            .header("content-type", "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.body(body.clone()).send()
    };
    let variants: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-signature", good.clone()),
            ("x-slack-signature", good.clone()),
        ],
        vec![
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-request-timestamp", ts.clone()),
            ("x-slack-signature", good.clone()),
        ],
        vec![
            ("x-slack-request-timestamp", format!("{ts}.0")),
            ("x-slack-signature", sign(SIGNING_SECRET, &format!("{ts}.0"), &body)),
        ],
        vec![
            ("x-slack-request-timestamp", format!("+{ts}")),
            ("x-slack-signature", sign(SIGNING_SECRET, &format!("+{ts}"), &body)),
        ],
        vec![("x-slack-request-timestamp", String::new()), ("x-slack-signature", good.clone())],
        vec![("x-slack-signature", good.clone())],
    ];
    for (i, headers) in variants.into_iter().enumerate() {
        assert_eq!(post(headers).await.unwrap().status().as_u16(), 401, "variant {i}");
    }
    assert_eq!(requests(&app).await, 0);
    let fine = post(vec![("x-slack-request-timestamp", ts), ("x-slack-signature", good)]).await.unwrap();
    assert_eq!(fine.status().as_u16(), 200, "the same body signed once is accepted");
}

/// `(Slack user, users.info flags, the class elevate names)`: accounts that carry alice's email
/// (or bob's id) but are not active human members of the workspace.
fn strangers() -> Vec<(&'static str, serde_json::Value, &'static str)> {
    use serde_json::json;
    vec![
        ("UBOT", json!({ "is_bot": true }), "bot"),
        ("UAPP", json!({ "is_app_user": true }), "bot"),
        ("UDEAD", json!({ "deleted": true }), "deactivated"),
        ("UGUEST", json!({ "is_restricted": true }), "guest"),
        ("UULTRA", json!({ "is_ultra_restricted": true }), "guest"),
        ("USHARED", json!({ "team_id": "T0OTHER" }), "other_tenant"),
        (
            "UGRID",
            json!({ "team_id": "T0GRID", "enterprise_user": { "id": "UGRID", "enterprise_id": "E1", "teams": ["T0GRID"] } }),
            "other_tenant",
        ),
    ]
}

#[tokio::test]
async fn only_active_human_members_of_the_workspace_act_and_every_refusal_is_audited() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();
    for (id, flags, _) in strangers() {
        slack.add_user(id, TEAM, Some("alice@example.com"));
        slack.set_user_flags(id, flags);
    }
    let request = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 real").await.text());
    app.deliver().await;

    for (id, _, _) in strangers() {
        let body = command_body(TEAM, id, "alice", "db 1h INC-1 as alice");
        let answer = app.slack_post("/slack/commands", "application/x-www-form-urlencoded", body, Signing::Good).await;
        assert!(answer.text().contains("acts only for active human members"), "{id}: {}", answer.text());
    }
    // The same accounts clicking Approve on a real card.
    for (id, _, _) in strangers() {
        let click = serde_json::json!({
            "type": "block_actions", "team": { "id": TEAM }, "user": { "id": id, "team_id": TEAM },
            "channel": { "id": DB_CHANNEL }, "trigger_id": elevate_tests::slack::trigger_id(),
            "actions": [{ "action_id": "elevate_approve", "value": request.to_string(), "type": "button" }],
        });
        app.slack_interaction(click, Signing::Good).await;
    }
    // An interaction whose clicker belongs to another workspace, though the payload's team is ours.
    let shared = serde_json::json!({
        "type": "block_actions", "team": { "id": TEAM }, "user": { "id": "UBOB", "team_id": "T0OTHER" },
        "channel": { "id": DB_CHANNEL }, "trigger_id": elevate_tests::slack::trigger_id(),
        "actions": [{ "action_id": "elevate_approve", "value": request.to_string(), "type": "button" }],
    });
    app.slack_interaction(shared, Signing::Good).await;
    // A policy person (bob, linked by slack_id) whose account was deactivated.
    slack.set_user_flags("UBOB", serde_json::json!({ "deleted": true }));
    app.slack_click("bob", "elevate_approve", request).await;

    assert_eq!(app.state(request).await, "pending");
    assert!(app.request(request).await.approvals.is_empty(), "no stranger's click counted");
    let refused: Vec<String> = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.kind == "security.actor_refused")
        .map(|e| format!("{} {}", e.details["user"].as_str().unwrap(), e.details["why"].as_str().unwrap()))
        .collect();
    let mut want: Vec<String> = strangers().iter().map(|(id, _, why)| format!("{id} {why}")).collect();
    want.extend(want.clone());
    want.push("UBOB other_tenant".into());
    want.push("UBOB deactivated".into());
    assert_eq!(refused, want, "each attempt audited with its class");
    assert_eq!(requests(&app).await, 1, "only alice's own request");
}
