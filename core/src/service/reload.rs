//! Policy reload without a restart. The bot reads and checks the new config; core decides who
//! may reload, records the reload in the audit log (the config's hash and what changed) and only
//! then swaps the policy in, so no decision is ever made under a policy the log does not know.
//! Authority is checked at each decision, so the next click already sees the new policy.

use super::Service;
use crate::{
    CoreError,
    audit::{Actor, EventKind, NewEvent},
    error::CoreResult,
    policy::{Caller, Policy},
};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeSet;

/// What a reload changed, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyDiff {
    pub roles_added: Vec<String>,
    pub roles_removed: Vec<String>,
    pub roles_changed: Vec<String>,
    pub persons_added: Vec<String>,
    pub persons_removed: Vec<String>,
    pub groups_added: Vec<String>,
    pub groups_removed: Vec<String>,
    pub groups_changed: Vec<String>,
    pub tokens_added: Vec<String>,
    pub tokens_removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles_added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles_removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bundles_changed: Vec<String>,
    /// `[settings]` changed (expiry warning, scheduled access limits, …).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub settings_changed: bool,
}

/// Names in `new` and not in `old`, in `old` and not in `new`, and in both but different.
fn compare<'a, T: std::fmt::Debug + 'a>(
    old: impl Iterator<Item = (String, &'a T)>,
    new: impl Iterator<Item = (String, &'a T)>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let old: std::collections::BTreeMap<String, String> = old.map(|(k, v)| (k, format!("{v:?}"))).collect();
    let new: std::collections::BTreeMap<String, String> = new.map(|(k, v)| (k, format!("{v:?}"))).collect();
    let added = new.keys().filter(|k| !old.contains_key(*k)).cloned().collect();
    let removed = old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
    let changed = new.iter().filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v)).map(|(k, _)| k.clone()).collect();
    (added, removed, changed)
}

impl PolicyDiff {
    pub fn between(old: &Policy, new: &Policy) -> PolicyDiff {
        let (roles_added, roles_removed, roles_changed) = compare(
            old.roles.iter().map(|(k, v)| (k.to_string(), v)),
            new.roles.iter().map(|(k, v)| (k.to_string(), v)),
        );
        let (persons_added, persons_removed, _) = compare(
            old.persons.iter().map(|(k, v)| (k.to_string(), v)),
            new.persons.iter().map(|(k, v)| (k.to_string(), v)),
        );
        let (groups_added, groups_removed, groups_changed) = compare(
            old.groups.iter().map(|(k, v)| (k.to_string(), v)),
            new.groups.iter().map(|(k, v)| (k.to_string(), v)),
        );
        let (bundles_added, bundles_removed, bundles_changed) = compare(
            old.bundles.iter().map(|(k, v)| (k.to_string(), v)),
            new.bundles.iter().map(|(k, v)| (k.to_string(), v)),
        );
        // Tokens by name only: their hashes are not for the audit log.
        let names = |p: &Policy| p.tokens.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>();
        let (old_t, new_t) = (names(old), names(new));
        PolicyDiff {
            roles_added,
            roles_removed,
            roles_changed,
            persons_added,
            persons_removed,
            groups_added,
            groups_removed,
            groups_changed,
            tokens_added: new_t.difference(&old_t).cloned().collect(),
            tokens_removed: old_t.difference(&new_t).cloned().collect(),
            bundles_added,
            bundles_removed,
            bundles_changed,
            settings_changed: format!("{:?}", old.settings) != format!("{:?}", new.settings),
        }
    }
}

impl Service {
    /// Swaps in `policy`, read from a config whose SHA-256 is `config_sha256`. `by` is the
    /// person who asked (the security team only), or `None` for the operator's signal.
    /// `needs_restart` names the config sections that changed but are only read at start.
    pub async fn reload(
        &self,
        by: Option<&Caller>,
        policy: Policy,
        config_sha256: &str,
        needs_restart: &[String],
    ) -> CoreResult<PolicyDiff> {
        let actor = match by {
            Some(caller) => {
                self.security_only(caller, "reload the policy")?;
                Actor::Person(caller.person.clone())
            }
            None => Actor::System,
        };
        let diff = PolicyDiff::between(&self.policy(), &policy);
        let mut details = serde_json::to_value(&diff).unwrap_or_else(|_| json!({}));
        details["config_sha256"] = json!(config_sha256);
        details["needs_restart"] = json!(needs_restart);
        let ev = NewEvent::new(self.now(), actor, EventKind::ConfigReloaded, None, details);
        self.store.append_event(ev).await.map_err(CoreError::store)?;
        self.replace_policy(policy);
        Ok(diff)
    }
}
