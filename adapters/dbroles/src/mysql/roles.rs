//! The SQL of `mysql-roles`: elevate's bookkeeping table, and grant, revoke and list, each run
//! on one connection under a named lock on the membership (see the module above for why the
//! order of the row and the `GRANT`/`REVOKE` is what keeps them in step).

use super::errors::number;
use super::{Account, Dialect, MysqlRole, MysqlRolesProvider};
use crate::common::{GrantRow, Words};
use elevate_core::{
    ports::{GrantSpec, ListedGrant, Overlap, ProviderError},
    time::to_millis,
};
use serde_json::{Value, json};
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
use sqlx::{AssertSqlSafe, pool::PoolConnection};
use tracing::{info, warn};

/// What one grant gives: `role` to `account`.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub role: MysqlRole,
    pub account: Account,
    pub terminate_sessions: bool,
}

fn table(p: &MysqlRolesProvider) -> String {
    format!("`{}`.role_grants", p.settings.database)
}

/// Creates the database and table unless they exist (a DBA may create them beforehand and give
/// elevate only rights on them), and finds out which server this is.
pub(crate) async fn ensure_table(p: &MysqlRolesProvider) -> Result<Dialect, ProviderError> {
    let e = |e| p.err(e);
    let (version,): (String,) = sqlx::query_as("SELECT VERSION()").fetch_one(&p.pool).await.map_err(e)?;
    let dialect = if version.contains("MariaDB") { Dialect::MariaDb } else { Dialect::MySql };
    let t = table(p);
    let ddl = format!(
        "CREATE DATABASE IF NOT EXISTS `{db}`; \
         CREATE TABLE IF NOT EXISTS {t} (\
           grant_id VARCHAR(64) NOT NULL PRIMARY KEY, \
           role_name VARCHAR(128) NOT NULL, \
           login VARCHAR(340) NOT NULL, \
           elevate_role VARCHAR(128) NOT NULL, \
           person VARCHAR(128) NOT NULL, \
           by_hand BOOLEAN NOT NULL, \
           terminate_sessions BOOLEAN NOT NULL, \
           ended BOOLEAN NOT NULL DEFAULT FALSE, \
           held_over BOOLEAN NOT NULL DEFAULT FALSE, \
           granted_at BIGINT NOT NULL, \
           expires_at BIGINT NOT NULL, \
           KEY role_grants_membership (role_name, login)\
         ) ENGINE = InnoDB COMMENT = 'elevate: one row per role grant elevate made or found; do not edit'",
        db = p.settings.database,
    );
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(&p.pool).await.map_err(e)?;
    info!(table = %t, ?dialect, "mysql-roles: bookkeeping table ready");
    Ok(dialect)
}

/// Runs `body` on one connection holding the server's named lock on this membership, and
/// always lets the lock go: a connection whose release fails is closed, which releases it too.
async fn locked<T>(
    p: &MysqlRolesProvider,
    role: &str,
    login: &str,
    body: impl AsyncFnOnce(&mut MySqlConnection) -> Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    let e = |e| p.err(e);
    let mut conn: PoolConnection<sqlx::MySql> = p.pool.acquire().await.map_err(e)?;
    // The server hashes the name: lock names are limited to 64 characters.
    let name = format!("{role}\u{1f}{login}");
    let (got,): (Option<i64>,) = sqlx::query_as("SELECT GET_LOCK(CONCAT('elevate:', SHA1(?)), ?)")
        .bind(&name)
        .bind(p.settings.timeout.as_secs().max(1) as i64)
        .fetch_one(&mut *conn)
        .await
        .map_err(e)?;
    if got != Some(1) {
        return Err(ProviderError::transient(format!(
            "the membership of {role} for {login} is being changed by another elevate; will try again"
        )));
    }
    let out = body(&mut conn).await;
    let released =
        sqlx::query("SELECT RELEASE_LOCK(CONCAT('elevate:', SHA1(?)))").bind(&name).execute(&mut *conn).await;
    if released.is_err() {
        conn.close_on_drop();
    }
    out
}

/// Whether `account` holds `role` directly.
async fn is_member(c: &mut MySqlConnection, d: Dialect, role: &MysqlRole, a: &Account) -> Result<bool, sqlx::Error> {
    let sql = match d {
        Dialect::MariaDb => "SELECT COUNT(*) FROM mysql.roles_mapping WHERE Role = ? AND User = ? AND Host = ?",
        Dialect::MySql => {
            "SELECT COUNT(*) FROM mysql.role_edges WHERE FROM_USER = ? AND FROM_HOST = '%' AND TO_USER = ? AND TO_HOST = ?"
        }
    };
    let (n,): (i64,) = sqlx::query_as(sql).bind(role.as_str()).bind(&a.user).bind(&a.host).fetch_one(&mut *c).await?;
    Ok(n > 0)
}

fn error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db.try_downcast_ref::<MySqlDatabaseError>().map(MySqlDatabaseError::number),
        _ => None,
    }
}

pub(crate) async fn grant(
    p: &MysqlRolesProvider,
    d: Dialect,
    spec: &GrantSpec,
    m: &Membership,
) -> Result<Value, ProviderError> {
    let t = table(p);
    let login = m.account.to_string();
    let by_hand = locked(p, m.role.as_str(), &login, async |c| {
        let e = |e| p.err(e);
        let mine: Option<(String, String, bool, bool)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT role_name, login, by_hand, ended FROM {t} WHERE grant_id = ?"
        )))
        .bind(&spec.grant_id)
        .fetch_optional(&mut *c)
        .await
        .map_err(e)?;
        let member = is_member(c, d, &m.role, &m.account).await.map_err(e)?;
        let by_hand = match mine {
            // Applied before (a retry, or a refresh after an extension): keep what it found.
            Some((role, l, by_hand, false)) if role == m.role.as_str() && l == login && member => by_hand,
            _ => {
                // There because of elevate (a live row of elevate's that did not find it), or
                // granted by hand?
                let (elevates,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM {t} WHERE role_name = ? AND login = ? AND NOT by_hand AND NOT ended \
                     AND grant_id <> ?"
                )))
                .bind(m.role.as_str())
                .bind(&login)
                .bind(&spec.grant_id)
                .fetch_one(&mut *c)
                .await
                .map_err(e)?;
                member && elevates == 0
            }
        };
        // The row first: a membership of elevate's never exists without one.
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {t} (grant_id, role_name, login, elevate_role, person, by_hand, terminate_sessions, \
             granted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE \
             role_name = VALUES(role_name), login = VALUES(login), elevate_role = VALUES(elevate_role), \
             person = VALUES(person), by_hand = VALUES(by_hand), terminate_sessions = VALUES(terminate_sessions), \
             ended = FALSE, held_over = FALSE, expires_at = VALUES(expires_at)"
        )))
        .bind(&spec.grant_id)
        .bind(m.role.as_str())
        .bind(&login)
        .bind(spec.role.as_str())
        .bind(spec.person.as_str())
        .bind(by_hand)
        .bind(m.terminate_sessions)
        .bind(to_millis(spec.starts_at))
        .bind(to_millis(spec.expires_at))
        .execute(&mut *c)
        .await
        .map_err(e)?;
        if !member {
            let sql = format!("GRANT {} TO {}", m.role.sql(), m.account.sql());
            if let Err(err) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await {
                // Refused (no such role or account, not allowed): the row goes with the grant.
                let _ = sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = ?")))
                    .bind(&spec.grant_id)
                    .execute(&mut *c)
                    .await;
                return Err(e(err));
            }
        }
        // A row kept only until a grant being applied had its own (see `revoke`).
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {t} WHERE role_name = ? AND login = ? AND held_over AND grant_id <> ?"
        )))
        .bind(m.role.as_str())
        .bind(&login)
        .bind(&spec.grant_id)
        .execute(&mut *c)
        .await
        .map_err(e)?;
        Ok(by_hand)
    })
    .await?;
    info!(grant = %spec.grant_id, role = %m.role, account = %m.account, by_hand, "mysql-roles grant applied");
    Ok(json!({ "role": m.role.as_str(), "login": login, "by_hand": by_hand }))
}

pub(crate) async fn revoke(
    p: &MysqlRolesProvider,
    d: Dialect,
    grant_id: &str,
    overlap: Overlap,
) -> Result<(), ProviderError> {
    let t = table(p);
    let e = |e| p.err(e);
    let row: Option<(String, String)> =
        sqlx::query_as(AssertSqlSafe(format!("SELECT role_name, login FROM {t} WHERE grant_id = ?")))
            .bind(grant_id)
            .fetch_optional(&p.pool)
            .await
            .map_err(e)?;
    // No row: never applied here (the row comes before the GRANT), or revoked already.
    let Some((role, login)) = row else {
        return Ok(());
    };
    let role_name = MysqlRole::parse(&role).map_err(|m| ProviderError::permanent("InvalidTarget", m))?;
    let account = Account::parse(&login).map_err(|m| ProviderError::permanent("InvalidLogin", m))?;
    let end_sessions = locked(p, &role, &login, async |c| {
        let row: Option<(bool, bool, bool)> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT by_hand, terminate_sessions, ended FROM {t} WHERE grant_id = ?")))
                .bind(grant_id)
                .fetch_optional(&mut *c)
                .await
                .map_err(e)?;
        let Some((by_hand, terminate, ended)) = row else {
            return Ok(false); // revoked by a concurrent run
        };
        if ended {
            return Ok(true);
        }
        let (others,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {t} WHERE role_name = ? AND login = ? AND grant_id <> ? AND NOT ended AND NOT held_over"
        )))
        .bind(&role)
        .bind(&login)
        .bind(grant_id)
        .fetch_one(&mut *c)
        .await
        .map_err(e)?;
        let others = others > 0;
        if !by_hand && !others && overlap.still_needed() {
            // Needed by a grant that has no row here yet (approved, its grant call in flight):
            // the row stays, marked, until that grant is applied or reconciliation finds
            // nothing needs the membership (as in `postgres-roles`).
            sqlx::query(AssertSqlSafe(format!("UPDATE {t} SET held_over = TRUE WHERE grant_id = ?")))
                .bind(grant_id)
                .execute(&mut *c)
                .await
                .map_err(e)?;
            info!(grant = %grant_id, %role, %login, "mysql-roles revoke: role kept for a grant being applied");
            return Ok(false);
        }
        if by_hand || others || overlap.still_needed() {
            info!(grant = %grant_id, %role, %login, by_hand, others, "mysql-roles revoke: role kept for what else gives it");
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = ?")))
                .bind(grant_id)
                .execute(&mut *c)
                .await
                .map_err(e)?;
            return Ok(false);
        }
        if is_member(c, d, &role_name, &account).await.map_err(e)? {
            let sql = format!("REVOKE {} FROM {}", role_name.sql(), account.sql());
            match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *c).await {
                Ok(_) => {}
                // Gone meanwhile, or the role or account was dropped: so is the access.
                Err(err)
                    if matches!(error_number(&err), Some(number::CANNOT_REVOKE_ROLE | number::NONEXISTING_GRANT)) => {}
                Err(err) => return Err(e(err)),
            }
        }
        info!(grant = %grant_id, %role, %login, "mysql-roles grant revoked");
        if terminate {
            // The row stays, marked, until the connections are ended.
            sqlx::query(AssertSqlSafe(format!("UPDATE {t} SET ended = TRUE WHERE grant_id = ?")))
                .bind(grant_id)
                .execute(&mut *c)
                .await
                .map_err(e)?;
            return Ok(true);
        }
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = ?")))
            .bind(grant_id)
            .execute(&mut *c)
            .await
            .map_err(e)?;
        Ok(false)
    })
    .await?;
    if end_sessions {
        end_connections(p, &account).await?;
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {t} WHERE grant_id = ?")))
            .bind(grant_id)
            .execute(&p.pool)
            .await
            .map_err(e)?;
    }
    Ok(())
}

/// Ends every connection of the account's user name (the process list does not say which
/// account host a connection matched), after the role is gone so a new one cannot use it.
async fn end_connections(p: &MysqlRolesProvider, account: &Account) -> Result<(), ProviderError> {
    let e = |e| p.err(e);
    // `ID` is BIGINT, signed or not by server version: read as text, parsed.
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT CAST(ID AS CHAR) FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()",
    )
    .bind(&account.user)
    .fetch_all(&p.pool)
    .await
    .map_err(e)?;
    let mut ended = 0;
    for (id,) in ids {
        // An id is a number from the server: nothing of anyone's goes into this statement.
        let Ok(id) = id.parse::<u64>() else { continue };
        match sqlx::raw_sql(AssertSqlSafe(format!("KILL CONNECTION {id}"))).execute(&p.pool).await {
            Ok(_) => ended += 1,
            // Closed by itself meanwhile (1094: unknown thread id).
            Err(err) if error_number(&err) == Some(1094) => {}
            Err(err) => {
                warn!(%account, error = %p.err(err), "mysql-roles: could not end a connection; will try again");
                return Err(ProviderError::transient(format!("could not end the connections of {account}")));
            }
        }
    }
    info!(%account, connections = ended, "mysql-roles: ended the account's connections");
    Ok(())
}

/// How `list` describes a role grant.
const WORDS: Words = Words {
    what: |role, login| format!("role `{role}` for account `{login}`"),
    holder: "account",
    sessions: "connections",
};

pub(crate) async fn list(p: &MysqlRolesProvider) -> Result<Vec<ListedGrant>, ProviderError> {
    let t = table(p);
    let rows: Vec<GrantRow> = sqlx::query_as(AssertSqlSafe(format!(
        "SELECT grant_id, role_name, login, elevate_role, person, by_hand, terminate_sessions, ended, held_over, \
         granted_at, expires_at FROM {t} ORDER BY grant_id"
    )))
    .fetch_all(&p.pool)
    .await
    .map_err(|e| p.err(e))?;
    Ok(rows.into_iter().map(|r| r.listed(&p.settings.login_principal, &WORDS)).collect())
}
