//! Button clicks (interaction type 3) and modal submissions (type 5). Approve is decided at
//! once and acknowledged without a message (type 6): the notifier edits the approval message
//! from the audit event, so the count shown is always the stored one. Deny and Extend open a
//! form; its submission carries the same `action:id` custom_id. Refusals are ephemeral.

use crate::{
    Discord,
    commands::refusal,
    messages::{self, APPROVE, DENY, EXTEND, Reply},
};
use serde_json::Value;

/// The value of a text input in a submitted modal.
fn input(p: &Value, id: &str) -> String {
    let rows = p["data"]["components"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    rows.iter()
        .flat_map(|row| row["components"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        .find(|c| c["custom_id"] == id)
        .and_then(|c| c["value"].as_str())
        .unwrap_or("")
        .trim()
        .to_string()
}

impl Discord {
    /// A button click.
    pub(crate) async fn component(&self, p: &Value) -> Reply {
        let Some((action, id)) = messages::parse_custom_id(p["data"]["custom_id"].as_str().unwrap_or("")) else {
            return Reply::Ephemeral(":warning: This button is not elevate's.".into());
        };
        let caller = match self.caller(p) {
            Ok(c) => c,
            Err(e) => return Reply::Ephemeral(refusal(e.into())),
        };
        match action {
            APPROVE => match self.inner.service.approve(&caller, id).await {
                Ok(_) => Reply::Ack,
                Err(e) => Reply::Ephemeral(refusal(e)),
            },
            DENY => Reply::Modal(messages::deny_modal(id)),
            EXTEND => Reply::Modal(messages::extend_modal(id)),
            _ => Reply::Ephemeral(":warning: This button is not elevate's.".into()),
        }
    }

    /// A submitted Deny or Extend form.
    pub(crate) async fn modal_submit(&self, p: &Value) -> Reply {
        let custom = p["data"]["custom_id"].as_str().unwrap_or("");
        if custom.starts_with(crate::controls::LOCKDOWN) || custom.starts_with(crate::controls::REVOKE) {
            let caller = match self.caller(p) {
                Ok(c) => c,
                Err(e) => return Reply::Ephemeral(refusal(e.into())),
            };
            if let Some(reply) = self.control_submit(&caller, custom, &input(p, "reason")).await {
                return reply;
            }
        }
        let Some((action, id)) = messages::parse_custom_id(p["data"]["custom_id"].as_str().unwrap_or("")) else {
            return Reply::Ack;
        };
        let caller = match self.caller(p) {
            Ok(c) => c,
            Err(e) => return Reply::Ephemeral(refusal(e.into())),
        };
        let service = &self.inner.service;
        let result = match action {
            DENY => service.deny(&caller, id, &input(p, "reason")).await.map(|r| format!("Denied {}.", r.id)),
            EXTEND => {
                let reason = input(p, "reason");
                self.extend_by(&caller, id, &input(p, "duration"), Some(&reason)).await
            }
            _ => return Reply::Ack,
        };
        Reply::Ephemeral(result.unwrap_or_else(refusal))
    }
}
