//! Rows as the database holds them, and their conversion to core's types. Shared by both
//! dialects: `sqlx::FromRow` derives generically over the row type.

use elevate_core::{
    EndReason, GrantDuration, PersonId, Reason, RequestId, RoleName, State,
    audit::AuditEvent,
    ports::{Claim, DueItem, DueKind, StoreError},
    request::{Approval, Request, RequestKind, Source},
    time::from_millis,
};

/// The columns of `RequestRow`, as a literal for `concat!`.
macro_rules! request_columns {
    () => {
        "id, kind, parent_id, role, requester, duration_secs, reason, ticket, source, state, created_at, updated_at, \
         granted_at, expires_at, ending, closed_by, note, grant_handle, extra_approvals, rules, review, batch, starts_at"
    };
}
pub(crate) use request_columns;

/// Also read from JSON (`row_to_json`), where PostgreSQL returns requests inside another row.
#[derive(sqlx::FromRow, serde::Deserialize)]
pub struct RequestRow {
    pub id: i64,
    pub kind: String,
    pub parent_id: Option<i64>,
    pub role: String,
    pub requester: String,
    pub duration_secs: i64,
    pub reason: String,
    pub ticket: Option<String>,
    pub source: String,
    pub state: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub granted_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub ending: Option<String>,
    pub closed_by: Option<String>,
    pub note: Option<String>,
    pub grant_handle: Option<String>,
    pub extra_approvals: i64,
    pub rules: String,
    pub review: Option<String>,
    #[serde(default)]
    pub batch: Option<i64>,
    #[serde(default)]
    pub starts_at: Option<i64>,
}

#[derive(sqlx::FromRow, serde::Deserialize, Clone)]
pub struct ApprovalRow {
    pub request_id: i64,
    pub approver: String,
    pub at: i64,
}

/// A request joined with one of its approvals (`LEFT JOIN`: both `None` when it has none).
#[derive(sqlx::FromRow)]
pub struct RequestApprovalRow {
    #[sqlx(flatten)]
    pub request: RequestRow,
    pub approver: Option<String>,
    pub approved_at: Option<i64>,
}

impl RequestApprovalRow {
    /// The request of rows that are all of one request (or none), and its approvals.
    pub fn one(rows: Vec<RequestApprovalRow>) -> Option<(RequestRow, Vec<ApprovalRow>)> {
        let mut out: Option<(RequestRow, Vec<ApprovalRow>)> = None;
        for RequestApprovalRow { request, approver, approved_at } in rows {
            let id = request.id;
            let (_, approvals) = out.get_or_insert_with(|| (request, Vec::new()));
            if let (Some(approver), Some(at)) = (approver, approved_at) {
                approvals.push(ApprovalRow { request_id: id, approver, at });
            }
        }
        out
    }
}

/// Folds joined rows into requests. Rows of one request must be adjacent, its approvals in
/// order; requests come out in the order their rows came in.
pub fn group_requests(rows: Vec<RequestApprovalRow>) -> Result<Vec<Request>, StoreError> {
    let mut grouped: Vec<(RequestRow, Vec<ApprovalRow>)> = Vec::new();
    for RequestApprovalRow { request, approver, approved_at } in rows {
        let id = request.id;
        let approval = match (approver, approved_at) {
            (Some(approver), Some(at)) => Some(ApprovalRow { request_id: id, approver, at }),
            _ => None,
        };
        match grouped.last_mut() {
            Some((last, approvals)) if last.id == id => approvals.extend(approval),
            _ => grouped.push((request, approval.into_iter().collect())),
        }
    }
    grouped.into_iter().map(|(row, approvals)| row.into_request(approvals)).collect()
}

#[derive(sqlx::FromRow)]
pub struct DueRow {
    pub id: i64,
    pub kind: String,
    pub request_id: Option<i64>,
    pub due_at: i64,
    pub attempts: i64,
    pub payload: String,
    pub claimed_until: Option<i64>,
    pub first_claimed_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub kind: String,
    pub subject: Option<i64>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

fn corrupt(what: &str, id: i64) -> StoreError {
    StoreError::new(format!("stored {what} of request {id} cannot be read"))
}

impl RequestRow {
    pub fn into_request(self, approvals: Vec<ApprovalRow>) -> Result<Request, StoreError> {
        let id = self.id;
        Ok(Request {
            id: RequestId(id),
            kind: RequestKind::from_parts(&self.kind, self.parent_id).ok_or_else(|| corrupt("kind", id))?,
            role: RoleName::parse(&self.role).map_err(|_| corrupt("role", id))?,
            requester: PersonId::parse(&self.requester).map_err(|_| corrupt("requester", id))?,
            duration: GrantDuration::from_secs(self.duration_secs).map_err(|_| corrupt("duration", id))?,
            // Stored text was validated on the way in; a later, stricter rule must not make old
            // rows unreadable, so fall back to the raw text through serde.
            reason: Reason::parse(&self.reason)
                .or_else(|_| serde_json::from_value(serde_json::Value::String("(unreadable reason)".into())))
                .map_err(|_| corrupt("reason", id))?,
            ticket: self.ticket,
            source: serde_json::from_str::<Source>(&self.source).unwrap_or_default(),
            state: State::parse(&self.state).ok_or_else(|| corrupt("state", id))?,
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
            granted_at: self.granted_at.map(from_millis),
            expires_at: self.expires_at.map(from_millis),
            ending: self.ending.as_deref().and_then(EndReason::parse),
            closed_by: self.closed_by,
            note: self.note,
            grant_handle: self.grant_handle.and_then(|h| serde_json::from_str(&h).ok()),
            approvals: approvals
                .into_iter()
                .filter(|a| a.request_id == id)
                .filter_map(|a| Some(Approval { approver: PersonId::parse(&a.approver).ok()?, at: from_millis(a.at) }))
                .collect(),
            extra_approvals: self.extra_approvals.clamp(0, 100) as u32,
            rules: serde_json::from_str(&self.rules).unwrap_or_default(),
            review: self.review.and_then(|r| serde_json::from_str(&r).ok()),
            batch: self.batch.map(|b| elevate_core::BatchId(RequestId(b))),
            starts_at: self.starts_at.map(from_millis),
        })
    }
}

impl DueRow {
    pub fn into_item(self) -> Option<DueItem> {
        Some(DueItem {
            id: self.id,
            kind: DueKind::parse(&self.kind)?,
            request: self.request_id.map(RequestId),
            due_at: from_millis(self.due_at),
            attempts: self.attempts.clamp(0, u32::MAX as i64) as u32,
            payload: serde_json::from_str(&self.payload).unwrap_or_default(),
            snapshot: None,
            claim: match (self.claimed_until, self.first_claimed_at) {
                (Some(until), Some(since)) => Some(Claim { until: from_millis(until), since: from_millis(since) }),
                _ => None,
            },
        })
    }
}

impl EventRow {
    pub fn into_event(self) -> AuditEvent {
        AuditEvent {
            seq: self.seq,
            at: from_millis(self.at),
            actor: self.actor,
            kind: self.kind,
            subject: self.subject,
            // Unparseable details stay visible to verify as a string, and fail its hash check.
            details: serde_json::from_str(&self.details).unwrap_or(serde_json::Value::String(self.details)),
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// SQLite rows through rusqlite (the writer thread), by column name like sqlx's derive.
mod lite {
    use super::{ApprovalRow, DueRow, RequestRow};
    use crate::exec::FromBoth;
    use rusqlite::{Result, Row};

    impl FromBoth for RequestRow {
        fn from_lite(r: &Row<'_>) -> Result<Self> {
            Ok(RequestRow {
                id: r.get("id")?,
                kind: r.get("kind")?,
                parent_id: r.get("parent_id")?,
                role: r.get("role")?,
                requester: r.get("requester")?,
                duration_secs: r.get("duration_secs")?,
                reason: r.get("reason")?,
                ticket: r.get("ticket")?,
                source: r.get("source")?,
                state: r.get("state")?,
                created_at: r.get("created_at")?,
                updated_at: r.get("updated_at")?,
                granted_at: r.get("granted_at")?,
                expires_at: r.get("expires_at")?,
                ending: r.get("ending")?,
                closed_by: r.get("closed_by")?,
                note: r.get("note")?,
                grant_handle: r.get("grant_handle")?,
                extra_approvals: r.get("extra_approvals")?,
                rules: r.get("rules")?,
                review: r.get("review")?,
                batch: r.get("batch")?,
                starts_at: r.get("starts_at")?,
            })
        }
    }

    impl FromBoth for ApprovalRow {
        fn from_lite(r: &Row<'_>) -> Result<Self> {
            Ok(ApprovalRow { request_id: r.get("request_id")?, approver: r.get("approver")?, at: r.get("at")? })
        }
    }

    impl FromBoth for DueRow {
        fn from_lite(r: &Row<'_>) -> Result<Self> {
            Ok(DueRow {
                id: r.get("id")?,
                kind: r.get("kind")?,
                request_id: r.get("request_id")?,
                due_at: r.get("due_at")?,
                attempts: r.get("attempts")?,
                payload: r.get("payload")?,
                claimed_until: r.get("claimed_until")?,
                first_claimed_at: r.get("first_claimed_at")?,
            })
        }
    }
}
