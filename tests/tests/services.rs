//! Requests on behalf of automation: a service identity (`[services.ci-deployer]`) requests for
//! itself with its API token, a person approves, and the provider grants the service's own
//! principal. It cannot approve (its own request or any other), and the audit trail and the
//! card say it is a service identity.

use elevate_tests::{TestApp, TestDb, on_both_dbs, policy};

const CI_TOKEN: &str = "token-ci-deployer";

fn config() -> String {
    policy::config("{WEBHOOK_URL}")
        + &format!(
            r#"
[services.ci-deployer]
description = "the deploy pipeline"
owner = "alice"
principals = {{ webhook = "ci-deployer@robots.example.com" }}

[groups.deployers]
members = ["ci-deployer"]

[roles.deploy]
provider = "hook"
target = {{ cluster = "prod" }}
default_duration = "15m"
max_duration = "1h"
requesters = ["deployers"]
approvers = ["approvers"]
slack_channel = "{}"

[tokens.ci]
service = "ci-deployer"
sha256 = "{}"
"#,
            elevate_tests::slack::DB_CHANNEL,
            policy::sha(CI_TOKEN)
        )
}

async fn app(db: TestDb, slack: bool) -> TestApp {
    let b = TestApp::builder().db(db).config(&config());
    if slack { b.slack() } else { b }.spawn().await
}

on_both_dbs!(a_service_requests_for_itself_and_a_person_approves, |db| async move {
    let app = app(db, false).await;
    let ci = app.person("ci-deployer");
    let ci = elevate_tests::Person { token: CI_TOKEN.into(), ..ci };

    let who = ci.call(reqwest::Method::GET, "/api/v1/whoami", None).await.ok();
    assert_eq!((who["person"].as_str(), who["service"].as_bool()), (Some("ci-deployer"), Some(true)));

    let body = ci.request("deploy", "15m", "release 2026.03.2").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!((body["state"].as_str(), body["requester_kind"].as_str()), (Some("pending"), Some("service")));
    let created = app.events().await.into_iter().find(|e| e.kind == "request.created").unwrap();
    assert_eq!(created.actor, "person:ci-deployer");
    assert_eq!(created.details["requester_kind"], "service");
    let line = elevate_core::render::feed_line(&created, None);
    assert!(line.contains("ci-deployer (service identity) requested deploy"), "{line}");

    let msg = ci.approve(id).await.refused(403);
    assert!(msg.contains("approve"), "a service never approves, its own request least of all: {msg}");
    assert_eq!(app.alice().request("db", "1h", "INC-1 x").await.status, 201);
    assert_eq!(ci.approve(id + 1).await.status, 403, "nor anyone else's");

    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");
    let grant = app.receiver.calls_for("grant", &TestApp::grant_id(id));
    assert_eq!(grant[0].body["principals"]["webhook"], "ci-deployer@robots.example.com", "its own principal");
    assert_eq!(grant[0].body["person"], "ci-deployer");

    assert_eq!(ci.request("db", "1h", "INC-2 x").await.status, 403, "only roles its groups may request");
});

on_both_dbs!(the_card_says_it_is_a_service_identity, |db| async move {
    let app = app(db, true).await;
    let ci = elevate_tests::Person { token: CI_TOKEN.into(), ..app.person("ci-deployer") };
    let id = ci.request("deploy", "15m", "release 2026.03.2").await.id();
    app.deliver().await;
    let card = app.card(id).all_text();
    assert!(card.contains("ci-deployer is a service identity (automation), owned by alice"), "{card}");
    assert_eq!(app.slack_click("bob", "elevate_approve", id).await.status, 200);
    assert_eq!(app.state(id).await, "approved");
});

on_both_dbs!(cancels_releases_and_extensions_by_a_service_are_marked_as_its_own, |db| async move {
    let app = app(db, false).await;
    let ci = elevate_tests::Person { token: CI_TOKEN.into(), ..app.person("ci-deployer") };
    let withdrawn = ci.request("deploy", "15m", "release 2026.03.2").await.id();
    ci.cancel(withdrawn).await.ok();

    let id = ci.request("deploy", "15m", "release 2026.03.3").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    let more = ci.extend(id, "15m").await.id();
    ci.release(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "released");

    let events = app.events().await;
    let find = |subject: i64, kind: &str| {
        events.iter().find(|e| e.subject == Some(subject) && e.kind == kind).unwrap_or_else(|| panic!("{kind}")).clone()
    };
    let cancelled = find(withdrawn, "request.cancelled");
    assert_eq!((cancelled.actor.as_str(), &cancelled.details["actor_kind"]), ("person:ci-deployer", &"service".into()));
    assert!(elevate_core::render::feed_line(&cancelled, None).ends_with("cancelled by ci-deployer (service identity)"));
    let released = find(id, "grant.revoking");
    assert_eq!(released.details["actor_kind"], "service");
    assert!(elevate_core::render::feed_line(&released, None).contains("released by ci-deployer (service identity)"));
    assert_eq!(find(more, "request.created").details["requester_kind"], "service", "the extension it asked for");

    // A person's own cancel carries no mark.
    let mine = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.alice().cancel(mine).await.ok();
    let events = app.events().await;
    let cancelled = events.iter().find(|e| e.subject == Some(mine) && e.kind == "request.cancelled").unwrap();
    assert!(cancelled.details.get("actor_kind").is_none(), "{:?}", cancelled.details);
});

#[tokio::test]
async fn a_service_in_an_approver_group_is_a_config_error() {
    let text =
        config().replace("approvers = [\"approvers\"]\nslack_channel", "approvers = [\"deployers\"]\nslack_channel");
    let errs = elevate_bot::config::Config::parse(&text.replace("{WEBHOOK_URL}", "http://127.0.0.1:9")).unwrap_err();
    assert_eq!(errs[0].path, "roles.deploy.approvers");
    assert!(errs[0].message.contains("service `ci-deployer`: a service may not approve"), "{errs:?}");
}
