//! Who is clicking. Only an active, human, full member of the configured workspace acts: every
//! Slack user is looked up with `users.info` (cached, so a burst of clicks costs one lookup) and
//! bots and app users, deactivated accounts, guests and users whose home workspace is another
//! one (shared channels, other workspaces of an Enterprise Grid organisation) are refused, with
//! the refusal audited, before the policy is asked. Then the user becomes a person of the policy
//! by the `slack_id` the policy gives them, else by the email on their (human, active) profile.
//! The Slack user groups the policy's groups name (`slack_usergroup = "S…"`) are read with
//! `usergroups.users.list` when a command or click arrives (cached for `usergroup_cache`), and
//! those the user is in go into `Caller.chat_roles`, where the policy looks for them.

use crate::{PLATFORM, Slack};
use elevate_core::{PersonId, UserError, policy::Caller, service::NotAllowed};
use slack_morphism::prelude::SlackUser;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// How long what `users.info` said is trusted. Short, so a deactivated account or a bot that
/// changed its profile stops acting within minutes.
const TTL: Duration = Duration::from_secs(300);

/// What elevate needs to know of a Slack account.
#[derive(Debug, Clone)]
struct Account {
    standing: Result<(), NotAllowed>,
    email: Option<String>,
}

/// A user group's members and when Slack listed them (on the service's clock).
type Listed = (Vec<String>, chrono::DateTime<chrono::Utc>);

/// Slack user → account lookups, and person → Slack user learnt from them (for DMs).
#[derive(Default)]
pub(crate) struct Directory {
    accounts: Mutex<HashMap<String, (Option<Account>, Instant)>>,
    users: Mutex<HashMap<PersonId, String>>,
    /// User group id → its members, and when Slack said so (on the service's clock).
    usergroups: Mutex<HashMap<String, Listed>>,
}

/// Reads an account's standing from what Slack says of it.
fn account(u: &SlackUser, team: &str) -> Account {
    let f = &u.flags;
    let yes = |b: Option<bool>| b == Some(true);
    let standing = if yes(f.is_bot) || yes(f.is_app_user) {
        Err(NotAllowed::Bot)
    } else if yes(u.deleted) {
        Err(NotAllowed::Deactivated)
    } else if yes(f.is_restricted) || yes(f.is_ultra_restricted) || yes(f.is_invited_user) {
        Err(NotAllowed::Guest)
    } else if yes(f.is_stranger) {
        Err(NotAllowed::OtherTenant(u.team_id.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "?".into())))
    } else {
        match u.team_id.as_ref().map(|t| t.to_string()) {
            Some(t) if t == team => Ok(()),
            // Enterprise Grid users carry their home workspace in `enterprise_user.teams`.
            Some(t) => {
                let member =
                    u.enterprise_user.as_ref().is_some_and(|e| e.teams.iter().flatten().any(|x| x.to_string() == team));
                if member { Ok(()) } else { Err(NotAllowed::OtherTenant(t)) }
            }
            None => Err(NotAllowed::OtherTenant("?".into())),
        }
    };
    Account { standing, email: u.profile.as_ref().and_then(|p| p.email.as_ref()).map(|e| e.to_string()) }
}

impl Slack {
    /// The caller behind a Slack user in a workspace, or the refusal to show them.
    pub(crate) async fn caller(&self, team_id: &str, user_id: &str) -> Result<Caller, UserError> {
        self.caller_of(team_id, None, user_id).await
    }

    /// The same, with the user's own workspace when the payload says it (interactions do).
    pub(crate) async fn caller_of(
        &self,
        team_id: &str,
        user_team: Option<&str>,
        user_id: &str,
    ) -> Result<Caller, UserError> {
        let ours = &self.inner.settings.team_id;
        let service = &self.inner.service;
        if team_id != ours {
            return Err(service.refuse_actor(PLATFORM, user_id, NotAllowed::OtherTenant(team_id.to_string())).await);
        }
        if let Some(t) = user_team.filter(|t| !t.is_empty() && *t != ours) {
            return Err(service.refuse_actor(PLATFORM, user_id, NotAllowed::OtherTenant(t.to_string())).await);
        }
        let Some(account) = self.account(user_id).await? else {
            return Err(UserError::unauthenticated(format!("Slack does not know the account `{user_id}`.")));
        };
        if let Err(why) = account.standing {
            return Err(service.refuse_actor(PLATFORM, user_id, why).await);
        }
        let policy = service.policy();
        let person = if let Some(p) = policy.person_by_slack_id(user_id) {
            p.id.clone()
        } else {
            match account.email.as_deref().and_then(|e| policy.person_by_email(e)) {
                Some(p) => {
                    self.inner.identity.users.lock().expect("identity lock").insert(p.id.clone(), user_id.to_string());
                    p.id.clone()
                }
                None => {
                    return Err(UserError::unauthenticated(format!(
                        "Your Slack account (`{user_id}`) is not linked to anyone in elevate's policy. Ask an elevate admin to add `slack_id = \"{user_id}\"` (or your Slack email) to your `[persons.…]` entry."
                    )));
                }
            }
        };
        let mut usergroups: Vec<String> = policy.groups.values().filter_map(|g| g.slack_usergroup.clone()).collect();
        usergroups.sort();
        usergroups.dedup();
        let mut chat_roles = Vec::new();
        for group in usergroups {
            if self.usergroup_members(&group).await?.iter().any(|m| m == user_id) {
                chat_roles.push(group);
            }
        }
        Ok(Caller { person, chat_roles })
    }

    /// The members of a Slack user group, cached for the configured `usergroup_cache`, so that
    /// someone removed from the group stops acting for it within that time.
    async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, UserError> {
        let ttl = chrono::Duration::from_std(self.inner.settings.usergroup_cache).unwrap_or_default();
        let now = self.inner.service.now();
        let cached = self.inner.identity.usergroups.lock().expect("identity lock").get(group).cloned();
        if let Some((members, _)) = cached.filter(|(_, at)| now - *at < ttl) {
            return Ok(members);
        }
        match self.inner.api.usergroup_members(group).await {
            Ok(members) => {
                self.inner
                    .identity
                    .usergroups
                    .lock()
                    .expect("identity lock")
                    .insert(group.to_string(), (members.clone(), now));
                Ok(members)
            }
            Err(e) => {
                tracing::warn!(error = %e, usergroup = group, "usergroups.users.list failed");
                Err(UserError::unauthenticated(format!(
                    "elevate could not read the members of the Slack user group `{group}` just now; nothing was changed, try again in a minute."
                )))
            }
        }
    }

    /// What Slack says of an account, cached for [`TTL`]; `None` when Slack does not know it.
    async fn account(&self, user_id: &str) -> Result<Option<Account>, UserError> {
        let cached = self
            .inner
            .identity
            .accounts
            .lock()
            .expect("identity lock")
            .get(user_id)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(a, _)| a.clone());
        if let Some(a) = cached {
            return Ok(a);
        }
        let found = match self.inner.api.user_info(user_id).await {
            Ok(u) => Some(account(&u, &self.inner.settings.team_id)),
            Err(e) if e.ends_with("user_not_found") => None,
            Err(e) => {
                tracing::warn!(error = %e, "users.info failed");
                return Err(UserError::unauthenticated(
                    "elevate could not check your Slack account just now; nothing was changed, try again in a minute.",
                ));
            }
        };
        self.inner
            .identity
            .accounts
            .lock()
            .expect("identity lock")
            .insert(user_id.to_string(), (found.clone(), Instant::now()));
        Ok(found)
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
            Some(u) => crate::text::mention(&u),
            None => crate::text::escape(person),
        }
    }
}
