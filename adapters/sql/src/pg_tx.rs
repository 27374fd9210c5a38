//! A write on PostgreSQL: a transaction on one connection of the pool, begun, committed and
//! rolled back with plain statements so that `BEGIN` and `COMMIT` can carry other statements
//! in the same round trip (the simple protocol runs a string of statements in one message).
//!
//! Why that matters: every audit append moves the chain's one head row and holds its row lock
//! until the commit, so appends from all replicas run one after another, and whatever happens
//! between taking that lock and the commit's end bounds throughput. With the append in a
//! statement of its own and `COMMIT` after it, that was a round trip to elevate and back (and,
//! on a busy machine, a wait for elevate's thread to be scheduled) on top of the commit's flush.
//! A change's event is therefore staged in a transaction-local setting by the change's own
//! statement, and appended by the same message that commits (`end`): the head is held for the
//! append and the commit only.

use crate::{
    err,
    exec::{Arg, Exec, FromBoth, pg_query},
};
use async_trait::async_trait;
use elevate_core::{
    audit::{AuditEvent, NewEvent, hashed_around_seq},
    ports::StoreError,
    time::{from_millis, to_millis},
};
use futures::future::BoxFuture;
use serde_json::json;
use sqlx::{PgPool, Postgres, pool::PoolConnection};

/// The transaction-local setting an event is staged in (see `PgTx::stage`).
pub(crate) const STAGED_EVENT: &str = "elevate.event";

/// Appends the staged event (numbered, hashed and linked in the statement that moves the head,
/// as `append` does) and commits, in one message.
const APPEND_STAGED_AND_COMMIT: &str = "WITH e AS (SELECT current_setting('elevate.event')::json AS j), \
     head AS (UPDATE audit_head SET prev_hash = hash, seq = seq + 1, \
     hash = encode(sha256(convert_to((SELECT j->>'before' FROM e) || (seq + 1)::text || (SELECT j->>'after' FROM e) \
     || hash, 'UTF8')), 'hex') WHERE id = 1 RETURNING seq, prev_hash, hash) \
     INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     SELECT head.seq, (e.j->>'at')::bigint, e.j->>'actor', e.j->>'kind', (e.j->>'subject')::bigint, e.j->>'details', \
     head.prev_hash, head.hash FROM head, e; COMMIT";

/// A transaction on a pooled connection. Dropped before `end` (its caller was cancelled, or
/// ending it failed), the connection is closed rather than returned to the pool, which rolls
/// the transaction back on the server.
pub(crate) struct PgTx {
    conn: Option<PoolConnection<Postgres>>,
    rollback: bool,
    /// An event was staged: `end` appends it as it commits.
    staged: bool,
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
    pub(crate) async fn begin(pool: &PgPool, first: Option<String>) -> Result<PgTx, StoreError> {
        let conn = pool.acquire().await.map_err(err)?;
        let mut tx = PgTx { conn: Some(conn), rollback: false, staged: false };
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
        sql: String,
    ) -> Result<(PgTx, Vec<sqlx::postgres::PgRow>), StoreError> {
        let conn = pool.acquire().await.map_err(err)?;
        let mut tx = PgTx { conn: Some(conn), rollback: false, staged: false };
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(tx.conn()).await.map_err(err)?;
        Ok((tx, rows))
    }

    /// The transaction's connection, for statements `Exec` does not express.
    pub(crate) fn conn(&mut self) -> &mut sqlx::PgConnection {
        self.conn.as_mut().expect("a transaction's connection is held until it ends")
    }

    /// The SQL that stages `ev` for `end` to append (bound values added to `args`): a
    /// transaction-local setting, so nothing of it outlives this transaction.
    pub(crate) fn stage(&mut self, ev: &NewEvent, args: &mut Vec<Arg>) -> String {
        let (before, after) = hashed_around_seq(ev);
        let staged = json!({
            "before": before,
            "after": after,
            "at": to_millis(ev.at),
            "actor": ev.actor.to_string(),
            "kind": ev.kind.as_str(),
            "subject": ev.subject.map(|s| s.0),
            "details": ev.details.to_string(),
        });
        args.push(Arg::from(STAGED_EVENT));
        args.push(Arg::from(staged.to_string()));
        self.staged = true;
        format!("set_config(${}, ${}, true)", args.len() - 1, args.len())
    }

    /// Commits if `out` succeeded and the write did not ask to be rolled back (appending the
    /// staged event in the same message), rolls back otherwise; `out` is then answered.
    pub(crate) async fn end<T>(mut self, out: Result<T, StoreError>) -> Result<T, StoreError> {
        let commit = out.is_ok() && !self.rollback;
        let sql = match (commit, self.staged) {
            (true, true) => APPEND_STAGED_AND_COMMIT,
            (true, false) => "COMMIT",
            (false, _) => "ROLLBACK",
        };
        match sqlx::raw_sql(sql).execute(self.conn()).await {
            Ok(_) => {
                // Back to the pool, clean.
                self.conn.take();
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

    async fn append(&mut self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        // One statement numbers the event, hashes it onto the chain and moves the head (`SET`
        // reads the head's old values; `prev_hash` keeps the old hash for `RETURNING`). The
        // hashed text is core's, built around the `seq`. (A change's event goes through
        // `stage` instead; this serves writes that need the event back, and rare paths.)
        let (before, after) = hashed_around_seq(&ev);
        let at = to_millis(ev.at);
        let (actor, kind, details) = (ev.actor.to_string(), ev.kind.as_str().to_string(), ev.details.to_string());
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "WITH head AS (UPDATE audit_head SET prev_hash = hash, seq = seq + 1, \
             hash = encode(sha256(convert_to($1 || (seq + 1)::text || $2 || hash, 'UTF8')), 'hex') \
             WHERE id = 1 RETURNING seq, prev_hash, hash) \
             INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
             SELECT seq, $3, $4, $5, $6, $7, prev_hash, hash FROM head RETURNING seq, prev_hash, hash",
        )
        .bind(before)
        .bind(after)
        .bind(at)
        .bind(&actor)
        .bind(&kind)
        .bind(ev.subject.map(|s| s.0))
        .bind(details)
        .fetch_optional(self.conn())
        .await
        .map_err(err)?;
        let (seq, prev_hash, hash) = row.ok_or_else(|| StoreError::new("the audit head row is missing"))?;
        Ok(AuditEvent {
            seq,
            at: from_millis(at),
            actor,
            kind,
            subject: ev.subject.map(|s| s.0),
            details: ev.details,
            prev_hash,
            hash,
        })
    }

    fn roll_back(&mut self) {
        self.rollback = true;
    }
}

/// Runs `body` in a new transaction of `pool`: committed if it succeeds and did not ask to be
/// rolled back, rolled back otherwise.
pub(crate) async fn pg_write<T>(
    pool: &PgPool,
    body: impl for<'t> FnOnce(&'t mut PgTx) -> BoxFuture<'t, Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut tx = PgTx::begin(pool, None).await?;
    let out = body(&mut tx).await;
    tx.end(out).await
}
