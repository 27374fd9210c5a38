//! `[oncall.pagerduty]` and `[oncall.opsgenie]`: where on-call rules ask who is on call, with
//! which token, and how long an answer is trusted. Reading the section, checking that every
//! on-call rule's service is configured, the secrets it names, and building the adapters.

use crate::secrets::{SecretKind, SecretRef, SecretUse};
use elevate_core::{
    GrantDuration, Policy,
    oncall::{OnCallService, OnCallSources},
    policy::{ConfigError, deserialize_at as de, rules::RuleKind},
};
use elevate_oncall::{OnCallConfig, Opsgenie, PagerDuty};
use serde::Deserialize;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// One on-call service's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCallServiceConfig {
    /// Defaults: `https://api.pagerduty.com`, `https://api.opsgenie.com` (EU accounts:
    /// `https://api.eu.opsgenie.com`).
    pub api_url: Option<String>,
    /// PagerDuty: a read-only REST API key; Opsgenie: an API integration key.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    /// How long an answer is reused. Someone whose shift ended stays "on call" at most this
    /// long; at most 10m.
    #[serde(default = "default_ttl")]
    pub cache_ttl: GrantDuration,
    #[serde(default = "default_timeout")]
    pub timeout: GrantDuration,
    /// Retries within one lookup on 429, 5xx and timeouts.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_ttl() -> GrantDuration {
    GrantDuration::from_secs(60).expect("constant")
}
/// The whole lookup, retries included: it runs while a chat command waits (Slack: 3 seconds).
fn default_timeout() -> GrantDuration {
    GrantDuration::from_secs(2).expect("constant")
}
fn default_retries() -> u32 {
    2
}

pub type OnCallConfigs = BTreeMap<OnCallService, OnCallServiceConfig>;

/// Reads `[oncall.*]`; every problem is reported with its key path.
pub fn parse(root: &toml::Table, errs: &mut Vec<ConfigError>) -> OnCallConfigs {
    let mut out = BTreeMap::new();
    let Some(v) = root.get("oncall") else { return out };
    let Some(table) = v.as_table() else {
        errs.push(ConfigError::new("oncall", "must be a table: [oncall.pagerduty] or [oncall.opsgenie]"));
        return out;
    };
    for (name, v) in table {
        let path = format!("oncall.{name}");
        let Some(service) = OnCallService::parse(name) else {
            errs.push(ConfigError::new(&path, "unknown on-call service (pagerduty, opsgenie)"));
            continue;
        };
        let Some(c) = de::<OnCallServiceConfig>(&path, v, errs) else { continue };
        match (&c.token_env, &c.token_file) {
            (Some(_), Some(_)) => {
                errs.push(ConfigError::new(format!("{path}.token_env"), "set token_env or token_file, not both"))
            }
            (None, None) => errs.push(ConfigError::new(
                format!("{path}.token_env"),
                "missing: set token_env (an environment variable) or token_file",
            )),
            _ => {}
        }
        if c.cache_ttl.secs() > 600 {
            errs.push(ConfigError::new(
                format!("{path}.cache_ttl"),
                format!("{} is too long: at most 10m, or someone off call keeps being approved", c.cache_ttl),
            ));
        }
        if let Some(u) = &c.api_url
            && !(u.starts_with("https://") || u.starts_with("http://127.") || u.starts_with("http://localhost"))
        {
            errs.push(ConfigError::new(format!("{path}.api_url"), format!("`{u}` must start with https://")));
        }
        out.insert(service, c);
    }
    out
}

/// Every on-call rule needs its service configured.
pub fn check_rules(configs: &OnCallConfigs, policy: &Policy, errs: &mut Vec<ConfigError>) {
    for rule in &policy.rules {
        if let RuleKind::OnCall(r) = &rule.kind
            && !configs.contains_key(&r.service)
        {
            errs.push(ConfigError::new(
                format!("rules.{}.service", rule.name),
                format!("{} is not configured: add [oncall.{}] with its token", r.service, r.service.as_str()),
            ));
        }
    }
}

/// The tokens `[oncall.*]` names, for `check_secrets`.
pub fn secret_uses(configs: &OnCallConfigs) -> Vec<SecretUse> {
    configs
        .iter()
        .filter_map(|(service, c)| {
            let kind = match service {
                OnCallService::PagerDuty => SecretKind::PagerDutyToken,
                OnCallService::Opsgenie => SecretKind::OpsgenieKey,
            };
            SecretUse::of(&format!("oncall.{}", service.as_str()), "token", &c.token_env, &c.token_file, kind)
        })
        .collect()
}

/// Builds the adapters, reading their tokens.
pub fn build(configs: &OnCallConfigs) -> Result<OnCallSources, String> {
    let mut sources = OnCallSources::default();
    for (service, c) in configs {
        let prefix = format!("oncall.{}", service.as_str());
        let token = SecretRef::new(&c.token_env, &c.token_file).resolve(&format!("{prefix}.token"))?;
        let secs = |d: GrantDuration| Duration::from_secs(d.secs() as u64);
        let cfg = |default: &str| OnCallConfig {
            api_url: c.api_url.clone().unwrap_or_else(|| default.to_string()),
            token: token.clone(),
            timeout: secs(c.timeout),
            retries: c.retries,
            max_wait: secs(c.timeout),
        };
        let port: Arc<dyn elevate_core::oncall::OnCall> = match service {
            OnCallService::PagerDuty => Arc::new(PagerDuty::new(cfg("https://api.pagerduty.com"))?),
            OnCallService::Opsgenie => Arc::new(Opsgenie::new(cfg("https://api.opsgenie.com"))?),
        };
        sources.add(*service, port, secs(c.cache_ttl));
    }
    Ok(sources)
}
