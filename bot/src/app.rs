//! Wiring: config → store, providers, service, scheduler, feed, HTTP server.

use crate::{
    config::Config,
    feed::{LogNotifier, run_feed},
    http::{self, AppState},
    metrics::Metrics,
    providers,
    scheduler::{NotifyWake, Scheduler, run_cron},
};
use anyhow::Context;
use elevate_core::{
    Service,
    ports::{ChatRefs, GrantProvider, Notifier, Store},
    time::{Clock, SystemClock},
};
use elevate_sql::{Dialect, SqlStore};
use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::AtomicBool},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tracing::info;

/// What tests and tools may swap in.
pub struct AppOptions {
    pub clock: Arc<dyn Clock>,
    /// Providers replacing configured ones of the same name (tests point them at fakes).
    pub provider_overrides: BTreeMap<String, Arc<dyn GrantProvider>>,
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Run the scheduler, cron and feed loops in the background.
    pub background: bool,
    /// Override the configured database URL.
    pub database_url: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            clock: Arc::new(SystemClock),
            provider_overrides: BTreeMap::new(),
            notifiers: vec![Arc::new(LogNotifier)],
            background: true,
            database_url: None,
        }
    }
}

/// A built application, not yet listening.
pub struct App {
    pub config: Config,
    pub service: Arc<Service>,
    pub store: SqlStore,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub wake: Arc<NotifyWake>,
    pub clock: Arc<dyn Clock>,
    /// Providers supplied by the caller rather than built from the config (kept for restarts
    /// in tests).
    pub provider_overrides: BTreeMap<String, Arc<dyn GrantProvider>>,
    /// The Slack adapter, when `[slack]` is configured.
    pub slack: Option<elevate_slack::Slack>,
    /// The Discord adapter, when `[discord]` is configured.
    pub discord: Option<elevate_discord::Discord>,
    notifiers: Vec<Arc<dyn Notifier>>,
    background: bool,
    ready: Arc<AtomicBool>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    pub async fn build(config: Config, opts: AppOptions) -> anyhow::Result<App> {
        crate::install_crypto();
        let mut config = config;
        config.scheduler.checkpoint_seed = config.audit.seed().map_err(anyhow::Error::msg)?;
        let url = match opts.database_url.clone() {
            Some(u) => u,
            None => config.database_url().map_err(anyhow::Error::msg)?,
        };
        let store = SqlStore::connect(&url).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        info!(
            store = match store.dialect() {
                Dialect::Sqlite => "sqlite",
                Dialect::Postgres => "postgres",
            },
            "database ready, migrations applied"
        );
        if store.dialect() == Dialect::Sqlite {
            // SQLite means one process: claims left by a previous run of it are dead.
            let n = store.release_claims().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if n > 0 {
                info!(items = n, "released claims left by the previous run");
            }
        }
        let metrics = Arc::new(Metrics::default());
        let mut provs = providers::build(&config, &metrics, &opts.provider_overrides).map_err(anyhow::Error::msg)?;
        for (name, p) in &opts.provider_overrides {
            provs.insert(name.clone(), providers::instrument(name, p.clone(), &metrics));
        }
        for (name, p) in &provs {
            info!(provider = %name, kind = p.kind(), dry_run = p.is_dry_run(), "provider ready");
        }
        let wake = Arc::new(NotifyWake::default());
        let dyn_store: Arc<dyn Store> = Arc::new(store.clone());
        let service =
            Arc::new(Service::new(dyn_store.clone(), provs, opts.clock.clone(), wake.clone(), config.policy.clone()));
        // Other replicas' signals, for a scheduler that runs (a listening connection each).
        let signal = if opts.background && config.scheduler.enabled {
            store.due_signal()
        } else {
            Arc::new(elevate_core::ports::NoSignal)
        };
        let scheduler = Arc::new(Scheduler::new(
            service.clone(),
            dyn_store,
            opts.clock.clone(),
            wake.clone(),
            signal,
            metrics.clone(),
            &config.scheduler,
        ));
        let mut notifiers = opts.notifiers;
        let slack = match &config.slack {
            Some(sc) => {
                let settings = sc.settings().map_err(anyhow::Error::msg)?;
                let refs: Arc<dyn ChatRefs> = Arc::new(store.clone());
                let slack = elevate_slack::Slack::new(settings, service.clone(), refs).context("Slack client")?;
                notifiers.push(Arc::new(elevate_slack::SlackNotifier(slack.clone())));
                notifiers.push(Arc::new(elevate_slack::SlackSecurity(slack.clone())));
                if slack.settings().audit_channel.is_some() {
                    notifiers.push(Arc::new(elevate_slack::SlackFeed(slack.clone())));
                }
                info!(team = %slack.settings().team_id, socket_mode = slack.settings().app_token.is_some(), "Slack ready");
                Some(slack)
            }
            None => None,
        };
        let discord = match &config.discord {
            Some(dc) => {
                let settings = dc.settings().map_err(anyhow::Error::msg)?;
                let refs: Arc<dyn ChatRefs> = Arc::new(store.clone());
                let discord =
                    elevate_discord::Discord::new(settings, service.clone(), refs).context("Discord adapter")?;
                notifiers.push(Arc::new(elevate_discord::DiscordNotifier(discord.clone())));
                notifiers.push(Arc::new(elevate_discord::DiscordSecurity(discord.clone())));
                if discord.settings().audit_channel.is_some() {
                    notifiers.push(Arc::new(elevate_discord::DiscordFeed(discord.clone())));
                }
                info!(guild = discord.settings().guild_id, "Discord ready");
                Some(discord)
            }
            None => None,
        };
        let (shutdown_tx, _) = watch::channel(false);
        Ok(App {
            config,
            service,
            store,
            scheduler,
            metrics,
            wake,
            clock: opts.clock,
            provider_overrides: opts.provider_overrides,
            slack,
            discord,
            notifiers,
            background: opts.background,
            ready: Arc::new(AtomicBool::new(false)),
            shutdown_tx,
            tasks: Vec::new(),
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            service: self.service.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            ready: self.ready.clone(),
        }
    }

    /// The HTTP API plus the Slack endpoints when Slack is configured (HTTP mode) and the
    /// Discord interactions endpoint when Discord is.
    pub fn router(&self) -> axum::Router {
        let mut router = http::router(self.state());
        if let Some(s) = self.slack.as_ref().filter(|s| s.settings().signing_secret.is_some()) {
            router = router.merge(http::limits::limited(elevate_slack::routes(s.clone()), http::limits::CHAT_BODY_MAX));
        }
        if let Some(d) = &self.discord {
            let routes = elevate_discord::routes(d.clone());
            router = router.merge(http::limits::limited(routes, http::limits::CHAT_BODY_MAX));
        }
        router
    }

    /// Every notifier the audit feed delivers to (tests drain them synchronously).
    pub fn notifiers(&self) -> &[Arc<dyn Notifier>] {
        &self.notifiers
    }

    /// Starts the scheduler, cron and audit-feed loops (if enabled) and marks the app ready.
    pub fn start(&mut self) {
        if self.background {
            let store: Arc<dyn Store> = Arc::new(self.store.clone());
            if self.config.scheduler.enabled {
                self.tasks.push(tokio::spawn(self.scheduler.clone().run(self.shutdown_tx.subscribe())));
                self.tasks.push(tokio::spawn(run_cron(
                    self.service.clone(),
                    store.clone(),
                    self.clock.clone(),
                    self.config.scheduler.clone(),
                    self.shutdown_tx.subscribe(),
                )));
            }
            for n in &self.notifiers {
                let poke = Arc::new(tokio::sync::Notify::new());
                self.tasks.push(tokio::spawn(run_feed(store.clone(), n.clone(), poke, self.shutdown_tx.subscribe())));
            }
        }
        self.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then stops the loops.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        self.start();
        if let Some(slack) = self.slack.clone().filter(|s| s.settings().app_token.is_some()) {
            self.tasks.push(tokio::spawn(async move {
                if let Err(e) = slack.run_socket_mode().await {
                    tracing::error!(error = %e, "Slack Socket Mode stopped");
                }
            }));
        }
        if let Some(discord) = self.discord.clone() {
            self.tasks.push(tokio::spawn(register_discord_commands(discord)));
        }
        axum::serve(listener, router).with_graceful_shutdown(shutdown).await.context("HTTP server failed")?;
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        Ok(())
    }

    /// Stops the background loops (tests simulate a crash by dropping the app instead).
    pub async fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Registers `/elevate` with Discord, retrying with capped backoff while Discord cannot be
/// reached: the endpoint serves meanwhile, and the commands registered last time still work.
async fn register_discord_commands(discord: elevate_discord::Discord) {
    let mut wait = std::time::Duration::from_secs(5);
    loop {
        match discord.register_commands().await {
            Ok(()) => {
                info!("Discord commands registered");
                return;
            }
            Err(e) => tracing::warn!(error = %e, ?wait, "registering Discord commands failed; retrying"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(300));
    }
}

impl Drop for App {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
