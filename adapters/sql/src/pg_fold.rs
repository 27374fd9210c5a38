//! PostgreSQL's writes in fewer round trips. On PostgreSQL each statement is a round trip to
//! the server and its own parse, plan and execution there, and the server's CPU per statement
//! was what bounded throughput (BENCHMARKS.md). So here a write's parts travel together:
//!
//! - `decide`: the request and its approvals are read, with the row's version, by one prepared
//!   statement outside any transaction; core decides; the compare-and-set (on the state and the
//!   version), the approval, the due-item changes and the audit event are one statement of
//!   data-modifying CTEs, the parts after the compare-and-set written only if it matched. Two
//!   round trips, no `BEGIN`/`COMMIT`. A write that finds the row moved since its read reads
//!   again and core decides again; a linked move (an extension), or a row that keeps moving,
//!   is decided under the row's lock in a transaction instead (the lock and read in the
//!   message that begins it, then the same statement, then `COMMIT`).
//! - `create_request`: the insert, its audit event and its due items are one statement,
//!   atomic on its own, so no transaction is opened around it.
//! - `claim_due`: the claim returns the claimed items with their requests and approvals.
//!
//! Every invariant stays: one compare-and-set and one event per transition in one transaction
//! (the CTEs of one statement see one snapshot and commit together; the optimistic CAS names
//! the version core decided on, so no write in between is overwritten); events are numbered,
//! hashed and linked onto the chain by the sealer, in batches, before the write answers
//! (`pg_seal.rs`); claims stay `FOR UPDATE SKIP LOCKED`. SQLite keeps `writes.rs` (there a
//! statement is a function call, not a round trip).

use crate::{
    err,
    exec::{Arg, Exec, pg_query},
    pg_seal::{INSERT_PENDING, Sealer, pending_args},
    pg_tx::PgTx,
    rows::{ApprovalRow, DueRow, RequestApprovalRow, RequestRow, request_columns},
    signal, writes,
};
use elevate_core::{
    RequestId,
    audit::NewEvent,
    ports::{Change, DecideFn, Decided, Decision, DueItem, NewDue, StoreError},
    request::{NewRequest, Request},
    time::to_millis,
};
use sqlx::{PgPool, Row};

const SELECT_APPROVALS: &str =
    "SELECT request_id, approver, at FROM approvals WHERE request_id = $1 ORDER BY at, approver";

/// A statement's bound values, numbered as they are added.
#[derive(Default)]
struct Binds(Vec<Arg>);

impl Binds {
    /// Binds `v` and returns its placeholder.
    fn add(&mut self, v: impl Into<Arg>) -> String {
        self.0.push(v.into());
        format!("${}", self.0.len())
    }
}

/// The CTE that adds `ev` to the audit log (`audit_pending`, sealed onto the chain after the
/// commit: `pg_seal.rs`). `subject` is SQL for the event's subject (the new request's id), or
/// None for the event's own.
fn event_cte(b: &mut Binds, ev: NewEvent, subject: Option<&str>, only_if: Option<&str>) -> String {
    let subject = match subject {
        Some(s) => format!("({s})"),
        None => b.add(ev.subject.map(|s| s.0)),
    };
    format!(
        "ev AS (INSERT INTO audit_pending (at, actor, kind, subject, details) SELECT {}, {}, {}, {subject}, {}{} RETURNING id)",
        b.add(to_millis(ev.at)),
        b.add(ev.actor.to_string()),
        b.add(ev.kind.as_str()),
        b.add(ev.details.to_string()),
        only_if.map(|c| format!(" WHERE {c}")).unwrap_or_default()
    )
}

/// `VALUES` rows of new due items; `request` is SQL for the request of items that name none.
fn due_values(b: &mut Binds, items: Vec<NewDue>, request: &str) -> String {
    let rows: Vec<String> = items
        .into_iter()
        .map(|d| {
            let req = match d.request {
                Some(r) => b.add(r.0),
                None => request.to_string(),
            };
            format!(
                "({}, {req}, {}, 0, {})",
                b.add(d.kind.as_str()),
                b.add(to_millis(d.due_at)),
                b.add(d.payload.to_string())
            )
        })
        .collect();
    rows.join(", ")
}

/// A request row locked and read in the message that begins the transaction, with its
/// approvals, and whether those approvals are as of the lock (`fresh`).
#[derive(sqlx::FromRow)]
struct LockedRow {
    #[sqlx(flatten)]
    row: RequestApprovalRow,
    fresh: bool,
}

/// `BEGIN`, then the request locked and read with its approvals, in one message. The text
/// carries the id as a number (it is not a bound statement). Under `READ COMMITTED` a
/// statement that waits for a row lock gets the row's newest version, but reads the other
/// tables as of when it started, so approvals committed while it waited would be missed:
/// `fresh` compares the locked version (`xmin`) with the one the statement's snapshot sees, and
/// differs exactly when the row moved meanwhile (every write of approvals moves the row too),
/// in which case they are read again.
fn lock_and_read(id: i64) -> String {
    format!(
        concat!(
            "BEGIN; SELECT r.*, a.approver, a.at AS approved_at, ",
            "r.version = (SELECT xmin::text FROM requests WHERE id = {id}) AS fresh FROM (SELECT xmin::text AS version, ",
            request_columns!(),
            " FROM requests WHERE id = {id} FOR UPDATE) r LEFT JOIN approvals a ON a.request_id = r.id ",
            "ORDER BY a.at, a.approver"
        ),
        id = id
    )
}

/// How many times `decide` reads again after another write moved the row between its read and
/// its write, before it takes the row's lock instead.
const OPTIMISTIC_ATTEMPTS: usize = 4;

/// One request with its approvals and its row's version, in one prepared statement.
const READ_VERSIONED: &str = concat!(
    "SELECT r.*, a.approver, a.at AS approved_at FROM (SELECT xmin::text AS version, ",
    request_columns!(),
    " FROM requests WHERE id = $1) r LEFT JOIN approvals a ON a.request_id = r.id ORDER BY a.at, a.approver"
);

/// A request row as read by `decide`, with the version its write checks.
#[derive(sqlx::FromRow)]
struct VersionedRow {
    #[sqlx(flatten)]
    row: RequestApprovalRow,
    version: String,
}

/// `Store::decide` on PostgreSQL (see the module's notes). Optimistic: the request is read
/// without a lock or a transaction, core decides on that read, and the change is one statement
/// that writes only if the row's version (`xmin`: every write of a request, its approvals
/// included, makes a new one) is still the one read; otherwise it reads again and core decides
/// again. A change with a linked move (an extension), and one that lost the race a few times,
/// runs under the row's lock instead (`decide_in_tx`).
pub(crate) async fn decide(
    pool: &PgPool,
    sealer: &Sealer,
    instance: &str,
    id: RequestId,
    f: DecideFn,
) -> Result<Decided, StoreError> {
    for _ in 0..OPTIMISTIC_ATTEMPTS {
        let rows: Vec<VersionedRow> = sqlx::query_as(READ_VERSIONED).bind(id.0).fetch_all(pool).await.map_err(err)?;
        let version = match rows.first() {
            Some(r) => r.version.clone(),
            None => return Ok(Decided::NotFound),
        };
        let Some((row, approvals)) = RequestApprovalRow::one(rows.into_iter().map(|r| r.row).collect()) else {
            return Ok(Decided::NotFound);
        };
        let req = row.into_request(approvals.clone())?;
        let change = match f(&req) {
            Decision::Refuse(e, event) => {
                if let Some(ev) = event {
                    let row = pg_query(INSERT_PENDING, pending_args(&ev)).fetch_one(pool).await.map_err(err)?;
                    sealer.sealed(&[row.try_get(0).map_err(err)?]).await;
                }
                return Ok(Decided::Refused(e));
            }
            Decision::Change(change) => writes::checked(&req, *change)?,
        };
        // A linked move is written under the lock (`decide_in_tx`).
        let Some(st) = change_statement(instance, &req, Some(&version), &change) else { break };
        let rows = pg_query(&st.sql, st.binds.0).fetch_all(pool).await.map_err(err)?;
        let Some(updated) = rows.first() else {
            // Another write moved the row since it was read: read it again.
            continue;
        };
        let event_id: Option<i64> = if st.has_event { Some(updated.try_get("event_id").map_err(err)?) } else { None };
        let decided = changed(&req, approvals, change.approval, st.now, updated)?;
        if let Some(event_id) = event_id {
            sealer.sealed(&[event_id]).await;
        }
        return Ok(decided);
    }
    decide_in_tx(pool, sealer, instance, id, f).await
}

/// `decide` under the row's lock, in a transaction: for linked moves, and for a row other writes
/// keep moving.
async fn decide_in_tx(
    pool: &PgPool,
    sealer: &Sealer,
    instance: &str,
    id: RequestId,
    f: DecideFn,
) -> Result<Decided, StoreError> {
    let (mut tx, rows) = PgTx::begin_reading(pool, sealer, lock_and_read(id.0)).await?;
    let out = decide_locked(&mut tx, instance, id, rows, f).await;
    tx.end(out).await
}

async fn decide_locked(
    tx: &mut PgTx,
    instance: &str,
    id: RequestId,
    rows: Vec<sqlx::postgres::PgRow>,
    f: DecideFn,
) -> Result<Decided, StoreError> {
    let rows: Vec<LockedRow> = rows.iter().map(sqlx::FromRow::from_row).collect::<Result<_, _>>().map_err(err)?;
    let fresh = rows.iter().all(|r| r.fresh);
    let Some((row, mut approvals)) = RequestApprovalRow::one(rows.into_iter().map(|r| r.row).collect()) else {
        return Ok(Decided::NotFound);
    };
    if !fresh {
        approvals = tx.rows::<ApprovalRow>(SELECT_APPROVALS, vec![Arg::from(id.0)]).await?;
    }
    let req = row.into_request(approvals.clone())?;
    let change = match writes::judge(tx, &req, f).await? {
        Ok(change) => change,
        Err(decided) => return Ok(decided),
    };
    // A linked move (an extension) needs its own compare-and-set checked before its event is
    // written: the statement-per-part path does that, and it is rare.
    if change.linked.is_some() {
        let now = to_millis(change.event.as_ref().map(|e| e.at).unwrap_or_else(chrono::Utc::now));
        let soonest = change.schedule.iter().map(|d| to_millis(d.due_at)).min();
        let decided = writes::apply(tx, &req, approvals, change).await?;
        writes::signal(tx, soonest, now, instance).await?;
        return Ok(decided);
    }
    write_change(tx, instance, &req, approvals, change).await
}

/// The final `SELECT`'s join that notifies other replicas of work due at `at`, if soon enough
/// (see `signal.rs`); empty otherwise. The notification goes out when the transaction commits.
fn signal_join(b: &mut Binds, at: Option<i64>, now: i64, instance: &str) -> String {
    match at.filter(|at| signal::worth_signal(*at, now)) {
        // A subquery with a volatile function is neither flattened nor pruned, so it runs;
        // it has one row, so the join keeps the statement's rows as they are.
        Some(at) => format!(
            " CROSS JOIN (SELECT pg_notify({}, {})) AS signalled",
            b.add(signal::CHANNEL),
            b.add(signal::payload(at, instance))
        ),
        None => String::new(),
    }
}

/// A change without a linked move, under the row's lock.
async fn write_change(
    tx: &mut PgTx,
    instance: &str,
    req: &Request,
    approvals: Vec<ApprovalRow>,
    change: Change,
) -> Result<Decided, StoreError> {
    let Some(st) = change_statement(instance, req, None, &change) else {
        return Err(StoreError::new("a linked move is written part by part"));
    };
    let rows = pg_query(&st.sql, st.binds.0).fetch_all(tx.conn()).await.map_err(err)?;
    let Some(updated) = rows.first() else {
        return Err(StoreError::new(format!("compare-and-set on {} lost although the row was locked", req.id)));
    };
    if st.has_event {
        tx.wrote_event(updated.try_get("event_id").map_err(err)?);
    }
    changed(req, approvals, change.approval, st.now, updated)
}

/// The request as a change left it: the row the statement returned, with the approvals read and
/// the one the change added.
fn changed(
    req: &Request,
    mut approvals: Vec<ApprovalRow>,
    approval: Option<elevate_core::PersonId>,
    at: i64,
    updated: &sqlx::postgres::PgRow,
) -> Result<Decided, StoreError> {
    let updated: RequestRow = sqlx::FromRow::from_row(updated).map_err(err)?;
    if let Some(approver) = approval {
        // As a read would now return them: the statement wrote the approval with the row, at `at`.
        approvals.push(ApprovalRow { request_id: req.id.0, approver: approver.to_string(), at });
        approvals.sort_by(|a, b| (a.at, &a.approver).cmp(&(b.at, &b.approver)));
    }
    Ok(Decided::Changed(Box::new(updated.into_request(approvals)?)))
}

/// A change as one statement (`change_statement`).
struct ChangeStatement {
    sql: String,
    binds: Binds,
    /// It writes an audit event, whose pending id it returns as `event_id`.
    has_event: bool,
    /// The time it writes as the change's (`updated_at`, an approval's `at`).
    now: i64,
}

/// A change without a linked move (None for one with), as one statement of data-modifying
/// CTEs: the compare-and-set on the request (on its state and, given `version`, on the row's
/// version too), then, only if it matched, the approval, the due-item changes and the audit
/// event. It returns the updated row (with the event's pending id as `event_id`), or no row
/// when the compare-and-set did not match and nothing was written.
fn change_statement(instance: &str, req: &Request, version: Option<&str>, change: &Change) -> Option<ChangeStatement> {
    if change.linked.is_some() {
        return None;
    }
    let id = req.id;
    let Change { to, patch, approval, event, schedule, cancel, finish, then, linked: _ } = change;
    let now = to_millis(event.as_ref().map(|e| e.at).unwrap_or_else(chrono::Utc::now));
    let mut b = Binds::default();
    let id_p = b.add(id.0);
    let now_p = b.add(now);
    let version_cond = version.map(|v| format!(" AND xmin::text = {}", b.add(v))).unwrap_or_default();
    let mut ctes = vec![format!(
        concat!(
            "upd AS (UPDATE requests SET state = COALESCE({}, state), granted_at = COALESCE({}, granted_at), \
             expires_at = COALESCE({}, expires_at), ending = COALESCE({}, ending), \
             closed_by = COALESCE({}, closed_by), note = COALESCE({}, note), \
             grant_handle = COALESCE({}, grant_handle), updated_at = {}, review = COALESCE({}, review) \
             WHERE id = {} AND state = {}{} RETURNING ",
            request_columns!(),
            ")"
        ),
        b.add(to.map(|s| s.as_str())),
        b.add(patch.granted_at.map(to_millis)),
        b.add(patch.expires_at.map(to_millis)),
        b.add(patch.ending.map(|e| e.as_str())),
        b.add(patch.closed_by.clone()),
        b.add(patch.note.clone()),
        b.add(patch.grant_handle.as_ref().map(|h| h.to_string())),
        now_p,
        b.add(patch.review.as_ref().map(|r| r.to_string())),
        id_p,
        b.add(req.state.as_str()),
        version_cond,
    )];
    // Everything after the compare-and-set is written only if it matched (`upd` has its row).
    const MATCHED: &str = "EXISTS (SELECT 1 FROM upd)";
    if let Some(approver) = approval {
        ctes.push(format!(
            "approval AS (INSERT INTO approvals (request_id, approver, at) SELECT {id_p}, {}, {now_p} WHERE {MATCHED})",
            b.add(approver.as_str())
        ));
    }
    if !cancel.is_empty() || finish.is_some() {
        let mut conds = Vec::new();
        if let Some(done) = finish {
            conds.push(format!("id = {}", b.add(*done)));
        }
        if !cancel.is_empty() {
            let kinds: Vec<String> = cancel.iter().map(|k| b.add(k.as_str())).collect();
            conds.push(format!("(request_id = {id_p} AND kind IN ({}))", kinds.join(", ")));
        }
        // The statements of one query must not both change a row: the item that goes on as
        // the next step (`then`) is left out of the deletes (no change cancels it anyway).
        let keep = then.map(|(item, _)| format!(" AND id <> {}", b.add(item))).unwrap_or_default();
        ctes.push(format!("gone AS (DELETE FROM due_items WHERE ({}){keep} AND {MATCHED})", conds.join(" OR ")));
    }
    if let Some((item, kind)) = then {
        ctes.push(format!(
            "next AS (UPDATE due_items SET kind = {}, due_at = {now_p}, attempts = 0 WHERE id = {} AND {MATCHED})",
            b.add(kind.as_str()),
            b.add(*item)
        ));
    }
    let soonest = schedule.iter().map(|d| to_millis(d.due_at)).min();
    if !schedule.is_empty() {
        let values = due_values(&mut b, schedule.clone(), &id_p);
        ctes.push(format!(
            "due AS (INSERT INTO due_items (kind, request_id, due_at, attempts, payload) \
             SELECT * FROM (VALUES {values}) AS v WHERE {MATCHED})"
        ));
    }
    let event_id = match event {
        Some(ev) => {
            ctes.push(event_cte(&mut b, ev.clone(), None, Some(MATCHED)));
            ", (SELECT id FROM ev) AS event_id"
        }
        None => "",
    };
    let signalled = signal_join(&mut b, soonest, now, instance);
    let sql = format!("WITH {} SELECT upd.*{event_id} FROM upd{signalled}", ctes.join(", "));
    Some(ChangeStatement { sql, binds: b, has_event: event.is_some(), now })
}

/// `Store::create_request` on PostgreSQL: one statement, atomic without a transaction.
pub(crate) async fn create_request(
    pool: &PgPool,
    sealer: &Sealer,
    instance: &str,
    new: NewRequest,
    event: NewEvent,
    due: Vec<NewDue>,
) -> Result<Request, StoreError> {
    let now = to_millis(new.created_at);
    let mut b = Binds::default();
    let values = [
        b.add(new.kind.as_str()),
        b.add(new.kind.parent().map(|p| p.0)),
        b.add(new.role.as_str()),
        b.add(new.requester.as_str()),
        b.add(new.duration.secs()),
        b.add(new.reason.as_str()),
        b.add(new.ticket.as_deref()),
        b.add(serde_json::to_string(&new.source).map_err(err)?),
        b.add(new.state.as_str()),
        b.add(now),
        b.add(now),
        b.add(new.extra_approvals as i64),
        b.add(serde_json::to_string(&new.rules).map_err(err)?),
        b.add(new.closed_by.as_deref()),
        b.add(new.note.as_deref()),
        b.add(new.starts_at.map(to_millis)),
    ];
    let mut ctes = vec![format!(
        concat!(
            "req AS (INSERT INTO requests (kind, parent_id, role, requester, duration_secs, reason, ticket, source, \
             state, created_at, updated_at, extra_approvals, rules, closed_by, note, starts_at) VALUES ({}) RETURNING ",
            request_columns!(),
            ")"
        ),
        values.join(", ")
    )];
    ctes.push(event_cte(&mut b, event, Some("SELECT id FROM req"), None));
    let soonest = due.iter().map(|d| to_millis(d.due_at)).min();
    if !due.is_empty() {
        let values = due_values(&mut b, due, "(SELECT id FROM req)");
        ctes.push(format!(
            "due AS (INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES {values})"
        ));
    }
    let signalled = signal_join(&mut b, soonest, now, instance);
    let sql = format!("WITH {} SELECT req.*, (SELECT id FROM ev) AS event_id FROM req{signalled}", ctes.join(", "));
    let row = pg_query(&sql, b.0).fetch_one(pool).await.map_err(err)?;
    let event_id: i64 = row.try_get("event_id").map_err(err)?;
    let row: RequestRow = sqlx::FromRow::from_row(&row).map_err(err)?;
    sealer.sealed(&[event_id]).await;
    // The row as inserted; a new request has no approvals yet.
    row.into_request(Vec::new())
}

/// A claimed item with its request and approvals, as JSON text (`NULL` when it has none).
#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    item: DueRow,
    request: Option<String>,
    approvals: Option<String>,
}

/// `Store::claim_due` on PostgreSQL: one statement claims (`FOR UPDATE SKIP LOCKED`, so
/// replicas never claim the same item) and returns each item with its request.
pub(crate) async fn claim_due(pool: &PgPool, now: i64, until: i64, limit: u32) -> Result<Vec<DueItem>, StoreError> {
    let rows: Vec<ClaimRow> = sqlx::query_as(
        "WITH c AS (UPDATE due_items SET claimed_until = $1, first_claimed_at = COALESCE(first_claimed_at, $2) \
         WHERE id IN (SELECT id FROM due_items \
         WHERE due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3 \
         FOR UPDATE SKIP LOCKED) RETURNING id, kind, request_id, due_at, attempts, payload, claimed_until, first_claimed_at) \
         SELECT c.*, (SELECT row_to_json(r)::text FROM requests r WHERE r.id = c.request_id) AS request, \
         (SELECT json_agg(json_build_object('request_id', a.request_id, 'approver', a.approver, 'at', a.at) \
         ORDER BY a.at, a.approver)::text FROM approvals a WHERE a.request_id = c.request_id) AS approvals FROM c",
    )
    .bind(until)
    .bind(now)
    .bind(limit as i64)
    .fetch_all(pool)
    .await
    .map_err(err)?;
    let mut items = Vec::with_capacity(rows.len());
    for ClaimRow { item, request, approvals } in rows {
        let Some(mut item) = item.into_item() else { continue };
        if let Some(request) = request {
            let row: RequestRow = serde_json::from_str(&request).map_err(err)?;
            let approvals: Vec<ApprovalRow> = match approvals {
                Some(a) => serde_json::from_str(&a).map_err(err)?,
                None => Vec::new(),
            };
            item.snapshot = Some(Box::new(row.into_request(approvals)?));
        }
        items.push(item);
    }
    items.sort_by_key(|i| (i.due_at, i.id));
    Ok(items)
}
