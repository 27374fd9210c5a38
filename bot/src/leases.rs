//! The due items this process is running, with their leases. Two jobs depend on knowing them:
//!
//! - Renewal: a lease is short (`[scheduler] lease`, 30 s by default) so that the work of a
//!   replica that died is taken over soon, and a heartbeat renews the leases of the items still
//!   running every third of it, so that a slow provider call keeps its item. A renewal compares
//!   the lease token (see `Claim::until`): an item another replica took over after this one
//!   stalled past its lease is not renewed, and its local run is stopped as if this process
//!   had crashed at that point (every handler is safe to stop anywhere and run again), so
//!   that the stale run writes nothing more.
//! - Drain: on shutdown, the runs still going are waited for up to `[scheduler]
//!   drain_timeout`; those that outlast it are stopped and their leases released in one
//!   statement, so that another replica (or the next start) runs them at once instead of after
//!   the lease.

use chrono::{DateTime, Utc};
use elevate_core::{
    RequestId,
    ports::{DueKind, Store},
    time::Clock,
};
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{sync::Notify, task::AbortHandle};
use tracing::warn;

/// One item being run here.
struct Running {
    kind: DueKind,
    request: Option<RequestId>,
    /// The lease token this process holds (`None`: run without a claim, nothing to renew).
    token: Option<DateTime<Utc>>,
    abort: Option<AbortHandle>,
}

/// An item a drain gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct Released {
    pub id: i64,
    pub kind: DueKind,
    pub request: Option<RequestId>,
}

/// What a drain did with the items running when it began.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainReport {
    /// Items that finished from the start of the shutdown until the drain timeout.
    pub finished: usize,
    /// Items stopped when the timeout was over, their leases given up.
    pub released: Vec<Released>,
    /// Of `released`, how many leases the database actually released (an item another
    /// replica had already taken over is not).
    pub unleased: u64,
}

/// The items in flight, shared by the claim loop, the heartbeat and the drain.
#[derive(Default)]
pub struct InFlight {
    running: Mutex<HashMap<i64, Running>>,
    /// Notified whenever an item finishes (the drain waits on it).
    finished: Notify,
    /// Items finished so far (a drain counts those finished since it began).
    finishes: AtomicUsize,
}

impl InFlight {
    /// Records an item about to run under the lease `token`.
    pub fn start(&self, id: i64, kind: DueKind, request: Option<RequestId>, token: Option<DateTime<Utc>>) {
        self.lock().insert(id, Running { kind, request, token, abort: None });
    }

    /// The task running `id`, so that a lost lease or a drain can stop it.
    pub fn attach(&self, id: i64, abort: AbortHandle) {
        if let Some(r) = self.lock().get_mut(&id) {
            r.abort = Some(abort);
        }
    }

    pub fn finish(&self, id: i64) {
        if self.lock().remove(&id).is_some() {
            self.finishes.fetch_add(1, Ordering::SeqCst);
        }
        self.finished.notify_waiters();
    }

    /// How many items finished so far: where a drain starts counting.
    pub fn finished_so_far(&self) -> usize {
        self.finishes.load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> Vec<(i64, DateTime<Utc>)> {
        self.lock().iter().filter_map(|(id, r)| r.token.map(|t| (*id, t))).collect()
    }

    /// Renews the lease of every item still running, in one statement; an item whose lease was
    /// lost is stopped here. Returns `(renewed, lost)`.
    pub async fn renew(&self, store: &dyn Store, clock: &dyn Clock, lease: Duration) -> (usize, usize) {
        let held = self.held();
        if held.is_empty() {
            return (0, 0);
        }
        let until = clock.now() + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(30));
        let renewed = match store.renew_claims(&held, until).await {
            Ok(r) => r,
            Err(e) => {
                // Tried again at the next beat; the leases still run until then.
                warn!(error = %e, items = held.len(), "cannot renew the leases of running items");
                return (0, 0);
            }
        };
        let mut running = self.lock();
        let mut lost = 0;
        for (id, token) in held {
            // Finished meanwhile (its row deleted, or its token changed by the run itself).
            let Some(r) = running.get_mut(&id).filter(|r| r.token == Some(token)) else { continue };
            if renewed.contains(&id) {
                r.token = Some(until);
                continue;
            }
            lost += 1;
            let r = running.remove(&id).expect("just found");
            warn!(
                item = id,
                kind = r.kind.as_str(),
                request = ?r.request.map(|r| r.0),
                "lease not renewed (another replica took the item over after this one stalled, or the run \
                 ended just now): stopping the local run"
            );
            if let Some(a) = r.abort {
                a.abort();
            }
        }
        drop(running);
        if lost > 0 {
            self.finished.notify_waiters();
        }
        (renewed.len(), lost)
    }

    /// Waits up to `budget` for every running item to finish; stops those still running then
    /// and releases their leases in one statement. `since` is `finished_so_far` when the
    /// shutdown began.
    pub async fn drain(&self, store: &dyn Store, budget: Duration, since: usize) -> DrainReport {
        let deadline = tokio::time::Instant::now() + budget;
        loop {
            // Created before the check, so that a finish in between is not missed.
            let finished = self.finished.notified();
            if self.is_empty() {
                break;
            }
            tokio::select! {
                _ = finished => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let left: Vec<(i64, Running)> = self.lock().drain().collect();
        let mut held = Vec::new();
        let mut released = Vec::new();
        for (id, r) in left {
            if let Some(a) = &r.abort {
                a.abort();
            }
            if let Some(t) = r.token {
                held.push((id, t));
            }
            released.push(Released { id, kind: r.kind, request: r.request });
        }
        released.sort_by_key(|r| r.id);
        let unleased = match store.release_held(&held).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, items = held.len(), "cannot release the leases of unfinished items: they run again when their leases end");
                0
            }
        };
        DrainReport { finished: self.finished_so_far().saturating_sub(since), released, unleased }
    }
}
