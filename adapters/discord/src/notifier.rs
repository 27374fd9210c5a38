//! The two Discord notifiers, each reading the audit log from its own cursor (so a Discord
//! outage or a restart delays messages but loses none, and one failing channel does not hold up
//! the other).
//!
//! [`DiscordNotifier`] keeps approval messages current and DMs the requester. A message is
//! re-rendered from the request as it is now, so delivering an event twice, or late, edits it
//! to the same thing; only the DM could repeat. [`DiscordFeed`] posts core's one-line wording
//! of every event, escaped, to the audit channel.

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
    ports::Notifier,
    render,
};
use serenity::builder::{CreateMessage, EditMessage};

/// Approval messages and requester DMs.
pub struct DiscordNotifier(pub Discord);

/// The audit channel.
pub struct DiscordFeed(pub Discord);

#[async_trait]
impl Notifier for DiscordFeed {
    fn name(&self) -> &str {
        "discord-feed"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        let Some(channel) = self.0.settings().audit_channel.as_deref() else {
            return Ok(());
        };
        let line = clip(&escape(&render::feed_line(event, request)));
        let msg = CreateMessage::new().content(line).allowed_mentions(quiet());
        Ok(self.0.inner.api.post(channel, msg).await.map(|_| ())?)
    }
}

/// The security channel (`[security] discord_channel`): alerts, lockdowns, break-glass reviews
/// and stuck revokes, as the policy names the channel at delivery time.
pub struct DiscordSecurity(pub Discord);

#[async_trait]
impl Notifier for DiscordSecurity {
    fn name(&self) -> &str {
        "discord-security"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        if !render::for_security(&event.kind) {
            return Ok(());
        }
        let Some(channel) = self.0.inner.service.policy().security.discord_channel.clone() else {
            return Ok(());
        };
        let line = clip(&format!(":rotating_light: {}", escape(&render::feed_line(event, request))));
        let msg = CreateMessage::new().content(line).allowed_mentions(quiet());
        Ok(self.0.inner.api.post(&channel, msg).await.map(|_| ())?)
    }
}

#[async_trait]
impl Notifier for DiscordNotifier {
    fn name(&self) -> &str {
        "discord"
    }

    async fn deliver(&self, event: &AuditEvent, request: Option<&Request>) -> Result<(), String> {
        let Some(req) = request else { return Ok(()) };
        let discord = &self.0;
        if chat::updates_card(&event.kind) {
            discord.update_card(req, event.kind == "request.created").await?;
        }
        let Some(line) = render::requester_line(event, req, &|p| discord.name(p), &escape) else {
            return Ok(());
        };
        let from_policy = discord.discord_user(req.requester.as_str());
        if let Some(user) = chat::requester_user(discord.inner.refs.as_ref(), PLATFORM, req, from_policy).await? {
            let mut msg = CreateMessage::new().content(clip(&line)).allowed_mentions(quiet());
            if chat::offers_extend(&event.kind) {
                msg = msg.components(extend_buttons(req.id));
            }
            match discord.dm(&user, msg).await {
                Ok(()) => {}
                // A person who does not accept DMs would otherwise hold up every later card edit
                // while the feed retries; the audit channel and the card still say it all.
                Err(e) if e.refused => tracing::warn!(error = %e.message, "Discord refused a DM; not retrying"),
                Err(e) => return Err(e.message),
            }
        }
        Ok(())
    }
}

impl Discord {
    /// Posts the approval message when a request is created (in the role's `discord_channel`,
    /// if it has one), and edits it in place afterwards; buttons go once it is decided.
    async fn update_card(&self, req: &Request, created: bool) -> Result<(), String> {
        let refs = self.inner.refs.as_ref();
        let policy = self.inner.service.policy();
        let content = self.card_content(req);
        let buttons = self.card_buttons(req);
        match chat::card_action(refs, PLATFORM, &policy, req, created, |r| r.discord_channel.as_ref()).await? {
            CardAction::Update(channel, message) => {
                let msg = EditMessage::new().content(content).components(buttons).allowed_mentions(quiet());
                Ok(self.inner.api.edit(&channel, &message, msg).await?)
            }
            CardAction::Post(channel) => {
                let msg = CreateMessage::new().content(content).components(buttons).allowed_mentions(quiet());
                let id = self.inner.api.post(&channel, msg).await?;
                refs.set_chat_ref(PLATFORM, req.id, chat::CARD, &channel, &id).await.map_err(|e| e.to_string())
            }
            CardAction::Nothing => Ok(()),
        }
    }
}
