//! IAM policies of projects, folders and organizations (Resource Manager v3): read-modify-write
//! guarded by the policy's `etag`.
//!
//! The policy is kept as Google's JSON and only the `bindings` elevate owns are touched: every
//! other binding, condition, audit config and field goes back byte for byte as it was read.
//! When someone else wrote the policy between elevate's read and write, Google refuses the
//! write (409 ABORTED, the etag is stale) and elevate reads the new policy and redoes its change
//! on it, so the other change is kept.

use crate::client::{CallError, Client, backoff};
use crate::target::{ends_at, grant_of};
use chrono::{DateTime, Utc};
use elevate_core::ports::ProviderError;
use reqwest::Method;
use serde_json::{Value, json};
use tracing::{debug, info};

/// What a change did to the bindings it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Nothing to write.
    Unchanged,
    Changed,
}

impl Client {
    fn policy_url(&self, resource: &str, method: &str) -> String {
        format!("{}/v3/{resource}:{method}", self.settings.resource_manager)
    }

    /// The policy in version 3, so conditional bindings come back with their conditions
    /// (asked for in an older version, Google would hide them).
    pub async fn get_policy(&self, resource: &str) -> Result<Value, CallError> {
        let body = json!({ "options": { "requestedPolicyVersion": 3 } });
        self.call(
            Method::POST,
            &self.policy_url(resource, "getIamPolicy"),
            Some(&body),
            &format!("getIamPolicy {resource}"),
        )
        .await
    }

    async fn set_policy(&self, resource: &str, policy: &Value) -> Result<Value, CallError> {
        // The default update mask (`bindings,etag`): audit configs are left as they are.
        let body = json!({ "policy": policy });
        self.call(
            Method::POST,
            &self.policy_url(resource, "setIamPolicy"),
            Some(&body),
            &format!("setIamPolicy {resource}"),
        )
        .await
    }

    /// Reads the policy, lets `edit` change its bindings, and writes it back with the etag it
    /// was read with; on a concurrent change, does it all again on the new policy. Expired
    /// bindings of elevate's are purged in the same write (Google keeps them after they stop
    /// granting, and they count towards the policy's size limits).
    pub async fn modify_policy(
        &self,
        resource: &str,
        now: DateTime<Utc>,
        mut edit: impl FnMut(&mut Vec<Value>) -> Edit,
    ) -> Result<Edit, ProviderError> {
        let rounds = self.settings.max_policy_rounds;
        for round in 1..=rounds {
            let mut policy = self.get_policy(resource).await?;
            let mut bindings: Vec<Value> = policy["bindings"].as_array().cloned().unwrap_or_default();
            if edit(&mut bindings) == Edit::Unchanged {
                return Ok(Edit::Unchanged);
            }
            let purged = purge_expired(&mut bindings, now);
            if purged > 0 {
                info!(resource, purged, "purging expired elevate bindings");
            }
            policy["bindings"] = Value::Array(bindings);
            // Conditions need version 3; a policy without any may say 3 as well.
            policy["version"] = json!(3);
            match self.set_policy(resource, &policy).await {
                Ok(_) => return Ok(Edit::Changed),
                Err(CallError::Google(g)) if g.is_conflict() => {
                    debug!(resource, round, "IAM policy changed under us; reading it again");
                    if round < rounds {
                        tokio::time::sleep(backoff(self.settings.retry_base, round)).await;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProviderError::transient(format!(
            "the IAM policy of {resource} kept changing while elevate wrote it ({rounds} rounds); will try again"
        )))
    }

    /// Removes the expired ones of elevate's bindings from `resource`'s policy, if there are any.
    pub async fn purge(&self, resource: &str, now: DateTime<Utc>) -> Result<(), ProviderError> {
        self.modify_policy(resource, now, |b| {
            if b.iter().any(|x| is_expired(x, now)) { Edit::Changed } else { Edit::Unchanged }
        })
        .await
        .map(|_| ())
    }
}

/// One of elevate's bindings whose window is over.
pub(crate) fn is_expired(binding: &Value, now: DateTime<Utc>) -> bool {
    grant_of(binding).is_some() && ends_at(binding).is_some_and(|end| end <= now)
}

fn purge_expired(bindings: &mut Vec<Value>, now: DateTime<Utc>) -> usize {
    let before = bindings.len();
    bindings.retain(|b| !is_expired(b, now));
    before - bindings.len()
}

/// Puts `wanted` in place of the bindings titled like it (a retried grant, or a new window after
/// an extension), or adds it.
pub(crate) fn upsert(bindings: &mut Vec<Value>, wanted: &Value) -> Edit {
    let title = &wanted["condition"]["title"];
    let same: Vec<usize> =
        bindings.iter().enumerate().filter(|(_, b)| &b["condition"]["title"] == title).map(|(i, _)| i).collect();
    if same.len() == 1 && bindings[same[0]] == *wanted {
        return Edit::Unchanged;
    }
    for i in same.into_iter().rev() {
        bindings.remove(i);
    }
    bindings.push(wanted.clone());
    Edit::Changed
}

/// Removes the bindings of one grant (by its condition's title): only elevate's binding for
/// that grant, whatever else grants the same role to the same person.
pub(crate) fn remove(bindings: &mut Vec<Value>, title: &str) -> Edit {
    let before = bindings.len();
    bindings.retain(|b| b["condition"]["title"].as_str() != Some(title));
    if bindings.len() == before { Edit::Unchanged } else { Edit::Changed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(title: &str, end: &str) -> Value {
        json!({ "role": "roles/viewer", "members": ["user:a@x.io"], "condition": {
            "title": title, "expression": format!("request.time < timestamp(\"{end}\")") } })
    }

    #[test]
    fn only_elevates_expired_bindings_are_purged() {
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().unwrap();
        let theirs = b("business-hours", "2026-01-01T00:00:00Z");
        let mut v = vec![
            b("elevate-grant-elevate-1", "2026-12-04T11:00:00Z"),
            b("elevate-grant-elevate-2", "2026-12-04T13:00:00Z"),
            theirs.clone(),
        ];
        assert_eq!(purge_expired(&mut v, now), 1);
        assert_eq!(v, vec![b("elevate-grant-elevate-2", "2026-12-04T13:00:00Z"), theirs]);
    }

    #[test]
    fn upsert_is_idempotent_and_replaces_a_changed_window() {
        let mut v = vec![json!({"role": "roles/owner", "members": ["user:boss@x.io"]})];
        let first = b("elevate-grant-elevate-1", "2026-12-04T11:00:00Z");
        assert_eq!(upsert(&mut v, &first), Edit::Changed);
        assert_eq!(upsert(&mut v, &first), Edit::Unchanged);
        let longer = b("elevate-grant-elevate-1", "2026-12-04T12:00:00Z");
        assert_eq!(upsert(&mut v, &longer), Edit::Changed);
        assert_eq!(v.len(), 2);
        assert_eq!(remove(&mut v, "elevate-grant-elevate-1"), Edit::Changed);
        assert_eq!(remove(&mut v, "elevate-grant-elevate-1"), Edit::Unchanged);
        assert_eq!(v, vec![json!({"role": "roles/owner", "members": ["user:boss@x.io"]})]);
    }
}
