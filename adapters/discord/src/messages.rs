//! What elevate shows in Discord: the interaction response, the approval message and DMs, built
//! with serenity's builders. Every message goes out with `allowed_mentions` empty, and every
//! piece of typed text is escaped here, at render time. A button's custom_id is
//! `action:request-number` and nothing else: who may press it is decided when the click arrives.

use crate::encode::encode_action;
use elevate_core::{RequestId, chat::Action};
use serenity::{
    builder::{
        CreateActionRow, CreateAllowedMentions, CreateAutocompleteResponse, CreateButton, CreateInteractionResponse,
        CreateInteractionResponseMessage, CreateModal,
    },
    model::application::ButtonStyle,
};

/// No pings, whatever the text says: `{"parse": [], "users": [], "roles": []}`.
pub(crate) fn quiet() -> CreateAllowedMentions {
    CreateAllowedMentions::new()
}

/// The answer to one interaction, before it is turned into Discord's response (or, when it came
/// too late, into a follow-up).
#[derive(Debug)]
pub(crate) enum Reply {
    /// A message only the caller sees (flags 64), with its buttons.
    Private(String, Vec<CreateActionRow>),
    /// Nothing to say: the message stays as it is (type 6); the notifier edits it.
    Ack,
    /// Open a form (type 9).
    Modal(CreateModal),
    /// Autocomplete suggestions (type 8): `(label, value)`, at most 25.
    Choices(Vec<(String, String)>),
}

impl Reply {
    /// A private line with no buttons.
    pub fn private(text: impl Into<String>) -> Self {
        Reply::Private(text.into(), Vec::new())
    }

    pub fn response(self) -> CreateInteractionResponse {
        match self {
            Reply::Private(text, rows) => CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new()
                    .content(clip(&text))
                    .components(rows)
                    .ephemeral(true)
                    .allowed_mentions(quiet()),
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

fn button(label: &str, action: Action, style: ButtonStyle) -> CreateButton {
    CreateButton::new(encode_action(&action)).label(label).style(style)
}

/// The Extend button under an expiry warning.
pub(crate) fn extend_buttons(id: RequestId) -> Vec<CreateActionRow> {
    vec![CreateActionRow::Buttons(vec![button("Extend", Action::Extend(id), ButtonStyle::Primary)])]
}
