//! Durable work, run by the scheduler. Every handler is safe to run twice (a lease can expire
//! while a slow provider call is still going), and no provider call happens inside a store
//! transaction: the state is committed first, the provider is called, the result is committed.

use super::{Service, backoff};
use crate::{
    State, UserError,
    audit::{Actor, EventKind, NewEvent},
    error::{CoreError, CoreResult},
    ports::{Change, Decided, Decision, DueItem, DueKind, GrantSpec, Linked, NewDue, Overlap, Patch, ProviderError},
    request::{Request, RequestKind},
};
use serde_json::json;
use tracing::{info, warn};

impl Service {
    /// Runs one claimed item to completion (finished, or put back with a later due time).
    pub async fn run_due(&self, mut item: DueItem) -> CoreResult<()> {
        let Some(id) = item.request else {
            return self.store.finish_due(item.id).await.map_err(CoreError::store);
        };
        let req = match item.snapshot.take() {
            Some(req) if req.id == id => Some(*req),
            _ => self.store.get_request(id).await.map_err(CoreError::store)?,
        };
        let Some(req) = req else {
            return self.store.finish_due(item.id).await.map_err(CoreError::store);
        };
        match item.kind {
            DueKind::Apply => self.run_apply(item, req).await,
            DueKind::Expire => self.run_expire(item, req).await,
            DueKind::Revoke => self.run_revoke(item, req).await,
            DueKind::Cleanup => self.run_cleanup(item, req).await,
            DueKind::Refresh => self.run_refresh(item, req).await,
            DueKind::PendingTimeout => self.run_pending_timeout(item, req).await,
            DueKind::Reminder => self.run_reminder(item, req).await,
            DueKind::ExpiryWarning => self.run_expiry_warning(item, req).await,
            DueKind::Escalate => self.run_escalate(item, req).await,
            DueKind::ReviewReminder => self.run_review_reminder(item, req).await,
            DueKind::BatchCheck => self.run_batch_check(item, req).await,
            DueKind::Start => self.run_start(item, req).await,
            DueKind::ApprovalExpiry => self.run_approval_expiry(item, req).await,
        }
    }

    pub(super) async fn finish(&self, item: &DueItem) -> CoreResult<()> {
        self.store.finish_due(item.id).await.map_err(CoreError::store)
    }

    async fn fail_grant(
        &self,
        item: &DueItem,
        req: &Request,
        code: &str,
        message: &str,
        cleanup: bool,
    ) -> CoreResult<()> {
        let now = self.now();
        let note = format!("{code}: {message}");
        let body = json!({ "code": code, "message": message });
        let mut schedule = Vec::new();
        if cleanup {
            schedule.push(NewDue::new(DueKind::Cleanup, req.id, now));
        }
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            if r.state != State::Approved {
                return Decision::Refuse(UserError::conflict("no longer approved"), None);
            }
            Decision::from(Change {
                to: Some(State::GrantFailed),
                patch: Patch { note: Some(note.clone()), ..Patch::default() },
                event: Some(NewEvent::new(now, Actor::System, EventKind::GrantFailed, Some(r.id), body.clone())),
                finish: Some(item_id),
                schedule: schedule.clone(),
                ..Change::default()
            })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.store.finish_due(item_id).await.map_err(CoreError::store),
        }
    }

    async fn run_apply(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state != State::Approved {
            return self.finish(&item).await;
        }
        if let RequestKind::Extension(parent) = req.kind {
            return self.run_apply_extension(item, req, parent).await;
        }
        let policy = self.policy();
        // The window starts when this attempt was first claimed, not when this run began: a run
        // that took the item over after a lease ran out (the first run stalled or its process
        // died, perhaps after the provider had already granted) computes the same expiry as the
        // first run did, so a re-apply never holds the grant past its window. Scheduled access
        // counts from the start asked for, not from when the provider got to it.
        let now = self.now();
        let starts = item.claim.map(|c| c.since).filter(|since| *since <= now).unwrap_or(now);
        let expires = req.starts_at.unwrap_or(starts) + req.duration.as_chrono();
        let Some((spec, provider)) = self.spec(&policy, &req, Some((starts, expires))) else {
            return self
                .fail_grant(&item, &req, "ConfigChanged", "the role or its provider is no longer configured", false)
                .await;
        };
        let dry_run = provider.is_dry_run();
        match provider.grant(&spec).await {
            Ok(handle) => {
                let handle = if dry_run { json!({ "dry_run": true, "would": handle }) } else { handle };
                let now = self.now();
                let warn_at = expires - policy.settings.expiry_warning.as_chrono();
                let item_id = item.id;
                let provider_name = policy.roles.get(&req.role).map(|r| r.provider.clone()).unwrap_or_default();
                let f = Box::new(move |r: &Request| -> Decision {
                    if r.state != State::Approved {
                        return Decision::Refuse(UserError::conflict("no longer approved"), None);
                    }
                    let mut schedule = vec![NewDue::new(DueKind::Expire, r.id, expires)];
                    if warn_at > now {
                        schedule.push(NewDue::new(DueKind::ExpiryWarning, r.id, warn_at));
                    }
                    Decision::from(Change {
                        to: Some(State::Active),
                        patch: Patch {
                            granted_at: Some(starts),
                            expires_at: Some(expires),
                            grant_handle: Some(handle.clone()),
                            ..Patch::default()
                        },
                        event: Some(NewEvent::new(
                            now,
                            Actor::System,
                            EventKind::GrantApplied,
                            Some(r.id),
                            json!({ "provider": provider_name, "expires_at": expires.to_rfc3339(), "dry_run": dry_run }),
                        )),
                        schedule,
                        finish: Some(item_id),
                        ..Change::default()
                    })
                });
                match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
                    Decided::Changed(_) => {
                        if dry_run {
                            info!(request = %req.id, "dry run: grant recorded, nothing applied");
                        }
                        self.wake.wake();
                        Ok(())
                    }
                    // Revoked or cancelled while the provider call was in flight: undo it.
                    Decided::Refused(_) if !self.applied_by_another_run(req.id).await? => {
                        self.undo(&item, &spec, provider).await
                    }
                    // Another run (one that took the item over after this run's lease ran out)
                    // applied the same grant and made it active: undoing would take away the
                    // access that run recorded.
                    Decided::Refused(_) => self.finish(&item).await,
                    _ => self.undo(&item, &spec, provider).await,
                }
            }
            Err(ProviderError::Permanent { code, message }) => {
                self.fail_grant(&item, &req, &code, &message, false).await
            }
            Err(ProviderError::Transient { message, retry_after }) => {
                let attempts = item.attempts + 1;
                if attempts >= policy.settings.apply_max_attempts {
                    let msg = format!("gave up after {attempts} attempts: {message}");
                    return self.fail_grant(&item, &req, "ProviderUnavailable", &msg, true).await;
                }
                let at = self.now() + backoff(attempts, retry_after);
                let ev = NewEvent::new(
                    self.now(),
                    Actor::System,
                    EventKind::GrantApplyRetry,
                    Some(req.id),
                    json!({ "attempt": attempts, "error": message, "retry_at": at.to_rfc3339() }),
                );
                self.store.retry_due(item.id, at, attempts, Some(ev)).await.map_err(CoreError::store)
            }
        }
    }

    /// Whether the request went on to be active (or beyond) through another run of its apply,
    /// rather than being cancelled or revoked before any run applied it.
    async fn applied_by_another_run(&self, id: crate::RequestId) -> CoreResult<bool> {
        let now = self.store.get_request(id).await.map_err(CoreError::store)?;
        Ok(now.is_some_and(|r| r.state == State::Active))
    }

    async fn undo(
        &self,
        item: &DueItem,
        spec: &GrantSpec,
        provider: std::sync::Arc<dyn crate::ports::GrantProvider>,
    ) -> CoreResult<()> {
        let now = self.now();
        let ev = NewEvent::new(now, Actor::System, EventKind::GrantUndone, Some(spec.request), json!({}));
        self.store.append_event(ev).await.map_err(CoreError::store)?;
        let result = match self.overlap(spec).await {
            Ok(overlap) => provider.revoke(spec, overlap).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            warn!(request = %spec.request, error = %e, "undo failed; scheduling cleanup");
            self.store
                .schedule(vec![NewDue::new(DueKind::Cleanup, spec.request, now)])
                .await
                .map_err(CoreError::store)?;
        }
        self.finish(item).await
    }

    async fn run_apply_extension(&self, item: DueItem, ext: Request, parent_id: crate::RequestId) -> CoreResult<()> {
        let policy = self.policy();
        let now = self.now();
        let ext_c = ext.clone();
        let item_id = item.id;
        let f = Box::new(move |p: &Request| -> Decision {
            let (Some(granted), Some(expires)) = (p.granted_at, p.expires_at) else {
                return Decision::Refuse(UserError::conflict(format!("{} is not active", p.id)), None);
            };
            if p.state != State::Active {
                return Decision::Refuse(UserError::conflict(format!("{} is no longer active", p.id)), None);
            }
            let Some(role) = policy.roles.get(&p.role) else {
                return Decision::Refuse(UserError::conflict("the role is no longer configured"), None);
            };
            let new_expires = expires + ext_c.duration.as_chrono();
            if (new_expires - granted).num_seconds() > role.max_total_duration.secs() {
                return Decision::Refuse(
                    UserError::invalid(format!("it would pass the role's max total of {}", role.max_total_duration)),
                    None,
                );
            }
            let mut schedule =
                vec![NewDue::new(DueKind::Expire, p.id, new_expires), NewDue::new(DueKind::Refresh, p.id, now)];
            let warn_at = new_expires - policy.settings.expiry_warning.as_chrono();
            if warn_at > now {
                schedule.push(NewDue::new(DueKind::ExpiryWarning, p.id, warn_at));
            }
            let body = json!({ "extension": ext_c.id.0, "by": ext_c.duration.to_string(), "expires_at": new_expires.to_rfc3339() });
            Decision::from(Change {
                patch: Patch { expires_at: Some(new_expires), ..Patch::default() },
                event: Some(NewEvent::new(now, Actor::System, EventKind::GrantExtended, Some(p.id), body.clone())),
                schedule,
                cancel: vec![DueKind::Expire, DueKind::ExpiryWarning],
                finish: Some(item_id),
                linked: Some(Linked {
                    id: ext_c.id,
                    from: State::Approved,
                    to: State::Extended,
                    event: NewEvent::new(now, Actor::System, EventKind::GrantExtended, Some(ext_c.id), body),
                }),
                ..Change::default()
            })
        });
        match self.store.decide(parent_id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => {
                self.wake.wake();
                Ok(())
            }
            Decided::Refused(e) => self.fail_grant(&item, &ext, "NotExtended", &e.message, false).await,
            Decided::NotFound => self.fail_grant(&item, &ext, "NotExtended", "the grant no longer exists", false).await,
            Decided::LinkedConflict => self.finish(&item).await,
        }
    }

    async fn run_expire(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state != State::Active {
            return self.finish(&item).await;
        }
        let now = self.now();
        if let Some(exp) = req.expires_at
            && exp > now
        {
            // Moved by an extension after this item was claimed.
            return self.store.retry_due(item.id, exp, item.attempts, None).await.map_err(CoreError::store);
        }
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            if r.state != State::Active || r.expires_at.is_some_and(|e| e > now) {
                return Decision::Refuse(UserError::conflict("not due"), None);
            }
            Decision::from(Change {
                to: Some(State::Revoking),
                patch: Patch { ending: Some(crate::EndReason::Expired), ..Patch::default() },
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::GrantRevoking,
                    Some(r.id),
                    json!({ "ending": "expired" }),
                )),
                cancel: vec![DueKind::ExpiryWarning, DueKind::Refresh],
                then: Some((item_id, DueKind::Revoke)),
                ..Change::default()
            })
        });
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            // The same item is now the revoke: carry on with it at once, so that removing the
            // access does not wait for another round of the scheduler.
            Decided::Changed(req) => {
                let next = DueItem { kind: DueKind::Revoke, due_at: now, attempts: 0, snapshot: None, ..item };
                self.run_revoke(next, *req).await
            }
            _ => self.finish(&item).await,
        }
    }

    /// Whether another live grant of the same person through the same provider and target
    /// still needs what revoking `spec` would remove. Asked afresh on every attempt (another
    /// grant may have ended since), and answered by one indexed lookup in the store, so that a
    /// revoke costs the same whether the person holds one overlapping grant or thousands. A spec
    /// whose role is no longer configured (a drift revoke of something unknown) shares with no
    /// role elevate knows.
    pub(super) async fn overlap(&self, spec: &GrantSpec) -> CoreResult<Overlap> {
        let policy = self.policy();
        let Some(role) = policy.roles.get(&spec.role) else {
            return Ok(Overlap::Alone);
        };
        // The roles that share this one's provider and target (this role among them: the same
        // person may hold it twice).
        let sharing: Vec<_> = policy
            .roles
            .values()
            .filter(|r| r.provider == role.provider && r.target == role.target)
            .map(|r| r.name.clone())
            .collect();
        let needed = self.store.still_needed(spec.request, &spec.person, &sharing).await.map_err(CoreError::store)?;
        Ok(if needed { Overlap::StillNeeded } else { Overlap::Alone })
    }

    async fn run_revoke(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state != State::Revoking {
            return self.finish(&item).await;
        }
        let policy = self.policy();
        let ending = req.ending.unwrap_or(crate::EndReason::Revoked);
        let Some((spec, provider)) = self.spec(&policy, &req, None) else {
            // Without its provider elevate cannot remove it; keep retrying and alerting rather
            // than pretend it is gone.
            return self.revoke_failed(&item, &req, "the role or its provider is no longer configured", None).await;
        };
        let overlap = self.overlap(&spec).await?;
        match provider.revoke(&spec, overlap).await {
            Ok(()) => {
                let now = self.now();
                let kind = match ending {
                    crate::EndReason::Expired => EventKind::GrantExpired,
                    crate::EndReason::Released => EventKind::GrantReleased,
                    crate::EndReason::Revoked => EventKind::GrantRevoked,
                };
                let item_id = item.id;
                let dry_run = req.is_dry_run();
                let kept = overlap.still_needed();
                let f = Box::new(move |r: &Request| -> Decision {
                    if r.state != State::Revoking {
                        return Decision::Refuse(UserError::conflict("not revoking"), None);
                    }
                    Decision::from(Change {
                        to: Some(ending.final_state()),
                        event: Some(NewEvent::new(
                            now,
                            Actor::System,
                            kind,
                            Some(r.id),
                            json!({ "attempts": item.attempts + 1, "dry_run": dry_run, "kept_for_overlapping_grants": kept }),
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
            Err(e) => {
                let hint = match &e {
                    ProviderError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                self.revoke_failed(&item, &req, &e.to_string(), hint).await
            }
        }
    }

    async fn revoke_failed(
        &self,
        item: &DueItem,
        req: &Request,
        error: &str,
        hint: Option<std::time::Duration>,
    ) -> CoreResult<()> {
        let policy = self.policy();
        let attempts = item.attempts + 1;
        let now = self.now();
        let at = now + backoff(attempts, hint);
        warn!(request = %req.id, attempts, error, "revoke failed; will retry");
        let ev = NewEvent::new(
            now,
            Actor::System,
            EventKind::RevokeFailed,
            Some(req.id),
            json!({ "attempt": attempts, "error": error, "retry_at": at.to_rfc3339() }),
        );
        self.store.retry_due(item.id, at, attempts, Some(ev)).await.map_err(CoreError::store)?;
        if attempts.is_multiple_of(policy.settings.revoke_alert_after) {
            let alert = NewEvent::new(
                now,
                Actor::System,
                EventKind::RevokeAlert,
                Some(req.id),
                json!({ "attempts": attempts, "error": error, "message": "access could not be removed; elevate keeps retrying, but a human should look" }),
            );
            self.store.append_event(alert).await.map_err(CoreError::store)?;
        }
        Ok(())
    }

    async fn run_cleanup(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state.may_hold_access() && req.state != State::Approved {
            // It came back to life (cannot happen today); never remove live access here.
            return self.finish(&item).await;
        }
        let policy = self.policy();
        let Some((spec, provider)) = self.spec(&policy, &req, None) else {
            return self.finish(&item).await;
        };
        let overlap = self.overlap(&spec).await?;
        match provider.revoke(&spec, overlap).await {
            Ok(()) => self.finish(&item).await,
            Err(e) => {
                let attempts = item.attempts + 1;
                let at = self.now() + backoff(attempts, None);
                warn!(request = %req.id, error = %e, "cleanup failed; will retry");
                self.store.retry_due(item.id, at, attempts, None).await.map_err(CoreError::store)
            }
        }
    }

    async fn run_refresh(&self, item: DueItem, req: Request) -> CoreResult<()> {
        if req.state != State::Active {
            return self.finish(&item).await;
        }
        let policy = self.policy();
        let Some((spec, provider)) = self.spec(&policy, &req, None) else {
            return self.finish(&item).await;
        };
        match provider.grant(&spec).await {
            Ok(_) => self.finish(&item).await,
            Err(ProviderError::Transient { message, retry_after }) => {
                let attempts = item.attempts + 1;
                warn!(request = %req.id, error = %message, "refresh failed; will retry");
                let at = self.now() + backoff(attempts, retry_after);
                self.store.retry_due(item.id, at, attempts, None).await.map_err(CoreError::store)
            }
            Err(e) => {
                // The grant keeps its earlier provider-side window, which ends sooner: safe.
                warn!(request = %req.id, error = %e, "refresh refused by provider");
                self.finish(&item).await
            }
        }
    }

    async fn run_pending_timeout(&self, item: DueItem, req: Request) -> CoreResult<()> {
        // A waiting role of a request of several roles still times out: the others were not
        // all approved in time.
        let open = |s: State| matches!(s, State::Pending | State::Waiting);
        if !open(req.state) {
            return self.finish(&item).await;
        }
        let now = self.now();
        let item_id = item.id;
        let f = Box::new(move |r: &Request| -> Decision {
            if !open(r.state) {
                return Decision::Refuse(UserError::conflict("decided"), None);
            }
            Decision::from(Change {
                to: Some(State::TimedOut),
                event: Some(NewEvent::new(
                    now,
                    Actor::System,
                    EventKind::RequestTimedOut,
                    Some(r.id),
                    json!({ "approvals": r.approvals.len() }),
                )),
                cancel: vec![DueKind::Reminder, DueKind::Escalate],
                finish: Some(item_id),
                ..Change::default()
            })
        });
        let f = super::batch::with_batch_check(f, now);
        match self.store.decide(req.id, f).await.map_err(CoreError::store)? {
            Decided::Changed(_) => Ok(()),
            _ => self.finish(&item).await,
        }
    }
}
