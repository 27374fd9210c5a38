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

/// The transaction-local list a batch's events are staged in (see `pg_batch.rs`).
pub(crate) const STAGED_EVENTS: &str = "elevate.events";

/// Appends a batch's staged events, in order (each numbered, hashed onto the one before and
/// linked, as `append` does one), moves the head once to the last, and commits, in one
/// message. With nothing staged (every staging job was rolled back) the head is left as it is.
const APPEND_ALL_STAGED_AND_COMMIT: &str = "WITH RECURSIVE staged AS (SELECT e.i, e.j FROM \
     jsonb_array_elements(COALESCE(NULLIF(current_setting('elevate.events', true), ''), '[]')::jsonb) \
     WITH ORDINALITY AS e(j, i)), \
     old AS (SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE), \
     chain AS (SELECT 0::bigint AS i, seq, NULL::text AS prev, hash FROM old UNION ALL \
     SELECT s.i, c.seq + 1, c.hash, encode(sha256(convert_to((s.j->>'before') || (c.seq + 1)::text || (s.j->>'after') \
     || c.hash, 'UTF8')), 'hex') FROM chain c JOIN staged s ON s.i = c.i + 1), \
     ins AS (INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     SELECT c.seq, (s.j->>'at')::bigint, s.j->>'actor', s.j->>'kind', (s.j->>'subject')::bigint, s.j->>'details', \
     c.prev, c.hash FROM chain c JOIN staged s ON s.i = c.i) \
     UPDATE audit_head SET seq = last.seq, prev_hash = last.prev, hash = last.hash \
     FROM (SELECT i, seq, prev, hash FROM chain ORDER BY i DESC LIMIT 1) last WHERE id = 1 AND last.i > 0; COMMIT";

/// A transaction on a pooled connection. Dropped before `end` (its caller was cancelled, or
/// ending it failed), the connection is closed rather than returned to the pool, which rolls
/// the transaction back on the server.
pub(crate) struct PgTx {
    conn: Option<PoolConnection<Postgres>>,
    rollback: bool,
    /// An event was staged: `end` appends it as it commits.
    staged: bool,
    /// A batch's transaction (`pg_batch.rs`): events are staged in a list, each job runs in a
    /// savepoint, and the batch commits with `commit_batch`.
    batch: bool,
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
        let mut tx = PgTx { conn: Some(conn), rollback: false, staged: false, batch: false };
        let sql = match first {
            Some(first) => format!("BEGIN; {first}"),
            None => "BEGIN".to_string(),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(tx.conn()).await.map_err(err)?;
        Ok(tx)
    }

    /// Begins a batch's transaction (see `pg_batch.rs`).
    pub(crate) async fn begin_batch(pool: &PgPool) -> Result<PgTx, StoreError> {
        let mut tx = PgTx::begin(pool, None).await?;
        tx.batch = true;
        Ok(tx)
    }

    /// In a batch: opens the next job's savepoint.
    pub(crate) async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.rollback = false;
        sqlx::raw_sql("SAVEPOINT job").execute(self.conn()).await.map(|_| ()).map_err(err)
    }

    /// In a batch: keeps the job's statements, or undoes them (its staged event with them).
    pub(crate) async fn end_savepoint(&mut self, keep: bool) -> Result<(), StoreError> {
        let sql = if keep { "RELEASE SAVEPOINT job" } else { "ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job" };
        sqlx::raw_sql(sql).execute(self.conn()).await.map(|_| ()).map_err(err)
    }

    /// Whether the running job asked to be rolled back (see `Exec::roll_back`), clearing it.
    pub(crate) fn take_rollback(&mut self) -> bool {
        std::mem::take(&mut self.rollback)
    }

    /// In a batch: runs `sql` (the simple protocol, several statements in one message) and
    /// returns the rows its statements return. `sql` must not come from outside.
    pub(crate) async fn read_locked(&mut self, sql: String) -> Result<Vec<sqlx::postgres::PgRow>, StoreError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(self.conn()).await.map_err(err)
    }

    /// Appends the batch's staged events and commits (one message); rolls back if that fails.
    pub(crate) async fn commit_batch(mut self) -> Result<(), StoreError> {
        let sql = if self.staged { APPEND_ALL_STAGED_AND_COMMIT } else { "COMMIT" };
        match sqlx::raw_sql(sql).execute(self.conn()).await {
            Ok(_) => {
                self.conn.take();
                Ok(())
            }
            Err(e) => {
                self.abandon().await;
                Err(err(e))
            }
        }
    }

    /// Rolls the transaction back; a connection that cannot even do that is closed.
    pub(crate) async fn abandon(mut self) {
        if sqlx::raw_sql("ROLLBACK").execute(self.conn()).await.is_ok() {
            self.conn.take();
        }
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
        self.staged = true;
        if self.batch {
            // Added to the batch's list; a savepoint rolled back takes its addition with it.
            args.push(Arg::from(staged.to_string()));
            return format!(
                "set_config('{STAGED_EVENTS}', (COALESCE(NULLIF(current_setting('{STAGED_EVENTS}', true), ''), '[]')::jsonb \
                 || jsonb_build_array(${}::jsonb))::text, true)",
                args.len()
            );
        }
        args.push(Arg::from(STAGED_EVENT));
        args.push(Arg::from(staged.to_string()));
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

    async fn add_event(&mut self, ev: NewEvent) -> Result<(), StoreError> {
        if !self.batch {
            return self.append(ev).await.map(|_| ());
        }
        let mut args = Vec::new();
        let sql = format!("SELECT {}", self.stage(&ev, &mut args));
        pg_query(&sql, args).execute(self.conn()).await.map(|_| ()).map_err(err)
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
