//! Block Kit for approval cards and DMs, built as JSON and checked against slack-morphism's
//! model when sent. Every piece of user text is escaped here, at render time. Buttons carry only
//! the request number: who may press them is decided by core when the click arrives.

use crate::{
    Slack,
    encode::{APPROVE, DENY, EXTEND},
    text::escape,
};
use elevate_core::{Request, State, chat, render};
use serde_json::{Value, json};

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
