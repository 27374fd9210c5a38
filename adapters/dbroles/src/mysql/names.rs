//! Names a `mysql-roles` provider puts into SQL: roles and accounts (`user@host`), and the
//! role's `target`.
//!
//! MariaDB and MySQL read account names as string literals (`'alice'@'%'`) and role names as
//! identifiers (`` `app_write` ``), and whether a backslash escapes in a string literal depends on
//! the server's `sql_mode`. Rather than quote for every mode, names that could need escaping
//! are refused: no quote, backquote, backslash or control character. Everything else is part of
//! the name, never SQL.

use serde_json::Value;
use std::fmt;

/// MariaDB's limit on user names (MySQL's is 32; a longer one is refused by the server with
/// its own message).
const MAX_USER: usize = 80;
/// Both servers' limit on host names in accounts.
const MAX_HOST: usize = 255;
/// Role names: MariaDB allows 128 characters.
const MAX_ROLE: usize = 128;

fn check(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if s.chars().count() > max {
        return Err(format!(
            "the {what} `{}…` is longer than {max} characters",
            s.chars().take(20).collect::<String>()
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || ['\'', '"', '`', '\\'].contains(c)) {
        return Err(format!("the {what} {s:?} contains {c:?}, which elevate does not put into SQL"));
    }
    Ok(())
}

/// A MariaDB/MySQL role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlRole(String);

impl MysqlRole {
    pub fn parse(s: &str) -> Result<MysqlRole, String> {
        check("role name", s, MAX_ROLE)?;
        if ["public", "none", "current_role", "current_user"].contains(&s.to_lowercase().as_str()) {
            return Err(format!("`{s}` is not a role elevate can grant"));
        }
        Ok(MysqlRole(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As an identifier, which both servers read as the role (MySQL: the role `name`@`%`).
    pub fn sql(&self) -> String {
        format!("`{}`", self.0)
    }
}

impl fmt::Display for MysqlRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An account, `user@host`; a principal without `@` means any host (`%`), as `CREATE USER`
/// without a host does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub host: String,
}

impl Account {
    pub fn parse(s: &str) -> Result<Account, String> {
        let (user, host) = match s.rsplit_once('@') {
            Some((u, h)) => (u, h),
            None => (s, "%"),
        };
        check("login's user name", user, MAX_USER)?;
        check("login's host", host, MAX_HOST)?;
        Ok(Account { user: user.to_string(), host: host.to_string() })
    }

    /// As `'user'@'host'`.
    pub fn sql(&self) -> String {
        format!("'{}'@'{}'", self.user, self.host)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// `target = { role = "app_write", terminate_sessions = true }`.
#[derive(Debug, Clone, PartialEq)]
pub struct MysqlTarget {
    pub role: MysqlRole,
    /// At revoke, end the login's open connections: a session that ran `SET ROLE` keeps the
    /// role's privileges after the role is revoked. Off by default because it ends every
    /// connection of the user name.
    pub terminate_sessions: bool,
}

impl MysqlTarget {
    pub fn parse(v: &Value) -> Result<MysqlTarget, String> {
        let (role, terminate_sessions) = crate::common::parse_target(v, "mysql-roles", MysqlRole::parse)?;
        Ok(MysqlTarget { role, terminate_sessions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accounts_default_to_any_host_and_quote_as_literals() {
        assert_eq!(Account::parse("alice").unwrap().sql(), "'alice'@'%'");
        assert_eq!(Account::parse("alice@10.0.%").unwrap().sql(), "'alice'@'10.0.%'");
        assert_eq!(Account::parse("a@b@localhost").unwrap(), Account { user: "a@b".into(), host: "localhost".into() });
    }

    #[test]
    fn names_that_would_need_escaping_are_refused_with_the_reason() {
        assert!(Account::parse("bob'; DROP USER root; --").unwrap_err().contains("'\\''"));
        assert!(Account::parse("bob\\").unwrap_err().contains("does not put into SQL"));
        assert!(MysqlRole::parse("app`write").unwrap_err().contains("'`'"));
        assert!(MysqlRole::parse("").unwrap_err().contains("empty"));
        assert!(MysqlRole::parse("PUBLIC").unwrap_err().contains("not a role"));
        assert!(Account::parse(&"a".repeat(81)).unwrap_err().contains("80 characters"));
        assert!(Account::parse("@localhost").unwrap_err().contains("user name is empty"));
    }

    #[test]
    fn targets_parse_with_clear_errors() {
        let t = MysqlTarget::parse(&json!({ "role": "app_write", "terminate_sessions": true })).unwrap();
        assert_eq!((t.role.sql().as_str(), t.terminate_sessions), ("`app_write`", true));
        assert!(MysqlTarget::parse(&json!({})).unwrap_err().contains("missing `role`"));
        assert!(MysqlTarget::parse(&json!({ "role": "r", "db": 1 })).unwrap_err().contains("unknown key `db`"));
        assert!(MysqlTarget::parse(&json!("r")).unwrap_err().contains("must be a table"));
    }
}
