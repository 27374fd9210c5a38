//! Provider error texts are kept in audit events and shown in chat (the audit channel, the
//! requester's messages): a webhook URL with a token in its query string, a password in a URL
//! or a bearer token quoted by a receiver must not travel with them.

use elevate_tests::{Fault, TestApp, on_both_dbs, policy};

const QUERY_TOKEN: &str = "s3cr3t-query-token";
const URL_PASSWORD: &str = "pw-in-the-url";

fn all_event_text(events: &[elevate_core::audit::AuditEvent]) -> String {
    events.iter().map(|e| e.details.to_string()).collect::<Vec<_>>().join("\n")
}

on_both_dbs!(an_unreachable_webhook_is_named_without_its_credentials, |db| async move {
    // Port 9 (discard) is closed on loopback: every call fails, and reqwest's error would quote
    // the URL; elevate drops it from connection errors and scrubs any that remain.
    let url = format!("http://elevate:{URL_PASSWORD}@127.0.0.1:9/hook?token={QUERY_TOKEN}");
    let app = TestApp::builder().db(db).config(&policy::config(&url)).spawn().await;
    let id = app.alice().request("db", "1h", "INC-1 look").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    let events = app.events().await;
    let retry = events.iter().find(|e| e.kind == "grant.apply_retry").expect("the apply failed and is retried");
    let error = retry.details["error"].as_str().unwrap();
    assert!(error.contains("cannot reach the receiver"), "{error}");
    let text = all_event_text(&events);
    assert!(!text.contains(QUERY_TOKEN) && !text.contains(URL_PASSWORD), "{text}");
});

on_both_dbs!(a_receiver_quoting_a_bearer_token_is_recorded_without_it, |db| async move {
    let app = TestApp::builder().db(db).spawn().await;
    app.receiver.fail_next([Fault::Reject(403, "Authorization: Bearer leaked-bearer-token is not allowed".into())]);
    let id = app.alice().request("db", "1h", "INC-2 look").await.id();
    app.bob().approve(id).await.ok();
    app.run_due().await;
    assert_eq!(app.state(id).await, "grant_failed");
    let text = all_event_text(&app.events().await);
    assert!(text.contains("Bearer ***"), "the refusal is kept, without the token: {text}");
    assert!(!text.contains("leaked-bearer-token"), "{text}");
});
