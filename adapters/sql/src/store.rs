//! `Store` for both dialects. Each method body is expanded once per pool type.

use crate::{
    Pools, SqlStore, err,
    rows::{ApprovalRow, DueRow, EventRow, RequestApprovalRow, RequestRow, group_requests},
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elevate_core::{
    RequestId, State,
    audit::{AuditEvent, NewEvent},
    ports::{Change, DecideFn, Decided, Decision, DueItem, Lockdown, NewDue, RequestQuery, Store, StoreError},
    request::{NewRequest, Request},
    time::{from_millis, to_millis},
};
use sqlx::Connection as _;
use std::time::Duration;

/// Runs `$body` with `$w` bound to the writer pool, `$r` to a reader pool, `$pg` to whether it
/// is PostgreSQL. The body is compiled once per dialect.
macro_rules! with_pool {
    ($self:expr, |$w:ident, $r:ident, $pg:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { writer, reader, .. } => {
                let ($w, $r, $pg) = (writer, reader, false);
                let _ = $pg;
                $body
            }
            Pools::Postgres(pool) => {
                let ($w, $r, $pg) = (pool, pool, true);
                let _ = $pg;
                $body
            }
        }
    };
}

/// Like `with_pool!` for writes, without a reader. On SQLite the body runs on the writer thread
/// inside a group-committed transaction (see `writer.rs`), with `$w` the connection (so a
/// `begin()` is a savepoint); it must own what it uses.
macro_rules! with_writer {
    ($self:expr, |$w:ident, $pg:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { thread, .. } => {
                thread
                    .run(move |conn| {
                        Box::pin(async move {
                            let ($w, $pg) = (conn, false);
                            let _ = $pg;
                            $body
                        })
                    })
                    .await
            }
            Pools::Postgres(pool) => {
                let ($w, $pg) = (pool, true);
                let _ = $pg;
                $body
            }
        }
    };
}

/// The columns of `RequestRow`, as a literal for `concat!`.
macro_rules! request_columns {
    () => {
        "id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, created_at, updated_at, \
         granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review"
    };
}

const SELECT_REQUEST: &str = concat!("SELECT ", request_columns!(), " FROM requests WHERE id = $1");
const SELECT_REQUEST_FOR_UPDATE: &str =
    concat!("SELECT ", request_columns!(), " FROM requests WHERE id = $1 FOR UPDATE");
/// One request and its approvals in one statement: one round trip, one snapshot. (Not for
/// `decide`: on PostgreSQL a statement that waits for a row lock sees the other tables as they
/// were before the wait, so there the approvals are read by a statement after the lock.)
const SELECT_REQUEST_WITH_APPROVALS: &str = concat!(
    "SELECT r.*, a.approver, a.at AS approved_at FROM (SELECT ",
    request_columns!(),
    " FROM requests WHERE id = $1) r LEFT JOIN approvals a ON a.request_id = r.id ORDER BY a.at, a.approver"
);
const SELECT_APPROVALS: &str =
    "SELECT request_id, approver, at FROM approvals WHERE request_id = $1 ORDER BY at, approver";
/// The compare-and-set of `decide`, returning the row as it now is.
const UPDATE_REQUEST: &str = concat!(
    "UPDATE requests SET state = COALESCE($1, state), granted_at = COALESCE($2, granted_at), \
     expires_at = COALESCE($3, expires_at), ending = COALESCE($4, ending), \
     closed_by = COALESCE($5, closed_by), note = COALESCE($6, note), \
     grant_handle = COALESCE($7, grant_handle), updated_at = $8, review = COALESCE($9, review) \
     WHERE id = $10 AND state = $11 RETURNING ",
    request_columns!()
);
const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
const HEAD_FOR_UPDATE: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const UPDATE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
/// PostgreSQL: the event and the new head in one statement (one round trip), same binds as
/// `INSERT_EVENT`.
const INSERT_EVENT_AND_HEAD_PG: &str = "WITH appended AS (INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)) UPDATE audit_head SET seq = $1, hash = $8 WHERE id = 1";
const CLAIM_SQLITE: &str = "UPDATE due_items SET claimed_until = $1 WHERE id IN (SELECT id FROM due_items \
     WHERE due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3) \
     RETURNING id, kind, request_id, due_at, attempts, payload";
const CLAIM_PG: &str = "UPDATE due_items SET claimed_until = $1 WHERE id IN (SELECT id FROM due_items \
     WHERE due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, kind, request_id, due_at, attempts, payload";

/// Appends one event inside an open transaction, holding the head row so the chain is linear.
macro_rules! append_event {
    ($tx:expr, $pg:expr, $ev:expr) => {{
        let (seq, hash): (i64, String) =
            sqlx::query_as(if $pg { HEAD_FOR_UPDATE } else { HEAD }).fetch_one(&mut *$tx).await.map_err(err)?;
        let sealed = AuditEvent::seal(&$ev, Some((seq, hash.as_str())));
        let head_moved = sqlx::query(if $pg { INSERT_EVENT_AND_HEAD_PG } else { INSERT_EVENT })
            .bind(sealed.seq)
            .bind(to_millis(sealed.at))
            .bind(&sealed.actor)
            .bind(&sealed.kind)
            .bind(sealed.subject)
            .bind(sealed.details.to_string())
            .bind(&sealed.prev_hash)
            .bind(&sealed.hash)
            .execute(&mut *$tx)
            .await
            .map_err(err)?;
        if $pg {
            if head_moved.rows_affected() != 1 {
                return Err(StoreError::new("the audit head row is missing"));
            }
        } else {
            sqlx::query(UPDATE_HEAD).bind(sealed.seq).bind(&sealed.hash).execute(&mut *$tx).await.map_err(err)?;
        }
        sealed
    }};
}

/// `$1, $2, …` for `n` values, numbered from `first`.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Inserts due items with one statement (one round trip, whatever their number).
macro_rules! insert_due {
    ($tx:expr, $items:expr, $request:expr) => {{
        let items: Vec<NewDue> = $items;
        if !items.is_empty() {
            let rows: Vec<String> = (0..items.len())
                .map(|i| format!("(${}, ${}, ${}, 0, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
                .collect();
            let sql = format!(
                "INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES {}",
                rows.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in items {
                let req: Option<i64> = d.request.map(|r| r.0).or($request);
                q = q.bind(d.kind.as_str()).bind(req).bind(to_millis(d.due_at)).bind(d.payload.to_string());
            }
            q.execute(&mut *$tx).await.map_err(err)?;
        }
    }};
}

/// Loads a request and its approvals with two statements, the first of which may lock the row.
macro_rules! load_request {
    ($exec:expr, $sql:expr, $id:expr) => {{
        let row: Option<RequestRow> = sqlx::query_as($sql).bind($id).fetch_optional(&mut *$exec).await.map_err(err)?;
        match row {
            None => None,
            Some(row) => {
                let approvals: Vec<ApprovalRow> =
                    sqlx::query_as(SELECT_APPROVALS).bind($id).fetch_all(&mut *$exec).await.map_err(err)?;
                Some((row, approvals))
            }
        }
    }};
}

#[async_trait]
impl Store for SqlStore {
    async fn create_request(&self, new: NewRequest, event: NewEvent, due: Vec<NewDue>) -> Result<Request, StoreError> {
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let now = to_millis(new.created_at);
            let row: RequestRow = sqlx::query_as(concat!(
                "INSERT INTO requests (kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
                 created_at, updated_at, extra_approvals, rules, closed_by, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ",
                request_columns!()
            ))
            .bind(new.kind.as_str())
            .bind(new.kind.parent().map(|p| p.0))
            .bind(new.role.as_str())
            .bind(new.requester.as_str())
            .bind(new.duration.secs())
            .bind(new.reason.as_str())
            .bind(new.ticket.as_deref())
            .bind(serde_json::to_string(&new.source).map_err(err)?)
            .bind(new.state.as_str())
            .bind(now)
            .bind(now)
            .bind(new.extra_approvals as i64)
            .bind(serde_json::to_string(&new.rules).map_err(err)?)
            .bind(new.closed_by.as_deref())
            .bind(new.note.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(err)?;
            let id = row.id;
            let mut event = event;
            event.subject = Some(RequestId(id));
            append_event!(tx, pg, event);
            insert_due!(tx, due, Some(id));
            // The row as inserted; a new request has no approvals yet.
            let req = row.into_request(Vec::new())?;
            tx.commit().await.map_err(err)?;
            Ok(req)
        })
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<RequestApprovalRow> =
                sqlx::query_as(SELECT_REQUEST_WITH_APPROVALS).bind(id.0).fetch_all(r).await.map_err(err)?;
            Ok(group_requests(rows)?.into_iter().next())
        })
    }

    async fn request_states(&self, ids: &[RequestId]) -> Result<Vec<(RequestId, State)>, StoreError> {
        let mut ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        // In chunks, to stay far below either dialect's limit on bound parameters.
        for chunk in ids.chunks(1000) {
            let sql =
                format!("SELECT id, state FROM requests WHERE id IN ({}) ORDER BY id", placeholders(1, chunk.len()));
            let rows: Vec<(i64, String)> = with_pool!(self, |_w, r, _pg| {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(r).await.map_err(err)?
            });
            for (id, state) in rows {
                let state = State::parse(&state)
                    .ok_or_else(|| StoreError(format!("stored state of request {id} cannot be read")))?;
                out.push((RequestId(id), state));
            }
        }
        Ok(out)
    }

    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        // Only the filters given become conditions, each a plain comparison or an `IN` list of
        // bound values (never interpolated), so that the state, requester and role indexes
        // serve them. The approvals come with the rows, in the same statement.
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut conds: Vec<String> = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        if !q.states.is_empty() {
            conds.push(format!("state IN ({})", placeholders(args.len() + 1, q.states.len())));
            args.extend(q.states.iter().map(|s| Arg::Text(s.as_str().to_string())));
        }
        if let Some(p) = &q.requester {
            conds.push(format!("requester = ${}", args.len() + 1));
            args.push(Arg::Text(p.to_string()));
        }
        if let Some(role) = &q.role {
            conds.push(format!("role = ${}", args.len() + 1));
            args.push(Arg::Text(role.to_string()));
        }
        if !q.roles.is_empty() {
            conds.push(format!("role IN ({})", placeholders(args.len() + 1, q.roles.len())));
            args.extend(q.roles.iter().map(|r| Arg::Text(r.to_string())));
        }
        if !q.ids.is_empty() {
            conds.push(format!("id IN ({})", placeholders(args.len() + 1, q.ids.len())));
            args.extend(q.ids.iter().map(|id| Arg::Int(id.0)));
        }
        if let Some(since) = q.created_since {
            conds.push(format!("created_at >= ${}", args.len() + 1));
            args.push(Arg::Int(to_millis(since)));
        }
        let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let sql = format!(
            concat!(
                "SELECT r.*, a.approver, a.at AS approved_at FROM (SELECT ",
                request_columns!(),
                " FROM requests{} ORDER BY id DESC LIMIT ${}) r \
                 LEFT JOIN approvals a ON a.request_id = r.id ORDER BY r.id DESC, a.at, a.approver"
            ),
            filter,
            args.len() + 1
        );
        args.push(Arg::Int(q.limit.unwrap_or(500).min(10_000) as i64));
        with_pool!(self, |_w, r, _pg| {
            let mut query = sqlx::query_as::<_, RequestApprovalRow>(sqlx::AssertSqlSafe(sql));
            for a in args {
                query = match a {
                    Arg::Text(t) => query.bind(t),
                    Arg::Int(i) => query.bind(i),
                };
            }
            let rows = query.fetch_all(r).await.map_err(err)?;
            group_requests(rows)
        })
    }

    async fn decide(&self, id: RequestId, f: DecideFn) -> Result<Decided, StoreError> {
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let Some((row, approvals)) =
                load_request!(tx, if pg { SELECT_REQUEST_FOR_UPDATE } else { SELECT_REQUEST }, id.0)
            else {
                return Ok(Decided::NotFound);
            };
            let req = row.into_request(approvals.clone())?;
            match f(&req) {
                Decision::Refuse(e, event) => {
                    if let Some(event) = event {
                        append_event!(tx, pg, event);
                        tx.commit().await.map_err(err)?;
                    }
                    Ok(Decided::Refused(e))
                }
                Decision::Change(change) => {
                    let Change { to, patch, approval, event, schedule, cancel, finish, linked } = *change;
                    if let Some(to) = to {
                        if !req.state.can_become(to) {
                            return Err(StoreError(format!(
                                "illegal transition {} -> {} for {}",
                                req.state.as_str(),
                                to.as_str(),
                                id
                            )));
                        }
                        if event.is_none() {
                            return Err(StoreError(format!("transition of {id} without an audit event")));
                        }
                    }
                    let now = to_millis(event.as_ref().map(|e| e.at).unwrap_or_else(Utc::now));
                    // What the update's returned row and the approvals read above may miss by the
                    // end: a linked move of this same row (read it all again), a new approval
                    // (read the approvals again, in the store's order).
                    let linked_is_self = linked.as_ref().is_some_and(|l| l.id == id);
                    let approval_added = approval.is_some();
                    let updated: Option<RequestRow> = sqlx::query_as(UPDATE_REQUEST)
                        .bind(to.map(|s| s.as_str()))
                        .bind(patch.granted_at.map(to_millis))
                        .bind(patch.expires_at.map(to_millis))
                        .bind(patch.ending.map(|e| e.as_str()))
                        .bind(patch.closed_by)
                        .bind(patch.note)
                        .bind(patch.grant_handle.map(|h| h.to_string()))
                        .bind(now)
                        .bind(patch.review.map(|r| r.to_string()))
                        .bind(id.0)
                        .bind(req.state.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(err)?;
                    let Some(updated) = updated else {
                        return Err(StoreError(format!("compare-and-set on {id} lost although the row was locked")));
                    };
                    if let Some(approver) = approval {
                        sqlx::query("INSERT INTO approvals (request_id, approver, at) VALUES ($1, $2, $3)")
                            .bind(id.0)
                            .bind(approver.as_str())
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    if let Some(linked) = linked {
                        let moved =
                            sqlx::query("UPDATE requests SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
                                .bind(linked.to.as_str())
                                .bind(now)
                                .bind(linked.id.0)
                                .bind(linked.from.as_str())
                                .execute(&mut *tx)
                                .await
                                .map_err(err)?;
                        if moved.rows_affected() != 1 {
                            tx.rollback().await.map_err(err)?;
                            return Ok(Decided::LinkedConflict);
                        }
                        append_event!(tx, pg, linked.event);
                    }
                    if !cancel.is_empty() {
                        let sql = format!(
                            "DELETE FROM due_items WHERE request_id = $1 AND kind IN ({})",
                            placeholders(2, cancel.len())
                        );
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0);
                        for kind in cancel {
                            q = q.bind(kind.as_str());
                        }
                        q.execute(&mut *tx).await.map_err(err)?;
                    }
                    if let Some(done) = finish {
                        sqlx::query("DELETE FROM due_items WHERE id = $1")
                            .bind(done)
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
                    }
                    insert_due!(tx, schedule, Some(id.0));
                    if let Some(event) = event {
                        append_event!(tx, pg, event);
                    }
                    let after = if linked_is_self {
                        let (row, approvals) =
                            load_request!(tx, SELECT_REQUEST, id.0).ok_or_else(|| StoreError::new("row vanished"))?;
                        row.into_request(approvals)?
                    } else if approval_added {
                        let approvals: Vec<ApprovalRow> =
                            sqlx::query_as(SELECT_APPROVALS).bind(id.0).fetch_all(&mut *tx).await.map_err(err)?;
                        updated.into_request(approvals)?
                    } else {
                        updated.into_request(approvals)?
                    };
                    tx.commit().await.map_err(err)?;
                    Ok(Decided::Changed(Box::new(after)))
                }
            }
        })
    }

    async fn append_event(&self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let sealed = append_event!(tx, pg, ev);
            tx.commit().await.map_err(err)?;
            Ok(sealed)
        })
    }

    async fn claim_due(&self, now: DateTime<Utc>, limit: u32, lease: Duration) -> Result<Vec<DueItem>, StoreError> {
        let until = to_millis(now) + lease.as_millis() as i64;
        with_writer!(self, |w, pg| {
            let rows: Vec<DueRow> = sqlx::query_as(if pg { CLAIM_PG } else { CLAIM_SQLITE })
                .bind(until)
                .bind(to_millis(now))
                .bind(limit as i64)
                .fetch_all(w)
                .await
                .map_err(err)?;
            let mut items: Vec<DueItem> = rows.into_iter().filter_map(DueRow::into_item).collect();
            items.sort_by_key(|i| (i.due_at, i.id));
            Ok(items)
        })
    }

    async fn retry_due(
        &self,
        id: i64,
        at: DateTime<Utc>,
        attempts: u32,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError> {
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let moved =
                sqlx::query("UPDATE due_items SET due_at = $1, attempts = $2, claimed_until = NULL WHERE id = $3")
                    .bind(to_millis(at))
                    .bind(attempts as i64)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
            if moved.rows_affected() == 0 {
                // Cancelled while it ran (the request moved on): nothing to record.
                tx.rollback().await.map_err(err)?;
                return Ok(());
            }
            if let Some(event) = event {
                append_event!(tx, pg, event);
            }
            tx.commit().await.map_err(err)?;
            Ok(())
        })
    }

    async fn finish_due(&self, id: i64) -> Result<(), StoreError> {
        with_writer!(self, |w, _pg| {
            sqlx::query("DELETE FROM due_items WHERE id = $1").bind(id).execute(w).await.map_err(err)?;
            Ok(())
        })
    }

    async fn schedule(&self, items: Vec<NewDue>) -> Result<(), StoreError> {
        with_writer!(self, |w, _pg| {
            let mut tx = w.begin().await.map_err(err)?;
            insert_due!(tx, items, None::<i64>);
            tx.commit().await.map_err(err)?;
            Ok(())
        })
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            // Both in one round trip: the earliest unclaimed item, and the earliest lease to end.
            let (unclaimed, lease_end): (Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT (SELECT due_at FROM due_items WHERE claimed_until IS NULL ORDER BY due_at LIMIT 1), \
                 (SELECT claimed_until FROM due_items WHERE claimed_until IS NOT NULL ORDER BY claimed_until LIMIT 1)",
            )
            .fetch_one(r)
            .await
            .map_err(err)?;
            Ok([unclaimed, lease_end].into_iter().flatten().min().map(from_millis))
        })
    }

    async fn due_items(&self, request: RequestId) -> Result<Vec<DueItem>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<DueRow> = sqlx::query_as(
                "SELECT id, kind, request_id, due_at, attempts, payload FROM due_items WHERE request_id = $1 ORDER BY due_at, id",
            )
            .bind(request.0)
            .fetch_all(r)
            .await
            .map_err(err)?;
            Ok(rows.into_iter().filter_map(DueRow::into_item).collect())
        })
    }

    async fn release_claims(&self) -> Result<u64, StoreError> {
        with_writer!(self, |w, _pg| {
            let r = sqlx::query("UPDATE due_items SET claimed_until = NULL WHERE claimed_until IS NOT NULL")
                .execute(w)
                .await
                .map_err(err)?;
            Ok(r.rows_affected())
        })
    }

    async fn events(&self, after: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT seq, at, actor, kind, subject, details, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .bind(after)
            .bind(limit as i64)
            .fetch_all(r)
            .await
            .map_err(err)?;
            Ok(rows.into_iter().map(EventRow::into_event).collect())
        })
    }

    async fn events_for(&self, subject: RequestId) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT seq, at, actor, kind, subject, details, prev_hash, hash FROM audit_events WHERE subject = $1 ORDER BY seq",
            )
            .bind(subject.0)
            .fetch_all(r)
            .await
            .map_err(err)?;
            Ok(rows.into_iter().map(EventRow::into_event).collect())
        })
    }

    async fn claim_cron(&self, job: &str, fire_at: DateTime<Utc>) -> Result<bool, StoreError> {
        let job = job.to_string();
        with_writer!(self, |w, _pg| {
            let r = sqlx::query("INSERT INTO cron_runs (job, fire_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(job)
                .bind(to_millis(fire_at))
                .execute(w)
                .await
                .map_err(err)?;
            Ok(r.rows_affected() == 1)
        })
    }

    async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        let name = name.to_string();
        with_writer!(self, |w, _pg| {
            let row: Option<(i64,)> = sqlx::query_as("SELECT seq FROM cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(w)
                .await
                .map_err(err)?;
            Ok(row.map(|(s,)| s).unwrap_or(0))
        })
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let name = name.to_string();
        with_writer!(self, |w, _pg| {
            sqlx::query(
                "INSERT INTO cursors (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq \
                 WHERE cursors.seq < excluded.seq",
            )
            .bind(name)
            .bind(seq)
            .execute(w)
            .await
            .map_err(err)?;
            Ok(())
        })
    }

    async fn count_by_state(&self) -> Result<Vec<(State, i64)>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state")
                .fetch_all(r)
                .await
                .map_err(err)?;
            Ok(rows.into_iter().filter_map(|(s, n)| Some((State::parse(&s)?, n))).collect())
        })
    }

    async fn overdue(&self, now: DateTime<Utc>) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let (n, oldest): (i64, Option<i64>) =
                sqlx::query_as("SELECT COUNT(*), MIN(due_at) FROM due_items WHERE due_at <= $1")
                    .bind(to_millis(now))
                    .fetch_one(r)
                    .await
                    .map_err(err)?;
            Ok((n, oldest.map(from_millis)))
        })
    }

    async fn lockdowns(&self) -> Result<Vec<Lockdown>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
                "SELECT scope, reason, locked_by, locked_at, blocks_breakglass FROM lockdowns ORDER BY scope",
            )
            .fetch_all(r)
            .await
            .map_err(err)?;
            Ok(rows
                .into_iter()
                .map(|(scope, reason, locked_by, at, bg)| Lockdown {
                    scope,
                    reason,
                    locked_by,
                    locked_at: from_millis(at),
                    blocks_breakglass: bg != 0,
                })
                .collect())
        })
    }

    async fn set_lockdown(&self, l: Lockdown, event: NewEvent) -> Result<(), StoreError> {
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            sqlx::query(
                "INSERT INTO lockdowns (scope, reason, locked_by, locked_at, blocks_breakglass) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, locked_by = excluded.locked_by, \
                 locked_at = excluded.locked_at, blocks_breakglass = excluded.blocks_breakglass",
            )
            .bind(&l.scope)
            .bind(&l.reason)
            .bind(&l.locked_by)
            .bind(to_millis(l.locked_at))
            .bind(l.blocks_breakglass as i64)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            append_event!(tx, pg, event);
            tx.commit().await.map_err(err)?;
            Ok(())
        })
    }

    async fn clear_lockdown(&self, scope: &str, event: NewEvent) -> Result<bool, StoreError> {
        let scope = scope.to_string();
        with_writer!(self, |w, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let gone = sqlx::query("DELETE FROM lockdowns WHERE scope = $1")
                .bind(scope)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            if gone.rows_affected() == 0 {
                tx.rollback().await.map_err(err)?;
                return Ok(false);
            }
            append_event!(tx, pg, event);
            tx.commit().await.map_err(err)?;
            Ok(true)
        })
    }
}
