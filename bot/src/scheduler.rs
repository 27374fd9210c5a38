//! The scheduler loop. Due work lives in the database; this loop sleeps until the earliest due
//! time, until woken by new work of this process or by another replica's signal of new work
//! (PostgreSQL), or at most `[scheduler] poll`, claims what is due (a lease, so a crashed claimer's work
//! runs again), and runs it with bounded concurrency. Periodic jobs (reconcile, audit
//! checkpoint) fire from cron expressions and are claimed per firing, so across replicas each
//! firing runs once. The items running here, and their leases, are kept in `leases::InFlight`
//! (renewed while they run, released by a draining shutdown).

use crate::{
    config::SchedulerConfig,
    leases::{DrainReport, InFlight},
    metrics::Metrics,
};
use chrono::Utc;
use elevate_core::{
    Service,
    audit::{Actor, EventKind, NewEvent},
    ports::{DueItem, DueSignal, Store, Wake},
    time::Clock,
};
use serde_json::json;
use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{error, info, warn};

/// How long a wake-up waits, while items are in flight, before claiming again.
const CLAIM_GATHER: Duration = Duration::from_millis(2);

/// Wakes the loop through a `Notify`; a wake with nobody waiting is kept for the next wait.
pub struct NotifyWake(pub Notify, AtomicI64);

/// `NotifyWake`'s planned wake-up while the loop is not asleep: any new work wakes it.
const AWAKE: i64 = i64::MAX;

impl Default for NotifyWake {
    fn default() -> Self {
        NotifyWake(Notify::new(), AtomicI64::new(AWAKE))
    }
}

impl NotifyWake {
    /// The loop is about to sleep until `until` (clock time), or `AWAKE` while it works: set
    /// before it reads what is due, so that work added after that read still wakes it.
    fn plan(&self, until: i64) {
        self.1.store(until, Ordering::SeqCst);
    }
}

impl Wake for NotifyWake {
    fn wake(&self) {
        self.0.notify_one();
    }

    fn due(&self, at: chrono::DateTime<Utc>) {
        if elevate_core::time::to_millis(at) < self.1.load(Ordering::SeqCst) {
            self.wake();
        }
    }
}

pub struct Scheduler {
    service: Arc<Service>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    wake: Arc<NotifyWake>,
    /// Work made due by other replicas.
    signal: Arc<dyn DueSignal>,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    /// Longest sleep without looking at the database (`[scheduler] poll`).
    poll: Duration,
    lease: Duration,
    batch: u32,
    inflight: Arc<InFlight>,
}

impl Scheduler {
    pub fn new(
        service: Arc<Service>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        wake: Arc<NotifyWake>,
        signal: Arc<dyn DueSignal>,
        metrics: Arc<Metrics>,
        cfg: &SchedulerConfig,
    ) -> Self {
        Scheduler {
            service,
            store,
            clock,
            wake,
            signal,
            poll: Duration::from_secs(cfg.poll.secs() as u64),
            metrics,
            permits: Arc::new(Semaphore::new(cfg.concurrency)),
            concurrency: cfg.concurrency,
            lease: cfg.lease_duration(),
            batch: (cfg.concurrency as u32 * 4).max(16),
            inflight: Arc::new(InFlight::default()),
        }
    }

    /// Runs `item` in its own task, recorded as in flight until it ends.
    fn spawn_item(self: &Arc<Self>, item: DueItem, permit: tokio::sync::OwnedSemaphorePermit) {
        let id = item.id;
        self.inflight.start(id, item.kind, item.request, item.claim.map(|c| c.until));
        let me = self.clone();
        let task = tokio::spawn(async move {
            Self::run_item(me.service.clone(), me.metrics.clone(), item).await;
            drop(permit);
            me.inflight.finish(id);
            me.wake.wake();
        });
        self.inflight.attach(id, task.abort_handle());
    }

    /// Claims what is due now and starts it without waiting for it (tests drive the heartbeat
    /// and the drain against items in flight with it); returns how many items started.
    pub async fn start_due_now(self: &Arc<Self>) -> anyhow::Result<usize> {
        let items = self.store.claim_due(self.clock.now(), self.batch, self.lease).await?;
        let n = items.len();
        for item in items {
            let permit = self.permits.clone().acquire_owned().await.expect("semaphore open");
            self.spawn_item(item, permit);
        }
        Ok(n)
    }

    /// Items running now.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// One heartbeat: renews the leases of the items running here; `(renewed, lost)`.
    pub async fn renew_leases(&self) -> (usize, usize) {
        self.inflight.renew(self.store.as_ref(), self.clock.as_ref(), self.lease).await
    }

    /// Renews the running items' leases every third of the lease, until aborted (after the
    /// drain: what is still running then has been released).
    pub async fn keep_leases(self: Arc<Self>) {
        let beat = (self.lease / 3).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(beat).await;
            self.renew_leases().await;
        }
    }

    /// Waits up to `budget` for the items running here, then stops the rest and releases their
    /// leases. The claim loop must have stopped first; `since` is `finished_so_far` when the
    /// shutdown began.
    pub async fn drain(&self, budget: Duration, since: usize) -> DrainReport {
        self.inflight.drain(self.store.as_ref(), budget, since).await
    }

    /// Items finished so far, for a drain to count from.
    pub fn finished_so_far(&self) -> usize {
        self.inflight.finished_so_far()
    }

    async fn run_item(service: Arc<Service>, metrics: Arc<Metrics>, item: DueItem) {
        let kind = item.kind.as_str();
        let id = item.request;
        match service.run_due(item).await {
            Ok(()) => metrics.due_run(kind, "ok"),
            Err(e) => {
                // The item stays claimed until its lease ends, then runs again.
                metrics.due_run(kind, "error");
                error!(kind, request = ?id, error = %e, "due item failed; it will run again after its lease");
            }
        }
    }

    /// Claims and runs everything due now, waiting for it; returns how many items ran. Tests
    /// and tools drive time with this instead of the background loop.
    pub async fn run_due_now(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            let items = self.store.claim_due(self.clock.now(), self.batch, self.lease).await?;
            if items.is_empty() {
                return Ok(total);
            }
            total += items.len();
            let runs = items.into_iter().map(|i| Self::run_item(self.service.clone(), self.metrics.clone(), i));
            futures::future::join_all(runs).await;
        }
    }

    /// The background loop, until `shutdown` turns true: from then on nothing more is claimed
    /// (the items already running go on; see `drain`).
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.wake.plan(AWAKE);
            let free = self.permits.available_permits() as u32;
            let claimed = if free == 0 {
                Ok(Vec::new())
            } else {
                self.store.claim_due(self.clock.now(), free.min(self.batch), self.lease).await
            };
            match claimed {
                Ok(items) if !items.is_empty() => {
                    for item in items {
                        let permit = self.permits.clone().acquire_owned().await.expect("semaphore open");
                        self.spawn_item(item, permit);
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "scheduler: cannot claim due items; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            }
            let sleep = if self.permits.available_permits() == 0 {
                self.poll
            } else {
                match self.store.next_due_at().await {
                    Ok(Some(at)) => (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO).min(self.poll),
                    Ok(None) => self.poll,
                    Err(e) => {
                        warn!(error = %e, "scheduler: cannot read the next due time");
                        Duration::from_secs(1)
                    }
                }
            };
            if sleep.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            let until = self.clock.now() + chrono::Duration::from_std(sleep).unwrap_or(chrono::Duration::zero());
            self.wake.plan(elevate_core::time::to_millis(until));
            let deadline = tokio::time::Instant::now() + sleep;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = self.wake.0.notified() => {
                        // Every finished item wakes the loop. While others are still running,
                        // let a few more finish (or more work arrive) so that one claim takes
                        // them together: a claim per finished item was a third of SQLite's
                        // writes under load.
                        if self.permits.available_permits() < self.concurrency {
                            tokio::time::sleep(CLAIM_GATHER).await;
                        }
                        break;
                    }
                    at = self.signal.next() => {
                        // Another replica made work due at `at` (its own scheduler may be busy
                        // or gone): claim it now if this sleep would end later and a permit is
                        // free to run it; otherwise sleep on (a finishing item wakes the loop).
                        if at <= until && self.permits.available_permits() > 0 {
                            break;
                        }
                    }
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
}

/// Runs the periodic jobs. Each firing is claimed in the store, so with several replicas only
/// one runs it.
pub async fn run_cron(
    service: Arc<Service>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cfg: SchedulerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let jobs = cfg.jobs();
    loop {
        let now = clock.now();
        let next = jobs
            .iter()
            .filter_map(|(name, s)| s.after(&now).next().map(|t| (t.with_timezone(&Utc), *name)))
            .min_by_key(|(t, _)| *t);
        let Some((at, name)) = next else { return };
        let wait = (at - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        match store.claim_cron(name, at).await {
            Ok(true) => {
                if let Err(e) = run_job_with(&service, store.as_ref(), name, &cfg).await {
                    error!(job = name, error = %e, "periodic job failed");
                }
            }
            Ok(false) => {}
            Err(e) => warn!(job = name, error = %e, "cannot claim periodic job"),
        }
    }
}

/// One periodic job by name.
pub async fn run_job(service: &Service, store: &dyn Store, name: &str) -> anyhow::Result<()> {
    run_job_with(service, store, name, &SchedulerConfig::default()).await
}

/// One periodic job by name, with the scheduler's settings (the report's period).
pub async fn run_job_with(
    service: &Service,
    store: &dyn Store,
    name: &str,
    cfg: &SchedulerConfig,
) -> anyhow::Result<()> {
    match name {
        "ticket_watch" => {
            let ended = service.watch_tickets().await?;
            info!(ended, "ticket watch done");
        }
        "reconcile" => {
            let r = service.reconcile().await?;
            info!(listed = r.listed, drift = r.drift_revoked.len(), errors = r.errors.len(), "reconciliation done");
        }
        "audit_checkpoint" => {
            // Only what was appended since the last checkpoint (the rest was verified when that
            // one was written); `elevate audit verify` walks everything.
            let report = service.verify_audit_since_checkpoint().await?;
            let details = match (&report.broken, &report.head) {
                (Some(b), _) => json!({ "broken_at": b.seq, "why": b.why }),
                (None, Some((seq, hash))) => match &cfg.checkpoint_seed {
                    Some(seed) => {
                        let (signature, public_key) = elevate_core::audit::sign_checkpoint(seed, *seq, hash);
                        json!({ "seq": seq, "hash": hash, "signature": signature, "public_key": public_key })
                    }
                    None => json!({ "seq": seq, "hash": hash }),
                },
                (None, None) => return Ok(()),
            };
            if let Some(b) = &report.broken {
                error!(seq = b.seq, why = %b.why, "audit chain is broken");
            }
            let written = store
                .append_event(NewEvent::new(service.now(), Actor::System, EventKind::AuditCheckpoint, None, details))
                .await?;
            if report.broken.is_none() {
                store.set_cursor(elevate_core::service::CHECKPOINT_CURSOR, written.seq).await?;
                // The same head outside the database, where truncation and rewriting show.
                if let Some(anchor) = crate::anchor::Anchor::of_checkpoint(&written.details, written.at) {
                    cfg.anchors.write(&anchor).map_err(anyhow::Error::msg)?;
                }
            }
        }
        "report" => {
            let r = service.post_report(cfg.report_period).await?;
            info!(roles = r.by_role.len(), breakglass = r.breakglass.len(), "usage report posted");
        }
        other => anyhow::bail!("unknown job {other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use elevate_core::time::from_millis;

    async fn woken(w: &NotifyWake) -> bool {
        tokio::time::timeout(Duration::from_millis(1), w.0.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn new_work_wakes_the_loop_only_before_its_planned_wake_up() {
        let w = NotifyWake::default();
        w.due(from_millis(5_000));
        assert!(woken(&w).await, "while the loop works, any new work wakes it");
        w.plan(10_000);
        w.due(from_millis(20_000));
        assert!(!woken(&w).await, "due after the planned wake-up: the loop finds it then");
        w.due(from_millis(9_999));
        assert!(woken(&w).await, "due before it: woken now");
        w.wake();
        assert!(woken(&w).await, "a plain wake always wakes");
    }
}
