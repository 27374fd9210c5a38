//! elevate's own AWS identity from the standard credential chain, the one every AWS SDK and the
//! CLI use, so that elevate needs no standing keys wherever the platform hands out temporary
//! ones: environment keys, the shared config and credentials files (profiles, `role_arn` with
//! `source_profile`, `credential_process`, IAM Identity Center/SSO), a web identity token
//! (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`: EKS IRSA), the container endpoint
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI` / `_RELATIVE_URI`: ECS task roles, EKS Pod Identity)
//! and EC2 instance metadata (IMDSv2), in that order.
//!
//! The chain's own calls (STS for web identity and profile roles, the container endpoint, IMDS)
//! go through a hyper client on rustls with ring, never aws-config's default client, which would
//! bring aws-lc-rs into a process that already chose ring (see docs/design.md, known traps).
//! Their endpoints follow the SDKs' standard settings: `AWS_ENDPOINT_URL_STS` (or
//! `AWS_ENDPOINT_URL`), the container URI variables and `AWS_EC2_METADATA_SERVICE_ENDPOINT`.

use crate::credentials::{Leased, REFRESH_MARGIN, StaticCredentials};
use aws_config::Region;
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use elevate_core::ports::ProviderError;
use std::error::Error as _;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, OnceCell};
use tracing::{debug, warn};

/// Keys without an expiry (environment keys, a profile's static keys) are read again after this
/// long, so that keys rotated in a credentials file are picked up without a restart.
const UNDATED_KEYS_TTL: Duration = Duration::from_secs(600);

/// The default chain, built on first use (building it is async), and the keys it gave last,
/// kept until they come within [`REFRESH_MARGIN`] of their expiry.
pub(crate) struct Chain {
    region: String,
    provider: OnceCell<DefaultCredentialsChain>,
    cached: Mutex<Option<Leased>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefaultChain").field("region", &self.region).finish_non_exhaustive()
    }
}

impl Chain {
    pub(crate) fn new(region: &str) -> Chain {
        Chain { region: region.to_string(), provider: OnceCell::new(), cached: Mutex::new(None) }
    }

    /// The keys to sign with now, fetched again when the last ones are about to expire.
    pub(crate) async fn credentials(&self) -> Result<StaticCredentials, ProviderError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(l) = cached.as_ref().filter(|l| l.fresh_at(now)) {
            return Ok(l.creds.clone());
        }
        let provider = self.provider.get_or_init(|| self.build()).await;
        let c = match provider.provide_credentials().await {
            Ok(c) => c,
            Err(e) => {
                let message = describe(&e);
                // Keys inside the refresh margin still work: a metadata endpoint or STS that is
                // briefly down must not stop a revoke while they do.
                if let Some(l) = cached.as_ref().filter(|l| l.expires_at > now) {
                    warn!(error = %message, "cannot refresh AWS credentials; using the current ones until they expire");
                    return Ok(l.creds.clone());
                }
                warn!(error = %message, "no AWS credentials from the default chain");
                return Err(ProviderError::transient(message));
            }
        };
        let expires_at = c.expiry().unwrap_or(now + REFRESH_MARGIN + UNDATED_KEYS_TTL);
        let creds =
            StaticCredentials::new(c.access_key_id(), c.secret_access_key(), c.session_token().map(str::to_string));
        debug!(key = ?creds, "AWS credentials from the default chain");
        *cached = Some(Leased { creds: creds.clone(), expires_at });
        Ok(creds)
    }

    async fn build(&self) -> DefaultCredentialsChain {
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let region = Region::new(self.region.clone());
        let conf = ProviderConfig::default().with_http_client(http).with_region(Some(region.clone()));
        // The region is elevate's own: no lookup in profiles or instance metadata.
        DefaultCredentialsChain::builder().configure(conf).region(region).build().await
    }
}

/// The chain's error with its causes (which source failed and why). aws-config's messages name
/// sources, files and codes, never key material.
fn describe(e: &CredentialsError) -> String {
    let mut out = format!("AWS credentials: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
