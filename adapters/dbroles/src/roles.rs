//! The SQL: elevate's bookkeeping table, and grant, revoke and list, each one transaction on
//! the target server.

use crate::{
    Ident, PostgresRolesProvider,
    common::{GrantRow, Words},
};
use elevate_core::ports::{GrantSpec, ListedGrant, Overlap, ProviderError};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Postgres, Transaction};
use tracing::info;

/// What one grant gives: `role` to `login`.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub role: Ident,
    pub login: Ident,
    pub terminate_sessions: bool,
}

/// SQLSTATE of a table that does not exist: before elevate's first grant on this server there
/// is nothing of elevate's to revoke or list.
const UNDEFINED_TABLE: &str = "42P01";

/// An advisory lock key (any constant; "elevate" in ASCII) for creating the bookkeeping table once.
const SETUP_LOCK: i64 = 0x0065_6c65_7661_7465;

fn table(p: &PostgresRolesProvider) -> String {
    format!("{}.role_grants", p.settings.schema.quoted())
}

fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE))
}

/// Creates the schema and table unless they exist (a DBA may create them beforehand and give
/// elevate only rights on them; then elevate needs no `CREATE` on the database).
pub(crate) async fn ensure_table(p: &PostgresRolesProvider) -> Result<(), ProviderError> {
    let t = table(p);
    let (exists,): (bool,) =
        sqlx::query_as("SELECT to_regclass($1) IS NOT NULL").bind(&t).fetch_one(&p.pool).await.map_err(|e| p.err(e))?;
    if exists {
        return Ok(());
    }
    let mut tx = p.pool.begin().await.map_err(|e| p.err(e))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SETUP_LOCK).execute(&mut *tx).await.map_err(|e| p.err(e))?;
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; \
         CREATE TABLE IF NOT EXISTS {t} (\
           grant_id TEXT PRIMARY KEY, \
           role_name TEXT NOT NULL, \
           login TEXT NOT NULL, \
           elevate_role TEXT NOT NULL, \
           person TEXT NOT NULL, \
           by_hand BOOLEAN NOT NULL, \
           terminate_sessions BOOLEAN NOT NULL, \
           ended BOOLEAN NOT NULL DEFAULT false, \
           held_over BOOLEAN NOT NULL DEFAULT false, \
           granted_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
           expires_at TIMESTAMPTZ NOT NULL); \
         CREATE INDEX IF NOT EXISTS role_grants_membership ON {t} (role_name, login); \
         COMMENT ON TABLE {t} IS 'elevate: one row per membership grant elevate made or found; do not edit'",
        schema = p.settings.schema.quoted(),
    );
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&mut *tx).await.map_err(|e| p.err(e))?;
    tx.commit().await.map_err(|e| p.err(e))?;
    info!(table = %t, "postgres-roles: bookkeeping table ready");
    Ok(())
}

/// Serialises every change to one (role, login) membership within this server.
async fn lock_membership(tx: &mut Transaction<'_, Postgres>, role: &str, login: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))")
        .bind(role)
        .bind(login)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}

/// Whether `login` is a direct member of `role` (false when either does not exist).
async fn is_member(tx: &mut Transaction<'_, Postgres>, role: &str, login: &str) -> Result<bool, sqlx::Error> {
    let (member,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
         JOIN pg_roles l ON l.oid = m.member WHERE r.rolname = $1 AND l.rolname = $2)",
    )
    .bind(role)
    .bind(login)
    .fetch_one(&mut **tx)
    .await?;
    Ok(member)
}

pub(crate) async fn grant(p: &PostgresRolesProvider, spec: &GrantSpec, m: &Membership) -> Result<Value, ProviderError> {
    let t = table(p);
    let e = |e| p.err(e);
    let mut tx = p.pool.begin().await.map_err(e)?;
    lock_membership(&mut tx, m.role.as_str(), m.login.as_str()).await.map_err(e)?;
    let mine: Option<(String, String, bool, bool)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT role_name, login, by_hand, ended FROM {t} WHERE grant_id = $1")))
            .bind(&spec.grant_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(e)?;
    let member = is_member(&mut tx, m.role.as_str(), m.login.as_str()).await.map_err(e)?;
    let by_hand = match mine {
        // Applied before (a retry after a timeout, or a refresh after an extension): keep what
        // it found, move the window.
        Some((role, login, by_hand, false)) if role == m.role.as_str() && login == m.login.as_str() && member => {
            by_hand
        }
        _ => {
            // Is the membership there because of elevate (a live row of elevate's that did not
            // find it there), or because someone granted it by hand?
            let (elevates,): (bool,) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {t} WHERE role_name = $1 AND login = $2 AND NOT by_hand AND NOT ended \
                 AND grant_id <> $3)"
            )))
            .bind(m.role.as_str())
            .bind(m.login.as_str())
            .bind(&spec.grant_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(e)?;
            if !member {
                // Role and login names come from validated, quoted identifiers; the server
                // refuses one that does not exist with its own message.
                let sql = format!("GRANT {} TO {}", m.role.quoted(), m.login.quoted());
                sqlx::query(AssertSqlSafe(sql)).persistent(false).execute(&mut *tx).await.map_err(e)?;
            }
            member && !elevates
        }
    };
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {t} (grant_id, role_name, login, elevate_role, person, by_hand, terminate_sessions, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, CAST($8 AS TIMESTAMPTZ)) ON CONFLICT (grant_id) DO UPDATE SET role_name = excluded.role_name, \
         login = excluded.login, elevate_role = excluded.elevate_role, person = excluded.person, \
         by_hand = excluded.by_hand, terminate_sessions = excluded.terminate_sessions, ended = false, held_over = false, \
         expires_at = excluded.expires_at"
    )))
    .bind(&spec.grant_id)
    .bind(m.role.as_str())
    .bind(m.login.as_str())
    .bind(spec.role.as_str())
    .bind(spec.person.as_str())
    .bind(by_hand)
    .bind(m.terminate_sessions)
    .bind(spec.expires_at.to_rfc3339())
    .execute(&mut *tx)
    .await
    .map_err(e)?;
    // A row kept only until a grant being applied had its own (see `revoke`): this is that
    // grant, or another that now holds the membership, so the row has done its work.
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM {t} WHERE role_name = $1 AND login = $2 AND held_over AND grant_id <> $3"
    )))
    .bind(m.role.as_str())
    .bind(m.login.as_str())
    .bind(&spec.grant_id)
    .execute(&mut *tx)
    .await
    .map_err(e)?;
    tx.commit().await.map_err(e)?;
    info!(grant = %spec.grant_id, role = %m.role, login = %m.login, by_hand, "postgres-roles grant applied");
    Ok(json!({ "role": m.role.as_str(), "login": m.login.as_str(), "by_hand": by_hand }))
}

pub(crate) async fn revoke(p: &PostgresRolesProvider, grant_id: &str, overlap: Overlap) -> Result<(), ProviderError> {
    let t = table(p);
    let e = |e| p.err(e);
    // Which membership, from elevate's own row: what was granted, whatever the policy says now.
    let row: Option<(String, String)> =
        match sqlx::query_as(AssertSqlSafe(format!("SELECT role_name, login FROM {t} WHERE grant_id = $1")))
            .bind(grant_id)
            .fetch_optional(&p.pool)
            .await
        {
            Ok(r) => r,
            Err(err) if is_undefined_table(&err) => None,
            Err(err) => return Err(e(err)),
        };
    // No row: elevate never applied this grant here (the row and the GRANT commit together),
    // or it was revoked already.
    let Some((role, login)) = row else {
        return Ok(());
    };
    let mut tx = p.pool.begin().await.map_err(e)?;
    lock_membership(&mut tx, &role, &login).await.map_err(e)?;
    let row: Option<(bool, bool, bool)> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT by_hand, terminate_sessions, ended FROM {t} WHERE grant_id = $1 FOR UPDATE"
    )))
    .bind(grant_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(e)?;
    let Some((by_hand, terminate, ended)) = row else {
        return Ok(()); // revoked by a concurrent run
    };
    let mut end_sessions = ended;
    if !ended {
        let (others,): (bool,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {t} WHERE role_name = $1 AND login = $2 AND grant_id <> $3 AND NOT ended \
             AND NOT held_over)"
        )))
        .bind(&role)
        .bind(&login)
        .bind(grant_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(e)?;
        let keep = by_hand || others || overlap.still_needed();
        if !by_hand && !others && overlap.still_needed() {
            // Needed by a grant elevate has no row of here yet (approved, its own grant call
            // still in flight). Should that grant never be applied, nothing would ever remove
            // the membership: so this row stays, marked, until that grant is applied (which
            // deletes it) or reconciliation finds nothing needs the membership and revokes it.
            // Other revokes do not count a held-over row as holding the membership.
            sqlx::query(AssertSqlSafe(format!("UPDATE {t} SET held_over = true WHERE grant_id = $1")))
                .bind(grant_id)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
            tx.commit().await.map_err(e)?;
            info!(grant = %grant_id, %role, %login, "postgres-roles revoke: membership kept for a grant being applied; the record stays for reconciliation");
            return Ok(());
        }
        if keep {
            info!(grant = %grant_id, %role, %login, by_hand, others, "postgres-roles revoke: membership kept for what else gives it");
        } else {
            let sql = format!(
                "REVOKE {} FROM {}",
                Ident::parse("role", &role).map_err(|m| ProviderError::permanent("InvalidTarget", m))?.quoted(),
                Ident::parse("login", &login).map_err(|m| ProviderError::permanent("InvalidLogin", m))?.quoted()
            );
            match sqlx::query(AssertSqlSafe(sql)).persistent(false).execute(&mut *tx).await {
                Ok(_) => {}
                // The role or login was dropped since: the membership went with it.
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42704") => {}
                Err(err) => return Err(e(err)),
            }
            info!(grant = %grant_id, %role, %login, "postgres-roles grant revoked");
            end_sessions = terminate;
        }
    }
    if end_sessions {
        // Keep the row, marked, until the sessions are ended: a failure here is retried with
        // the membership already gone.
        sqlx::query(AssertSqlSafe(format!("UPDATE {t} SET ended = true WHERE grant_id = $1")))
            .bind(grant_id)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        tx.commit().await.map_err(e)?;
        // After the commit, so that a session started meanwhile cannot use the membership.
        let (ended_n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity \
             WHERE usename = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&login)
        .fetch_one(&p.pool)
        .await
        .map_err(e)?;
        info!(grant = %grant_id, %login, sessions = ended_n, "postgres-roles: ended the login's sessions");
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = $1")))
            .bind(grant_id)
            .execute(&p.pool)
            .await
            .map_err(e)?;
        return Ok(());
    }
    sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = $1")))
        .bind(grant_id)
        .execute(&mut *tx)
        .await
        .map_err(e)?;
    tx.commit().await.map_err(e)?;
    Ok(())
}

/// How `list` describes a membership.
const WORDS: Words = Words {
    what: |role, login| format!("membership of `{role}` for login `{login}`"),
    holder: "login",
    sessions: "sessions",
};

pub(crate) async fn list(p: &PostgresRolesProvider) -> Result<Vec<ListedGrant>, ProviderError> {
    let t = table(p);
    let rows: Vec<GrantRow> = match sqlx::query_as(AssertSqlSafe(format!(
        "SELECT grant_id, role_name, login, elevate_role, person, by_hand, terminate_sessions, ended, held_over, \
         CAST(EXTRACT(EPOCH FROM granted_at) * 1000 AS BIGINT) AS granted_at, \
         CAST(EXTRACT(EPOCH FROM expires_at) * 1000 AS BIGINT) AS expires_at FROM {t} ORDER BY grant_id"
    )))
    .fetch_all(&p.pool)
    .await
    {
        Ok(rows) => rows,
        Err(err) if is_undefined_table(&err) => return Ok(Vec::new()),
        Err(err) => return Err(p.err(err)),
    };
    Ok(rows.into_iter().map(|r| r.listed(&p.settings.login_principal, &WORDS)).collect())
}
