//! What the `postgres-roles` and `mysql-roles` providers share: their settings' checks, and a
//! row of elevate's bookkeeping table as reconciliation sees it.

use elevate_core::{
    PersonId, RequestId, RoleName,
    ports::{GrantSpec, ListedGrant},
    time::from_millis,
};
use serde_json::{Value, json};
use std::{collections::BTreeMap, time::Duration};

/// One source for the connection URL: `url_env` or `url_file`.
pub(crate) fn check_url_source(url_env: &Option<String>, url_file: &Option<String>) -> Result<(), String> {
    match (url_env, url_file) {
        (Some(_), Some(_)) => Err("set either url_env or url_file, not both".into()),
        (None, None) => Err("set url_env (or url_file): where elevate reads its connection URL for this server".into()),
        _ => Ok(()),
    }
}

/// The principals key naming a person's login, `default` unless set.
pub(crate) fn login_principal(set: &Option<String>, default: &str) -> Result<String, String> {
    let key = set.clone().unwrap_or_else(|| default.into());
    if key.trim().is_empty() {
        return Err("login_principal is empty".into());
    }
    Ok(key)
}

/// The connect (and statement or lock) timeout: 10 s unless set.
pub(crate) fn timeout(set: &Option<String>) -> Result<Duration, String> {
    match set {
        None => Ok(Duration::from_secs(10)),
        Some(t) => {
            let d = elevate_core::GrantDuration::parse(t).map_err(|e| format!("timeout: {e}"))?;
            Ok(Duration::from_secs(d.secs() as u64))
        }
    }
}

/// A role's `target` for either provider: `{ role = "…", terminate_sessions = true }`, the role
/// name checked by `role`. `kind` names the provider in messages.
pub(crate) fn parse_target<R>(
    v: &Value,
    kind: &str,
    role: impl FnOnce(&str) -> Result<R, String>,
) -> Result<(R, bool), String> {
    let Some(t) = v.as_object() else {
        return Err(format!("a {kind} target must be a table: {{ role = \"…\" }}"));
    };
    if let Some(k) = t.keys().find(|k| !["role", "terminate_sessions"].contains(&k.as_str())) {
        return Err(format!("unknown key `{k}` in a {kind} target (known: role, terminate_sessions)"));
    }
    let role = match t.get("role") {
        Some(Value::String(s)) => role(s)?,
        Some(_) => return Err("`role` must be a string: the database role to grant".into()),
        None => return Err("missing `role`: the database role to grant".into()),
    };
    let terminate_sessions = match t.get("terminate_sessions") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`terminate_sessions` must be true or false".into()),
    };
    Ok((role, terminate_sessions))
}

/// How a provider names what it grants, in `list`'s descriptions.
pub(crate) struct Words {
    /// "membership of `app_write` for login `alice`".
    pub what: fn(&str, &str) -> String,
    /// Who holds it: "login", "account".
    pub holder: &'static str,
    /// What `terminate_sessions` ends: "sessions", "connections".
    pub sessions: &'static str,
}

/// One row of elevate's bookkeeping table (times in milliseconds).
#[derive(sqlx::FromRow)]
pub(crate) struct GrantRow {
    pub grant_id: String,
    pub role_name: String,
    pub login: String,
    pub elevate_role: String,
    pub person: String,
    pub by_hand: bool,
    pub terminate_sessions: bool,
    pub ended: bool,
    pub held_over: bool,
    pub granted_at: i64,
    pub expires_at: i64,
}

impl GrantRow {
    /// The row as `list` reports it: enough for a drift revoke to act on, and a description.
    pub(crate) fn listed(self, login_principal: &str, words: &Words) -> ListedGrant {
        let (granted, expires) = (from_millis(self.granted_at), from_millis(self.expires_at));
        let (role, login) = (self.role_name, self.login);
        let mut description = format!("{} (window ends {})", (words.what)(&role, &login), expires.to_rfc3339());
        if self.by_hand {
            description.push_str(&format!("; the {} held it before elevate, so it stays", words.holder));
        }
        if self.held_over {
            description.push_str("; its grant ended, kept for another grant being applied");
        }
        if self.ended {
            description.push_str(&format!("; revoked, its {} still to be ended", words.sessions));
        }
        let unknown_role = || RoleName::parse("unknown").expect("constant name");
        let unknown_person = || PersonId::parse("unknown").expect("constant name");
        let spec = GrantSpec {
            request: RequestId::from_grant_id(&self.grant_id).unwrap_or(RequestId(0)),
            role: RoleName::parse(&self.elevate_role).unwrap_or_else(|_| unknown_role()),
            person: PersonId::parse(&self.person).unwrap_or_else(|_| unknown_person()),
            principals: BTreeMap::from([(login_principal.to_string(), login.clone())]),
            target: json!({ "role": role, "terminate_sessions": self.terminate_sessions }),
            starts_at: granted,
            expires_at: expires,
            handle: Some(json!({ "role": role, "login": login, "by_hand": self.by_hand })),
            grant_id: self.grant_id.clone(),
        };
        ListedGrant { grant_id: self.grant_id, spec: Some(spec), description, holder: None }
    }
}
