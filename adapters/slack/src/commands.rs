//! `/elevate …`: one function per sub-command. Answers are ephemeral (only the caller sees
//! them); every refusal names the problem and, through core's messages, the fix.

use crate::{PLATFORM, Slack, blocks, text};
use elevate_core::{CoreError, RequestId, UserError, chat, policy::Caller, request::Source, service::RequestInput};
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

const HELP: &str = "*elevate*: just-in-time access.\n\
• `/elevate ROLE DURATION REASON…`: ask for a role, e.g. `/elevate prod-db 2h INC-4211 fix replication lag`\n\
• `/elevate`: the same, in a form\n\
• `/elevate status`: your pending requests and active grants\n\
• `/elevate release [ID]`: give access back early\n\
• `/elevate extend ID DURATION`: ask for more time\n\
• `/elevate cancel ID`: withdraw a pending request";

/// An ephemeral answer.
pub(crate) fn ephemeral(text: impl Into<String>) -> Value {
    json!({ "response_type": "ephemeral", "text": text.into() })
}

/// A refusal as the person sees it; internals are logged with a reference instead.
pub(crate) fn refusal(e: CoreError) -> String {
    format!(":warning: {}", text::escape(&chat::refusal(e, PLATFORM)))
}

impl Slack {
    /// Handles one slash command; the returned JSON is the immediate (ephemeral) answer, `None`
    /// for an empty acknowledgement (a modal was opened).
    pub async fn handle_command(&self, form: CommandForm) -> Option<Value> {
        let caller = match self.caller(&form.team_id, &form.user_id).await {
            Ok(c) => c,
            Err(e) => return Some(ephemeral(refusal(e.into()))),
        };
        let text = form.text.trim();
        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or("");
        let rest: Vec<&str> = words.collect();
        let result = match first {
            "" => return self.open_request_modal(&caller, &form.trigger_id).await,
            "help" => Ok(self.help(&caller)),
            "status" => chat::status(&self.inner.service, &caller).await,
            "release" => self.release(&caller, rest.first().copied()).await,
            "extend" => self.extend(&caller, &rest).await,
            "cancel" => self.cancel(&caller, rest.first().copied()).await,
            control @ ("breakglass" | "review" | "lockdown" | "unlock" | "revoke") => {
                let answer = self.control_command(&caller, &form.team_id, &form.channel_id, control, &rest).await;
                return Some(match answer {
                    Some(Ok(v)) => v,
                    Some(Err(e)) => ephemeral(refusal(e)),
                    None => ephemeral(refusal(UserError::invalid("Unknown command.").into())),
                });
            }
            role => self.request(&caller, &form, role, &rest).await,
        };
        Some(ephemeral(result.unwrap_or_else(refusal)))
    }

    fn help(&self, caller: &Caller) -> String {
        format!("{HELP}{}\n{}", crate::controls::HELP, chat::requestable(&self.inner.service.policy(), caller))
    }

    async fn open_request_modal(&self, caller: &Caller, trigger_id: &str) -> Option<Value> {
        let policy = self.inner.service.policy();
        let roles = policy.requestable_roles(caller);
        if roles.is_empty() {
            return Some(ephemeral(
                ":warning: There is no role you may request. Ask an elevate admin to add you to a requester group.",
            ));
        }
        match self.inner.api.open_view(trigger_id, blocks::request_modal(&roles)).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "views.open failed");
                Some(ephemeral(
                    ":warning: Slack did not open the form in time. Type it instead: `/elevate ROLE DURATION REASON…`",
                ))
            }
        }
    }

    async fn request(
        &self,
        caller: &Caller,
        form: &CommandForm,
        role: &str,
        rest: &[&str],
    ) -> Result<String, CoreError> {
        // The second word is the duration when it starts with a digit (`2h`); otherwise the
        // role's default applies and everything after the role is the reason.
        let (duration, reason) = match rest.split_first() {
            Some((d, r)) if d.starts_with(|c: char| c.is_ascii_digit()) => (Some(d.to_string()), r.join(" ")),
            _ => (None, rest.join(" ")),
        };
        let input = RequestInput {
            role: role.to_string(),
            duration,
            reason,
            ticket: None,
            source: Source {
                platform: PLATFORM.into(),
                tenant: Some(form.team_id.clone()),
                channel: Some(form.channel_id.clone()).filter(|c| !c.is_empty()),
            },
        };
        let req = self.inner.service.request(caller, input).await?;
        // After the answer: the request is committed and the person is told so at once; this
        // second write only helps DMs find them (see `chat::requester_user`).
        let (slack, user) = (self.clone(), form.user_id.clone());
        self.later(async move { slack.remember_requester(req.id, &user).await });
        Ok(self.sent_message(&req))
    }

    /// Keeps the requester's Slack user with the request, so DMs reach them after a restart even
    /// when the policy knows them only by email.
    pub(crate) async fn remember_requester(&self, id: RequestId, user: &str) {
        chat::remember_requester(self.inner.refs.as_ref(), PLATFORM, id, user).await;
    }

    pub(crate) fn sent_message(&self, req: &elevate_core::Request) -> String {
        let policy = self.inner.service.policy();
        let to = policy.roles.get(&req.role).and_then(|r| r.slack_channel.as_deref()).map(text::channel);
        chat::request_sent(&policy, req, to)
    }

    async fn release(&self, caller: &Caller, id: Option<&str>) -> Result<String, CoreError> {
        let id = id.map(RequestId::parse).transpose().map_err(UserError::invalid)?;
        chat::release(&self.inner.service, caller, id, "`/elevate release ID`").await
    }

    async fn extend(&self, caller: &Caller, args: &[&str]) -> Result<String, CoreError> {
        let [id, duration, reason @ ..] = args else {
            return Err(UserError::invalid(
                "Usage: `/elevate extend ID DURATION [REASON…]`, e.g. `/elevate extend 41 30m`.",
            )
            .into());
        };
        let id = RequestId::parse(id).map_err(UserError::invalid)?;
        let reason = reason.join(" ");
        let out = self.inner.service.extend(caller, id, duration, Some(&reason)).await?;
        Ok(chat::extension_sent(&out, self.sent_message(&out.extension)))
    }

    async fn cancel(&self, caller: &Caller, id: Option<&str>) -> Result<String, CoreError> {
        let id = RequestId::parse(id.unwrap_or("")).map_err(UserError::invalid)?;
        let req = self.inner.service.cancel(caller, id).await?;
        Ok(format!("Cancelled {}.", req.id))
    }
}
