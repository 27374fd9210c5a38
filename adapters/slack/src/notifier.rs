//! The two Slack notifiers, each reading the audit log from its own cursor (so a Slack outage or
//! a restart delays messages but loses none, and one failing channel does not hold up the other).
//!
//! [`SlackNotifier`] keeps approval cards current and DMs the requester. A card is re-rendered
//! from the request as it is now, so delivering an event twice, or late, updates the card to the
//! same thing; only the DM could repeat. [`SlackFeed`] posts core's one-line wording of every
//! event, escaped, to the audit channel.

use crate::{PLATFORM, Slack, text::escape};
use async_trait::async_trait;
use elevate_core::{
    Request,
    audit::AuditEvent,
    chat::{self, CardAction},
    ports::Notifier,
    render,
};

/// Approval cards and requester DMs.
pub struct SlackNotifier(pub Slack);

/// The audit channel.
pub struct SlackFeed(pub Slack);

#[async_trait]
impl Notifier for SlackFeed {
    fn name(&self) -> &str {
        "slack-feed"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        let Some(channel) = self.0.settings().audit_channel.as_deref() else {
            return Ok(());
        };
        let line = escape(&render::feed_line(event, request));
        self.0.inner.api.post(channel, &line, None).await.map(|_| ())
    }
}

/// The security channel (`[security] slack_channel`): alerts, lockdowns, break-glass reviews and
/// stuck revokes, as the policy names the channel at delivery time.
pub struct SlackSecurity(pub Slack);

#[async_trait]
impl Notifier for SlackSecurity {
    fn name(&self) -> &str {
        "slack-security"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        if !render::for_security(&event.kind) {
            return Ok(());
        }
        let Some(channel) = self.0.inner.service.policy().security.slack_channel.clone() else {
            return Ok(());
        };
        let line = format!(":rotating_light: {}", escape(&render::feed_line(event, request)));
        self.0.inner.api.post(&channel, &line, None).await.map(|_| ())
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        "slack"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        let Some(req) = request else { return Ok(()) };
        let slack = &self.0;
        if chat::updates_card(&event.kind) {
            slack.update_card(req, event.kind == "request.created").await?;
        }
        let line = render::requester_line(event, req, &|p| slack.name(p), &escape);
        if let Some(line) = line
            && let Some(user) = slack.requester_user(req).await?
        {
            let extend = chat::offers_extend(&event.kind).then_some(req.id.0);
            let blocks = slack.dm_blocks(&line, extend);
            slack.dm(&user, &line, blocks).await?;
        }
        Ok(())
    }
}

impl Slack {
    /// Posts the card when a request is created (in the role's `slack_channel`, if it has one),
    /// and updates it in place afterwards.
    async fn update_card(&self, req: &Request, create: bool) -> Result<(), String> {
        let refs = self.inner.refs.as_ref();
        let policy = self.inner.service.policy();
        let (fallback, blocks) = self.card(req);
        match chat::card_action(refs, PLATFORM, &policy, req, create, |r| r.slack_channel.as_ref()).await? {
            CardAction::Update(channel, ts) => self.inner.api.update(&channel, &ts, &fallback, Some(blocks)).await,
            CardAction::Post(channel) => {
                let (channel, ts) = self.inner.api.post(&channel, &fallback, Some(blocks)).await?;
                refs.set_chat_ref(PLATFORM, req.id, chat::CARD, &channel, &ts).await.map_err(|e| e.to_string())
            }
            CardAction::Nothing => Ok(()),
        }
    }

    /// The requester's Slack user: the policy's, else the one who made the request from Slack.
    async fn requester_user(&self, req: &Request) -> Result<Option<String>, String> {
        let from_policy = self.slack_user(req.requester.as_str());
        chat::requester_user(self.inner.refs.as_ref(), PLATFORM, req, from_policy).await
    }
}
