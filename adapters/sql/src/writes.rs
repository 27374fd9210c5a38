//! The bodies of the store's writes, written once for both databases against [`Exec`]. Each
//! runs inside one transaction that its caller opens and ends (see `store.rs`).

use crate::{
    err,
    exec::{Arg, Exec, args},
    rows::{ApprovalRow, DueRow, RequestRow, request_columns},
    signal,
};
use chrono::{DateTime, Utc};
use elevate_core::{
    RequestId,
    audit::NewEvent,
    ports::{Change, DecideFn, Decided, Decision, DueItem, Lockdown, NewDue, StoreError},
    request::{NewRequest, Request},
    time::to_millis,
};

const SELECT_REQUEST: &str = concat!("SELECT ", request_columns!(), " FROM requests WHERE id = $1");
const SELECT_REQUEST_FOR_UPDATE: &str =
    concat!("SELECT ", request_columns!(), " FROM requests WHERE id = $1 FOR UPDATE");
const SELECT_APPROVALS: &str =
    "SELECT request_id, approver, at FROM approvals WHERE request_id = $1 ORDER BY at, approver";
const INSERT_REQUEST: &str = concat!(
    "INSERT INTO requests (kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, \
     created_at, updated_at, extra_approvals, rules, closed_by, note, starts_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING ",
    request_columns!()
);
/// The compare-and-set of `decide`, returning the row as it now is.
const UPDATE_REQUEST: &str = concat!(
    "UPDATE requests SET state = COALESCE($1, state), granted_at = COALESCE($2, granted_at), \
     expires_at = COALESCE($3, expires_at), ending = COALESCE($4, ending), \
     closed_by = COALESCE($5, closed_by), note = COALESCE($6, note), \
     grant_handle = COALESCE($7, grant_handle), updated_at = $8, review = COALESCE($9, review) \
     WHERE id = $10 AND state = $11 RETURNING ",
    request_columns!()
);
const CLAIM_SQLITE: &str = "UPDATE due_items SET claimed_until = $1, first_claimed_at = COALESCE(first_claimed_at, $2) \
     WHERE id IN (SELECT id FROM due_items \
     WHERE due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3) \
     RETURNING id, kind, request_id, due_at, attempts, payload, claimed_until, first_claimed_at";
const CLAIM_PG: &str = "UPDATE due_items SET claimed_until = $1, first_claimed_at = COALESCE(first_claimed_at, $2) \
     WHERE id IN (SELECT id FROM due_items \
     WHERE due_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING id, kind, request_id, due_at, attempts, payload, claimed_until, first_claimed_at";

/// `(id = $a AND claimed_until = $b) OR …` for leases this process holds, numbered from
/// `first`, with their values: an item whose lease token changed (another replica claimed it
/// after the lease ran out) matches nothing.
pub(crate) fn held_condition(held: &[(i64, DateTime<Utc>)], first: usize) -> (String, Vec<Arg>) {
    let mut conds = Vec::with_capacity(held.len());
    let mut values = Vec::with_capacity(held.len() * 2);
    for (i, (id, token)) in held.iter().enumerate() {
        let n = first + 2 * i;
        conds.push(format!("(id = ${n} AND claimed_until = ${})", n + 1));
        values.push((*id).into());
        values.push(to_millis(*token).into());
    }
    (conds.join(" OR "), values)
}

/// `$1, $2, …` for `n` values, numbered from `first`.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Adds one event to the audit log in this transaction (see `Exec::append`).
pub(crate) async fn append<E: Exec>(tx: &mut E, ev: NewEvent) -> Result<(), StoreError> {
    tx.append(ev).await
}

/// On PostgreSQL, tells the other replicas (at this transaction's commit) that work is due at
/// `at` (milliseconds), if soon enough to matter (see `signal.rs`).
pub(crate) async fn signal<E: Exec>(tx: &mut E, at: Option<i64>, now: i64, instance: &str) -> Result<(), StoreError> {
    if let Some(at) = at
        && tx.pg()
        && signal::worth_signal(at, now)
    {
        tx.exec("SELECT pg_notify($1, $2)", args![signal::CHANNEL, signal::payload(at, instance)]).await?;
    }
    Ok(())
}

/// Inserts due items with one statement, whatever their number.
pub(crate) async fn insert_due<E: Exec>(
    tx: &mut E,
    items: Vec<NewDue>,
    request: Option<i64>,
) -> Result<(), StoreError> {
    if items.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = (0..items.len())
        .map(|i| format!("(${}, ${}, ${}, 0, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
        .collect();
    let sql = format!("INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES {}", rows.join(", "));
    let mut values = Vec::with_capacity(items.len() * 4);
    for d in items {
        let req: Option<i64> = d.request.map(|r| r.0).or(request);
        values.extend(args![d.kind.as_str(), req, to_millis(d.due_at), d.payload.to_string()]);
    }
    tx.exec(&sql, values).await?;
    Ok(())
}

/// A request and its approvals; on PostgreSQL the row is locked first, and the approvals are
/// read by a second statement so that they are seen as of after the lock.
async fn load<E: Exec>(tx: &mut E, id: i64) -> Result<Option<(RequestRow, Vec<ApprovalRow>)>, StoreError> {
    let sql = if tx.pg() { SELECT_REQUEST_FOR_UPDATE } else { SELECT_REQUEST };
    let Some(row) = tx.row::<RequestRow>(sql, args![id]).await? else {
        return Ok(None);
    };
    let approvals = tx.rows::<ApprovalRow>(SELECT_APPROVALS, args![id]).await?;
    Ok(Some((row, approvals)))
}

pub(crate) async fn create_request<E: Exec>(
    tx: &mut E,
    new: NewRequest,
    event: NewEvent,
    due: Vec<NewDue>,
) -> Result<Request, StoreError> {
    let now = to_millis(new.created_at);
    let values = args![
        new.kind.as_str(),
        new.kind.parent().map(|p| p.0),
        new.role.as_str(),
        new.requester.as_str(),
        new.duration.secs(),
        new.reason.as_str(),
        new.ticket.as_deref(),
        serde_json::to_string(&new.source).map_err(err)?,
        new.state.as_str(),
        now,
        now,
        new.extra_approvals as i64,
        serde_json::to_string(&new.rules).map_err(err)?,
        new.closed_by.as_deref(),
        new.note.as_deref(),
        new.starts_at.map(to_millis),
    ];
    let row =
        tx.row::<RequestRow>(INSERT_REQUEST, values).await?.ok_or_else(|| StoreError::new("insert returned no row"))?;
    let id = row.id;
    let mut event = event;
    event.subject = Some(RequestId(id));
    append(tx, event).await?;
    insert_due(tx, due, Some(id)).await?;
    // The row as inserted; a new request has no approvals yet.
    row.into_request(Vec::new())
}

/// The rows of a request of several roles, in one transaction: each inserted as a request of
/// its own, then all marked with the first one's id as their batch.
pub(crate) async fn create_batch<E: Exec>(
    tx: &mut E,
    members: Vec<(NewRequest, NewEvent, Vec<NewDue>)>,
) -> Result<Vec<Request>, StoreError> {
    let mut out = Vec::with_capacity(members.len());
    for (new, event, due) in members {
        out.push(create_request(tx, new, event, due).await?);
    }
    let Some(lead) = out.first().map(|r| r.id) else { return Ok(out) };
    let ids: Vec<i64> = out.iter().map(|r| r.id.0).collect();
    let sql = format!("UPDATE requests SET batch = $1 WHERE id IN ({})", placeholders(2, ids.len()));
    let mut values = args![lead.0];
    for id in &ids {
        values.extend(args![*id]);
    }
    tx.exec(&sql, values).await?;
    for r in &mut out {
        r.batch = Some(elevate_core::BatchId(lead));
    }
    Ok(out)
}

pub(crate) async fn decide<E: Exec>(tx: &mut E, id: RequestId, f: DecideFn) -> Result<Decided, StoreError> {
    let Some((row, approvals)) = load(tx, id.0).await? else {
        return Ok(Decided::NotFound);
    };
    let req = row.into_request(approvals.clone())?;
    match judge(tx, &req, f).await? {
        Ok(change) => apply(tx, &req, approvals, change).await,
        Err(decided) => Ok(decided),
    }
}

/// Hands the loaded request to core. A refusal is written here (its event, if any) and comes
/// back as `Err`; a change comes back checked (a legal transition, with its event).
pub(crate) async fn judge<E: Exec>(
    tx: &mut E,
    req: &Request,
    f: DecideFn,
) -> Result<Result<Change, Decided>, StoreError> {
    let change = match f(req) {
        Decision::Refuse(e, event) => {
            if let Some(event) = event {
                append(tx, event).await?;
            }
            return Ok(Err(Decided::Refused(e)));
        }
        Decision::Change(change) => *change,
    };
    checked(req, change).map(Ok)
}

/// `change` if it may be written: a legal transition of `req`, with its audit event.
pub(crate) fn checked(req: &Request, change: Change) -> Result<Change, StoreError> {
    if let Some(to) = change.to {
        let id = req.id;
        if !req.state.can_become(to) {
            return Err(StoreError::new(format!(
                "illegal transition {} -> {} for {}",
                req.state.as_str(),
                to.as_str(),
                id
            )));
        }
        if change.event.is_none() {
            return Err(StoreError::new(format!("transition of {id} without an audit event")));
        }
    }
    Ok(change)
}

/// Writes a checked change of `req` (as loaded, with its `approvals`), one statement per part.
pub(crate) async fn apply<E: Exec>(
    tx: &mut E,
    req: &Request,
    mut approvals: Vec<ApprovalRow>,
    change: Change,
) -> Result<Decided, StoreError> {
    let id = req.id;
    let Change { to, patch, approval, event, schedule, cancel, finish, then, linked } = change;
    let now = to_millis(event.as_ref().map(|e| e.at).unwrap_or_else(Utc::now));
    let values = args![
        to.map(|s| s.as_str()),
        patch.granted_at.map(to_millis),
        patch.expires_at.map(to_millis),
        patch.ending.map(|e| e.as_str()),
        patch.closed_by,
        patch.note,
        patch.grant_handle.map(|h| h.to_string()),
        now,
        patch.review.map(|r| r.to_string()),
        id.0,
        req.state.as_str(),
    ];
    let Some(updated) = tx.row::<RequestRow>(UPDATE_REQUEST, values).await? else {
        return Err(StoreError::new(format!("compare-and-set on {id} lost although the row was locked")));
    };
    if let Some(approver) = approval {
        tx.exec(
            "INSERT INTO approvals (request_id, approver, at) VALUES ($1, $2, $3)",
            args![id.0, approver.as_str(), now],
        )
        .await?;
        // As a read would now return them: nobody else writes this request's approvals while
        // its row is held.
        approvals.push(ApprovalRow { request_id: id.0, approver: approver.to_string(), at: now });
        approvals.sort_by(|a, b| (a.at, &a.approver).cmp(&(b.at, &b.approver)));
    }
    // A linked move of this same row changes what the update returned: read it all again.
    let linked_is_self = linked.as_ref().is_some_and(|l| l.id == id);
    if let Some(linked) = linked {
        let moved = tx
            .exec(
                "UPDATE requests SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4",
                args![linked.to.as_str(), now, linked.id.0, linked.from.as_str()],
            )
            .await?;
        if moved != 1 {
            tx.roll_back();
            return Ok(Decided::LinkedConflict);
        }
        append(tx, linked.event).await?;
    }
    if !cancel.is_empty() || finish.is_some() {
        // The finished item and the cancelled kinds in one statement.
        let mut conds = Vec::new();
        let mut values = Vec::new();
        if let Some(done) = finish {
            values.extend(args![done]);
            conds.push("id = $1".to_string());
        }
        if !cancel.is_empty() {
            let first = values.len() + 1;
            values.extend(args![id.0]);
            values.extend(cancel.iter().map(|k| k.as_str().into()));
            conds.push(format!("(request_id = ${first} AND kind IN ({}))", placeholders(first + 1, cancel.len())));
        }
        tx.exec(&format!("DELETE FROM due_items WHERE {}", conds.join(" OR ")), values).await?;
    }
    if let Some((item, kind)) = then {
        tx.exec(
            "UPDATE due_items SET kind = $1, due_at = $2, attempts = 0 WHERE id = $3",
            args![kind.as_str(), now, item],
        )
        .await?;
    }
    insert_due(tx, schedule, Some(id.0)).await?;
    if let Some(event) = event {
        append(tx, event).await?;
    }
    let after = if linked_is_self {
        let (row, approvals) = load(tx, id.0).await?.ok_or_else(|| StoreError::new("row vanished"))?;
        row.into_request(approvals)?
    } else {
        updated.into_request(approvals)?
    };
    Ok(Decided::Changed(Box::new(after)))
}

pub(crate) async fn claim_due<E: Exec>(
    tx: &mut E,
    now: i64,
    until: i64,
    limit: u32,
) -> Result<Vec<DueItem>, StoreError> {
    let sql = if tx.pg() { CLAIM_PG } else { CLAIM_SQLITE };
    let rows = tx.rows::<DueRow>(sql, args![until, now, limit as i64]).await?;
    let mut items: Vec<DueItem> = rows.into_iter().filter_map(DueRow::into_item).collect();
    items.sort_by_key(|i| (i.due_at, i.id));
    // Their requests, read here with two statements rather than by each handler with one.
    let mut ids: Vec<i64> = items.iter().filter_map(|i| i.request.map(|r| r.0)).collect();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        let list = placeholders(1, ids.len());
        let values: Vec<_> = ids.iter().map(|id| (*id).into()).collect();
        let sql = format!(concat!("SELECT ", request_columns!(), " FROM requests WHERE id IN ({})"), list);
        let requests = tx.rows::<RequestRow>(&sql, values.clone()).await?;
        let sql = format!(
            "SELECT request_id, approver, at FROM approvals WHERE request_id IN ({list}) ORDER BY request_id, at, approver"
        );
        let mut approvals: std::collections::HashMap<i64, Vec<ApprovalRow>> = Default::default();
        for a in tx.rows::<ApprovalRow>(&sql, values).await? {
            approvals.entry(a.request_id).or_default().push(a);
        }
        let mut loaded = std::collections::HashMap::new();
        for row in requests {
            let id = row.id;
            loaded.insert(id, row.into_request(approvals.remove(&id).unwrap_or_default())?);
        }
        for item in &mut items {
            item.snapshot = item.request.and_then(|r| loaded.get(&r.0)).map(|r| Box::new(r.clone()));
        }
    }
    Ok(items)
}

pub(crate) async fn retry_due<E: Exec>(
    tx: &mut E,
    id: i64,
    at: DateTime<Utc>,
    attempts: u32,
    event: Option<NewEvent>,
) -> Result<(), StoreError> {
    let moved = tx
        .exec(
            "UPDATE due_items SET due_at = $1, attempts = $2, claimed_until = NULL, first_claimed_at = NULL WHERE id = $3",
            args![to_millis(at), attempts as i64, id],
        )
        .await?;
    // Cancelled while it ran (the request moved on): nothing to record.
    if moved == 0 {
        return Ok(());
    }
    if let Some(event) = event {
        append(tx, event).await?;
    }
    Ok(())
}

pub(crate) async fn set_lockdown<E: Exec>(tx: &mut E, l: Lockdown, event: NewEvent) -> Result<(), StoreError> {
    tx.exec(
        "INSERT INTO lockdowns (scope, reason, locked_by, locked_at, blocks_breakglass) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, locked_by = excluded.locked_by, \
         locked_at = excluded.locked_at, blocks_breakglass = excluded.blocks_breakglass",
        args![&l.scope, &l.reason, &l.locked_by, to_millis(l.locked_at), l.blocks_breakglass as i64],
    )
    .await?;
    append(tx, event).await?;
    Ok(())
}

pub(crate) async fn clear_lockdown<E: Exec>(tx: &mut E, scope: String, event: NewEvent) -> Result<bool, StoreError> {
    if tx.exec("DELETE FROM lockdowns WHERE scope = $1", args![scope]).await? == 0 {
        return Ok(false);
    }
    append(tx, event).await?;
    Ok(true)
}
