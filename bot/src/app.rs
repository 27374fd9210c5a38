//! Wiring: config → store, providers, service, scheduler, feed, HTTP server.

use crate::{
    config::Config,
    feed::{FeedEngine, LogFeed, Mode, Progress},
    http::{self, AppState},
    metrics::Metrics,
    notices::NoticeEngine,
    providers,
    scheduler::{NotifyWake, Scheduler, run_cron},
};
use anyhow::Context;
use elevate_core::{
    Service,
    ports::{ChatRefs, FeedChannel, GrantProvider, Notifier, Store},
    time::{Clock, SystemClock},
};
use elevate_sql::{Dialect, SqlStore};
use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};
use tokio::{
    net::TcpListener,
    sync::{Mutex, Notify, watch},
    task::JoinHandle,
};
use tracing::info;

mod drain;
pub use drain::Drained;
use drain::HTTP_CLOSE;

/// What tests and tools may swap in.
pub struct AppOptions {
    pub clock: Arc<dyn Clock>,
    /// Providers replacing configured ones of the same name (tests point them at fakes).
    pub provider_overrides: BTreeMap<String, Arc<dyn GrantProvider>>,
    /// Per-destination notifiers besides the configured chat platforms'.
    pub notifiers: Vec<Arc<dyn Notifier>>,
    /// Feed channels besides the configured chat platforms' (by default the log).
    pub feeds: Vec<Arc<dyn FeedChannel>>,
    /// Run the scheduler, cron and feed loops in the background.
    pub background: bool,
    /// Override the configured database URL.
    pub database_url: Option<String>,
    /// The config file the process was started from, read again by a reload.
    pub config_path: Option<std::path::PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            clock: Arc::new(SystemClock),
            provider_overrides: BTreeMap::new(),
            notifiers: Vec::new(),
            feeds: vec![Arc::new(LogFeed)],
            background: true,
            database_url: None,
            config_path: None,
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
    pub reloader: Arc<crate::reload::Reloader>,
    delivery: Delivery,
    background: bool,
    ready: Arc<AtomicBool>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The claim loop, stopped first on shutdown (waited for apart from the other tasks).
    claim_loop: Option<JoinHandle<()>>,
    /// Renews the leases of running items; stopped after the drain.
    heartbeat: Option<JoinHandle<()>>,
    /// SQLite: held while this app exists (dropped with it, so a restart in the same process
    /// can take it again).
    _server_lock: Option<crate::single::ServerLock>,
}

impl App {
    pub async fn build(config: Config, opts: AppOptions) -> anyhow::Result<App> {
        crate::install_crypto();
        let mut config = config;
        if let Some(u) = &opts.database_url {
            config.database = crate::config::DatabaseConfig { url: Some(u.clone()), url_env: None };
        }
        // Every secret is read and checked before the database is opened: a server that cannot
        // work changes nothing (no migrations), and says everything that is wrong at once.
        // Providers supplied by the caller are not built from the config, nor their secrets read.
        let mut read = config.clone();
        read.providers.retain(|name, _| !opts.provider_overrides.contains_key(name));
        let problems = read.check_secrets();
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(|e| format!("  {e}")).collect();
            anyhow::bail!("{} problem(s) with secrets:\n{}", problems.len(), lines.join("\n"));
        }
        config.scheduler.checkpoint_seed = config.audit.seed().map_err(anyhow::Error::msg)?;
        config.scheduler.anchors = config.audit.anchors();
        if let Some(file) = &config.scheduler.anchors.file {
            // Found now rather than at the first checkpoint, an hour from now.
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
                .map_err(|e| anyhow::anyhow!("audit.anchor_file: cannot open {} for appending: {e}", file.display()))?;
        }
        let url = config.database_url().map_err(anyhow::Error::msg)?;
        // One server per SQLite file: the lock comes before the database is opened, so a second
        // server neither migrates nor releases the first one's claims (see `single.rs`).
        let server_lock = match elevate_sql::sqlite_file(&url).map_err(|e| anyhow::anyhow!("{e}"))? {
            Some(file) => Some(crate::single::lock(&file).map_err(anyhow::Error::msg)?),
            None => None,
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
        let on_call = crate::oncall::build(&config.oncall).map_err(anyhow::Error::msg)?;
        let tickets = crate::tickets::build(&config.tickets).map_err(anyhow::Error::msg)?;
        let service = Arc::new(
            Service::new(dyn_store.clone(), provs, opts.clock.clone(), wake.clone(), config.policy.clone())
                .with_on_call(on_call)
                .with_tickets(tickets),
        );
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
        let mut feeds = opts.feeds;
        let slack = match &config.slack {
            Some(sc) => {
                let settings = sc.settings().map_err(anyhow::Error::msg)?;
                let refs: Arc<dyn ChatRefs> = Arc::new(store.clone());
                let slack = elevate_slack::Slack::new(settings, service.clone(), refs).context("Slack client")?;
                notifiers.push(Arc::new(elevate_slack::SlackNotifier::new(slack.clone())));
                feeds.push(Arc::new(elevate_slack::SlackSecurity(slack.clone())));
                if slack.settings().audit_channel.is_some() {
                    feeds.push(Arc::new(elevate_slack::SlackFeed(slack.clone())));
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
                feeds.push(Arc::new(elevate_discord::DiscordSecurity(discord.clone())));
                if discord.settings().audit_channel.is_some() {
                    feeds.push(Arc::new(elevate_discord::DiscordFeed(discord.clone())));
                }
                info!(guild = discord.settings().guild_id, "Discord ready");
                Some(discord)
            }
            None => None,
        };
        let delivery = Delivery::new(Arc::new(store.clone()), &metrics, &opts.clock, notifiers, feeds);
        let running = service.providers().keys().cloned().collect();
        let reloader = Arc::new(crate::reload::Reloader::new(opts.config_path.clone(), running, service.clone()));
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
            reloader,
            delivery,
            background: opts.background,
            ready: Arc::new(AtomicBool::new(false)),
            shutdown_tx,
            tasks: Vec::new(),
            claim_loop: None,
            heartbeat: None,
            _server_lock: server_lock,
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            service: self.service.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            ready: self.ready.clone(),
            reloader: self.reloader.clone(),
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
        router.layer(axum::middleware::from_fn_with_state(self.metrics.clone(), http::access::log))
    }

    /// One delivery step of every notifier and feed channel (tests drive delivery with it
    /// instead of the background loops): what still waits, and when it may next be tried.
    pub async fn deliver_step(&self, mode: Mode) -> Progress {
        self.delivery.step(mode).await
    }

    /// Starts the scheduler, cron and audit-feed loops (if enabled) and marks the app ready.
    pub fn start(&mut self) {
        if self.background {
            let store: Arc<dyn Store> = Arc::new(self.store.clone());
            // `[scheduler] enabled = false`: a replica that serves only, and runs no due work.
            if self.config.scheduler.enabled {
                self.claim_loop = Some(tokio::spawn(self.scheduler.clone().run(self.shutdown_tx.subscribe())));
                self.heartbeat = Some(tokio::spawn(self.scheduler.clone().keep_leases()));
                self.tasks.push(tokio::spawn(run_cron(
                    self.service.clone(),
                    store.clone(),
                    self.clock.clone(),
                    self.config.scheduler.clone(),
                    self.shutdown_tx.subscribe(),
                )));
            }
            for f in &self.delivery.feeds {
                let clock = self.clock.clone();
                let f = f.clone();
                let shutdown = self.shutdown_tx.subscribe();
                self.tasks.push(tokio::spawn(run_loop(clock, shutdown, Arc::new(Notify::new()), move || {
                    let f = f.clone();
                    async move {
                        let mut f = f.lock().await;
                        let name = f.name().to_string();
                        (name, f.step(Mode::Background).await)
                    }
                })));
            }
            for (n, poke) in &self.delivery.notices {
                let clock = self.clock.clone();
                let n = n.clone();
                let shutdown = self.shutdown_tx.subscribe();
                self.tasks.push(tokio::spawn(run_loop(clock, shutdown, poke.clone(), move || {
                    let n = n.clone();
                    async move { (n.name().to_string(), n.step(Mode::Background).await) }
                })));
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
        // Chat connections: they do not watch for shutdown, so the drain does not wait for them;
        // they keep receiving through it, like HTTP, and are dropped after it.
        let mut chat = Vec::new();
        if let Some(slack) = self.slack.clone().filter(|s| s.settings().app_token.is_some()) {
            chat.push(tokio::spawn(async move {
                if let Err(e) = slack.run_socket_mode().await {
                    tracing::error!(error = %e, "Slack Socket Mode stopped");
                }
            }));
        }
        if let Some(discord) = self.discord.clone() {
            chat.push(tokio::spawn(register_discord_commands(discord)));
        }
        // HTTP goes on answering through the drain (requests in flight complete; `/readyz`
        // says 503 so that load balancers stop sending more), and closes after it.
        let (close_http, http_closed) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_closed.await;
                })
                .await
        });
        tokio::select! {
            done = &mut server => {
                // The server stopped by itself: nothing to drain into.
                return done.context("HTTP server task")?.context("HTTP server failed");
            }
            _ = shutdown => {}
        }
        self.drain().await;
        for t in chat {
            t.abort();
        }
        let _ = close_http.send(());
        match tokio::time::timeout(HTTP_CLOSE, &mut server).await {
            Ok(done) => done.context("HTTP server task")?.context("HTTP server failed")?,
            Err(_) => {
                server.abort();
                tracing::warn!(timeout = ?HTTP_CLOSE, "HTTP connections still open after the drain: closed");
            }
        }
        Ok(())
    }

    /// Stops the background loops (tests simulate a crash by dropping the app instead).
    pub async fn stop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        for t in self.tasks.drain(..).chain(self.claim_loop.take()).chain(self.heartbeat.take()) {
            t.abort();
        }
    }
}

/// The delivery engines: one per notifier (per-destination queues) and one per feed channel.
struct Delivery {
    notices: Vec<(NoticeEngine, Arc<Notify>)>,
    feeds: Vec<Arc<Mutex<FeedEngine>>>,
}

impl Delivery {
    fn new(
        store: Arc<dyn Store>,
        metrics: &Arc<Metrics>,
        clock: &Arc<dyn Clock>,
        notifiers: Vec<Arc<dyn Notifier>>,
        feeds: Vec<Arc<dyn FeedChannel>>,
    ) -> Delivery {
        let notices = notifiers
            .into_iter()
            .map(|n| {
                let poke = Arc::new(Notify::new());
                (NoticeEngine::new(store.clone(), n, metrics.clone(), clock.clone(), poke.clone()), poke)
            })
            .collect();
        let feeds = feeds
            .into_iter()
            .map(|f| Arc::new(Mutex::new(FeedEngine::new(store.clone(), f, metrics.clone(), clock.clone()))))
            .collect();
        Delivery { notices, feeds }
    }

    async fn step(&self, mode: Mode) -> Progress {
        let mut p = Progress::default();
        for (n, _) in &self.notices {
            match n.step(mode).await {
                Ok(q) => p = p.merge(q),
                Err(e) => tracing::warn!(notifier = n.name(), error = %e, "delivery step failed"),
            }
        }
        for f in &self.feeds {
            let mut f = f.lock().await;
            match f.step(mode).await {
                Ok(q) => p = p.merge(q),
                Err(e) => tracing::warn!(feed = f.name(), error = %e, "feed step failed"),
            }
        }
        p
    }
}

/// How often a delivery loop looks for new audit events when nothing wakes it sooner.
const DELIVERY_POLL: Duration = Duration::from_millis(200);

/// Runs one delivery engine's steps until shutdown: after each, sleeps until its next retry is
/// due, new events may have arrived (a short poll), or one of its destinations finished.
async fn run_loop<F, Fut>(clock: Arc<dyn Clock>, mut shutdown: watch::Receiver<bool>, poke: Arc<Notify>, step: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (String, Result<Progress, elevate_core::ports::StoreError>)>,
{
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let (name, result) = step().await;
        let wait = match result {
            Ok(p) => {
                failures = 0;
                let until = p.wake.map(|w| (w - clock.now()).to_std().unwrap_or_default());
                until.map_or(DELIVERY_POLL, |u| u.min(DELIVERY_POLL))
            }
            Err(e) => {
                failures += 1;
                let wait = elevate_core::delivery::backoff(failures, None);
                tracing::warn!(name, error = %e, ?wait, "delivery could not read or write the store; retrying");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = poke.notified() => {}
            _ = shutdown.changed() => {}
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
        for t in self.tasks.iter().chain(&self.claim_loop).chain(&self.heartbeat) {
            t.abort();
        }
    }
}
