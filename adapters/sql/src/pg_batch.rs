//! PostgreSQL's transitions, group-committed.
//!
//! Every audit event moves the chain's one head row, and its row lock is held until the commit
//! that makes the event durable: appends from every connection and every replica therefore
//! run one after another, each waiting for the previous one's WAL flush. Measured with
//! `pgbench` on this project's machine, appends through one head row commit ~6.6× slower than
//! independent inserts; that, not elevate's work, bounded the lifecycle throughput on
//! PostgreSQL at a flush per event (BENCHMARKS.md).
//!
//! So transitions (`Store::decide`) run the way SQLite's writer runs every write: a few writer
//! tasks, each with one connection, take the transitions waiting at that moment and run them
//! one after another in one transaction, each in its own savepoint (a failing one rolls back
//! only itself). Each transition's event is staged in a transaction-local list; the message
//! that commits appends them all, chained in order, and moves the head once: the head is held
//! for that one message and one flush, whatever the batch's size. Nobody is answered before
//! the commit.
//!
//! A transition that waits for a row lock holds up its writer's batch until it gets it. Two
//! extensions approved at once whose parents' writers are each other's could wait on each
//! other; PostgreSQL then ends one of them (deadlock detection, after a second), which fails
//! alone and is answered as a failed write.
//!
//! Every invariant stays: each transition is still its own compare-and-set under its row
//! lock with exactly one event, and both commit together (in the batch's transaction); the
//! chain is linked under the head's row lock. A transition's request always goes to the same
//! writer (by id), so two writers of one replica never wait on each other's row locks; the
//! head is taken only by a batch's last message, after all its row locks, so a writer holding
//! the head never waits for a row.

use crate::pg_tx::PgTx;
use elevate_core::ports::StoreError;
use futures::{FutureExt, future::BoxFuture};
use sqlx::PgPool;
use std::{panic::AssertUnwindSafe, sync::Arc};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

/// Most transitions committed together: bounds how long the first one waits for the others.
const MAX_BATCH: usize = 64;

/// Called once the batch's commit is known: the commit's result.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A transition: runs in its savepoint (or is told why it cannot run) and says whether to keep
/// it, and how to answer its caller.
type Job = Box<dyn for<'t> FnOnce(Result<&'t mut PgTx, StoreError>) -> BoxFuture<'t, (bool, Deliver)> + Send>;

/// The handle; the writers end when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct PgBatcher {
    writers: Arc<[mpsc::UnboundedSender<Job>]>,
}

impl PgBatcher {
    /// Starts `writers` writer tasks on `pool` (each holds one of its connections while it
    /// writes a batch).
    pub(crate) fn start(pool: PgPool, writers: usize) -> PgBatcher {
        let senders: Vec<_> = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(writer(pool.clone(), rx));
                tx
            })
            .collect();
        PgBatcher { writers: senders.into() }
    }

    /// Runs `body` for the request numbered `key` on its writer, inside that writer's current
    /// batch, and answers once the batch is committed. It runs to the end even if the caller
    /// stops waiting, so a transition is never abandoned half-way by a cancelled caller.
    pub(crate) async fn run<T, F>(&self, key: i64, body: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut PgTx) -> BoxFuture<'t, Result<T, StoreError>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |tx| {
            Box::pin(async move {
                let (result, keep) = match tx {
                    Ok(tx) => {
                        let result = body(tx).await;
                        let keep = result.is_ok() && !tx.take_rollback();
                        (result, keep)
                    }
                    Err(e) => (Err(e), false),
                };
                let deliver = Box::new(move |commit: Result<(), String>| {
                    let _ = done.send(match (commit, result) {
                        (_, Err(e)) => Err(e),
                        (Ok(()), ok) => ok,
                        (Err(e), Ok(_)) => Err(StoreError::new(format!("commit failed: {e}"))),
                    });
                }) as Deliver;
                (keep, deliver)
            })
        });
        let writer = &self.writers[key.rem_euclid(self.writers.len() as i64) as usize];
        writer.send(job).map_err(|_| StoreError::new("the PostgreSQL writer has stopped"))?;
        answer.await.map_err(|_| StoreError::new("the PostgreSQL write failed without an answer (see the log)"))?
    }
}

async fn writer(pool: PgPool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        run_batch(&pool, jobs).await;
    }
}

/// One batch: `BEGIN`, each job in its savepoint, then the staged events appended and the
/// transaction committed in one message. Any failure of the batch itself (not of one job)
/// rolls the whole batch back and answers every job with it.
async fn run_batch(pool: &PgPool, jobs: Vec<Job>) {
    let mut tx = match PgTx::begin_batch(pool).await {
        Ok(tx) => tx,
        Err(e) => {
            for job in jobs {
                let (_, deliver) = job(Err(copy(&e))).await;
                deliver(Err(e.to_string()));
            }
            return;
        }
    };
    let mut delivers = Vec::with_capacity(jobs.len());
    let mut broken: Option<StoreError> = None;
    for job in jobs {
        if let Some(why) = &broken {
            let (_, deliver) = job(Err(copy(why))).await;
            delivers.push(deliver);
            continue;
        }
        if let Err(e) = tx.savepoint().await {
            let (_, deliver) = job(Err(copy(&e))).await;
            delivers.push(deliver);
            broken = Some(e);
            continue;
        }
        let keep = match AssertUnwindSafe(job(Ok(&mut tx))).catch_unwind().await {
            Ok((keep, deliver)) => {
                delivers.push(deliver);
                keep
            }
            // Its caller is answered with an error when its channel is dropped.
            Err(_) => {
                error!("PostgreSQL writer: a transition panicked; it was rolled back");
                false
            }
        };
        if let Err(e) = tx.end_savepoint(keep).await {
            error!(error = %e, "PostgreSQL writer: cannot end a savepoint; the batch is rolled back");
            broken = Some(e);
        }
    }
    let committed = match broken {
        Some(why) => {
            tx.abandon().await;
            Err(why.to_string())
        }
        None => tx.commit_batch().await.map_err(|e| {
            error!(error = %e, "PostgreSQL writer: commit failed; {} transitions rolled back", delivers.len());
            e.to_string()
        }),
    };
    for deliver in delivers {
        deliver(committed.clone());
    }
}

/// The same error again, for each job a batch-wide failure ends (`StoreError` is not `Clone`:
/// it is built once per answer).
fn copy(e: &StoreError) -> StoreError {
    if e.is_unavailable() { StoreError::unavailable(e) } else { StoreError::new(e) }
}
