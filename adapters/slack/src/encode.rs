//! Core's typed answers in Block Kit: spans as mrkdwn (what people typed escaped, names as
//! mentions), blocks, buttons whose value is only what core put in the [`Action`], and forms as
//! modals. Nothing here words or decides; it only follows Slack's documented limits.

use crate::{Slack, text};
use elevate_core::{
    Field, RequestId,
    chat::{Action, Answer, Block, Button, Form, FormKind, Message, Refusal, Span, Style, Text, Tone},
};
use serde_json::{Value, json};

/// The "Request access" button (App Home, `mine`): opens the request form.
pub(crate) const REQUEST_FORM_BUTTON: &str = "elevate_request_form";
pub(crate) const APPROVE: &str = "elevate_approve";
pub(crate) const DENY: &str = "elevate_deny";
pub(crate) const EXTEND: &str = "elevate_extend";
pub(crate) const RELEASE: &str = "elevate_release";
pub(crate) const CANCEL: &str = "elevate_cancel";
pub(crate) const CONFIRM_LOCKDOWN: &str = "elevate_confirm_lockdown";
pub(crate) const CONFIRM_REVOKE: &str = "elevate_confirm_revoke";

pub(crate) const REQUEST_FORM: &str = "elevate_request";
/// The global shortcut "Request elevated access" (see the manifest).
pub(crate) const SHORTCUT_REQUEST: &str = "elevate_request_access";
/// The message shortcut "Show this elevate request" (see the manifest).
pub(crate) const SHORTCUT_SHOW: &str = "elevate_show_request";
pub(crate) const DENY_FORM: &str = "elevate_deny";
pub(crate) const EXTEND_FORM: &str = "elevate_extend";
pub(crate) const LOCKDOWN_FORM: &str = "elevate_lockdown";
pub(crate) const REVOKE_FORM: &str = "elevate_revoke";

/// Slack shows at most 3,000 characters in a section and 150 under a form field; titles of
/// modals take 24.
const SECTION_MAX: usize = 3000;
const FIELD_ERROR_MAX: usize = 150;
const TITLE_MAX: usize = 24;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { s.chars().take(max - 1).collect::<String>() + "…" }
}

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text })
}

fn section(mrkdwn: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(&mrkdwn, SECTION_MAX) } })
}

fn icon(tone: Tone) -> &'static str {
    match tone {
        Tone::Info => "",
        Tone::Warning => ":warning: ",
        Tone::Alarm => ":rotating_light: ",
        Tone::Locked => ":lock: ",
    }
}

fn foreign() -> String {
    elevate_core::chat::foreign_payload().message
}

/// A button's `action_id` and `value`.
pub(crate) fn encode_action(a: &Action) -> (&'static str, String) {
    match a {
        Action::RequestForm => (REQUEST_FORM_BUTTON, String::new()),
        Action::Approve(id) => (APPROVE, id.0.to_string()),
        Action::Deny(id) => (DENY, id.0.to_string()),
        Action::Extend(id) => (EXTEND, id.0.to_string()),
        Action::Release(id) => (RELEASE, id.0.to_string()),
        Action::Cancel(id) => (CANCEL, id.0.to_string()),
        Action::Lockdown { scope, reason } => {
            (CONFIRM_LOCKDOWN, json!({ "scope": scope, "reason": reason }).to_string())
        }
        Action::Revoke { id, reason } => (CONFIRM_REVOKE, json!({ "id": id.0, "reason": reason }).to_string()),
    }
}

/// The action a click stands for. A value that is not what elevate put there is refused before
/// anything is looked up.
pub(crate) fn decode_action(action_id: &str, value: &str) -> Result<Action, String> {
    let id = || elevate_core::chat::parse_id(value).map_err(|e| e.message);
    let confirmed = || -> Result<Value, String> { serde_json::from_str(value).map_err(|_| foreign()) };
    let s = |v: &Value, k: &str| v[k].as_str().map(String::from).ok_or_else(foreign);
    Ok(match action_id {
        REQUEST_FORM_BUTTON => Action::RequestForm,
        APPROVE => Action::Approve(id()?),
        DENY => Action::Deny(id()?),
        EXTEND => Action::Extend(id()?),
        RELEASE => Action::Release(id()?),
        CANCEL => Action::Cancel(id()?),
        CONFIRM_LOCKDOWN => {
            let v = confirmed()?;
            Action::Lockdown { scope: s(&v, "scope")?, reason: s(&v, "reason")? }
        }
        CONFIRM_REVOKE => {
            let v = confirmed()?;
            let id = v["id"].as_i64().filter(|n| *n > 0).ok_or_else(foreign)?;
            Action::Revoke { id: RequestId(id), reason: s(&v, "reason")? }
        }
        _ => return Err(foreign()),
    })
}

/// A form's `callback_id` and `private_metadata`.
fn encode_form_kind(k: &FormKind) -> (&'static str, String) {
    match k {
        FormKind::Request => (REQUEST_FORM, String::new()),
        FormKind::Deny(id) => (DENY_FORM, id.0.to_string()),
        FormKind::Extend(id) => (EXTEND_FORM, id.0.to_string()),
        FormKind::Lockdown { scope } => (LOCKDOWN_FORM, scope.clone()),
        FormKind::Revoke(id) => (REVOKE_FORM, id.0.to_string()),
    }
}

/// Which form was submitted; `None` for a view that is not elevate's.
pub(crate) fn decode_form_kind(callback_id: &str, metadata: &str) -> Option<Result<FormKind, String>> {
    let id = || elevate_core::chat::parse_id(metadata).map_err(|e| e.message);
    Some(match callback_id {
        REQUEST_FORM => Ok(FormKind::Request),
        DENY_FORM => id().map(FormKind::Deny),
        EXTEND_FORM => id().map(FormKind::Extend),
        LOCKDOWN_FORM => Ok(FormKind::Lockdown { scope: metadata.to_string() }),
        REVOKE_FORM => id().map(FormKind::Revoke),
        _ => return None,
    })
}

/// The inputs each form has, so a refusal about another field lands on the first one.
pub(crate) fn form_fields(k: &FormKind) -> &'static [Field] {
    match k {
        FormKind::Request => &[Field::Role, Field::Duration, Field::Reason, Field::Ticket],
        FormKind::Extend(_) => &[Field::Duration, Field::Reason],
        FormKind::Deny(_) | FormKind::Lockdown { .. } | FormKind::Revoke(_) => &[Field::Reason],
    }
}

impl Slack {
    /// Spans as mrkdwn.
    pub(crate) fn mrkdwn(&self, t: &Text) -> String {
        t.0.iter()
            .map(|s| match s {
                Span::Plain(p) => text::escape(p),
                Span::Code(c) => format!("`{}`", text::escape(&c.replace('`', "'"))),
                Span::Strong(b) => format!("*{}*", text::escape(b)),
                Span::Person(p) => self.name(p.as_str()),
                Span::Channel(c) => text::channel(c),
            })
            .collect()
    }

    fn button(&self, b: &Button) -> Value {
        let (action_id, value) = encode_action(&b.action);
        let mut v = json!({ "type": "button", "text": plain(&b.label), "action_id": action_id, "value": value });
        match b.style {
            // Slack's primary is its green.
            Style::Primary | Style::Success => v["style"] = json!("primary"),
            Style::Danger => v["style"] = json!("danger"),
            Style::Plain => {}
        }
        if let Some(q) = &b.confirm {
            v["confirm"] = json!({
                "title": plain("Are you sure?"),
                "text": { "type": "mrkdwn", "text": clip(&self.mrkdwn(q), 300) },
                "confirm": plain(&b.label),
                "deny": plain("Cancel"),
                "style": "danger"
            });
        }
        v
    }

    /// A message as Block Kit blocks; the tone's icon leads the first text.
    pub(crate) fn blocks(&self, m: &Message) -> Value {
        let mut icon = icon(m.tone);
        let mut lead = |s: String| {
            let s = format!("{icon}{s}");
            icon = "";
            s
        };
        let blocks: Vec<Value> = m
            .blocks
            .iter()
            .map(|b| match b {
                Block::Heading(t) => section(lead(format!("*{}*", self.mrkdwn(t)))),
                Block::Text(t) => section(lead(self.mrkdwn(t))),
                Block::List(items) => {
                    section(lead(items.iter().map(|t| format!("• {}", self.mrkdwn(t))).collect::<Vec<_>>().join("\n")))
                }
                Block::Fields(fields) => json!({ "type": "section", "fields": fields.iter().take(10).map(|(k, v)| {
                    json!({ "type": "mrkdwn", "text": clip(&format!("*{}*\n{}", text::escape(k), self.mrkdwn(v)), 2000) })
                }).collect::<Vec<_>>() }),
                Block::Context(t) => {
                    json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": clip(&self.mrkdwn(t), 3000) }] })
                }
                Block::Buttons(buttons) => {
                    json!({ "type": "actions", "elements": buttons.iter().take(25).map(|b| self.button(b)).collect::<Vec<_>>() })
                }
            })
            .collect();
        Value::Array(blocks)
    }

    /// The notification text that goes with blocks: the same mrkdwn, one line per block.
    pub(crate) fn fallback(&self, m: &Message) -> String {
        let mut lines = Vec::new();
        for b in &m.blocks {
            match b {
                Block::Heading(t) | Block::Text(t) | Block::Context(t) => lines.push(self.mrkdwn(t)),
                Block::List(items) => lines.extend(items.iter().map(|t| format!("• {}", self.mrkdwn(t)))),
                Block::Fields(f) => {
                    lines.extend(f.iter().map(|(k, v)| format!("{}: {}", text::escape(k), self.mrkdwn(v))))
                }
                Block::Buttons(_) => {}
            }
        }
        format!("{}{}", icon(m.tone), clip(&lines.join("\n"), SECTION_MAX))
    }

    /// A refusal as one line.
    pub(crate) fn refusal_line(&self, r: &Refusal) -> String {
        format!(":warning: {}", self.mrkdwn(&r.text))
    }

    /// An answer to a slash command: ephemeral, with blocks when it has any beyond one text.
    pub(crate) fn ephemeral(&self, m: &Message) -> Value {
        json!({ "response_type": "ephemeral", "text": self.fallback(m), "blocks": self.blocks(m) })
    }

    /// A message for a refusal or private answer sent later (postEphemeral, DM).
    pub(crate) fn private_parts(&self, answer: &Answer) -> Option<(String, Option<Value>)> {
        match answer {
            Answer::Private(m) => Some((self.fallback(m), Some(self.blocks(m)))),
            Answer::Refused(r) => Some((self.refusal_line(r), None)),
            Answer::Form(_) | Answer::Nothing => None,
        }
    }

    /// A field error for a submitted modal (keeps it open with the message under the field).
    pub(crate) fn field_error(&self, kind: &FormKind, r: &Refusal) -> Value {
        let fields = form_fields(kind);
        let field = r.field.filter(|f| fields.contains(f)).unwrap_or(fields[0]);
        // Shown as plain text under the field: no markup.
        let msg = clip(&r.text.to_plain(), FIELD_ERROR_MAX);
        json!({ "response_action": "errors", "errors": { field.as_str(): msg } })
    }
}

/// A form as a modal view.
pub(crate) fn view(f: &Form) -> Value {
    let (callback_id, metadata) = encode_form_kind(&f.kind);
    let blocks: Vec<Value> = f
        .inputs
        .iter()
        .map(|i| {
            let name = i.field.as_str();
            let element = match &i.choices {
                Some(choices) => json!({
                    "type": if i.several { "multi_static_select" } else { "static_select" },
                    "action_id": name, "placeholder": plain(&i.placeholder),
                    "options": choices.iter().take(100).map(|(label, value)| {
                        json!({ "text": plain(&clip(label, 75)), "value": value })
                    }).collect::<Vec<_>>()
                }),
                None => {
                    let mut e = json!({ "type": "plain_text_input", "action_id": name, "multiline": i.multiline,
                        "placeholder": plain(&i.placeholder) });
                    if let Some(v) = &i.value {
                        e["initial_value"] = json!(v);
                    }
                    e
                }
            };
            json!({ "type": "input", "block_id": name, "label": plain(&i.label), "optional": !i.required,
                    "element": element })
        })
        .collect();
    let mut v = json!({
        "type": "modal",
        "callback_id": callback_id,
        "title": plain(&clip(&f.title, TITLE_MAX)),
        "submit": plain(&clip(&f.submit, TITLE_MAX)),
        "close": plain("Cancel"),
        "blocks": blocks,
    });
    if !metadata.is_empty() {
        v["private_metadata"] = json!(metadata);
    }
    v
}

#[cfg(test)]
mod properties {
    //! Whatever a click or a form submission carries, decoding never panics, anything elevate
    //! did not make is refused with a message, and what elevate makes decodes to itself.
    use super::*;
    use elevate_core::RequestId;
    use proptest::prelude::*;

    fn ids() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(APPROVE.to_string()),
            Just(DENY.to_string()),
            Just(CONFIRM_LOCKDOWN.to_string()),
            Just(CONFIRM_REVOKE.to_string()),
            Just(REQUEST_FORM_BUTTON.to_string()),
            "\\PC{0,30}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_click_decodes_or_is_refused_with_a_message(action in ids(), value in "\\PC{0,80}") {
            if let Err(why) = decode_action(&action, &value) {
                prop_assert!(!why.trim().is_empty());
            }
        }

        #[test]
        fn any_form_decodes_or_is_refused(callback in ids(), metadata in "\\PC{0,80}") {
            if let Some(Err(why)) = decode_form_kind(&callback, &metadata) {
                prop_assert!(!why.trim().is_empty());
            }
        }

        #[test]
        fn elevates_own_buttons_decode_to_themselves(id in 1i64..i64::MAX, scope in "[a-z*-]{1,20}", reason in "\\PC{1,60}") {
            for a in [
                Action::Approve(RequestId(id)),
                Action::Release(RequestId(id)),
                Action::Lockdown { scope: scope.clone(), reason: reason.clone() },
                Action::Revoke { id: RequestId(id), reason: reason.clone() },
            ] {
                let (action, value) = encode_action(&a);
                prop_assert_eq!(decode_action(action, &value), Ok(a));
            }
        }
    }
}
