//! `Store` for both dialects. Each method body is expanded once per pool type.

use crate::{
    Pools, SqlStore, err,
    rows::{ApprovalRow, DueRow, EventRow, RequestRow},
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
use std::time::Duration;

/// Runs `$body` with `$w` bound to the writer pool, `$r` to a reader pool, `$pg` to whether it
/// is PostgreSQL. The body is compiled once per dialect.
macro_rules! with_pool {
    ($self:expr, |$w:ident, $r:ident, $pg:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { writer, reader } => {
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

const SELECT_REQUEST: &str = "SELECT id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
     created_at, updated_at, granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review FROM requests WHERE id = $1";
const SELECT_REQUEST_FOR_UPDATE: &str = "SELECT id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
     created_at, updated_at, granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review FROM requests WHERE id = $1 FOR UPDATE";
const SELECT_APPROVALS: &str =
    "SELECT request_id, approver, at FROM approvals WHERE request_id = $1 ORDER BY at, approver";
const HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";
const HEAD_FOR_UPDATE: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
const INSERT_EVENT: &str = "INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const UPDATE_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1";
const INSERT_DUE: &str =
    "INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES ($1, $2, $3, 0, $4)";
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
        sqlx::query(INSERT_EVENT)
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
        sqlx::query(UPDATE_HEAD).bind(sealed.seq).bind(&sealed.hash).execute(&mut *$tx).await.map_err(err)?;
        sealed
    }};
}

macro_rules! insert_due {
    ($tx:expr, $items:expr, $request:expr) => {{
        for d in $items {
            let req: Option<i64> = d.request.map(|r| r.0).or($request);
            sqlx::query(INSERT_DUE)
                .bind(d.kind.as_str())
                .bind(req)
                .bind(to_millis(d.due_at))
                .bind(d.payload.to_string())
                .execute(&mut *$tx)
                .await
                .map_err(err)?;
        }
    }};
}

macro_rules! load_request {
    ($exec:expr, $sql:expr, $id:expr) => {{
        let row: Option<RequestRow> = sqlx::query_as($sql).bind($id).fetch_optional(&mut *$exec).await.map_err(err)?;
        match row {
            None => None,
            Some(row) => {
                let approvals: Vec<ApprovalRow> =
                    sqlx::query_as(SELECT_APPROVALS).bind($id).fetch_all(&mut *$exec).await.map_err(err)?;
                Some(row.into_request(approvals)?)
            }
        }
    }};
}

#[async_trait]
impl Store for SqlStore {
    async fn create_request(&self, new: NewRequest, event: NewEvent, due: Vec<NewDue>) -> Result<Request, StoreError> {
        with_pool!(self, |w, _r, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let now = to_millis(new.created_at);
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO requests (kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
                 created_at, updated_at, extra_approvals, rules, closed_by, note) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            )
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
            let mut event = event;
            event.subject = Some(RequestId(id));
            append_event!(tx, pg, event);
            insert_due!(tx, due, Some(id));
            let req = load_request!(tx, SELECT_REQUEST, id).ok_or_else(|| StoreError::new("inserted row vanished"))?;
            tx.commit().await.map_err(err)?;
            Ok(req)
        })
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let mut conn = r.acquire().await.map_err(err)?;
            Ok(load_request!(conn, SELECT_REQUEST, id.0))
        })
    }

    async fn list_requests(&self, q: &RequestQuery) -> Result<Vec<Request>, StoreError> {
        // Filters are bound, never interpolated; absent ones are NULL and match everything.
        let states: Option<String> = if q.states.is_empty() {
            None
        } else {
            Some(q.states.iter().map(|s| format!(",{},", s.as_str())).collect())
        };
        let sql = "SELECT id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
             created_at, updated_at, granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review FROM requests \
             WHERE ($1 IS NULL OR $1 LIKE '%,' || state || ',%') \
               AND ($2 IS NULL OR requester = $2) \
               AND ($3 IS NULL OR role = $3) \
               AND ($4 IS NULL OR created_at >= $4) \
             ORDER BY id DESC LIMIT $5";
        let sql_pg = "SELECT id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
             created_at, updated_at, granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review FROM requests \
             WHERE ($1::TEXT IS NULL OR $1::TEXT LIKE '%,' || state || ',%') \
               AND ($2::TEXT IS NULL OR requester = $2::TEXT) \
               AND ($3::TEXT IS NULL OR role = $3::TEXT) \
               AND ($4::BIGINT IS NULL OR created_at >= $4::BIGINT) \
             ORDER BY id DESC LIMIT $5";
        let limit = q.limit.unwrap_or(500).min(10_000) as i64;
        with_pool!(self, |_w, r, pg| {
            let mut conn = r.acquire().await.map_err(err)?;
            let rows: Vec<RequestRow> = sqlx::query_as(if pg { sql_pg } else { sql })
                .bind(states.clone())
                .bind(q.requester.as_ref().map(|p| p.to_string()))
                .bind(q.role.as_ref().map(|r| r.to_string()))
                .bind(q.created_since.map(to_millis))
                .bind(limit)
                .fetch_all(&mut *conn)
                .await
                .map_err(err)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let approvals: Vec<ApprovalRow> =
                    sqlx::query_as(SELECT_APPROVALS).bind(row.id).fetch_all(&mut *conn).await.map_err(err)?;
                out.push(row.into_request(approvals)?);
            }
            Ok(out)
        })
    }

    async fn decide(&self, id: RequestId, f: DecideFn) -> Result<Decided, StoreError> {
        with_pool!(self, |w, _r, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let Some(req) = load_request!(tx, if pg { SELECT_REQUEST_FOR_UPDATE } else { SELECT_REQUEST }, id.0) else {
                return Ok(Decided::NotFound);
            };
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
                    let updated = sqlx::query(
                        "UPDATE requests SET state = COALESCE($1, state), granted_at = COALESCE($2, granted_at), \
                         expires_at = COALESCE($3, expires_at), ending = COALESCE($4, ending), \
                         closed_by = COALESCE($5, closed_by), note = COALESCE($6, note), \
                         grant_handle = COALESCE($7, grant_handle), updated_at = $8, review = COALESCE($9, review) \
                         WHERE id = $10 AND state = $11",
                    )
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
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                    if updated.rows_affected() != 1 {
                        return Err(StoreError(format!("compare-and-set on {id} lost although the row was locked")));
                    }
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
                    for kind in cancel {
                        sqlx::query("DELETE FROM due_items WHERE request_id = $1 AND kind = $2")
                            .bind(id.0)
                            .bind(kind.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(err)?;
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
                    let after =
                        load_request!(tx, SELECT_REQUEST, id.0).ok_or_else(|| StoreError::new("row vanished"))?;
                    tx.commit().await.map_err(err)?;
                    Ok(Decided::Changed(Box::new(after)))
                }
            }
        })
    }

    async fn append_event(&self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        with_pool!(self, |w, _r, pg| {
            let mut tx = w.begin().await.map_err(err)?;
            let sealed = append_event!(tx, pg, ev);
            tx.commit().await.map_err(err)?;
            Ok(sealed)
        })
    }

    async fn claim_due(&self, now: DateTime<Utc>, limit: u32, lease: Duration) -> Result<Vec<DueItem>, StoreError> {
        let until = to_millis(now) + lease.as_millis() as i64;
        with_pool!(self, |w, _r, pg| {
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
        with_pool!(self, |w, _r, pg| {
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
        with_pool!(self, |w, _r, _pg| {
            sqlx::query("DELETE FROM due_items WHERE id = $1").bind(id).execute(w).await.map_err(err)?;
            Ok(())
        })
    }

    async fn schedule(&self, items: Vec<NewDue>) -> Result<(), StoreError> {
        with_pool!(self, |w, _r, _pg| {
            let mut tx = w.begin().await.map_err(err)?;
            insert_due!(tx, items, None::<i64>);
            tx.commit().await.map_err(err)?;
            Ok(())
        })
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, |_w, r, _pg| {
            let unclaimed: Option<(i64,)> =
                sqlx::query_as("SELECT due_at FROM due_items WHERE claimed_until IS NULL ORDER BY due_at LIMIT 1")
                    .fetch_optional(r)
                    .await
                    .map_err(err)?;
            let lease_end: Option<(i64,)> = sqlx::query_as(
                "SELECT claimed_until FROM due_items WHERE claimed_until IS NOT NULL ORDER BY claimed_until LIMIT 1",
            )
            .fetch_optional(r)
            .await
            .map_err(err)?;
            Ok([unclaimed, lease_end].into_iter().flatten().map(|(t,)| t).min().map(from_millis))
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
        with_pool!(self, |w, _r, _pg| {
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
        with_pool!(self, |w, _r, _pg| {
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
        with_pool!(self, |w, _r, _pg| {
            let row: Option<(i64,)> = sqlx::query_as("SELECT seq FROM cursors WHERE name = $1")
                .bind(name)
                .fetch_optional(w)
                .await
                .map_err(err)?;
            Ok(row.map(|(s,)| s).unwrap_or(0))
        })
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        with_pool!(self, |w, _r, _pg| {
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
        with_pool!(self, |w, _r, pg| {
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
        with_pool!(self, |w, _r, pg| {
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
