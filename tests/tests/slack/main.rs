//! Slack end to end: signed payloads in Slack's documented shapes hit the real endpoints, the
//! real slack-morphism client talks to a fake Slack Web API on loopback, and every assertion
//! about what people see is made on what reached that fake.

//!
//! `lifecycle`: what requesters and approvers see, from `/elevate` to expiry. `safety`: who may
//! do what, signatures, escaping, identity and Slack's own failures.

mod batches;
mod controls;
mod hardening;
mod home;
mod lifecycle;
mod reminders;
mod replays;
mod safety;
mod scheduled;
mod shortcuts;
mod snapshots;
mod usergroups;

use elevate_tests::TestApp;

/// The standard test app with `[slack]` pointed at a fresh fake Slack.
async fn slack_app() -> TestApp {
    TestApp::builder().slack().spawn().await
}
