//! Who elevate is in Google Cloud, and its access tokens. No token is made here: a
//! service-account key goes through `gcp_auth` (the JWT-bearer grant to the key's `token_uri`,
//! signed with ring), the metadata server and external accounts through Google's own
//! `google-cloud-auth`. Both cache the token and fetch a new one before it expires; a token that
//! Google refuses anyway (401: revoked, or a clock that disagrees) makes elevate drop the cache
//! and start again (`reset`).
//!
//! Secrets never reach a log line or an error: `Debug` shows the kind only, and errors of the
//! auth crates are reduced to their own text, which names no key material.

use crate::config::{AuthKind, Settings};
use elevate_core::ports::ProviderError;
use gcp_auth::TokenProvider;
use std::{fmt, sync::Arc};
use tokio::sync::Mutex;

/// The scope every call needs: Resource Manager's IAM methods and Cloud Identity's groups both
/// accept it; what elevate may do is bounded by its roles, not by the scope.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where elevate's identity comes from, with the secret it needs.
#[derive(Clone)]
pub enum Credentials {
    /// The JSON of a service-account key (as downloaded from the console).
    ServiceAccountKey(String),
    /// The metadata server of the machine or pod elevate runs on.
    MetadataServer,
    /// The JSON of an external account configuration (workload identity federation).
    ExternalAccount(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::ServiceAccountKey(_) => "ServiceAccountKey(<hidden>)",
            Credentials::MetadataServer => "MetadataServer",
            Credentials::ExternalAccount(_) => "ExternalAccount(<hidden>)",
        })
    }
}

impl Credentials {
    pub fn kind(&self) -> AuthKind {
        match self {
            Credentials::ServiceAccountKey(_) => AuthKind::ServiceAccountKey,
            Credentials::MetadataServer => AuthKind::MetadataServer,
            Credentials::ExternalAccount(_) => AuthKind::ExternalAccount,
        }
    }
}

/// A built token source.
enum Source {
    Key(Arc<gcp_auth::CustomServiceAccount>),
    Google(google_cloud_auth::credentials::AccessTokenCredentials),
}

/// Hands out access tokens; cheap to share.
pub(crate) struct Auth {
    credentials: Credentials,
    token_uri: Option<String>,
    metadata: String,
    source: Mutex<Option<Source>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth").field("credentials", &self.credentials).finish()
    }
}

impl Auth {
    /// Checks the secret's shape at start-up (so a wrong file shows at once, not on the first
    /// grant); the token source itself is built on first use, inside the runtime.
    pub fn new(credentials: Credentials, settings: &Settings) -> Result<Auth, String> {
        if credentials.kind() != settings.auth {
            return Err(format!(
                "gcp provider: auth is {:?} but {:?} credentials were given",
                settings.auth,
                credentials.kind()
            ));
        }
        match &credentials {
            Credentials::ServiceAccountKey(json) => {
                let v: serde_json::Value = serde_json::from_str(json)
                    .map_err(|_| "gcp provider: the service-account key is not JSON".to_string())?;
                for field in ["client_email", "private_key", "token_uri"] {
                    let overridden = field == "token_uri" && settings.token_uri.is_some();
                    if !v[field].is_string() && !overridden {
                        return Err(format!("gcp provider: the service-account key has no `{field}`"));
                    }
                }
                if v["type"] != "service_account" {
                    return Err("gcp provider: the key's `type` is not \"service_account\"".into());
                }
            }
            Credentials::ExternalAccount(json) => {
                let v: serde_json::Value = serde_json::from_str(json)
                    .map_err(|_| "gcp provider: the external account configuration is not JSON".to_string())?;
                if v["type"] != "external_account" {
                    return Err(
                        "gcp provider: the external account configuration's `type` is not \"external_account\"".into(),
                    );
                }
            }
            Credentials::MetadataServer => {}
        }
        Ok(Auth {
            credentials,
            token_uri: settings.token_uri.clone(),
            metadata: settings.metadata.clone(),
            source: Mutex::new(None),
        })
    }

    fn build(&self) -> Result<Source, ProviderError> {
        let bad = |e: String| ProviderError::permanent("CredentialsError", e);
        Ok(match &self.credentials {
            Credentials::ServiceAccountKey(json) => {
                let mut v: serde_json::Value =
                    serde_json::from_str(json).map_err(|_| bad("the service-account key is not JSON".into()))?;
                if let Some(uri) = &self.token_uri {
                    v["token_uri"] = serde_json::Value::String(uri.clone());
                }
                let key = gcp_auth::CustomServiceAccount::from_json(&v.to_string())
                    .map_err(|e| bad(format!("the service-account key is not usable: {e}")))?;
                Source::Key(Arc::new(key))
            }
            Credentials::MetadataServer => Source::Google(
                google_cloud_auth::credentials::mds::Builder::default()
                    .with_endpoint(self.metadata.clone())
                    .with_scopes([SCOPE])
                    .build_access_token_credentials()
                    .map_err(|e| bad(format!("metadata server credentials: {e}")))?,
            ),
            Credentials::ExternalAccount(json) => {
                let v: serde_json::Value = serde_json::from_str(json)
                    .map_err(|_| bad("the external account configuration is not JSON".into()))?;
                Source::Google(
                    google_cloud_auth::credentials::external_account::Builder::new(v)
                        .with_scopes([SCOPE])
                        .build_access_token_credentials()
                        .map_err(|e| bad(format!("external account credentials: {e}")))?,
                )
            }
        })
    }

    /// A current access token (cached by the auth crate, refreshed before it expires).
    pub async fn token(&self) -> Result<String, ProviderError> {
        let mut source = self.source.lock().await;
        if source.is_none() {
            *source = Some(self.build()?);
        }
        let fail = |e: String| ProviderError::transient(format!("could not get an access token from Google: {e}"));
        match source.as_ref().expect("built above") {
            Source::Key(key) => {
                let key = key.clone();
                drop(source);
                key.token(&[SCOPE]).await.map(|t| t.as_str().to_string()).map_err(|e| fail(e.to_string()))
            }
            Source::Google(c) => {
                let c = c.clone();
                drop(source);
                c.access_token().await.map(|t| t.token).map_err(|e| fail(e.to_string()))
            }
        }
    }

    /// Forgets the cached token, so the next call fetches a new one.
    pub async fn reset(&self) {
        *self.source.lock().await = None;
    }
}
