//! elevate-dbroles: `GrantProvider`s for database roles: PostgreSQL here, MariaDB and MySQL in
//! [`mysql`]. For PostgreSQL: A grant is membership of a database
//! role (`GRANT role TO login`), removed with `REVOKE role FROM login`, on a server elevate
//! reaches with its own login (a connection URL read from a secret, never logged: every error
//! message has the URL and password taken out).
//!
//! ## How elevate recognises its own memberships
//!
//! elevate keeps a table of its own, `{schema}.role_grants` (schema `elevate` by default), on
//! the target database, one row per grant id, written **in the same transaction** as the
//! `GRANT` or `REVOKE` (role membership is transactional in PostgreSQL), so the record and the
//! membership never disagree. The alternatives were weaker:
//! - the membership's grantor (`GRANTED BY`): before PostgreSQL 16 a role has one membership
//!   row per member, whoever granted it, so a hand-made grant and elevate's are the same row;
//!   and no grantor can say *which* of several overlapping elevate grants a membership serves;
//! - a `COMMENT`: it belongs to a role, not to a membership, and is shared by everyone.
//!
//! The row carries the grant id (so `list` feeds reconciliation), elevate's role and person (so
//! a drift revoke knows what else may still need the membership), and whether the membership
//! was already there when elevate first granted it (`by_hand`): elevate never revokes a
//! membership it did not create.
//!
//! ## Overlap
//!
//! Grants of the same role to the same login share one membership. A revoke deletes its own
//! row, and revokes the membership only if core says no other live grant needs it
//! ([`Overlap::Alone`]) *and* no other row of elevate's still holds it, under a transaction-level
//! advisory lock on (role, login) so that two revokes at once cannot each leave it to the other.
//! When core says another grant needs it but elevate has no row of that grant here yet (it is
//! approved, its grant call in flight), the row stays, marked `held_over`, until a grant of the
//! same membership is applied (which deletes it), or reconciliation removes the membership
//! should that grant never be applied; other revokes do not count a held-over row.
//!
//! ## Ending sessions
//!
//! Revoking a membership does not end a session that already switched to the role. With
//! `terminate_sessions = true` on a target, the revoke ends every session of the login
//! (`pg_terminate_backend` over `pg_stat_activity`) once the membership is gone; until that
//! succeeds the row stays (marked `ended`) and the revoke is retried.

mod common;
mod errors;
pub mod mysql;
mod roles;
pub mod target;

pub use target::{Ident, Target};

use async_trait::async_trait;
use elevate_core::ports::{GrantProvider, GrantSpec, ListedGrant, Overlap, ProviderError};
use errors::Redactor;
use serde::Deserialize;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::{str::FromStr, time::Duration};

/// The principal key naming a person's login, unless the provider sets `login_principal`.
pub const DEFAULT_LOGIN_PRINCIPAL: &str = "postgres_login";

/// The `[providers.NAME]` table for `type = "postgres-roles"`. Holds no secret: the connection
/// URL (with elevate's password) comes from an environment variable or a file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRolesConfig {
    /// The bot's provider table carries `type`; accepted and ignored here.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The environment variable (or `ELEVATE_SECRETS_FILE` entry) holding the connection URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// A file holding the connection URL.
    #[serde(default)]
    pub url_file: Option<String>,
    /// The schema of elevate's bookkeeping table on the target database; default `elevate`.
    #[serde(default)]
    pub schema: Option<String>,
    /// The key in a person's principals that names their login; default `postgres_login`.
    #[serde(default)]
    pub login_principal: Option<String>,
    /// Connect and statement timeout; default `10s`.
    #[serde(default)]
    pub timeout: Option<String>,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub schema: Ident,
    pub login_principal: String,
    pub timeout: Duration,
}

impl PostgresRolesConfig {
    /// Checks everything but the secret itself: one URL source, a valid schema name, a timeout.
    pub fn settings(&self) -> Result<Settings, String> {
        common::check_url_source(&self.url_env, &self.url_file)?;
        let schema = Ident::parse("schema", self.schema.as_deref().unwrap_or("elevate"))?;
        let login_principal = common::login_principal(&self.login_principal, DEFAULT_LOGIN_PRINCIPAL)?;
        let timeout = common::timeout(&self.timeout)?;
        Ok(Settings { schema, login_principal, timeout })
    }
}

/// The provider: a small pool of elevate's connections to one server.
pub struct PostgresRolesProvider {
    pool: PgPool,
    settings: Settings,
    redact: Redactor,
    /// Set once the bookkeeping table is known to exist.
    ready: tokio::sync::OnceCell<()>,
}

impl std::fmt::Debug for PostgresRolesProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRolesProvider").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl PostgresRolesProvider {
    /// Builds the provider; connects lazily, so an unreachable server shows up on the first
    /// grant as a transient error, not at start-up. The error never contains the URL.
    pub fn new(settings: Settings, url: &str) -> Result<PostgresRolesProvider, String> {
        let options = PgConnectOptions::from_str(url).map_err(|_| {
            "the connection URL cannot be read; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE".to_string()
        })?;
        let redact = Redactor::new(url, errors::password_in(url).as_deref());
        let ms = settings.timeout.as_millis().to_string();
        let options = options
            .application_name("elevate")
            .options([("statement_timeout", ms.as_str()), ("lock_timeout", ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(settings.timeout)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(PostgresRolesProvider { pool, settings, redact, ready: tokio::sync::OnceCell::new() })
    }

    fn err(&self, e: sqlx::Error) -> ProviderError {
        errors::classify(e, &self.redact)
    }

    /// The membership a grant asks for, from its target and the person's principals. (A revoke
    /// reads what was actually granted from elevate's own row instead.)
    fn membership(&self, spec: &GrantSpec) -> Result<roles::Membership, ProviderError> {
        let target = Target::parse(&spec.target).map_err(|e| ProviderError::permanent("InvalidTarget", e))?;
        let key = &self.settings.login_principal;
        let Some(login) = spec.principals.get(key) else {
            return Err(ProviderError::permanent(
                "NoLogin",
                format!("{} has no `{key}` principal (their database login) in the policy", spec.person),
            ));
        };
        let login = Ident::parse("login", login).map_err(|e| ProviderError::permanent("InvalidLogin", e))?;
        Ok(roles::Membership { role: target.role, login, terminate_sessions: target.terminate_sessions })
    }

    async fn ensure_ready(&self) -> Result<(), ProviderError> {
        self.ready.get_or_try_init(|| roles::ensure_table(self)).await.map(|_| ())
    }
}

#[async_trait]
impl GrantProvider for PostgresRolesProvider {
    fn kind(&self) -> &'static str {
        "postgres-roles"
    }

    fn validate_target(&self, target: &Value) -> Result<(), String> {
        Target::parse(target).map(|_| ())
    }

    async fn grant(&self, spec: &GrantSpec) -> Result<Value, ProviderError> {
        let m = self.membership(spec)?;
        self.ensure_ready().await?;
        roles::grant(self, spec, &m).await
    }

    async fn revoke(&self, spec: &GrantSpec, overlap: Overlap) -> Result<(), ProviderError> {
        roles::revoke(self, &spec.grant_id, overlap).await
    }

    async fn list(&self) -> Result<Vec<ListedGrant>, ProviderError> {
        roles::list(self).await
    }
}
