//! The App Home tab: core's "my access" ([`chat::home`]) published for the person who opens it
//! (`app_home_opened`), and published again whenever something they would see there changes:
//! a request of theirs, a request they may decide, and for the security team break-glass use
//! and lockdowns. Who opened their Home is remembered in memory: after a restart the tab is
//! refreshed at the next opening.

use crate::{PLATFORM, Slack};
use elevate_core::{
    Request,
    audit::AuditEvent,
    chat::{self, Message, Tone},
    delivery::{DeliveryError, Notice},
    policy::Caller,
    render,
};
use serde_json::{Value, json};

impl Slack {
    /// An Events API callback (over HTTP or Socket Mode). Only `app_home_opened` on the Home
    /// tab is acted on; the tab is published after Slack has its acknowledgement.
    pub fn handle_event(&self, callback: &Value) {
        let event = &callback["event"];
        if event["type"] != "app_home_opened" || event["tab"] != "home" {
            return;
        }
        let (team, user) = (str_of(&callback["team_id"]), str_of(&event["user"]));
        if user.is_empty() {
            return;
        }
        let slack = self.clone();
        self.later(async move {
            if let Err(e) = slack.open_home(&team, &user).await {
                tracing::warn!(error = %e, user, "could not publish the App Home tab");
            }
        });
    }

    /// Publishes `user`'s Home tab and remembers them, so that changes refresh it.
    async fn open_home(&self, team: &str, user: &str) -> Result<(), DeliveryError> {
        let caller = match self.caller(team, user).await {
            Ok(c) => c,
            Err(e) => {
                let refusal = chat::refusal(e.into(), PLATFORM);
                let msg = Message::text(Tone::Warning, refusal.text);
                return self.inner.api.publish_home(user, self.home_view(&msg)).await;
            }
        };
        self.inner.homes.lock().expect("homes lock").insert(user.to_string(), caller);
        self.publish_home(user).await
    }

    /// Publishes the Home tab of a user who opened it, as things stand now.
    pub(crate) async fn publish_home(&self, user: &str) -> Result<(), DeliveryError> {
        let Some(caller) = self.inner.homes.lock().expect("homes lock").get(user).cloned() else {
            return Ok(());
        };
        let msg = match chat::home(&self.inner.service, &caller).await {
            Ok(m) => m,
            // A store error is worth retrying; a refusal (the person left the policy) is shown.
            Err(elevate_core::CoreError::User(u)) => {
                Message::text(Tone::Warning, chat::refusal(u.into(), PLATFORM).text)
            }
            Err(e) => return Err(DeliveryError::transient(e.to_string())),
        };
        self.inner.api.publish_home(user, self.home_view(&msg)).await
    }

    fn home_view(&self, msg: &Message) -> Value {
        json!({ "type": "home", "blocks": self.blocks(msg) })
    }

    /// The Home tabs `event` changes: those of the requester, of people who may decide the
    /// request, and of the security team for what it alone sees.
    pub(crate) fn homes_touched(&self, event: &AuditEvent, request: Option<&Request>) -> Vec<Notice> {
        let homes = self.inner.homes.lock().expect("homes lock").clone();
        let policy = self.inner.service.policy();
        let now = self.inner.service.now();
        let touches = |caller: &Caller| match request {
            Some(r) => {
                r.requester == caller.person
                    || policy
                        .roles
                        .get(&r.role)
                        .is_some_and(|role| policy.may_approve(caller, role, now - r.created_at))
                    || (render::for_security(&event.kind) && policy.is_security(caller))
            }
            None => render::for_security(&event.kind) && policy.is_security(caller),
        };
        homes.iter().filter(|(_, c)| touches(c)).map(|(user, _)| Notice::home(event, request, user)).collect()
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}
