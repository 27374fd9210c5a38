//! `[tickets.NAME]`: ticket systems that ticket rules (`kind = "ticket"`, `system = "NAME"`)
//! check tickets against. Reading the section, checking that every ticket rule's system exists,
//! the secrets it names, and building the clients.

use crate::secrets::{SecretKind, SecretRef, SecretUse};
use elevate_core::{
    GrantDuration, Policy,
    policy::{ConfigError, deserialize_at as de, rules::RuleKind},
    tickets::TicketSystems,
};
use elevate_tickets::{TicketApi, TicketClient};
use serde::Deserialize;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

/// One ticket system.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketSystemConfig {
    /// `jira-cloud`, `jira-data-center` or `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Jira: `https://example.atlassian.net` or the Data Center base URL.
    pub base_url: Option<String>,
    /// Jira Cloud: the account the API token belongs to.
    pub email: Option<String>,
    /// `http`: the URL with `{ticket}` in it.
    pub url_template: Option<String>,
    /// Jira Cloud: an API token; Data Center: a personal access token; `http`: an optional
    /// bearer token.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: GrantDuration,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

/// The whole lookup, retries included: it runs while a chat command waits (Slack: 3 seconds).
fn default_timeout() -> GrantDuration {
    GrantDuration::from_secs(2).expect("constant")
}
fn default_retries() -> u32 {
    2
}

pub type TicketConfigs = BTreeMap<String, TicketSystemConfig>;

/// Reads `[tickets.*]`; every problem is reported with its key path.
pub fn parse(root: &toml::Table, errs: &mut Vec<ConfigError>) -> TicketConfigs {
    let mut out = BTreeMap::new();
    let Some(v) = root.get("tickets") else { return out };
    let Some(table) = v.as_table() else {
        errs.push(ConfigError::new("tickets", "must be a table of named ticket systems ([tickets.jira])"));
        return out;
    };
    for (name, v) in table {
        let path = format!("tickets.{name}");
        let Some(c) = de::<TicketSystemConfig>(&path, v, errs) else { continue };
        let mut need = |key: &str, present: bool, why: &str| {
            if !present {
                errs.push(ConfigError::new(format!("{path}.{key}"), format!("required for type `{}`: {why}", c.kind)));
            }
        };
        let token = c.token_env.is_some() || c.token_file.is_some();
        match c.kind.as_str() {
            "jira-cloud" => {
                need("base_url", c.base_url.is_some(), "like https://example.atlassian.net");
                need("email", c.email.is_some(), "the Atlassian account the API token belongs to");
                need("token_env", token, "an API token (token_env or token_file)");
            }
            "jira-data-center" => {
                need("base_url", c.base_url.is_some(), "the Jira base URL");
                need("token_env", token, "a personal access token (token_env or token_file)");
            }
            "http" => need(
                "url_template",
                c.url_template.as_ref().is_some_and(|u| u.contains("{ticket}")),
                "a URL with {ticket} in it",
            ),
            other => errs.push(ConfigError::new(
                format!("{path}.type"),
                format!("unknown type `{other}` (jira-cloud, jira-data-center, http)"),
            )),
        }
        if c.token_env.is_some() && c.token_file.is_some() {
            errs.push(ConfigError::new(format!("{path}.token_env"), "set token_env or token_file, not both"));
        }
        for (key, url) in [("base_url", &c.base_url), ("url_template", &c.url_template)] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://127.") || u.starts_with("http://localhost"))
            {
                errs.push(ConfigError::new(format!("{path}.{key}"), format!("`{u}` must start with https://")));
            }
        }
        out.insert(name.clone(), c);
    }
    out
}

/// Every ticket rule needs its system configured.
pub fn check_rules(configs: &TicketConfigs, policy: &Policy, errs: &mut Vec<ConfigError>) {
    for rule in &policy.rules {
        if let RuleKind::Ticket(r) = &rule.kind
            && !configs.contains_key(&r.system)
        {
            errs.push(ConfigError::new(
                format!("rules.{}.system", rule.name),
                format!("no ticket system `{}`: add [tickets.{}]", r.system, r.system),
            ));
        }
    }
}

/// The tokens `[tickets.*]` names, for `check_secrets`.
pub fn secret_uses(configs: &TicketConfigs) -> Vec<SecretUse> {
    configs
        .iter()
        .filter_map(|(name, c)| {
            SecretUse::of(&format!("tickets.{name}"), "token", &c.token_env, &c.token_file, SecretKind::TicketToken)
        })
        .collect()
}

/// Builds the clients, reading their tokens.
pub fn build(configs: &TicketConfigs) -> Result<TicketSystems, String> {
    let mut systems = TicketSystems::default();
    for (name, c) in configs {
        let token = match (&c.token_env, &c.token_file) {
            (None, None) => None,
            (env, file) => Some(SecretRef::new(env, file).resolve(&format!("tickets.{name}.token"))?),
        };
        let missing = |k: &str| format!("tickets.{name}.{k}: missing");
        let api = match c.kind.as_str() {
            "jira-cloud" => TicketApi::JiraCloud {
                base_url: c.base_url.clone().ok_or_else(|| missing("base_url"))?,
                email: c.email.clone().ok_or_else(|| missing("email"))?,
                api_token: token.ok_or_else(|| missing("token_env"))?,
            },
            "jira-data-center" => TicketApi::JiraDataCenter {
                base_url: c.base_url.clone().ok_or_else(|| missing("base_url"))?,
                token: token.ok_or_else(|| missing("token_env"))?,
            },
            _ => {
                TicketApi::Http { url_template: c.url_template.clone().ok_or_else(|| missing("url_template"))?, token }
            }
        };
        let client = TicketClient::new(api, Duration::from_secs(c.timeout.secs() as u64), c.retries)
            .map_err(|e| format!("tickets.{name}: {e}"))?;
        systems.add(name, Arc::new(client));
    }
    Ok(systems)
}
