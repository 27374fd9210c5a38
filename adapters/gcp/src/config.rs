//! The `[providers.NAME]` table for `type = "gcp"`.

use serde::Deserialize;
use std::time::Duration;

/// How elevate reaches Google Cloud. Holds no secrets: a service-account key or an external
/// account configuration is read from the environment variable named by `credentials_env` or
/// the file named by `credentials_file`, so a config file can be shared and reviewed freely.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    /// The bot's provider table carries `type = "gcp"`; accepted and ignored here.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Who elevate is: `service_account_key` (default), `metadata_server` (GCE, GKE workload
    /// identity, Cloud Run) or `external_account` (workload identity federation).
    #[serde(default)]
    pub auth: Option<AuthKind>,
    /// The environment variable (or `ELEVATE_SECRETS_FILE` name) holding the key or external
    /// account JSON.
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// A file holding the key or external account JSON.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// Overrides the key file's `token_uri` (an emulator, a private endpoint).
    #[serde(default)]
    pub token_uri: Option<String>,
    /// Default `http://metadata.google.internal`.
    #[serde(default)]
    pub metadata_endpoint: Option<String>,
    /// Default `https://cloudresourcemanager.googleapis.com`.
    #[serde(default)]
    pub resource_manager_endpoint: Option<String>,
    /// Default `https://cloudidentity.googleapis.com`.
    #[serde(default)]
    pub cloud_identity_endpoint: Option<String>,
    /// Per HTTP attempt; default `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Attempts per call for 429, 5xx and timeouts; default 4. After that the failure goes to
    /// the scheduler, which retries later with its own backoff.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// First backoff between attempts, doubled each time (with jitter); default `200ms`.
    #[serde(default)]
    pub retry_base: Option<String>,
    /// Longest `Retry-After` waited for inside a call; longer hints go to the scheduler.
    /// Default `5s`.
    #[serde(default)]
    pub max_retry_wait: Option<String>,
    /// Read-modify-write rounds of one IAM policy when others keep changing it (409 ABORTED);
    /// default 5.
    #[serde(default)]
    pub max_policy_rounds: Option<u32>,
}

/// Where elevate's Google identity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    ServiceAccountKey,
    MetadataServer,
    ExternalAccount,
}

impl AuthKind {
    /// Whether this kind reads a JSON secret (`credentials_env` / `credentials_file`).
    pub fn needs_credentials(self) -> bool {
        !matches!(self, AuthKind::MetadataServer)
    }
}

/// Settings after parsing, with defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub auth: AuthKind,
    pub token_uri: Option<String>,
    pub metadata: String,
    pub resource_manager: String,
    pub cloud_identity: String,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub max_retry_wait: Duration,
    pub max_policy_rounds: u32,
}

impl GcpConfig {
    /// The auth kind, the default filled in.
    pub fn auth_kind(&self) -> AuthKind {
        self.auth.unwrap_or(AuthKind::ServiceAccountKey)
    }

    /// Checks every setting; errors name the field. Needs no secret, so `elevate check` can
    /// run it anywhere.
    pub fn check(&self) -> Result<(), String> {
        self.settings().map(|_| ())
    }

    pub(crate) fn settings(&self) -> Result<Settings, String> {
        let auth = self.auth_kind();
        if auth.needs_credentials() && self.credentials_env.is_none() && self.credentials_file.is_none() {
            let what = if auth == AuthKind::ExternalAccount { "external account JSON" } else { "service-account key" };
            return Err(format!("gcp provider: set credentials_env or credentials_file (where the {what} is)"));
        }
        if !auth.needs_credentials() && (self.credentials_env.is_some() || self.credentials_file.is_some()) {
            return Err("gcp provider: auth = \"metadata_server\" takes no credentials_env or credentials_file".into());
        }
        if self.token_uri.is_some() && auth != AuthKind::ServiceAccountKey {
            return Err("gcp provider: token_uri applies to auth = \"service_account_key\" only (an external account names its own token_url)".into());
        }
        let max_attempts = self.max_attempts.unwrap_or(4);
        if max_attempts == 0 {
            return Err("gcp provider: max_attempts must be at least 1".into());
        }
        let max_policy_rounds = self.max_policy_rounds.unwrap_or(5);
        if max_policy_rounds == 0 {
            return Err("gcp provider: max_policy_rounds must be at least 1".into());
        }
        Ok(Settings {
            auth,
            token_uri: self.token_uri.as_deref().map(|u| url("token_uri", u)).transpose()?,
            metadata: url(
                "metadata_endpoint",
                self.metadata_endpoint.as_deref().unwrap_or("http://metadata.google.internal"),
            )?,
            resource_manager: url(
                "resource_manager_endpoint",
                self.resource_manager_endpoint.as_deref().unwrap_or("https://cloudresourcemanager.googleapis.com"),
            )?,
            cloud_identity: url(
                "cloud_identity_endpoint",
                self.cloud_identity_endpoint.as_deref().unwrap_or("https://cloudidentity.googleapis.com"),
            )?,
            timeout: dur(&self.timeout, "timeout", Duration::from_secs(10))?,
            max_attempts,
            retry_base: dur(&self.retry_base, "retry_base", Duration::from_millis(200))?,
            max_retry_wait: dur(&self.max_retry_wait, "max_retry_wait", Duration::from_secs(5))?,
            max_policy_rounds,
        })
    }
}

fn url(field: &str, u: &str) -> Result<String, String> {
    let u = u.trim().trim_end_matches('/');
    if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() <= "https://".len() {
        return Err(format!(
            "gcp provider: {field} `{u}` must be a URL starting with https:// (or http:// for an emulator)"
        ));
    }
    Ok(u.to_string())
}

/// `250ms`, `10s`, `2m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration (like 250ms, 10s, 2m)"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        _ => return Err(format!("`{s}` is not a duration (like 250ms, 10s, 2m)")),
    };
    Ok(Duration::from_millis(ms))
}

fn dur(v: &Option<String>, field: &str, default: Duration) -> Result<Duration, String> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| format!("gcp provider: {field}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GcpConfig, String> {
        toml::from_str::<GcpConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_provider_needs_somewhere_to_read_the_key() {
        let c = parse("type = \"gcp\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("credentials_env or credentials_file"));
        let c = parse("type = \"gcp\"\ncredentials_env = \"GCP_KEY\"\ntimeout = \"5s\"\n").unwrap();
        let s = c.settings().unwrap();
        assert_eq!((s.auth, s.timeout), (AuthKind::ServiceAccountKey, Duration::from_secs(5)));
        assert_eq!(s.resource_manager, "https://cloudresourcemanager.googleapis.com");
    }

    #[test]
    fn the_metadata_server_takes_no_secret_and_endpoints_are_checked() {
        let c = parse("auth = \"metadata_server\"\nmetadata_endpoint = \"http://127.0.0.1:9/\"\n").unwrap();
        assert_eq!(c.settings().unwrap().metadata, "http://127.0.0.1:9");
        let c = parse("auth = \"metadata_server\"\ncredentials_env = \"X\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("takes no credentials_env"));
        let c = parse("credentials_env = \"X\"\ncloud_identity_endpoint = \"cloudidentity\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("cloud_identity_endpoint"));
        let c = parse("auth = \"external_account\"\ncredentials_file = \"/x\"\ntoken_uri = \"http://x\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("token_uri"));
    }

    #[test]
    fn typos_and_unknown_auth_kinds_are_refused() {
        assert!(parse("credentials_env = \"X\"\ncredential_file = \"y\"\n").unwrap_err().contains("credential_file"));
        assert!(parse("auth = \"api_key\"\n").unwrap_err().contains("api_key"));
        let c = parse("credentials_env = \"X\"\nmax_attempts = 0\n").unwrap();
        assert!(c.check().unwrap_err().contains("max_attempts"));
        let c = parse("credentials_env = \"X\"\nretry_base = \"fast\"\n").unwrap();
        assert!(c.check().unwrap_err().contains("retry_base"));
    }
}
