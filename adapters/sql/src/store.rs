//! `Store` for both dialects. Reads are expanded once per pool type by `with_pool!`; writes
//! are written once in `writes.rs` and run by `with_writer!`.

use crate::{
    Pools, SqlStore, err,
    exec::{Exec, args},
    pg_fold,
    rows::{DueRow, EventRow, RequestApprovalRow, group_requests, request_columns},
    writes::{self, placeholders},
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use elevate_core::{
    PersonId, RequestId, RoleName, State,
    audit::{AuditEvent, NewEvent},
    ports::{DecideFn, Decided, DueItem, Lockdown, NewDue, RequestQuery, Store, StoreError},
    request::{NewRequest, Request},
    time::{from_millis, to_millis},
};
use std::time::Duration;

/// Runs `$body` with `$r` bound to a reader pool (the pool itself on PostgreSQL). The body is
/// compiled once per dialect.
macro_rules! with_pool {
    ($self:expr, |$r:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { reader, .. } => {
                let $r = reader;
                $body
            }
            Pools::Postgres(pool) => {
                // Through the reachability gate (`reach.rs`); `?` in the body ends the block.
                let out = $self
                    .pg(pool, async {
                        Ok({
                            let $r = pool;
                            $body
                        })
                    })
                    .await;
                out?
            }
        }
    };
}

/// Runs a write: `$body` (which must own what it uses) with `$tx` an [`crate::exec::Exec`]. On
/// SQLite it runs on the writer thread inside a savepoint of a group-committed transaction
/// (see `writer.rs`); on PostgreSQL in a transaction of its own. `single` marks a write of one
/// statement, which on PostgreSQL needs no transaction around it.
macro_rules! with_writer {
    ($self:expr, |$tx:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { thread, .. } => thread.run(move |$tx| Box::pin(async move { $body })).await,
            Pools::Postgres(pool) => {
                $self
                    .pg(pool, crate::pg_tx::pg_write(pool, $self.sealer(), move |$tx| Box::pin(async move { $body })))
                    .await
            }
        }
    };
    ($self:expr, single, |$tx:ident| $body:expr) => {
        match &$self.pools {
            Pools::Sqlite { thread, .. } => thread.run(move |$tx| Box::pin(async move { $body })).await,
            Pools::Postgres(pool) => {
                $self
                    .pg(pool, async {
                        let $tx = &mut crate::exec::PgAuto(pool.clone());
                        $body
                    })
                    .await
            }
        }
    };
}

/// Requests that may give access now, as the predicate of the partial index `requests_live`
/// states it (both databases use a partial index only for a query that repeats its predicate).
const LIVE: &str = "state IN ('approved', 'active') AND kind <> 'extension'";

/// One request and its approvals in one statement: one round trip, one snapshot.
const SELECT_REQUEST_WITH_APPROVALS: &str = concat!(
    "SELECT r.*, a.approver, a.at AS approved_at FROM (SELECT ",
    request_columns!(),
    " FROM requests WHERE id = $1) r LEFT JOIN approvals a ON a.request_id = r.id ORDER BY a.at, a.approver"
);

#[async_trait]
impl Store for SqlStore {
    async fn create_request(&self, new: NewRequest, event: NewEvent, due: Vec<NewDue>) -> Result<Request, StoreError> {
        match &self.pools {
            Pools::Postgres(pool) => {
                pg_fold::create_request(pool, self.sealer(), &self.instance, new, event, due).await
            }
            Pools::Sqlite { .. } => with_writer!(self, |tx| writes::create_request(tx, new, event, due).await),
        }
    }

    async fn create_batch(
        &self,
        members: Vec<(NewRequest, NewEvent, Vec<NewDue>)>,
    ) -> Result<Vec<Request>, StoreError> {
        with_writer!(self, |tx| writes::create_batch(tx, members).await)
    }

    async fn get_request(&self, id: RequestId) -> Result<Option<Request>, StoreError> {
        with_pool!(self, |r| {
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
            let rows: Vec<(i64, String)> = with_pool!(self, |r| {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                q.fetch_all(r).await.map_err(err)?
            });
            for (id, state) in rows {
                let state = State::parse(&state)
                    .ok_or_else(|| StoreError::new(format!("stored state of request {id} cannot be read")))?;
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
        if let Some(batch) = q.batch {
            conds.push(format!("batch = ${}", args.len() + 1));
            args.push(Arg::Int(batch.lead().0));
        }
        if let Some(since) = q.created_since {
            conds.push(format!("created_at >= ${}", args.len() + 1));
            args.push(Arg::Int(to_millis(since)));
        }
        let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
        let rows = format!(
            concat!("SELECT ", request_columns!(), " FROM requests{} ORDER BY id DESC LIMIT ${}"),
            filter,
            args.len() + 1
        );
        let sql = if q.skip_approvals {
            format!(
                "SELECT r.*, CAST(NULL AS TEXT) AS approver, CAST(NULL AS BIGINT) AS approved_at FROM ({rows}) r \
                 ORDER BY r.id DESC"
            )
        } else {
            format!(
                "SELECT r.*, a.approver, a.at AS approved_at FROM ({rows}) r \
                 LEFT JOIN approvals a ON a.request_id = r.id ORDER BY r.id DESC, a.at, a.approver"
            )
        };
        args.push(Arg::Int(q.limit.unwrap_or(500).min(10_000) as i64));
        with_pool!(self, |r| {
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

    async fn still_needed(
        &self,
        except: RequestId,
        requester: &PersonId,
        roles: &[RoleName],
    ) -> Result<bool, StoreError> {
        if roles.is_empty() {
            return Ok(false);
        }
        // The conditions on state and kind are written exactly as the predicate of the partial
        // index `requests_live` (migration `live_grants`), so that both databases may use it:
        // the lookup touches the first live row or two of (requester, role), however many there
        // are. SQLite, without statistics, would rather take (requester, state) and walk every
        // live grant of the person whatever its role, so it is told which index to use (and
        // fails loudly, rather than scanning, should the index ever not fit the query).
        let index = if matches!(self.pools, Pools::Sqlite { .. }) { " INDEXED BY requests_live" } else { "" };
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM requests{index} WHERE requester = $1 AND role IN ({}) AND {LIVE} \
             AND id <> ${})",
            placeholders(2, roles.len()),
            roles.len() + 2
        );
        with_pool!(self, |r| {
            let mut q = sqlx::query_as::<_, (bool,)>(sqlx::AssertSqlSafe(sql)).bind(requester.as_str());
            for role in roles {
                q = q.bind(role.as_str());
            }
            let (found,) = q.bind(except.0).fetch_one(r).await.map_err(err)?;
            Ok(found)
        })
    }

    async fn decide(&self, id: RequestId, f: DecideFn) -> Result<Decided, StoreError> {
        match &self.pools {
            Pools::Postgres(pool) => pg_fold::decide(pool, self.sealer(), &self.instance, id, f).await,
            Pools::Sqlite { .. } => with_writer!(self, |tx| writes::decide(tx, id, f).await),
        }
    }

    async fn append_event(&self, ev: NewEvent) -> Result<AuditEvent, StoreError> {
        match &self.pools {
            Pools::Postgres(pool) => self.pg(pool, self.sealer().append(ev)).await,
            Pools::Sqlite { thread, .. } => thread.run(move |tx| Box::pin(async move { tx.seal(ev).await })).await,
        }
    }

    async fn claim_due(&self, now: DateTime<Utc>, limit: u32, lease: Duration) -> Result<Vec<DueItem>, StoreError> {
        let (now, until) = (to_millis(now), to_millis(now) + lease.as_millis() as i64);
        match &self.pools {
            Pools::Postgres(pool) => pg_fold::claim_due(pool, now, until, limit).await,
            Pools::Sqlite { .. } => with_writer!(self, single, |tx| writes::claim_due(tx, now, until, limit).await),
        }
    }

    async fn retry_due(
        &self,
        id: i64,
        at: DateTime<Utc>,
        attempts: u32,
        event: Option<NewEvent>,
    ) -> Result<(), StoreError> {
        let instance = self.instance.clone();
        with_writer!(self, |tx| {
            writes::retry_due(tx, id, at, attempts, event).await?;
            writes::signal(tx, Some(to_millis(at)), to_millis(Utc::now()), &instance).await
        })
    }

    async fn finish_due(&self, id: i64) -> Result<(), StoreError> {
        with_writer!(self, single, |tx| tx.exec("DELETE FROM due_items WHERE id = $1", args![id]).await.map(|_| ()))
    }

    async fn schedule(&self, items: Vec<NewDue>) -> Result<(), StoreError> {
        let soonest = items.iter().map(|d| to_millis(d.due_at)).min();
        let instance = self.instance.clone();
        with_writer!(self, single, |tx| {
            writes::insert_due(tx, items, None).await?;
            writes::signal(tx, soonest, to_millis(Utc::now()), &instance).await
        })
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        with_pool!(self, |r| {
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
        with_pool!(self, |r| {
            let rows: Vec<DueRow> = sqlx::query_as(
                "SELECT id, kind, request_id, due_at, attempts, payload, claimed_until, first_claimed_at FROM due_items \
                 WHERE request_id = $1 ORDER BY due_at, id",
            )
            .bind(request.0)
            .fetch_all(r)
            .await
            .map_err(err)?;
            Ok(rows.into_iter().filter_map(DueRow::into_item).collect())
        })
    }

    async fn release_claims(&self) -> Result<u64, StoreError> {
        let instance = self.instance.clone();
        with_writer!(self, single, |tx| {
            let released =
                tx.exec("UPDATE due_items SET claimed_until = NULL WHERE claimed_until IS NOT NULL", args![]).await?;
            if released > 0 {
                let now = to_millis(Utc::now());
                writes::signal(tx, Some(now), now, &instance).await?;
            }
            Ok(released)
        })
    }

    async fn renew_claims(&self, held: &[(i64, DateTime<Utc>)], until: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (cond, mut values) = writes::held_condition(held, 2);
        values.insert(0, to_millis(until).into());
        let sql = format!("UPDATE due_items SET claimed_until = $1 WHERE {cond} RETURNING id");
        let rows: Vec<(i64,)> = with_writer!(self, single, |tx| tx.rows(&sql, values).await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    async fn release_held(&self, held: &[(i64, DateTime<Utc>)]) -> Result<u64, StoreError> {
        if held.is_empty() {
            return Ok(0);
        }
        let (cond, values) = writes::held_condition(held, 1);
        let sql = format!("UPDATE due_items SET claimed_until = NULL WHERE {cond}");
        let instance = self.instance.clone();
        with_writer!(self, single, |tx| {
            let released = tx.exec(&sql, values).await?;
            if released > 0 {
                // Other replicas' schedulers may be asleep: the work is due for them now.
                let now = to_millis(Utc::now());
                writes::signal(tx, Some(now), now, &instance).await?;
            }
            Ok(released)
        })
    }

    async fn events(&self, after: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        with_pool!(self, |r| {
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
        with_pool!(self, |r| {
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
        let values = args![job, to_millis(fire_at)];
        with_writer!(self, single, |tx| tx
            .exec("INSERT INTO cron_runs (job, fire_at) VALUES ($1, $2) ON CONFLICT DO NOTHING", values)
            .await
            .map(|n| n == 1))
    }

    async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        // Through the writer, so that it sees the writer's own last `set_cursor`.
        let values = args![name];
        with_writer!(self, single, |tx| tx
            .row::<(i64,)>("SELECT seq FROM cursors WHERE name = $1", values)
            .await
            .map(|r| r.map(|(s,)| s).unwrap_or(0)))
    }

    async fn set_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let values = args![name, seq];
        with_writer!(self, single, |tx| tx
            .exec(
                "INSERT INTO cursors (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq \
                 WHERE cursors.seq < excluded.seq",
                values,
            )
            .await
            .map(|_| ()))
    }

    async fn count_by_state(&self) -> Result<Vec<(State, i64)>, StoreError> {
        with_pool!(self, |r| {
            let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM requests GROUP BY state")
                .fetch_all(r)
                .await
                .map_err(err)?;
            Ok(rows.into_iter().filter_map(|(s, n)| Some((State::parse(&s)?, n))).collect())
        })
    }

    async fn overdue(&self, now: DateTime<Utc>) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        with_pool!(self, |r| {
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
        let cached = match &self.pools {
            Pools::Sqlite { lockdowns, .. } => {
                let c = lockdowns.lock().expect("lockdown cache");
                if let Some(v) = &c.value {
                    return Ok(v.clone());
                }
                Some((lockdowns.clone(), c.generation))
            }
            Pools::Postgres(_) => None,
        };
        let value = self.read_lockdowns().await?;
        if let Some((cache, generation)) = cached {
            let mut c = cache.lock().expect("lockdown cache");
            if c.generation == generation {
                c.value = Some(value.clone());
            }
        }
        Ok(value)
    }

    async fn set_lockdown(&self, l: Lockdown, event: NewEvent) -> Result<(), StoreError> {
        let out = with_writer!(self, |tx| writes::set_lockdown(tx, l, event).await);
        self.forget_lockdowns();
        out
    }

    async fn clear_lockdown(&self, scope: &str, event: NewEvent) -> Result<bool, StoreError> {
        let scope = scope.to_string();
        let out = with_writer!(self, |tx| writes::clear_lockdown(tx, scope, event).await);
        self.forget_lockdowns();
        out
    }
}

impl SqlStore {
    /// After a lockdown write, whether it committed or not.
    fn forget_lockdowns(&self) {
        if let Pools::Sqlite { lockdowns, .. } = &self.pools {
            let mut c = lockdowns.lock().expect("lockdown cache");
            c.generation += 1;
            c.value = None;
        }
    }

    async fn read_lockdowns(&self) -> Result<Vec<Lockdown>, StoreError> {
        with_pool!(self, |r| {
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
}
