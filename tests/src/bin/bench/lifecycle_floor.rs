//! The floor of the lifecycle figures: what the database allows for a lifecycle's writes when
//! nothing else is done. On a fresh database with elevate's own schema (migrated by elevate's
//! store, so the same tables and indexes), a bare client does, per lifecycle, the row writes
//! elevate's lifecycle does, as single-purpose transactions that only write:
//!
//! | commit | writes |
//! |---|---|
//! | create | insert the request, append an event, insert its pending timeout |
//! | approve | compare-and-set the state, insert the approval, delete the pending items, insert the apply, append |
//! | claim the apply | set its lease |
//! | apply | compare-and-set (grant columns), delete the apply, insert the expire, append |
//! | claim the expire | set its lease |
//! | expire | compare-and-set, delete warning and refresh, turn the expire into the revoke, append |
//! | revoked | compare-and-set, delete the revoke, append |
//!
//! Seven commits per lifecycle: sixteen row-writing statements and five appends, 31 round trips
//! on PostgreSQL with `BEGIN` and `COMMIT`. On SQLite an append moves the chain's head row and
//! inserts the event, so the floor is serialised on the head like elevate. On PostgreSQL an
//! append inserts the event into `audit_pending`, as elevate does, and a sealer task beside
//! the lifecycles moves what is pending onto the chain, numbered after the head, in rounds of
//! one statement each, back to back, as elevate's sealer does in rounds of a few; the run ends
//! when everything is sealed. Both write a constant hash. Not in the floor:
//! HTTP, JSON, the policy, the provider calls, any read (elevate reads lockdowns, locks and
//! reads the row before deciding, asks whether a revoke's access is still needed), hashing.
//!
//! PostgreSQL: 64 lifecycles in flight (the bench's clients) over 16 connections (elevate's
//! pool). SQLite: one connection (rusqlite, elevate's settings: WAL, `synchronous = NORMAL`)
//! on one thread, one commit per transaction, as SQLite's single writer allows.

use crate::load::closed_loop;
use anyhow::Context;
use sqlx::{Executor, PgPool, postgres::PgPoolOptions};
use std::time::{Duration, Instant};

const WORKERS: usize = 64;
const POOL: u32 = 16;
/// A hash's width of text, so that event rows are the size of elevate's.
const HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const DETAILS: &str = r#"{"approvals":1,"approvers":["a001"],"required":1,"role":"app","duration":"1s"}"#;

const INSERT_REQUEST: &str = "INSERT INTO requests (kind, parent_id, role, requester, duration_secs, reason, ticket, \
     source, state, created_at, updated_at, extra_approvals, rules, closed_by, note) \
     VALUES ('normal', NULL, 'app', $1, 1, $2, NULL, '{\"api\":null}', 'pending', $3, $3, 0, '[]', NULL, NULL) RETURNING id";
const INSERT_DUE: &str =
    "INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES ($1, $2, $3, 0, 'null') RETURNING id";
const MOVE: &str = "UPDATE requests SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4";
const GRANT: &str = "UPDATE requests SET state = 'active', granted_at = $1, expires_at = $2, \
     grant_handle = '{\"ok\":true}', updated_at = $1 WHERE id = $3 AND state = 'approved'";
const APPROVE: &str = "INSERT INTO approvals (request_id, approver, at) VALUES ($1, 'a001', $2)";
const CANCEL: &str = "DELETE FROM due_items WHERE request_id = $1 AND kind IN ($2, $3, $4)";
const FINISH: &str = "DELETE FROM due_items WHERE id = $1";
const CLAIM: &str = "UPDATE due_items SET claimed_until = $1 WHERE id = $2";
const THEN: &str = "UPDATE due_items SET kind = 'revoke', due_at = $1, attempts = 0 WHERE id = $2";
/// A transition's event, as elevate writes it on PostgreSQL: into `audit_pending`, no head.
const PG_APPEND: &str =
    "INSERT INTO audit_pending (at, actor, kind, subject, details) VALUES ($1, 'system', $2, $3, $4)";
/// The floor's sealer: one statement moves what is pending onto the chain, numbered after the
/// head, which it moves once (constant hashes).
const PG_SEAL: &str = "WITH d AS (DELETE FROM audit_pending WHERE id IN \
     (SELECT id FROM audit_pending ORDER BY id LIMIT 2000) RETURNING *), \
     n AS (SELECT d.*, row_number() OVER (ORDER BY d.id) AS rn FROM d), \
     ins AS (INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     SELECT (SELECT seq FROM audit_head WHERE id = 1) + rn, at, actor, kind, subject, details, $1, $1 FROM n), \
     up AS (UPDATE audit_head SET seq = seq + (SELECT count(*) FROM d), hash = $1 WHERE id = 1) \
     SELECT count(*) FROM d";

/// What a floor run measured.
pub struct Floor {
    pub per_sec: f64,
    /// Commits per lifecycle the database counted (`pg_stat_database.xact_commit`), PostgreSQL only.
    pub commits: Option<f64>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `n` floor lifecycles on the PostgreSQL database at `url` (fresh; migrated here).
pub async fn pg(url: &str, n: usize) -> anyhow::Result<Floor> {
    elevate_sql::SqlStore::connect(url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = PgPoolOptions::new().max_connections(POOL).connect(url).await?;
    let before = crate::lifecycle::xact_commits(url).await?;
    let started = Instant::now();
    let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sealer = tokio::spawn(pg_sealer(pool.clone(), running.clone()));
    let p = pool.clone();
    closed_loop(n, WORKERS, move |i| {
        let pool = p.clone();
        async move { pg_lifecycle(&pool, i).await }
    })
    .await?;
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    sealer.await??;
    let took = started.elapsed();
    pool.close().await;
    let commits = crate::lifecycle::xact_commits(url).await? - before;
    Ok(Floor { per_sec: n as f64 / took.as_secs_f64(), commits: Some(commits as f64 / n as f64) })
}

/// Seals rounds back to back while the lifecycles run, then what is left.
async fn pg_sealer(pool: PgPool, running: std::sync::Arc<std::sync::atomic::AtomicBool>) -> anyhow::Result<()> {
    loop {
        let still = running.load(std::sync::atomic::Ordering::SeqCst);
        let (moved,): (i64,) = sqlx::query_as(PG_SEAL).bind(HASH).fetch_one(&pool).await?;
        if moved == 0 {
            if !still {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn pg_append(tx: &mut sqlx::PgConnection, kind: &str, subject: i64) -> anyhow::Result<()> {
    let q = sqlx::query(PG_APPEND).bind(now()).bind(kind).bind(subject).bind(DETAILS);
    tx.execute(q).await?;
    Ok(())
}

async fn pg_lifecycle(pool: &PgPool, i: usize) -> anyhow::Result<()> {
    let requester = crate::node::requester(i % crate::lifecycle::PEOPLE);
    // create
    let mut tx = pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(INSERT_REQUEST)
        .bind(&requester)
        .bind(format!("INC-{i} bench"))
        .bind(now())
        .fetch_one(&mut *tx)
        .await?;
    pg_append(&mut tx, "request.created", id).await?;
    tx.execute(sqlx::query(INSERT_DUE).bind("pending_timeout").bind(id).bind(now() + 3_600_000)).await?;
    tx.commit().await?;
    // approve
    let mut tx = pool.begin().await?;
    tx.execute(sqlx::query(MOVE).bind("approved").bind(now()).bind(id).bind("pending")).await?;
    tx.execute(sqlx::query(APPROVE).bind(id).bind(now())).await?;
    tx.execute(sqlx::query(CANCEL).bind(id).bind("pending_timeout").bind("reminder").bind("escalate")).await?;
    let (apply,): (i64,) = sqlx::query_as(INSERT_DUE).bind("apply").bind(id).bind(now()).fetch_one(&mut *tx).await?;
    pg_append(&mut tx, "request.approved", id).await?;
    tx.commit().await?;
    // claim and apply
    pool.execute(sqlx::query(CLAIM).bind(now() + 60_000).bind(apply)).await?;
    let mut tx = pool.begin().await?;
    tx.execute(sqlx::query(GRANT).bind(now()).bind(now() + 1_000).bind(id)).await?;
    tx.execute(sqlx::query(FINISH).bind(apply)).await?;
    let (expire,): (i64,) = sqlx::query_as(INSERT_DUE).bind("expire").bind(id).bind(now()).fetch_one(&mut *tx).await?;
    pg_append(&mut tx, "grant.applied", id).await?;
    tx.commit().await?;
    // claim and expire
    pool.execute(sqlx::query(CLAIM).bind(now() + 60_000).bind(expire)).await?;
    let mut tx = pool.begin().await?;
    tx.execute(sqlx::query(MOVE).bind("revoking").bind(now()).bind(id).bind("active")).await?;
    tx.execute(sqlx::query(CANCEL).bind(id).bind("expiry_warning").bind("refresh").bind("refresh")).await?;
    tx.execute(sqlx::query(THEN).bind(now()).bind(expire)).await?;
    pg_append(&mut tx, "grant.revoking", id).await?;
    tx.commit().await?;
    // revoked
    let mut tx = pool.begin().await?;
    tx.execute(sqlx::query(MOVE).bind("expired").bind(now()).bind(id).bind("revoking")).await?;
    tx.execute(sqlx::query(FINISH).bind(expire)).await?;
    pg_append(&mut tx, "grant.revoked", id).await?;
    tx.commit().await?;
    Ok(())
}

/// `n` floor lifecycles on a new SQLite file at `path` (migrated here), on a thread of its own.
pub async fn sqlite(path: &str, n: usize) -> anyhow::Result<Floor> {
    elevate_sql::SqlStore::connect(path).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = path.to_string();
    let took = tokio::task::spawn_blocking(move || sqlite_run(&path, n)).await??;
    Ok(Floor { per_sec: n as f64 / took.as_secs_f64(), commits: None })
}

fn sqlite_run(path: &str, n: usize) -> anyhow::Result<Duration> {
    use rusqlite::params;
    let mut c = rusqlite::Connection::open(path).context("open the floor database")?;
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    let append = |tx: &rusqlite::Transaction<'_>, kind: &str, id: i64| -> rusqlite::Result<()> {
        let seq: i64 = tx
            .prepare_cached("UPDATE audit_head SET seq = seq + 1, hash = $1 WHERE id = 1 RETURNING seq")?
            .query_row(params![HASH], |r| r.get(0))?;
        tx.prepare_cached(
            "INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
             VALUES ($1, $2, 'system', $3, $4, $5, $6, $6)",
        )?
        .execute(params![seq, now(), kind, id, DETAILS, HASH])?;
        Ok(())
    };
    let started = Instant::now();
    for i in 0..n {
        let requester = crate::node::requester(i % crate::lifecycle::PEOPLE);
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let id: i64 = tx
            .prepare_cached(INSERT_REQUEST)?
            .query_row(params![requester, format!("INC-{i} bench"), now()], |r| r.get(0))?;
        append(&tx, "request.created", id)?;
        tx.prepare_cached(INSERT_DUE)?.query_row(params!["pending_timeout", id, now() + 3_600_000], |_| Ok(()))?;
        tx.commit()?;

        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(MOVE)?.execute(params!["approved", now(), id, "pending"])?;
        tx.prepare_cached(APPROVE)?.execute(params![id, now()])?;
        tx.prepare_cached(CANCEL)?.execute(params![id, "pending_timeout", "reminder", "escalate"])?;
        let apply: i64 = tx.prepare_cached(INSERT_DUE)?.query_row(params!["apply", id, now()], |r| r.get(0))?;
        append(&tx, "request.approved", id)?;
        tx.commit()?;

        c.prepare_cached(CLAIM)?.execute(params![now() + 60_000, apply])?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(GRANT)?.execute(params![now(), now() + 1_000, id])?;
        tx.prepare_cached(FINISH)?.execute(params![apply])?;
        let expire: i64 = tx.prepare_cached(INSERT_DUE)?.query_row(params!["expire", id, now()], |r| r.get(0))?;
        append(&tx, "grant.applied", id)?;
        tx.commit()?;

        c.prepare_cached(CLAIM)?.execute(params![now() + 60_000, expire])?;
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(MOVE)?.execute(params!["revoking", now(), id, "active"])?;
        tx.prepare_cached(CANCEL)?.execute(params![id, "expiry_warning", "refresh", "refresh"])?;
        tx.prepare_cached(THEN)?.execute(params![now(), expire])?;
        append(&tx, "grant.revoking", id)?;
        tx.commit()?;

        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(MOVE)?.execute(params!["expired", now(), id, "revoking"])?;
        tx.prepare_cached(FINISH)?.execute(params![expire])?;
        append(&tx, "grant.revoked", id)?;
        tx.commit()?;
    }
    Ok(started.elapsed())
}
