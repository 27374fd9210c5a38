//! Block Kit for cards, DMs and modals, built as JSON and checked against slack-morphism's
//! model when sent. Every piece of user text is escaped here, at render time. Buttons carry only
//! the request number: who may press them is decided by core when the click arrives.

use crate::{Slack, text::escape};
use elevate_core::{Request, State, chat, policy::Role, render};
use serde_json::{Value, json};

pub(crate) const APPROVE: &str = "elevate_approve";
pub(crate) const DENY: &str = "elevate_deny";
pub(crate) const EXTEND: &str = "elevate_extend";
pub(crate) const REQUEST_MODAL: &str = "elevate_request";
pub(crate) const DENY_MODAL: &str = "elevate_deny";
pub(crate) const EXTEND_MODAL: &str = "elevate_extend";

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn plain(text: &str) -> Value {
    json!({ "type": "plain_text", "text": text })
}

fn button(label: &str, action: &str, id: i64, style: Option<&str>) -> Value {
    let mut b = json!({ "type": "button", "text": plain(label), "action_id": action, "value": id.to_string() });
    if let Some(s) = style {
        b["style"] = json!(s);
    }
    b
}

impl Slack {
    /// The approval card: who asks for what and why, where it stands, and (while pending) the
    /// Approve and Deny buttons. Returns `(fallback text, blocks)`.
    pub(crate) fn card(&self, req: &Request) -> (String, Value) {
        let policy = self.inner.service.policy();
        let required = policy.roles.get(&req.role).map(|r| r.approvals_required).unwrap_or(1);
        let who = self.name(req.requester.as_str());
        let asks = chat::card_title(req, &who);
        let mut fields =
            vec![json!({ "type": "mrkdwn", "text": format!("*Reason*\n{}", escape(req.reason.as_str())) })];
        if let Some(t) = &req.ticket {
            fields.push(json!({ "type": "mrkdwn", "text": format!("*Ticket*\n{}", escape(t)) }));
        }
        let status = render::card_status(req, required, &|p| self.name(p), &escape);
        let mut blocks = vec![
            section(asks),
            json!({ "type": "section", "fields": fields }),
            json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": status }] }),
        ];
        if req.state == State::Pending {
            blocks.push(json!({ "type": "actions", "block_id": "decide", "elements": [
                button("Approve", APPROVE, req.id.0, Some("primary")),
                button("Deny", DENY, req.id.0, Some("danger")),
            ]}));
        }
        let fallback = format!(
            "Request {}: {} asks for {} for {} ({})",
            req.id,
            escape(req.requester.as_str()),
            req.role,
            req.duration,
            status
        );
        (fallback, Value::Array(blocks))
    }

    /// A DM line, with an Extend button on expiry warnings.
    pub(crate) fn dm_blocks(&self, line: &str, extend: Option<i64>) -> Option<Value> {
        let id = extend?;
        Some(json!([
            section(line.to_string()),
            { "type": "actions", "block_id": "extend", "elements": [button("Extend", EXTEND, id, Some("primary"))] },
        ]))
    }
}

fn input(block: &str, label: &str, element: Value, optional: bool) -> Value {
    json!({ "type": "input", "block_id": block, "label": plain(label), "optional": optional,
            "element": element })
}

fn text_input(action: &str, placeholder: &str, multiline: bool) -> Value {
    json!({ "type": "plain_text_input", "action_id": action, "multiline": multiline,
            "placeholder": plain(placeholder) })
}

/// `/elevate` with no arguments: pick a role (only those this person may request), a duration,
/// a reason and an optional ticket.
pub(crate) fn request_modal(roles: &[&Role]) -> Value {
    let options: Vec<Value> = roles
        .iter()
        .take(100)
        .map(|r| {
            let label = format!("{} (max {})", r.name, r.max_duration);
            json!({ "text": plain(&label.chars().take(75).collect::<String>()), "value": r.name.as_str() })
        })
        .collect();
    json!({
        "type": "modal",
        "callback_id": REQUEST_MODAL,
        "title": plain("Request access"),
        "submit": plain("Request"),
        "close": plain("Cancel"),
        "blocks": [
            input("role", "Role", json!({ "type": "static_select", "action_id": "role",
                "placeholder": plain("Choose a role"), "options": options }), false),
            input("duration", "Duration", text_input("duration", "e.g. 30m, 2h (empty: the role's default)", false), true),
            input("reason", "Reason", text_input("reason", "What do you need it for?", false), false),
            input("ticket", "Ticket", text_input("ticket", "e.g. INC-4211", false), true),
        ],
    })
}

/// Deny asks for a reason; the request number rides in `private_metadata`.
pub(crate) fn deny_modal(id: i64) -> Value {
    json!({
        "type": "modal",
        "callback_id": DENY_MODAL,
        "private_metadata": id.to_string(),
        "title": plain(&format!("Deny request #{id}")),
        "submit": plain("Deny"),
        "close": plain("Cancel"),
        "blocks": [ input("reason", "Reason", text_input("reason", "Why is this denied?", false), false) ],
    })
}

/// Extend asks for how much longer.
pub(crate) fn extend_modal(id: i64) -> Value {
    json!({
        "type": "modal",
        "callback_id": EXTEND_MODAL,
        "private_metadata": id.to_string(),
        "title": plain(&format!("Extend #{id}")),
        "submit": plain("Extend"),
        "close": plain("Cancel"),
        "blocks": [
            input("duration", "More time", text_input("duration", "e.g. 30m", false), false),
            input("reason", "Reason", text_input("reason", "Why more time?", false), true),
        ],
    })
}
