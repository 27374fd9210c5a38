//! The `mysql-roles` provider: a grant is a MariaDB/MySQL role granted to a person's account
//! (`GRANT role TO 'user'@'host'`), removed with `REVOKE`, on a server elevate reaches with its
//! own login (a connection URL from a secret, never logged).
//!
//! It keeps the design of `postgres-roles` (see the crate's documentation): a bookkeeping table
//! of elevate's on the target server (`{database}.role_grants`) says which grant holds which
//! membership, so `list` feeds reconciliation, overlapping grants share one membership that
//! goes with the last of them, and a membership the login held before elevate (`by_hand`) is
//! never revoked. What differs is that `GRANT` and `REVOKE` commit on their own in MariaDB and
//! MySQL, so the row and the membership cannot change in one transaction. Instead:
//! - every change to one membership runs under a named server lock (`GET_LOCK`) on it, held by
//!   the connection doing the work, so replicas and retries take turns;
//! - a grant writes its row *before* the `GRANT`, and a revoke deletes it *after* the
//!   `REVOKE`: whatever the crash, a membership of elevate's always has a row, and a row
//!   without its membership is mended by the retried call (grant again, or revoke what is
//!   already gone, which is success).
//!
//! Roles granted to an account are not active in a session until `SET ROLE` (or a default role,
//! or MySQL's `activate_all_roles_on_login`): the README says how people use them.

mod errors;
mod names;
mod roles;

pub use names::{Account, MysqlRole, MysqlTarget};

use crate::common;
use crate::errors::{Redactor, password_in};
use async_trait::async_trait;
use elevate_core::ports::{GrantProvider, GrantSpec, ListedGrant, Overlap, ProviderError};
use serde::Deserialize;
use serde_json::Value;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use std::{str::FromStr, time::Duration};

/// The principal key naming a person's account, unless the provider sets `login_principal`.
pub const DEFAULT_MYSQL_LOGIN_PRINCIPAL: &str = "mysql_login";

/// The `[providers.NAME]` table for `type = "mysql-roles"`. Holds no secret: the connection
/// URL (with elevate's password) comes from an environment variable or a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlRolesConfig {
    /// The bot's provider table carries `type`; accepted and ignored here.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The environment variable (or `ELEVATE_SECRETS_FILE` entry) holding the connection URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// A file holding the connection URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// The database (schema) of elevate's bookkeeping table; default `elevate`.
    #[serde(default)]
    pub database: Option<String>,
    /// The key in a person's principals that names their account; default `mysql_login`.
    #[serde(default)]
    pub login_principal: Option<String>,
    /// Connect and lock timeout; default `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct MysqlSettings {
    pub database: String,
    pub login_principal: String,
    pub timeout: Duration,
}

impl MysqlRolesConfig {
    /// Checks everything but the secret itself: one URL source, a database name, a timeout.
    pub fn settings(&self) -> Result<MysqlSettings, String> {
        common::check_url_source(&self.url_env, &self.url_file)?;
        let database = self.database.clone().unwrap_or_else(|| "elevate".into());
        if database.is_empty()
            || database.len() > 64
            || !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return Err(format!(
                "database `{database}`: use up to 64 letters, digits, `_` or `$` for elevate's bookkeeping database"
            ));
        }
        let login_principal = common::login_principal(&self.login_principal, DEFAULT_MYSQL_LOGIN_PRINCIPAL)?;
        let timeout = common::timeout(&self.timeout)?;
        Ok(MysqlSettings { database, login_principal, timeout })
    }
}

/// Which server: they keep role memberships in different tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    MariaDb,
    MySql,
}

/// The provider: a small pool of elevate's connections to one server.
pub struct MysqlRolesProvider {
    pool: MySqlPool,
    settings: MysqlSettings,
    redact: Redactor,
    /// Found on first use, with the bookkeeping table made sure of.
    ready: tokio::sync::OnceCell<Dialect>,
}

impl std::fmt::Debug for MysqlRolesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlRolesProvider").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl MysqlRolesProvider {
    /// Builds the provider; connects lazily, so an unreachable server shows up on the first
    /// grant as a transient error, not at start-up. The error never contains the URL.
    pub fn new(settings: MysqlSettings, url: &str) -> Result<MysqlRolesProvider, String> {
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|_| "the connection URL cannot be read; expected mysql://USER:PASSWORD@HOST:PORT/".to_string())?;
        let redact = Redactor::new(url, password_in(url).as_deref());
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(settings.timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(MysqlRolesProvider { pool, settings, redact, ready: tokio::sync::OnceCell::new() })
    }

    fn err(&self, e: sqlx::Error) -> ProviderError {
        errors::classify(e, &self.redact)
    }

    /// The membership a grant asks for, from its target and the person's principals.
    fn membership(&self, spec: &GrantSpec) -> Result<roles::Membership, ProviderError> {
        let target = MysqlTarget::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        let key = &self.settings.login_principal;
        let Some(login) = spec.principals.get(key) else {
            return Err(ProviderError::permanent(
                "NoLogin",
                format!("{} has no `{key}` principal (their database account) in the policy", spec.person),
            ));
        };
        let account = Account::parse(login).map_err(|e| ProviderError::permanent("InvalidLogin", e))?;
        Ok(roles::Membership { role: target.role, account, terminate_sessions: target.terminate_sessions })
    }

    async fn ready(&self) -> Result<Dialect, ProviderError> {
        self.ready.get_or_try_init(|| roles::ensure_table(self)).await.copied()
    }
}

#[async_trait]
impl GrantProvider for MysqlRolesProvider {
    fn kind(&self) -> &'static str {
        "mysql-roles"
    }

    fn validate_target(&self, target: &Value) -> Result<(), String> {
        MysqlTarget::parse(target).map(|_| ())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        let m = self.membership(spec)?;
        let dialect = self.ready().await?;
        roles::grant(self, dialect, spec, &m).await
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        let dialect = self.ready().await?;
        roles::revoke(self, dialect, &spec.grant_id, overlap).await
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        self.ready().await?;
        roles::list(self).await
    }
}
