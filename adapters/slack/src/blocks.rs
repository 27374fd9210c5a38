//! Block Kit for approval cards and DMs, built as JSON and checked against slack-morphism's
//! model when sent. Every piece of user text is escaped here, at render time. Buttons carry only
//! the request number: who may press them is decided by core when the click arrives.

use crate::{Slack, encode::EXTEND};
use elevate_core::chat;
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
    /// The approval card as core composes it, in Block Kit. Returns `(fallback text, blocks)`;
    /// the fallback starts with "Request #41:" so people (and tests) can tell cards apart.
    pub(crate) fn card_parts(&self, card: &chat::Message) -> (String, Value) {
        (self.fallback(card), self.blocks(card))
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
