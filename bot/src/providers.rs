//! Building the configured providers, the dry-run provider, and the instrumentation that every
//! provider call goes through (latency and errors for `/metrics`, and error texts scrubbed of
//! credentials before anything records them).

use crate::{
    config::{Config, ProviderConfig, SecretRef},
    metrics::Metrics,
};
use async_trait::async_trait;
use elevate_core::{
    ports::{GrantProvider, GrantSpec, ListedGrant, Overlap, ProviderError},
    service::Providers,
};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tracing::info;

/// Checks a role's target for its provider's kind, without needing the provider's secrets
/// (so `elevate check` can run anywhere).
pub fn validate_target(p: &ProviderConfig, target: &Value) -> Result<(), String> {
    match p {
        ProviderConfig::DryRun | ProviderConfig::Webhook(_) => {
            if target.is_object() || target.is_null() {
                Ok(())
            } else {
                Err("must be a table".into())
            }
        }
        ProviderConfig::Aws(_) => elevate_aws::Target::parse(target).map(|_| ()),
        ProviderConfig::Gcp(_) => elevate_gcp::Target::parse(target).map(|_| ()),
        ProviderConfig::PostgresRoles(_) => elevate_dbroles::Target::parse(target).map(|_| ()),
        ProviderConfig::MysqlRoles(_) => elevate_dbroles::mysql::MysqlTarget::parse(target).map(|_| ()),
    }
}

/// Builds every configured provider, resolving secrets. An error names the provider and the
/// missing secret, never a value.
pub fn build(
    config: &Config,
    metrics: &Arc<Metrics>,
    supplied: &BTreeMap<String, Arc<dyn GrantProvider>>,
) -> Result<Providers, String> {
    let mut out: Providers = BTreeMap::new();
    for (name, p) in config.providers.iter().filter(|(n, _)| !supplied.contains_key(*n)) {
        let provider: Arc<dyn GrantProvider> = match p {
            ProviderConfig::DryRun => Arc::new(DryRunProvider::default()),
            ProviderConfig::Webhook(w) => {
                let secret = w.secret.resolve(&format!("providers.{name}"))?;
                let cfg = elevate_webhook::WebhookConfig {
                    url: w.url.clone(),
                    secret,
                    timeout: Duration::from_secs(w.timeout.secs() as u64),
                    retries: w.retries,
                    max_inline_wait: Duration::from_secs(10),
                };
                Arc::new(elevate_webhook::WebhookProvider::new(cfg).map_err(|e| format!("providers.{name}: {e}"))?)
            }
            ProviderConfig::Aws(a) => {
                // Keys in elevate's secrets file win; otherwise the standard AWS chain, which
                // also reads AWS_ACCESS_KEY_ID/… from the environment but needs no standing keys
                // on EKS, ECS, EC2 or with an SSO profile.
                let key = |k: &str| crate::config::lookup_secret(k);
                let source = match (key("AWS_ACCESS_KEY_ID"), key("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => elevate_aws::CredentialSource::Static(
                        elevate_aws::StaticCredentials::new(id, secret, key("AWS_SESSION_TOKEN")),
                    ),
                    _ => elevate_aws::CredentialSource::DefaultChain,
                };
                let p = elevate_aws::AwsProvider::with_source((**a).clone(), source)
                    .map_err(|e| format!("providers.{name}: {e}"))?;
                Arc::new(p)
            }
            ProviderConfig::Gcp(g) => Arc::new(gcp(config, name, g)?),
            ProviderConfig::PostgresRoles(c) => {
                let settings = c.settings().map_err(|e| format!("providers.{name}: {e}"))?;
                // The URL holds elevate's password: it is read here and handed to the provider,
                // and no error below quotes it.
                let url = SecretRef { secret_env: c.url_env.clone(), secret_file: c.url_file.clone() }
                    .resolve(&format!("providers.{name}"))?;
                let p = elevate_dbroles::PostgresRolesProvider::new(settings, &url)
                    .map_err(|e| format!("providers.{name}: {e}"))?;
                Arc::new(p)
            }
            ProviderConfig::MysqlRoles(c) => {
                let settings = c.settings().map_err(|e| format!("providers.{name}: {e}"))?;
                // As for postgres-roles: the URL is handed to the provider and never quoted.
                let url = SecretRef { secret_env: c.url_env.clone(), secret_file: c.url_file.clone() }
                    .resolve(&format!("providers.{name}"))?;
                let p = elevate_dbroles::mysql::MysqlRolesProvider::new(settings, &url)
                    .map_err(|e| format!("providers.{name}: {e}"))?;
                Arc::new(p)
            }
        };
        out.insert(name.clone(), instrument(name, provider, metrics));
    }
    Ok(out)
}

/// The Google Cloud provider, its key or external account read from the secret it names, and
/// told which resources its roles use (what `list` reads for reconciliation).
fn gcp(config: &Config, name: &str, g: &elevate_gcp::GcpConfig) -> Result<elevate_gcp::GcpProvider, String> {
    use elevate_gcp::{AuthKind, Credentials};
    let secret = || {
        crate::config::SecretRef { secret_env: g.credentials_env.clone(), secret_file: g.credentials_file.clone() }
            .resolve(&format!("providers.{name}"))
    };
    let credentials = match g.auth_kind() {
        AuthKind::ServiceAccountKey => Credentials::ServiceAccountKey(secret()?),
        AuthKind::ExternalAccount => Credentials::ExternalAccount(secret()?),
        AuthKind::MetadataServer => Credentials::MetadataServer,
    };
    let p = elevate_gcp::GcpProvider::new(g.clone(), credentials).map_err(|e| format!("providers.{name}: {e}"))?;
    for role in config.policy.roles.values().filter(|r| r.provider == name) {
        p.watch(&role.target);
    }
    Ok(p)
}

pub fn instrument(name: &str, inner: Arc<dyn GrantProvider>, metrics: &Arc<Metrics>) -> Arc<dyn GrantProvider> {
    Arc::new(Instrumented { name: name.to_string(), inner, metrics: metrics.clone() })
}

/// Applies nothing. Remembers what it "holds" so that `list` and reconciliation behave as with
/// a real provider, and says "dry run" in every log line.
#[derive(Default)]
pub struct DryRunProvider {
    held: Mutex<BTreeMap<String, GrantSpec>>,
}

#[async_trait]
impl GrantProvider for DryRunProvider {
    fn kind(&self) -> &'static str {
        "dry-run"
    }

    fn is_dry_run(&self) -> bool {
        true
    }

    fn validate_target(&self, _target: &Value) -> Result<(), String> {
        Ok(())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        info!(grant = %spec.grant_id, role = %spec.role, person = %spec.person, until = %spec.expires_at, "dry run: would grant");
        self.held.lock().expect("lock").insert(spec.grant_id.clone(), spec.clone());
        Ok(json!({ "target": spec.target, "principals": spec.principals }))
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        info!(grant = %spec.grant_id, role = %spec.role, person = %spec.person, still_needed = overlap.still_needed(), "dry run: would revoke");
        self.held.lock().expect("lock").remove(&spec.grant_id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        Ok(self
            .held
            .lock()
            .expect("lock")
            .values()
            .map(|s| ListedGrant {
                grant_id: s.grant_id.clone(),
                spec: Some(s.clone()),
                description: format!("dry run: {} for {}", s.role, s.person),
                holder: None,
            })
            .collect())
    }
}

struct Instrumented {
    name: String,
    inner: Arc<dyn GrantProvider>,
    metrics: Arc<Metrics>,
}

/// A provider error without credentials or query strings (see `elevate_core::scrub`): what
/// providers say ends up in audit events, chat and logs.
fn scrubbed(e: ProviderError) -> ProviderError {
    use elevate_core::scrub::scrub;
    match e {
        ProviderError::Transient { message, retry_after } => {
            ProviderError::Transient { message: scrub(&message), retry_after }
        }
        ProviderError::Permanent { code, message } => {
            ProviderError::Permanent { code: scrub(&code), message: scrub(&message) }
        }
    }
}

impl Instrumented {
    fn record<T>(&self, op: &'static str, started: Instant, r: &Result<T, ProviderError>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(ProviderError::Transient { .. }) => "transient_error",
            Err(ProviderError::Permanent { .. }) => "permanent_error",
        };
        self.metrics.provider_call(&self.name, op, outcome, started.elapsed());
    }
}

#[async_trait]
impl GrantProvider for Instrumented {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn is_dry_run(&self) -> bool {
        self.inner.is_dry_run()
    }
    fn validate_target(&self, target: &Value) -> Result<(), String> {
        self.inner.validate_target(target)
    }
    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        let t = Instant::now();
        let r = self.inner.grant(spec).await.map_err(scrubbed);
        self.record("grant", t, &r);
        r
    }
    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        let t = Instant::now();
        let r = self.inner.revoke(spec, overlap).await.map_err(scrubbed);
        self.record("revoke", t, &r);
        r
    }
    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        let t = Instant::now();
        let r = self.inner.list().await.map_err(scrubbed);
        self.record("list", t, &r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gcp_provider_reads_its_key_from_the_secret_it_names_and_the_error_shows_no_value() {
        let text = include_str!("../../examples/gcp.toml")
            .replace("credentials_env = \"ELEVATE_GCP_KEY\"", "credentials_env = \"ELEVATE_TEST_GCP_KEY_NEVER_SET\"");
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let metrics = Arc::new(Metrics::default());
        let err = build(&config, &metrics, &BTreeMap::new()).err().expect("no key anywhere");
        assert!(err.contains("providers.gcp") && err.contains("ELEVATE_TEST_GCP_KEY_NEVER_SET"), "{err}");

        let key =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../adapters/gcp/tests/common/TEST-ONLY-service-account-key.json");
        let text = text
            .replace("credentials_env = \"ELEVATE_TEST_GCP_KEY_NEVER_SET\"", &format!("credentials_file = \"{key}\""));
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let providers = build(&config, &metrics, &BTreeMap::new()).unwrap();
        assert_eq!(providers["gcp"].kind(), "gcp");
    }
}
