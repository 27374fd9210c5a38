//! A role's `target` for a `postgres-roles` provider, and the identifiers it names.

use serde_json::Value;
use std::fmt;

/// A PostgreSQL role or login name, checked so that it can always be quoted as one identifier:
/// never empty, at most 63 bytes (longer names are silently truncated by the server, so a grant
/// could land on another role), no NUL or control characters. Quoting (`"…"` with `"` doubled)
/// then makes any other character, quotes and semicolons included, part of the name, never SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ident(String);

/// PostgreSQL's identifier limit (NAMEDATALEN − 1).
const MAX_IDENT_BYTES: usize = 63;

impl Ident {
    pub fn parse(what: &str, s: &str) -> Result<Ident, String> {
        if s.is_empty() {
            return Err(format!("the {what} name is empty"));
        }
        if s.len() > MAX_IDENT_BYTES {
            return Err(format!(
                "the {what} name `{}…` is longer than PostgreSQL's {MAX_IDENT_BYTES} bytes",
                s.chars().take(20).collect::<String>()
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(format!("the {what} name {s:?} contains a control character"));
        }
        // Keywords the grammar reads instead of a role name where one is expected; quoted they
        // are refused by the server anyway, with a less helpful message.
        if ["public", "current_user", "session_user", "current_role", "none"].contains(&s.to_lowercase().as_str()) {
            return Err(format!("`{s}` is not a {what} elevate can grant or grant to"));
        }
        Ok(Ident(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as one quoted SQL identifier.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0.replace('"', "\"\""))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `target = { role = "app_write", terminate_sessions = true }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The role whose membership is the grant.
    pub role: Ident,
    /// At revoke, end the login's open sessions too: a session that already switched to the
    /// role (`SET ROLE`) keeps its privileges after the membership is revoked, and one that
    /// inherited them keeps cached ones. Off by default because it ends *every* session of the
    /// login, including ones that never used the role.
    pub terminate_sessions: bool,
}

impl Target {
    pub fn parse(v: &Value) -> Result<Target, String> {
        let (role, terminate_sessions) = crate::common::parse_target(v, "postgres-roles", |s| Ident::parse("role", s))?;
        Ok(Target { role, terminate_sessions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_quoted_as_one_identifier_whatever_they_contain() {
        let evil = Ident::parse("role", "x\"; DROP TABLE t; --").unwrap();
        assert_eq!(evil.quoted(), "\"x\"\"; DROP TABLE t; --\"");
        assert_eq!(Ident::parse("role", "App_Write").unwrap().quoted(), "\"App_Write\"");
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert!(Ident::parse("role", "").unwrap_err().contains("empty"));
        assert!(Ident::parse("role", &"a".repeat(64)).unwrap_err().contains("63 bytes"));
        assert!(Ident::parse("login", "bob\0").unwrap_err().contains("control character"));
        assert!(Ident::parse("role", "PUBLIC").unwrap_err().contains("not a role"));
        assert!(Ident::parse("role", &"é".repeat(31)).is_ok(), "62 bytes");
    }

    #[test]
    fn targets_parse_with_clear_errors() {
        let t = Target::parse(&json!({ "role": "app_write", "terminate_sessions": true })).unwrap();
        assert_eq!((t.role.as_str(), t.terminate_sessions), ("app_write", true));
        assert!(!Target::parse(&json!({ "role": "r" })).unwrap().terminate_sessions);
        assert!(Target::parse(&json!({})).unwrap_err().contains("missing `role`"));
        assert!(Target::parse(&json!({ "role": 3 })).unwrap_err().contains("must be a string"));
        assert!(Target::parse(&json!({ "role": "r", "db": "x" })).unwrap_err().contains("unknown key `db`"));
        assert!(
            Target::parse(&json!({ "role": "r", "terminate_sessions": "yes" })).unwrap_err().contains("true or false")
        );
        assert!(Target::parse(&json!("r")).unwrap_err().contains("must be a table"));
    }
}
