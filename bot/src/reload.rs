//! Policy reload without a restart (SIGHUP, `elevate reload`, `POST /api/v1/admin/reload`): the
//! config file is read and checked again; an invalid one changes nothing and every problem is
//! reported; a valid one's policy is handed to core, which audits the reload (the config's
//! hash and what changed) and swaps it in for the next decision. Sections read only at start
//! (providers, chat platforms, the database, the listen address, secrets' locations) are
//! compared and named as needing a restart; a role may not name a provider this process did
//! not start.

use crate::config::{BOT_SECTIONS, Config};
use elevate_core::{
    CoreError, Service,
    policy::{Caller, ConfigError},
    service::PolicyDiff,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

/// What a successful reload did.
#[derive(Debug, Clone, Serialize)]
pub struct Reloaded {
    pub config_sha256: String,
    pub changes: PolicyDiff,
    /// Sections that differ from the running ones but are only read at start.
    pub needs_restart: Vec<String>,
}

#[derive(Debug)]
pub enum ReloadError {
    /// The new config is not valid (or cannot be read): the running policy stays.
    Invalid(Vec<ConfigError>),
    /// Core refused (not the security team) or could not record the reload.
    Refused(CoreError),
}

pub struct Reloader {
    path: Option<PathBuf>,
    /// The start-only sections as the process started with them.
    started: toml::Table,
    providers: BTreeSet<String>,
    service: Arc<Service>,
}

impl Reloader {
    /// `path` is the config file the process was started from (`None`: built from text, and
    /// then there is nothing to read again).
    pub fn new(path: Option<PathBuf>, providers: BTreeSet<String>, service: Arc<Service>) -> Reloader {
        let started =
            path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()).map(|t| start_only(&t)).unwrap_or_default();
        Reloader { path, started, providers, service }
    }

    pub async fn reload(&self, by: Option<&Caller>) -> Result<Reloaded, ReloadError> {
        let Some(path) = &self.path else {
            return Err(ReloadError::Invalid(vec![ConfigError::new(
                "config",
                "this server was not started from a config file, so there is nothing to read again",
            )]));
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ReloadError::Invalid(vec![ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))])
        })?;
        let config = Config::parse(&text).map_err(ReloadError::Invalid)?;
        let missing: Vec<ConfigError> = config
            .policy
            .roles
            .values()
            .filter(|r| !self.providers.contains(&r.provider))
            .map(|r| {
                ConfigError::new(
                    format!("roles.{}.provider", r.name),
                    format!(
                        "provider `{}` is not running: providers start with the process; restart elevate to add it",
                        r.provider
                    ),
                )
            })
            .collect();
        if !missing.is_empty() {
            return Err(ReloadError::Invalid(missing));
        }
        let now = start_only(&text);
        let needs_restart: Vec<String> =
            BOT_SECTIONS.iter().filter(|k| now.get(**k) != self.started.get(**k)).map(|k| k.to_string()).collect();
        let config_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
        let changes = self
            .service
            .reload(by, config.policy, &config_sha256, &needs_restart)
            .await
            .map_err(ReloadError::Refused)?;
        Ok(Reloaded { config_sha256, changes, needs_restart })
    }
}

/// The start-only sections of a config text.
fn start_only(text: &str) -> toml::Table {
    let mut t: toml::Table = toml::from_str(text).unwrap_or_default();
    t.retain(|k: &str, _| BOT_SECTIONS.contains(&k));
    t
}
