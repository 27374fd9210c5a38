//! The security team's controls: lockdown (kill switch), unlock, and the post-incident review
//! of break-glass grants. Veto is `deny` and `revoke`, which the security team may use on any
//! request.

use super::Service;
use crate::{
    Field, Reason, RequestId, State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    policy::Caller,
    ports::{Change, Decision, DueKind, Lockdown, Patch, RequestQuery},
    request::{Request, RequestKind},
};
use serde::Serialize;
use serde_json::json;

/// What a lockdown did at once. Grants moved to `revoking` are removed by the scheduler; a
/// removal that fails keeps being retried and raises alerts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockdownReport {
    pub scope: String,
    /// Active grants now being revoked, and approved ones revoked before they were applied.
    pub revoked: Vec<i64>,
    /// Pending requests denied.
    pub denied: Vec<i64>,
    /// Requests that could not be ended, with why (they changed state meanwhile, or the store
    /// failed); run the lockdown again to retry them.
    pub failed: Vec<(i64, String)>,
}

impl Service {
    pub(super) fn security_only(&self, caller: &Caller, what: &str) -> CoreResult<()> {
        self.known_caller(caller)?;
        let policy = self.policy();
        if !policy.is_security(caller) {
            let who = policy
                .security
                .group
                .as_ref()
                .map(|g| format!("members of `{g}`"))
                .unwrap_or("no security group is configured".into());
            return Err(UserError::forbidden(format!("Only the security team ({who}) can {what}.")).into());
        }
        Ok(())
    }

    /// `scope` is a role name or `all`.
    fn scope(&self, scope: &str) -> CoreResult<String> {
        if scope == "all" || scope == "*" {
            return Ok("*".into());
        }
        Ok(self.policy().role(scope)?.name.to_string())
    }

    /// Whether `caller` may lock `scope` down, before asking them to confirm: the same checks
    /// `lockdown` makes. Returns the scope as stored (`*` for all).
    pub fn may_lock_down(&self, caller: &Caller, scope: &str) -> CoreResult<String> {
        self.security_only(caller, "lock roles down")?;
        self.scope(scope)
    }

    pub async fn lockdowns(&self) -> CoreResult<Vec<Lockdown>> {
        self.store.lockdowns().await.map_err(CoreError::store)
    }

    /// Refuses every new request in scope from now on (surviving restarts), and at once denies
    /// pending requests and revokes grants in scope.
    pub async fn lockdown(
        &self,
        caller: &Caller,
        scope: &str,
        reason: &str,
        blocks_breakglass: bool,
    ) -> CoreResult<LockdownReport> {
        let scope = self.may_lock_down(caller, scope)?;
        let reason = Reason::parse(reason)
            .map_err(|e| UserError::invalid(format!("A lockdown needs a reason: {e}")).on(Field::Reason))?;
        let now = self.now();
        let l = Lockdown {
            scope: scope.clone(),
            reason: reason.to_string(),
            locked_by: caller.person.to_string(),
            locked_at: now,
            blocks_breakglass,
        };
        let ev = NewEvent::new(
            now,
            Actor::Person(caller.person.clone()),
            EventKind::SecurityLockdown,
            None,
            json!({ "scope": scope, "reason": reason, "blocks_breakglass": blocks_breakglass }),
        );
        self.store.set_lockdown(l.clone(), ev).await.map_err(CoreError::store)?;
        let q = RequestQuery {
            // Scheduled requests hold nothing and are checked again at their start: refused
            // then if the lockdown is still in force, let through if it was lifted.
            states: vec![State::Pending, State::Waiting, State::Approved, State::Active],
            limit: Some(10_000),
            ..RequestQuery::default()
        };
        let live = self.store.list_requests(&q).await.map_err(CoreError::store)?;
        let mut report = LockdownReport { scope, ..LockdownReport::default() };
        let why = format!("lockdown: {reason}");
        for r in live.into_iter().filter(|r| l.covers(&r.role)) {
            let result = match r.state {
                // One role at a time: the other roles of the same request end with it (batch).
                State::Pending | State::Waiting => {
                    self.deny_one(caller, r.id, &why).await.map(|_| report.denied.push(r.id.0))
                }
                _ if matches!(r.kind, RequestKind::Extension(_)) => Ok(()),
                _ => self.revoke(caller, r.id, &why).await.map(|_| report.revoked.push(r.id.0)),
            };
            if let Err(e) = result {
                report.failed.push((r.id.0, e.to_string()));
            }
        }
        Ok(report)
    }

    pub async fn unlock(&self, caller: &Caller, scope: &str) -> CoreResult<()> {
        self.security_only(caller, "lift lockdowns")?;
        let scope = self.scope(scope)?;
        let ev = NewEvent::new(
            self.now(),
            Actor::Person(caller.person.clone()),
            EventKind::SecurityUnlock,
            None,
            json!({ "scope": scope }),
        );
        if self.store.clear_lockdown(&scope, ev).await.map_err(CoreError::store)? {
            Ok(())
        } else {
            let shown = if scope == "*" { "all".to_string() } else { scope };
            Err(UserError::not_found(format!("There is no lockdown on `{shown}`.")).into())
        }
    }

    /// Marks a break-glass grant reviewed, with the reviewer's note; its reminders stop.
    pub async fn review(&self, caller: &Caller, id: RequestId, note: &str) -> CoreResult<Request> {
        self.security_only(caller, "review break-glass use")?;
        let note = Reason::parse(note)
            .map_err(|e| UserError::invalid(format!("A review needs a note: {e}")).on(Field::Note))?;
        let now = self.now();
        let by = caller.person.clone();
        let f = Box::new(move |r: &Request| -> Decision {
            if r.kind != RequestKind::BreakGlass {
                return Decision::Refuse(UserError::conflict(format!("{} is not a break-glass grant.", r.id)), None);
            }
            if !r.review_open() {
                return Decision::Refuse(UserError::conflict(format!("{} was already reviewed.", r.id)), None);
            }
            Decision::from(Change {
                patch: Patch {
                    review: Some(json!({ "state": "done", "by": by, "at": now, "note": note })),
                    ..Patch::default()
                },
                event: Some(NewEvent::new(
                    now,
                    Actor::Person(by.clone()),
                    EventKind::BreakglassReviewed,
                    Some(r.id),
                    json!({ "note": note }),
                )),
                cancel: vec![DueKind::ReviewReminder],
                ..Change::default()
            })
        });
        self.decide(id, f).await
    }
}
