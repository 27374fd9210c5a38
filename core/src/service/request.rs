//! Creating requests: the ordinary `/elevate ROLE DURATION REASON` and break-glass. Both check
//! lockdowns and decision rules first; a refusal by a rule is itself a decision, recorded as a
//! request denied by that rule (so rate limits can count refused attempts), and the person is
//! told which rule refused them and what to do instead.

use super::{RequestInput, Service, role_groups};
use crate::{
    EndReason, Field, GrantDuration, Reason, State, UserError,
    audit::{Actor, EventKind, NewEvent, details},
    error::{CoreError, CoreResult, ErrorCode},
    policy::{
        Caller, Role,
        rules::{self, Refusal, RuleInput, Verdict},
    },
    ports::{Change, Decision, DueKind, NewDue, Patch, RequestQuery},
    request::{NewRequest, Request, RequestKind, Source},
};
use serde_json::json;

/// A request validated and ready to be written.
pub(super) struct Draft {
    pub(super) kind: RequestKind,
    pub(super) duration: GrantDuration,
    pub(super) reason: Reason,
    pub(super) ticket: Option<String>,
    pub(super) source: Source,
    /// Scheduled access: when it starts.
    pub(super) starts_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Service {
    /// `/elevate ROLE DURATION REASON`.
    pub async fn request(&self, caller: &Caller, input: RequestInput) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let policy = self.policy();
        let roles = policy.resolve_roles(&input.role).map_err(|e| e.on(Field::Role))?;
        let starts_at = self.start_time(input.start.as_ref())?;
        let role = match roles.as_slice() {
            [one] => *one,
            _ => return self.request_batch(caller, &roles, input, starts_at).await,
        };
        if !policy.may_request(caller, role) {
            return Err(UserError::forbidden(format!(
                "You may not request `{}`: it is open to members of {}.",
                role.name,
                role_groups(role, false)
            ))
            .on(Field::Role)
            .into());
        }
        let duration = match input.duration.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => role.default_duration,
            Some(s) => GrantDuration::parse(s).map_err(|e| UserError::invalid(e).on(Field::Duration))?,
        };
        if duration > role.max_duration {
            return Err(UserError::invalid(format!(
                "`{}` can be held for at most {}; ask for {} or less.",
                role.name, role.max_duration, role.max_duration
            ))
            .on(Field::Duration)
            .into());
        }
        let reason = match Reason::parse(&input.reason) {
            Ok(r) => r,
            Err(_) if !role.reason_required && input.reason.trim().is_empty() => {
                Reason::parse("(no reason given)").expect("constant")
            }
            Err(e) => return Err(UserError::invalid(e).on(Field::Reason).into()),
        };
        let ticket = role.ticket(input.ticket.as_deref(), reason.as_str()).map_err(|e| e.on(Field::Ticket))?;
        let draft = Draft { kind: RequestKind::Normal, duration, reason, ticket, source: input.source, starts_at };

        if let Some(l) = self.lockdown_for(role, false).await? {
            let message = format!(
                "`{}` is locked down by {} since {}: {}. Ask the security team to unlock it{}.",
                role.name,
                l.locked_by,
                crate::render::time(l.locked_at),
                l.reason,
                if policy.may_breakglass(caller, role) { ", or use break-glass in an emergency" } else { "" }
            );
            let refusal = Refusal { rule: "lockdown".into(), message, alert: false, revoke_grants: false };
            return Err(self.refuse(caller, role, draft, &refusal, &Verdict::default()).await);
        }
        let verdict = self.rules_for(caller, role, &draft.source, false, None).await?;
        if let Some(refusal) = verdict.refusal.clone() {
            return Err(self.refuse(caller, role, draft, &refusal, &verdict).await);
        }
        let mut verdict = verdict;
        let mut draft = draft;
        let tickets = self.ticket_rules(&policy, caller, role, draft.ticket.take(), draft.reason.as_str()).await?;
        draft.ticket = tickets.ticket;
        verdict.fired.extend(tickets.fired);
        let on_call = self.on_call_rules(&policy, caller, role).await;
        verdict.fired.extend(on_call.fired);
        let req = self.create_pending(caller, role, draft, &verdict).await?;
        self.approve_without_people(&policy, caller, role, req, &verdict, on_call.approve).await
    }

    /// Right after a request is written: approves it when the role auto-approves, when an
    /// on-call rule approves (`on_call`: why, and the audit details), or when an approval an
    /// on-call rule credited is all it needs; unless a rule added an approval or forbade
    /// auto-approval. Otherwise it stays pending for people.
    pub(super) async fn approve_without_people(
        &self,
        policy: &crate::Policy,
        caller: &Caller,
        role: &Role,
        req: Request,
        verdict: &Verdict,
        on_call: Option<(String, serde_json::Value)>,
    ) -> CoreResult<Request> {
        let why = policy.auto_approves(caller, role).map(|w| (w, None)).or(on_call.map(|(w, d)| (w, Some(d))));
        let threshold = req.threshold(policy);
        match why {
            Some((why, on_call)) if !verdict.no_auto_approve && verdict.extra_approvals == 0 => {
                self.auto_approve(req, &why, on_call).await
            }
            _ if threshold.credited > 0 && threshold.met(0) => {
                let credit = crate::threshold::credit_details(threshold, &req.rules);
                let why = format!("on call, which counts as one approval, and `{}` needs one", req.role);
                let mut details = json!({ "auto_approved": true, "why": why, "on_call": credit,
                    "credited": threshold.credited });
                details["required"] = json!(threshold.required);
                self.approve_by_rule(req.id, "auto-approve", details, Patch::default(), Vec::new()).await
            }
            _ => Ok(req),
        }
    }

    /// Emergency access: applied at once without approval, for persons allowed per role, with
    /// the role's break-glass maximum, a loud alert, and a review item that reminds the security
    /// team until someone marks it reviewed.
    pub async fn breakglass(
        &self,
        caller: &Caller,
        role: &str,
        duration: &str,
        justification: &str,
        source: Source,
    ) -> CoreResult<Request> {
        self.known_caller(caller)?;
        let policy = self.policy();
        let role = policy.role(role).map_err(|e| e.on(Field::Role))?;
        if !policy.may_breakglass(caller, role) {
            let who = if role.breakglass_groups.is_empty() {
                "nobody: the role has no breakglass_groups".to_string()
            } else {
                format!(
                    "members of {}",
                    role.breakglass_groups.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
                )
            };
            return Err(UserError::forbidden(format!(
                "You may not use break-glass for `{}`: it is open to {who}.",
                role.name
            ))
            .into());
        }
        let duration = GrantDuration::parse(duration).map_err(|e| UserError::invalid(e).on(Field::Duration))?;
        if duration > role.breakglass_max_duration {
            return Err(UserError::invalid(format!(
                "Break-glass for `{}` lasts at most {}; ask for {} or less.",
                role.name, role.breakglass_max_duration, role.breakglass_max_duration
            ))
            .on(Field::Duration)
            .into());
        }
        let reason = Reason::parse(justification)
            .map_err(|e| UserError::invalid(format!("Break-glass needs a justification: {e}")).on(Field::Reason))?;
        let draft = Draft { kind: RequestKind::BreakGlass, duration, reason, ticket: None, source, starts_at: None };
        if let Some(l) = self.lockdown_for(role, true).await? {
            let message = format!(
                "`{}` is locked down by {}, break-glass included: {}. Call the security team.",
                role.name, l.locked_by, l.reason
            );
            let refusal = Refusal { rule: "lockdown".into(), message, alert: true, revoke_grants: false };
            return Err(self.refuse(caller, role, draft, &refusal, &Verdict::default()).await);
        }
        let verdict = self.rules_for(caller, role, &draft.source, true, None).await?;
        if let Some(refusal) = verdict.refusal.clone() {
            return Err(self.refuse(caller, role, draft, &refusal, &verdict).await);
        }
        let justification = draft.reason.to_string();
        let req = self.create_pending(caller, role, draft, &verdict).await?;
        let now = self.now();
        let review_at = now + policy.security.review_reminder.as_chrono();
        let reminder = NewDue { kind: DueKind::ReviewReminder, request: None, due_at: review_at, payload: json!(null) };
        let review = Patch { review: Some(json!({ "state": "open" })), ..Patch::default() };
        let req =
            self.approve_by_rule(req.id, "break-glass", json!({ "breakglass": true }), review, vec![reminder]).await?;
        let alert = NewEvent::new(
            now,
            Actor::Person(caller.person.clone()),
            EventKind::SecurityAlert,
            Some(req.id),
            json!({ "alert": "breakglass", "role": role.name, "duration": duration.to_string(), "justification": justification,
                    "message": format!("BREAK-GLASS: {} took `{}` for {} without approval", caller.person, role.name, duration) }),
        );
        self.store.append_event(alert).await.map_err(CoreError::store)?;
        self.wake.wake();
        Ok(req)
    }

    pub(super) async fn lockdown_for(
        &self,
        role: &Role,
        breakglass: bool,
    ) -> CoreResult<Option<crate::ports::Lockdown>> {
        let all = self.store.lockdowns().await.map_err(CoreError::store)?;
        Ok(all.into_iter().find(|l| l.covers(&role.name) && (!breakglass || l.blocks_breakglass)))
    }

    pub(super) async fn rules_for(
        &self,
        caller: &Caller,
        role: &Role,
        source: &Source,
        breakglass: bool,
        except: Option<crate::RequestId>,
    ) -> CoreResult<Verdict> {
        let policy = self.policy();
        let now = self.now();
        let history = match rules::history_window(&policy, &role.name) {
            Some(w) => {
                let q = RequestQuery {
                    requester: Some(caller.person.clone()),
                    role: Some(role.name.clone()),
                    created_since: Some(now - w.as_chrono()),
                    limit: Some(1000),
                    ..RequestQuery::default()
                };
                let mut history = self.store.list_requests(&q).await.map_err(CoreError::store)?;
                // A scheduled request checked again at its start is not its own history.
                history.retain(|r| Some(r.id) != except);
                history
            }
            None => Vec::new(),
        };
        let input = RuleInput { caller, role, source, now, history: &history, breakglass };
        Ok(rules::evaluate(&policy, &input))
    }

    async fn create_pending(&self, caller: &Caller, role: &Role, d: Draft, verdict: &Verdict) -> CoreResult<Request> {
        let (new, event, due) = self.pending_parts(caller, role, d, verdict, &[]);
        let first_due = due.iter().map(|d| d.due_at).min().unwrap_or_else(|| self.now());
        let req = self.store.create_request(new, event, due).await.map_err(CoreError::store)?;
        self.wake.due(first_due);
        Ok(req)
    }

    /// The row, creation event and first due items of a new pending request; `with` names the
    /// other roles of the same request, for the event.
    pub(super) fn pending_parts(
        &self,
        caller: &Caller,
        role: &Role,
        d: Draft,
        verdict: &Verdict,
        with: &[crate::RoleName],
    ) -> (NewRequest, NewEvent, Vec<NewDue>) {
        let now = self.now();
        let threshold = crate::Threshold::new(d.kind, role.approvals_required, verdict.extra_approvals, &verdict.fired);
        let breakglass = d.kind == RequestKind::BreakGlass;
        let new = NewRequest {
            kind: d.kind,
            role: role.name.clone(),
            requester: caller.person.clone(),
            duration: d.duration,
            reason: d.reason.clone(),
            ticket: d.ticket.clone(),
            source: d.source.clone(),
            state: State::Pending,
            created_at: now,
            extra_approvals: verdict.extra_approvals,
            rules: verdict.fired.clone(),
            closed_by: None,
            note: None,
            starts_at: d.starts_at,
        };
        let event = NewEvent::new(
            now,
            Actor::Person(caller.person.clone()),
            EventKind::RequestCreated,
            None,
            details([
                ("role", Some(json!(role.name))),
                ("duration", Some(json!(d.duration.to_string()))),
                ("reason", Some(json!(d.reason))),
                ("ticket", d.ticket.as_ref().map(|t| json!(t))),
                ("source", Some(json!(d.source))),
                ("approvals_required", Some(json!(threshold.required))),
                ("approvals_credited", (threshold.credited > 0).then(|| json!(threshold.credited))),
                ("on_call", crate::threshold::credit_details(threshold, &verdict.fired)),
                ("rules", (!verdict.fired.is_empty()).then(|| json!(verdict.fired))),
                ("breakglass", breakglass.then_some(json!(true))),
                ("requester_kind", self.service_marker(&caller.person)),
                ("with_roles", (!with.is_empty()).then(|| json!(with))),
                ("starts_at", d.starts_at.map(|s| json!(s.to_rfc3339()))),
            ]),
        );
        let at = |d: GrantDuration| now + d.as_chrono();
        // A scheduled request may be decided until its start; not after.
        let timeout = d.starts_at.unwrap_or_else(|| at(role.pending_timeout));
        let mut due =
            vec![NewDue { kind: DueKind::PendingTimeout, request: None, due_at: timeout, payload: json!(null) }];
        if let Some(every) = role.reminder_interval.filter(|e| *e < role.pending_timeout) {
            due.push(NewDue { kind: DueKind::Reminder, request: None, due_at: at(every), payload: json!(null) });
        }
        if let Some(after) = role.escalate_after.filter(|e| *e < role.pending_timeout) {
            due.push(NewDue { kind: DueKind::Escalate, request: None, due_at: at(after), payload: json!(null) });
        }
        (new, event, due)
    }

    /// `on_call`: which on-call rule, schedule and level approved it, for the audit event.
    pub(super) async fn auto_approve(
        &self,
        req: Request,
        why: &str,
        on_call: Option<serde_json::Value>,
    ) -> CoreResult<Request> {
        let mut details = json!({ "auto_approved": true, "why": why });
        if let Some(oc) = on_call {
            details["on_call"] = oc;
        }
        self.approve_by_rule(req.id, "auto-approve", details, Patch::default(), Vec::new()).await
    }

    /// Approves a pending request without a human (auto-approval, break-glass, drills), as
    /// `rule`, queueing the apply (and `more` due items) in the same transaction.
    pub(super) async fn approve_by_rule(
        &self,
        id: crate::RequestId,
        rule: &str,
        mut details: serde_json::Value,
        patch: Patch,
        more: Vec<NewDue>,
    ) -> CoreResult<Request> {
        let now = self.now();
        let ttl = self.policy().settings.scheduled_approval_ttl;
        let rule = rule.to_string();
        // An approval credited by an on-call rule counts; nobody else's did.
        let credited = details.get("credited").cloned().unwrap_or(json!(0));
        details["approvals"] = credited;
        if details.get("required").is_none() {
            details["required"] = json!(0);
        }
        details["approvers"] = json!([]);
        let f = Box::new(move |r: &Request| -> Decision {
            if r.state != State::Pending {
                return Decision::Refuse(UserError::conflict("decided"), None);
            }
            if r.batch.is_some() {
                // One role of several: approved for its part, applied with the others.
                return Decision::from(super::batch::waiting(r, now, Actor::Rule(rule.clone()), details.clone()));
            }
            if let Some(change) = super::scheduled::scheduled(r, now, Actor::Rule(rule.clone()), &details, ttl) {
                return Decision::from(change);
            }
            let mut schedule = vec![NewDue::new(DueKind::Apply, r.id, now)];
            schedule.extend(more.iter().cloned().map(|d| NewDue { request: Some(r.id), ..d }));
            Decision::from(Change {
                to: Some(State::Approved),
                patch: patch.clone(),
                event: Some(NewEvent::new(
                    now,
                    Actor::Rule(rule.clone()),
                    EventKind::RequestApproved,
                    Some(r.id),
                    details.clone(),
                )),
                schedule,
                cancel: vec![DueKind::PendingTimeout, DueKind::Reminder, DueKind::Escalate],
                ..Change::default()
            })
        });
        let req = self.decide(id, f).await?;
        self.wake.wake();
        Ok(req)
    }

    /// Records a request refused by a rule, alerts and revokes when the rule says so, and
    /// returns the refusal to show.
    pub(super) async fn refuse(
        &self,
        caller: &Caller,
        role: &Role,
        d: Draft,
        refusal: &Refusal,
        verdict: &Verdict,
    ) -> CoreError {
        match self.record_refusal(caller, role, d, refusal, verdict).await {
            Ok(()) => UserError::new(ErrorCode::RuleDenied, refusal.message.clone()).into(),
            Err(e) => e,
        }
    }

    async fn record_refusal(
        &self,
        caller: &Caller,
        role: &Role,
        d: Draft,
        refusal: &Refusal,
        verdict: &Verdict,
    ) -> CoreResult<()> {
        let now = self.now();
        let rule_actor = Actor::Rule(refusal.rule.clone());
        let new = NewRequest {
            kind: d.kind,
            role: role.name.clone(),
            requester: caller.person.clone(),
            duration: d.duration,
            reason: d.reason.clone(),
            ticket: d.ticket,
            source: d.source.clone(),
            state: State::Denied,
            created_at: now,
            extra_approvals: 0,
            rules: verdict.fired.clone(),
            closed_by: Some(rule_actor.to_string()),
            note: Some(refusal.message.clone()),
            starts_at: d.starts_at,
        };
        let event = NewEvent::new(
            now,
            rule_actor.clone(),
            EventKind::RequestDenied,
            None,
            json!({ "rule": refusal.rule, "reason": refusal.message, "requester": caller.person, "role": role.name,
                    "duration": d.duration.to_string(), "request_reason": d.reason, "source": d.source,
                    "breakglass": d.kind == RequestKind::BreakGlass }),
        );
        let req = self.store.create_request(new, event, Vec::new()).await.map_err(CoreError::store)?;
        if refusal.alert || refusal.revoke_grants {
            let alert = NewEvent::new(
                now,
                rule_actor.clone(),
                EventKind::SecurityAlert,
                Some(req.id),
                json!({ "alert": refusal.rule, "person": caller.person, "role": role.name,
                        "message": format!("{} was refused `{}` by rule `{}`{}", caller.person, role.name, refusal.rule,
                            if refusal.revoke_grants { " again; their active grants of it are being revoked" } else { "" }) }),
            );
            self.store.append_event(alert).await.map_err(CoreError::store)?;
        }
        if refusal.revoke_grants {
            let q = RequestQuery {
                requester: Some(caller.person.clone()),
                role: Some(role.name.clone()),
                states: vec![State::Active, State::Approved],
                ..RequestQuery::default()
            };
            let reason = Reason::parse(&format!("repeated refused attempts (rule {})", refusal.rule)).expect("short");
            for g in self.store.list_requests(&q).await.map_err(CoreError::store)? {
                let _ = self
                    .end(rule_actor.clone(), g.id, EndReason::Revoked, Some(reason.clone()), Box::new(|_| true))
                    .await;
            }
        }
        Ok(())
    }
}
