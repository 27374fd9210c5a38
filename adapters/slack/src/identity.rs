//! Who is clicking: a Slack user becomes a person of the policy by the `slack_id` the policy
//! gives them, else by the email on their Slack profile (`users.info`, cached for an hour so
//! that a burst of clicks costs one lookup). Payloads from another workspace are refused before
//! anything else: the same Slack user id means nothing outside its workspace.

use crate::{Slack, text};
use elevate_core::{PersonId, UserError, policy::Caller};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

const TTL: Duration = Duration::from_secs(3600);

/// Slack user → email lookups, and person → Slack user learnt from them (for DMs).
#[derive(Default)]
pub(crate) struct Directory {
    emails: Mutex<HashMap<String, (Option<String>, Instant)>>,
    users: Mutex<HashMap<PersonId, String>>,
}

impl Slack {
    /// The caller behind a Slack user in a workspace, or the refusal to show them.
    ///
    /// Slack user groups are not read: a `slack_usergroup`-backed group counts only its listed
    /// members here (reading memberships would cost a `usergroups.users.list` call per group
    /// per click).
    pub(crate) async fn caller(&self, team_id: &str, user_id: &str) -> Result<Caller, UserError> {
        let s = &self.inner.settings;
        if team_id != s.team_id {
            return Err(UserError::forbidden(format!(
                "This elevate serves only the Slack workspace `{}`; requests from workspace `{}` are refused.",
                s.team_id,
                team_id.chars().take(32).collect::<String>()
            )));
        }
        let policy = self.inner.service.policy();
        if let Some(p) = policy.person_by_slack_id(user_id) {
            return Ok(Caller::person(p.id.clone()));
        }
        let email = self.email_of(user_id).await?;
        match email.as_deref().and_then(|e| policy.person_by_email(e)) {
            Some(p) => {
                self.inner.identity.users.lock().expect("identity lock").insert(p.id.clone(), user_id.to_string());
                Ok(Caller::person(p.id.clone()))
            }
            None => Err(UserError::unauthenticated(format!(
                "Your Slack account (`{user_id}`) is not linked to anyone in elevate's policy. Ask an elevate admin to add `slack_id = \"{user_id}\"` (or your Slack email) to your `[persons.…]` entry."
            ))),
        }
    }

    async fn email_of(&self, user_id: &str) -> Result<Option<String>, UserError> {
        let cached = self
            .inner
            .identity
            .emails
            .lock()
            .expect("identity lock")
            .get(user_id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(email, _)| email.clone());
        if let Some(email) = cached {
            return Ok(email);
        }
        let email = match self.inner.api.user_email(user_id).await {
            Ok(e) => e,
            Err(e) if e.ends_with("user_not_found") => None,
            Err(e) => {
                tracing::warn!(error = %e, "users.info failed");
                return Err(UserError::unauthenticated(
                    "elevate could not look up your Slack profile just now; try again in a minute.",
                ));
            }
        };
        self.inner
            .identity
            .emails
            .lock()
            .expect("identity lock")
            .insert(user_id.to_string(), (email.clone(), Instant::now()));
        Ok(email)
    }

    /// The Slack user of a person, for DMs and mentions: the policy's `slack_id`, else one
    /// learnt from their email since this process started.
    pub(crate) fn slack_user(&self, person: &str) -> Option<String> {
        let id = PersonId::parse(person).ok()?;
        if let Some(u) = self.inner.service.policy().person(&id).and_then(|p| p.slack_id.clone()) {
            return Some(u);
        }
        self.inner.identity.users.lock().expect("identity lock").get(&id).cloned()
    }

    /// A person as shown in Slack: a mention when we know their Slack user, else their name.
    pub(crate) fn name(&self, person: &str) -> String {
        match self.slack_user(person) {
            Some(u) => text::mention(&u),
            None => text::escape(person),
        }
    }
}
