//! Button clicks (interaction type 3) and modal submissions (type 5), decoded into core
//! commands. Approve is decided at once and answered privately; the notifier edits the approval
//! message from the audit event, so the count shown is always the stored one. Deny and Extend
//! open a form; its submission carries the same `action:id` custom_id.

use crate::{Discord, PLATFORM, encode, messages::Reply};
use elevate_core::chat::{self, Answer, Command, Refusal, Text};
use serde_json::Value;

/// The value of a text input in a submitted modal; `None` if empty.
fn input(p: &Value, id: &str) -> Option<String> {
    let rows = p["data"]["components"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let v = rows
        .iter()
        .flat_map(|row| row["components"].as_array().map(Vec::as_slice).unwrap_or(&[]))
        .find(|c| c["custom_id"] == id)
        .and_then(|c| c["value"].as_str())
        .unwrap_or("")
        .trim()
        .to_string();
    Some(v).filter(|v| !v.is_empty())
}

fn refused(why: String) -> Answer {
    Answer::Refused(Refusal { text: Text::from_marked(&why), field: None })
}

impl Discord {
    /// A button click.
    pub(crate) async fn component(&self, p: &Value) -> Reply {
        let command = match encode::decode_click(p["data"]["custom_id"].as_str().unwrap_or("")) {
            Ok(c) => c,
            Err(why) => return self.reply(refused(why)),
        };
        self.act(p, command).await
    }

    /// A submitted form.
    pub(crate) async fn modal_submit(&self, p: &Value) -> Reply {
        let command = match encode::decode_form_kind(p["data"]["custom_id"].as_str().unwrap_or("")) {
            None => return Reply::Ack,
            Some(Err(why)) => return self.reply(refused(why)),
            Some(Ok(kind)) => Command::from_form(&kind, &|f| input(p, f.as_str())),
        };
        self.act(p, command).await
    }

    async fn act(&self, p: &Value, command: Command) -> Reply {
        let caller = match self.caller(p).await {
            Ok(c) => c,
            Err(e) => return self.reply(Answer::Refused(chat::refusal(e.into(), PLATFORM))),
        };
        let handled = self.run(&caller, p, command).await;
        if let Some(id) = handled.created {
            chat::remember_requester(self.inner.refs.as_ref(), PLATFORM, id, crate::identity::user_id(p)).await;
        }
        self.reply(handled.answer)
    }
}
