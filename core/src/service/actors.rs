//! Who may act at all, before the policy is asked: only active, human, full members of the
//! configured workspace or server. A chat platform's adapter reads what the platform says about
//! the account and asks here; the refusal is worded once and audited, since attempts by bots,
//! guests or strangers are exactly what a security team wants to see.

use super::Service;
use crate::{
    UserError,
    audit::{Actor, EventKind, NewEvent},
};
use serde_json::json;

/// Why a chat account may not use elevate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAllowed {
    /// A bot or app user: it could carry a person's email without being them.
    Bot,
    /// A deactivated or deleted account.
    Deactivated,
    /// A guest (single- or multi-channel), not a full member.
    Guest,
    /// An account of another workspace or server (a shared channel, another guild, another
    /// organisation's workspace); the id is the other tenant's, as the platform gave it.
    OtherTenant(String),
}

impl NotAllowed {
    fn code(&self) -> &'static str {
        match self {
            NotAllowed::Bot => "bot",
            NotAllowed::Deactivated => "deactivated",
            NotAllowed::Guest => "guest",
            NotAllowed::OtherTenant(_) => "other_tenant",
        }
    }

    fn message(&self) -> String {
        let why = match self {
            NotAllowed::Bot => "bot and app accounts cannot".to_string(),
            NotAllowed::Deactivated => "deactivated accounts cannot".to_string(),
            NotAllowed::Guest => "guest accounts cannot".to_string(),
            NotAllowed::OtherTenant(t) => {
                format!("accounts of another workspace or server (`{}`) cannot", t.chars().take(32).collect::<String>())
            }
        };
        format!(
            "elevate acts only for active human members of this workspace: {why} request, approve or change anything."
        )
    }
}

impl Service {
    /// `"service"` when `person` is a service identity, for the `actor_kind` (or
    /// `requester_kind`) of the events it causes: the actor of an event is `person:NAME` for
    /// persons and services alike, and this tells them apart in the audit trail.
    pub(super) fn service_marker(&self, person: &crate::PersonId) -> Option<serde_json::Value> {
        self.policy().person(person).is_some_and(|p| p.is_service()).then(|| json!("service"))
    }

    /// Records that `user` of `platform` was refused, and returns the refusal to show them.
    /// A failure to record is logged; the refusal stands either way.
    pub async fn refuse_actor(&self, platform: &str, user: &str, why: NotAllowed) -> UserError {
        let details = json!({
            "platform": platform,
            "user": user.chars().take(64).collect::<String>(),
            "why": why.code(),
            "tenant": match &why { NotAllowed::OtherTenant(t) => Some(t.chars().take(64).collect::<String>()), _ => None },
        });
        let ev = NewEvent::new(self.now(), Actor::System, EventKind::ActorRefused, None, details);
        if let Err(e) = self.store.append_event(ev).await {
            tracing::warn!(platform, error = %e, "could not record a refused chat actor");
        }
        UserError::forbidden(why.message())
    }
}
