//! PostgreSQL's audit chain, sealed after the commit instead of during it.
//!
//! Every event is numbered, hashed and linked after the one before it, through the chain's one
//! head row. When each transition appended its own event, each held that row's lock from its
//! append to the end of its commit, WAL flush included, so every transition of every replica
//! waited for the one before it: on this project's 2-core machine 2,700 appends a second where
//! independent inserts reach 16,600 (`pgbench`, BENCHMARKS.md), about five transitions' events
//! per lifecycle.
//!
//! So on PostgreSQL a transition writes its event, in its own transaction as before (one
//! compare-and-set and one event, committed together or not at all), into `audit_pending`, a
//! table without a head; and a **sealer** moves what is pending onto the chain in batches: one
//! transaction locks the head, takes every committed pending event in the order written,
//! numbers, hashes and links them (core's hashing, as SQLite's writer does) and inserts them
//! into `audit_events`. One head lock and one flush serve a whole batch.
//!
//! What it keeps:
//! - **Nothing is lost**: the event commits with its change; a crash before sealing leaves it
//!   pending, and any replica's sealer (each looks every [`SWEEP`]) seals it.
//! - **Read your writes**: a write that wrote an event returns only once a sealing round that
//!   began after its commit has ended ([`Sealer::sealed`]), so whoever reads the log next (the
//!   API, the audit feed, a test) finds it, in place.
//! - **Causal order**: sealers run one at a time (the head's row lock, taken before pending
//!   events are read, so a round sees every round before it); an event whose transaction began
//!   after another's commit was written later and is sealed in the same or a later round,
//!   after it.
//! - **Tamper evidence** from sealing on: a pending event is not yet hashed, so for the
//!   milliseconds between its commit and its round it could be changed without the chain
//!   showing it, by someone who can write the database.
//!
//! SQLite keeps sealing in the transition (`exec.rs`): its one writer commits a batch at a time
//! already.

use crate::{err, exec::Arg};
use elevate_core::{
    audit::{AuditEvent, NewEvent},
    ports::StoreError,
    time::{from_millis, to_millis},
};
use sqlx::{PgPool, Postgres, Row, pool::PoolConnection};
use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::{Notify, watch};

/// How often every replica looks for events left pending (by a replica that stopped between a
/// commit and its seal, or a round that failed).
pub(crate) const SWEEP: Duration = Duration::from_secs(1);

/// At most this many events per sealing transaction: a backlog is sealed in several, each short.
const BATCH: usize = 2000;

/// The statement a write uses to add its event (bound: at, actor, kind, subject, details);
/// returns the pending event's id, which the write then waits to see sealed.
pub(crate) const INSERT_PENDING: &str =
    "INSERT INTO audit_pending (at, actor, kind, subject, details) VALUES ($1, $2, $3, $4, $5) RETURNING id";

/// The values `INSERT_PENDING` binds for `ev`.
pub(crate) fn pending_args(ev: &NewEvent) -> Vec<Arg> {
    vec![
        Arg::from(to_millis(ev.at)),
        Arg::from(ev.actor.to_string()),
        Arg::from(ev.kind.as_str()),
        Arg::from(ev.subject.map(|s| s.0)),
        Arg::from(ev.details.to_string()),
    ]
}

/// A round's first message: the head, locked, then what is pending (a statement of its own,
/// so that under READ COMMITTED its snapshot includes every round that held the head before).
/// One round trip (the simple protocol runs the three in order); `LIMIT` is [`BATCH`].
const LOCK_AND_TAKE: &str = "BEGIN; SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE; \
     DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT 2000) \
     RETURNING id, at, actor, kind, subject, details";

/// A round's second message: the sealed events in, the head moved.
const INSERT_SEALED: &str = "WITH ins AS (INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[])) \
     UPDATE audit_head SET seq = $9, prev_hash = $10, hash = $11 WHERE id = 1";

/// Seals this store's events, and anyone's left pending. Clones share one sealing task, which
/// stops once the last clone is dropped (at its next look).
#[derive(Clone)]
pub(crate) struct Sealer(Arc<Shared>);

struct Shared {
    pool: PgPool,
    /// Tickets handed out: a write takes one after its commit ([`Sealer::sealed`]).
    asked: AtomicU64,
    served: watch::Sender<Served>,
    kick: Notify,
}

/// What the sealing task has done, for writes waiting on it.
#[derive(Default)]
struct Served {
    /// The highest ticket a finished round covers: every event committed before that ticket
    /// was taken is sealed (or its round failed).
    upto: u64,
    /// The pending ids the last rounds sealed, sorted: a write whose events are among them
    /// need not wait for a round of its own.
    ids: Vec<i64>,
}

impl Sealer {
    /// Starts the sealing task on the current tokio runtime.
    pub(crate) fn start(pool: PgPool) -> Sealer {
        let shared = Arc::new(Shared {
            pool,
            asked: AtomicU64::new(0),
            served: watch::channel(Served::default()).0,
            kick: Notify::new(),
        });
        tokio::spawn(run(Arc::downgrade(&shared)));
        Sealer(shared)
    }

    /// Returns once the pending events `ids`, committed before this call, are on the chain:
    /// seen sealed by a round, or covered by a round that began after this call. Also returns
    /// once such a round has failed (a later round seals them; the write they belong to has
    /// committed and is not failed for it).
    pub(crate) async fn sealed(&self, ids: &[i64]) {
        let ticket = self.0.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let mut served = self.0.served.subscribe();
        self.0.kick.notify_one();
        // The sender lives as long as `self`: `wait_for` ends by the condition.
        let _ = served
            .wait_for(|s| s.upto >= ticket || (!ids.is_empty() && ids.iter().all(|i| s.ids.binary_search(i).is_ok())))
            .await;
    }

    /// Seals what is pending and appends `ev` after it, in one transaction, and returns `ev` as
    /// sealed: for the rare writer that needs its event's place in the chain (a checkpoint
    /// names its own position).
    pub(crate) async fn append(&self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        let round = round(&self.0.pool, Some(ev)).await?;
        self.0.served.send_modify(|s| s.ids = round.ids);
        round.last.ok_or_else(|| StoreError::new("the appended event was not sealed"))
    }
}

async fn run(shared: Weak<Shared>) {
    // Whether the last round failed: a failure is logged when it starts and when it ends, not
    // every second of an outage.
    let mut failing = false;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let kicked = tokio::time::timeout(SWEEP, s.kick.notified()).await.is_ok();
        // Every ticket taken before this load is covered by the rounds below: their events
        // committed before it, so before the first round's head lock and read.
        let upto = s.asked.load(Ordering::SeqCst);
        let done = if kicked { seal_all(&s).await } else { sweep(&s).await };
        match &done {
            Err(e) if !failing => {
                tracing::warn!(error = %e, "could not seal pending audit events; retrying every second")
            }
            Ok(_) if failing => tracing::info!("sealing audit events again"),
            _ => {}
        }
        failing = done.is_err();
        // Served even after a failure: a waiting write has committed, and must not hang on the
        // log while the database is away; a later round seals its event.
        s.served.send_if_modified(|v| {
            let moved = upto > v.upto;
            v.upto = v.upto.max(upto);
            moved
        });
        if failing {
            drop(s);
            tokio::time::sleep(SWEEP).await;
        }
    }
}

/// A look without a kick: seals only if something is pending (a cheap read, no lock).
async fn sweep(s: &Shared) -> Result<usize, StoreError> {
    let any: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM audit_pending LIMIT 1").fetch_optional(&s.pool).await.map_err(err)?;
    if any.is_none() {
        return Ok(0);
    }
    let n = seal_all(s).await?;
    if n > 0 {
        tracing::info!(events = n, "sealed audit events left pending");
    }
    Ok(n)
}

/// Rounds until a round finds less than a batch: then everything committed before the first
/// round began is sealed. Each round's ids are published as it commits. How many were sealed.
async fn seal_all(s: &Shared) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let round = round(&s.pool, None).await?;
        let n = round.ids.len();
        s.served.send_modify(|v| v.ids = round.ids);
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// What one round sealed.
struct Round {
    /// The pending ids sealed, sorted.
    ids: Vec<i64>,
    /// The last event sealed (the `extra` one, if given).
    last: Option<AuditEvent>,
}

/// One sealing transaction, in three round trips: lock the head and take up to a batch of
/// pending events; insert them (then `extra`, if any) numbered, hashed and linked after the
/// head, in the order they were written, and move the head; commit. Dropped or failed before
/// the commit, its connection is closed, which rolls it back on the server.
async fn round(pool: &PgPool, extra: Option<NewEvent>) -> Result<Round, StoreError> {
    let mut conn = pool.acquire().await.map_err(err)?;
    match round_on(&mut conn, extra).await {
        Ok(round) => Ok(round),
        Err(e) => {
            conn.close_on_drop();
            Err(e)
        }
    }
}

async fn round_on(conn: &mut PoolConnection<Postgres>, extra: Option<NewEvent>) -> Result<Round, StoreError> {
    let rows = sqlx::raw_sql(LOCK_AND_TAKE).fetch_all(&mut **conn).await.map_err(err)?;
    let mut rows = rows.into_iter();
    let head = rows.next().ok_or_else(|| StoreError::new("the audit head row is missing"))?;
    let (mut seq, mut hash): (i64, String) = (head.try_get(0).map_err(err)?, head.try_get(1).map_err(err)?);
    let mut pending = Vec::new();
    for r in rows {
        let row: (i64, i64, String, String, Option<i64>, String) = (
            r.try_get(0).map_err(err)?,
            r.try_get(1).map_err(err)?,
            r.try_get(2).map_err(err)?,
            r.try_get(3).map_err(err)?,
            r.try_get(4).map_err(err)?,
            r.try_get(5).map_err(err)?,
        );
        pending.push(row);
    }
    pending.sort_by_key(|r| r.0);
    let ids: Vec<i64> = pending.iter().map(|r| r.0).collect();
    let mut texts = Vec::with_capacity(pending.len() + 1);
    let mut sealed: Vec<AuditEvent> = Vec::with_capacity(pending.len() + 1);
    for (_, at, actor, kind, subject, details) in pending {
        let mut ev = AuditEvent {
            seq: seq + 1,
            at: from_millis(at),
            actor,
            kind,
            subject,
            details: serde_json::from_str(&details).map_err(err)?,
            prev_hash: hash.clone(),
            hash: String::new(),
        };
        ev.hash = ev.compute_hash();
        (seq, hash) = (ev.seq, ev.hash.clone());
        // The text as written, byte for byte; the hash covers its canonical form.
        texts.push(details);
        sealed.push(ev);
    }
    if let Some(new) = extra {
        let ev = AuditEvent::seal(&new, Some((seq, hash.as_str())));
        (seq, hash) = (ev.seq, ev.hash.clone());
        texts.push(ev.details.to_string());
        sealed.push(ev);
    }
    if let Some(last) = sealed.last() {
        sqlx::query(INSERT_SEALED)
            .bind(sealed.iter().map(|e| e.seq).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| to_millis(e.at)).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.actor.clone()).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.kind.clone()).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.subject).collect::<Vec<_>>())
            .bind(texts)
            .bind(sealed.iter().map(|e| e.prev_hash.clone()).collect::<Vec<_>>())
            .bind(sealed.iter().map(|e| e.hash.clone()).collect::<Vec<_>>())
            .bind(seq)
            .bind(last.prev_hash.clone())
            .bind(hash)
            .execute(&mut **conn)
            .await
            .map_err(err)?;
    }
    sqlx::raw_sql("COMMIT").execute(&mut **conn).await.map_err(err)?;
    Ok(Round { ids, last: sealed.pop() })
}
