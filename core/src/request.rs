//! Requests, grants and approvals as the rest of core sees them.

use crate::{
    BatchId, EndReason, GrantDuration, PersonId, Reason, RequestId, RoleName, State, policy::rules::FiredRule,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a request asks for. Extensions and break-glass ride the same lifecycle as ordinary
/// requests so that approvals, timeouts, reminders and the audit trail are the same code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "parent")]
pub enum RequestKind {
    /// An ordinary `/elevate ROLE DURATION REASON`.
    Normal,
    /// More time on an active grant; once approved it moves the parent's `expires_at`.
    Extension(RequestId),
    /// Emergency access without approval; flagged, alerted and left for review.
    BreakGlass,
    /// A break-glass drill: real provider, short grant, revokes itself.
    Drill,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Normal => "normal",
            RequestKind::Extension(_) => "extension",
            RequestKind::BreakGlass => "breakglass",
            RequestKind::Drill => "drill",
        }
    }

    pub fn parent(self) -> Option<RequestId> {
        match self {
            RequestKind::Extension(p) => Some(p),
            _ => None,
        }
    }

    pub fn from_parts(kind: &str, parent: Option<i64>) -> Option<Self> {
        Some(match (kind, parent) {
            ("normal", _) => RequestKind::Normal,
            ("extension", Some(p)) => RequestKind::Extension(RequestId(p)),
            ("breakglass", _) => RequestKind::BreakGlass,
            ("drill", _) => RequestKind::Drill,
            _ => return None,
        })
    }
}

/// Where a request came from: the platform and, where there is one, the workspace, guild,
/// channel or token it was made in. Rules about allowed sources read this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Source {
    /// `api`, `cli`, `slack`, `discord`, `scheduler`.
    pub platform: String,
    /// The Slack team id, Discord guild id or API token name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl Source {
    pub fn api(token_name: &str) -> Self {
        Source { platform: "api".into(), tenant: Some(token_name.into()), channel: None }
    }
}

/// One request and, once applied, its grant. The grant's fields live on the request row because
/// the two are one-to-one; the provider-facing grant id is derived from the request id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub id: RequestId,
    pub kind: RequestKind,
    pub role: RoleName,
    pub requester: PersonId,
    pub duration: GrantDuration,
    pub reason: Reason,
    pub ticket: Option<String>,
    pub source: Source,
    pub state: State,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the grant was applied; the duration starts here, not at approval.
    pub granted_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set while `Revoking`: which final state the revoke ends in.
    pub ending: Option<EndReason>,
    /// Who ended or decided it, and why (deny reason, revoke reason, provider error).
    pub closed_by: Option<String>,
    pub note: Option<String>,
    /// What the provider returned when applying, kept so that revoke can undo exactly that.
    pub grant_handle: Option<serde_json::Value>,
    pub approvals: Vec<Approval>,
    /// Approvals a rule added on top of the role's (e.g. outside working hours).
    pub extra_approvals: u32,
    /// The rules that fired when it was requested.
    pub rules: Vec<FiredRule>,
    /// The post-incident review of a break-glass grant: `{"state": "open"}` until the security
    /// team marks it `{"state": "done", "by", "at", "note"}`.
    pub review: Option<serde_json::Value>,
    /// For scheduled access: when it starts; its window is counted from here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// The request of several roles this one is part of (one row per role), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchId>,
}

/// The [`FiredRule::effect`] that marks every role of a request granted in part (a bundle with
/// `partial = true`), kept with each row so the decision survives policy reloads.
pub const PARTIAL: &str = "partial";
/// The [`FiredRule::effect`] of a role left out of a request granted in part because a rule
/// refused it; the detail names the role and the rule, for the card and the API.
pub const REFUSED_ROLE: &str = "refused_role";

impl FiredRule {
    /// The mark of a role of a request granted in part (`bundle`: the bundle's name).
    pub fn partial(bundle: &str) -> FiredRule {
        FiredRule { rule: format!("bundle {bundle}"), effect: PARTIAL.into(), detail: None, credit: None }
    }

    /// A role left out of a request granted in part: "`logs-read` refused; the others go
    /// ahead. Refused by rule `night`: …".
    pub fn refused_role(role: &RoleName, rule: &str, message: &str) -> FiredRule {
        FiredRule {
            rule: rule.to_string(),
            effect: REFUSED_ROLE.into(),
            detail: Some(format!("`{role}` refused; the others go ahead. {message}")),
            credit: None,
        }
    }
}

impl Request {
    /// Whether this is a role of a request granted in part (see [`PARTIAL`]).
    pub fn granted_in_part(&self) -> bool {
        self.rules.iter().any(|f| f.effect == PARTIAL)
    }

    /// Whether this row is the one a batch bears the number of (or stands alone): the one the
    /// approval card is kept under.
    pub fn is_card_owner(&self) -> bool {
        self.batch.is_none_or(|b| b.lead() == self.id)
    }

    /// The request whose card shows this one.
    pub fn card_id(&self) -> RequestId {
        self.batch.map(BatchId::lead).unwrap_or(self.id)
    }

    pub fn grant_id(&self) -> String {
        self.id.grant_id()
    }

    pub fn approvers(&self) -> Vec<PersonId> {
        self.approvals.iter().map(|a| a.approver.clone()).collect()
    }

    pub fn review_open(&self) -> bool {
        self.review.as_ref().and_then(|r| r.get("state")).and_then(|s| s.as_str()) == Some("open")
    }

    pub fn is_dry_run(&self) -> bool {
        self.grant_handle.as_ref().and_then(|h| h.get("dry_run")).and_then(|v| v.as_bool()).unwrap_or(false)
    }
}

/// One approver's yes. Distinct approvers are enforced by the store's primary key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Approval {
    pub approver: PersonId,
    pub at: DateTime<Utc>,
}

/// A request as first written.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub role: RoleName,
    pub requester: PersonId,
    pub duration: GrantDuration,
    pub reason: Reason,
    pub ticket: Option<String>,
    pub source: Source,
    pub state: State,
    pub created_at: DateTime<Utc>,
    pub extra_approvals: u32,
    pub rules: Vec<FiredRule>,
    /// For requests refused by a rule at creation: who refused and why.
    pub closed_by: Option<String>,
    pub note: Option<String>,
    /// Scheduled access: when it starts.
    pub starts_at: Option<DateTime<Utc>>,
}
