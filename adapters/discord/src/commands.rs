//! `/elevate` and its sub-commands: the definition registered with Discord, one function per
//! sub-command, and the role autocomplete. Answers are ephemeral (only the caller sees them);
//! every refusal names the problem and, through core's messages, the fix.

use crate::{Discord, PLATFORM, identity::user_id, messages::Reply, text};
use elevate_core::{CoreError, RequestId, UserError, chat, policy::Caller, request::Source, service::RequestInput};
use serde_json::Value;
use serenity::{
    builder::{CreateCommand, CreateCommandOption},
    model::application::{CommandOptionType, InteractionContext},
};

const HELP: &str = "**elevate**: just-in-time access.\n\
• `/elevate request role duration reason [ticket]`: ask for a role, e.g. `prod-db 2h INC-4211 fix replication lag`\n\
• `/elevate status`: your pending requests and active grants\n\
• `/elevate release [id]`: give access back early\n\
• `/elevate extend id duration [reason]`: ask for more time\n\
• `/elevate cancel id`: withdraw a pending request";

fn option(kind: CommandOptionType, name: &str, description: &str, required: bool) -> CreateCommandOption {
    CreateCommandOption::new(kind, name, description).required(required)
}

fn id_option(required: bool) -> CreateCommandOption {
    option(CommandOptionType::Integer, "id", "Request number, e.g. 41", required).min_int_value(1)
}

/// `/elevate` as registered. The role is autocompleted from what the member may request (the
/// list depends on who asks, so fixed choices cannot express it). Guild-only: elevate's
/// authority checks read the member's server roles.
pub fn elevate_command() -> CreateCommand {
    use CommandOptionType::{String as Text, SubCommand};
    CreateCommand::new("elevate")
        .description("Just-in-time access: ask for a role for a while, with a reason")
        .contexts(vec![InteractionContext::Guild])
        .add_option(
            option(SubCommand, "request", "Ask for a role", false)
                .add_sub_option(option(Text, "role", "The role you need", true).set_autocomplete(true))
                .add_sub_option(option(Text, "reason", "What you need it for", true).max_length(500))
                .add_sub_option(option(Text, "duration", "How long, e.g. 30m or 2h (default: the role's)", false))
                .add_sub_option(option(Text, "ticket", "A ticket, e.g. INC-4211", false).max_length(100)),
        )
        .add_option(option(SubCommand, "status", "Your pending requests and active grants", false))
        .add_option(option(SubCommand, "release", "Give access back early", false).add_sub_option(id_option(false)))
        .add_option(
            option(SubCommand, "extend", "Ask for more time on an active grant", false)
                .add_sub_option(id_option(true))
                .add_sub_option(option(Text, "duration", "How much more, e.g. 30m", true))
                .add_sub_option(option(Text, "reason", "Why more time", false).max_length(500)),
        )
        .add_option(option(SubCommand, "cancel", "Withdraw a pending request", false).add_sub_option(id_option(true)))
        .add_option(option(SubCommand, "help", "How to use elevate", false))
        .add_option(
            option(SubCommand, "breakglass", "Emergency access without approval (alerts security)", false)
                .add_sub_option(option(Text, "role", "The role you need", true).set_autocomplete(true))
                .add_sub_option(option(Text, "duration", "How long, e.g. 30m", true))
                .add_sub_option(option(Text, "justification", "What is on fire", true).max_length(500)),
        )
        .add_option(
            option(SubCommand, "review", "Close the review of a break-glass grant (security)", false)
                .add_sub_option(id_option(true))
                .add_sub_option(
                    option(Text, "note", "What happened and whether it was justified", true).max_length(500),
                ),
        )
        .add_option(
            option(SubCommand, "revoke", "Take a grant away now (approvers, security)", false)
                .add_sub_option(id_option(true)),
        )
        .add_option(
            option(
                SubCommand,
                "lockdown",
                "Kill switch: refuse a role (or all) and revoke its grants (security)",
                false,
            )
            .add_sub_option(option(Text, "scope", "A role name, or all", true)),
        )
        .add_option(option(SubCommand, "unlock", "Lift a lockdown (security)", false).add_sub_option(option(
            Text,
            "scope",
            "A role name, or all",
            true,
        )))
}

/// The sub-command and its options.
fn subcommand(p: &Value) -> (&str, &[Value]) {
    let sub = &p["data"]["options"][0];
    (sub["name"].as_str().unwrap_or(""), sub["options"].as_array().map(Vec::as_slice).unwrap_or(&[]))
}

/// An option's value as text (integers included); `None` when absent or empty.
fn opt(options: &[Value], name: &str) -> Option<String> {
    let v = &options.iter().find(|o| o["name"] == name)?["value"];
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(s).filter(|s| !s.is_empty())
}

fn id_of(options: &[Value]) -> Result<Option<RequestId>, CoreError> {
    opt(options, "id").map(|s| RequestId::parse(&s).map_err(|e| UserError::invalid(e).into())).transpose()
}

/// A refusal as the caller sees it. Core's wording is kept as written (its backticks are
/// formatting): a refusal is ephemeral, shown only to the person whose input it quotes, and like
/// every message it goes out with mentions disabled.
pub(crate) fn refusal(e: CoreError) -> String {
    format!(":warning: {}", chat::refusal(e, PLATFORM))
}

impl Discord {
    /// Handles one `/elevate …` (interaction type 2).
    pub(crate) async fn command(&self, p: &Value) -> Reply {
        let caller = match self.caller(p) {
            Ok(c) => c,
            Err(e) => return Reply::Ephemeral(refusal(e.into())),
        };
        let (name, options) = subcommand(p);
        let result = match name {
            "request" => self.request(&caller, p, options).await,
            "status" => chat::status(&self.inner.service, &caller).await,
            "release" => self.release(&caller, options).await,
            "extend" => self.extend(&caller, options).await,
            "cancel" => self.cancel(&caller, options).await,
            "breakglass" | "review" | "revoke" | "lockdown" | "unlock" => {
                let get = |k: &str| opt(options, k);
                match self.control_command(&caller, p, name, &get).await {
                    Some(reply) => return reply,
                    None => Ok(String::new()),
                }
            }
            _ => Ok(format!(
                "{HELP}{}\n{}",
                crate::controls::HELP,
                chat::requestable(&self.inner.service.policy(), &caller)
            )),
        };
        Reply::Ephemeral(result.unwrap_or_else(refusal))
    }

    /// Role suggestions while typing (interaction type 4): only roles this member may request,
    /// as the policy and their server roles say now.
    pub(crate) fn autocomplete(&self, p: &Value) -> Reply {
        let Ok(caller) = self.caller(p) else { return Reply::Choices(Vec::new()) };
        let (_, options) = subcommand(p);
        let typed = options
            .iter()
            .find(|o| o["focused"] == true)
            .and_then(|o| o["value"].as_str())
            .unwrap_or("")
            .to_lowercase();
        let policy = self.inner.service.policy();
        let choices = policy
            .requestable_roles(&caller)
            .into_iter()
            .filter(|r| r.name.as_str().contains(&typed))
            .map(|r| (format!("{} (up to {})", r.name, r.max_duration), r.name.to_string()))
            .collect();
        Reply::Choices(choices)
    }

    async fn request(&self, caller: &Caller, p: &Value, options: &[Value]) -> Result<String, CoreError> {
        let input = RequestInput {
            role: opt(options, "role").unwrap_or_default(),
            duration: opt(options, "duration"),
            reason: opt(options, "reason").unwrap_or_default(),
            ticket: opt(options, "ticket"),
            source: Source {
                platform: PLATFORM.into(),
                tenant: p["guild_id"].as_str().map(String::from),
                channel: p["channel_id"].as_str().map(String::from),
            },
        };
        let req = self.inner.service.request(caller, input).await?;
        // After the answer: the request is committed and the person is told so at once; this
        // second write only helps DMs find them (see `chat::requester_user`).
        let (refs, user) = (self.inner.refs.clone(), user_id(p).to_string());
        self.later(async move { chat::remember_requester(refs.as_ref(), PLATFORM, req.id, &user).await });
        Ok(self.sent_message(&req))
    }

    pub(crate) fn sent_message(&self, req: &elevate_core::Request) -> String {
        let policy = self.inner.service.policy();
        let to = policy.roles.get(&req.role).and_then(|r| r.discord_channel.as_deref()).map(text::channel);
        chat::request_sent(&policy, req, to)
    }

    async fn release(&self, caller: &Caller, options: &[Value]) -> Result<String, CoreError> {
        chat::release(&self.inner.service, caller, id_of(options)?, "`/elevate release id`").await
    }

    async fn extend(&self, caller: &Caller, options: &[Value]) -> Result<String, CoreError> {
        let id =
            id_of(options)?.ok_or_else(|| UserError::invalid("Say which request: `/elevate extend id duration`."))?;
        let duration = opt(options, "duration").unwrap_or_default();
        self.extend_by(caller, id, &duration, opt(options, "reason").as_deref()).await
    }

    /// Asks for more time; shared by the command and the Extend button's form.
    pub(crate) async fn extend_by(
        &self,
        caller: &Caller,
        id: RequestId,
        duration: &str,
        reason: Option<&str>,
    ) -> Result<String, CoreError> {
        let out = self.inner.service.extend(caller, id, duration, reason).await?;
        Ok(chat::extension_sent(&out, self.sent_message(&out.extension)))
    }

    async fn cancel(&self, caller: &Caller, options: &[Value]) -> Result<String, CoreError> {
        let id = id_of(options)?.ok_or_else(|| UserError::invalid("Say which request: `/elevate cancel id`."))?;
        let req = self.inner.service.cancel(caller, id).await?;
        Ok(format!("Cancelled {}.", req.id))
    }
}
