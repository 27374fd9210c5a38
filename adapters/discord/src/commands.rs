//! `/elevate` and its sub-commands: the definition registered with Discord, the decoding of an
//! invocation into core's [`Command`], and the role autocomplete. Core handles the command;
//! answers are ephemeral (only the caller sees them).

use crate::{Discord, PLATFORM, identity::user_id, messages::Reply};
use elevate_core::{
    chat::{self, Answer, Arg, ArgKind, Command, Ctx, Handled, Syntax},
    policy::Caller,
    request::Source,
};
use serde_json::Value;
use serenity::{
    builder::{CreateCommand, CreateCommandOption},
    model::application::{CommandOptionType, InteractionContext},
};

fn option(kind: CommandOptionType, name: &str, description: &str, required: bool) -> CreateCommandOption {
    // Discord refuses descriptions over 100 characters.
    let description: String = description.chars().take(100).collect();
    CreateCommandOption::new(kind, name, description).required(required)
}

/// One argument of core's command model as a typed option.
fn argument(a: &Arg) -> CreateCommandOption {
    use CommandOptionType::{Integer, String as Text};
    match a.kind {
        ArgKind::Id => option(Integer, a.name, a.what, a.required).min_int_value(1),
        ArgKind::Role => option(Text, a.name, a.what, a.required).set_autocomplete(true),
        ArgKind::Duration | ArgKind::Scope => option(Text, a.name, a.what, a.required).max_length(40),
        ArgKind::Text => option(Text, a.name, a.what, a.required).max_length(500),
    }
}

/// `/elevate` as registered: one sub-command per entry of core's command model, so Discord
/// offers exactly what core handles. The role is autocompleted from what the member may request
/// (the list depends on who asks, so fixed choices cannot express it). Guild-only: elevate's
/// authority checks read the member's server roles.
pub fn elevate_command() -> CreateCommand {
    let subs = chat::USAGES.iter().map(|u| {
        u.args
            .iter()
            .fold(option(CommandOptionType::SubCommand, u.name, u.what, false), |o, a| o.add_sub_option(argument(a)))
    });
    CreateCommand::new("elevate")
        .description("Just-in-time access: ask for a role for a while, with a reason")
        .contexts(vec![InteractionContext::Guild])
        .set_options(subs.chain([option(CommandOptionType::SubCommand, "help", "How to use elevate", false)]).collect())
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
        let caller = match self.caller(p).await {
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
        let Some(caller) = self.quiet_caller(p) else { return Reply::Choices(Vec::new()) };
        let (_, options) = subcommand(p);
        let typed = options
            .iter()
            .find(|o| o["focused"] == true)
            .and_then(|o| o["value"].as_str())
            .unwrap_or("")
            .to_lowercase();
        let policy = self.inner.service.policy();
        // Several roles are typed with commas: suggest for the last one, keeping the others.
        let (done, last) = match typed.rsplit_once(',') {
            Some((done, last)) => (format!("{done},"), last.to_string()),
            None => (String::new(), typed),
        };
        let roles = policy.requestable_roles(&caller);
        let bundles = policy
            .bundles
            .values()
            .filter(|b| b.roles.iter().all(|n| roles.iter().any(|r| r.name == *n)))
            .filter(|b| b.name.as_str().contains(&last))
            .map(|b| (format!("{done}{} (bundle of {})", b.name, b.roles.len()), format!("{done}{}", b.name)));
        let choices = roles
            .iter()
            .filter(|r| r.name.as_str().contains(&last))
            .map(|r| (format!("{done}{} (up to {})", r.name, r.max_duration), format!("{done}{}", r.name)))
            .chain(bundles)
            .take(25)
            .collect();
        Reply::Choices(choices)
    }
}
