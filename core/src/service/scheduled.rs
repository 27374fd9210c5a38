//! Scheduled access, in the service: the start asked for is checked (in the future, not too
//! far ahead), an approval ahead of the start moves the request to `scheduled` with a `start`
//! due item (and an `approval_expiry` one when the start is further away than the approval
//! stays good), and at the start the request is checked again against the policy, lockdowns
//! and rules of that moment before it is approved and applied. Nothing waits in memory: the
//! due items are rows, so a restart finds them.

use super::Service;
use crate::{
    Field, GrantDuration, State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    policy::{Caller, Policy},
    ports::{Change, Decided, Decision, DueItem, DueKind, NewDue, Patch},
    request::Request,
    schedule::StartSpec,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The `start` due item's payload: until when the approval is good.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct StartPayload {
    approval_expires_at: DateTime<Utc>,
}

/// The due items that belong to a scheduled request before its start.
pub(super) const BEFORE_START: [DueKind; 2] = [DueKind::Start, DueKind::ApprovalExpiry];

/// Pending (or waiting) → scheduled, for a request with a start: approved ahead, holding
/// nothing. `None` for a request without a start. The event is the approval, naming the start.
pub(super) fn scheduled(
    r: &Request,
    now: DateTime<Utc>,
    actor: Actor,
    details: &Value,
    ttl: GrantDuration,
) -> Option<Change> {
    let starts = r.starts_at?;
    let expires = now + ttl.as_chrono();
    let mut details = details.clone();
    details["starts_at"] = json!(starts.to_rfc3339());
    details["approval_expires_at"] = json!(expires.to_rfc3339());
    let payload = serde_json::to_value(StartPayload { approval_expires_at: expires }).unwrap_or_default();
    let mut schedule = vec![NewDue { kind: DueKind::Start, request: Some(r.id), due_at: starts.max(now), payload }];
    if expires < starts {
        schedule.push(NewDue::new(DueKind::ApprovalExpiry, r.id, expires));
    }
    Some(Change {
        to: Some(State::Scheduled),
        event: Some(NewEvent::new(now, actor, EventKind::RequestApproved, Some(r.id), details)),
        schedule,
        cancel: vec![DueKind::PendingTimeout, DueKind::Reminder, DueKind::Escalate],
        ..Change::default()
    })
}

/// Whether the requester may still have what they asked for, by the policy as it is now: they
/// are a person of it, the role exists, they are in a group that may request it, and the
/// duration is within its maximum. Membership that comes from a chat platform (a Discord role,
/// a Slack user group) cannot be read without the person's own click, so a requester group
/// backed by one is taken as still holding. Checked when a scheduled request is approved and
/// again at its start.
pub(super) fn still_allowed(policy: &Policy, r: &Request) -> Result<(), String> {
    if policy.person(&r.requester).is_none() {
        return Err(format!("{} is no longer a person in the policy", r.requester));
    }
    let Some(role) = policy.roles.get(&r.role) else {
        return Err(format!("role `{}` no longer exists", r.role));
    };
    let chat_backed = role
        .requesters
        .iter()
        .filter_map(|g| policy.groups.get(g))
        .any(|g| g.discord_role.is_some() || g.slack_usergroup.is_some());
    if !chat_backed && !policy.may_request(&Caller::person(r.requester.clone()), role) {
        return Err(format!("{} may no longer request `{}`", r.requester, r.role));
    }
    if r.duration > role.max_duration {
        return Err(format!("`{}` can now be held for at most {}", r.role, role.max_duration));
    }
    Ok(())
}

impl Service {
    /// The start asked for, checked: in the future and at most `[settings] max_schedule_ahead`
    /// away. `None`: start now.
    pub(super) fn start_time(&self, spec: Option<&StartSpec>) -> CoreResult<Option<DateTime<Utc>>> {
        let Some(spec) = spec else { return Ok(None) };
        let now = self.now();
        let at = spec.resolve(now)?;
        if at <= now {
            return Err(UserError::invalid(format!(
                "The start {} has passed; leave the start out to ask for access now.",
                crate::render::time(at)
            ))
            .on(Field::Start)
            .into());
        }
        let ahead = self.policy().settings.max_schedule_ahead;
        if at > now + ahead.as_chrono() {
            return Err(UserError::invalid(format!(
                "A start may be at most {ahead} ahead ({} at the latest).",
                crate::render::time(now + ahead.as_chrono())
            ))
            .on(Field::Start)
            .into());
        }
        Ok(Some(at))
    }

    /// The start of a scheduled request (of every role of it, for several). Each role is
    /// checked again against the policy, lockdowns and rules of this moment; if all pass they
    /// are approved and applied, else every scheduled one is refused with the reason (granted
    /// in part: each role that passes starts, each that does not is refused).
    pub(super) async fn run_start(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state != State::Scheduled {
            return self.finish(&item).await;
        }
        let now = self.now();
        let expires = serde_json::from_value::<StartPayload>(item.payload.clone()).ok().map(|p| p.approval_expires_at);
        if expires.is_some_and(|e| now > e) {
            // The start ran later than the approval is good for (elevate was down).
            self.expire_approval(&req).await?;
            return self.finish(&item).await;
        }
        let members: Vec<Request> = match req.batch {
            Some(b) => self.batch_members(b).await?.into_iter().filter(|m| m.state == State::Scheduled).collect(),
            None => vec![req.clone()],
        };
        // All or nothing: the first refusal refuses every role. Granted in part: each role
        // starts or is refused on its own.
        let mut refusals = Vec::with_capacity(members.len());
        for m in &members {
            let r = self.start_refusal(m, now).await?;
            let stop = r.is_some() && !req.granted_in_part();
            refusals.push(r);
            if stop {
                break;
            }
        }
        let first = refusals.iter().flatten().next().cloned();
        for (i, m) in members.iter().enumerate() {
            let refusal = match req.granted_in_part() {
                true => refusals.get(i).cloned().flatten(),
                false => first.clone(),
            };
            let f: crate::ports::DecideFn = match &refusal {
                Some((rule, why)) => {
                    let (rule, why) = (rule.clone(), why.clone());
                    Box::new(move |x: &Request| -> Decision {
                        if x.state != State::Scheduled {
                            return Decision::Refuse(UserError::conflict("started or ended"), None);
                        }
                        Decision::from(Change {
                            cancel: BEFORE_START.to_vec(),
                            ..denied_by_rule(x, now, &rule, &why, json!({ "at_start": true }))
                        })
                    })
                }
                None => Box::new(move |x: &Request| -> Decision {
                    if x.state != State::Scheduled {
                        return Decision::Refuse(UserError::conflict("started or ended"), None);
                    }
                    Decision::from(Change {
                        to: Some(State::Approved),
                        event: Some(NewEvent::new(
                            now,
                            Actor::System,
                            EventKind::RequestStarted,
                            Some(x.id),
                            json!({ "starts_at": x.starts_at.map(|s| s.to_rfc3339()) }),
                        )),
                        schedule: vec![NewDue::new(DueKind::Apply, x.id, now)],
                        cancel: BEFORE_START.to_vec(),
                        ..Change::default()
                    })
                }),
            };
            match self.store.decide(m.id, f).await.map_err(CoreError::store)? {
                Decided::Changed(_) | Decided::Refused(_) | Decided::NotFound | Decided::LinkedConflict => {}
            }
        }
        self.wake.wake();
        self.finish(&item).await
    }

    /// Why `r` may not start now, as `(rule, message)`: the policy, the window, a lockdown or
    /// a decision rule (a freeze, working hours, …) in force at this moment.
    async fn start_refusal(&self, r: &Request, now: DateTime<Utc>) -> CoreResult<Option<(String, String)>> {
        let policy = self.policy();
        let named = |why: String| format!("`{}` ({}) cannot start: {why}", r.role, r.id);
        if let Err(why) = still_allowed(&policy, r) {
            return Ok(Some(("policy".into(), named(why))));
        }
        let role = policy.roles.get(&r.role).expect("checked by still_allowed");
        if r.starts_at.is_some_and(|s| s + r.duration.as_chrono() <= now) {
            return Ok(Some(("schedule".into(), named("its window ended before it could start".into()))));
        }
        if let Some(l) = self.lockdown_for(role, false).await? {
            return Ok(Some((
                "lockdown".into(),
                named(format!("`{}` is locked down by {}: {}", r.role, l.locked_by, l.reason)),
            )));
        }
        let caller = Caller::person(r.requester.clone());
        let verdict = self.rules_for(&caller, role, &r.source, false, Some(r.id)).await?;
        Ok(verdict.refusal.map(|refusal| (refusal.rule.clone(), named(refusal.message))))
    }

    /// The approval of a scheduled request went unused for `scheduled_approval_ttl`.
    pub(super) async fn run_approval_expiry(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state == State::Scheduled {
            self.expire_approval(&req).await?;
        }
        self.finish(&item).await
    }

    async fn expire_approval(&self, req: &Request) -> CoreResult<()> {
        let now = self.now();
        let ttl = self.policy().settings.scheduled_approval_ttl;
        let why = format!(
            "the approval expired unused: approvals of scheduled access are good for {ttl} ([settings] scheduled_approval_ttl)"
        );
        let f = Box::new(move |x: &Request| -> Decision {
            if x.state != State::Scheduled {
                return Decision::Refuse(UserError::conflict("started or ended"), None);
            }
            Decision::from(Change {
                to: Some(State::TimedOut),
                patch: Patch { note: Some(why.clone()), ..Patch::default() },
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::RequestTimedOut,
                    Some(x.id),
                    json!({ "approval_expired": true, "reason": why }),
                )),
                cancel: BEFORE_START.to_vec(),
                ..Change::default()
            })
        });
        let f = super::batch::with_batch_check(f, now);
        self.store.decide(req.id, f).await.map_err(CoreError::store)?;
        self.wake.wake();
        Ok(())
    }
}

/// A request denied by `rule` for `why`, with its `request.denied` event (`details` beside the
/// rule and the reason); the caller adds the due items to cancel.
pub(super) fn denied_by_rule(req: &Request, now: DateTime<Utc>, rule: &str, why: &str, details: Value) -> Change {
    let actor = Actor::Rule(rule.to_string());
    let mut event = json!({ "rule": rule, "reason": why });
    if let (Some(e), Value::Object(more)) = (event.as_object_mut(), details) {
        e.extend(more);
    }
    Change {
        to: Some(State::Denied),
        patch: Patch { closed_by: Some(actor.to_string()), note: Some(why.to_string()), ..Patch::default() },
        event: Some(NewEvent::new(now, actor, EventKind::RequestDenied, Some(req.id), event)),
        ..Change::default()
    }
}
