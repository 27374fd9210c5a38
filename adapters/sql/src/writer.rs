//! SQLite's writes: one thread, one connection, group commit.
//!
//! SQLite has one writer, so elevate keeps one writer connection and every write waits for it.
//! Two things made that slow under load (measured with the lifecycle benchmark, see
//! BENCHMARKS.md):
//!
//! - A transaction is several statements, and after each one sqlx wakes the waiting task from
//!   SQLite's worker thread. On the shared runtime that wake-up queues behind HTTP handlers and
//!   provider calls while the writer sits idle, still held. Here writes run on a runtime of
//!   their own that has nothing else to do.
//! - Each commit writes every page it touched (requests, due items, audit log and their
//!   indexes) to the WAL. Here the writes waiting at the same moment run one after another
//!   inside one transaction, each in its own savepoint (so one failing write rolls back only
//!   itself), and are committed together; nobody is answered before that commit.
//!
//! PostgreSQL has a pool of writers and its own group commit, and does not go through here.

use crate::err;
use elevate_core::ports::StoreError;
use futures::{FutureExt, future::BoxFuture};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

/// Most writes committed together: bounds how long the first one waits for the others.
const MAX_BATCH: usize = 128;

/// Called once the batch's commit is known: the commit's result.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Deliver> + Send>;

/// The handle; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct WriterThread {
    jobs: mpsc::UnboundedSender<Job>,
}

impl WriterThread {
    pub(crate) fn start(pool: SqlitePool) -> Result<WriterThread, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::new(format!("cannot start the SQLite writer runtime: {e}")))?;
        let (jobs, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || rt.block_on(writer_loop(pool, rx)))
            .map_err(|e| StoreError::new(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(WriterThread { jobs })
    }

    /// Runs `body` on the writer connection inside the current batch's transaction and
    /// answers once that transaction is committed. `body` may `begin()` on the connection: that
    /// is a savepoint. It runs to the end even if the caller stops waiting, so a write is never
    /// abandoned half-way by a cancelled caller.
    pub(crate) async fn run<T, F>(&self, body: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = body(conn).await;
                Box::new(move |commit: Result<(), String>| {
                    let _ = done.send(match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::new(format!("commit failed: {e}"))),
                    });
                }) as Deliver
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::new("the SQLite writer has stopped"))?;
        answer.await.map_err(|_| StoreError::new("the SQLite write failed without an answer (see the log)"))?
    }
}

async fn writer_loop(pool: SqlitePool, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "SQLite writer: no connection; failing {} writes", jobs.len());
                continue; // dropping the jobs answers their callers with an error
            }
        };
        let mut outer = match conn.begin().await {
            Ok(t) => t,
            Err(e) => {
                error!(error = %e, "SQLite writer: cannot begin; failing {} writes", jobs.len());
                continue;
            }
        };
        let mut delivers = Vec::with_capacity(jobs.len());
        for job in jobs {
            match AssertUnwindSafe(job(&mut outer)).catch_unwind().await {
                Ok(deliver) => delivers.push(deliver),
                // Its savepoint is rolled back; its caller is answered with an error.
                Err(_) => error!("SQLite writer: a write panicked; it was rolled back"),
            }
        }
        let committed = outer.commit().await.map_err(|e| err(e).0);
        for deliver in delivers {
            deliver(committed.clone());
        }
    }
}
