//! Commands people give: approve, deny, cancel, revoke, release (requests: `request.rs`,
//! `batch.rs`; extensions: `extend.rs`).
//! Each checks the caller's authority against the policy as it is now, then asks the store to
//! apply one decision atomically.

use super::{Service, role_groups};
use crate::{
    EndReason, Field, Reason, RequestId, State, UserError,
    audit::{Actor, EventKind, NewEvent, details},
    error::{CoreResult, ErrorCode},
    policy::Caller,
    ports::{Change, Decision, DueKind, NewDue, Patch},
    request::{Request, Source},
};
use serde_json::json;

/// Who may end a grant: decided per command, checked under the row lock.
type Authority = Box<dyn Fn(&Request) -> bool + Send>;

/// A new request as an adapter parsed it. Strings are validated here, not in adapters.
#[derive(Debug, Clone, Default)]
pub struct RequestInput {
    pub role: String,
    /// `None`: the role's default.
    pub duration: Option<String>,
    pub reason: String,
    pub ticket: Option<String>,
    pub source: Source,
    /// Scheduled access: when it starts (`None`: now).
    pub start: Option<crate::schedule::StartSpec>,
}

/// What an approval did.
#[derive(Debug, Clone)]
pub struct ApproveOutcome {
    pub request: Request,
    pub approvals: u32,
    pub required: u32,
    /// For a request of several roles: the roles' requests this approval counted for, and
    /// every role's request as it now is (empty for a request of one role).
    pub approved: Vec<RequestId>,
    pub batch: Vec<Request>,
}

impl ApproveOutcome {
    /// Whether the request needs no more approvals (all of its roles', for several).
    pub fn completed(&self) -> bool {
        if self.batch.is_empty() {
            self.request.state != State::Pending
        } else {
            self.batch.iter().all(|r| r.state != State::Pending)
        }
    }
}

fn final_state_message(req: &Request) -> String {
    match req.state {
        State::Pending => format!("Request {} is still pending.", req.id),
        State::Waiting => format!("Request {} is approved and waiting for the other roles of its request.", req.id),
        State::Scheduled => format!("Request {} is already approved and scheduled to start.", req.id),
        State::Approved => format!("Request {} is already approved and being applied.", req.id),
        State::Active => format!("Request {} is already approved and active.", req.id),
        s => format!("Request {} is already {s}; nothing can change it now.", req.id),
    }
}

impl Service {
    pub(super) fn known_caller(&self, caller: &Caller) -> CoreResult<()> {
        if self.policy().person(&caller.person).is_none() {
            return Err(UserError::unauthenticated(format!(
                "`{}` is not a person in elevate's policy; ask an admin to add you.",
                caller.person
            ))
            .into());
        }
        Ok(())
    }

    /// An approver's yes. Authority is checked now, from the policy as it is now, inside the
    /// store's lock on the request: of any number of concurrent clicks exactly one reaches the
    /// threshold, and a second click by the same person is refused. Refusals are audited.
    pub async fn approve(&self, caller: &Caller, id: RequestId) -> CoreResult<ApproveOutcome> {
        self.known_caller(caller)?;
        if let Some(batch) = self.get(id).await?.batch {
            return self.approve_batch(caller, batch).await;
        }
        self.approve_one(caller, id).await
    }

    /// One row's approval (a request of one role, or one role of several).
    pub(super) async fn approve_one(&self, caller: &Caller, id: RequestId) -> CoreResult<ApproveOutcome> {
        let policy = self.policy();
        let ttl = policy.settings.scheduled_approval_ttl;
        let caller_c = caller.clone();
        let now = self.now();
        let actor = Actor::Person(caller.person.clone());
        let f = Box::new(move |req: &Request| -> Decision {
            let refuse = |e: UserError| {
                let ev = NewEvent::new(
                    now,
                    actor.clone(),
                    EventKind::ApprovalRefused,
                    Some(req.id),
                    json!({ "why": e.message, "state": req.state.as_str() }),
                );
                Decision::Refuse(e, Some(ev))
            };
            if req.state != State::Pending {
                return refuse(UserError::conflict(final_state_message(req)));
            }
            let Some(role) = policy.roles.get(&req.role) else {
                return refuse(UserError::conflict(format!("Role `{}` no longer exists.", req.role)));
            };
            if !policy.may_approve(&caller_c, role, now - req.created_at) {
                return refuse(UserError::forbidden(format!(
                    "You are not an approver for `{}` (approvers: {}).",
                    role.name,
                    role_groups(role, true)
                )));
            }
            if req.requester == caller_c.person && !role.self_approval {
                return refuse(UserError::forbidden(format!(
                    "You cannot approve your own request {}: another approver must.",
                    req.id
                )));
            }
            let threshold = req.threshold(&policy);
            if req.approvals.iter().any(|a| a.approver == caller_c.person) {
                return refuse(UserError::conflict(format!(
                    "You have already approved {}; it needs {} approvals from different people.",
                    req.id,
                    threshold.from_people()
                )));
            }
            let count = req.approvals.len() + 1;
            let mut approvers: Vec<String> = req.approvals.iter().map(|a| a.approver.to_string()).collect();
            approvers.push(caller_c.person.to_string());
            let mut body =
                json!({ "approvals": threshold.given(count), "required": threshold.required, "approvers": approvers });
            if let Some(credit) = crate::threshold::credit_details(threshold, &req.rules) {
                body["credited"] = json!(threshold.credited);
                body["on_call"] = credit;
            }
            let done = threshold.met(count);
            // Scheduled access: the requester must still be allowed what they asked for.
            if req.starts_at.is_some()
                && let Err(why) = super::scheduled::still_allowed(&policy, req)
            {
                return refuse(UserError::conflict(format!("{} cannot be approved: {why}.", req.id)));
            }
            if done
                && req.batch.is_none()
                && let Some(mut change) = super::scheduled::scheduled(req, now, actor.clone(), &body, ttl)
            {
                change.approval = Some(caller_c.person.clone());
                Decision::from(change)
            } else if done && req.batch.is_some() {
                // One role of several: its approvals are in; it is applied with the others.
                let mut change = super::batch::waiting(req, now, actor.clone(), body);
                change.approval = Some(caller_c.person.clone());
                Decision::from(change)
            } else if done {
                Decision::from(Change {
                    to: Some(State::Approved),
                    approval: Some(caller_c.person.clone()),
                    event: Some(NewEvent::new(now, actor.clone(), EventKind::RequestApproved, Some(req.id), body)),
                    schedule: vec![NewDue::new(DueKind::Apply, req.id, now)],
                    cancel: vec![DueKind::PendingTimeout, DueKind::Reminder, DueKind::Escalate],
                    ..Change::default()
                })
            } else {
                Decision::from(Change {
                    approval: Some(caller_c.person.clone()),
                    event: Some(NewEvent::new(now, actor.clone(), EventKind::ApprovalAdded, Some(req.id), body)),
                    ..Change::default()
                })
            }
        });
        let req = self.decide(id, f).await?;
        let threshold = req.threshold(&self.policy());
        if req.state == State::Approved {
            self.wake.wake();
        }
        Ok(ApproveOutcome {
            approvals: threshold.given(req.approvals.len()),
            required: threshold.required,
            approved: vec![req.id],
            batch: Vec::new(),
            request: req,
        })
    }

    /// An approver's (or the security team's) no, with a reason the requester will see.
    /// For a request of several roles, every role the caller may deny is denied, and the rest
    /// end with them (nothing is granted in part).
    pub async fn deny(&self, caller: &Caller, id: RequestId, reason: &str) -> CoreResult<Request> {
        self.known_caller(caller)?;
        if let Some(batch) = self.get(id).await?.batch {
            return self.deny_batch(caller, batch, reason).await;
        }
        self.deny_one(caller, id, reason).await
    }

    pub(super) async fn deny_one(&self, caller: &Caller, id: RequestId, reason: &str) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let reason = Reason::parse(reason)
            .map_err(|e| UserError::invalid(format!("A denial needs a reason: {e}")).on(Field::Reason))?;
        let policy = self.policy();
        let caller_c = caller.clone();
        let now = self.now();
        let f = Box::new(move |req: &Request| -> Decision {
            if !matches!(req.state, State::Pending | State::Waiting) {
                return Decision::Refuse(UserError::conflict(final_state_message(req)), None);
            }
            let security = policy.is_security(&caller_c);
            let approver = policy.roles.get(&req.role).is_some_and(|r| policy.is_approver(&caller_c, r));
            if !security && !approver {
                return Decision::Refuse(
                    UserError::forbidden(format!(
                        "Only approvers of `{}` or the security team can deny {}.",
                        req.role, req.id
                    )),
                    None,
                );
            }
            Decision::from(Change {
                to: Some(State::Denied),
                patch: Patch {
                    closed_by: Some(caller_c.person.to_string()),
                    note: Some(reason.to_string()),
                    ..Patch::default()
                },
                event: Some(NewEvent::new(
                    now,
                    Actor::Person(caller_c.person.clone()),
                    EventKind::RequestDenied,
                    Some(req.id),
                    json!({ "reason": reason, "as": if approver { "approver" } else { "security" } }),
                )),
                cancel: vec![DueKind::PendingTimeout, DueKind::Reminder, DueKind::Escalate],
                ..Change::default()
            })
        });
        self.decide(id, f).await
    }

    /// The requester withdraws a pending request.
    pub async fn cancel(&self, caller: &Caller, id: RequestId) -> CoreResult<Request> {
        self.known_caller(caller)?;
        if let Some(batch) = self.get(id).await?.batch {
            return self.cancel_batch(caller, batch).await;
        }
        self.cancel_one(caller, id).await
    }

    pub(super) async fn cancel_one(&self, caller: &Caller, id: RequestId) -> CoreResult<Request> {
        let caller_c = caller.clone();
        let now = self.now();
        let body = details([("actor_kind", self.service_marker(&caller.person))]);
        let f = Box::new(move |req: &Request| -> Decision {
            if req.requester != caller_c.person {
                return Decision::Refuse(
                    UserError::forbidden(format!("Only {} can cancel {}.", req.requester, req.id)),
                    None,
                );
            }
            if !matches!(req.state, State::Pending | State::Waiting | State::Scheduled) {
                let hint = if req.state == State::Active { " Use release to give the access back." } else { "" };
                return Decision::Refuse(UserError::conflict(format!("{}{hint}", final_state_message(req))), None);
            }
            Decision::from(Change {
                to: Some(State::Cancelled),
                patch: Patch { closed_by: Some(caller_c.person.to_string()), ..Patch::default() },
                event: Some(NewEvent::new(
                    now,
                    Actor::Person(caller_c.person.clone()),
                    EventKind::RequestCancelled,
                    Some(req.id),
                    body.clone(),
                )),
                cancel: vec![
                    DueKind::PendingTimeout,
                    DueKind::Reminder,
                    DueKind::Escalate,
                    DueKind::Start,
                    DueKind::ApprovalExpiry,
                ],
                ..Change::default()
            })
        });
        self.decide(id, f).await
    }

    /// Takes access away before its time: an approver of the role or the security team.
    pub async fn revoke(&self, caller: &Caller, id: RequestId, reason: &str) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let reason = Reason::parse(reason).map_err(|e| UserError::invalid(format!("A revoke needs a reason: {e}")))?;
        let policy = self.policy();
        let c = caller.clone();
        let allowed = move |req: &Request| {
            policy.is_security(&c) || policy.roles.get(&req.role).is_some_and(|r| policy.is_approver(&c, r))
        };
        self.end(Actor::Person(caller.person.clone()), id, EndReason::Revoked, Some(reason), Box::new(allowed)).await
    }

    /// "I'm done": the requester gives access back early.
    pub async fn release(&self, caller: &Caller, id: RequestId) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let person = caller.person.clone();
        let allowed = move |req: &Request| req.requester == person;
        self.end(Actor::Person(caller.person.clone()), id, EndReason::Released, None, Box::new(allowed)).await
    }

    /// Moves an active grant to `revoking` (or an approved one straight to `revoked`), as `by`.
    pub(super) async fn end(
        &self,
        by: Actor,
        id: RequestId,
        ending: EndReason,
        reason: Option<Reason>,
        allowed: Authority,
    ) -> CoreResult<Request> {
        let now = self.now();
        let closed_by = match &by {
            Actor::Person(p) => p.to_string(),
            other => other.to_string(),
        };
        let actor_kind = match &by {
            Actor::Person(p) => self.service_marker(p),
            _ => None,
        };
        let f = Box::new(move |req: &Request| -> Decision {
            let verb = if ending == EndReason::Released { "release" } else { "revoke" };
            if !allowed(req) {
                let who = if ending == EndReason::Released {
                    format!("Only {} can release {}.", req.requester, req.id)
                } else {
                    format!("Only approvers of `{}` or the security team can revoke {}.", req.role, req.id)
                };
                return Decision::Refuse(UserError::forbidden(who), None);
            }
            let actor = by.clone();
            let body = details([
                ("ending", Some(json!(ending.as_str()))),
                ("reason", Some(json!(reason))),
                ("actor_kind", actor_kind.clone()),
            ]);
            let patch = Patch {
                ending: Some(ending),
                closed_by: Some(closed_by.clone()),
                note: reason.as_ref().map(|r| r.to_string()),
                ..Patch::default()
            };
            match req.state {
                State::Active => Decision::from(Change {
                    to: Some(State::Revoking),
                    patch,
                    event: Some(NewEvent::new(now, actor, EventKind::GrantRevoking, Some(req.id), body)),
                    schedule: vec![NewDue::new(DueKind::Revoke, req.id, now)],
                    cancel: vec![DueKind::Expire, DueKind::ExpiryWarning, DueKind::Refresh],
                    ..Change::default()
                }),
                // Approved but not yet applied: stop the apply, and clean up in case a previous
                // attempt reached the provider before failing.
                State::Approved if ending == EndReason::Revoked => Decision::from(Change {
                    to: Some(State::Revoked),
                    patch,
                    event: Some(NewEvent::new(now, actor, EventKind::GrantRevoked, Some(req.id), body)),
                    schedule: vec![NewDue::new(DueKind::Cleanup, req.id, now)],
                    cancel: vec![DueKind::Apply],
                    ..Change::default()
                }),
                // Approved ahead of its start, holding nothing: revoked at once.
                State::Scheduled if ending == EndReason::Revoked => Decision::from(Change {
                    to: Some(State::Revoked),
                    patch,
                    event: Some(NewEvent::new(now, actor, EventKind::GrantRevoked, Some(req.id), body)),
                    cancel: super::scheduled::BEFORE_START.to_vec(),
                    ..Change::default()
                }),
                State::Scheduled => Decision::Refuse(
                    UserError::conflict(format!("{} has not started yet: cancel it instead.", req.id)),
                    None,
                ),
                State::Pending | State::Waiting => Decision::Refuse(
                    UserError::conflict(if ending == EndReason::Released {
                        format!("{} is still pending: cancel it instead.", req.id)
                    } else {
                        format!("{} is still pending: deny it instead.", req.id)
                    }),
                    None,
                ),
                State::Revoking => {
                    Decision::Refuse(UserError::conflict(format!("{} is already being removed.", req.id)), None)
                }
                _ => Decision::Refuse(
                    UserError::new(ErrorCode::Conflict, format!("Cannot {verb}: {}", final_state_message(req))),
                    None,
                ),
            }
        });
        let req = self.decide(id, f).await?;
        self.wake.wake();
        Ok(req)
    }
}
