//! Identifiers. Each is a validated newtype so that a string from a chat payload or an HTTP body
//! cannot reach the policy or the store without having been checked once, at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The number of a request, shown to people as `#41`. Sequential per installation: people read
/// it aloud in incident channels, so it is short. It carries no authority: a button holds only
/// this number, and who may act on it is decided when the click arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub i64);

impl RequestId {
    /// Parses `41` or `#41`, as people type it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let digits = s.trim().trim_start_matches('#');
        match digits.parse::<i64>() {
            Ok(n) if n > 0 => Ok(RequestId(n)),
            _ => Err(format!("`{s}` is not a request number (expected something like 41 or #41)")),
        }
    }

    /// The provider-facing grant id. Stable for the life of the request, so that every provider
    /// call about this grant is idempotent on it (a retried grant finds what the first created).
    pub fn grant_id(self) -> String {
        format!("elevate-{}", self.0)
    }

    /// Inverse of [`RequestId::grant_id`], for what a provider's `list` returns.
    pub fn from_grant_id(grant_id: &str) -> Option<Self> {
        grant_id.strip_prefix("elevate-").and_then(|n| n.parse::<i64>().ok()).filter(|n| *n > 0).map(RequestId)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A request of several roles (`/elevate db-admin,logs-read 2h …`, or a bundle) is one row per
/// role, so that each role keeps its own approvals, grant, expiry and revoke; the rows share a
/// batch: the number of the first of them, which is the number people see for the whole
/// request and the one its card's buttons carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub RequestId);

impl BatchId {
    /// The request whose number the batch bears (its first role).
    pub fn lead(self) -> RequestId {
        self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Names are lower-case ASCII letters, digits, `-`, `_` and `.`, 1 to 64 long, so
            /// that they are safe in chat, in URLs, in provider resource names and in logs.
            pub fn parse(s: &str) -> Result<Self, String> {
                let ok = !s.is_empty()
                    && s.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
                if ok {
                    Ok(Self(s.to_string()))
                } else {
                    Err(format!(
                        concat!("`{}` is not a valid ", $what, " name: use 1 to 64 lower-case letters, digits, '-', '_' or '.'"),
                        s.chars().take(80).collect::<String>()
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A person known to the policy. Chat identities and cloud principals hang off it; the
    /// person, not the chat account, is who requests and approves.
    PersonId,
    "person"
);
name_type!(
    /// A named set of persons, possibly backed by a Discord role or a Slack user group.
    GroupName,
    "group"
);
name_type!(
    /// Something that can be requested: a provider, a target, durations and approval rules.
    RoleName,
    "role"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_parse_as_people_type_them() {
        assert_eq!(RequestId::parse("#41"), Ok(RequestId(41)));
        assert_eq!(RequestId::parse(" 7 "), Ok(RequestId(7)));
        assert!(RequestId::parse("0").is_err());
        assert!(RequestId::parse("-3").is_err());
        assert!(RequestId::parse("abc").is_err());
    }

    #[test]
    fn grant_ids_round_trip() {
        let id = RequestId(12);
        assert_eq!(RequestId::from_grant_id(&id.grant_id()), Some(id));
        assert_eq!(RequestId::from_grant_id("someone-else-12"), None);
    }

    #[test]
    fn names_reject_what_is_unsafe_to_echo() {
        assert!(RoleName::parse("prod-db.admin_1").is_ok());
        assert!(RoleName::parse("Prod").is_err());
        assert!(RoleName::parse("").is_err());
        assert!(RoleName::parse("a b").is_err());
        assert!(RoleName::parse("<!channel>").is_err());
        assert!(RoleName::parse(&"a".repeat(65)).is_err());
    }
}
