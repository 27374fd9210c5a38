//! Tickets that exist: a role whose ticket rule names a ticket system takes only a ticket that
//! exists there, in an allowed project and status, assigned to the requester when the rule says
//! so; a refusal names what is wrong and creates nothing; a ticket system that cannot be asked
//! refuses too (fail closed). A grant whose rule says `end_when_closed` ends when its ticket is
//! closed, found by the `ticket_watch` periodic job.

use elevate_tests::{
    TestApp, TestDb,
    fake_jira::{FakeJira, JiraFault},
    on_both_dbs, tickets,
};
use serde_json::Value;

const CLOUD_RULE: &str = r#"
[rules.db-incident]
kind = "ticket"
system = "jira"
roles = ["db"]
projects = ["INC"]
status_categories = ["indeterminate"]
assigned_to_requester = true
match_by = "jira_user"
end_when_closed = true
"#;

const ALICE: (&str, &str, &str) = ("acc-alice", "alice@example.com", "Alice Liddell");
const BOB: (&str, &str, &str) = ("acc-bob", "bob@example.com", "Bob Builder");

async fn app(db: TestDb, jira: &FakeJira, rules: &str) -> TestApp {
    TestApp::builder().db(db).config(&tickets::config(jira, rules)).spawn().await
}

/// Request events so far: a refusal must have created nothing.
async fn request_events(app: &TestApp) -> usize {
    app.events().await.iter().filter(|e| e.kind.starts_with("request.")).count()
}

fn detail(body: &Value) -> String {
    body["rules"][0]["detail"].as_str().unwrap_or("").to_string()
}

on_both_dbs!(a_jira_ticket_in_order_is_linked_and_its_closing_ends_the_grant, |db| async move {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    let app = app(db, &jira, CLOUD_RULE).await;

    let body = app.alice().request("db", "1h", "INC-42 replica lag").await.ok();
    let id = body["id"].as_i64().unwrap();
    assert_eq!(body["ticket"], "INC-42");
    assert_eq!(
        detail(&body),
        format!("INC-42 (In Progress, project INC, assigned to Alice Liddell): {}/browse/INC-42", jira.url)
    );
    assert_eq!(jira.calls(), ["3 INC-42"], "Cloud API, basic auth");
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "active");

    elevate_bot::scheduler::run_job(&app.app.service, app.store(), "ticket_watch").await.unwrap();
    assert_eq!(app.state(id).await, "active", "still in progress: nothing ends");

    jira.transition("INC-42", "Done", "done");
    elevate_bot::scheduler::run_job(&app.app.service, app.store(), "ticket_watch").await.unwrap();
    app.run_due().await;
    let req = app.request(id).await;
    assert_eq!(req.state.as_str(), "revoked");
    assert_eq!(req.closed_by.as_deref(), Some("rule:db-incident"));
    assert_eq!(req.note.as_deref(), Some("ticket INC-42 was closed (Done)"));
    assert!(!app.receiver.holds(&TestApp::grant_id(id)), "access removed");
    let revoking =
        app.events().await.into_iter().find(|e| e.subject == Some(id) && e.actor == "rule:db-incident").unwrap();
    assert!(revoking.details.to_string().contains("ticket INC-42 was closed (Done)"), "{}", revoking.details);
});

on_both_dbs!(each_wrong_ticket_is_refused_by_name_and_creates_nothing, |db| async move {
    let jira = tickets::start().await;
    jira.add_issue("INC-1", "To Do", "new", Some(ALICE));
    jira.add_issue("OPS-2", "In Progress", "indeterminate", Some(ALICE));
    jira.add_issue("INC-3", "In Progress", "indeterminate", Some(BOB));
    jira.add_issue("INC-4", "In Progress", "indeterminate", None);
    let app = app(db, &jira, CLOUD_RULE).await;
    let alice = app.alice();

    let refused = |status: u16, field: &'static str| {
        move |a: elevate_tests::Answer| {
            assert_eq!(a.body["error"]["field"], field, "{}", a.body);
            a.refused(status)
        }
    };
    let msg = refused(400, "ticket")(alice.request("db", "1h", "INC-404 fix").await);
    assert_eq!(msg, "Ticket INC-404 does not exist in Jira (or elevate may not see it).");
    let msg = refused(400, "ticket")(alice.request("db", "1h", "INC-1 fix").await);
    assert_eq!(msg, "Ticket INC-1 is To Do; `db` needs one that is in category indeterminate.");
    let msg = refused(400, "ticket")(alice.request("db", "1h", "OPS-2 fix").await);
    assert_eq!(msg, "Ticket OPS-2 is in project OPS; `db` needs a ticket in INC.");
    let msg = refused(400, "ticket")(alice.request("db", "1h", "INC-3 fix").await);
    assert_eq!(msg, "Ticket INC-3 is assigned to Bob Builder, not to you; `db` needs it assigned to you.");
    let msg = refused(400, "ticket")(alice.request("db", "1h", "INC-4 fix").await);
    assert!(msg.contains("INC-4 is not assigned to anyone"), "{msg}");
    let msg = refused(400, "ticket")(alice.request("db", "1h", "no ticket at all").await);
    assert!(msg.contains("`db` needs a ticket in INC"), "{msg}");

    jira.set_down(true);
    let answer = alice.request("db", "1h", "INC-3 fix").await;
    assert_eq!(answer.body["error"]["code"], "rule_denied");
    let msg = answer.refused(403);
    assert_eq!(
        msg,
        "Cannot verify ticket INC-3: Jira answered HTTP 503. Nothing was requested; try again in a minute."
    );
    assert_eq!(request_events(&app).await, 0, "no refusal created a request");

    jira.set_down(false);
    assert_eq!(app.bob().request("db", "1h", "INC-3 fix").await.ok()["state"], "pending", "bob's ticket is bob's");
    assert_eq!(alice.request("db-ro", "1h", "whatever").await.ok()["state"], "pending", "other roles need no ticket");
});

#[tokio::test]
async fn jira_rate_limits_and_server_errors_are_retried() {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    let app = app(TestDb::sqlite(), &jira, CLOUD_RULE).await;
    jira.fail_next(JiraFault::RateLimited(1));
    jira.fail_next(JiraFault::ServerError);
    app.alice().request("db", "1h", "INC-42 fix").await.ok();
    assert_eq!(jira.calls().len(), 3);
}

#[tokio::test]
async fn data_center_and_the_generic_check_work_the_same() {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    jira.add_issue("INC-43", "Closed", "done", Some(ALICE));
    let rules = CLOUD_RULE.replace("system = \"jira\"", "system = \"jira-dc\"")
        + &CLOUD_RULE
            .replace("db-incident", "ro-check")
            .replace("system = \"jira\"", "system = \"check\"")
            .replace("roles = [\"db\"]", "roles = [\"db-ro\"]")
            .replace("status_categories = [\"indeterminate\"]", "statuses = [\"In Progress\"]");
    let app = app(TestDb::sqlite(), &jira, &rules).await;

    let body = app.alice().request("db", "1h", "INC-42 fix").await.ok();
    assert!(detail(&body).ends_with(&format!("{}/browse/INC-42", jira.url)), "{}", detail(&body));
    let body = app.alice().request("db-ro", "1h", "INC-42 fix").await.ok();
    assert!(detail(&body).ends_with("https://tickets.example.com/INC-42"), "{}", detail(&body));
    let msg = app.alice().request("db-ro", "1h", "INC-43 fix").await.refused(400);
    assert_eq!(msg, "Ticket INC-43 is Closed; `db-ro` needs one that is In Progress.");
    assert_eq!(jira.calls(), ["2 INC-42", "generic INC-42", "generic INC-43"], "PAT on /rest/api/2; generic check");
}

#[tokio::test]
async fn a_ticket_rule_is_checked_against_the_config() {
    let jira = tickets::start().await;
    let text = tickets::config(&jira, &CLOUD_RULE.replace("system = \"jira\"", "system = \"youtrack\""));
    let errs = elevate_bot::config::Config::parse(&text).unwrap_err();
    assert_eq!(errs[0].path, "rules.db-incident.system");
    let text = tickets::config(&jira, &CLOUD_RULE.replace("match_by = \"jira_user\"\n", ""));
    let errs = elevate_bot::config::Config::parse(&text).unwrap_err();
    assert_eq!(errs[0].path, "rules.db-incident.match_by");
}

on_both_dbs!(slack_shows_the_ticket_link_and_refuses_in_private, |db| async move {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    jira.add_issue("INC-7", "Done", "done", Some(ALICE));
    let app = TestApp::builder().db(db).config(&tickets::config(&jira, CLOUD_RULE)).slack().spawn().await;

    let answer = app.slack_command("alice", "db 1h INC-7 old incident").await;
    assert_eq!(answer.body["response_type"], "ephemeral");
    assert!(
        answer.text().contains("Ticket INC-7 is Done; `db` needs one that is in category indeterminate."),
        "{}",
        answer.text()
    );

    let answer = app.slack_command("alice", "db 1h INC-42 fix replication lag").await;
    let id = TestApp::id_in(&answer.text());
    app.deliver().await;
    let card = app.card(id).all_text();
    assert!(card.contains(&format!("{}/browse/INC-42", jira.url)), "{card}");
    assert!(card.contains("In Progress, project INC, assigned to Alice Liddell"), "{card}");
});

#[tokio::test]
async fn a_jira_that_does_not_answer_in_time_refuses() {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    let text = tickets::config(&jira, CLOUD_RULE).replacen(
        "token_env = \"ELEVATE_TEST_JIRA_TOKEN\"\ntimeout = \"2s\"",
        "token_env = \"ELEVATE_TEST_JIRA_TOKEN\"\ntimeout = \"1s\"",
        1,
    );
    let app = TestApp::builder().config(&text).spawn().await;
    jira.fail_next(JiraFault::Slow(5));
    let msg = app.alice().request("db", "1h", "INC-42 fix").await.refused(403);
    assert_eq!(
        msg,
        "Cannot verify ticket INC-42: Jira did not answer within 1s. Nothing was requested; try again in a minute."
    );
    assert_eq!(request_events(&app).await, 0);
}

on_both_dbs!(a_request_of_several_roles_checks_each_roles_ticket_rule, |db| async move {
    let jira = tickets::start().await;
    jira.add_issue("INC-42", "In Progress", "indeterminate", Some(ALICE));
    let app = app(db, &jira, CLOUD_RULE).await;
    let alice = app.alice();

    // Asked together with a role that needs no ticket, `db`'s rule still decides.
    let refused = alice.request("db-ro,db", "1h", "INC-404 fix").await;
    assert_eq!(refused.body["error"]["field"], "ticket", "{}", refused.body);
    assert_eq!(refused.refused(400), "Ticket INC-404 does not exist in Jira (or elevate may not see it).");
    assert_eq!(request_events(&app).await, 0, "nothing was requested, for either role");

    let body = alice.request("db-ro,db", "1h", "INC-42 replica lag").await.ok();
    let members = body["members"].as_array().expect("the request's roles");
    assert_eq!(members.len(), 2, "{body}");
    let db = members.iter().find(|m| m["role"] == "db").unwrap();
    assert_eq!(
        db["rules"][0]["detail"].as_str().unwrap(),
        format!("INC-42 (In Progress, project INC, assigned to Alice Liddell): {}/browse/INC-42", jira.url)
    );
});
