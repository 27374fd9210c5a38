//! `elevate request … --wait`: follows a request until it is decided, printing each change, so
//! that a script (a deploy step in CI) can wait for access and know from the exit code what
//! happened.

use super::{ServerArgs, client};
use serde_json::Value;
use std::time::Duration;

/// How often the request is read again.
const POLL: Duration = Duration::from_secs(2);

/// Exit codes of `--wait`, documented in `--help` and the README.
pub const ACTIVE: i32 = 0;
pub const DENIED: i32 = 3;
pub const TIMED_OUT: i32 = 4;
pub const ENDED: i32 = 5;
pub const FAILED: i32 = 6;

/// Waits for the request in `created` (the API's answer to the request) to become active,
/// or to end without access; prints each state it passes through.
pub async fn until_decided(server: &ServerArgs, created: &Value) -> i32 {
    let id = created["id"].as_i64().unwrap_or(0);
    let mut last = String::new();
    let mut current = created.clone();
    loop {
        let state = state_of(&current);
        if state != last {
            client::print(server, &current);
            last = state.clone();
        }
        match state.as_str() {
            "active" => return ACTIVE,
            "denied" => return DENIED,
            "timed_out" => return TIMED_OUT,
            "grant_failed" => return FAILED,
            "cancelled" | "revoked" | "expired" | "released" => return ENDED,
            _ => {}
        }
        tokio::time::sleep(POLL).await;
        current = match client::call(server, reqwest::Method::GET, &format!("/api/v1/requests/{id}"), None).await {
            Ok(v) => v,
            Err(code) => return code,
        };
    }
}

/// The state `--wait` goes by. For a request of several roles (`members`): `active` once every
/// role is, the first role's end if one ended without access (the others end with it), and
/// otherwise every role's state, so that each change is printed.
fn state_of(v: &Value) -> String {
    let Some(members) = v["members"].as_array().filter(|m| !m.is_empty()) else {
        return v["state"].as_str().unwrap_or("?").to_string();
    };
    let states: Vec<&str> = members.iter().map(|m| m["state"].as_str().unwrap_or("?")).collect();
    if states.iter().all(|s| *s == "active") {
        return "active".into();
    }
    let ended = ["denied", "timed_out", "grant_failed", "cancelled", "revoked", "expired", "released"];
    match states.iter().find(|s| ended.contains(s)) {
        Some(s) => s.to_string(),
        None => states.join(","),
    }
}

#[cfg(test)]
mod tests {
    use super::state_of;
    use serde_json::json;

    #[test]
    fn several_roles_are_active_together_or_end_together() {
        let of = |states: &[&str]| json!({ "state": states[0], "members": states.iter().map(|s| json!({ "state": s })).collect::<Vec<_>>() });
        assert_eq!(state_of(&json!({ "state": "pending" })), "pending");
        assert_eq!(state_of(&of(&["active", "approved"])), "active,approved");
        assert_eq!(state_of(&of(&["active", "active"])), "active");
        assert_eq!(state_of(&of(&["waiting", "timed_out"])), "timed_out");
    }
}
