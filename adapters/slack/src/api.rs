//! The Slack Web API calls elevate makes, through slack-morphism's client. Every failure is
//! classified here from Slack's documented error codes into a [`DeliveryError`]: transient (429
//! with its `Retry-After`, 5xx, `internal_error`, timeouts, connection errors) or permanent
//! (Slack's considered "no", with its code and what to fix). Calls made for notices are not
//! retried here: the bot's delivery loop retries a transient failure of one destination while
//! the others go on, so a rate limit never blocks anything but its own channel. Calls made
//! while a person waits (an ephemeral answer, a modal) retry a short 429 once.

use elevate_core::delivery::DeliveryError;
use serde_json::Value;
use slack_morphism::{
    errors::SlackClientError,
    hyper_tokio::{SlackClientHyperConnector, SlackHyperClient},
    prelude::*,
};
use std::time::Duration;
use tracing::warn;

/// Calls made while Slack waits for an answer (`views.open`, `users.info`) give up after this,
/// so that the acknowledgement still goes out within Slack's 3 seconds.
const INGRESS_BUDGET: Duration = Duration::from_millis(2500);
/// Longest `Retry-After` a call made for a waiting person honours before trying once more.
const INLINE_WAIT: Duration = Duration::from_secs(2);
/// A call that has not answered in this long is abandoned as a (transient) timeout, so that a
/// hung connection cannot hold a destination for ever.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Slack error codes that no retry will change, from the Web API reference of the methods
/// elevate calls (`chat.postMessage`, `chat.update`, `conversations.open`, …), with what the
/// person running elevate should do about each.
const PERMANENT: &[(&str, &str)] = &[
    ("message_not_found", "the message was deleted; elevate posts a new one"),
    ("cant_update_message", "the message is not elevate's; elevate posts a new one"),
    ("edit_window_closed", "the workspace forbids editing old messages; elevate posts a new one"),
    ("channel_not_found", "check the channel id in the config (it must be the id, `C…`, not the name)"),
    ("not_in_channel", "invite @elevate to the channel"),
    ("is_archived", "unarchive the channel or configure another one"),
    ("restricted_action", "a workspace admin restricted posting in the channel; allow the app to post"),
    ("user_not_found", "check the person's `slack_id` in the policy"),
    ("user_disabled", "the person's Slack account is deactivated; update the policy"),
    ("account_inactive", "the bot token belongs to a deleted user or app; reinstall the app"),
    ("cannot_dm_bot", "the person's `slack_id` names a bot; fix the policy"),
    ("msg_too_long", "the message is too long for Slack (a bug in elevate's wording; report it)"),
    ("invalid_blocks", "Slack refused the message layout (a bug in elevate; report it)"),
    ("no_text", "the message was empty (a bug in elevate; report it)"),
    ("invalid_auth", "the bot token is not valid: check `bot_token_env` / the secret file"),
    ("not_authed", "no bot token was sent: check `bot_token_env` / the secret file"),
    ("token_revoked", "the bot token was revoked: reinstall the app and update the secret"),
    (
        "missing_scope",
        "the app lacks an OAuth scope the manifest asks for; update the app from the manifest and reinstall it",
    ),
    ("no_such_subteam", "check the group's `slack_usergroup` id in the config (`S…`)"),
];

/// Slack error codes that a later attempt can succeed past.
const TRANSIENT: &[&str] =
    &["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org"];

/// Classifies one failed call of `method`.
pub(crate) fn classify(method: &str, e: SlackClientError) -> DeliveryError {
    match e {
        SlackClientError::RateLimitError(r) => DeliveryError::Transient {
            message: format!("{method}: rate limited"),
            retry_after: Some(r.retry_after.unwrap_or(Duration::from_secs(1))),
        },
        SlackClientError::ApiError(a) => {
            let code = a.code.as_str();
            if TRANSIENT.contains(&code) {
                return DeliveryError::transient(format!("{method}: {code}"));
            }
            let fix = PERMANENT.iter().find(|(c, _)| *c == code).map(|(_, f)| *f);
            let e = DeliveryError::permanent(code, format!("{method} refused"));
            match fix {
                Some(f) => e.with_fix(f),
                // An undocumented code: not retried (Slack answered, deliberately), but said.
                None => e.with_fix("an error code elevate does not know; see Slack's API reference"),
            }
        }
        SlackClientError::HttpError(h) if h.status_code.is_client_error() && h.status_code.as_u16() != 408 => {
            DeliveryError::permanent(h.status_code.as_u16().to_string(), format!("{method}: HTTP {}", h.status_code))
        }
        // 5xx, 408, connection and protocol errors: Slack or the way to it is having trouble.
        other => DeliveryError::transient(format!("{method}: {other}")),
    }
}

/// Calls one Web API method once, classifying its failure; a hung call is a transient timeout.
macro_rules! call {
    ($self:ident, $method:literal, |$s:ident| $call:expr) => {{
        let $s = $self.client.open_session(&$self.token);
        match tokio::time::timeout(CALL_TIMEOUT, $call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify($method, e)),
            Err(_) => Err(DeliveryError::transient(concat!($method, ": timed out"))),
        }
    }};
}

/// For calls a person waits on: once more after a short `Retry-After`.
macro_rules! call_waiting {
    ($self:ident, $method:literal, |$s:ident| $call:expr) => {{
        match call!($self, $method, |$s| $call) {
            Err(DeliveryError::Transient { retry_after: Some(wait), .. }) if wait <= INLINE_WAIT => {
                warn!(method = $method, ?wait, "Slack rate limit; retrying once");
                tokio::time::sleep(wait).await;
                call!($self, $method, |$s| $call)
            }
            other => other,
        }
    }};
}

pub(crate) struct SlackApi {
    client: SlackHyperClient,
    token: SlackApiToken,
}

impl SlackApi {
    /// `api_url` is normally `https://slack.com/api`; plain `http://` is accepted only so that
    /// tests can point the real client at a fake on loopback (slack-morphism's own constructor
    /// insists on https).
    pub fn new(api_url: &str, bot_token: &str) -> anyhow::Result<Self> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_native_roots()?;
        let builder = if api_url.starts_with("http://") { builder.https_or_http() } else { builder.https_only() };
        let connector = SlackClientHyperConnector::from(builder.enable_all_versions().build())
            .with_slack_api_url(api_url.trim_end_matches('/'));
        Ok(SlackApi {
            client: SlackClient::new(connector),
            token: SlackApiToken::new(SlackApiTokenValue::new(bot_token.to_string())),
        })
    }

    pub fn client(&self) -> &SlackHyperClient {
        &self.client
    }

    /// Posts a message (in the thread of `thread` when given); returns `(channel, ts)`.
    pub async fn send(
        &self,
        channel: &str,
        text: &str,
        blocks: Option<Value>,
        thread: Option<&str>,
    ) -> Result<(String, String), DeliveryError> {
        let mut req = SlackApiChatPostMessageRequest::new(channel.into(), content(text, blocks)?);
        if let Some(ts) = thread {
            req = req.with_thread_ts(ts.into());
        }
        let r = call!(self, "chat.postMessage", |s| s.chat_post_message(&req))
            .map_err(|e| e.at(&format!("channel {channel}"), channel))?;
        Ok((r.channel.to_string(), r.ts.to_string()))
    }

    /// Replaces a message elevate posted.
    pub async fn edit(&self, channel: &str, ts: &str, text: &str, blocks: Option<Value>) -> Result<(), DeliveryError> {
        let content = content(text, Some(blocks.unwrap_or_else(|| Value::Array(vec![]))))?;
        let req = SlackApiChatUpdateRequest::new(channel.into(), content, ts.into());
        call!(self, "chat.update", |s| s.chat_update(&req))
            .map(|_| ())
            .map_err(|e| e.at(&format!("message {ts} in channel {channel}"), channel))
    }

    /// The DM channel with `user`.
    pub async fn dm_channel(&self, user: &str) -> Result<String, DeliveryError> {
        let req = SlackApiConversationsOpenRequest::new().with_users(vec![user.into()]);
        let r = call!(self, "conversations.open", |s| s.conversations_open(&req))
            .map_err(|e| e.at(&format!("user {user}"), user))?;
        Ok(r.channel.id.to_string())
    }

    /// [`SlackApi::send`] for callers that only log the failure.
    pub async fn post(&self, channel: &str, message: &str, blocks: Option<Value>) -> Result<(String, String), String> {
        self.send(channel, message, blocks, None).await.map_err(text)
    }

    /// [`SlackApi::dm_channel`] for callers that only log the failure.
    pub async fn open_dm(&self, user: &str) -> Result<String, String> {
        self.dm_channel(user).await.map_err(text)
    }

    /// A message only `user` sees, in `channel`.
    pub async fn ephemeral(
        &self,
        channel: &str,
        user: &str,
        message: &str,
        blocks: Option<Value>,
    ) -> Result<(), String> {
        let req = SlackApiChatPostEphemeralRequest::new(channel.into(), user.into(), content(message, blocks)?);
        call_waiting!(self, "chat.postEphemeral", |s| s.chat_post_ephemeral(&req)).map(|_| ()).map_err(text)
    }

    /// Opens a modal; `view` is Block Kit JSON, checked against slack-morphism's model.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), String> {
        let view: SlackView = serde_json::from_value(view).map_err(|e| format!("view: {e}"))?;
        let req = SlackApiViewsOpenRequest::new(trigger_id.into(), view);
        tokio::time::timeout(INGRESS_BUDGET, async { call_waiting!(self, "views.open", |s| s.views_open(&req)) })
            .await
            .map_err(|_| "views.open: timed out".to_string())?
            .map(|_| ())
            .map_err(text)
    }

    /// Publishes a user's App Home tab (`views.publish`, no scope beyond the bot's own).
    pub async fn publish_home(&self, user: &str, view: Value) -> Result<(), DeliveryError> {
        let view: SlackView = serde_json::from_value(view)
            .map_err(|e| DeliveryError::permanent("invalid_view", format!("views.publish: {e}")))?;
        let req = SlackApiViewsPublishRequest::new(user.into(), view);
        call!(self, "views.publish", |s| s.views_publish(&req)).map(|_| ())
    }

    /// The members of a user group (`usergroups.users.list`, scope `usergroups:read`).
    pub async fn usergroup_members(&self, usergroup: &str) -> Result<Vec<String>, String> {
        let req = SlackApiUserGroupsUsersListRequest::new(usergroup.into());
        let r = tokio::time::timeout(INGRESS_BUDGET, async {
            call_waiting!(self, "usergroups.users.list", |s| s.usergroups_users_list(&req))
        })
        .await
        .map_err(|_| "usergroups.users.list: timed out".to_string())?
        .map_err(text)?;
        Ok(r.users.into_iter().map(|u| u.to_string()).collect())
    }

    /// A Slack user as `users.info` shows them: workspace, flags and profile.
    pub async fn user_info(&self, user: &str) -> Result<SlackUser, String> {
        let req = SlackApiUsersInfoRequest::new(user.into());
        let r =
            tokio::time::timeout(INGRESS_BUDGET, async { call_waiting!(self, "users.info", |s| s.users_info(&req)) })
                .await
                .map_err(|_| "users.info: timed out".to_string())?
                .map_err(text)?;
        Ok(r.user)
    }
}

/// The failure as the callers that only log it (or look for a code at its end) read it:
/// `views.open refused: expired_trigger_id`.
fn text(e: DeliveryError) -> String {
    match e {
        DeliveryError::Permanent { code, message, .. } => format!("{message}: {code}"),
        t => t.to_string(),
    }
}

fn content(text: &str, blocks: Option<Value>) -> Result<SlackMessageContent, DeliveryError> {
    let mut c = SlackMessageContent::new().with_text(text.to_string());
    if let Some(b) = blocks {
        let blocks: Vec<SlackBlock> = serde_json::from_value(b)
            .map_err(|e| DeliveryError::permanent("invalid_blocks", format!("blocks: {e}")))?;
        c = c.with_blocks(blocks);
    }
    Ok(c)
}
