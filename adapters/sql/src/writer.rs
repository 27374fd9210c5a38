//! SQLite's writes: one thread, one connection, group commit.
//!
//! SQLite has one writer, so elevate keeps one writer connection and every write waits for it.
//! Three things made that slow under load (measured with the lifecycle benchmark, see
//! BENCHMARKS.md):
//!
//! - A transaction is several statements. Through sqlx each one is sent to sqlx's worker
//!   thread for the connection and its result sent back, two thread wake-ups per statement,
//!   and on the shared runtime the waiting task then queued behind HTTP handlers while the
//!   writer sat idle, still held. Here the connection is rusqlite's, owned by this thread, and a
//!   statement is a function call.
//! - Each commit writes every page it touched (requests, due items, audit log and their
//!   indexes) to the WAL. Here the writes waiting at the same moment run one after another
//!   inside one transaction, each in its own savepoint (so one failing write rolls back only
//!   itself), and are committed together; nobody is answered before that commit.
//! - Every audit event read and rewrote the chain's head row. Here the head is read once per
//!   batch, under the batch's write lock, and written once before its commit.
//!
//! PostgreSQL has a pool of writers and its own group commit, and does not go through here.

use crate::{err, exec::LiteTx};
use elevate_core::ports::StoreError;
use futures::future::BoxFuture;
use std::{panic::AssertUnwindSafe, path::Path, time::Duration};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

/// Most writes committed together: bounds how long the first one waits for the others.
const MAX_BATCH: usize = 128;

/// Called once the batch's commit is known: the commit's result.
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A write: runs in its savepoint and says whether to keep it, and how to answer its caller.
type Job = Box<dyn for<'t, 'c> FnOnce(&'t mut LiteTx<'c>) -> BoxFuture<'t, (bool, Deliver)> + Send>;

/// The handle; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct WriterThread {
    jobs: mpsc::UnboundedSender<Job>,
}

/// Opens the writer connection with elevate's settings (the file exists and is migrated).
fn open(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path)
        .map_err(|e| StoreError::new(format!("cannot open SQLite database {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
    // WAL is a property of the file (set when it was created); the rest is per connection.
    // 16 MB of page cache (SQLite's default is 2 MB): with a hundred thousand grants the hot
    // pages of requests, due items and the audit log no longer fit in 2 MB.
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16000;",
    )
    .map_err(err)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Copies the WAL into the database file from a thread and connection of its own, so that
/// the writer never stops to do it. (SQLite's default is to checkpoint inside whichever commit
/// passes a thousand WAL pages: that commit, and every write waiting behind it, then waits for
/// the copy and its fsync.) `PASSIVE` never blocks the writer or the readers; the thread ends
/// with the writer, after a last checkpoint.
fn checkpointer(path: &Path, writer_alive: std::sync::mpsc::Receiver<()>) -> Result<(), StoreError> {
    let conn = open(path)?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let checkpoint = |mode: &str| {
                if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
                    tracing::warn!(error = %e, "SQLite checkpoint failed; will retry");
                }
            };
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = writer_alive.recv_timeout(CHECKPOINT_EVERY) {
                checkpoint("PASSIVE");
            }
            checkpoint("PASSIVE");
        })
        .map_err(|e| StoreError::new(format!("cannot start the SQLite checkpoint thread: {e}")))?;
    Ok(())
}

impl WriterThread {
    pub(crate) fn start(path: &Path) -> Result<WriterThread, StoreError> {
        let conn = open(path)?;
        let (alive, writer_alive) = std::sync::mpsc::channel();
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(err)?;
        checkpointer(path, writer_alive)?;
        let (jobs, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer_loop(conn, rx);
                drop(alive);
            })
            .map_err(|e| StoreError::new(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(WriterThread { jobs })
    }

    /// Runs `body` on the writer connection inside the current batch's transaction and
    /// answers once that transaction is committed. The body's statements are undone if it
    /// fails or calls `roll_back`. It runs to the end even if the caller stops waiting, so a
    /// write is never abandoned half-way by a cancelled caller.
    pub(crate) async fn run<T, F>(&self, body: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t, 'c> FnOnce(&'t mut LiteTx<'c>) -> BoxFuture<'t, Result<T, StoreError>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |tx| {
            Box::pin(async move {
                let result = body(tx).await;
                let keep = result.is_ok() && !tx.rollback;
                let deliver = Box::new(move |commit: Result<(), String>| {
                    let _ = done.send(match commit {
                        Ok(()) => result,
                        Err(e) => Err(StoreError::new(format!("commit failed: {e}"))),
                    });
                }) as Deliver;
                (keep, deliver)
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::new("the SQLite writer has stopped"))?;
        answer.await.map_err(|_| StoreError::new("the SQLite write failed without an answer (see the log)"))?
    }
}

fn writer_loop(mut conn: rusqlite::Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        // IMMEDIATE: the write lock from the start, so that the audit head read below cannot
        // be moved by another process (an `elevate` CLI command) before this commit.
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            error!(error = %e, "SQLite writer: cannot begin; failing {} writes", jobs.len());
            continue; // dropping the jobs answers their callers with an error
        }
        let mut head: Option<(i64, String)> = None;
        let mut delivers = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                error!(error = %e, "SQLite writer: cannot open a savepoint; failing a write");
                continue;
            }
            let before = head.clone();
            let mut tx = LiteTx { conn: &mut conn, head: &mut head, rollback: false };
            // The body never waits (its statements are plain calls), so this does not block.
            let ran = std::panic::catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(job(&mut tx))));
            let keep = match ran {
                Ok((keep, deliver)) => {
                    delivers.push(deliver);
                    keep
                }
                // Its caller is answered with an error when its channel is dropped.
                Err(_) => {
                    error!("SQLite writer: a write panicked; it was rolled back");
                    false
                }
            };
            let end = if keep { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
            if !keep {
                head = before;
            }
            if let Err(e) = conn.execute_batch(end) {
                error!(error = %e, "SQLite writer: cannot end a savepoint");
            }
        }
        let mut committed = Ok(());
        if let Some((seq, hash)) = &head
            && let Err(e) = conn.execute("UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1", (seq, hash))
        {
            committed = Err(e.to_string());
        }
        if committed.is_ok() {
            committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        }
        if let Err(e) = &committed {
            error!(error = %e, "SQLite writer: commit failed; {} writes rolled back", delivers.len());
            let _ = conn.execute_batch("ROLLBACK");
        }
        for deliver in delivers {
            deliver(committed.clone());
        }
    }
}
