//! What elevate shows in Discord: answers to interactions, the approval message, DMs and
//! modals, built with serenity's builders. Every message goes out with `allowed_mentions`
//! empty, and every piece of typed text is escaped here, at render time. A button's custom_id is
//! `action:request-number` and nothing else: who may press it is decided when the click arrives.

use crate::{Discord, text::escape};
use elevate_core::{Request, RequestId, State, chat, render};
use serenity::{
    builder::{
        CreateActionRow, CreateAllowedMentions, CreateAutocompleteResponse, CreateButton, CreateInputText,
        CreateInteractionResponse, CreateInteractionResponseMessage, CreateModal,
    },
    model::application::{ButtonStyle, InputTextStyle},
};

pub(crate) const APPROVE: &str = "approve";
pub(crate) const DENY: &str = "deny";
pub(crate) const EXTEND: &str = "extend";

/// No pings, whatever the text says: `{"parse": [], "users": [], "roles": []}`.
pub(crate) fn quiet() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// `approve:41`.
pub(crate) fn custom_id(action: &str, id: RequestId) -> String {
    format!("{action}:{}", id.0)
}

/// The action and request of a custom_id elevate made; `None` for anything else.
pub(crate) fn parse_custom_id(s: &str) -> Option<(&str, RequestId)> {
    let (action, id) = s.split_once(':')?;
    Some((action, RequestId::parse(id).ok()?))
}

/// The answer to one interaction, before it is turned into Discord's response (or, when it came
/// too late, into a follow-up).
#[derive(Debug)]
pub(crate) enum Reply {
    /// A message only the caller sees (flags 64).
    Ephemeral(String),
    /// Nothing to say: the message stays as it is (type 6); the notifier edits it.
    Ack,
    /// Open a form (type 9).
    Modal(CreateModal),
    /// Autocomplete suggestions (type 8): `(label, value)`, at most 25.
    Choices(Vec<(String, String)>),
}

impl Reply {
    pub fn response(self) -> CreateInteractionResponse {
        match self {
            Reply::Ephemeral(text) => CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new().content(clip(&text)).ephemeral(true).allowed_mentions(quiet()),
            ),
            Reply::Ack => CreateInteractionResponse::Acknowledge,
            Reply::Modal(m) => CreateInteractionResponse::Modal(m),
            Reply::Choices(choices) => CreateInteractionResponse::Autocomplete(
                choices
                    .into_iter()
                    .take(25)
                    .fold(CreateAutocompleteResponse::new(), |r, (label, value)| r.add_string_choice(label, value)),
            ),
        }
    }
}

/// Discord refuses message content over 2000 characters.
pub(crate) fn clip(text: &str) -> String {
    if text.chars().count() <= 2000 { text.to_string() } else { text.chars().take(1999).collect::<String>() + "…" }
}

fn button(label: &str, action: &str, id: RequestId, style: ButtonStyle) -> CreateButton {
    CreateButton::new(custom_id(action, id)).label(label).style(style)
}

impl Discord {
    /// The approval message: who asks for what and why, and where it stands.
    pub(crate) fn card_content(&self, req: &Request) -> String {
        let policy = self.inner.service.policy();
        let required = policy.roles.get(&req.role).map(|r| r.approvals_required).unwrap_or(1);
        let who = self.name(req.requester.as_str());
        let mut lines = vec![format!("**{}**", chat::card_title(req, &who))];
        lines.push(format!("**Reason:** {}", escape(req.reason.as_str())));
        if let Some(t) = &req.ticket {
            lines.push(format!("**Ticket:** {}", escape(t)));
        }
        lines.push(render::card_status(req, required, &|p| self.name(p), &escape));
        clip(&lines.join("\n"))
    }

    /// Approve and Deny while the request is pending; nothing (buttons removed) once it is not.
    pub(crate) fn card_buttons(&self, req: &Request) -> Vec<CreateActionRow> {
        if req.state != State::Pending {
            return Vec::new();
        }
        vec![CreateActionRow::Buttons(vec![
            button("Approve", APPROVE, req.id, ButtonStyle::Success),
            button("Deny", DENY, req.id, ButtonStyle::Danger),
        ])]
    }
}

/// The Extend button under an expiry warning.
pub(crate) fn extend_buttons(id: RequestId) -> Vec<CreateActionRow> {
    vec![CreateActionRow::Buttons(vec![button("Extend", EXTEND, id, ButtonStyle::Primary)])]
}

fn field(style: InputTextStyle, label: &str, id: &str, placeholder: &str, required: bool) -> CreateActionRow {
    CreateActionRow::InputText(
        CreateInputText::new(style, label, id).placeholder(placeholder).required(required).max_length(500),
    )
}

/// Deny asks for a reason; the modal's custom_id carries the request number.
pub(crate) fn deny_modal(id: RequestId) -> CreateModal {
    CreateModal::new(custom_id(DENY, id), format!("Deny request {id}")).components(vec![field(
        InputTextStyle::Paragraph,
        "Reason",
        "reason",
        "Why is this denied?",
        true,
    )])
}

/// Extend asks for how much longer, and why.
pub(crate) fn extend_modal(id: RequestId) -> CreateModal {
    CreateModal::new(custom_id(EXTEND, id), format!("Extend {id}")).components(vec![
        field(InputTextStyle::Short, "More time", "duration", "e.g. 30m", true),
        field(InputTextStyle::Paragraph, "Reason", "reason", "Why more time?", false),
    ])
}
