//! The Discord REST calls elevate makes, through serenity's `Http` client. In production
//! serenity's rate limiter paces calls and honours 429s itself. With `api_url` set the limiter
//! must be off (serenity ignores the proxy otherwise), and a 429 then arrives here as an error
//! whose `Retry-After` serenity has already dropped: it is retried after a short pause, a few
//! times, and anything longer is left to the audit feed, which delivers the event again later.

use crate::DiscordSettings;
use serenity::{
    builder::{CreateCommand, CreateInteractionResponseFollowup, CreateMessage, EditInteractionResponse, EditMessage},
    http::{Http, HttpBuilder},
    model::id::{ApplicationId, ChannelId, GuildId, MessageId, UserId},
};
use std::{future::Future, time::Duration};

/// Attempts at one call answered with 429 while the rate limiter is off.
const RATE_LIMIT_ATTEMPTS: u32 = 3;
/// The pause before such a retry.
const RATE_LIMIT_PAUSE: Duration = Duration::from_millis(250);

/// A failed call. `refused` is Discord's considered "no" (a 4xx other than 429: unknown
/// channel, missing access, a user who does not accept DMs); retrying will not change it.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub refused: bool,
    pub message: String,
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.message
    }
}

pub(crate) struct DiscordApi {
    http: Http,
    guild: GuildId,
    global: bool,
}

fn snowflake(what: &str, s: &str) -> Result<u64, ApiError> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n != 0)
        .ok_or_else(|| ApiError { refused: true, message: format!("`{s}` is not a Discord {what} id") })
}

impl DiscordApi {
    pub fn new(s: &DiscordSettings) -> Self {
        let mut builder = HttpBuilder::new(&s.bot_token).application_id(ApplicationId::new(s.application_id.max(1)));
        if let Some(url) = &s.api_url {
            builder = builder.proxy(url.trim_end_matches('/')).ratelimiter_disabled(true);
        }
        DiscordApi { http: builder.build(), guild: GuildId::new(s.guild_id.max(1)), global: s.global_commands }
    }

    async fn call<T, Fut>(&self, what: &str, f: impl Fn() -> Fut) -> Result<T, ApiError>
    where
        Fut: Future<Output = serenity::Result<T>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match f().await {
                Ok(v) => return Ok(v),
                Err(serenity::Error::Http(e))
                    if e.status_code().is_some_and(|s| s.as_u16() == 429) && attempt < RATE_LIMIT_ATTEMPTS =>
                {
                    tracing::warn!(call = what, attempt, "Discord rate limit; retrying");
                    tokio::time::sleep(RATE_LIMIT_PAUSE).await;
                }
                Err(e) => {
                    let status = match &e {
                        serenity::Error::Http(h) => h.status_code().map(|s| s.as_u16()),
                        _ => None,
                    };
                    let refused = status.is_some_and(|s| (400..500).contains(&s) && s != 429);
                    return Err(ApiError { refused, message: format!("{what}: {e}") });
                }
            }
        }
    }

    /// Posts a message; returns its id.
    pub async fn post(&self, channel: &str, msg: CreateMessage) -> Result<String, ApiError> {
        let channel = ChannelId::new(snowflake("channel", channel)?);
        let m = self.call("create message", || self.http.send_message(channel, vec![], &msg)).await?;
        Ok(m.id.to_string())
    }

    /// Edits a message elevate posted.
    pub async fn edit(&self, channel: &str, message: &str, msg: EditMessage) -> Result<(), ApiError> {
        let channel = ChannelId::new(snowflake("channel", channel)?);
        let message = MessageId::new(snowflake("message", message)?);
        self.call("edit message", || self.http.edit_message(channel, message, &msg, vec![])).await.map(|_| ())
    }

    /// The DM channel with a user (`POST /users/@me/channels`; Discord returns the same channel
    /// every time).
    pub async fn open_dm(&self, user: &str) -> Result<String, ApiError> {
        let user = UserId::new(snowflake("user", user)?);
        let body = serde_json::json!({ "recipient_id": user.to_string() });
        let ch = self.call("open DM", || self.http.create_private_channel(&body)).await?;
        Ok(ch.id.to_string())
    }

    /// Bulk-overwrites the application's commands for the guild (or globally).
    pub async fn register(&self, command: CreateCommand) -> Result<(), ApiError> {
        let set = vec![command];
        if self.global {
            self.call("register commands", || self.http.create_global_commands(&set)).await.map(|_| ())
        } else {
            self.call("register commands", || self.http.create_guild_commands(self.guild, &set)).await.map(|_| ())
        }
    }

    /// Replaces a deferred answer (`PATCH /webhooks/{app}/{token}/messages/@original`).
    pub async fn edit_original(&self, token: &str, msg: EditInteractionResponse) -> Result<(), ApiError> {
        self.call("edit original response", || self.http.edit_original_interaction_response(token, &msg, vec![]))
            .await
            .map(|_| ())
    }

    /// A follow-up message to an interaction (`POST /webhooks/{app}/{token}`).
    pub async fn followup(&self, token: &str, msg: CreateInteractionResponseFollowup) -> Result<(), ApiError> {
        self.call("follow-up message", || self.http.create_followup_message(token, &msg, vec![])).await.map(|_| ())
    }
}
