//! Due items that tell people something: approver reminders, escalation, expiry warnings and
//! break-glass review reminders. Each is decided under the request's row lock, so nothing is sent
//! about a request that moved on meanwhile.

use super::Service;
use crate::{
    State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    ports::{Change, Decided, Decision, DueItem, DueKind, NewDue},
    request::Request,
};
use serde_json::json;

impl Service {
    pub(super) async fn run_reminder(&self, item: DueItem, req: Request) -> CoreResult<()> {
        let policy = self.policy();
        let every = policy.roles.get(&req.role).and_then(|r| r.reminder_interval);
        let threshold = req.threshold(&policy);
        let timeout = policy.roles.get(&req.role).map(|r| r.pending_timeout.as_chrono());
        let now = self.now();
        let item_id = item.id;
        // Decided under the row lock: a timeout or approval that lands at the same moment wins,
        // and no reminder is sent for a request that is no longer pending.
        let f = Box::new(move |r: &Request| -> Decision {
            let Some(every) = every.filter(|_| r.state == State::Pending) else {
                return Decision::Refuse(UserError::conflict("not pending"), None);
            };
            let ev = NewEvent::new(
                now,
                Actor::System,
                EventKind::RequestReminder,
                Some(r.id),
                json!({ "approvals": threshold.given(r.approvals.len()), "required": threshold.required,
                        "waiting_secs": (now - r.created_at).num_seconds() }),
            );
            // No reminder at or after the moment the request times out.
            let next = now + every.as_chrono();
            let schedule = match timeout {
                Some(t) if next < r.created_at + t => vec![NewDue::new(DueKind::Reminder, r.id, next)],
                _ => Vec::new(),
            };
            Decision::from(Change { event: Some(ev), schedule, finish: Some(item_id), ..Change::default() })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.finish(&item).await,
        }
    }

    pub(super) async fn run_expiry_warning(&self, item: DueItem, req: Request) -> CoreResult<()> {
        let now = self.now();
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            let Some(exp) = r.expires_at.filter(|e| *e > now && r.state == State::Active) else {
                return Decision::Refuse(UserError::conflict("not active"), None);
            };
            Decision::from(Change {
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::ExpiryWarning,
                    Some(r.id),
                    json!({ "expires_at": exp.to_rfc3339(), "minutes_left": ((exp - now).num_seconds() + 59) / 60 }),
                )),
                finish: Some(item_id),
                ..Change::default()
            })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.finish(&item).await,
        }
    }

    pub(super) async fn run_escalate(&self, item: DueItem, req: Request) -> CoreResult<()> {
        let policy = self.policy();
        let to: Vec<String> = policy
            .roles
            .get(&req.role)
            .map(|r| r.escalate_to.iter().map(|g| g.to_string()).collect())
            .unwrap_or_default();
        let now = self.now();
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            if r.state != State::Pending || to.is_empty() {
                return Decision::Refuse(UserError::conflict("not pending"), None);
            }
            Decision::from(Change {
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::RequestEscalated,
                    Some(r.id),
                    json!({ "to": to, "approvals": r.approvals.len() }),
                )),
                finish: Some(item_id),
                ..Change::default()
            })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.finish(&item).await,
        }
    }

    pub(super) async fn run_review_reminder(&self, item: DueItem, req: Request) -> CoreResult<()> {
        let every = self.policy().security.review_reminder;
        let now = self.now();
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            if !r.review_open() {
                return Decision::Refuse(UserError::conflict("reviewed"), None);
            }
            Decision::from(Change {
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::BreakglassReviewPending,
                    Some(r.id),
                    json!({ "open_for_secs": (now - r.created_at).num_seconds() }),
                )),
                schedule: vec![NewDue::new(DueKind::ReviewReminder, r.id, now + every.as_chrono())],
                finish: Some(item_id),
                ..Change::default()
            })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.finish(&item).await,
        }
    }
}
