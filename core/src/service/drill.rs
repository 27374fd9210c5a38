//! Break-glass drills: the emergency path run end to end against the real provider, with a
//! short grant marked as a drill that revokes itself, then a report of each step's timing and of
//! whether the provider really stopped listing the access. Something a team can run monthly.

use super::Service;
use crate::{
    GrantDuration, RequestId, State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    policy::Caller,
    request::{Request, RequestKind, Source},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

/// One step of a drill and when it happened.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrillStep {
    pub step: String,
    pub at: DateTime<Utc>,
    /// Seconds since the drill was started.
    pub after_secs: f64,
}

/// Where a drill stands.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DrillReport {
    pub id: i64,
    pub role: String,
    pub state: String,
    pub steps: Vec<DrillStep>,
    /// Whether the provider lists the grant right now (`None`: it could not be asked).
    pub listed_now: Option<bool>,
    /// Once the drill is over: true when the provider no longer lists the grant.
    pub removed: Option<bool>,
    pub note: Option<String>,
}

impl Service {
    /// Starts a drill for `role` as `caller` (who must be allowed break-glass for it, or be on
    /// the security team): applied at once without approval, held for `hold` (default 1 minute),
    /// then revoked by the scheduler like any other grant.
    pub async fn drill(&self, caller: &Caller, role: &str, hold: Option<&str>, source: Source) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let policy = self.policy();
        let role = policy.role(role)?;
        if !policy.may_breakglass(caller, role) && !policy.is_security(caller) {
            return Err(UserError::forbidden(format!(
                "Only the security team or people allowed break-glass for `{}` can drill it.",
                role.name
            ))
            .into());
        }
        let hold = match hold {
            Some(h) => GrantDuration::parse(h).map_err(UserError::invalid)?,
            None => GrantDuration::from_secs(60).expect("constant"),
        };
        if hold.secs() > 15 * 60 {
            return Err(UserError::invalid("A drill holds access for at most 15m.").into());
        }
        let now = self.now();
        let new = crate::request::NewRequest {
            kind: RequestKind::Drill,
            role: role.name.clone(),
            requester: caller.person.clone(),
            duration: hold,
            reason: crate::Reason::parse("break-glass drill").expect("constant"),
            ticket: None,
            source,
            state: State::Pending,
            created_at: now,
            extra_approvals: 0,
            rules: Vec::new(),
            closed_by: None,
            note: None,
            starts_at: None,
        };
        let ev = NewEvent::new(
            now,
            Actor::Person(caller.person.clone()),
            EventKind::RequestCreated,
            None,
            json!({ "role": role.name, "duration": hold.to_string(), "reason": "break-glass drill", "drill": true, "approvals_required": 0 }),
        );
        let req = self.store.create_request(new, ev, Vec::new()).await.map_err(CoreError::store)?;
        let details = json!({ "drill": true, "breakglass": true });
        self.approve_by_rule(req.id, "drill", details, Default::default(), Vec::new()).await
    }

    /// The drill's steps so far, and what the provider lists now.
    pub async fn drill_report(&self, id: RequestId) -> CoreResult<DrillReport> {
        let req = self.get(id).await?;
        if req.kind != RequestKind::Drill {
            return Err(UserError::invalid(format!("{id} is not a drill.")).into());
        }
        let events = self.store.events_for(id).await.map_err(CoreError::store)?;
        let start = req.created_at;
        let steps = events
            .iter()
            .filter_map(|e| {
                let step = match e.kind.as_str() {
                    "request.created" => "requested",
                    "request.approved" => "approved (break-glass, no human)",
                    "grant.applied" => "granted by the provider",
                    "grant.revoking" => "expiry reached, revoking",
                    "grant.expired" => "revoked by the provider",
                    "grant.failed" => "GRANT FAILED",
                    "grant.revoke_failed" => "REVOKE FAILED (retrying)",
                    _ => return None,
                };
                Some(DrillStep {
                    step: step.into(),
                    at: e.at,
                    after_secs: (e.at - start).num_milliseconds() as f64 / 1000.0,
                })
            })
            .collect();
        let policy = self.policy();
        let listed_now = match self.spec(&policy, &req, None) {
            Some((spec, provider)) => match provider.list().await {
                Ok(list) => Some(list.iter().any(|g| g.grant_id == spec.grant_id)),
                Err(_) => None,
            },
            None => None,
        };
        let over = req.state.is_final();
        Ok(DrillReport {
            id: id.0,
            role: req.role.to_string(),
            state: req.state.as_str().into(),
            steps,
            listed_now,
            removed: if over { listed_now.map(|l| !l) } else { None },
            note: req.note.clone(),
        })
    }
}
