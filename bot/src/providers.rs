//! Building the configured providers, the dry-run provider, and the instrumentation that every
//! provider call goes through (latency and errors for `/metrics`).

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
        ProviderConfig::PostgresRoles(_) => elevate_dbroles::Target::parse(target).map(|_| ()),
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
                let key = |k: &str| crate::config::lookup_secret(k);
                let creds = match (key("AWS_ACCESS_KEY_ID"), key("AWS_SECRET_ACCESS_KEY")) {
                    (Some(id), Some(secret)) => {
                        elevate_aws::StaticCredentials::new(id, secret, key("AWS_SESSION_TOKEN"))
                    }
                    _ => {
                        return Err(format!(
                            "providers.{name}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN \
                             for temporary keys) in the environment or ELEVATE_SECRETS_FILE"
                        ));
                    }
                };
                let p = elevate_aws::AwsProvider::new((**a).clone(), creds)
                    .map_err(|e| format!("providers.{name}: {e}"))?;
                Arc::new(p)
            }
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
        };
        out.insert(name.clone(), instrument(name, provider, metrics));
    }
    Ok(out)
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
            })
            .collect())
    }
}

struct Instrumented {
    name: String,
    inner: Arc<dyn GrantProvider>,
    metrics: Arc<Metrics>,
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
        let r = self.inner.grant(spec).await;
        self.record("grant", t, &r);
        r
    }
    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        let t = Instant::now();
        let r = self.inner.revoke(spec, overlap).await;
        self.record("revoke", t, &r);
        r
    }
    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        let t = Instant::now();
        let r = self.inner.list().await;
        self.record("list", t, &r);
        r
    }
}
