//! Secrets: where a setting says one is (an environment variable, an entry of the
//! `ELEVATE_SECRETS_FILE` file standing in for the environment, or a file of its own), reading
//! it, and checking every secret the config names before anything is opened. A secret that is
//! missing, empty or clearly not what it should be (a placeholder, half a paste, a bot token
//! where the signing secret goes) is found when the server starts or `elevate check` runs, with
//! all the others, rather than at the first request that needs it.
//!
//! Messages name the config key and the variable or file, never the value, not even in part.

use crate::config::{Config, ProviderConfig};
use elevate_core::policy::ConfigError;
use serde::Deserialize;

/// The variable naming the `NAME=value` file that stands in for the environment.
pub const SECRETS_FILE_VAR: &str = "ELEVATE_SECRETS_FILE";

/// A secret's source: an environment variable or a file. Never the value itself.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
}

impl SecretRef {
    pub fn new(env: &Option<String>, file: &Option<String>) -> SecretRef {
        SecretRef { secret_env: env.clone(), secret_file: file.clone() }
    }

    /// Resolves the secret; the error names `path` and where the secret was looked for, never a
    /// value.
    pub fn resolve(&self, path: &str) -> Result<String, String> {
        if let Some(var) = &self.secret_env {
            return read_var(var).map_err(|e| format!("{path}: {e}"));
        }
        if let Some(file) = &self.secret_file {
            return read_file(file).map_err(|e| format!("{path}: {e}"));
        }
        Err(format!("{path}: no secret configured"))
    }
}

/// Reads a secret by name: the environment first, then the `ELEVATE_SECRETS_FILE` file
/// (`NAME=value` lines, `#` comments). None when it is not set anywhere or only blank.
pub fn lookup_secret(name: &str) -> Option<String> {
    read_var(name).ok()
}

/// A variable's value, or why there is none: not set, set but blank (saying where), or the
/// secrets file cannot be read.
fn read_var(name: &str) -> Result<String, String> {
    let env = std::env::var_os(name);
    if let Some(v) = env.as_ref().and_then(|v| v.to_str())
        && !v.trim().is_empty()
    {
        return Ok(v.to_string());
    }
    if env.as_ref().is_some_and(|v| v.to_str().is_none()) {
        return Err(format!("the environment variable `{name}` is not valid UTF-8"));
    }
    let from_file = match std::env::var(SECRETS_FILE_VAR) {
        Ok(path) => match std::fs::read_to_string(&path) {
            Ok(text) => secrets_file_entry(&text, name).map(|v| (path, v)),
            Err(e) => {
                return Err(format!(
                    "`{name}` is not set in the environment, and {SECRETS_FILE_VAR} ({path}) cannot be read: {e}"
                ));
            }
        },
        Err(_) => None,
    };
    match (env.is_some(), from_file) {
        (_, Some((_, v))) if !v.trim().is_empty() => Ok(v),
        (_, Some((path, _))) => Err(format!("`{name}` is empty in {SECRETS_FILE_VAR} ({path})")),
        (true, None) => Err(format!("the environment variable `{name}` is empty")),
        (false, None) => Err(match std::env::var(SECRETS_FILE_VAR) {
            Ok(path) => format!("`{name}` is not set in the environment or in {SECRETS_FILE_VAR} ({path})"),
            Err(_) => format!("`{name}` is not set in the environment (and {SECRETS_FILE_VAR} is not set)"),
        }),
    }
}

/// `NAME=value` in a secrets file: the value after the first `=`, trimmed, without quotes.
fn secrets_file_entry(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// A secret file's content, trimmed, or why there is none.
fn read_file(file: &str) -> Result<String, String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read `{file}`: {e}"))?;
    let text = String::from_utf8(text).map_err(|_| format!("`{file}` is not UTF-8 text"))?;
    if text.trim().is_empty() {
        return Err(format!("`{file}` is empty"));
    }
    Ok(text.trim().to_string())
}

/// What a secret is for, which decides what a plausible value looks like. The minimums catch
/// placeholders (`changeme`), half a paste and one secret put where another belongs; they do
/// not try to recognise every format a platform may issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Slack issues 32 characters; at least 20.
    SlackSigningSecret,
    /// `xoxb-…`; at least 15 characters.
    SlackBotToken,
    /// `xapp-…`; at least 15 characters.
    SlackAppToken,
    /// Discord issues about 70 characters; at least 20, and not prefixed with `Bot `.
    DiscordBotToken,
    /// 64 hex digits.
    DiscordPublicKey,
    /// The operator makes it: at least 32 characters (`openssl rand -hex 32` gives 64).
    WebhookSecret,
    /// An Ed25519 seed: 64 hex digits (`elevate audit keygen`).
    AuditSigningKey,
    /// elevate's own database: a SQLite path or a `postgres://` URL.
    DatabaseUrl,
    /// A `postgres://` URL.
    PostgresRolesUrl,
    /// A `mysql://` (or `mariadb://`) URL.
    MysqlRolesUrl,
    /// A service-account key or external account configuration: a JSON object.
    GcpCredentials,
    /// A PagerDuty REST API key: 20 characters.
    PagerDutyToken,
    /// An Opsgenie API integration key: a UUID.
    OpsgenieKey,
    /// A Jira API token or personal access token, or a generic ticket check's bearer token.
    TicketToken,
}

pub const WEBHOOK_SECRET_MIN: usize = 32;

impl SecretKind {
    /// What the value is called in messages.
    fn noun(self) -> &'static str {
        match self {
            SecretKind::SlackSigningSecret => "the Slack signing secret",
            SecretKind::SlackBotToken => "the Slack bot token",
            SecretKind::SlackAppToken => "the Slack app-level token",
            SecretKind::DiscordBotToken => "the Discord bot token",
            SecretKind::DiscordPublicKey => "the Discord public key",
            SecretKind::WebhookSecret => "the webhook signing secret",
            SecretKind::AuditSigningKey => "the audit signing key",
            SecretKind::DatabaseUrl => "the database URL",
            SecretKind::PostgresRolesUrl | SecretKind::MysqlRolesUrl => "the connection URL",
            SecretKind::GcpCredentials => "the Google credentials",
            SecretKind::PagerDutyToken => "the PagerDuty API key",
            SecretKind::OpsgenieKey => "the Opsgenie API key",
            SecretKind::TicketToken => "the ticket system token",
        }
    }

    /// Checks a value; the error describes the value's shape only, never its content.
    pub fn check(self, value: &str) -> Result<(), String> {
        let v = value.trim();
        let at_least = |n: usize, hint: &str| {
            if v.chars().count() < n { Err(format!("is shorter than {n} characters{hint}")) } else { Ok(()) }
        };
        let hex64 = || {
            if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(())
            } else {
                Err("is not 64 hex digits".to_string())
            }
        };
        let prefixed = |prefix: &str, what: &str| {
            if v.starts_with(prefix) {
                at_least(15, "; check that it was copied whole")
            } else {
                Err(format!("does not start with `{prefix}` ({what})"))
            }
        };
        match self {
            SecretKind::SlackSigningSecret => {
                at_least(20, " (Slack's are 32, under Basic Information → App Credentials)")
            }
            SecretKind::SlackBotToken => prefixed("xoxb-", "the Bot User OAuth Token, under OAuth & Permissions"),
            SecretKind::SlackAppToken => prefixed("xapp-", "an app-level token with connections:write"),
            SecretKind::DiscordBotToken if v.starts_with("Bot ") => {
                Err("starts with `Bot `: give the token alone, elevate adds the prefix".into())
            }
            SecretKind::DiscordBotToken => at_least(20, "; check that it was copied whole"),
            SecretKind::DiscordPublicKey => hex64(),
            SecretKind::WebhookSecret => at_least(WEBHOOK_SECRET_MIN, "; make one with `openssl rand -hex 32`"),
            SecretKind::AuditSigningKey => hex64().map_err(|e| format!("{e} (`elevate audit keygen` makes one)")),
            SecretKind::DatabaseUrl => elevate_sql::Dialect::parse(v).map(|_| ()),
            SecretKind::PostgresRolesUrl => match elevate_sql::Dialect::parse(v) {
                Ok(elevate_sql::Dialect::Postgres) => Ok(()),
                Ok(_) => Err("is not a postgres:// URL".into()),
                Err(e) => Err(e),
            },
            SecretKind::MysqlRolesUrl => {
                if v.starts_with("mysql://") || v.starts_with("mariadb://") {
                    Ok(())
                } else {
                    Err("is not a mysql:// URL".into())
                }
            }
            SecretKind::PagerDutyToken => at_least(20, " (PagerDuty's REST API keys are 20)"),
            SecretKind::OpsgenieKey => at_least(32, " (Opsgenie's API keys are UUIDs of 36)"),
            SecretKind::TicketToken => at_least(16, "; check that it was copied whole"),
            SecretKind::GcpCredentials => match serde_json::from_str::<serde_json::Value>(v) {
                Ok(serde_json::Value::Object(_)) => Ok(()),
                _ => Err("is not a JSON object (a service-account key or an external account file)".into()),
            },
        }
    }
}

/// One secret the config names: the key that names it, where it is, and what it is for.
#[derive(Debug, Clone)]
pub struct SecretUse {
    pub key: String,
    pub source: SecretRef,
    pub kind: SecretKind,
}

impl SecretUse {
    /// `prefix.name_env` or `prefix.name_file`, whichever is set; None when neither is.
    pub(crate) fn of(
        prefix: &str,
        name: &str,
        env: &Option<String>,
        file: &Option<String>,
        kind: SecretKind,
    ) -> Option<Self> {
        let suffix = match (env, file) {
            (Some(_), _) => "env",
            (None, Some(_)) => "file",
            (None, None) => return None,
        };
        Some(SecretUse { key: format!("{prefix}.{name}_{suffix}"), source: SecretRef::new(env, file), kind })
    }

    /// Reads and checks the secret; the error is what to tell the operator.
    pub fn check(&self) -> Result<(), ConfigError> {
        let (value, place) = match (&self.source.secret_env, &self.source.secret_file) {
            (Some(var), _) => (read_var(var), format!("`{var}`")),
            (None, Some(file)) => (read_file(file), format!("`{file}`")),
            (None, None) => return Ok(()),
        };
        let value = value.map_err(|e| ConfigError::new(&self.key, e))?;
        self.kind.check(&value).map_err(|e| ConfigError::new(&self.key, format!("{} in {place} {e}", self.kind.noun())))
    }
}

impl Config {
    /// Every secret this config names and will read when it starts.
    pub fn secret_uses(&self) -> Vec<SecretUse> {
        use SecretKind::*;
        let mut out = Vec::new();
        if let Some(s) = &self.slack {
            out.extend(SecretUse::of(
                "slack",
                "signing_secret",
                &s.signing_secret_env,
                &s.signing_secret_file,
                SlackSigningSecret,
            ));
            out.extend(SecretUse::of("slack", "bot_token", &s.bot_token_env, &s.bot_token_file, SlackBotToken));
            if s.socket_mode {
                out.extend(SecretUse::of("slack", "app_token", &s.app_token_env, &s.app_token_file, SlackAppToken));
            }
        }
        if let Some(d) = &self.discord {
            out.extend(SecretUse::of("discord", "public_key", &d.public_key_env, &None, DiscordPublicKey));
            out.extend(SecretUse::of("discord", "bot_token", &d.bot_token_env, &d.bot_token_file, DiscordBotToken));
        }
        for (name, p) in &self.providers {
            let prefix = format!("providers.{name}");
            match p {
                ProviderConfig::Webhook(w) => out.extend(SecretUse::of(
                    &prefix,
                    "secret",
                    &w.secret.secret_env,
                    &w.secret.secret_file,
                    WebhookSecret,
                )),
                ProviderConfig::Gcp(g) if g.auth_kind().needs_credentials() => out.extend(SecretUse::of(
                    &prefix,
                    "credentials",
                    &g.credentials_env,
                    &g.credentials_file,
                    GcpCredentials,
                )),
                ProviderConfig::PostgresRoles(c) => {
                    out.extend(SecretUse::of(&prefix, "url", &c.url_env, &c.url_file, PostgresRolesUrl))
                }
                ProviderConfig::MysqlRoles(c) => {
                    out.extend(SecretUse::of(&prefix, "url", &c.url_env, &c.url_file, MysqlRolesUrl))
                }
                ProviderConfig::DryRun | ProviderConfig::Aws(_) | ProviderConfig::Gcp(_) => {}
            }
        }
        out.extend(crate::oncall::secret_uses(&self.oncall));
        out.extend(crate::tickets::secret_uses(&self.tickets));
        let a = &self.audit;
        out.extend(SecretUse::of("audit", "signing_key", &a.signing_key_env, &a.signing_key_file, AuditSigningKey));
        if self.database.url.is_none() {
            out.extend(SecretUse::of("database", "url", &self.database.url_env, &None, DatabaseUrl));
        }
        out
    }

    /// Reads and checks every secret the config names; every problem, not only the first.
    pub fn check_secrets(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        if let Ok(path) = std::env::var(SECRETS_FILE_VAR)
            && let Err(e) = std::fs::read_to_string(&path)
        {
            errs.push(ConfigError::new(SECRETS_FILE_VAR, format!("cannot read `{path}`: {e}")));
        }
        errs.extend(self.secret_uses().iter().filter_map(|u| u.check().err()));
        errs
    }
}
