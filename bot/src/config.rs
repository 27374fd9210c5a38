//! The config file: bot sections (`[server]`, `[database]`, `[providers.*]`, `[scheduler]`,
//! `[oncall.*]` in `oncall.rs`, `[tickets.*]` in `tickets.rs`) read here, policy sections
//! (`[persons.*]`, `[services.*]`, `[groups.*]`, `[roles.*]`, `[tokens.*]`, `[security]`,
//! `[settings]`, `[rules.*]`) read by core. Unknown keys anywhere are errors, and every error
//! is reported with its key path.
//!
//! Secrets never live in this file: a setting names an environment variable (`secret_env`) or a
//! file (`secret_file`); `ELEVATE_SECRETS_FILE` may point at a `NAME=value` file that stands in
//! for the environment. Reading and checking them is `secrets.rs`: parsing a file never reads a
//! secret, so `elevate check --skip-secrets` can check a file anywhere.

use elevate_core::{
    GrantDuration, Policy,
    policy::{ConfigError, POLICY_SECTIONS, deserialize_at as de, parse_policy},
};
use serde::Deserialize;
use std::{collections::BTreeMap, net::SocketAddr, path::Path, str::FromStr};

pub use crate::secrets::{SecretRef, lookup_secret};

/// Everything `elevate serve` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub scheduler: SchedulerConfig,
    /// `[slack]`: absent means no Slack.
    pub slack: Option<SlackConfig>,
    /// `[discord]`: absent means no Discord.
    pub discord: Option<DiscordConfig>,
    pub audit: AuditConfig,
    /// `[oncall.*]`: services on-call rules ask.
    pub oncall: crate::oncall::OnCallConfigs,
    /// `[tickets.*]`: systems ticket rules check tickets against.
    pub tickets: crate::tickets::TicketConfigs,
    pub policy: Policy,
}

/// `[slack]`: the workspace this installation serves and where its secrets are. HTTP mode needs
/// the signing secret; Socket Mode (`socket_mode = true`) needs the app token instead.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The workspace id (`T…`); payloads from any other workspace are refused.
    pub team_id: String,
    pub signing_secret_env: Option<String>,
    pub signing_secret_file: Option<String>,
    pub bot_token_env: Option<String>,
    pub bot_token_file: Option<String>,
    /// Channel id (`C…`) for one line per audit event.
    pub audit_channel: Option<String>,
    #[serde(default)]
    pub socket_mode: bool,
    pub app_token_env: Option<String>,
    pub app_token_file: Option<String>,
    /// The Web API base; only tests change it.
    #[serde(default = "default_slack_api")]
    pub api_url: String,
    /// How long the members of a Slack user group (`slack_usergroup`) are trusted once read:
    /// someone removed from the group stops acting for it within this long. Default `1m`.
    pub usergroup_cache: Option<String>,
}

fn default_slack_api() -> String {
    "https://slack.com/api".into()
}

impl SlackConfig {
    fn check(&self, errs: &mut Vec<ConfigError>) {
        let pairs = [
            ("signing_secret", &self.signing_secret_env, &self.signing_secret_file, !self.socket_mode),
            ("bot_token", &self.bot_token_env, &self.bot_token_file, true),
            ("app_token", &self.app_token_env, &self.app_token_file, self.socket_mode),
        ];
        for (name, env, file, needed) in pairs {
            match (env, file) {
                (Some(_), Some(_)) => errs.push(ConfigError::new(
                    format!("slack.{name}_env"),
                    format!("set either {name}_env or {name}_file, not both"),
                )),
                (None, None) if needed => errs.push(ConfigError::new(
                    format!("slack.{name}_env"),
                    format!("missing: set {name}_env (an environment variable) or {name}_file"),
                )),
                _ => {}
            }
        }
        if let Err(e) = self.usergroup_cache() {
            errs.push(ConfigError::new("slack.usergroup_cache", e));
        }
        if !self.team_id.starts_with(['T', 'E']) {
            errs.push(ConfigError::new(
                "slack.team_id",
                format!("`{}` is not a Slack workspace id (like T0123ABCD)", self.team_id),
            ));
        }
    }

    fn usergroup_cache(&self) -> Result<std::time::Duration, String> {
        let Some(text) = &self.usergroup_cache else { return Ok(std::time::Duration::from_secs(60)) };
        let d = elevate_core::GrantDuration::parse(text)?;
        if d.as_chrono() > chrono::Duration::hours(1) {
            return Err(format!("`{text}` is too long: at most 1h, or removed members keep acting for it"));
        }
        Ok(std::time::Duration::from_secs(d.as_chrono().num_seconds() as u64))
    }

    /// Resolves the secrets for the Slack adapter; errors name where a secret was looked for.
    pub fn settings(&self) -> Result<elevate_slack::SlackSettings, String> {
        let resolve = |name: &str, env: &Option<String>, file: &Option<String>| {
            if env.is_none() && file.is_none() {
                return Ok(None);
            }
            SecretRef::new(env, file).resolve(&format!("slack.{name}")).map(Some)
        };
        Ok(elevate_slack::SlackSettings {
            team_id: self.team_id.clone(),
            signing_secret: resolve("signing_secret", &self.signing_secret_env, &self.signing_secret_file)?,
            bot_token: resolve("bot_token", &self.bot_token_env, &self.bot_token_file)?
                .ok_or("slack.bot_token_env: no bot token configured")?,
            audit_channel: self.audit_channel.clone(),
            app_token: if self.socket_mode {
                resolve("app_token", &self.app_token_env, &self.app_token_file)?
            } else {
                None
            },
            api_url: self.api_url.clone(),
            usergroup_cache: self.usergroup_cache()?,
        })
    }
}

/// `[discord]`: the application, the server it serves and where its bot token is. The public
/// key verifies interactions; it is not a secret, so it may sit in the file (`public_key`) or
/// come from the environment (`public_key_env`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The application (client) id from the Developer Portal.
    pub application_id: String,
    pub public_key: Option<String>,
    pub public_key_env: Option<String>,
    pub bot_token_env: Option<String>,
    pub bot_token_file: Option<String>,
    /// The server (guild) id; interactions from any other server are refused.
    pub guild_id: String,
    /// Register `/elevate` for every server the bot is in instead of `guild_id` only.
    #[serde(default)]
    pub global_commands: bool,
    /// Channel id for one line per audit event.
    pub audit_channel: Option<String>,
    /// Send REST calls here instead of `https://discord.com`; only tests change it.
    pub api_url: Option<String>,
}

fn is_snowflake(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok_and(|n| n > 0)
}

impl DiscordConfig {
    fn check(&self, errs: &mut Vec<ConfigError>) {
        for (key, value) in [("application_id", &self.application_id), ("guild_id", &self.guild_id)] {
            if !is_snowflake(value) {
                errs.push(ConfigError::new(
                    format!("discord.{key}"),
                    format!("`{value}` is not a Discord id (a number like 1234567890123456789)"),
                ));
            }
        }
        if let Some(c) = &self.audit_channel
            && !is_snowflake(c)
        {
            errs.push(ConfigError::new("discord.audit_channel", format!("`{c}` is not a Discord channel id")));
        }
        match (&self.public_key, &self.public_key_env) {
            (Some(_), Some(_)) => {
                errs.push(ConfigError::new("discord.public_key", "set either public_key or public_key_env, not both"))
            }
            (None, None) => errs.push(ConfigError::new(
                "discord.public_key",
                "missing: the application's public key (64 hex digits), or public_key_env naming a variable",
            )),
            (Some(k), None) if !(k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())) => {
                errs.push(ConfigError::new("discord.public_key", "expected 64 hex digits"))
            }
            _ => {}
        }
        match (&self.bot_token_env, &self.bot_token_file) {
            (Some(_), Some(_)) => errs.push(ConfigError::new(
                "discord.bot_token_env",
                "set either bot_token_env or bot_token_file, not both",
            )),
            (None, None) => errs.push(ConfigError::new(
                "discord.bot_token_env",
                "missing: set bot_token_env (an environment variable) or bot_token_file",
            )),
            _ => {}
        }
    }

    /// Resolves the token (and the key, when it comes from the environment) for the adapter;
    /// errors name where a value was looked for.
    pub fn settings(&self) -> Result<elevate_discord::DiscordSettings, String> {
        let public_key = match (&self.public_key, &self.public_key_env) {
            (Some(k), _) => k.clone(),
            (None, env) => SecretRef { secret_env: env.clone(), secret_file: None }.resolve("discord.public_key")?,
        };
        let bot_token = SecretRef { secret_env: self.bot_token_env.clone(), secret_file: self.bot_token_file.clone() }
            .resolve("discord.bot_token")?;
        Ok(elevate_discord::DiscordSettings {
            application_id: self.application_id.parse().map_err(|_| "discord.application_id: not a Discord id")?,
            public_key: public_key.trim().to_string(),
            bot_token,
            guild_id: self.guild_id.parse().map_err(|_| "discord.guild_id: not a Discord id")?,
            global_commands: self.global_commands,
            audit_channel: self.audit_channel.clone(),
            api_url: self.api_url.clone(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: default_listen() }
    }
}

/// Where the data lives. `url` is a SQLite file path (or `sqlite://path`) or a `postgres://`
/// URL; a URL with a password belongs in the environment (`url_env`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Option<String>,
    pub url_env: Option<String>,
}

/// One configured provider.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    /// Applies nothing; records what it would do. The quickstart's provider.
    DryRun,
    Webhook(WebhookSettings),
    /// AWS IAM and Identity Center; keys from `ELEVATE_SECRETS_FILE` or the standard AWS
    /// credential chain (environment, profiles/SSO, web identity, container, IMDSv2),
    /// optionally an assumed role.
    Aws(Box<elevate_aws::AwsConfig>),
    /// Google Cloud IAM conditional role bindings and Cloud Identity group memberships; a
    /// service-account key or external account JSON from `credentials_env`/`credentials_file`,
    /// or the metadata server.
    Gcp(Box<elevate_gcp::GcpConfig>),
    /// PostgreSQL role membership; the connection URL from `url_env` or `url_file`.
    PostgresRoles(Box<elevate_dbroles::PostgresRolesConfig>),
    /// MariaDB/MySQL roles granted to accounts; the connection URL from `url_env` or `url_file`.
    MysqlRoles(Box<elevate_dbroles::mysql::MysqlRolesConfig>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    #[serde(flatten)]
    pub secret: SecretRef,
    #[serde(default = "default_timeout")]
    pub timeout: GrantDuration,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_timeout() -> GrantDuration {
    GrantDuration::from_secs(10).expect("constant")
}
fn default_retries() -> u32 {
    2
}

impl ProviderConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderConfig::DryRun => "dry-run",
            ProviderConfig::Webhook(_) => "webhook",
            ProviderConfig::Aws(_) => "aws",
            ProviderConfig::Gcp(_) => "gcp",
            ProviderConfig::PostgresRoles(_) => "postgres-roles",
            ProviderConfig::MysqlRoles(_) => "mysql-roles",
        }
    }
}

/// Timings of the scheduler and its periodic jobs. Cron expressions have six fields, seconds
/// first (`sec min hour day-of-month month day-of-week`), as the `cron` crate reads them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(default = "default_reconcile")]
    pub reconcile: String,
    #[serde(default = "default_checkpoint")]
    pub audit_checkpoint: String,
    /// When to post the usage report to the audit feed, and the period it covers.
    #[serde(default = "default_report")]
    pub report: String,
    #[serde(default = "default_report_period")]
    pub report_period: GrantDuration,
    /// When to look at the tickets of grants that end with their ticket
    /// (`end_when_closed`): every 5 minutes by default.
    #[serde(default = "default_ticket_watch")]
    pub ticket_watch: String,
    /// How long a claimed item is reserved before another replica may run it. Renewed every
    /// third of it while the item runs, so it bounds how long the work of a replica that died
    /// waits, not how long a provider call may take.
    #[serde(default = "default_lease")]
    pub lease: GrantDuration,
    /// On SIGTERM, how long the items already running may take to finish before their leases
    /// are released to other replicas and the process exits.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: GrantDuration,
    /// Provider calls in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Longest the scheduler sleeps without looking at the database. It wakes sooner for its
    /// own new work and (PostgreSQL) when another replica signals new work, so this only
    /// bounds how late work is found when such a signal was lost.
    #[serde(default = "default_poll")]
    pub poll: GrantDuration,
    /// Whether this replica runs due work and periodic jobs. `false` makes a replica that only
    /// serves the API and chat; another replica on the same database must run the work.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Filled from `[audit]` when the app starts: the seed that signs checkpoints.
    #[serde(skip)]
    pub checkpoint_seed: Option<[u8; 32]>,
    /// Filled from `[audit]` when the app starts: where checkpoints are anchored.
    #[serde(skip)]
    pub anchors: crate::anchor::AnchorSinks,
}

fn default_reconcile() -> String {
    "0 */10 * * * *".into()
}
fn default_checkpoint() -> String {
    "0 0 * * * *".into()
}
fn default_ticket_watch() -> String {
    "0 */5 * * * *".into()
}
fn default_report() -> String {
    "0 0 9 * * Mon".into()
}
fn default_report_period() -> GrantDuration {
    GrantDuration::from_secs(7 * 86_400).expect("constant")
}
fn default_lease() -> GrantDuration {
    GrantDuration::from_secs(30).expect("constant")
}
fn default_drain_timeout() -> GrantDuration {
    GrantDuration::from_secs(25).expect("constant")
}
/// The shortest lease: it is renewed every third of it, and a beat must not come round faster
/// than a database round trip under load.
pub const MIN_LEASE_SECS: i64 = 3;
/// The longest drain: a shutdown that waits longer is one an orchestrator kills anyway.
pub const MAX_DRAIN_SECS: i64 = 600;
/// Due items in flight at once. Most of an item's time is the provider call, so this is what
/// bounds recovery after an outage: 10,000 overdue revokes at 20 ms a call take about 3 s at 64
/// (12 s at 16). Providers that throttle (AWS IAM) answer 429/Throttling, which is retried with
/// backoff; lower it for them if the retries show up in the audit log.
fn default_concurrency() -> usize {
    64
}
fn default_poll() -> GrantDuration {
    GrantDuration::from_secs(5).expect("constant")
}
fn default_enabled() -> bool {
    true
}

impl SchedulerConfig {
    pub fn lease_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease.secs() as u64)
    }

    pub fn drain_duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.drain_timeout.secs() as u64)
    }
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            reconcile: default_reconcile(),
            audit_checkpoint: default_checkpoint(),
            report: default_report(),
            ticket_watch: default_ticket_watch(),
            report_period: default_report_period(),
            lease: default_lease(),
            drain_timeout: default_drain_timeout(),
            concurrency: default_concurrency(),
            poll: default_poll(),
            enabled: default_enabled(),
            checkpoint_seed: None,
            anchors: Default::default(),
        }
    }
}

impl SchedulerConfig {
    /// `(name, schedule)` of each periodic job.
    pub fn jobs(&self) -> Vec<(&'static str, cron::Schedule)> {
        [
            ("reconcile", &self.reconcile),
            ("audit_checkpoint", &self.audit_checkpoint),
            ("report", &self.report),
            ("ticket_watch", &self.ticket_watch),
        ]
        .into_iter()
        .filter_map(|(n, e)| Some((n, cron::Schedule::from_str(e).ok()?)))
        .collect()
    }
}

/// `[audit]`: the key that signs checkpoints (an Ed25519 seed, 64 hex digits, from the
/// environment or a file) and the public key `elevate audit verify` checks them against.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub signing_key_env: Option<String>,
    pub signing_key_file: Option<String>,
    pub public_key: Option<String>,
    /// A file each checkpoint is appended to as an anchor line (see `anchor.rs`): keep it
    /// where database admins cannot write, or ship it off the host.
    pub anchor_file: Option<String>,
    /// Print each checkpoint's anchor line on stdout too, for a log shipper.
    #[serde(default)]
    pub anchor_stdout: bool,
}

impl AuditConfig {
    /// Where checkpoints are anchored.
    pub fn anchors(&self) -> crate::anchor::AnchorSinks {
        crate::anchor::AnchorSinks { file: self.anchor_file.as_ref().map(Into::into), stdout: self.anchor_stdout }
    }
}

impl AuditConfig {
    /// The signing seed, when one is configured; an error names a configured but missing or
    /// malformed key (never its value).
    pub fn seed(&self) -> Result<Option<[u8; 32]>, String> {
        let r = SecretRef { secret_env: self.signing_key_env.clone(), secret_file: self.signing_key_file.clone() };
        if r.secret_env.is_none() && r.secret_file.is_none() {
            return Ok(None);
        }
        let text = r.resolve("audit.signing_key")?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| "audit.signing_key: not hex (`elevate audit keygen` makes one)".to_string())?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(Some)
            .map_err(|_| "audit.signing_key: must be 32 bytes (64 hex digits)".to_string())
    }
}

/// Sections read once at start: a change to them needs a restart (a reload says so).
pub const BOT_SECTIONS: &[&str] =
    &["server", "database", "providers", "scheduler", "slack", "discord", "audit", "oncall", "tickets"];

impl Config {
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigError>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))])?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        let root: toml::Table = toml::from_str(text).map_err(|e| {
            let at =
                e.span().map(|s| line_of(text, s.start)).map(|l| format!("line {l}")).unwrap_or_else(|| "file".into());
            vec![ConfigError::new(at, e.message().to_string())]
        })?;
        let mut errs = Vec::new();
        for key in root.keys() {
            if !BOT_SECTIONS.contains(&key.as_str()) && !POLICY_SECTIONS.contains(&key.as_str()) {
                errs.push(ConfigError::new(
                    key,
                    format!("unknown section (known: {})", [BOT_SECTIONS, POLICY_SECTIONS].concat().join(", ")),
                ));
            }
        }
        let server = root.get("server").and_then(|v| de::<ServerConfig>("server", v, &mut errs)).unwrap_or_default();
        if server.listen.parse::<SocketAddr>().is_err() {
            errs.push(ConfigError::new(
                "server.listen",
                format!("`{}` is not an address like 127.0.0.1:8080", server.listen),
            ));
        }
        let database =
            root.get("database").and_then(|v| de::<DatabaseConfig>("database", v, &mut errs)).unwrap_or_default();
        if database.url.is_some() && database.url_env.is_some() {
            errs.push(ConfigError::new("database", "set either url or url_env, not both"));
        }
        if let Some(u) = &database.url
            && let Err(e) = elevate_sql::Dialect::parse(u)
        {
            errs.push(ConfigError::new("database.url", e));
        }
        if let Some(u) = &database.url
            && u.contains('@')
            && u.starts_with("postgres")
        {
            errs.push(ConfigError::new(
                "database.url",
                "looks like it holds a password; put the URL in an environment variable and name it in url_env",
            ));
        }
        let audit = root.get("audit").and_then(|v| de::<AuditConfig>("audit", v, &mut errs)).unwrap_or_default();
        if audit.anchor_file.as_ref().is_some_and(|f| f.trim().is_empty()) {
            errs.push(ConfigError::new("audit.anchor_file", "is empty: a file path, or leave it out"));
        }
        if let Some(pk) = &audit.public_key
            && (pk.len() != 64 || hex::decode(pk).is_err())
        {
            errs.push(ConfigError::new(
                "audit.public_key",
                "must be 64 hex digits (`elevate audit keygen` prints one)",
            ));
        }
        let scheduler =
            root.get("scheduler").and_then(|v| de::<SchedulerConfig>("scheduler", v, &mut errs)).unwrap_or_default();
        for (key, expr) in [
            ("scheduler.reconcile", &scheduler.reconcile),
            ("scheduler.audit_checkpoint", &scheduler.audit_checkpoint),
            ("scheduler.report", &scheduler.report),
            ("scheduler.ticket_watch", &scheduler.ticket_watch),
        ] {
            if let Err(e) = cron::Schedule::from_str(expr) {
                errs.push(ConfigError::new(
                    key,
                    format!("`{expr}` is not a cron expression (sec min hour dom month dow): {e}"),
                ));
            }
        }
        if scheduler.concurrency == 0 {
            errs.push(ConfigError::new("scheduler.concurrency", "must be at least 1"));
        }
        if scheduler.lease.secs() < MIN_LEASE_SECS {
            errs.push(ConfigError::new(
                "scheduler.lease",
                format!("must be at least {MIN_LEASE_SECS}s (it is renewed every third of it while an item runs)"),
            ));
        }
        if scheduler.drain_timeout.secs() > MAX_DRAIN_SECS {
            errs.push(ConfigError::new(
                "scheduler.drain_timeout",
                format!(
                    "must be at most {}m: longer than that, the orchestrator kills the process anyway",
                    MAX_DRAIN_SECS / 60
                ),
            ));
        }
        let slack = root.get("slack").and_then(|v| de::<SlackConfig>("slack", v, &mut errs));
        if let Some(s) = &slack {
            s.check(&mut errs);
        }
        let discord = root.get("discord").and_then(|v| de::<DiscordConfig>("discord", v, &mut errs));
        if let Some(d) = &discord {
            d.check(&mut errs);
        }
        let oncall = crate::oncall::parse(&root, &mut errs);
        let tickets = crate::tickets::parse(&root, &mut errs);
        let providers = parse_providers(&root, &mut errs);
        let names: Vec<String> = providers.keys().cloned().collect();
        let policy = match parse_policy(&root, &names) {
            Ok(p) => Some(p),
            Err(mut e) => {
                errs.append(&mut e);
                None
            }
        };
        if let Some(policy) = &policy {
            crate::oncall::check_rules(&oncall, policy, &mut errs);
            crate::tickets::check_rules(&tickets, policy, &mut errs);
            for role in policy.roles.values() {
                if let Some(p) = providers.get(&role.provider)
                    && let Err(e) = crate::providers::validate_target(p, &role.target)
                {
                    errs.push(ConfigError::new(format!("roles.{}.target", role.name), e));
                }
            }
        }
        match (errs.is_empty(), policy) {
            (true, Some(policy)) => {
                Ok(Config { server, database, providers, scheduler, slack, discord, audit, oncall, tickets, policy })
            }
            _ => Err(errs),
        }
    }

    pub fn listen(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated at load")
    }

    /// The database URL, from the file or the environment.
    pub fn database_url(&self) -> Result<String, String> {
        match (&self.database.url, &self.database.url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(var)) => SecretRef::new(&Some(var.clone()), &None).resolve("database.url_env"),
            (None, None) => Ok("elevate.db".into()),
        }
    }
}

fn parse_providers(root: &toml::Table, errs: &mut Vec<ConfigError>) -> BTreeMap<String, ProviderConfig> {
    let mut out = BTreeMap::new();
    let Some(v) = root.get("providers") else {
        return out;
    };
    let Some(table) = v.as_table() else {
        errs.push(ConfigError::new("providers", "must be a table of named providers"));
        return out;
    };
    for (name, v) in table {
        let path = format!("providers.{name}");
        let Some(t) = v.as_table() else {
            errs.push(ConfigError::new(&path, "must be a table"));
            continue;
        };
        let mut rest = t.clone();
        let kind = rest.remove("type").and_then(|k| k.as_str().map(String::from));
        let rest = toml::Value::Table(rest);
        match kind.as_deref() {
            Some("dry-run") => {
                if rest.as_table().is_some_and(|t| !t.is_empty()) {
                    errs.push(ConfigError::new(&path, "a dry-run provider takes no settings"));
                }
                out.insert(name.clone(), ProviderConfig::DryRun);
            }
            Some("webhook") => {
                if let Some(w) = de::<WebhookSettings>(&path, &rest, errs) {
                    if w.secret.secret_env.is_none() && w.secret.secret_file.is_none() {
                        errs.push(ConfigError::new(
                            format!("{path}.secret_env"),
                            "a webhook needs a signing secret: set secret_env or secret_file",
                        ));
                    }
                    out.insert(name.clone(), ProviderConfig::Webhook(w));
                }
            }
            Some("aws") => {
                if let Some(a) = de::<elevate_aws::AwsConfig>(&path, &rest, errs) {
                    out.insert(name.clone(), ProviderConfig::Aws(Box::new(a)));
                }
            }
            Some("gcp") => {
                if let Some(g) = de::<elevate_gcp::GcpConfig>(&path, &rest, errs) {
                    match g.check() {
                        Ok(()) => {
                            out.insert(name.clone(), ProviderConfig::Gcp(Box::new(g)));
                        }
                        Err(e) => errs.push(ConfigError::new(&path, e)),
                    }
                }
            }
            Some("postgres-roles") => {
                if let Some(c) = de::<elevate_dbroles::PostgresRolesConfig>(&path, &rest, errs) {
                    match c.settings() {
                        Ok(_) => {
                            out.insert(name.clone(), ProviderConfig::PostgresRoles(Box::new(c)));
                        }
                        Err(e) => errs.push(ConfigError::new(&path, e)),
                    }
                }
            }
            Some("mysql-roles") => {
                if let Some(c) = de::<elevate_dbroles::mysql::MysqlRolesConfig>(&path, &rest, errs) {
                    match c.settings() {
                        Ok(_) => {
                            out.insert(name.clone(), ProviderConfig::MysqlRoles(Box::new(c)));
                        }
                        Err(e) => errs.push(ConfigError::new(&path, e)),
                    }
                }
            }
            Some(other) => errs.push(ConfigError::new(
                format!("{path}.type"),
                format!(
                    "unknown provider type `{other}` (known: dry-run, webhook, aws, gcp, postgres-roles, mysql-roles)"
                ),
            )),
            None => errs.push(ConfigError::new(
                format!("{path}.type"),
                "missing (dry-run, webhook, aws, gcp, postgres-roles or mysql-roles)",
            )),
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aws_example_config_is_valid() {
        let text = include_str!("../../examples/aws.toml");
        let cfg = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(cfg.providers.values().any(|p| p.kind() == "aws"));
    }

    #[test]
    fn the_gcp_example_config_is_valid_and_a_gcp_table_is_checked() {
        let text = include_str!("../../examples/gcp.toml");
        let cfg = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(cfg.providers.values().any(|p| p.kind() == "gcp"));
        let bad = text.replace("credentials_env = \"ELEVATE_GCP_KEY\"", "");
        let errs = Config::parse(&bad).unwrap_err();
        assert!(errs.iter().any(|e| e.to_string().contains("credentials_env or credentials_file")), "{errs:?}");
        let bad = text.replace("resource = \"projects/prod-app-1\"", "resource = \"prod-app-1\"");
        let errs = Config::parse(&bad).unwrap_err();
        assert!(errs.iter().any(|e| e.to_string().contains("resource `prod-app-1`")), "{errs:?}");
    }

    #[test]
    fn the_postgres_roles_example_config_is_valid() {
        let text = include_str!("../../examples/postgres-roles.toml");
        let cfg = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(cfg.providers.values().any(|p| p.kind() == "postgres-roles"));
    }

    #[test]
    fn postgres_roles_settings_and_targets_are_checked() {
        let base = include_str!("../../examples/postgres-roles.toml");
        let errors = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            let errs = Config::parse(&base.replace(from, to)).unwrap_err();
            errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>().join("\n")
        };
        let e = errors("url_env = \"PROD_DB_ELEVATE_URL\"", "url = \"postgres://elevate:pw@db/app\"");
        assert!(e.contains("providers.proddb") && e.contains("url"), "{e}");
        let e = errors("url_env = \"PROD_DB_ELEVATE_URL\"", "schema2 = \"x\"");
        assert!(e.contains("schema2"), "{e}");
        let e = errors("schema = \"elevate\"", "schema = \"\"");
        assert!(e.contains("schema name is empty"), "{e}");
        let e = errors("target = { role = \"app_write\" }", "target = { role = \"app_write\", db = \"x\" }");
        assert!(e.contains("roles.prod-db-write") && e.contains("unknown key `db`"), "{e}");
        let e = errors("target = { role = \"app_write\" }", "target = { role = \"\" }");
        assert!(e.contains("role name is empty"), "{e}");
    }

    #[test]
    fn the_mysql_roles_example_config_is_valid_and_its_settings_are_checked() {
        let base = include_str!("../../examples/mysql-roles.toml");
        let cfg = Config::parse(base).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(cfg.providers.values().any(|p| p.kind() == "mysql-roles"));
        let errors = |from: &str, to: &str| {
            assert!(base.contains(from), "{from}");
            let errs = Config::parse(&base.replace(from, to)).unwrap_err();
            errs.iter().map(|e| format!("{}: {}", e.path, e.message)).collect::<Vec<_>>().join("\n")
        };
        let e = errors("url_env = \"ORDERS_DB_ELEVATE_URL\"", "url = \"mysql://elevate:pw@db/\"");
        assert!(e.contains("providers.ordersdb") && e.contains("url"), "{e}");
        let e = errors("database = \"elevate\"", "database = \"my-db\"");
        assert!(e.contains("database `my-db`"), "{e}");
        let e = errors("target = { role = \"orders_write\" }", "target = { role = \"orders'write\" }");
        assert!(e.contains("roles.orders-write") && e.contains("does not put into SQL"), "{e}");
        let e = errors("target = { role = \"orders_write\" }", "target = { role = \"w\", db = \"x\" }");
        assert!(e.contains("unknown key `db`"), "{e}");
    }

    #[test]
    fn the_quickstart_config_is_valid() {
        let text = include_str!("../../examples/quickstart.toml");
        let cfg = Config::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(cfg.listen().to_string(), "127.0.0.1:8080");
        assert!(!cfg.policy.tokens.is_empty());
    }

    #[test]
    fn unknown_sections_and_bad_settings_are_named() {
        let text = r#"
            [sever]
            listen = "x"
            [server]
            listen = "nowhere"
            [scheduler]
            reconcile = "every minute"
            [providers.hook]
            type = "webhook"
            url = "http://localhost:9"
        "#;
        let errs = Config::parse(text).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in ["sever", "server.listen", "scheduler.reconcile", "providers.hook.secret_env"] {
            assert!(paths.contains(&want), "missing {want}: {errs:#?}");
        }
    }

    #[test]
    fn discord_settings_are_checked() {
        let base = include_str!("../../examples/quickstart.toml");
        let bad = format!("{base}\n[discord]\napplication_id = \"app\"\nguild_id = \"0\"\npublic_key = \"abc\"\n");
        let errs = Config::parse(&bad).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in ["discord.application_id", "discord.guild_id", "discord.public_key", "discord.bot_token_env"] {
            assert!(paths.contains(&want), "missing {want}: {errs:#?}");
        }
        let key = "ab".repeat(32);
        let good = format!(
            "{base}\n[discord]\napplication_id = \"11\"\nguild_id = \"22\"\npublic_key = \"{key}\"\nbot_token_env = \"B\"\n"
        );
        assert!(Config::parse(&good).unwrap().discord.is_some());
    }

    #[test]
    fn slack_settings_are_checked() {
        let base = include_str!("../../examples/quickstart.toml");
        let bad = format!("{base}\n[slack]\nteam_id = \"workspace\"\nsocket_mode = true\n");
        let errs = Config::parse(&bad).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in ["slack.team_id", "slack.bot_token_env", "slack.app_token_env"] {
            assert!(paths.contains(&want), "missing {want}: {errs:#?}");
        }
        let good = format!("{base}\n[slack]\nteam_id = \"T1\"\nsigning_secret_env = \"S\"\nbot_token_env = \"B\"\n");
        assert!(Config::parse(&good).unwrap().slack.is_some());
    }

    #[test]
    fn every_periodic_job_schedule_parses() {
        let cfg = SchedulerConfig::default();
        let names: Vec<&str> = cfg.jobs().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["reconcile", "audit_checkpoint", "report", "ticket_watch"]);
    }
}
