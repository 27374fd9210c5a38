//! Who elevate is in AWS: fixed keys or the standard credential chain (see `chain`), optionally
//! exchanged for an assumed role's short-lived keys. Secrets never reach a log line or an error
//! message: `Debug` shows only the first characters of the key id.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Where elevate's base identity comes from, before the optional `assume_role_arn`.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Fixed keys: elevate's secrets file, or tests.
    Static(StaticCredentials),
    /// The standard AWS chain (environment, profiles and SSO, web identity, container endpoint,
    /// EC2 instance metadata), every temporary key refreshed before it expires. No standing keys
    /// needed wherever the platform gives the process a role.
    DefaultChain,
}

/// An access key pair, with a session token for temporary keys.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl StaticCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        StaticCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: session_token.filter(|t| !t.is_empty()),
        }
    }

    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub(crate) fn to_identity(&self) -> aws_smithy_runtime_api::client::identity::Identity {
        aws_credential_types::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "elevate",
        )
        .into()
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &format_args!("{shown}…"))
            .field("secret_access_key", &"<hidden>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Assumed-role keys and when they stop working.
#[derive(Debug, Clone)]
pub(crate) struct Leased {
    pub creds: StaticCredentials,
    pub expires_at: SystemTime,
}

/// Refresh assumed-role keys this long before they expire, so no call is signed with keys
/// that die in flight.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(300);

impl Leased {
    pub fn fresh_at(&self, now: SystemTime) -> bool {
        self.expires_at.duration_since(now).is_ok_and(|left| left > REFRESH_MARGIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c =
            StaticCredentials::new("AKIAEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG", Some("FwoGZXIvYXdzEXAMPLETOKEN".into()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(!shown.contains("FwoG"), "{shown}");
        assert!(!shown.contains("EXAMPLEKEY"), "{shown}");
        assert!(shown.contains("AKIA"), "{shown}");
    }

    #[test]
    fn leased_keys_are_refreshed_before_expiry() {
        let now = SystemTime::now();
        let c = StaticCredentials::new("ASIA", "s", None);
        let lease = |secs| Leased { creds: c.clone(), expires_at: now + Duration::from_secs(secs) };
        assert!(lease(3600).fresh_at(now));
        assert!(!lease(299).fresh_at(now));
        assert!(!Leased { creds: c.clone(), expires_at: now - Duration::from_secs(1) }.fresh_at(now));
    }
}
