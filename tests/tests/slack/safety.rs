//! Who may do what, and what cannot get through: signatures, self-approval, non-approvers,
//! double clicks, escaping, unknown users, other workspaces, and Slack's own errors.

use super::slack_app;
use elevate_tests::{
    TestApp,
    fake_slack::SlackFault,
    slack::{DB_CHANNEL, Signing, sign},
};
use slack_morphism::signature_verifier::{SlackEventSignatureVerifier, SlackEventSignatureVerifierError};

#[test]
fn slacks_documented_signing_example_verifies() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let ts = "1531420618";
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    assert_eq!(sign(secret, ts, body), expected, "the tests sign as Slack does");

    // The verifier the endpoints use accepts the signature and refuses only the 2018 timestamp.
    let verifier = SlackEventSignatureVerifier::new(&secret.to_string().into());
    assert!(matches!(
        verifier.verify(expected, body, ts),
        Err(SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_))
    ));
    let tampered = body.replace("roadrunner", "coyote");
    assert!(matches!(
        verifier.verify(expected, &tampered, ts),
        Err(SlackEventSignatureVerifierError::WrongSignatureError(_))
    ));
}

#[tokio::test]
async fn approvers_cannot_approve_themselves_and_others_cannot_approve_at_all() {
    let app = slack_app().await;
    let own = TestApp::id_in(&app.slack_command("bob", "db 1h INC-1 own work").await.text());
    let other = TestApp::id_in(&app.slack_command("alice", "db 1h INC-2 work").await.text());
    app.deliver().await;

    app.slack_click("bob", "elevate_approve", own).await;
    assert!(app.fake_slack().ephemerals("UBOB")[0].contains("cannot approve your own request"));
    app.slack_click("erin", "elevate_approve", other).await;
    assert!(app.fake_slack().ephemerals("UERIN")[0].contains("not an approver for `db`"));

    app.deliver().await;
    for id in [own, other] {
        assert_eq!(app.state(id).await, "pending");
        assert_eq!(app.card(id).buttons(), ["elevate_approve", "elevate_deny"]);
    }
    let kinds = app.event_kinds(other).await;
    assert_eq!(kinds, ["request.created", "request.approval_refused"], "the attempt is audited");
}

#[tokio::test]
async fn forged_stale_and_unsigned_payloads_are_refused_with_no_effect() {
    let app = slack_app().await;
    for signing in [Signing::Secret("not-the-secret"), Signing::AgedSecs(6 * 60), Signing::Missing] {
        let cmd = app.slack_command_in("T0ELEVATE", "alice", "db 1h INC-1 sneaky", signing).await;
        assert_eq!(cmd.status, 401);
        let click = app.slack_click_as("T0ELEVATE", "bob", "elevate_approve", 1, signing).await;
        assert_eq!(click.status, 401);
    }
    let fresh_enough = app.slack_command_in("T0ELEVATE", "alice", "status", Signing::AgedSecs(4 * 60)).await;
    assert_eq!(fresh_enough.status, 200, "inside the five-minute window");
    assert!(app.events().await.is_empty(), "nothing happened");
    assert!(app.fake_slack().calls("users.info").len() <= 1, "only the genuine status looked anyone up");
}

#[tokio::test]
async fn echoed_text_cannot_ping_mention_or_fake_links() {
    let app = slack_app().await;
    let reason = "INC-1 <!channel> ask <@UBOB> see <https://evil.example|the runbook> & more";
    let id = TestApp::id_in(&app.slack_command("alice", &format!("db 1h {reason}")).await.text());
    app.slack_command("bob", "<!here>").await;
    app.deliver().await;
    app.slack_click("bob", "elevate_deny", id).await;
    app.slack_submit("bob", "elevate_deny", &id.to_string(), &[("reason", "no <!everyone>")]).await;
    app.deliver().await;

    let sent = app.fake_slack().everything_sent();
    for raw in ["<!channel>", "<!here>", "<!everyone>", "<https://evil", "ask <@UBOB>"] {
        assert!(!sent.contains(raw), "{raw} reached Slack unescaped");
    }
    assert!(app.card(id).all_text().contains("&lt;!channel&gt; ask &lt;@UBOB&gt;"));
}

#[tokio::test]
async fn unknown_people_and_other_workspaces_are_refused() {
    let app = slack_app().await;
    let nobody = app.slack_command("nobody", "db 1h INC-1 let me in").await.text();
    assert!(nobody.contains("not linked to anyone in elevate's policy"), "{nobody}");
    assert!(nobody.contains("slack_id = \"UNOBODY\""), "says how to fix it: {nobody}");
    let ghost = app.slack_command("ghost", "db 1h INC-1 boo").await.text();
    assert!(ghost.contains("Slack does not know the account `UGHOST`"), "a user Slack does not know: {ghost}");

    let other = app.slack_command_in("T0OTHER", "bob", "db 1h INC-1 hi", Signing::Good).await.text();
    assert!(other.contains("another workspace or server (`T0OTHER`)"), "{other}");
    let kinds: Vec<String> = app.events().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["security.actor_refused"], "only the refusal of a stranger is recorded");

    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-2 real").await.text());
    app.deliver().await;
    app.slack_click_as("T0OTHER", "bob", "elevate_approve", id, Signing::Good).await;
    assert!(app.fake_slack().ephemerals("UBOB")[0].contains("another workspace or server"));
    assert_eq!(app.state(id).await, "pending");
}

#[tokio::test]
async fn slack_rate_limits_and_errors_delay_messages_but_lose_none() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();
    slack.fail_next("chat.postMessage", SlackFault::RateLimited(1));
    slack.fail_next("chat.update", SlackFault::Error("internal_error"));
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    app.deliver().await;
    assert_eq!(app.card(id).buttons().len(), 2, "posted after the 429");
    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    assert!(app.card(id).all_text().contains("Approved by <@UBOB>"), "updated after the error");
    assert!(slack.calls("chat.update").len() >= 2, "the failed update was retried");
    assert_eq!(
        slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.args["channel"] == DB_CHANNEL && c.args["thread_ts"].is_null())
            .count(),
        2,
        "the 429 was retried once (replies in the card's thread aside)"
    );
}

#[tokio::test]
async fn events_endpoint_answers_the_url_verification_challenge() {
    let app = slack_app().await;
    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let answer = app.slack_post("/slack/events", "application/json", body.into(), Signing::Good).await;
    assert_eq!(answer.body["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
    let forged = app.slack_post("/slack/events", "application/json", body.into(), Signing::Secret("x")).await;
    assert_eq!(forged.status, 401);
}
