//! The Slack Web API calls elevate makes, through slack-morphism's client. Rate limits (429) are
//! retried here, honouring `Retry-After` up to a cap; any other failure is returned as text for
//! the caller to log or to hand back to the audit feed, which retries the event later.

use serde_json::Value;
use slack_morphism::{
    errors::SlackClientError,
    hyper_tokio::{SlackClientHyperConnector, SlackHyperClient},
    prelude::*,
};
use std::time::Duration;
use tracing::warn;

/// Attempts at one call when Slack answers 429.
const RATE_LIMIT_ATTEMPTS: u32 = 3;
/// Calls made while Slack waits for an answer (`views.open`, `users.info`) give up after this,
/// so that the acknowledgement still goes out within Slack's 3 seconds.
const INGRESS_BUDGET: Duration = Duration::from_millis(2500);
/// Longest `Retry-After` honoured inline; longer waits fail the call and leave the retry to the
/// feed, so that a handler never holds up for minutes.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(30);

/// Calls one Web API method, retrying on 429 as Slack's `Retry-After` asks (up to a cap).
macro_rules! call {
    ($self:ident, $method:literal, |$s:ident| $call:expr) => {{
        let mut attempt = 0;
        loop {
            attempt += 1;
            let $s = $self.client.open_session(&$self.token);
            match $call.await {
                Ok(v) => break Ok(v),
                Err(SlackClientError::RateLimitError(e)) if attempt < RATE_LIMIT_ATTEMPTS => {
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(1));
                    if wait > MAX_INLINE_WAIT {
                        break Err(format!("{}: rate limited for {wait:?}", $method));
                    }
                    warn!(method = $method, ?wait, "Slack rate limit; retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(SlackClientError::ApiError(e)) => {
                    break Err(format!("{}: {}", $method, e.code));
                }
                Err(e) => break Err(format!("{}: {e}", $method)),
            }
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

    /// Posts a message; returns `(channel, ts)`.
    pub async fn post(&self, channel: &str, text: &str, blocks: Option<Value>) -> Result<(String, String), String> {
        let content = content(text, blocks)?;
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content);
        let r = call!(self, "chat.postMessage", |s| s.chat_post_message(&req))?;
        Ok((r.channel.to_string(), r.ts.to_string()))
    }

    pub async fn update(&self, channel: &str, ts: &str, text: &str, blocks: Option<Value>) -> Result<(), String> {
        let content = content(text, Some(blocks.unwrap_or_else(|| Value::Array(vec![]))))?;
        let req = SlackApiChatUpdateRequest::new(channel.into(), content, ts.into());
        call!(self, "chat.update", |s| s.chat_update(&req)).map(|_| ())
    }

    /// A message only `user` sees, in `channel`.
    pub async fn ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), String> {
        let req = SlackApiChatPostEphemeralRequest::new(channel.into(), user.into(), content(text, None)?);
        call!(self, "chat.postEphemeral", |s| s.chat_post_ephemeral(&req)).map(|_| ())
    }

    /// Opens a modal; `view` is Block Kit JSON, checked against slack-morphism's model.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> Result<(), String> {
        let view: SlackView = serde_json::from_value(view).map_err(|e| format!("view: {e}"))?;
        let req = SlackApiViewsOpenRequest::new(trigger_id.into(), view);
        tokio::time::timeout(INGRESS_BUDGET, async { call!(self, "views.open", |s| s.views_open(&req)) })
            .await
            .map_err(|_| "views.open: timed out".to_string())?
            .map(|_| ())
    }

    /// A Slack user as `users.info` shows them: workspace, flags and profile.
    pub async fn user_info(&self, user: &str) -> Result<SlackUser, String> {
        let req = SlackApiUsersInfoRequest::new(user.into());
        let r = tokio::time::timeout(INGRESS_BUDGET, async { call!(self, "users.info", |s| s.users_info(&req)) })
            .await
            .map_err(|_| "users.info: timed out".to_string())??;
        Ok(r.user)
    }

    /// The DM channel with `user`.
    pub async fn open_dm(&self, user: &str) -> Result<String, String> {
        let req = SlackApiConversationsOpenRequest::new().with_users(vec![user.into()]);
        let r = call!(self, "conversations.open", |s| s.conversations_open(&req))?;
        Ok(r.channel.id.to_string())
    }
}

fn content(text: &str, blocks: Option<Value>) -> Result<SlackMessageContent, String> {
    let mut c = SlackMessageContent::new().with_text(text.to_string());
    if let Some(b) = blocks {
        let blocks: Vec<SlackBlock> = serde_json::from_value(b).map_err(|e| format!("blocks: {e}"))?;
        c = c.with_blocks(blocks);
    }
    Ok(c)
}
