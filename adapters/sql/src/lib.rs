//! elevate-sql: the `Store` on SQLite (the embedded default: one file, WAL, created on first
//! run) and PostgreSQL (for several replicas sharing work with `FOR UPDATE SKIP LOCKED`).
//!
//! One code path serves both dialects: every method body is written once and expanded for each
//! pool type by `with_pool!`. SQL uses `$1, $2, …` placeholders in order of first appearance,
//! which both SQLite and PostgreSQL read the same way; the few dialect-specific statements
//! (row locks) are picked by `pg`.

mod chat_refs;
mod exec;
mod pg_fold;
mod pg_tx;
mod rows;
mod signal;
mod store;
mod writer;
mod writes;

use elevate_core::ports::StoreError;
use sqlx::{
    ConnectOptions, Connection,
    postgres::{PgPool, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous},
};
use std::{
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Which database, with its pools. SQLite gets one writer connection on its own thread (SQLite
/// has one writer anyway; a single connection also makes every transaction serial, which is
/// what the lock in `decide` needs) and a few readers (WAL lets them read while the writer
/// writes).
#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite { reader: SqlitePool, thread: writer::WriterThread, lockdowns: Arc<Mutex<LockdownCache>> },
    Postgres(PgPool),
}

/// SQLite only: the lockdowns as last read, since every new request checks them and only this
/// process writes them (one server per SQLite file; the CLI goes through its API). `generation`
/// moves with every write, so that a read that raced a write is not kept.
#[derive(Default)]
pub(crate) struct LockdownCache {
    generation: u64,
    value: Option<Vec<elevate_core::ports::Lockdown>>,
}

/// The `Store`. Clone is cheap (pools are shared).
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) pools: Pools,
    /// Chat deliveries recorded, to forget old ones now and then (see `first_delivery`).
    pub(crate) deliveries: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Names this store's PostgreSQL notifications, so that its own listener ignores them.
    pub(crate) instance: Arc<str>,
}

/// Which dialect a URL selects, for logs (never the URL itself: it may carry a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of(url: &str) -> Dialect {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl SqlStore {
    /// Connects and runs migrations. `url` is `postgres://…`, `sqlite://path`, or a plain file
    /// path (SQLite, created if missing).
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        let store = match Dialect::of(url) {
            Dialect::Postgres => {
                // No ping before each use of a pooled connection (sqlx's default): that was a
                // round trip per statement outside a transaction and per transaction, a fifth
                // of all on the wire (BENCHMARKS.md). A connection the server dropped then fails
                // its next statement instead, once: that write fails and is retried (the
                // scheduler's items run again after their lease; a person sees an error), and
                // the pool replaces the connection.
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(|e| StoreError(format!("cannot connect to PostgreSQL: {}", redact(&e.to_string()))))?;
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError(format!("PostgreSQL migrations failed: {e}")))?;
                SqlStore {
                    pools: Pools::Postgres(pool),
                    deliveries: Default::default(),
                    instance: signal::instance_id(),
                }
            }
            Dialect::Sqlite => {
                let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
                let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}")).map_err(err)?;
                // The file itself, without any `?…` options: the writer thread and the
                // checkpointer open it by name. An in-memory database would be a different one
                // on each of elevate's connections.
                let file = opts.get_filename().to_path_buf();
                if path.contains(":memory:") || path.contains("mode=memory") || file.as_os_str().is_empty() {
                    return Err(StoreError(format!(
                        "elevate needs a SQLite file, not `{path}`: an in-memory database is not shared between connections"
                    )));
                }
                if let Some(dir) = file.parent()
                    && !dir.as_os_str().is_empty()
                    && !dir.exists()
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError(format!("cannot create the directory for {path}: {e}")))?;
                }
                let opts = opts
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                // Migrations through sqlx, on a connection closed once they are done: from then
                // on the writer thread's connection is the only one that writes.
                let mut migrator =
                    opts.connect().await.map_err(|e| StoreError(format!("cannot open SQLite database {path}: {e}")))?;
                sqlx::migrate!("../../migrations/sqlite")
                    .run(&mut migrator)
                    .await
                    .map_err(|e| StoreError(format!("SQLite migrations failed: {e}")))?;
                migrator.close().await.map_err(err)?;
                let thread = writer::WriterThread::start(&file)?;
                // Two readers: more only added threads contending for a small machine's cores
                // (measured with the lifecycle benchmark); reads are short. They keep SQLite's
                // default 2 MB page cache: a reader drops its whole cache whenever the writer
                // has committed since its last read, so under load a bigger one was only more
                // memory to free (measured). Mapping the file (`mmap_size`) was slower too.
                let reader = SqlitePoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(opts.read_only(true))
                    .await
                    .map_err(|e| StoreError(format!("cannot open SQLite database {path}: {e}")))?;
                SqlStore {
                    pools: Pools::Sqlite { reader, thread, lockdowns: Default::default() },
                    deliveries: Default::default(),
                    instance: signal::instance_id(),
                }
            }
        };
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        match self.pools {
            Pools::Sqlite { .. } => Dialect::Sqlite,
            Pools::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Signals of due work made by other replicas, for the scheduler: PostgreSQL notifications
    /// (a listening connection of its own, started here on the current runtime), or, on SQLite
    /// (one server per file), none. Call once per scheduler.
    pub fn due_signal(&self) -> Arc<dyn elevate_core::ports::DueSignal> {
        match &self.pools {
            Pools::Postgres(pool) => Arc::new(signal::PgDueSignal::start(pool, self.instance.clone())),
            Pools::Sqlite { .. } => Arc::new(elevate_core::ports::NoSignal),
        }
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => sqlx::query("SELECT 1").execute(reader).await.map(|_| ()).map_err(err),
            Pools::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(err),
        }
    }

    /// For tests of tamper detection: runs a statement as a DB admin would, behind elevate's back.
    pub async fn execute_raw_for_tests(&self, sql: &'static str) -> Result<u64, StoreError> {
        use exec::Exec as _;
        match &self.pools {
            Pools::Sqlite { thread, .. } => thread.run(move |tx| Box::pin(tx.exec(sql, Vec::new()))).await,
            Pools::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()).map_err(err),
        }
    }
}

/// Removes a password from a connection URL in an error message.
fn redact(s: &str) -> String {
    match (s.find("://"), s.find('@')) {
        (Some(a), Some(b)) if b > a => format!("{}://***{}", &s[..a], &s[b..]),
        _ => s.to_string(),
    }
}
