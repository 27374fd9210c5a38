//! `/elevate` and its sub-commands: the definition registered with Discord, the decoding of an
//! invocation into core's [`Command`], and the role autocomplete. Core handles the command;
//! answers are ephemeral (only the caller sees them).

use crate::{Discord, PLATFORM, identity::user_id, messages::Reply};
use elevate_core::{
    chat::{self, Answer, Command, Ctx, Handled, Syntax},
    policy::Caller,
    request::Source,
};
use serde_json::Value;
use serenity::{
    builder::{CreateCommand, CreateCommandOption},
    model::application::{CommandOptionType, InteractionContext},
};

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
        .add_option(option(SubCommand, "mine", "Your access with buttons, and what waits for your decision", false))
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
            option(SubCommand, "approve", "Approve a request (approvers)", false).add_sub_option(id_option(true)),
        )
        .add_option(
            option(SubCommand, "deny", "Deny a request (approvers)", false)
                .add_sub_option(id_option(true))
                .add_sub_option(
                    option(Text, "reason", "Why it is denied (a form asks if empty)", false).max_length(500),
                ),
        )
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

impl Discord {
    /// Handles one `/elevate …` (interaction type 2).
    pub(crate) async fn command(&self, p: &Value) -> Reply {
        let caller = match self.caller(p) {
            Ok(c) => c,
            Err(e) => return self.reply(Answer::Refused(chat::refusal(e.into(), PLATFORM))),
        };
        let (name, options) = subcommand(p);
        let handled = match Command::from_options(name, &|k| opt(options, k)) {
            Ok(command) => self.run(&caller, p, command).await,
            Err(e) => Answer::Refused(chat::refusal(e.into(), PLATFORM)).into(),
        };
        if let Some(id) = handled.created {
            // After the answer: the request is committed and the person is told so at once;
            // this second write only helps DMs find them (see `chat::requester_user`).
            let (refs, user) = (self.inner.refs.clone(), user_id(p).to_string());
            self.later(async move { chat::remember_requester(refs.as_ref(), PLATFORM, id, &user).await });
        }
        self.reply(handled.answer)
    }

    /// Runs a command for a Discord caller through core's one handler.
    pub(crate) async fn run(&self, caller: &Caller, p: &Value, command: Command) -> Handled {
        let source = Source {
            platform: PLATFORM.into(),
            tenant: p["guild_id"].as_str().map(String::from),
            channel: p["channel_id"].as_str().map(String::from),
        };
        let ctx = Ctx {
            service: &self.inner.service,
            caller,
            source,
            syntax: Syntax::Options,
            role_channel: |r| r.discord_channel.as_ref(),
        };
        chat::handle(&ctx, command).await
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
}
