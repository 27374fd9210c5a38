//! Discord end to end: interaction payloads in Discord's documented shapes, signed with a fixed
//! Ed25519 key, hit the real endpoint; serenity's real REST client talks to a fake Discord API
//! on loopback, and every assertion about what people see is made on what reached that fake.
//!
//! `lifecycle`: what requesters and approvers see, from `/elevate request` to expiry.
//! `safety`: signatures, who may approve (role-backed groups included), double clicks, mentions,
//! other servers, command registration, and Discord's own failures.

mod batches;
mod controls;
mod hardening;
mod home;
mod lifecycle;
mod reminders;
mod replays;
mod safety;
mod scheduled;
mod snapshots;

use elevate_tests::TestApp;

/// The standard test app with `[discord]` pointed at a fresh fake Discord.
async fn discord_app() -> TestApp {
    TestApp::builder().discord().spawn().await
}
