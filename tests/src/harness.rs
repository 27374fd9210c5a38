//! The test application: the real `App` (store, providers, service, scheduler, HTTP API) on a
//! loopback port, with a `ManualClock` the test moves and a webhook receiver on loopback.

use crate::{TestDb, fake_discord::FakeDiscord, fake_slack::FakeSlack, policy, receiver::Receiver};
use chrono::{TimeZone, Utc};
use elevate_bot::{
    app::{App, AppOptions},
    config::Config,
};
use elevate_core::{
    ManualClock, RequestId,
    audit::AuditEvent,
    ports::{DueItem, GrantProvider, Notifier, Store},
};
use serde_json::{Value, json};
use std::{collections::BTreeMap, sync::Arc};
use tokio::task::JoinHandle;

/// Configures a `TestApp`.
pub struct TestAppBuilder {
    db: Option<TestDb>,
    background: bool,
    config: Option<String>,
    notifiers: Vec<Arc<dyn Notifier>>,
    providers: BTreeMap<String, Arc<dyn GrantProvider>>,
    slack: bool,
    discord: bool,
}

/// What a test app is built from, kept across a simulated restart.
struct Parts {
    db: TestDb,
    receiver: Receiver,
    clock: Arc<ManualClock>,
    background: bool,
    notifiers: Vec<Arc<dyn Notifier>>,
    slack: Option<FakeSlack>,
    discord: Option<FakeDiscord>,
    providers: BTreeMap<String, Arc<dyn GrantProvider>>,
}

/// A running application under test.
pub struct TestApp {
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub receiver: Receiver,
    pub base: String,
    pub db: TestDb,
    /// The fake Slack Web API, when the app was built `.slack()`.
    pub slack: Option<FakeSlack>,
    /// The fake Discord REST API, when the app was built `.discord()`.
    pub discord: Option<FakeDiscord>,
    server: ServerTask,
}

impl TestAppBuilder {
    pub fn db(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    /// Run the scheduler and feed loops in the background (default: tests drive them).
    pub fn background(mut self) -> Self {
        self.background = true;
        self
    }

    /// Replace the whole config file (`{WEBHOOK_URL}` is filled in).
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_string());
        self
    }

    /// Use this provider for the configured provider `name` (e.g. an AWS provider holding the
    /// emulator's keys) instead of building it from the config and the environment.
    pub fn provider(mut self, name: &str, p: Arc<dyn GrantProvider>) -> Self {
        self.providers.insert(name.to_string(), p);
        self
    }

    /// Configure `[slack]` against a fake Slack Web API (see `crate::slack`).
    pub fn slack(mut self) -> Self {
        self.slack = true;
        self
    }

    /// Configure `[discord]` against a fake Discord REST API (see `crate::discord`); `/elevate`
    /// is registered at start, as `elevate serve` does.
    pub fn discord(mut self) -> Self {
        self.discord = true;
        self
    }

    pub fn notifier(mut self, n: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(n);
        self
    }

    pub async fn spawn(self) -> TestApp {
        elevate_bot::install_crypto();
        let receiver = Receiver::start(policy::WEBHOOK_SECRET).await;
        let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()));
        let db = self.db.unwrap_or_else(TestDb::sqlite);
        let mut text = match &self.config {
            Some(t) => t.replace("{WEBHOOK_URL}", &receiver.url),
            None => policy::config(&receiver.url),
        };
        let slack = if self.slack {
            let fake = crate::slack::start_fake().await;
            fake.time.use_clock(clock.clone());
            text = crate::slack::config(&text, &fake.url);
            Some(fake)
        } else {
            None
        };
        let discord = if self.discord {
            let fake = crate::discord::start_fake().await;
            fake.time.use_clock(clock.clone());
            text = crate::discord::config(&text, &fake.url);
            Some(fake)
        } else {
            None
        };
        let parts = Parts {
            db,
            receiver,
            clock,
            background: self.background,
            notifiers: self.notifiers,
            slack,
            discord,
            providers: self.providers,
        };
        TestApp::start(text, parts).await
    }
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            db: None,
            background: false,
            config: None,
            notifiers: Vec::new(),
            slack: false,
            discord: false,
            providers: BTreeMap::new(),
        }
    }

    /// SQLite, test policy, scheduler driven by the test.
    pub async fn spawn() -> TestApp {
        Self::builder().spawn().await
    }

    async fn start(text: String, parts: Parts) -> TestApp {
        // SAFETY of set_var: tests set the same value every time, before any reader starts.
        unsafe { std::env::set_var("ELEVATE_TEST_WEBHOOK_SECRET", policy::WEBHOOK_SECRET) };
        let config = Config::parse(&text).unwrap_or_else(|e| panic!("test config invalid: {e:#?}"));
        Self::launch(config, parts).await
    }

    /// Simulates a crash: the server and every loop stop at once, nothing is flushed; then a new
    /// process starts on the same database with the clock where the test left it.
    pub async fn crash_and_restart(self, background: bool) -> TestApp {
        let TestApp { app, clock, receiver, db, server, slack, discord, .. } = self;
        server.0.abort();
        let config = app.config.clone();
        let providers = app.provider_overrides.clone();
        drop(app);
        let parts = Parts { db, receiver, clock, background, notifiers: Vec::new(), slack, discord, providers };
        TestApp::launch(config, parts).await
    }

    async fn launch(config: Config, p: Parts) -> TestApp {
        let opts = AppOptions {
            clock: p.clock.clone(),
            provider_overrides: p.providers,
            notifiers: p.notifiers,
            feeds: Vec::new(),
            background: p.background,
            database_url: Some(p.db.url.clone()),
            config_path: None,
        };
        let mut app = App::build(config, opts).await.expect("app builds");
        if let Some(d) = &app.discord {
            d.register_commands().await.expect("/elevate registers with the fake Discord");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        app.start();
        TestApp {
            app,
            clock: p.clock,
            receiver: p.receiver,
            base,
            db: p.db,
            slack: p.slack,
            discord: p.discord,
            server: ServerTask(server),
        }
    }

    pub fn person(&self, name: &str) -> Person {
        Person { name: name.to_string(), token: format!("token-{name}"), base: self.base.clone() }
    }
    pub fn alice(&self) -> Person {
        self.person("alice")
    }
    pub fn bob(&self) -> Person {
        self.person("bob")
    }
    pub fn carol(&self) -> Person {
        self.person("carol")
    }
    pub fn dave(&self) -> Person {
        self.person("dave")
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.clock.advance(by);
    }

    /// Runs everything the scheduler has due now, to completion.
    pub async fn run_due(&self) -> usize {
        self.app.scheduler.run_due_now().await.expect("scheduler runs")
    }

    /// Moves the clock and runs what became due.
    pub async fn after(&self, by: chrono::Duration) -> usize {
        self.advance(by);
        self.run_due().await
    }

    pub fn store(&self) -> &dyn Store {
        &self.app.store
    }

    pub async fn request(&self, id: i64) -> elevate_core::Request {
        self.store().get_request(RequestId(id)).await.unwrap().expect("request exists")
    }

    pub async fn state(&self, id: i64) -> String {
        self.request(id).await.state.as_str().to_string()
    }

    pub async fn due(&self, id: i64) -> Vec<DueItem> {
        self.store().due_items(RequestId(id)).await.unwrap()
    }

    pub async fn due_kinds(&self, id: i64) -> Vec<&'static str> {
        self.due(id).await.iter().map(|d| d.kind.as_str()).collect()
    }

    pub async fn events(&self) -> Vec<AuditEvent> {
        self.store().events(0, 100_000).await.unwrap()
    }

    /// Event kinds about one request, in order.
    pub async fn event_kinds(&self, id: i64) -> Vec<String> {
        self.events().await.into_iter().filter(|e| e.subject == Some(id)).map(|e| e.kind).collect()
    }

    pub fn grant_id(id: i64) -> String {
        RequestId(id).grant_id()
    }

    /// Creates a request as alice and has bob approve it, then applies it.
    pub async fn active_grant(&self, role: &str, duration: &str) -> i64 {
        let id = self.alice().request(role, duration, "INC-1 investigate").await.id();
        self.bob().approve(id).await.ok();
        if role == "prod" {
            self.carol().approve(id).await.ok();
        }
        self.run_due().await;
        assert_eq!(self.state(id).await, "active", "setup: grant {id} should be active");
        id
    }
}

/// The HTTP server task, stopped when the test app is dropped.
struct ServerTask(JoinHandle<()>);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Someone calling the API with their token.
#[derive(Clone)]
pub struct Person {
    pub name: String,
    pub token: String,
    pub base: String,
}

/// An API answer: status and JSON body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Asserts success and returns the body.
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "expected success, got {} {}", self.status, self.body);
        self.body
    }

    pub fn id(self) -> i64 {
        let b = self.ok();
        b["id"].as_i64().expect("id in answer")
    }

    /// Asserts a refusal with this status and returns its message.
    pub fn refused(self, status: u16) -> String {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert!(self.body["error"]["code"].is_string(), "error body without code: {}", self.body);
        self.body["error"]["message"].as_str().expect("error message").to_string()
    }
}

impl Person {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("API reachable");
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or(Value::Null);
        Answer { status, body }
    }

    pub async fn request(&self, role: &str, duration: &str, reason: &str) -> Answer {
        self.call(
            reqwest::Method::POST,
            "/api/v1/requests",
            Some(json!({ "role": role, "duration": duration, "reason": reason })),
        )
        .await
    }

    pub async fn act(&self, id: i64, action: &str, body: Value) -> Answer {
        self.call(reqwest::Method::POST, &format!("/api/v1/requests/{id}/{action}"), Some(body)).await
    }

    pub async fn approve(&self, id: i64) -> Answer {
        self.act(id, "approve", json!({})).await
    }
    pub async fn deny(&self, id: i64, reason: &str) -> Answer {
        self.act(id, "deny", json!({ "reason": reason })).await
    }
    pub async fn cancel(&self, id: i64) -> Answer {
        self.act(id, "cancel", json!({})).await
    }
    pub async fn revoke(&self, id: i64, reason: &str) -> Answer {
        self.act(id, "revoke", json!({ "reason": reason })).await
    }
    pub async fn release(&self, id: i64) -> Answer {
        self.act(id, "release", json!({})).await
    }
    pub async fn extend(&self, id: i64, duration: &str) -> Answer {
        self.act(id, "extend", json!({ "duration": duration })).await
    }
    pub async fn show(&self, id: i64) -> Answer {
        self.call(reqwest::Method::GET, &format!("/api/v1/requests/{id}"), None).await
    }
}
