//! Approver groups backed by a Slack user group (`slack_usergroup = "S…"`): membership is read
//! from Slack (`usergroups.users.list`) when a click arrives, trusted for `usergroup_cache`, and
//! a person removed from the group stops approving once that has passed.

use chrono::Duration;
use elevate_tests::{TestApp, policy, slack::user};

const DBAS: &str = "S0DBAS";

/// The test policy with carol an approver only through the Slack user group.
async fn app() -> TestApp {
    let text = policy::config("{WEBHOOK_URL}").replacen(
        "[groups.approvers]\nmembers = [\"bob\", \"carol\"]\n",
        &format!("[groups.approvers]\nmembers = [\"bob\"]\nslack_usergroup = \"{DBAS}\"\n"),
        1,
    );
    assert!(text.contains(DBAS));
    let app = TestApp::builder().config(&text).slack().spawn().await;
    app.fake_slack().set_usergroup(DBAS, &[&user("carol")]);
    app
}

async fn request(app: &TestApp) -> i64 {
    let id = TestApp::id_in(&app.slack_command("alice", "db 1h INC-1 fix").await.text());
    app.deliver().await;
    id
}

#[tokio::test]
async fn a_member_of_the_user_group_approves_and_a_removed_one_cannot() {
    let app = app().await;
    let id = request(&app).await;
    app.slack_click("carol", "elevate_approve", id).await;
    assert_eq!(app.state(id).await, "approved", "carol approves through the user group");
    assert_eq!(app.fake_slack().calls("usergroups.users.list").len(), 1);

    // Carol leaves the group: within the cache time she is still trusted, after it she is not.
    app.fake_slack().set_usergroup(DBAS, &[]);
    let id = request(&app).await;
    app.advance(Duration::minutes(2));
    app.slack_click("carol", "elevate_approve", id).await;
    assert_eq!(app.state(id).await, "pending", "a removed member cannot approve");
    let refused = app.events().await.into_iter().any(|e| e.kind == "request.approval_refused");
    assert!(refused, "the refusal is audited");
    assert!(app.fake_slack().calls("usergroups.users.list").len() >= 2, "read again after the cache time");
}

#[tokio::test]
async fn a_user_group_slack_cannot_list_gets_a_clear_answer_and_changes_nothing() {
    let app = app().await;
    let id = request(&app).await;
    app.advance(Duration::minutes(2));
    app.fake_slack().fail_next("usergroups.users.list", elevate_tests::fake_slack::SlackFault::Error("internal_error"));
    app.fake_slack().fail_next("usergroups.users.list", elevate_tests::fake_slack::SlackFault::Error("internal_error"));
    app.slack_click("carol", "elevate_approve", id).await;
    assert_eq!(app.state(id).await, "pending");
    let told = app.fake_slack().calls("chat.postEphemeral");
    let said = told.iter().map(|c| c.args.to_string()).collect::<Vec<_>>().join("\n");
    assert!(said.contains("could not read the members of the Slack user group") && said.contains(DBAS), "{said}");
}
