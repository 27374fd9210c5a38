//! Slack end to end: signed payloads in Slack's documented shapes hit the real endpoints, the
//! real slack-morphism client talks to a fake Slack Web API on loopback, and every assertion
//! about what people see is made on what reached that fake.

use chrono::Duration;
use elevate_tests::{
    TestApp,
    fake_slack::SlackFault,
    on_both_dbs,
    slack::{AUDIT_CHANNEL, DB_CHANNEL, Signing, sign},
};
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

async fn slack_app() -> TestApp {
    TestApp::builder().slack().spawn().await
}

#[test]
fn slacks_documented_signing_example_verifies() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let ts = "1531420618";
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    assert_eq!(
        sign(secret, ts, body),
        expected,
        "the tests sign as Slack does"
    );

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

on_both_dbs!(
    a_request_runs_to_expiry_seen_only_through_slack,
    |db| async move {
        let app = TestApp::builder().db(db).slack().spawn().await;
        let slack = app.fake_slack().clone();

        let answer = app
            .slack_command("alice", "db 1h INC-4211 fix replication lag")
            .await;
        let text = answer.text();
        assert_eq!(answer.body["response_type"], "ephemeral");
        assert!(text.contains(&format!("sent to <#{DB_CHANNEL}>")), "{text}");
        let id = TestApp::id_in(&text);
        assert_eq!(
            slack.calls("users.info").len(),
            1,
            "alice is found by her Slack email"
        );

        app.deliver().await;
        let card = app.card(id);
        assert_eq!(card.buttons(), ["elevate_approve", "elevate_deny"]);
        let shown = card.all_text();
        for want in [
            "<@UALICE>",
            "`db`",
            "1h",
            "INC-4211 fix replication lag",
            "Waiting for 1 approval",
        ] {
            assert!(shown.contains(want), "card lacks {want}: {shown}");
        }

        assert_eq!(
            app.slack_click("bob", "elevate_approve", id).await.status,
            200
        );
        app.deliver().await;
        assert!(
            app.card(id).buttons().is_empty(),
            "a decided card has no buttons"
        );
        assert!(app.card(id).all_text().contains("Approved by <@UBOB>"));
        assert!(
            slack
                .dms("UALICE")
                .last()
                .unwrap()
                .contains("Approved by <@UBOB>")
        );

        app.tick().await;
        assert!(
            app.card(id)
                .all_text()
                .contains("active until 2026-03-02 10:00 UTC")
        );
        assert!(
            slack
                .dms("UALICE")
                .last()
                .unwrap()
                .contains("Granted: you have `db` until 2026-03-02 10:00 UTC")
        );

        app.advance(Duration::minutes(50));
        app.tick().await;
        let warning = slack.messages("DUALICE").pop().unwrap();
        assert!(
            warning.all_text().contains("expires in 10 min"),
            "{}",
            warning.all_text()
        );
        assert_eq!(warning.buttons(), ["elevate_extend"]);

        app.advance(Duration::minutes(10));
        app.tick().await;
        app.tick().await;
        assert!(
            slack
                .dms("UALICE")
                .last()
                .unwrap()
                .contains("Expired: your `db` access")
        );
        assert!(
            app.card(id)
                .all_text()
                .contains("expired at 2026-03-02 10:00 UTC")
        );
        let feed: Vec<String> = slack
            .messages(AUDIT_CHANNEL)
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert!(
            feed.iter()
                .any(|l| l.starts_with(&format!("#{id} alice requested db for 1h"))),
            "{feed:#?}"
        );
        assert!(
            feed.iter()
                .any(|l| l.contains("access expired and was removed")),
            "{feed:#?}"
        );
        assert_eq!(
            app.events().await.len(),
            feed.len(),
            "one feed line per audit event"
        );
    }
);

#[tokio::test]
async fn the_modal_path_lists_only_requestable_roles_and_reports_field_errors() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();

    let answer = app.slack_command("alice", "").await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, serde_json::Value::Null)
    );
    let opened = slack.calls("views.open").pop().expect("views.open");
    assert_eq!(
        opened.args["trigger_id"],
        "13345224609.738474920.8088930838d88f008e0"
    );
    let options: Vec<String> = opened.args["view"]["blocks"][0]["element"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(options, ["busy", "db", "db-ro", "prod", "sandbox"]);

    let mallory = app.slack_command("mallory", "").await.text();
    assert!(mallory.contains("no role you may request"), "{mallory}");

    let errors = app
        .slack_submit(
            "alice",
            "elevate_request",
            "",
            &[
                ("role", "db"),
                ("duration", "9h"),
                ("reason", "INC-7 hotfix"),
            ],
        )
        .await;
    assert_eq!(errors.body["response_action"], "errors");
    assert!(
        errors.body["errors"]["duration"]
            .as_str()
            .unwrap()
            .contains("at most 4h"),
        "{:?}",
        errors.body
    );

    let ok = app
        .slack_submit(
            "alice",
            "elevate_request",
            "",
            &[
                ("role", "db"),
                ("duration", "2h"),
                ("reason", "fix lag"),
                ("ticket", "INC-7"),
            ],
        )
        .await;
    assert_eq!(ok.body, serde_json::Value::Null, "the modal closes");
    let req = app.request(1).await;
    assert_eq!(
        (req.duration.to_string().as_str(), req.ticket.as_deref()),
        ("2h", Some("INC-7"))
    );
    assert!(slack.dms("UALICE")[0].contains("Request #1 for `db` (2h) sent to"));
}

#[tokio::test]
async fn two_approver_roles_are_counted_in_place() {
    let app = slack_app().await;
    let id = TestApp::id_in(
        &app.slack_command("alice", "prod 30m INC-9 deploy")
            .await
            .text(),
    );
    app.deliver().await;
    app.slack_click("bob", "elevate_approve", id).await;
    app.deliver().await;
    let card = app.card(id);
    assert!(
        card.all_text().contains("1 of 2 approvals: <@UBOB>"),
        "{}",
        card.all_text()
    );
    assert_eq!(
        card.buttons(),
        ["elevate_approve", "elevate_deny"],
        "still open for the second"
    );

    app.slack_click("bob", "elevate_approve", id).await;
    assert!(app.fake_slack().ephemerals("UBOB")[0].contains("already approved"));
    assert_eq!(
        app.request(id).await.approvals.len(),
        1,
        "a double click is one approval"
    );

    app.slack_click("carol", "elevate_approve", id).await;
    app.deliver().await;
    assert!(
        app.card(id)
            .all_text()
            .contains("Approved by <@UBOB>, <@UCAROL>")
    );
    assert_eq!(app.state(id).await, "approved");
}

#[tokio::test]
async fn approvers_cannot_approve_themselves_and_others_cannot_approve_at_all() {
    let app = slack_app().await;
    let own = TestApp::id_in(
        &app.slack_command("bob", "db 1h INC-1 own work")
            .await
            .text(),
    );
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
    assert_eq!(
        kinds,
        ["request.created", "request.approval_refused"],
        "the attempt is audited"
    );
}

#[tokio::test]
async fn forged_stale_and_unsigned_payloads_are_refused_with_no_effect() {
    let app = slack_app().await;
    for signing in [
        Signing::Secret("not-the-secret"),
        Signing::AgedSecs(6 * 60),
        Signing::Missing,
    ] {
        let cmd = app
            .slack_command_in("T0ELEVATE", "alice", "db 1h INC-1 sneaky", signing)
            .await;
        assert_eq!(cmd.status, 401);
        let click = app
            .slack_click_as("T0ELEVATE", "bob", "elevate_approve", 1, signing)
            .await;
        assert_eq!(click.status, 401);
    }
    let fresh_enough = app
        .slack_command_in("T0ELEVATE", "alice", "status", Signing::AgedSecs(4 * 60))
        .await;
    assert_eq!(fresh_enough.status, 200, "inside the five-minute window");
    assert!(app.events().await.is_empty(), "nothing happened");
    assert!(
        app.fake_slack().calls("users.info").len() <= 1,
        "only the genuine status looked anyone up"
    );
}

#[tokio::test]
async fn the_card_is_updated_on_every_final_state() {
    let app = slack_app().await;
    let slack = app.fake_slack().clone();
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        for reason in [
            "INC-1 deny me",
            "INC-2 cancel me",
            "INC-3 time me out",
            "INC-4 revoke me",
            "INC-5 release me",
        ] {
            v.push(TestApp::id_in(
                &app.slack_command("alice", &format!("db 1h {reason}"))
                    .await
                    .text(),
            ));
        }
        v
    };
    let [deny, cancel, timeout, revoke, release] = ids[..] else {
        unreachable!()
    };
    app.deliver().await;

    app.slack_click("bob", "elevate_deny", deny).await;
    assert_eq!(
        slack.calls("views.open").pop().unwrap().args["view"]["private_metadata"],
        deny.to_string()
    );
    let closed = app
        .slack_submit(
            "bob",
            "elevate_deny",
            &deny.to_string(),
            &[("reason", "use the read replica")],
        )
        .await;
    assert_eq!(closed.body, serde_json::Value::Null);
    assert!(
        app.slack_command("alice", &format!("cancel {cancel}"))
            .await
            .text()
            .contains("Cancelled")
    );
    for id in [revoke, release] {
        app.slack_click("carol", "elevate_approve", id).await;
    }
    app.tick().await;
    app.dave().revoke(revoke, "INC-4 is closed").await.ok();
    assert!(
        app.slack_command("alice", &format!("release {release}"))
            .await
            .text()
            .contains("Releasing")
    );
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
    for want in [
        "Denied by <@UBOB>",
        "Timed out",
        "Revoked by <@UDAVE>: INC-4 is closed",
        "Released: your `db` access",
    ] {
        assert!(dms.contains(want), "no DM with {want}: {dms}");
    }
}

#[tokio::test]
async fn echoed_text_cannot_ping_mention_or_fake_links() {
    let app = slack_app().await;
    let reason = "INC-1 <!channel> ask <@UBOB> see <https://evil.example|the runbook> & more";
    let id = TestApp::id_in(
        &app.slack_command("alice", &format!("db 1h {reason}"))
            .await
            .text(),
    );
    app.slack_command("bob", "<!here>").await;
    app.deliver().await;
    app.slack_click("bob", "elevate_deny", id).await;
    app.slack_submit(
        "bob",
        "elevate_deny",
        &id.to_string(),
        &[("reason", "no <!everyone>")],
    )
    .await;
    app.deliver().await;

    let sent = app.fake_slack().everything_sent();
    for raw in [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<https://evil",
        "ask <@UBOB>",
    ] {
        assert!(!sent.contains(raw), "{raw} reached Slack unescaped");
    }
    assert!(
        app.card(id)
            .all_text()
            .contains("&lt;!channel&gt; ask &lt;@UBOB&gt;")
    );
}

#[tokio::test]
async fn unknown_people_and_other_workspaces_are_refused() {
    let app = slack_app().await;
    let nobody = app
        .slack_command("nobody", "db 1h INC-1 let me in")
        .await
        .text();
    assert!(
        nobody.contains("not linked to anyone in elevate's policy"),
        "{nobody}"
    );
    assert!(
        nobody.contains("slack_id = \"UNOBODY\""),
        "says how to fix it: {nobody}"
    );
    let ghost = app.slack_command("ghost", "db 1h INC-1 boo").await.text();
    assert!(
        ghost.contains("not linked"),
        "a user Slack does not know: {ghost}"
    );

    let other = app
        .slack_command_in("T0OTHER", "bob", "db 1h INC-1 hi", Signing::Good)
        .await
        .text();
    assert!(
        other.contains("only the Slack workspace `T0ELEVATE`"),
        "{other}"
    );
    assert!(app.events().await.is_empty());

    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-2 real").await.text());
    app.deliver().await;
    app.slack_click_as("T0OTHER", "bob", "elevate_approve", id, Signing::Good)
        .await;
    assert!(app.fake_slack().ephemerals("UBOB")[0].contains("only the Slack workspace"));
    assert_eq!(app.state(id).await, "pending");
}

#[tokio::test]
async fn status_release_extend_and_help() {
    let app = slack_app().await;
    assert!(
        app.slack_command("alice", "help")
            .await
            .text()
            .contains("You may request: `busy`")
    );
    assert!(
        app.slack_command("alice", "status")
            .await
            .text()
            .contains("no pending requests")
    );
    let typo = app.slack_command("alice", "dbb 1h INC-1 x").await.text();
    assert!(
        typo.contains("There is no role `dbb`. Did you mean `db`?"),
        "{typo}"
    );

    let id = TestApp::id_in(&app.slack_command("alice", "db 2h INC-1 work").await.text());
    app.slack_click("bob", "elevate_approve", id).await;
    app.tick().await;
    app.advance(Duration::minutes(30));
    let status = app.slack_command("alice", "status").await.text();
    assert!(
        status.contains(&format!("#{id} `db` active, 1h30m left")),
        "{status}"
    );

    let ext = app
        .slack_command("alice", &format!("extend {id} 1h"))
        .await
        .text();
    assert!(ext.contains(&format!("of #{id} by 1h")), "{ext}");
    let too_much = app
        .slack_command("alice", &format!("extend {id} 5h"))
        .await
        .text();
    assert!(too_much.contains("you can extend by at most"), "{too_much}");

    assert!(
        app.slack_command("alice", "release")
            .await
            .text()
            .contains(&format!("Releasing #{id}"))
    );
    app.tick().await;
    assert_eq!(app.state(id).await, "released");
    assert!(
        app.slack_command("alice", "release")
            .await
            .text()
            .contains("no active grant")
    );
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
    assert!(
        app.card(id).all_text().contains("Approved by <@UBOB>"),
        "updated after the error"
    );
    assert!(
        slack.calls("chat.update").len() >= 2,
        "the failed update was retried"
    );
    assert_eq!(
        slack
            .calls("chat.postMessage")
            .iter()
            .filter(|c| c.args["channel"] == DB_CHANNEL)
            .count(),
        2,
        "the 429 was retried once"
    );
}

#[tokio::test]
async fn events_endpoint_answers_the_url_verification_challenge() {
    let app = slack_app().await;
    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let answer = app
        .slack_post(
            "/slack/events",
            "application/json",
            body.into(),
            Signing::Good,
        )
        .await;
    assert_eq!(
        answer.body["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let forged = app
        .slack_post(
            "/slack/events",
            "application/json",
            body.into(),
            Signing::Secret("x"),
        )
        .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test]
async fn the_extend_button_in_the_expiry_warning_asks_for_more_time() {
    let app = slack_app().await;
    let id = TestApp::id_in(
        &app.slack_command("alice", "db 1h INC-1 long job")
            .await
            .text(),
    );
    app.slack_click("bob", "elevate_approve", id).await;
    app.tick().await;
    app.advance(Duration::minutes(50));
    app.tick().await;

    app.slack_click("alice", "elevate_extend", id).await;
    let modal = app
        .fake_slack()
        .calls("views.open")
        .pop()
        .expect("extend modal");
    assert_eq!(modal.args["view"]["callback_id"], "elevate_extend");
    let done = app
        .slack_submit(
            "alice",
            "elevate_extend",
            &id.to_string(),
            &[("duration", "30m"), ("reason", "")],
        )
        .await;
    assert_eq!(done.body, serde_json::Value::Null, "{:?}", done.body);
    app.deliver().await;
    let ext = id + 1;
    assert!(
        app.card(ext)
            .all_text()
            .contains(&format!("asks to extend #{id}"))
    );

    app.slack_click("bob", "elevate_approve", ext).await;
    app.tick().await;
    app.tick().await;
    let dms = app.fake_slack().dms("UALICE").join("\n");
    assert!(dms.contains("now runs until 2026-03-02 10:30 UTC"), "{dms}");
}
