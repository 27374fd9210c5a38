//! elevate-discord: Discord as a front door and a notice board for elevate.
//!
//! Ingress is the interactions endpoint (`POST /discord/interactions`): every payload is checked
//! against the application's Ed25519 public key before anything else, and answered within
//! Discord's 3 seconds (slow work is deferred and finished through the interaction token).
//! `/elevate` is registered at start by a bulk overwrite, so registering again changes nothing.
//! Egress is two `Notifier`s fed from the audit log through serenity's REST client:
//! [`DiscordNotifier`] keeps approval messages current and DMs requesters, [`DiscordFeed`] posts
//! one line per event to the audit channel. No gateway connection is opened: everything elevate
//! needs arrives over HTTP. Adapters translate, core decides: a button carries only the request
//! id, and who may press it is decided by core when the click arrives.

mod api;
mod commands;
mod components;
mod encode;
mod identity;
mod ingress;
mod messages;
mod notifier;
pub mod text;

pub use commands::elevate_command;
pub use ingress::routes;
pub use notifier::{DiscordFeed, DiscordNotifier, DiscordSecurity};

use elevate_core::{Service, ports::ChatRefs};
use std::{
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};
use tokio::task::JoinHandle;

/// The platform name under which chat references are stored.
pub(crate) const PLATFORM: &str = "discord";

/// How long a handler may take before the answer is deferred (Discord allows 3 seconds).
const ACK_BUDGET: Duration = Duration::from_millis(2000);

/// The `[discord]` section of the config, with its secret resolved.
#[derive(Clone)]
pub struct DiscordSettings {
    /// The application (client) id, a snowflake.
    pub application_id: u64,
    /// The application's Ed25519 public key, 64 hex digits; not a secret.
    pub public_key: String,
    /// The bot token, for the REST API.
    pub bot_token: String,
    /// The server (guild) this installation serves; interactions from any other are refused.
    pub guild_id: u64,
    /// Register `/elevate` globally (every server the bot is in; Discord may take up to an hour
    /// to show it) instead of for `guild_id` only (immediate).
    pub global_commands: bool,
    /// Where one line per audit event goes (a channel id).
    pub audit_channel: Option<String>,
    /// Send REST calls here instead of `https://discord.com` (tests point it at a fake). Serenity
    /// honours it only with its rate limiter off, so 429s are then retried by [`api`].
    pub api_url: Option<String>,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("application_id", &self.application_id)
            .field("guild_id", &self.guild_id)
            .field("global_commands", &self.global_commands)
            .field("audit_channel", &self.audit_channel)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// The Discord adapter. Cheap to clone; shared by the endpoint and the notifiers.
#[derive(Clone)]
pub struct Discord {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: DiscordSettings,
    pub service: Arc<Service>,
    pub refs: Arc<dyn ChatRefs>,
    pub api: api::DiscordApi,
    pub verifier: serenity::interactions_endpoint::Verifier,
    /// Work finished after the interaction was answered (deferred answers).
    pub later: Mutex<Vec<JoinHandle<()>>>,
    /// [`ACK_BUDGET`] in milliseconds; tests lower it to see the deferred path.
    pub ack_budget_ms: AtomicU64,
}

impl Discord {
    /// Builds the adapter. Call `elevate_bot::install_crypto()` first: the REST client's TLS is
    /// built here. Fails on a public key that is not 32 bytes of hex or not a valid key.
    pub fn new(settings: DiscordSettings, service: Arc<Service>, refs: Arc<dyn ChatRefs>) -> anyhow::Result<Discord> {
        let key = text::hex32(&settings.public_key)
            .ok_or_else(|| anyhow::anyhow!("discord.public_key: expected 64 hex digits"))?;
        let verifier = serenity::interactions_endpoint::Verifier::try_new(key)
            .map_err(|e| anyhow::anyhow!("discord.public_key: {e}"))?;
        let api = api::DiscordApi::new(&settings);
        Ok(Discord {
            inner: Arc::new(Inner {
                settings,
                service,
                refs,
                api,
                verifier,
                later: Mutex::new(Vec::new()),
                ack_budget_ms: AtomicU64::new(ACK_BUDGET.as_millis() as u64),
            }),
        })
    }

    pub fn settings(&self) -> &DiscordSettings {
        &self.inner.settings
    }

    /// Changes how long a handler may run before its answer is deferred; zero defers every
    /// answer (tests use it to exercise the follow-up path).
    pub fn set_ack_budget(&self, budget: Duration) {
        self.inner.ack_budget_ms.store(budget.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn ack_budget(&self) -> Duration {
        Duration::from_millis(self.inner.ack_budget_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Runs `work` after the interaction has been answered.
    pub(crate) fn later(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work);
        let mut tasks = self.inner.later.lock().expect("later lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Waits for every deferred answer started so far (tests, shutdown).
    pub async fn settle(&self) {
        loop {
            let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.inner.later.lock().expect("later lock"));
            if tasks.is_empty() {
                return;
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    }

    /// Registers `/elevate` by bulk overwrite (`PUT …/commands`): the command set afterwards is
    /// exactly this one, however often it runs.
    pub async fn register_commands(&self) -> Result<(), String> {
        Ok(self.inner.api.register(elevate_command()).await?)
    }
}
