//! elevate-slack: Slack as a front door and a notice board for elevate.
//!
//! Ingress (`/slack/commands`, `/slack/interactions`, `/slack/events`, or Socket Mode) turns a
//! slash command, a button click or a modal submission into a core command for the person behind
//! the Slack user, and answers within Slack's 3 seconds: core's decisions are database writes,
//! provider calls happen later in the scheduler. Egress is two `Notifier`s fed from the audit
//! log: [`SlackNotifier`] keeps approval cards up to date and DMs requesters, [`SlackFeed`] posts
//! one line per event to the audit channel. Adapters translate, core decides: nothing here
//! decides who may approve; a button carries only the request id.

mod api;
mod blocks;
mod commands;
mod encode;
mod home;
mod identity;
mod ingress;
mod interactions;
mod notifier;
mod shortcuts;
mod socket;
pub mod text;

pub use ingress::routes;
pub use notifier::{SlackFeed, SlackNotifier, SlackSecurity};

use elevate_core::{Service, ports::ChatRefs};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The platform name under which chat references are stored.
pub(crate) const PLATFORM: &str = "slack";

/// The Slack section of the config, with its secrets resolved.
#[derive(Clone)]
pub struct SlackSettings {
    /// The workspace (`T…`) this installation serves; payloads from any other are refused.
    pub team_id: String,
    /// Verifies that HTTP payloads come from Slack. Not needed in Socket Mode.
    pub signing_secret: Option<String>,
    /// `xoxb-…`, for the Web API.
    pub bot_token: String,
    /// Where one line per audit event goes (a channel id, `C…`).
    pub audit_channel: Option<String>,
    /// `xapp-…`: receive payloads over Socket Mode instead of HTTP.
    pub app_token: Option<String>,
    /// The Web API base, `https://slack.com/api` unless a test points it at a fake.
    pub api_url: String,
    /// How long the members of a Slack user group are trusted once read.
    pub usergroup_cache: std::time::Duration,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("team_id", &self.team_id)
            .field("audit_channel", &self.audit_channel)
            .field("socket_mode", &self.app_token.is_some())
            .field("api_url", &self.api_url)
            .field("usergroup_cache", &self.usergroup_cache)
            .finish_non_exhaustive()
    }
}

/// The Slack adapter. Cheap to clone; shared by the HTTP routes, Socket Mode and the notifiers.
#[derive(Clone)]
pub struct Slack {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: SlackSettings,
    pub service: Arc<Service>,
    pub refs: Arc<dyn ChatRefs>,
    pub api: api::SlackApi,
    pub identity: identity::Directory,
    /// Who opened their App Home tab, as whom: their tab is refreshed when it changes.
    pub homes: Mutex<std::collections::BTreeMap<String, elevate_core::policy::Caller>>,
    /// Follow-ups sent after a payload was acknowledged (ephemeral errors, DMs after a modal).
    pub later: Mutex<Vec<JoinHandle<()>>>,
}

impl Slack {
    /// Builds the adapter. Call `elevate_bot::install_crypto()` (ring's rustls provider) first:
    /// the Web API client's TLS is built here.
    pub fn new(settings: SlackSettings, service: Arc<Service>, refs: Arc<dyn ChatRefs>) -> anyhow::Result<Slack> {
        let api = api::SlackApi::new(&settings.api_url, &settings.bot_token)?;
        Ok(Slack {
            inner: Arc::new(Inner {
                settings,
                service,
                refs,
                api,
                identity: identity::Directory::default(),
                homes: Mutex::default(),
                later: Mutex::new(Vec::new()),
            }),
        })
    }

    pub fn settings(&self) -> &SlackSettings {
        &self.inner.settings
    }

    /// Runs `work` after the payload has been answered, so Slack gets its acknowledgement in
    /// time whatever the Web API is doing.
    pub(crate) fn later(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(work);
        let mut tasks = self.inner.later.lock().expect("later lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    /// Waits for every follow-up started so far: tests call it to read the fake Slack
    /// deterministically, and shutdown to let messages go out.
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

    /// Whether this delivery (a `trigger_id` or `event_id`) is the first of its kind; see
    /// [`elevate_core::chat::first_delivery`].
    pub(crate) async fn first_delivery(&self, id: &str) -> bool {
        let now = self.inner.service.now();
        elevate_core::chat::first_delivery(self.inner.refs.as_ref(), PLATFORM, id, now).await
    }

    /// Socket Mode: receives the same payloads over a WebSocket opened with the app token and
    /// hands them to the same handlers as the HTTP routes. Runs until the process stops.
    pub async fn run_socket_mode(&self) -> anyhow::Result<()> {
        socket::run(self.clone()).await
    }
}
