//! The manifest asks for exactly the scopes of the Web API methods elevate calls: a scope the
//! code needs but the manifest lacks fails in production with `missing_scope`; one the
//! manifest asks for but nothing uses is access a security tool should not hold.

use std::collections::BTreeSet;

const MANIFEST: &str = include_str!("../manifest.yml");
const API: &str = include_str!("../src/api.rs");

/// The bot scopes each method needs, from Slack's Web API reference.
fn scopes_of(method: &str) -> &'static [&'static str] {
    match method {
        "chat.postMessage" | "chat.update" | "chat.postEphemeral" => &["chat:write"],
        "conversations.open" => &["im:write"],
        // users.info, and the email on the profile it returns (linking by email).
        "users.info" => &["users:read", "users:read.email"],
        "usergroups.users.list" => &["usergroups:read"],
        "views.open" | "views.publish" => &[],
        other => panic!("no scope known for `{other}`: add it here from Slack's reference"),
    }
}

/// The methods `api.rs` calls: the literal given to its `call!` / `call_waiting!` macros.
fn methods_called() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for marker in ["call!(self, \"", "call_waiting!(self, \""] {
        for (at, _) in API.match_indices(marker) {
            let rest = &API[at + marker.len()..];
            out.insert(rest[..rest.find('"').expect("closing quote")].to_string());
        }
    }
    out
}

/// The `oauth_config.scopes.bot` list of the manifest.
fn manifest_scopes() -> BTreeSet<String> {
    let mut lines = MANIFEST.lines().skip_while(|l| l.trim() != "bot:").skip(1);
    let mut out = BTreeSet::new();
    for line in lines.by_ref() {
        let Some(item) = line.trim().strip_prefix("- ") else { break };
        out.insert(item.split('#').next().unwrap_or("").trim().to_string());
    }
    out
}

#[test]
fn the_manifest_asks_for_exactly_the_scopes_the_code_uses() {
    let called = methods_called();
    assert!(called.contains("chat.postMessage") && called.len() >= 6, "methods found: {called:?}");
    let mut needed: BTreeSet<String> = called.iter().flat_map(|m| scopes_of(m)).map(|s| s.to_string()).collect();
    needed.insert("commands".into()); // the /elevate slash command
    assert_eq!(manifest_scopes(), needed);
}

/// The events elevate acts on: what `home.rs` matches.
const HANDLED_EVENTS: &[&str] = &["app_home_opened"];

#[test]
fn the_manifest_subscribes_to_exactly_the_events_elevate_acts_on() {
    let handler = include_str!("../src/home.rs");
    let mut lines = MANIFEST.lines().skip_while(|l| l.trim() != "bot_events:").skip(1);
    let mut subscribed = BTreeSet::new();
    for line in lines.by_ref() {
        let Some(item) = line.trim().strip_prefix("- ") else { break };
        subscribed.insert(item.split('#').next().unwrap_or("").trim().to_string());
    }
    let handled: BTreeSet<String> = HANDLED_EVENTS.iter().map(|e| e.to_string()).collect();
    assert_eq!(subscribed, handled);
    for e in HANDLED_EVENTS {
        assert!(handler.contains(&format!("\"{e}\"")), "home.rs does not handle {e}");
    }
    for line in [
        "home_tab_enabled: true",
        "messages_tab_enabled: true",
        "messages_tab_read_only_enabled: true",
        "- command: /elevate",
    ] {
        assert!(MANIFEST.contains(line), "manifest lacks `{line}`");
    }
}

#[test]
fn every_shortcut_of_the_manifest_is_one_elevate_handles() {
    let codes = include_str!("../src/encode.rs");
    let ids: Vec<&str> =
        MANIFEST.lines().filter_map(|l| l.trim().strip_prefix("callback_id:")).map(str::trim).collect();
    assert_eq!(ids, ["elevate_request_access", "elevate_show_request"]);
    for id in ids {
        assert!(codes.contains(&format!("\"{id}\"")), "encode.rs has no constant for shortcut {id}");
    }
}
