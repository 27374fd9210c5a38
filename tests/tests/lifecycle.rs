//! The request lifecycle end to end through the REST API, the scheduler and the webhook
//! provider, with the clock moved by the test.

use chrono::Duration;
use elevate_tests::{Fault, TestApp, on_both_dbs};
use serde_json::json;

on_both_dbs!(request_approve_grant_expire, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    let req = app.alice().request("db", "1h", "INC-42 fix replication lag").await.ok();
    let id = req["id"].as_i64().unwrap();
    assert_eq!(req["state"], "pending");
    assert_eq!(req["ticket"], "INC-42", "the ticket is taken from the reason");
    assert_eq!(app.due_kinds(id).await, ["reminder", "pending_timeout"]);

    let approved = app.bob().approve(id).await.ok();
    assert_eq!(approved["state"], "approved");
    assert_eq!(app.due_kinds(id).await, ["apply"], "approval replaces timeout and reminder with one apply");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)), "no provider call inside the approval");

    app.run_due().await;
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "active");
    assert_eq!(r.granted_at, Some(app.clock_now()));
    assert_eq!(r.expires_at, Some(app.clock_now() + Duration::hours(1)));
    assert!(app.receiver.holds(&TestApp::grant_id(id)));
    assert_eq!(app.due_kinds(id).await, ["expiry_warning", "expire"]);

    app.after(Duration::minutes(50)).await;
    app.after(Duration::minutes(10)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)), "access removed at expiry");
    assert!(app.due(id).await.is_empty(), "nothing left to do");
    assert_eq!(
        app.event_kinds(id).await,
        [
            "request.created",
            "request.approved",
            "grant.applied",
            "grant.expiry_warning",
            "grant.revoking",
            "grant.expired"
        ]
    );
});

impl_clock_now!();

/// `app.clock_now()` for readability.
macro_rules! impl_clock_now {
    () => {
        trait ClockNow {
            fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
        }
        impl ClockNow for TestApp {
            fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
                use elevate_core::Clock;
                self.clock.now()
            }
        }
    };
}
use impl_clock_now;

#[tokio::test]
async fn the_duration_starts_when_the_grant_is_applied_not_when_approved() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 x").await.id();
    app.bob().approve(id).await.ok();
    app.advance(Duration::minutes(10));
    app.run_due().await;
    let r = app.request(id).await;
    let granted = r.granted_at.unwrap();
    assert_eq!(granted, app.clock_now());
    assert_eq!(r.expires_at.unwrap() - granted, Duration::hours(1));
}

#[tokio::test]
async fn two_distinct_approvers_are_needed_when_the_role_says_so() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("prod", "30m", "INC-2 deploy").await.id();
    let first = app.bob().approve(id).await.ok();
    assert_eq!(first["state"], "pending");
    assert_eq!(first["approvals_count"], 1);
    let again = app.bob().approve(id).await.refused(409);
    assert!(again.contains("already approved"), "{again}");
    assert_eq!(app.state(id).await, "pending");
    let second = app.carol().approve(id).await.ok();
    assert_eq!(second["state"], "approved");
    let kinds = app.event_kinds(id).await;
    assert_eq!(kinds, ["request.created", "request.approval_added", "request.approval_refused", "request.approved"]);
}

#[tokio::test]
async fn a_requester_cannot_approve_their_own_request_unless_the_role_allows_it() {
    let app = TestApp::spawn().await;
    let id = app.bob().request("db", "1h", "INC-3 own").await.id();
    let msg = app.bob().approve(id).await.refused(403);
    assert!(msg.contains("your own request"), "{msg}");
    assert_eq!(app.state(id).await, "pending");
    assert!(app.event_kinds(id).await.contains(&"request.approval_refused".to_string()), "refusals are audited");

    let sandbox = app.alice().request("sandbox", "1h", "try things").await.id();
    assert_eq!(app.alice().approve(sandbox).await.ok()["state"], "approved");
}

#[tokio::test]
async fn a_non_approver_is_refused_and_the_request_stays_pending() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-4 x").await.id();
    let msg = app.person("erin").approve(id).await.refused(403);
    assert!(msg.contains("not an approver"), "{msg}");
    assert_eq!(app.state(id).await, "pending");
    assert_eq!(app.due_kinds(id).await, ["reminder", "pending_timeout"]);
}

#[tokio::test]
async fn deny_needs_a_reason_and_ends_the_request() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-5 x").await.id();
    app.bob().deny(id, "").await.refused(400);
    assert_eq!(app.state(id).await, "pending");
    app.person("erin").deny(id, "no").await.refused(403);
    let denied = app.bob().deny(id, "use the read replica").await.ok();
    assert_eq!(denied["state"], "denied");
    assert_eq!(denied["note"], "use the read replica");
    assert!(app.due(id).await.is_empty());
    app.carol().approve(id).await.refused(409);
}

#[tokio::test]
async fn the_requester_can_cancel_while_pending_and_nobody_else_can() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-6 x").await.id();
    app.bob().cancel(id).await.refused(403);
    assert_eq!(app.alice().cancel(id).await.ok()["state"], "cancelled");
    assert!(app.due(id).await.is_empty());
    app.alice().cancel(id).await.refused(409);
}

#[tokio::test]
async fn pending_requests_remind_approvers_then_time_out() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-7 x").await.id();
    app.after(Duration::minutes(20)).await;
    app.after(Duration::minutes(20)).await;
    assert_eq!(app.state(id).await, "pending");
    app.after(Duration::minutes(20)).await;
    assert_eq!(app.state(id).await, "timed_out");
    assert!(app.due(id).await.is_empty());
    assert_eq!(
        app.event_kinds(id).await,
        ["request.created", "request.reminder", "request.reminder", "request.timed_out"]
    );
}

#[tokio::test]
async fn release_gives_access_back_at_once() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "2h").await;
    app.bob().release(id).await.refused(403);
    assert_eq!(app.alice().release(id).await.ok()["state"], "revoking");
    app.run_due().await;
    assert_eq!(app.state(id).await, "released");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)));
    assert!(app.due(id).await.is_empty(), "expiry and warning were cancelled");
}

#[tokio::test]
async fn approvers_and_the_security_team_can_revoke_others_cannot() {
    let app = TestApp::spawn().await;
    let a = app.active_grant("db", "2h").await;
    app.person("erin").revoke(a, "no").await.refused(403);
    app.bob().revoke(a, "").await.refused(400);
    app.bob().revoke(a, "done with the incident").await.ok();
    app.run_due().await;
    let r = app.request(a).await;
    assert_eq!(r.state.as_str(), "revoked");
    assert_eq!(r.closed_by.as_deref(), Some("bob"));

    let b = app.active_grant("db", "2h").await;
    app.dave().revoke(b, "security review").await.ok();
    app.run_due().await;
    assert_eq!(app.state(b).await, "revoked");
}

#[tokio::test]
async fn revoking_an_approved_grant_before_it_is_applied_cleans_up() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-8 x").await.id();
    app.bob().approve(id).await.ok();
    assert_eq!(app.bob().revoke(id, "wrong person").await.ok()["state"], "revoked");
    assert_eq!(app.due_kinds(id).await, ["cleanup"]);
    app.run_due().await;
    assert!(app.receiver.calls_for("grant", &TestApp::grant_id(id)).is_empty(), "the apply never ran");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)));
    assert!(app.due(id).await.is_empty());
}

#[tokio::test]
async fn an_apply_that_finishes_after_a_revoke_is_undone() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-9 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Delay(std::time::Duration::from_millis(600))]);
    let runner = {
        let scheduler = app.app.scheduler.clone();
        tokio::spawn(async move { scheduler.run_due_now().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.bob().revoke(id, "changed my mind").await.ok();
    runner.await.unwrap().unwrap();
    app.run_due().await;
    assert_eq!(app.state(id).await, "revoked");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)), "the late grant was removed again");
    assert!(app.event_kinds(id).await.contains(&"grant.undone".to_string()));
}

#[tokio::test]
async fn final_states_accept_no_further_action() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-10 x").await.id();
    app.alice().cancel(id).await.ok();
    let before = app.events().await.len();
    app.alice().release(id).await.refused(409);
    app.bob().revoke(id, "x").await.refused(409);
    app.bob().deny(id, "x").await.refused(409);
    app.alice().extend(id, "1h").await.refused(409);
    assert_eq!(app.events().await.len(), before, "refusals other than approvals write nothing");
    app.bob().approve(id).await.refused(409);
    assert_eq!(app.events().await.len(), before + 1, "a refused approval is audited");
}

#[tokio::test]
async fn an_extension_is_approved_like_a_request_and_capped_at_the_max_total() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    let first_expiry = app.request(id).await.expires_at.unwrap();
    let ext = app.alice().extend(id, "2h").await.ok();
    assert_eq!(ext["state"], "pending");
    assert_eq!(ext["extends"], id);
    let ext_id = ext["id"].as_i64().unwrap();
    app.bob().approve(ext_id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(ext_id).await, "extended");
    let r = app.request(id).await;
    assert_eq!(r.expires_at.unwrap(), first_expiry + Duration::hours(2));
    let grants = app.receiver.calls_for("grant", &TestApp::grant_id(id));
    assert_eq!(grants.len(), 2, "the provider is told the new window");
    assert_eq!(grants[1].body["expires_at"], json!(r.expires_at.unwrap()));

    let msg = app.alice().extend(id, "4h").await.refused(400);
    assert!(msg.contains("at most 3h"), "{msg}");
    app.bob().extend(id, "1h").await.refused(403);

    app.after(Duration::hours(3)).await;
    assert_eq!(app.state(id).await, "expired", "expires at the extended time");
}

#[tokio::test]
async fn overlapping_grants_keep_the_shared_access_until_the_last_of_them_ends() {
    let app = TestApp::spawn().await;
    let short = app.active_grant("db", "1h").await;
    let same_role = app.active_grant("db", "2h").await;
    let same_target = app.active_grant("db-ro", "3h").await;
    let still_needed = |id: i64| {
        let revoke = &app.receiver.calls_for("revoke", &TestApp::grant_id(id))[0];
        revoke.body["still_needed"].clone()
    };

    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(short).await, "expired");
    assert_eq!(still_needed(short), json!(true), "the same role is still held by the 2h grant");
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(same_role).await, "expired");
    assert_eq!(still_needed(same_role), json!(true), "another role with the same provider and target is held");
    assert!(app.receiver.holds(&TestApp::grant_id(same_target)));
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(same_target).await, "expired");
    assert_eq!(still_needed(same_target), json!(false), "the last one removes the access");
    let kept = app.events().await.into_iter().find(|e| e.subject == Some(short) && e.kind == "grant.expired").unwrap();
    assert_eq!(kept.details["kept_for_overlapping_grants"], true);
}

#[tokio::test]
async fn only_the_persons_live_grants_of_the_same_provider_and_target_count_as_overlapping() {
    let app = TestApp::spawn().await;
    let first = app.active_grant("db", "1h").await;
    let other_target = app.active_grant("prod", "2h").await;
    let undecided = app.alice().request("db", "2h", "INC-2 later").await.id();
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(first).await, "expired");
    assert_eq!(app.state(other_target).await, "active");
    let revoke = &app.receiver.calls_for("revoke", &TestApp::grant_id(first))[0];
    assert_eq!(
        revoke.body["still_needed"],
        json!(false),
        "not the other target's grant ({other_target}), not the undecided request ({undecided})"
    );
    let kept = app.events().await.into_iter().find(|e| e.subject == Some(first) && e.kind == "grant.expired").unwrap();
    assert_eq!(kept.details["kept_for_overlapping_grants"], false);
}

#[tokio::test]
async fn transient_apply_errors_are_retried_with_backoff() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-11 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Status(503, None), Fault::Status(503, None)]);
    app.run_due().await;
    assert_eq!(app.state(id).await, "approved");
    assert_eq!(app.receiver.calls_for("grant", &TestApp::grant_id(id)).len(), 2, "one inline retry");
    let due = app.due(id).await;
    assert_eq!((due[0].kind.as_str(), due[0].attempts), ("apply", 1));
    assert_eq!(due[0].due_at, app.clock_now() + Duration::seconds(5));
    app.after(Duration::seconds(5)).await;
    assert_eq!(app.state(id).await, "active");
    assert!(app.event_kinds(id).await.contains(&"grant.apply_retry".to_string()));
}

#[tokio::test]
async fn a_permanent_provider_error_fails_the_grant_with_its_message() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-12 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next([Fault::Reject(403, "user alice has no database login".into())]);
    app.run_due().await;
    let r = app.request(id).await;
    assert_eq!(r.state.as_str(), "grant_failed");
    assert_eq!(r.note.as_deref(), Some("HTTP 403: user alice has no database login"));
    assert!(app.due(id).await.is_empty());
}

#[tokio::test]
async fn apply_gives_up_after_the_retry_budget_and_cleans_up() {
    let app = TestApp::spawn().await;
    let id = app.alice().request("db", "1h", "INC-13 x").await.id();
    app.bob().approve(id).await.ok();
    app.receiver.fail_next(std::iter::repeat_n(Fault::Status(500, None), 8));
    for _ in 0..4 {
        app.after(Duration::minutes(15)).await;
    }
    assert_eq!(app.state(id).await, "grant_failed");
    app.after(Duration::minutes(1)).await;
    assert!(app.due(id).await.is_empty(), "the cleanup ran");
}

#[tokio::test]
async fn failed_revokes_are_retried_forever_with_alerts_and_never_dropped() {
    let app = TestApp::spawn().await;
    let id = app.active_grant("db", "1h").await;
    app.receiver.fail_next(std::iter::repeat_n(Fault::Status(502, None), 12));
    app.after(Duration::hours(1)).await;
    assert_eq!(app.state(id).await, "revoking");
    let mut waits = Vec::new();
    for _ in 0..5 {
        let due = app.due(id).await;
        assert_eq!(due.len(), 1, "the revoke stays queued");
        waits.push((due[0].due_at - app.clock_now()).num_seconds());
        app.advance(due[0].due_at - app.clock_now());
        app.run_due().await;
    }
    assert_eq!(waits, [5, 10, 20, 40, 80], "capped exponential backoff");
    assert_eq!(app.state(id).await, "revoking");
    let kinds = app.event_kinds(id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "grant.revoke_failed").count(), 6, "the first try and five retries");
    assert_eq!(kinds.iter().filter(|k| *k == "grant.revoke_alert").count(), 2, "an alert every 3 failures");
    app.after(Duration::minutes(15)).await;
    assert_eq!(app.state(id).await, "expired");
    assert!(!app.receiver.holds(&TestApp::grant_id(id)));
}
