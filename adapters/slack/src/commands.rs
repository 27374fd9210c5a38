//! `/elevate …` in Slack: decode the slash command into core's [`Command`], let core handle it,
//! encode the answer. Answers are ephemeral (only the caller sees them).

use crate::{PLATFORM, Slack, encode};
use elevate_core::{
    chat::{self, Answer, Command, Ctx, Handled, Syntax},
    policy::Caller,
    request::Source,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// A slash command as Slack posts it (form-encoded), reduced to what elevate reads.
#[derive(Debug, Clone, Deserialize)]
pub struct CommandForm {
    pub team_id: String,
    pub user_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub trigger_id: String,
    #[serde(default)]
    pub response_url: String,
}

impl Slack {
    /// Handles one slash command; the returned JSON is the immediate (ephemeral) answer, `None`
    /// for an empty acknowledgement (a modal was opened).
    pub async fn handle_command(&self, form: CommandForm) -> Option<Value> {
        if !self.first_delivery(&form.trigger_id).await {
            return Some(json!({ "response_type": "ephemeral", "text": chat::ALREADY_RECEIVED }));
        }
        let caller = match self.caller(&form.team_id, &form.user_id).await {
            Ok(c) => c,
            Err(e) => {
                return self.encode_command_answer(&form, Answer::Refused(chat::refusal(e.into(), PLATFORM))).await;
            }
        };
        let handled = match Command::parse(&form.text) {
            Ok(command) => self.run(&caller, &form.team_id, &form.channel_id, command).await,
            Err(e) => Answer::Refused(chat::refusal(e.into(), PLATFORM)).into(),
        };
        if let Some(id) = handled.created {
            // After the answer: the request is committed and the person is told so at once;
            // this second write only helps DMs find them (see `chat::requester_user`).
            let (slack, user) = (self.clone(), form.user_id.clone());
            self.later(async move { slack.remember_requester(id, &user).await });
        }
        self.encode_command_answer(&form, handled.answer).await
    }

    /// Runs a command for a Slack caller through core's one handler.
    pub(crate) async fn run(&self, caller: &Caller, team: &str, channel: &str, command: Command) -> Handled {
        let source = Source {
            platform: PLATFORM.into(),
            tenant: Some(team.to_string()),
            channel: Some(channel.to_string()).filter(|c| !c.is_empty()),
        };
        let ctx = Ctx {
            service: &self.inner.service,
            caller,
            source,
            syntax: Syntax::Words,
            role_channel: |r| r.slack_channel.as_ref(),
        };
        chat::handle(&ctx, command).await
    }

    async fn encode_command_answer(&self, form: &CommandForm, answer: Answer) -> Option<Value> {
        match answer {
            Answer::Private(m) => Some(self.ephemeral(&m)),
            Answer::Refused(r) => Some(json!({ "response_type": "ephemeral", "text": self.refusal_line(&r) })),
            Answer::Form(f) => match self.inner.api.open_view(&form.trigger_id, encode::view(&f)).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "views.open failed");
                    Some(json!({ "response_type": "ephemeral", "text":
                        ":warning: Slack did not open the form in time; type the command with its arguments instead (`/elevate help`)." }))
                }
            },
            Answer::Nothing => None,
        }
    }

    /// Keeps the requester's Slack user with the request, so DMs reach them after a restart even
    /// when the policy knows them only by email.
    pub(crate) async fn remember_requester(&self, id: elevate_core::RequestId, user: &str) {
        chat::remember_requester(self.inner.refs.as_ref(), PLATFORM, id, user).await;
    }
}
