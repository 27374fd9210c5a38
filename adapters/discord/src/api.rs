//! The Discord REST calls elevate makes, through serenity's `Http` client. Every failure is
//! classified here from Discord's documented JSON error codes into a [`DeliveryError`]:
//! transient (429, 5xx, timeouts, connection errors) or permanent (Unknown Message 10008,
//! Unknown Channel 10003, Missing Access 50001, Cannot send messages to this user 50007,
//! Missing Permissions 50013, … with what to fix). Nothing is retried here: the bot's delivery
//! loop retries a transient failure of one destination while the others go on. In production
//! serenity's rate limiter paces calls by Discord's bucket headers and waits out 429s itself
//! (each route's bucket on its own, so one channel's wait does not hold another's); with
//! `api_url` set the limiter must be off (serenity ignores the proxy otherwise), and a 429 then
//! arrives as a transient error whose `Retry-After` serenity has dropped, so the loop backs off.

use crate::DiscordSettings;
use elevate_core::delivery::DeliveryError;
use serenity::{
    builder::{CreateCommand, CreateInteractionResponseFollowup, CreateMessage, EditInteractionResponse, EditMessage},
    http::{Http, HttpBuilder, HttpError},
    model::id::{ApplicationId, ChannelId, GuildId, MessageId, UserId},
};
use std::{future::Future, time::Duration};

/// A call that has not answered in this long is abandoned as a (transient) timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Discord JSON error codes that no retry will change, with what to do about each.
const PERMANENT: &[(isize, &str)] = &[
    (10003, "check the channel id in the config"),
    (10008, "the message was deleted; elevate posts a new one"),
    (10013, "check the person's `discord_id` in the policy"),
    (50001, "give @elevate access to the channel (View Channel)"),
    (50007, "the person does not accept DMs from server members; they can allow them in Privacy Settings"),
    (50013, "give @elevate the Send Messages and Embed Links permissions in the channel"),
    (50033, "check the person's `discord_id` in the policy"),
    (50035, "Discord refused the message's shape (a bug in elevate; report it)"),
];

/// A failed call: `message` for logs, `error` the same failure classified for delivery.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub message: String,
    pub error: DeliveryError,
}

impl From<ApiError> for String {
    fn from(e: ApiError) -> String {
        e.message
    }
}

impl From<ApiError> for DeliveryError {
    fn from(e: ApiError) -> DeliveryError {
        e.error
    }
}

/// Classifies one failed call.
fn classify(what: &str, e: serenity::Error) -> ApiError {
    let message = format!("{what}: {e}");
    let channel = what.rsplit(' ').next().unwrap_or("");
    let error = match &e {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => {
            let status = r.status_code.as_u16();
            if status == 429 || status == 408 || status >= 500 {
                DeliveryError::Transient {
                    message: message.clone(),
                    retry_after: (status == 429).then_some(Duration::from_secs(1)),
                }
            } else {
                let code = r.error.code;
                let fix = PERMANENT.iter().find(|(c, _)| *c == code).map(|(_, f)| *f).unwrap_or(match status {
                    401 => "the bot token is not valid: check `bot_token_env` / the secret file",
                    _ => "an error elevate does not know; see Discord's JSON error codes",
                });
                let code = if code == 0 { status.to_string() } else { code.to_string() };
                DeliveryError::permanent(code, format!("{what}: {}", r.error.message))
                    .with_fix(fix.replace("the channel", &format!("channel {channel}")))
            }
        }
        _ => DeliveryError::transient(message.clone()),
    };
    ApiError { message, error }
}

pub(crate) struct DiscordApi {
    http: Http,
    guild: GuildId,
    global: bool,
}

fn snowflake(what: &str, s: &str) -> Result<u64, ApiError> {
    s.trim().parse::<u64>().ok().filter(|n| *n != 0).ok_or_else(|| {
        let message = format!("`{s}` is not a Discord {what} id");
        let error = DeliveryError::permanent("invalid_id", message.clone()).with_fix("check the id in the config");
        ApiError { message, error }
    })
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
        match tokio::time::timeout(CALL_TIMEOUT, f()).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(what, e)),
            Err(_) => {
                let message = format!("{what}: timed out");
                Err(ApiError { error: DeliveryError::transient(message.clone()), message })
            }
        }
    }

    /// Posts a message; returns its id.
    pub async fn post(&self, channel: &str, msg: CreateMessage) -> Result<String, ApiError> {
        let channel = ChannelId::new(snowflake("channel", channel)?);
        let what = format!("create message in channel {channel}");
        let m = self.call(&what, || self.http.send_message(channel, vec![], &msg)).await?;
        Ok(m.id.to_string())
    }

    /// Edits a message elevate posted.
    pub async fn edit(&self, channel: &str, message: &str, msg: EditMessage) -> Result<(), ApiError> {
        let channel = ChannelId::new(snowflake("channel", channel)?);
        let message = MessageId::new(snowflake("message", message)?);
        let what = format!("edit message {message} in channel {channel}");
        self.call(&what, || self.http.edit_message(channel, message, &msg, vec![])).await.map(|_| ())
    }

    /// The DM channel with a user (`POST /users/@me/channels`; Discord returns the same channel
    /// every time).
    pub async fn open_dm(&self, user: &str) -> Result<String, ApiError> {
        let user = UserId::new(snowflake("user", user)?);
        let body = serde_json::json!({ "recipient_id": user.to_string() });
        let what = format!("open DM with user {user}");
        let ch = self.call(&what, || self.http.create_private_channel(&body)).await?;
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
