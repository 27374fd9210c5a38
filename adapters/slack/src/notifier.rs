//! Slack egress. [`SlackNotifier`] turns each audit event into per-destination notices (the
//! request's approval card, the requester's DMs) that the bot's delivery loop delivers each on
//! its own: a card is re-rendered from the request as it is now, so delivering a notice twice,
//! or late, updates the card to the same thing; only a DM could repeat. [`SlackFeed`] and
//! [`SlackSecurity`] are feed channels: core's one-line wording of every event (of every
//! security event), escaped, packed into messages, each event exactly once and in order.

use crate::{PLATFORM, Slack, text::escape};
use async_trait::async_trait;
use elevate_core::{
    Request,
    audit::AuditEvent,
    chat::{self, CardAction},
    delivery::{DeliveryError, FeedLimits, Notice, Pacer, Part, Rate},
    ports::{FeedChannel, Notifier},
    render,
};
use std::time::Duration;

/// How Slack feed messages are filled. `text` may hold 40,000 characters but Slack recommends
/// staying under 4,000, and 50 lines still reads as one message. `chat.postMessage` allows
/// about one message per second per channel (its "special" rate limit).
const FEED_LIMITS: FeedLimits = FeedLimits { max_chars: 4000, max_lines: 50, min_interval: Duration::from_secs(1) };

/// Errors of `chat.update` after which the card is posted again as a new message: it was
/// deleted, or can no longer be edited.
const REPOST: &[&str] = &["message_not_found", "cant_update_message", "edit_window_closed"];

/// `chat.postMessage` per channel, as Slack documents it: about one per second, short bursts
/// allowed.
const POST_RATE: Rate = Rate { burst: 10.0, per_second: 1.0 };
/// `views.publish`: Tier 4, 100+ per minute.
const TIER_4: Rate = Rate { burst: 20.0, per_second: 100.0 / 60.0 };
/// `chat.update` and `conversations.open`: Tier 3, 50+ per minute.
const TIER_3: Rate = Rate { burst: 20.0, per_second: 50.0 / 60.0 };

/// Approval cards and requester DMs, paced per Slack limit (see [`Pacer`]).
pub struct SlackNotifier {
    slack: Slack,
    pacer: Pacer,
}

impl SlackNotifier {
    pub fn new(slack: Slack) -> Self {
        SlackNotifier { slack, pacer: Pacer::default() }
    }

    /// Runs `call` within the limit `key`; a 429 holds that limit for its `Retry-After`.
    async fn paced<T>(
        &self,
        key: String,
        rate: Rate,
        call: impl std::future::Future<Output = Result<T, DeliveryError>>,
    ) -> Result<T, DeliveryError> {
        self.pacer.take(&key, rate, self.slack.inner.service.now())?;
        let result = call.await;
        if let Err(DeliveryError::Transient { retry_after: Some(wait), .. }) = &result {
            let until = self.slack.inner.service.now() + chrono::Duration::from_std(*wait).unwrap_or_default();
            self.pacer.hold(&key, until);
        }
        result
    }

    async fn post(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<serde_json::Value>,
        thread: Option<&str>,
    ) -> Result<(String, String), DeliveryError> {
        let api = &self.slack.inner.api;
        self.paced(format!("chat.postMessage:{channel}"), POST_RATE, api.send(channel, text, blocks, thread)).await
    }
}

/// The audit channel.
pub struct SlackFeed(pub Slack);

#[async_trait]
impl FeedChannel for SlackFeed {
    fn name(&self) -> &str {
        "slack-feed"
    }

    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn limits(&self) -> FeedLimits {
        FEED_LIMITS
    }

    fn line(&self, event: &AuditEvent, request: Option<&Request>) -> Option<String> {
        self.0.settings().audit_channel.as_ref()?;
        Some(escape(&render::feed_line(event, request)))
    }

    async fn post(&self, text: &str, _first: i64, _last: i64) -> Result<(), DeliveryError> {
        let Some(channel) = self.0.settings().audit_channel.as_deref() else {
            return Ok(());
        };
        self.0.inner.api.send(channel, text, None, None).await.map(|_| ())
    }
}

/// The security channel (`[security] slack_channel`): alerts, lockdowns, break-glass reviews and
/// stuck revokes, as the policy names the channel at delivery time.
pub struct SlackSecurity(pub Slack);

#[async_trait]
impl FeedChannel for SlackSecurity {
    fn name(&self) -> &str {
        "slack-security"
    }

    fn platform(&self) -> &'static str {
        PLATFORM
    }

    fn limits(&self) -> FeedLimits {
        FEED_LIMITS
    }

    fn line(&self, event: &AuditEvent, request: Option<&Request>) -> Option<String> {
        if !render::for_security(&event.kind) {
            return None;
        }
        self.0.inner.service.policy().security.slack_channel.as_ref()?;
        Some(format!(":rotating_light: {}", escape(&render::feed_line(event, request))))
    }

    async fn post(&self, text: &str, _first: i64, _last: i64) -> Result<(), DeliveryError> {
        let Some(channel) = self.0.inner.service.policy().security.slack_channel.clone() else {
            return Ok(());
        };
        self.0.inner.api.send(&channel, text, None, None).await.map(|_| ())
    }
}

#[async_trait]
impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        "slack"
    }

    fn platform(&self) -> &'static str {
        PLATFORM
    }

    async fn notices(&self, event: &AuditEvent, request: Option<&Request>) -> Result<Vec<Notice>, DeliveryError> {
        let slack = &self.slack;
        let mut out = slack.homes_touched(event, request);
        let Some(req) = request else { return Ok(out) };
        if chat::updates_card(&event.kind) {
            out.push(Notice::card(event, req, event.kind == "request.created"));
        }
        let policy = slack.inner.service.policy();
        if let Some(line) = chat::thread_line(event, req, &policy) {
            out.push(Notice::thread(event, req, line));
        }
        if render::requester_line(event, req, &|p| slack.name(p), &escape).is_some()
            && let Some(user) = slack.requester_user(req).await.map_err(DeliveryError::transient)?
        {
            out.push(Notice::dm(event, req, &user));
        }
        for (person, text) in chat::nudges(event, req, &policy) {
            if let Some(user) = slack.slack_user(person.as_str()) {
                out.push(Notice::dm_text(event, req, &user, text));
            }
        }
        Ok(out)
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let slack = &self.slack;
        let api = &slack.inner.api;
        match (&notice.part, &notice.request) {
            (Part::Card { created }, Some(req)) => {
                self.update_card(req, *created).await?;
                self.update_escalated(req, notice.event.kind == "request.escalated").await
            }
            (Part::Dm { user }, Some(req)) => {
                let Some(line) = render::requester_line(&notice.event, req, &|p| slack.name(p), &escape) else {
                    return Ok(());
                };
                let extend = chat::offers_extend(&notice.event.kind).then_some(req.id.0);
                let blocks = slack.dm_blocks(&line, extend);
                let channel = self.paced("conversations.open".into(), TIER_3, api.dm_channel(user)).await?;
                self.post(&channel, &line, blocks, None).await.map(|_| ())
            }
            (Part::Home { user }, _) => self.paced("views.publish".into(), TIER_4, slack.publish_home(user)).await,
            (Part::DmText { user, text }, Some(_)) => {
                let channel = self.paced("conversations.open".into(), TIER_3, api.dm_channel(user)).await?;
                self.post(&channel, &escape(text), None, None).await.map(|_| ())
            }
            (Part::CardNote { text }, Some(req)) => {
                let card = slack.inner.refs.chat_ref(PLATFORM, req.card_id(), chat::CARD).await;
                match card.map_err(|e| DeliveryError::transient(e.to_string()))? {
                    Some((channel, ts)) => self.post(&channel, &escape(text), None, Some(&ts)).await.map(|_| ()),
                    None => Ok(()),
                }
            }
            (Part::Line { channel, text }, _) => self.post(channel, text, None, None).await.map(|_| ()),
            _ => Ok(()),
        }
    }

    fn reset_pacing(&self) {
        self.pacer.clear();
    }

    fn reroute(&self, notice: &Notice, error: &DeliveryError) -> Vec<Notice> {
        match &notice.part {
            Part::Dm { user } => notice
                .card_note(format!(
                    "I could not DM the requester (<@{user}>) about this: Slack says `{}`. They will not hear \
                     about it from me.",
                    error.code().unwrap_or("?")
                ))
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }

    fn report(&self, notice: &Notice, text: &str) -> Option<Notice> {
        let channel = self.slack.inner.service.policy().security.slack_channel.clone()?;
        Some(Notice::line(&notice.event, &channel, format!(":warning: {}", escape(text))))
    }
}

impl SlackNotifier {
    /// Posts the card when a request is created (in the role's `slack_channel`, if it has one),
    /// and updates it in place afterwards. A card that was deleted (or can no longer be
    /// edited) is posted again as a new message in the same channel, and the new one recorded.
    async fn update_card(&self, req: &Request, create: bool) -> Result<(), DeliveryError> {
        let slack = &self.slack;
        let refs = slack.inner.refs.as_ref();
        let policy = slack.inner.service.policy();
        // A request of several roles has one card, kept under its first role's request and
        // posted when that one is created.
        let (owner, card) = chat::card_now(&slack.inner.service, req).await.map_err(DeliveryError::transient)?;
        let create = create && req.is_card_owner();
        let req = &owner;
        let (fallback, blocks) = slack.card_parts(&card);
        let action = chat::card_action(refs, PLATFORM, &policy, req, create, |r| r.slack_channel.as_ref())
            .await
            .map_err(DeliveryError::transient)?;
        let channel = match action {
            CardAction::Update(channel, ts) => {
                let edit = slack.inner.api.edit(&channel, &ts, &fallback, Some(blocks.clone()));
                match self.paced("chat.update".into(), TIER_3, edit).await {
                    Err(DeliveryError::Permanent { code, .. }) if REPOST.contains(&code.as_str()) => {
                        tracing::warn!(request = %req.id, channel, code, "approval card is gone; posting it again");
                        channel
                    }
                    other => return other,
                }
            }
            CardAction::Post(channel) => channel,
            CardAction::Nothing => return Ok(()),
        };
        let (channel, ts) = self.post(&channel, &fallback, Some(blocks), None).await?;
        refs.set_chat_ref(PLATFORM, req.id, chat::CARD, &channel, &ts)
            .await
            .map_err(|e| DeliveryError::transient(e.to_string()))
    }
}

impl SlackNotifier {
    /// Copies of the card in the Slack channels of the groups a request was escalated to
    /// (`[groups.…] slack_channel`): posted when it escalates, then kept in step with the card
    /// (the same buttons, the same state), each recorded as the chat reference
    /// `escalated:{group}`.
    async fn update_escalated(&self, req: &Request, escalating: bool) -> Result<(), DeliveryError> {
        let slack = &self.slack;
        let policy = slack.inner.service.policy();
        let Some(role) = policy.roles.get(&req.role) else { return Ok(()) };
        let refs = slack.inner.refs.as_ref();
        let transient = |e: elevate_core::ports::StoreError| DeliveryError::transient(e.to_string());
        let (_, card) = chat::card_now(&slack.inner.service, req).await.map_err(DeliveryError::transient)?;
        let (fallback, blocks) = slack.card_parts(&card);
        for group in &role.escalate_to {
            let Some(channel) = policy.groups.get(group).and_then(|g| g.slack_channel.clone()) else { continue };
            let name = format!("escalated:{group}");
            let blocks = blocks.clone();
            match refs.chat_ref(PLATFORM, req.id, &name).await.map_err(transient)? {
                Some((c, ts)) => {
                    let edit = slack.inner.api.edit(&c, &ts, &fallback, Some(blocks));
                    match self.paced("chat.update".into(), TIER_3, edit).await {
                        Err(DeliveryError::Permanent { code, .. }) if REPOST.contains(&code.as_str()) => {}
                        other => other?,
                    }
                }
                None if escalating => {
                    let (c, ts) = self.post(&channel, &fallback, Some(blocks), None).await?;
                    refs.set_chat_ref(PLATFORM, req.id, &name, &c, &ts).await.map_err(transient)?;
                    // Said in the original card's thread, so its watchers know where it went.
                    if let Some((card_channel, card_ts)) =
                        refs.chat_ref(PLATFORM, req.card_id(), chat::CARD).await.map_err(transient)?
                    {
                        let note = format!("Escalated: the card was posted to {} too.", crate::text::channel(&c));
                        self.post(&card_channel, &note, None, Some(&card_ts)).await?;
                    }
                }
                None => {}
            }
        }
        Ok(())
    }
}

impl Slack {
    /// The requester's Slack user: the policy's, else the one who made the request from Slack.
    async fn requester_user(&self, req: &Request) -> Result<Option<String>, String> {
        let from_policy = self.slack_user(req.requester.as_str());
        chat::requester_user(self.inner.refs.as_ref(), PLATFORM, req, from_policy).await
    }
}
