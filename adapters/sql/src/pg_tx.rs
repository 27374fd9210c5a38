//! A write on PostgreSQL: a transaction on one connection of the pool, begun, committed and
//! rolled back with plain statements so that `BEGIN` can carry other statements in the same
//! round trip (the simple protocol runs a string of statements in one message).
//!
//! A write's audit events go to `audit_pending` in its transaction; once it has committed, the
//! write waits for them to be sealed onto the chain before it answers (`pg_seal.rs`).

use crate::{
    err,
    exec::{Arg, Exec, FromBoth, pg_query},
    pg_seal::{INSERT_PENDING, Sealer, pending_args},
};
use async_trait::async_trait;
use elevate_core::{audit::NewEvent, ports::StoreError};
use futures::future::BoxFuture;
use sqlx::{PgPool, Postgres, pool::PoolConnection};

/// A transaction on a pooled connection. Dropped before `end` (its caller was cancelled, or
/// ending it failed), the connection is closed rather than returned to the pool, which rolls
/// the transaction back on the server.
pub(crate) struct PgTx {
    conn: Option<PoolConnection<Postgres>>,
    rollback: bool,
    /// Seals this write's events once it has committed.
    sealer: Sealer,
    /// The pending audit events this write added: `end` waits for their seal after the commit.
    events: Vec<i64>,
}

impl Drop for PgTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl PgTx {
    /// Begins a transaction; `first`, if any, is sent with the `BEGIN` (one round trip, the
    /// simple protocol; its rows are not read). `first` must not come from outside: it is not a
    /// bound statement.
    pub(crate) async fn begin(pool: &PgPool, sealer: &Sealer, first: Option<String>) -> Result<PgTx, StoreError> {
        let conn = pool.acquire().await.map_err(err)?;
        let mut tx = PgTx { conn: Some(conn), rollback: false, sealer: sealer.clone(), events: Vec::new() };
        let sql = match first {
            Some(first) => format!("BEGIN; {first}"),
            None => "BEGIN".to_string(),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(tx.conn()).await.map_err(err)?;
        Ok(tx)
    }

    /// Begins a transaction with `sql` (which starts with `BEGIN`) and returns the rows its
    /// statements return, in one round trip. The same caution as `begin`'s `first` applies.
    pub(crate) async fn begin_reading(
        pool: &PgPool,
        sealer: &Sealer,
        sql: String,
    ) -> Result<(PgTx, Vec<sqlx::postgres::PgRow>), StoreError> {
        let conn = pool.acquire().await.map_err(err)?;
        let mut tx = PgTx { conn: Some(conn), rollback: false, sealer: sealer.clone(), events: Vec::new() };
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(tx.conn()).await.map_err(err)?;
        Ok((tx, rows))
    }

    /// The transaction's connection, for statements `Exec` does not express.
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn.as_mut().expect("a transaction's connection is held until it ends")
    }

    /// Notes that a statement of this write (not `append`) added the pending event `id`.
    pub(crate) fn wrote_event(&mut self, id: i64) {
        self.events.push(id);
    }

    /// Commits if `out` succeeded and the write did not ask to be rolled back, rolls back
    /// otherwise; `out` is then answered, once the events it committed are sealed.
    pub(crate) async fn end<T>(mut self, out: Result<T, StoreError>) -> Result<T, StoreError> {
        let commit = out.is_ok() && !self.rollback;
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match sqlx::raw_sql(sql).execute(self.conn()).await {
            Ok(_) => {
                // Back to the pool, clean.
                self.conn.take();
                if commit && !self.events.is_empty() {
                    self.sealer.sealed(&self.events).await;
                }
                out
            }
            Err(e) => {
                // A failed commit or append ends the transaction as aborted: roll it back so
                // the connection can be reused (if that fails too, it is closed on drop).
                if sqlx::raw_sql("ROLLBACK").execute(self.conn()).await.is_ok() {
                    self.conn.take();
                }
                match out {
                    Ok(_) => Err(err(e)),
                    Err(first) => Err(first),
                }
            }
        }
    }
}

#[async_trait]
impl Exec for PgTx {
    fn pg(&self) -> bool {
        true
    }

    async fn exec(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        Ok(pg_query(sql, args).execute(self.conn()).await.map_err(err)?.rows_affected())
    }

    async fn rows<R: FromBoth>(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<R>, StoreError> {
        let rows = pg_query(sql, args).fetch_all(self.conn()).await.map_err(err)?;
        rows.iter().map(|r| R::from_row(r).map_err(err)).collect()
    }

    async fn append(&mut self, ev: NewEvent) -> Result<(), StoreError> {
        let (id,): (i64,) =
            self.row(INSERT_PENDING, pending_args(&ev)).await?.ok_or_else(|| StoreError::new("no event id"))?;
        self.events.push(id);
        Ok(())
    }

    fn roll_back(&mut self) {
        self.rollback = true;
    }
}

/// Runs `body` in a new transaction of `pool`: committed if it succeeds and did not ask to be
/// rolled back, rolled back otherwise.
pub(crate) async fn pg_write<T>(
    pool: &PgPool,
    sealer: &Sealer,
    body: impl for<'t> FnOnce(&'t mut PgTx) -> BoxFuture<'t, Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut tx = PgTx::begin(pool, sealer, None).await?;
    let out = body(&mut tx).await;
    tx.end(out).await
}
