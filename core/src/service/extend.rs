//! Extensions: more time on an active grant, asked as a request of its own (kind `extension`)
//! that goes through the role's approvals like any other.

use super::Service;
use crate::{
    Field, GrantDuration, Reason, RequestId, State, UserError,
    audit::{Actor, EventKind, NewEvent, details},
    error::{CoreError, CoreResult},
    policy::Caller,
    ports::{DueKind, NewDue},
    request::{NewRequest, PARTIAL, REFUSED_ROLE, Request, RequestKind},
};
use serde_json::json;

/// What an extension did: it is a new request that needs approval like any other.
#[derive(Debug, Clone)]
pub struct ExtendOutcome {
    pub extension: Request,
    pub parent: Request,
}

impl Service {
    /// More time on an active grant. It is a request of its own (kind `extension`) that goes
    /// through the role's approvals; it can never take the grant past the role's max total.
    pub async fn extend(
        &self,
        caller: &Caller,
        id: RequestId,
        duration: &str,
        reason: Option<&str>,
    ) -> CoreResult<ExtendOutcome> {
        self.known_caller(caller)?;
        let policy = self.policy();
        let parent = self.get(id).await?;
        if parent.requester != caller.person {
            return Err(UserError::forbidden(format!("Only {} can extend {}.", parent.requester, parent.id)).into());
        }
        if parent.state != State::Active {
            return Err(UserError::conflict(format!(
                "Only an active grant can be extended; {} is {}.",
                parent.id, parent.state
            ))
            .into());
        }
        let extra = GrantDuration::parse(duration).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
        let role = policy.role(parent.role.as_str())?;
        let (Some(granted), Some(expires)) = (parent.granted_at, parent.expires_at) else {
            return Err(CoreError::Internal(format!("active request {} has no grant window", parent.id)));
        };
        let held = (expires - granted).num_seconds();
        let left = role.max_total_duration.secs() - held;
        if extra.secs() > left {
            let msg = if left <= 0 {
                format!(
                    "{} already runs for `{}`'s max total of {}; it cannot be extended.",
                    parent.id, role.name, role.max_total_duration
                )
            } else {
                let left = GrantDuration::from_secs(left).expect("positive");
                format!(
                    "That would take {} past `{}`'s max total of {}; you can extend by at most {left}.",
                    parent.id, role.name, role.max_total_duration
                )
            };
            return Err(UserError::invalid(msg).on(Field::Duration).into());
        }
        let reason = match reason.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) => Reason::parse(r).map_err(|e| UserError::invalid(e).on(Field::Reason))?,
            None => Reason::parse(&format!("extension of {}: {}", parent.id, parent.reason))
                .or_else(|_| Reason::parse(&format!("extension of {}", parent.id)))
                .map_err(UserError::invalid)?,
        };
        let now = self.now();
        let new = NewRequest {
            kind: RequestKind::Extension(parent.id),
            role: parent.role.clone(),
            requester: caller.person.clone(),
            duration: extra,
            reason: reason.clone(),
            ticket: parent.ticket.clone(),
            source: parent.source.clone(),
            state: State::Pending,
            created_at: now,
            extra_approvals: parent.extra_approvals,
            // Being on call counted for the request as it was made, and the marks of a request
            // granted in part belong to its batch: more time is asked of people, alone.
            rules: parent
                .rules
                .iter()
                .filter(|f| f.credit.is_none() && ![PARTIAL, REFUSED_ROLE].contains(&f.effect.as_str()))
                .cloned()
                .collect(),
            closed_by: None,
            note: None,
            starts_at: None,
        };
        let threshold = crate::Threshold::new(new.kind, role.approvals_required, new.extra_approvals, &new.rules);
        let event = NewEvent::new(
            now,
            Actor::Person(caller.person.clone()),
            EventKind::RequestCreated,
            None,
            details([
                ("role", Some(json!(parent.role))),
                ("duration", Some(json!(extra.to_string()))),
                ("reason", Some(json!(reason))),
                ("extends", Some(json!(parent.id.0))),
                ("approvals_required", Some(json!(threshold.required))),
                ("requester_kind", self.service_marker(&caller.person)),
            ]),
        );
        let due = vec![NewDue {
            kind: DueKind::PendingTimeout,
            request: None,
            // An extension left pending past the grant's end is moot.
            due_at: (now + role.pending_timeout.as_chrono()).min(expires),
            payload: serde_json::Value::Null,
        }];
        let extension = self.store.create_request(new, event, due).await.map_err(CoreError::store)?;
        self.wake.wake();
        Ok(ExtendOutcome { extension, parent })
    }
}
