//! Shortcuts, as the manifest declares them: the global "Request elevated access" (opens the
//! request form from anywhere in Slack) and the message shortcut "Show this elevate request" on
//! an approval card or a reply in its thread (the request, with what the clicker may do about
//! it). Both run as commands of core's model, like a typed `/elevate` or a button.

use crate::{
    PLATFORM, Slack,
    encode::{SHORTCUT_REQUEST, SHORTCUT_SHOW},
    interactions::{refused, str_at, team, user_team},
};
use elevate_core::{
    RequestId,
    chat::{self, Answer, Command},
};
use serde_json::Value;

impl Slack {
    /// A `shortcut` (global) or `message_action` (message) payload.
    pub(crate) async fn shortcut(&self, p: &Value) {
        let user = str_at(p, &["user", "id"]).to_string();
        let channel = str_at(p, &["channel", "id"]).to_string();
        let command = match str_at(p, &["callback_id"]) {
            SHORTCUT_REQUEST => Ok(Command::RequestForm),
            SHORTCUT_SHOW => self.card_of(p).await.map(Command::Show),
            _ => Err(chat::foreign_payload().message),
        };
        let answer = match command {
            Err(why) => refused(why),
            Ok(command) => match self.caller_of(team(p), user_team(p), &user).await {
                Err(e) => Answer::Refused(chat::refusal(e.into(), PLATFORM)),
                Ok(caller) => self.run(&caller, team(p), &channel, command).await.answer,
            },
        };
        self.answer_click(p, channel, user, answer).await;
    }

    /// The request whose approval card (or a reply in its thread) the message shortcut was used
    /// on: the number the message names, accepted only if elevate's record of that request's
    /// card is this very message or thread, so a look-alike message names nothing.
    async fn card_of(&self, p: &Value) -> Result<RequestId, String> {
        let not_a_card = || "That message is not an elevate approval card or a reply under one.".to_string();
        let message = &p["message"];
        let channel = str_at(p, &["channel", "id"]);
        let ts = match str_at(message, &["thread_ts"]) {
            "" => str_at(message, &["ts"]),
            thread => thread,
        };
        let text = str_at(message, &["text"]);
        let id = text
            .split('#')
            .skip(1)
            .find_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse::<i64>().ok()))
            .ok_or_else(not_a_card)?;
        let card = self.inner.refs.chat_ref(PLATFORM, RequestId(id), chat::CARD).await.map_err(|e| {
            tracing::warn!(error = %e, "could not read a card reference");
            "elevate could not look this card up just now; try again in a minute.".to_string()
        })?;
        match card {
            Some((c, t)) if c == channel && t == ts => Ok(RequestId(id)),
            _ => Err(not_a_card()),
        }
    }
}
