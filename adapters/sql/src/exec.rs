//! One way to run a write's statements on either database, so that each write is written once.
//!
//! On PostgreSQL a write is a transaction on a connection of the pool (`PgTx`, `pg_tx.rs`). On
//! SQLite it runs on the writer thread through rusqlite ([`LiteTx`], see `writer.rs`): there
//! each statement is a plain function call on the thread that owns the connection, where
//! through sqlx every statement was two thread hand-offs (to sqlx's SQLite worker and back), and
//! those hand-offs, not SQLite, were what a transition cost (see BENCHMARKS.md).

use crate::err;
use async_trait::async_trait;
use elevate_core::{
    audit::{AuditEvent, NewEvent},
    ports::StoreError,
    time::to_millis,
};
use sqlx::{PgPool, Postgres, postgres::PgRow};

/// A bound value. Typed, because PostgreSQL types every parameter (a NULL too).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Arg {
        Arg::Text(Some(v))
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_string()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Arg {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Arg {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_string))
    }
}

/// `args![a, b, …]`: the bound values of a statement, in placeholder order.
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::exec::Arg::from($a)),*] };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Int(v) => v.to_sql(),
            Arg::Text(v) => v.to_sql(),
        }
    }
}

/// A row type both drivers can read: sqlx's `FromRow` for PostgreSQL, by column name through
/// rusqlite for SQLite.
pub(crate) trait FromBoth: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + 'static {
    fn from_lite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl FromBoth for (i64,) {
    fn from_lite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok((row.get(0)?,))
    }
}

/// The statements of one write, inside its transaction (a savepoint of the batch on SQLite).
#[async_trait]
pub(crate) trait Exec: Send {
    fn pg(&self) -> bool;
    /// Runs a statement that returns no rows; how many rows it changed.
    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError>;
    /// Runs a statement and reads its rows.
    async fn rows<R: FromBoth>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<R>, StoreError>;
    /// Adds an event to the audit log in this transaction. On SQLite it is sealed onto the chain
    /// at once, after the head this transaction holds; on PostgreSQL it is sealed after the
    /// commit, before the write answers (`pg_seal.rs`).
    async fn append(&mut self, ev: NewEvent) -> Result<(), StoreError>;
    /// Undoes this write's statements, without failing it: what it returns is still answered.
    fn roll_back(&mut self);

    async fn row<R: FromBoth>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Option<R>, StoreError> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }
}

const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) fn pg_query(
    sql: &str,
    args: Vec<Arg>,
) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
        };
    }
    q
}

/// A write on SQLite: the writer thread's connection, inside the write's savepoint. The audit
/// head is read once per batch (under the batch's write lock, so another process cannot have
/// moved it) and written back once at its end, instead of read and written per event.
pub(crate) struct LiteTx<'c> {
    pub(crate) conn: &'c mut rusqlite::Connection,
    pub(crate) head: &'c mut Option<(i64, String)>,
    pub(crate) rollback: bool,
}

#[async_trait]
impl Exec for LiteTx<'_> {
    fn pg(&self) -> bool {
        false
    }

    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        Ok(stmt.execute(rusqlite::params_from_iter(args.iter())).map_err(err)? as u64)
    }

    async fn rows<R: FromBoth>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<R>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(err)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter())).map_err(err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(err)? {
            out.push(R::from_lite(row).map_err(err)?);
        }
        Ok(out)
    }

    async fn append(&mut self, ev: NewEvent) -> Result<(), StoreError> {
        self.seal(ev).await.map(|_| ())
    }

    fn roll_back(&mut self) {
        self.rollback = true;
    }
}

impl LiteTx<'_> {
    /// Appends `ev` to the chain after the head this batch holds, and returns it sealed.
    pub(crate) async fn seal(&mut self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        let (seq, hash) = match self.head.as_ref() {
            Some(h) => h.clone(),
            None => self
                .conn
                .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
                .map_err(err)?,
        };
        let e = AuditEvent::seal(&ev, Some((seq, hash.as_str())));
        let values =
            args![e.seq, to_millis(e.at), &e.actor, &e.kind, e.subject, e.details.to_string(), &e.prev_hash, &e.hash];
        self.exec(INSERT_EVENT, values).await?;
        *self.head = Some((e.seq, e.hash.clone()));
        Ok(e)
    }
}

/// A write of one statement on PostgreSQL, straight on the pool (autocommit): a transaction
/// around it would only add two round trips.
pub(crate) struct PgAuto(pub(crate) PgPool);

#[async_trait]
impl Exec for PgAuto {
    fn pg(&self) -> bool {
        true
    }

    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(pg_query(sql, args).execute(&self.0).await.map_err(err)?.rows_affected())
    }

    async fn rows<R: FromBoth>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<R>, StoreError> {
        let rows = pg_query(sql, args).fetch_all(&self.0).await.map_err(err)?;
        rows.iter().map(|r| R::from_row(r).map_err(err)).collect()
    }

    async fn append(&mut self, _: NewEvent) -> Result<(), StoreError> {
        Err(StoreError::new("audit events are appended only inside a transaction"))
    }

    fn roll_back(&mut self) {
        debug_assert!(false, "a single-statement write has nothing to roll back");
    }
}
