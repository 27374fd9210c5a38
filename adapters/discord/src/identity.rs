//! Who is acting: a Discord user becomes a person of the policy by the `discord_id` the policy
//! gives them (Discord does not show bots anyone's email). The Discord roles the member holds
//! *in this interaction* (`member.roles`) go into `Caller.chat_roles`, so a group backed by a
//! Discord role counts whoever holds that role at the moment of the click. Bots and interactions
//! from another server are refused, and audited, before anything else; one from a DM (an Extend
//! button under a warning) carries no server and no roles, only the user.

use crate::{Discord, PLATFORM, text};
use elevate_core::{PersonId, UserError, policy::Caller, service::NotAllowed};
use serde_json::Value;

/// The user who sent an interaction: `member.user` in a server, `user` in a DM.
pub(crate) fn user_id(p: &Value) -> &str {
    p["member"]["user"]["id"].as_str().or_else(|| p["user"]["id"].as_str()).unwrap_or("")
}

/// Whether the account behind an interaction may act at all: not a bot, and (in a server) a
/// member of ours. `ours` is the configured server.
fn standing(p: &Value, ours: &str) -> Result<(), NotAllowed> {
    let user = if p["member"].is_object() { &p["member"]["user"] } else { &p["user"] };
    if user["bot"] == true || user["system"] == true {
        return Err(NotAllowed::Bot);
    }
    match p["guild_id"].as_str() {
        Some(g) if g != ours => Err(NotAllowed::OtherTenant(g.to_string())),
        _ => Ok(()),
    }
}

impl Discord {
    /// The caller behind an interaction, or the refusal to show them. Bots and members of
    /// other servers are refused, and the refusal audited, before the policy is asked.
    pub(crate) async fn caller(&self, p: &Value) -> Result<Caller, UserError> {
        let ours = self.settings().guild_id.to_string();
        if let Err(why) = standing(p, &ours) {
            return Err(self.inner.service.refuse_actor(PLATFORM, user_id(p), why).await);
        }
        self.linked(p)
    }

    /// The caller for autocomplete, which must answer at once: the same checks, not audited
    /// (suggestions change nothing).
    pub(crate) fn quiet_caller(&self, p: &Value) -> Option<Caller> {
        standing(p, &self.settings().guild_id.to_string()).ok()?;
        self.linked(p).ok()
    }

    /// The person of the policy a Discord user is linked to, with the server roles they hold.
    fn linked(&self, p: &Value) -> Result<Caller, UserError> {
        let roles = match p["guild_id"].as_str() {
            Some(_) => p["member"]["roles"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r.as_str().map(String::from)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let user = user_id(p);
        let policy = self.inner.service.policy();
        match policy.person_by_discord_id(user) {
            Some(person) if !user.is_empty() => Ok(Caller { person: person.id.clone(), chat_roles: roles }),
            _ => Err(UserError::unauthenticated(format!(
                "Your Discord account (`{user}`) is not linked to anyone in elevate's policy. Ask an elevate admin to add `discord_id = \"{user}\"` to your `[persons.…]` entry."
            ))),
        }
    }

    /// The Discord user of a person, from the policy.
    pub(crate) fn discord_user(&self, person: &str) -> Option<String> {
        let id = PersonId::parse(person).ok()?;
        self.inner.service.policy().person(&id).and_then(|p| p.discord_id.clone())
    }

    /// A person as shown in Discord: a mention (which pings nobody: see `messages::quiet`)
    /// when the policy knows their Discord user, else their name.
    pub(crate) fn name(&self, person: &str) -> String {
        match self.discord_user(person) {
            Some(u) => text::mention(&u),
            None => text::escape(person),
        }
    }
}
