//! Requests of several roles at once (`/elevate db-admin,logs-read 2h …`, or a bundle).
//!
//! One row per role, linked by their batch (the first row's id), so that each role keeps its
//! own approvals, thresholds, grant, expiry, extension and revoke, and the scheduler's work is
//! the same as for a request of one role. What makes them one request:
//!
//! - Asked as one: every role is checked (who may request, duration against its maximum,
//!   ticket, lockdown, rules) before anything is written, and one refusal refuses them all,
//!   naming the role and the rule. The rows are written in one transaction.
//! - Granted as one: a role whose approvals are in moves to `waiting` and holds nothing; once
//!   every role is waiting, all move to `approved` and are applied (to `scheduled`, for a
//!   request with a start: see `scheduled.rs`). A role denied, cancelled, timed out or revoked
//!   before it was granted ends the others (denied by rule `batch`). There is no partial grant,
//!   unless the request was a bundle with `partial = true` (every row marked
//!   [`crate::request::PARTIAL`]): then a role a rule refuses is left out before anything is
//!   written, and a role that ends before its grant is left out; the check grants the waiting
//!   roles once none is pending.
//! - Every move into `waiting` or out of the open states queues a [`DueKind::BatchCheck`] in
//!   its own transaction, so the step that completes or ends the batch survives a crash, and
//!   of any number of checks each row moves once (compare-and-set).
//! - Once granted, each role lives on its own: it expires at its own time and can be released,
//!   extended or revoked alone.

use super::{RequestInput, Service, request::Draft, role_groups};
use crate::{
    BatchId, Field, GrantDuration, Reason, RoleName, State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    policy::{
        Caller, Role,
        rules::{FiredRule, Refusal, Verdict},
    },
    ports::{Change, DecideFn, Decision, DueItem, DueKind, NewDue, RequestQuery},
    request::{Request, RequestKind},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The actor that ends the other roles of a request one of whose roles was refused.
const BATCH_RULE: &str = "batch";

/// Pending → waiting: one role's approvals are in; it is applied with the others. The
/// event is an added approval: the request as a whole is not approved yet.
pub(super) fn waiting(r: &Request, now: DateTime<Utc>, actor: Actor, mut details: Value) -> Change {
    details["waiting_for_other_roles"] = json!(true);
    Change {
        to: Some(State::Waiting),
        event: Some(NewEvent::new(now, actor, EventKind::ApprovalAdded, Some(r.id), details)),
        cancel: vec![DueKind::Reminder, DueKind::Escalate],
        ..Change::default()
    }
}

/// Adds a [`DueKind::BatchCheck`] to every change that moves a role of a batch into
/// `waiting` or ends it before it was granted, in the same transaction.
pub(super) fn with_batch_check(f: DecideFn, now: DateTime<Utc>) -> DecideFn {
    Box::new(move |r: &Request| match f(r) {
        Decision::Change(mut c)
            if r.batch.is_some()
                && c.to.is_some_and(|to| {
                    matches!(to, State::Waiting | State::Denied | State::Cancelled | State::TimedOut | State::Revoked)
                }) =>
        {
            c.schedule.push(NewDue::new(DueKind::BatchCheck, r.id, now));
            Decision::Change(c)
        }
        other => other,
    })
}

fn names(roles: &[&Role]) -> String {
    roles.iter().map(|r| format!("`{}`", r.name)).collect::<Vec<_>>().join(", ")
}

impl Service {
    /// Every role's request of a batch, in the order the roles were asked for.
    pub async fn batch_members(&self, batch: BatchId) -> CoreResult<Vec<Request>> {
        let q = RequestQuery { batch: Some(batch), ..RequestQuery::default() };
        let mut members = self.store.list_requests(&q).await.map_err(CoreError::store)?;
        members.sort_by_key(|r| r.id);
        Ok(members)
    }

    /// The requests shown together with `req`: its batch, or itself alone.
    pub async fn with_batch(&self, req: &Request) -> CoreResult<Vec<Request>> {
        match req.batch {
            Some(b) => self.batch_members(b).await,
            None => Ok(vec![req.clone()]),
        }
    }

    /// A request of several roles. Returns the first role's request (its number is the
    /// request's); [`Service::batch_members`] gives them all.
    pub(super) async fn request_batch(
        &self,
        caller: &Caller,
        roles: &[&Role],
        input: RequestInput,
        starts_at: Option<DateTime<Utc>>,
    ) -> CoreResult<Request> {
        let policy = self.policy();
        for role in roles {
            if !policy.may_request(caller, role) {
                return Err(UserError::forbidden(format!(
                    "Nothing was requested: you may not request `{}`: it is open to members of {}.",
                    role.name,
                    role_groups(role, false)
                ))
                .on(Field::Role)
                .into());
            }
        }
        // One duration for every role: the one asked for, else the shortest of the defaults.
        let duration = match input.duration.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => roles.iter().map(|r| r.default_duration).min().expect("at least two roles"),
            Some(s) => GrantDuration::parse(s).map_err(|e| UserError::invalid(e).on(Field::Duration))?,
        };
        if let Some(role) = roles.iter().find(|r| duration > r.max_duration) {
            return Err(UserError::invalid(format!(
                "Nothing was requested: `{}` can be held for at most {}; ask for {} or less for all of {}.",
                role.name,
                role.max_duration,
                role.max_duration,
                names(roles)
            ))
            .on(Field::Duration)
            .into());
        }
        let reason = match Reason::parse(&input.reason) {
            Ok(r) => r,
            Err(_) if roles.iter().all(|r| !r.reason_required) && input.reason.trim().is_empty() => {
                Reason::parse("(no reason given)").expect("constant")
            }
            Err(e) => return Err(UserError::invalid(e).on(Field::Reason).into()),
        };
        let mut drafts = Vec::with_capacity(roles.len());
        for role in roles {
            let ticket = role
                .ticket(input.ticket.as_deref(), reason.as_str())
                .map_err(|e| UserError { message: format!("`{}`: {}", role.name, e.message), ..e }.on(Field::Ticket))?;
            let source = input.source.clone();
            drafts.push(Draft {
                kind: RequestKind::Normal,
                duration,
                reason: reason.clone(),
                ticket,
                source,
                starts_at,
            });
        }
        // Lockdowns and rules, role by role; the first refusal refuses the whole request. It is
        // recorded against the role it concerns (rate limits count refused attempts). Granted
        // in part (a bundle with `partial = true`), a refused role is recorded the same way and
        // left out, and the others go ahead; when every role is refused, so is the request.
        let partial = policy.partial_bundle(&input.role).map(|b| b.name.clone());
        let mut verdicts = Vec::with_capacity(roles.len());
        let mut on_calls = Vec::with_capacity(roles.len());
        let mut kept: Vec<&Role> = Vec::with_capacity(roles.len());
        let mut kept_drafts = Vec::with_capacity(roles.len());
        let mut left_out: Vec<(FiredRule, CoreError)> = Vec::new();
        for (role, mut draft) in roles.iter().copied().zip(drafts) {
            if let Some(l) = self.lockdown_for(role, false).await? {
                let locked = format!(
                    "`{}` is locked down by {} since {}: {}.",
                    role.name,
                    l.locked_by,
                    crate::render::time(l.locked_at),
                    l.reason
                );
                let message = match partial {
                    Some(_) => locked,
                    None => format!(
                        "Nothing was requested: {locked} Ask for the other roles without it, or ask the security \
                         team to unlock it."
                    ),
                };
                let refusal = Refusal { rule: "lockdown".into(), message, alert: false, revoke_grants: false };
                match partial {
                    Some(_) => left_out.push(self.leave_out(caller, role, draft, refusal, &Verdict::default()).await?),
                    None => return Err(self.refuse(caller, role, draft, &refusal, &Verdict::default()).await),
                }
                continue;
            }
            let verdict = self.rules_for(caller, role, &draft.source, false, None).await?;
            if let Some(refusal) = verdict.refusal.clone() {
                if partial.is_some() {
                    left_out.push(self.leave_out(caller, role, draft, refusal, &verdict).await?);
                    continue;
                }
                let refusal = Refusal {
                    message: format!(
                        "Nothing was requested: rule `{}` refuses `{}`: {}",
                        refusal.rule, role.name, refusal.message
                    ),
                    ..refusal
                };
                return Err(self.refuse(caller, role, draft, &refusal, &verdict).await);
            }
            // Tickets that must exist and on-call rules, as for a request of one role: a ticket
            // refused for any role refuses the whole request, before anything is written.
            let mut verdict = verdict;
            let tickets = self.ticket_rules(&policy, caller, role, draft.ticket.take(), draft.reason.as_str()).await?;
            draft.ticket = tickets.ticket;
            verdict.fired.extend(tickets.fired);
            let on_call = self.on_call_rules(&policy, caller, role).await;
            verdict.fired.extend(on_call.fired);
            on_calls.push(on_call.approve);
            verdicts.push(verdict);
            kept.push(role);
            kept_drafts.push(draft);
        }
        if kept.is_empty() {
            let (_, first) = left_out.into_iter().next().ok_or_else(|| CoreError::Internal("no roles".into()))?;
            return Err(first);
        }
        if let Some(bundle) = &partial {
            // Every role keeps the mark (its batch check reads it) and the roles left out.
            let notes: Vec<FiredRule> = left_out.into_iter().map(|(f, _)| f).collect();
            for v in &mut verdicts {
                v.fired.push(FiredRule::partial(bundle.as_str()));
                v.fired.extend(notes.iter().cloned());
            }
        }
        let roles = kept;
        let all: Vec<RoleName> = roles.iter().map(|r| r.name.clone()).collect();
        let mut members = Vec::with_capacity(roles.len());
        for ((role, draft), verdict) in roles.iter().zip(kept_drafts).zip(&verdicts) {
            let others: Vec<RoleName> = all.iter().filter(|n| **n != role.name).cloned().collect();
            members.push(self.pending_parts(caller, role, draft, verdict, &others));
        }
        let first_due = members.iter().flat_map(|(_, _, due)| due.iter().map(|d| d.due_at)).min();
        let created = self.store.create_batch(members).await.map_err(CoreError::store)?;
        if let Some(at) = first_due {
            self.wake.due(at);
        }
        for (((req, role), verdict), on_call) in created.iter().zip(roles.iter().copied()).zip(&verdicts).zip(on_calls)
        {
            self.approve_without_people(&policy, caller, role, req.clone(), verdict, on_call).await?;
        }
        let lead = created.first().map(|r| r.id).ok_or_else(|| CoreError::Internal("empty batch".into()))?;
        self.get(lead).await
    }

    /// Records `role` refused by `refusal` (as a refusal of one role is recorded, so rate limits
    /// count it) and returns the note kept with the other roles, and the refusal to answer
    /// with should every role be refused.
    async fn leave_out(
        &self,
        caller: &Caller,
        role: &Role,
        draft: Draft,
        refusal: Refusal,
        verdict: &Verdict,
    ) -> CoreResult<(FiredRule, CoreError)> {
        let note = FiredRule::refused_role(&role.name, &refusal.rule, &refusal.message);
        match self.refuse(caller, role, draft, &refusal, verdict).await {
            e @ CoreError::User(_) => Ok((note, e)),
            other => Err(other),
        }
    }

    /// One click approves every role of the request that the caller may approve now. If they
    /// may approve none, the refusal is that of the first role still waiting for approvals
    /// (audited like any refused approval).
    pub(super) async fn approve_batch(&self, caller: &Caller, batch: BatchId) -> CoreResult<super::ApproveOutcome> {
        let policy = self.policy();
        let now = self.now();
        let members = self.batch_members(batch).await?;
        let pending: Vec<&Request> = members.iter().filter(|r| r.state == State::Pending).collect();
        let mine: Vec<&Request> = pending
            .iter()
            .copied()
            .filter(|r| {
                policy.roles.get(&r.role).is_some_and(|role| {
                    policy.may_approve(caller, role, now - r.created_at)
                        && (r.requester != caller.person || role.self_approval)
                })
            })
            .filter(|r| !r.approvals.iter().any(|a| a.approver == caller.person))
            .collect();
        if mine.is_empty() {
            let first = pending.first().map(|r| r.id).unwrap_or(batch.lead());
            // Refused (and audited) by the ordinary check, which names the reason.
            let outcome = self.approve_one(caller, first).await?;
            return self.batch_outcome(batch, outcome.approved).await;
        }
        let mut approved = Vec::new();
        let mut first_error = None;
        for r in mine {
            match self.approve_one(caller, r.id).await {
                Ok(o) => approved.push(o.request.id),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if approved.is_empty() => Err(e),
            _ => self.batch_outcome(batch, approved).await,
        }
    }

    async fn batch_outcome(
        &self,
        batch: BatchId,
        approved: Vec<crate::RequestId>,
    ) -> CoreResult<super::ApproveOutcome> {
        let policy = self.policy();
        let members = self.batch_members(batch).await?;
        let request = members.first().cloned().ok_or_else(|| CoreError::Internal("empty batch".into()))?;
        let threshold = |r: &Request| r.threshold(&policy);
        Ok(super::ApproveOutcome {
            approvals: members.iter().map(|r| threshold(r).given(r.approvals.len()).min(threshold(r).required)).sum(),
            required: members.iter().map(|r| threshold(r).required).sum(),
            approved,
            batch: members,
            request,
        })
    }

    /// Denies every open role of the request the caller may deny; the others end with them.
    pub(super) async fn deny_batch(&self, caller: &Caller, batch: BatchId, reason: &str) -> CoreResult<Request> {
        let policy = self.policy();
        let members = self.batch_members(batch).await?;
        let open: Vec<&Request> =
            members.iter().filter(|r| matches!(r.state, State::Pending | State::Waiting)).collect();
        let mine: Vec<&Request> = open
            .iter()
            .copied()
            .filter(|r| {
                policy.is_security(caller)
                    || policy.roles.get(&r.role).is_some_and(|role| policy.is_approver(caller, role))
            })
            .collect();
        let Some(first) = mine.first() else {
            // Refused by the ordinary check, which names who may deny.
            let id = open.first().map(|r| r.id).unwrap_or(batch.lead());
            return self.deny_one(caller, id, reason).await;
        };
        let denied = self.deny_one(caller, first.id, reason).await?;
        for r in &mine[1..] {
            if let Err(e) = self.deny_one(caller, r.id, reason).await {
                tracing::info!(request = %r.id, error = %e, "role of a denied request already decided");
            }
        }
        Ok(denied)
    }

    /// The requester withdraws every open role of the request.
    pub(super) async fn cancel_batch(&self, caller: &Caller, batch: BatchId) -> CoreResult<Request> {
        let members = self.batch_members(batch).await?;
        let mut open: Vec<&Request> =
            members.iter().filter(|r| matches!(r.state, State::Pending | State::Waiting | State::Scheduled)).collect();
        // Roles whose approvals are in go first: granted in part, a batch check between two of
        // these cancellations grants the waiting roles once no role is pending, so the pending
        // ones must be the last to go.
        open.sort_by_key(|r| r.state == State::Pending);
        let Some(first) = open.first() else {
            return self.cancel_one(caller, batch.lead()).await;
        };
        let cancelled = self.cancel_one(caller, first.id).await?;
        for r in &open[1..] {
            if let Err(e) = self.cancel_one(caller, r.id).await {
                tracing::info!(request = %r.id, error = %e, "role of a cancelled request already decided");
            }
        }
        Ok(cancelled)
    }

    /// After a role of a batch was decided: when every role is waiting, all are approved and
    /// applied; when one was refused, the open ones are denied. Safe to run twice, and any
    /// number of checks at once: each row moves by compare-and-set.
    pub(super) async fn run_batch_check(&self, item: DueItem, req: Request) -> CoreResult<()> {
        let Some(batch) = req.batch else { return self.finish(&item).await };
        let mut members = self.batch_members(batch).await?;
        let now = self.now();
        // Ended before it was granted: refused, withdrawn, timed out, or revoked while scheduled.
        let ended = |m: &Request| {
            matches!(m.state, State::Denied | State::Cancelled | State::TimedOut)
                || m.state == State::Revoked && m.granted_at.is_none()
        };
        // A cancel withdraws the whole request (no single role of it can be cancelled): a
        // cancelled role ends the others even when the request may be granted in part, so that
        // a role approved while the cancel goes through its roles is not granted after it.
        let withdrawn = members.iter().any(|m| m.state == State::Cancelled);
        if req.granted_in_part() && !withdrawn {
            // Granted in part: a role that ended is left out; the others are granted once none
            // of them still waits for approvals.
            members.retain(|m| !ended(m));
            if members.is_empty() || members.iter().any(|m| m.state == State::Pending) {
                return self.finish(&item).await;
            }
        }
        let refused =
            members.iter().find(|m| m.state == State::Cancelled).or_else(|| members.iter().find(|m| ended(m)));
        if let Some(cause) = refused {
            let why = format!(
                "`{}` ({}) of the same request was {}; nothing is granted in part",
                cause.role, cause.id, cause.state
            );
            let cause_id = cause.id.0;
            let open = |s: State| matches!(s, State::Pending | State::Waiting | State::Scheduled);
            for m in members.iter().filter(|m| open(m.state)) {
                let why = why.clone();
                let f = Box::new(move |x: &Request| -> Decision {
                    if !open(x.state) {
                        return Decision::Refuse(UserError::conflict("decided"), None);
                    }
                    Decision::from(Change {
                        cancel: vec![
                            DueKind::PendingTimeout,
                            DueKind::Reminder,
                            DueKind::Escalate,
                            DueKind::Start,
                            DueKind::ApprovalExpiry,
                        ],
                        ..super::scheduled::denied_by_rule(x, now, BATCH_RULE, &why, json!({ "because": cause_id }))
                    })
                });
                self.store.decide(m.id, f).await.map_err(CoreError::store)?;
            }
        } else if !members.is_empty() && members.iter().all(|m| m.state == State::Waiting) {
            let ttl = self.policy().settings.scheduled_approval_ttl;
            let roles: Vec<String> = members.iter().map(|m| m.role.to_string()).collect();
            for m in &members {
                let roles = roles.clone();
                let f = Box::new(move |x: &Request| -> Decision {
                    if x.state != State::Waiting {
                        return Decision::Refuse(UserError::conflict("decided"), None);
                    }
                    let approvers: Vec<String> = x.approvals.iter().map(|a| a.approver.to_string()).collect();
                    let details =
                        json!({ "approvals": approvers.len(), "approvers": approvers, "batch_complete": roles });
                    // Approved ahead of a start: scheduled, each role with its own start item.
                    if let Some(change) = super::scheduled::scheduled(x, now, Actor::System, &details, ttl) {
                        return Decision::from(change);
                    }
                    Decision::from(Change {
                        to: Some(State::Approved),
                        event: Some(NewEvent::new(now, Actor::System, EventKind::RequestApproved, Some(x.id), details)),
                        schedule: vec![NewDue::new(DueKind::Apply, x.id, now)],
                        cancel: vec![DueKind::PendingTimeout, DueKind::Reminder, DueKind::Escalate],
                        ..Change::default()
                    })
                });
                self.store.decide(m.id, f).await.map_err(CoreError::store)?;
            }
            self.wake.wake();
        }
        self.finish(&item).await
    }
}
