//! Puts many active grants on the books quickly: the rows the engine leaves after request →
//! approve → grant (the request in `active`, its approval, its `expire` due item, and its three
//! audit events sealed onto the hash chain with core's own `AuditEvent::seal`), written in bulk.
//! Running 100,000 lifecycles through the API first would take minutes and measure something
//! else; the lifecycle scenario measures that path. `elevate audit verify` passes on a seeded
//! database.

use elevate_core::{
    PersonId, RequestId,
    audit::{Actor, AuditEvent, EventKind, NewEvent},
    time::from_millis,
};
use serde_json::json;
use sqlx::{Connection, PgConnection, SqliteConnection};
use std::fmt::Write as _;

/// Grants `0..count`: requester `i % requesters`, expiring at `expires_at_ms(i)`, granted
/// `hold_ms` before that. Returns the request ids, in order.
pub async fn seed(
    url: &str,
    count: usize,
    requesters: usize,
    hold_ms: i64,
    expires_at_ms: impl Fn(usize) -> i64,
) -> anyhow::Result<Vec<i64>> {
    // Migrations, exactly as the server runs them.
    drop(elevate_sql::SqlStore::connect(url).await.map_err(|e| anyhow::anyhow!("{e}"))?);
    let pg = url.starts_with("postgres");
    let statements = build(count, requesters, hold_ms, &expires_at_ms, &mut Head::read(url).await?)?;
    if pg {
        let mut c = PgConnection::connect(url).await?;
        for chunk in statements.sql.chunks(25) {
            let mut tx = c.begin().await?;
            for s in chunk {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone())).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "{}; SELECT setval(pg_get_serial_sequence('requests', 'id'), (SELECT MAX(id) FROM requests)); ANALYZE",
            statements.head
        )))
        .execute(&mut c)
        .await?;
    } else {
        let mut c = SqliteConnection::connect(&format!("sqlite://{url}")).await?;
        for chunk in statements.sql.chunks(25) {
            let mut tx = c.begin().await?;
            for s in chunk {
                sqlx::raw_sql(sqlx::AssertSqlSafe(s.clone())).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{}; ANALYZE", statements.head))).execute(&mut c).await?;
    }
    Ok(statements.ids)
}

/// The chain head and the next free request id.
struct Head {
    seq: i64,
    hash: String,
    next_id: i64,
}

impl Head {
    async fn read(url: &str) -> anyhow::Result<Head> {
        let q_head = "SELECT seq, hash FROM audit_head WHERE id = 1";
        let q_id = "SELECT COALESCE(MAX(id), 0) FROM requests";
        let ((seq, hash), (max,)): ((i64, String), (i64,)) = if url.starts_with("postgres") {
            let mut c = PgConnection::connect(url).await?;
            (sqlx::query_as(q_head).fetch_one(&mut c).await?, sqlx::query_as(q_id).fetch_one(&mut c).await?)
        } else {
            let mut c = SqliteConnection::connect(&format!("sqlite://{url}")).await?;
            (sqlx::query_as(q_head).fetch_one(&mut c).await?, sqlx::query_as(q_id).fetch_one(&mut c).await?)
        };
        Ok(Head { seq, hash, next_id: max + 1 })
    }
}

struct Statements {
    sql: Vec<String>,
    head: String,
    ids: Vec<i64>,
}

fn build(
    count: usize,
    requesters: usize,
    hold_ms: i64,
    expires_at_ms: &impl Fn(usize) -> i64,
    head: &mut Head,
) -> anyhow::Result<Statements> {
    const BATCH: usize = 200;
    let mut out = Statements { sql: Vec::new(), head: String::new(), ids: Vec::with_capacity(count) };
    let mut i = 0;
    while i < count {
        let end = (i + BATCH).min(count);
        let (mut reqs, mut apps, mut due, mut evs) = (String::new(), String::new(), String::new(), String::new());
        for n in i..end {
            let id = head.next_id;
            head.next_id += 1;
            out.ids.push(id);
            let person = crate::node::requester(n % requesters);
            let approver = crate::node::approver(0);
            let expires = expires_at_ms(n);
            let granted = expires - hold_ms;
            let created = granted - 1000;
            let sep = |s: &String| if s.is_empty() { "" } else { "," };
            let source = r#"{"platform":"api","tenant":"bench"}"#;
            let handle = format!(r#"{{"applied":"elevate-{id}"}}"#);
            write!(
                reqs,
                "{}({id},'normal','{role}','{person}',{secs},'bench seed','{source}','active',{created},{granted},{granted},{expires},'{handle}')",
                sep(&reqs),
                role = crate::node::ROLE,
                secs = (hold_ms / 1000).max(1),
            )?;
            write!(apps, "{}({id},'{approver}',{granted})", sep(&apps))?;
            write!(due, "{}('expire',{id},{expires},0,'null')", sep(&due))?;
            let rid = Some(RequestId(id));
            let events = [
                NewEvent::new(
                    from_millis(created),
                    Actor::Person(PersonId::parse(&person).map_err(anyhow::Error::msg)?),
                    EventKind::RequestCreated,
                    rid,
                    json!({ "role": crate::node::ROLE, "duration": format!("{}s", hold_ms / 1000), "reason": "bench seed" }),
                ),
                NewEvent::new(
                    from_millis(granted),
                    Actor::Person(PersonId::parse(&approver).map_err(anyhow::Error::msg)?),
                    EventKind::RequestApproved,
                    rid,
                    json!({}),
                ),
                NewEvent::new(
                    from_millis(granted),
                    Actor::System,
                    EventKind::GrantApplied,
                    rid,
                    json!({ "provider": "hook", "expires_at": from_millis(expires).to_rfc3339(), "dry_run": false }),
                ),
            ];
            for e in events {
                let sealed = AuditEvent::seal(&e, Some((head.seq, head.hash.as_str())));
                write!(
                    evs,
                    "{}({},{},'{}','{}',{},'{}','{}','{}')",
                    sep(&evs),
                    sealed.seq,
                    elevate_core::time::to_millis(sealed.at),
                    sealed.actor,
                    sealed.kind,
                    id,
                    sealed.details,
                    sealed.prev_hash,
                    sealed.hash
                )?;
                head.seq = sealed.seq;
                head.hash = sealed.hash;
            }
        }
        out.sql.push(format!(
            "INSERT INTO requests (id, kind, role, requester, duration_secs, reason, source, state, created_at, updated_at, granted_at, expires_at, grant_handle) VALUES {reqs};\n\
             INSERT INTO approvals (request_id, approver, at) VALUES {apps};\n\
             INSERT INTO due_items (kind, request_id, due_at, attempts, payload) VALUES {due};\n\
             INSERT INTO audit_events (seq, at, actor, kind, subject, details, prev_hash, hash) VALUES {evs};"
        ));
        i = end;
    }
    out.head = format!("UPDATE audit_head SET seq = {}, hash = '{}' WHERE id = 1", head.seq, head.hash);
    Ok(out)
}
