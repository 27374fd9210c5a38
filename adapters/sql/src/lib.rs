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
mod pg_seal;
mod pg_tx;
mod reach;
mod rows;
mod signal;
mod store;
mod writer;
mod writes;

use elevate_core::ports::StoreError;
use sqlx::{
    ConnectOptions, Connection,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
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
    /// PostgreSQL only: whether it was last found reachable (see `reach.rs`).
    pub(crate) reach: Option<Arc<reach::Reach>>,
    /// Names this store's PostgreSQL notifications, so that its own listener ignores them.
    pub(crate) instance: Arc<str>,
    /// PostgreSQL only: seals written audit events onto the chain (`pg_seal.rs`).
    pub(crate) sealer: Option<pg_seal::Sealer>,
}

/// Which dialect a URL selects, for logs (never the URL itself: it may carry a password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The dialect a database setting selects: `postgres://…` or `postgresql://…`,
    /// `sqlite://PATH` or `sqlite:PATH`, or a plain file path (SQLite). Anything else that looks
    /// like a URL (`mysql://…`, a misspelt `postgress://…`, `http://…`) is an error naming the
    /// accepted forms: taken as a file name, it would quietly create a new, empty SQLite
    /// database beside the real one. The error quotes only the scheme, never the rest (it may
    /// hold a password).
    pub fn parse(url: &str) -> Result<Dialect, String> {
        let url = url.trim();
        if url.is_empty() {
            return Err("the database setting is empty: give a SQLite file path or a postgres:// URL".into());
        }
        match scheme_of(url) {
            None => Ok(Dialect::Sqlite),
            Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => {
                if url[s.len()..].starts_with("://") {
                    Ok(Dialect::Postgres)
                } else {
                    Err(format!("`{s}:` must be followed by `//`, as in postgres://USER@HOST/DATABASE"))
                }
            }
            Some(s) if s.eq_ignore_ascii_case("sqlite") => Ok(Dialect::Sqlite),
            Some(s) => Err(format!(
                "unknown database scheme `{s}:`; elevate takes a SQLite file path, sqlite://PATH, \
                 or postgres://USER@HOST/DATABASE (postgresql:// too)"
            )),
        }
    }
}

/// The scheme of a URL-like setting (`mysql` in `mysql://…`, `postgres` in `postgres:x`), or
/// None for a file path. A single letter before the colon is a Windows drive (`C:\…`), and a
/// path with a separator before the first colon (`./a:b.db`) is a path.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// A driver error that may mean the database could not be reached.
pub(crate) trait DbError: std::fmt::Display {
    fn unreachable(&self) -> bool {
        false
    }
}

impl DbError for sqlx::Error {
    fn unreachable(&self) -> bool {
        reach::unreachable(self)
    }
}

/// SQLite is a local file: its errors are failures, never an outage to wait out.
impl DbError for rusqlite::Error {}
impl DbError for serde_json::Error {}

fn err(e: impl DbError) -> StoreError {
    if e.unreachable() { StoreError::unavailable(e) } else { StoreError::new(e) }
}

impl SqlStore {
    /// Connects and runs migrations. `url` is `postgres://…`, `sqlite://path`, or a plain file
    /// path (SQLite, created if missing); anything else is refused (see [`Dialect::parse`]).
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        let store = match Dialect::parse(url).map_err(StoreError::new)? {
            Dialect::Postgres => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::new(format!("bad PostgreSQL URL: {}", redact(&e.to_string()))))?;
                // No ping before each use of a pooled connection (sqlx's default): that was a
                // round trip per statement outside a transaction and per transaction, a fifth
                // of all on the wire (BENCHMARKS.md). A connection the server dropped then fails
                // its next statement instead, once: that write fails and is retried (the
                // scheduler's items run again after their lease; a person sees an error), and
                // the pool replaces the connection.
                let pool = PgPoolOptions::new()
                    .max_connections(reach::MAX_CONNECTIONS)
                    .test_before_acquire(false)
                    .acquire_timeout(reach::ACQUIRE_TIMEOUT)
                    .connect_with(opts.clone())
                    .await
                    .map_err(|e| {
                        StoreError::new(format!("cannot connect to PostgreSQL: {}", redact(&e.to_string())))
                    })?;
                sqlx::migrate!("../../migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(|e| StoreError::new(format!("PostgreSQL migrations failed: {e}")))?;
                SqlStore {
                    sealer: Some(pg_seal::Sealer::start(pool.clone())),
                    pools: Pools::Postgres(pool),
                    deliveries: Default::default(),
                    reach: Some(Arc::new(reach::Reach::new(opts))),
                    instance: signal::instance_id(),
                }
            }
            Dialect::Sqlite => {
                let path = sqlite_path(url);
                let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}")).map_err(err)?;
                // The file itself, without any `?…` options: the writer thread and the
                // checkpointer open it by name. An in-memory database would be a different one
                // on each of elevate's connections.
                let file = opts.get_filename().to_path_buf();
                if path.contains(":memory:") || path.contains("mode=memory") || file.as_os_str().is_empty() {
                    return Err(StoreError::new(format!(
                        "elevate needs a SQLite file, not `{path}`: an in-memory database is not shared between connections"
                    )));
                }
                if let Some(dir) = file.parent()
                    && !dir.as_os_str().is_empty()
                    && !dir.exists()
                {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::new(format!("cannot create the directory for {path}: {e}")))?;
                }
                let opts = opts
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                // Migrations through sqlx, on a connection closed once they are done: from then
                // on the writer thread's connection is the only one that writes.
                let mut migrator = opts
                    .connect()
                    .await
                    .map_err(|e| StoreError::new(format!("cannot open SQLite database {path}: {e}")))?;
                sqlx::migrate!("../../migrations/sqlite")
                    .run(&mut migrator)
                    .await
                    .map_err(|e| StoreError::new(format!("SQLite migrations failed: {e}")))?;
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
                    .map_err(|e| StoreError::new(format!("cannot open SQLite database {path}: {e}")))?;
                SqlStore {
                    pools: Pools::Sqlite { reader, thread, lockdowns: Default::default() },
                    deliveries: Default::default(),
                    reach: None,
                    instance: signal::instance_id(),
                    sealer: None,
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

    /// The PostgreSQL sealer (called on PostgreSQL's paths only).
    pub(crate) fn sealer(&self) -> &pg_seal::Sealer {
        self.sealer.as_ref().expect("a PostgreSQL store has a sealer")
    }

    /// A cheap round trip, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite { reader, .. } => sqlx::query("SELECT 1").execute(reader).await.map(|_| ()).map_err(err),
            Pools::Postgres(p) => {
                self.pg(p, async { sqlx::query("SELECT 1").execute(p).await.map(|_| ()).map_err(err) }).await
            }
        }
    }

    /// Runs a PostgreSQL operation through the reachability gate: refused at once while the
    /// database is known to be away, and marking it away when the operation could not reach it.
    pub(crate) async fn pg<T>(
        &self,
        pool: &PgPool,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let Some(reach) = &self.reach else { return op.await };
        reach.enter().await?;
        reach.observe(pool, op.await)
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

/// The path part of a SQLite setting (`sqlite://PATH`, `sqlite:PATH` or `PATH`), options included.
fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url)
}

/// The file a SQLite setting names (without `?…` options), or None for PostgreSQL: what a server
/// locks to be the only one on it.
pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    match Dialect::parse(url).map_err(StoreError::new)? {
        Dialect::Postgres => Ok(None),
        Dialect::Sqlite => {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", sqlite_path(url))).map_err(err)?;
            Ok(Some(opts.get_filename().to_path_buf()))
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

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn a_database_setting_selects_a_dialect_or_names_the_accepted_forms() {
        for (url, want) in [
            ("elevate.db", Dialect::Sqlite),
            ("/var/lib/elevate/elevate.db", Dialect::Sqlite),
            ("./data/a:b.db", Dialect::Sqlite),
            ("C:\\elevate\\elevate.db", Dialect::Sqlite),
            ("sqlite:///var/lib/elevate/elevate.db", Dialect::Sqlite),
            ("sqlite:elevate.db", Dialect::Sqlite),
            ("postgres://elevate@db/elevate", Dialect::Postgres),
            ("postgresql://elevate@db/elevate", Dialect::Postgres),
            ("POSTGRES://elevate@db/elevate", Dialect::Postgres),
        ] {
            assert_eq!(Dialect::parse(url), Ok(want), "{url}");
        }
        for (url, scheme) in [
            ("mysql://root:hunter2@db/elevate", "mysql"),
            ("postgress://elevate:hunter2@db/elevate", "postgress"),
            ("http://db:5432/elevate", "http"),
            ("mariadb:db", "mariadb"),
            ("pg://db", "pg"),
        ] {
            let e = Dialect::parse(url).unwrap_err();
            assert!(e.contains(&format!("unknown database scheme `{scheme}:`")), "{url}: {e}");
            assert!(e.contains("postgres://") && e.contains("SQLite file path"), "{e}");
            assert!(!e.contains("hunter2") && !e.contains("@db"), "only the scheme is quoted: {e}");
        }
        assert!(Dialect::parse("postgres:db").unwrap_err().contains("followed by `//`"));
        assert!(Dialect::parse("  ").unwrap_err().contains("empty"));
    }
}
