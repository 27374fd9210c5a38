//! Socket Mode: Slack pushes the same payloads over a WebSocket opened with the app token (no
//! public URL needed). Each is converted to the shape the HTTP routes receive and handed to the
//! same handlers, so both modes behave alike. slack-morphism acknowledges each envelope with the
//! handler's answer.
//!
//! This path cannot be exercised against real Slack from the test environment; the tests cover
//! the shared handlers through the HTTP routes.

use crate::{Slack, commands::CommandForm};
use slack_morphism::prelude::*;
use std::sync::Arc;

async fn adapter(states: &SlackClientEventsUserState) -> Option<Slack> {
    states.read().await.get_user_state::<Slack>().cloned()
}

async fn on_command(
    event: SlackCommandEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackCommandEventResponse> {
    let slack = adapter(&states).await.ok_or("Slack adapter missing")?;
    let form = CommandForm {
        team_id: event.team_id.to_string(),
        user_id: event.user_id.to_string(),
        channel_id: event.channel_id.to_string(),
        command: event.command.to_string(),
        text: event.text.unwrap_or_default(),
        trigger_id: event.trigger_id.to_string(),
        response_url: event.response_url.0.to_string(),
    };
    let answer = slack.handle_command(form).await;
    let text = answer.as_ref().and_then(|a| a["text"].as_str()).unwrap_or("").to_string();
    Ok(SlackCommandEventResponse::new(SlackMessageContent::new().with_text(text))
        .with_response_type(SlackMessageResponseType::Ephemeral))
}

async fn on_interaction(
    event: SlackInteractionEvent,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<SlackInteractionResponse> {
    let slack = adapter(&states).await.ok_or("Slack adapter missing")?;
    let payload = serde_json::to_value(&event)?;
    match slack.handle_interaction(payload).await {
        Some(answer) => {
            let response: SlackViewSubmissionResponse = serde_json::from_value(answer)?;
            Ok(SlackInteractionResponse::ViewSubmission(response))
        }
        None => Ok(SlackInteractionResponse::Empty),
    }
}

/// Events API callbacks (the App Home tab being opened), in the shape the HTTP route receives.
async fn on_event(
    event: SlackPushEventCallback,
    _client: Arc<SlackHyperClient>,
    states: SlackClientEventsUserState,
) -> UserCallbackResult<()> {
    let slack = adapter(&states).await.ok_or("Slack adapter missing")?;
    let mut callback = serde_json::to_value(&event)?;
    callback["type"] = serde_json::json!("event_callback");
    if slack.first_delivery(callback["event_id"].as_str().unwrap_or("")).await {
        slack.handle_event(&callback);
    }
    Ok(())
}

pub(crate) async fn run(slack: Slack) -> anyhow::Result<()> {
    let app_token = slack
        .settings()
        .app_token
        .clone()
        .ok_or_else(|| anyhow::anyhow!("Socket Mode needs an app token (slack.app_token_env)"))?;
    let client = Arc::new(slack.inner.api.client().clone());
    let callbacks = SlackSocketModeListenerCallbacks::new()
        .with_command_events(on_command)
        .with_interaction_events(on_interaction)
        .with_push_events(on_event);
    let env = Arc::new(
        SlackClientEventsListenerEnvironment::new(client)
            .with_error_handler(|err, _client, _states| {
                tracing::warn!(error = %err, "Slack Socket Mode error");
                axum::http::StatusCode::OK
            })
            .with_user_state(slack.clone()),
    );
    let listener = SlackClientSocketModeListener::new(&SlackClientSocketModeConfig::new(), env, callbacks);
    let token = SlackApiToken::new(SlackApiTokenValue::new(app_token));
    listener.listen_for(&token).await.map_err(|e| anyhow::anyhow!("Socket Mode: {e}"))?;
    listener.start().await;
    std::future::pending::<()>().await;
    Ok(())
}
