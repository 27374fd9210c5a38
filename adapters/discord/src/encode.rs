//! Core's typed answers as Discord messages, components and modals, and back: a button's
//! custom_id or a modal's decoded into the [`Command`] it stands for. Spans become Discord
//! markdown with typed text escaped; nothing here words or decides. Discord's limits: content
//! 2,000 characters, 5 buttons a row and 5 rows, custom_id 100, modal titles and labels 45.

use crate::{
    Discord,
    messages::{Reply, clip},
    text,
};
use elevate_core::chat::{
    Action, Answer, Block, Command, Form, FormKind, Message, Refusal, Span, Style, Text, Tone, parse_id,
};
use serenity::{
    builder::{CreateActionRow, CreateButton, CreateInputText, CreateModal},
    model::application::{ButtonStyle, InputTextStyle},
};

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn icon(tone: Tone) -> &'static str {
    match tone {
        Tone::Info => "",
        Tone::Warning => "⚠️ ",
        Tone::Alarm => "🚨 ",
        Tone::Locked => "🔒 ",
    }
}

/// A button's custom_id. Confirmations cannot carry a typed reason in 100 characters, so on
/// Discord they ask again through the form.
pub(crate) fn encode_action(a: &Action) -> String {
    match a {
        Action::RequestForm => "request:form".into(),
        Action::Approve(id) => format!("approve:{}", id.0),
        Action::Deny(id) => format!("deny:{}", id.0),
        Action::Extend(id) => format!("extend:{}", id.0),
        Action::Release(id) => format!("release:{}", id.0),
        Action::Cancel(id) => format!("cancel:{}", id.0),
        Action::Lockdown { scope, .. } => cut(&format!("lockdown:{scope}"), 100),
        Action::Revoke { id, .. } => format!("revoke:{}", id.0),
    }
}

/// The command a click stands for; a custom_id elevate did not make is refused before any
/// lookup.
pub(crate) fn decode_click(custom_id: &str) -> Result<Command, String> {
    let not_ours = || elevate_core::chat::foreign_payload().message;
    let (action, arg) = custom_id.split_once(':').ok_or_else(not_ours)?;
    let id = || parse_id(arg).map_err(|e| e.message);
    Ok(match action {
        "request" if arg == "form" => Command::from_action(Action::RequestForm),
        "approve" => Command::from_action(Action::Approve(id()?)),
        "deny" => Command::from_action(Action::Deny(id()?)),
        "extend" => Command::from_action(Action::Extend(id()?)),
        "release" => Command::from_action(Action::Release(id()?)),
        "cancel" => Command::from_action(Action::Cancel(id()?)),
        "lockdown" => Command::Lockdown { scope: arg.to_string(), reason: None },
        "revoke" => Command::Revoke { id: id()?, reason: None },
        _ => return Err(not_ours()),
    })
}

fn encode_form_kind(k: &FormKind) -> String {
    match k {
        FormKind::Request => "request".into(),
        FormKind::Deny(id) => format!("deny:{}", id.0),
        FormKind::Extend(id) => format!("extend:{}", id.0),
        FormKind::Lockdown { scope } => cut(&format!("lockdown-confirm:{scope}"), 100),
        FormKind::Revoke(id) => format!("revoke-confirm:{}", id.0),
    }
}

/// Which form was submitted; `None` for a modal that is not elevate's.
pub(crate) fn decode_form_kind(custom_id: &str) -> Option<Result<FormKind, String>> {
    if custom_id == "request" {
        return Some(Ok(FormKind::Request));
    }
    let (kind, arg) = custom_id.split_once(':')?;
    let id = || parse_id(arg).map_err(|e| e.message);
    Some(match kind {
        "deny" => id().map(FormKind::Deny),
        "extend" => id().map(FormKind::Extend),
        "lockdown-confirm" => Ok(FormKind::Lockdown { scope: arg.to_string() }),
        "revoke-confirm" => id().map(FormKind::Revoke),
        _ => return None,
    })
}

/// A form as a modal: text inputs only (a choice becomes a text input with the choices named
/// in its placeholder).
pub(crate) fn modal(f: &Form) -> CreateModal {
    let rows = f
        .inputs
        .iter()
        .take(5)
        .map(|i| {
            let style = if i.multiline { InputTextStyle::Paragraph } else { InputTextStyle::Short };
            let placeholder = match &i.choices {
                Some(c) => c.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(", "),
                None => i.placeholder.clone(),
            };
            let mut input = CreateInputText::new(style, cut(&i.label, 45), i.field.as_str())
                .placeholder(cut(&placeholder, 100))
                .required(i.required)
                .max_length(500);
            if let Some(v) = &i.value {
                input = input.value(cut(v, 500));
            }
            CreateActionRow::InputText(input)
        })
        .collect();
    CreateModal::new(encode_form_kind(&f.kind), cut(&f.title, 45)).components(rows)
}

impl Discord {
    /// Spans as Discord markdown.
    pub(crate) fn markdown(&self, t: &Text) -> String {
        t.0.iter()
            .map(|s| match s {
                Span::Plain(p) => text::escape(p),
                // Inside code nothing is formatting; only a backtick would end it early.
                Span::Code(c) => format!("`{}`", c.replace('`', "'")),
                Span::Strong(b) => format!("**{}**", text::escape(b)),
                Span::Person(p) => self.name(p.as_str()),
                Span::Channel(c) => text::channel(c),
            })
            .collect()
    }

    /// A message's text: the tone's icon, then one line per text block or list item.
    pub(crate) fn content(&self, m: &Message) -> String {
        let mut lines = Vec::new();
        for b in &m.blocks {
            match b {
                Block::Heading(t) => lines.push(format!("**{}**", self.markdown(t))),
                Block::Text(t) => lines.push(self.markdown(t)),
                Block::List(items) => lines.extend(items.iter().map(|t| format!("• {}", self.markdown(t)))),
                Block::Fields(f) => {
                    lines.extend(f.iter().map(|(k, v)| format!("**{}:** {}", text::escape(k), self.markdown(v))))
                }
                Block::Context(t) => lines.push(format!("-# {}", self.markdown(t))),
                Block::Buttons(_) => {}
            }
        }
        clip(&format!("{}{}", icon(m.tone), lines.join("\n")))
    }

    /// A message's buttons: each block of buttons on its own row (five at most), at most five
    /// rows, so buttons stay grouped as core grouped them.
    pub(crate) fn rows(&self, m: &Message) -> Vec<CreateActionRow> {
        let button = |b: &elevate_core::chat::Button| {
            let style = match b.style {
                Style::Success => ButtonStyle::Success,
                Style::Primary => ButtonStyle::Primary,
                Style::Danger => ButtonStyle::Danger,
                Style::Plain => ButtonStyle::Secondary,
            };
            CreateButton::new(encode_action(&b.action)).label(cut(&b.label, 80)).style(style)
        };
        m.blocks
            .iter()
            .filter_map(|b| if let Block::Buttons(b) = b { Some(b) } else { None })
            .flat_map(|group| group.chunks(5).map(|c| CreateActionRow::Buttons(c.iter().map(button).collect())))
            .take(5)
            .collect()
    }

    pub(crate) fn refusal_line(&self, r: &Refusal) -> String {
        clip(&format!("⚠️ {}", self.markdown(&r.text)))
    }

    /// The interaction response for an answer.
    pub(crate) fn reply(&self, answer: Answer) -> Reply {
        match answer {
            Answer::Private(m) => Reply::Private(self.content(&m), self.rows(&m)),
            Answer::Refused(r) => Reply::Private(self.refusal_line(&r), Vec::new()),
            Answer::Form(f) => Reply::Modal(modal(&f)),
            Answer::Nothing => Reply::Ack,
        }
    }
}

#[cfg(test)]
mod properties {
    //! Whatever custom_id a click or modal carries, decoding never panics, anything elevate did
    //! not make is refused with a message, and elevate's own ids decode to their command.
    use super::*;
    use elevate_core::RequestId;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_custom_id_decodes_or_is_refused(kind in "(approve|deny|extend|release|cancel|lockdown|revoke|request|x)?", sep in "[:]?", arg in "\\PC{0,40}") {
            let id = format!("{kind}{sep}{arg}");
            if let Err(why) = decode_click(&id) {
                prop_assert!(!why.trim().is_empty());
            }
            if let Some(Err(why)) = decode_form_kind(&id) {
                prop_assert!(!why.trim().is_empty());
            }
        }

        #[test]
        fn elevates_own_buttons_decode_to_their_command(id in 1i64..i64::MAX) {
            let approve = encode_action(&Action::Approve(RequestId(id)));
            prop_assert_eq!(decode_click(&approve), Ok(Command::Approve(RequestId(id))));
        }
    }
}
