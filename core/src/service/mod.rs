//! The service: commands from people (request, approve, deny, …), the durable work the scheduler
//! hands it (apply, expire, revoke, …) and the periodic jobs (reconcile). It reads the policy as
//! it is at that moment and asks the store to apply what it decided.

mod actors;
mod batch;
mod commands;
mod controls;
mod drill;
mod due;
mod due_notices;
mod extend;
mod oncall;
mod periodic;
mod reload;
mod request;
mod scheduled;
mod tickets;

pub use actors::NotAllowed;
pub use commands::{ApproveOutcome, RequestInput};
pub use controls::LockdownReport;
pub use drill::{DrillReport, DrillStep};
pub use extend::ExtendOutcome;
pub use periodic::{
    CHECKPOINT_CURSOR, ReconcileReport, VerifyReport, report_from_store, verify_since_checkpoint, verify_store,
    verify_store_watched, verify_store_with,
};
pub use reload::PolicyDiff;

use crate::{
    RequestId, UserError,
    error::{CoreError, CoreResult},
    policy::{Policy, Role},
    ports::{DecideFn, Decided, GrantProvider, GrantSpec, Store, Wake},
    request::Request,
    time::Clock,
};
use chrono::{DateTime, Utc};
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
    time::Duration,
};

/// Named providers, as configured.
pub type Providers = BTreeMap<String, Arc<dyn GrantProvider>>;

/// The engine. Cheap to share (`Arc`); every method is safe to call concurrently, because every
/// state change is a compare-and-set in the store.
pub struct Service {
    store: Arc<dyn Store>,
    providers: Providers,
    clock: Arc<dyn Clock>,
    wake: Arc<dyn Wake>,
    policy: RwLock<Arc<Policy>>,
    /// On-call services for on-call rules (none configured: such rules find nobody on call).
    on_call: crate::oncall::OnCallSources,
    /// Ticket systems for ticket rules, by config name.
    tickets: crate::tickets::TicketSystems,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        providers: Providers,
        clock: Arc<dyn Clock>,
        wake: Arc<dyn Wake>,
        policy: Policy,
    ) -> Self {
        Service {
            store,
            providers,
            clock,
            wake,
            policy: RwLock::new(Arc::new(policy)),
            on_call: crate::oncall::OnCallSources::default(),
            tickets: crate::tickets::TicketSystems::default(),
        }
    }

    /// The ticket systems ticket rules ask.
    pub fn with_tickets(mut self, systems: crate::tickets::TicketSystems) -> Self {
        self.tickets = systems;
        self
    }

    /// The on-call services on-call rules ask.
    pub fn with_on_call(mut self, sources: crate::oncall::OnCallSources) -> Self {
        self.on_call = sources;
        self
    }

    /// The policy as it is now. Held only for the length of one decision.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.read().expect("policy lock").clone()
    }

    /// Swaps in a reloaded policy; decisions from now on use it.
    pub fn replace_policy(&self, policy: Policy) {
        *self.policy.write().expect("policy lock") = Arc::new(policy);
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn get(&self, id: RequestId) -> CoreResult<Request> {
        self.store
            .get_request(id)
            .await
            .map_err(CoreError::store)?
            .ok_or_else(|| UserError::not_found(format!("There is no request {id}.")).into())
    }

    /// One request, if `caller` may read it (see `Policy::may_see`); otherwise the same answer
    /// as for a request that does not exist, so its existence does not leak either.
    pub async fn get_for(&self, caller: &crate::policy::Caller, id: RequestId) -> CoreResult<Request> {
        let req = self.get(id).await?;
        if self.policy().may_see(caller, &req) {
            Ok(req)
        } else {
            Err(UserError::not_found(format!("There is no request {id}.")).into())
        }
    }

    async fn decide(&self, id: RequestId, f: DecideFn) -> CoreResult<Request> {
        let f = batch::with_batch_check(f, self.now());
        match self.store.decide(id, f).await.map_err(CoreError::store)? {
            Decided::Changed(r) if r.batch.is_some() => {
                self.wake.wake();
                Ok(*r)
            }
            Decided::NotFound => Err(UserError::not_found(format!("There is no request {id}.")).into()),
            Decided::Refused(e) => Err(e.into()),
            Decided::Changed(r) => Ok(*r),
            Decided::LinkedConflict => {
                Err(UserError::conflict(format!("Request {id} changed while this was being decided; try again."))
                    .into())
            }
        }
    }

    /// The spec a provider gets for this request. `None` if its role or provider is gone from
    /// the config; the caller decides what that means.
    fn spec(
        &self,
        policy: &Policy,
        req: &Request,
        window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    ) -> Option<(GrantSpec, Arc<dyn GrantProvider>)> {
        let role = policy.roles.get(&req.role)?;
        let provider = self.providers.get(&role.provider)?.clone();
        let principals = policy.person(&req.requester).map(|p| p.principals.clone()).unwrap_or_default();
        let (starts_at, expires_at) =
            window.unwrap_or((req.granted_at.unwrap_or(req.created_at), req.expires_at.unwrap_or(req.created_at)));
        Some((
            GrantSpec {
                grant_id: req.grant_id(),
                request: req.id,
                role: req.role.clone(),
                person: req.requester.clone(),
                principals,
                target: role.target.clone(),
                starts_at,
                expires_at,
                handle: req.grant_handle.clone(),
            },
            provider,
        ))
    }
}

/// Capped exponential backoff for provider retries: 5 s, 10 s, 20 s … up to 15 minutes, or the
/// provider's own hint if it asks for longer.
pub fn backoff(attempts: u32, hint: Option<Duration>) -> chrono::Duration {
    let exp = 5i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(20));
    let secs = exp.min(900);
    let hinted = hint.map(|h| h.as_secs() as i64).unwrap_or(0).min(3600);
    chrono::Duration::seconds(secs.max(hinted))
}

fn role_groups(role: &Role, approvers: bool) -> String {
    let groups = if approvers { &role.approvers } else { &role.requesters };
    groups.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_and_honours_hints() {
        assert_eq!(backoff(1, None).num_seconds(), 5);
        assert_eq!(backoff(2, None).num_seconds(), 10);
        assert_eq!(backoff(30, None).num_seconds(), 900);
        assert_eq!(backoff(1, Some(Duration::from_secs(30))).num_seconds(), 30);
    }
}
