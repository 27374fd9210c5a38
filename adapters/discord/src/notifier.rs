//! Discord egress. [`DiscordNotifier`] turns each audit event into per-destination notices (the
//! request's approval message, the requester's DMs) that the bot's delivery loop delivers each
//! on its own: a message is re-rendered from the request as it is now, so delivering a notice
//! twice, or late, edits it to the same thing; only a DM could repeat. [`DiscordFeed`] and
//! [`DiscordSecurity`] are feed channels: core's one-line wording of every event (of every
//! security event), escaped, packed into messages, each event exactly once and in order.

use crate::{
    Discord, PLATFORM,
    messages::{clip, extend_buttons, quiet},
    text::escape,
};
use async_trait::async_trait;
use elevate_core::{
    Request,
    audit::AuditEvent,
    chat::{self, CardAction},
    delivery::{DeliveryError, FeedLimits, Notice, Part},
    ports::{FeedChannel, Notifier},
    render,
};
use serenity::{
    builder::{CreateMessage, EditMessage},
    model::{
        channel::{MessageReference, Nonce},
        id::{ChannelId, MessageId},
    },
};
use std::time::Duration;

/// How Discord feed messages are filled: `content` holds at most 2,000 characters. Discord
/// documents no fixed posting rate (its bucket headers say), so the feed keeps to one message
/// per second per channel, below what the buckets have allowed in practice (5 per 5 s).
const FEED_LIMITS: FeedLimits = FeedLimits { max_chars: 2000, max_lines: 50, min_interval: Duration::from_secs(1) };

/// Discord's code for a message that no longer exists: the card is posted again.
const UNKNOWN_MESSAGE: &str = "10008";

/// Approval messages and requester DMs.
pub struct DiscordNotifier(pub Discord);

/// The audit channel.
pub struct DiscordFeed(pub Discord);

/// A feed message with `nonce` and `enforce_nonce`: Discord answers a repeated create with the
/// same nonce (from the same author, within minutes) with the message already created instead
/// of a second one, so a post retried after a timeout whose first attempt did land is not
/// doubled. The nonce names the channel's cursor and the events the message holds.
fn feed_message(name: &str, text: &str, first: i64, last: i64) -> CreateMessage {
    let tag = if name.ends_with("security") { "s" } else { "f" };
    let nonce = clip_nonce(&format!("{tag}{first}-{last}"));
    CreateMessage::new().content(clip(text)).allowed_mentions(quiet()).nonce(Nonce::String(nonce)).enforce_nonce(true)
}

/// Nonces are at most 25 characters.
fn clip_nonce(n: &str) -> String {
    n.chars().take(25).collect()
}

#[async_trait]
impl FeedChannel for DiscordFeed {
    fn name(&self) -> &str {
        "discord-feed"
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

    async fn post(&self, text: &str, first: i64, last: i64) -> Result<(), DeliveryError> {
        let Some(channel) = self.0.settings().audit_channel.as_deref() else {
            return Ok(());
        };
        let msg = feed_message(self.name(), text, first, last);
        Ok(self.0.inner.api.post(channel, msg).await.map(|_| ())?)
    }
}

/// The security channel (`[security] discord_channel`): alerts, lockdowns, break-glass reviews
/// and stuck revokes, as the policy names the channel at delivery time.
pub struct DiscordSecurity(pub Discord);

#[async_trait]
impl FeedChannel for DiscordSecurity {
    fn name(&self) -> &str {
        "discord-security"
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
        self.0.inner.service.policy().security.discord_channel.as_ref()?;
        Some(format!(":rotating_light: {}", escape(&render::feed_line(event, request))))
    }

    async fn post(&self, text: &str, first: i64, last: i64) -> Result<(), DeliveryError> {
        let Some(channel) = self.0.inner.service.policy().security.discord_channel.clone() else {
            return Ok(());
        };
        let msg = feed_message(self.name(), text, first, last);
        Ok(self.0.inner.api.post(&channel, msg).await.map(|_| ())?)
    }
}

#[async_trait]
impl Notifier for DiscordNotifier {
    fn name(&self) -> &str {
        "discord"
    }

    fn platform(&self) -> &'static str {
        PLATFORM
    }

    async fn notices(&self, event: &AuditEvent, request: Option<&Request>) -> Result<Vec<Notice>, DeliveryError> {
        let Some(req) = request else { return Ok(Vec::new()) };
        let discord = &self.0;
        let mut out = Vec::new();
        if chat::updates_card(&event.kind) {
            out.push(Notice::card(event, req, event.kind == "request.created"));
        }
        let policy = discord.inner.service.policy();
        if let Some(line) = chat::thread_line(event, req, &policy) {
            out.push(Notice::thread(event, req, line));
        }
        for (person, text) in chat::nudges(event, req, &policy) {
            if let Some(user) = discord.discord_user(person.as_str()) {
                out.push(Notice::dm_text(event, req, &user, text));
            }
        }
        if render::requester_line(event, req, &|p| discord.name(p), &escape).is_some() {
            let from_policy = discord.discord_user(req.requester.as_str());
            let user = chat::requester_user(discord.inner.refs.as_ref(), PLATFORM, req, from_policy)
                .await
                .map_err(DeliveryError::transient)?;
            if let Some(user) = user {
                out.push(Notice::dm(event, req, &user));
            }
        }
        Ok(out)
    }

    async fn deliver(&self, notice: &Notice) -> Result<(), DeliveryError> {
        let discord = &self.0;
        let api = &discord.inner.api;
        match (&notice.part, &notice.request) {
            (Part::Card { created }, Some(req)) => discord.update_card(req, *created).await,
            (Part::Dm { user }, Some(req)) => {
                let Some(line) = render::requester_line(&notice.event, req, &|p| discord.name(p), &escape) else {
                    return Ok(());
                };
                let mut msg = CreateMessage::new().content(clip(&line)).allowed_mentions(quiet());
                if chat::offers_extend(&notice.event.kind) {
                    msg = msg.components(extend_buttons(req.id));
                }
                let channel = api.open_dm(user).await?;
                Ok(api.post(&channel, msg).await.map(|_| ())?)
            }
            (Part::DmText { user, text }, Some(_)) => {
                let msg = CreateMessage::new().content(clip(&escape(text))).allowed_mentions(quiet());
                let channel = api.open_dm(user).await?;
                Ok(api.post(&channel, msg).await.map(|_| ())?)
            }
            (Part::CardNote { text }, Some(req)) => {
                let card = discord.inner.refs.chat_ref(PLATFORM, req.card_id(), chat::CARD).await;
                match card.map_err(|e| DeliveryError::transient(e.to_string()))? {
                    Some((channel, message)) => {
                        // A reply to the approval message, so the card's replies tell its story;
                        // should the message be gone, the reply is posted without it.
                        let mut msg = CreateMessage::new().content(clip(&escape(text))).allowed_mentions(quiet());
                        if let (Ok(c), Ok(m)) = (channel.parse::<u64>(), message.parse::<u64>()) {
                            let to = MessageReference::from((ChannelId::new(c), MessageId::new(m)));
                            msg = msg.reference_message(to.fail_if_not_exists(false));
                        }
                        Ok(api.post(&channel, msg).await.map(|_| ())?)
                    }
                    None => Ok(()),
                }
            }
            (Part::Line { channel, text }, _) => {
                let msg = CreateMessage::new().content(clip(text)).allowed_mentions(quiet());
                Ok(api.post(channel, msg).await.map(|_| ())?)
            }
            _ => Ok(()),
        }
    }

    fn reroute(&self, notice: &Notice, error: &DeliveryError) -> Vec<Notice> {
        match &notice.part {
            Part::Dm { .. } => {
                let req = notice.request.as_ref().map(|r| r.id.to_string()).unwrap_or_default();
                notice
                    .card_note(format!(
                        "I could not DM the requester of {req} about this (Discord error {}); they will not hear \
                         about it from me.",
                        error.code().unwrap_or("?")
                    ))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn report(&self, notice: &Notice, text: &str) -> Option<Notice> {
        let channel = self.0.inner.service.policy().security.discord_channel.clone()?;
        // Our own words (codes, advice, ids): not escaped, so `@elevate` and the code read as
        // meant; the message pings nobody whatever it says (`allowed_mentions` is empty).
        Some(Notice::line(&notice.event, &channel, format!(":warning: {text}")))
    }
}

impl Discord {
    /// Posts the approval message when a request is created (in the role's `discord_channel`,
    /// if it has one), and edits it in place afterwards; buttons go once it is decided. A
    /// message that was deleted is posted again, and the new one recorded.
    async fn update_card(&self, req: &Request, created: bool) -> Result<(), DeliveryError> {
        let refs = self.inner.refs.as_ref();
        let policy = self.inner.service.policy();
        // A request of several roles has one card, kept under its first role's request and
        // posted when that one is created.
        let (owner, card) = chat::card_now(&self.inner.service, req).await.map_err(DeliveryError::transient)?;
        let created = created && req.is_card_owner();
        let req = &owner;
        let content = self.content(&card);
        let buttons = self.rows(&card);
        let action = chat::card_action(refs, PLATFORM, &policy, req, created, |r| r.discord_channel.as_ref())
            .await
            .map_err(DeliveryError::transient)?;
        let channel = match action {
            CardAction::Update(channel, message) => {
                let msg =
                    EditMessage::new().content(content.clone()).components(buttons.clone()).allowed_mentions(quiet());
                match self.inner.api.edit(&channel, &message, msg).await.map_err(DeliveryError::from) {
                    Err(e) if e.code() == Some(UNKNOWN_MESSAGE) => {
                        tracing::warn!(request = %req.id, channel, "approval message is gone; posting it again");
                        channel
                    }
                    other => return other,
                }
            }
            CardAction::Post(channel) => channel,
            CardAction::Nothing => return Ok(()),
        };
        let msg = CreateMessage::new().content(content).components(buttons).allowed_mentions(quiet());
        let id = self.inner.api.post(&channel, msg).await?;
        refs.set_chat_ref(PLATFORM, req.id, chat::CARD, &channel, &id)
            .await
            .map_err(|e| DeliveryError::transient(e.to_string()))
    }
}
