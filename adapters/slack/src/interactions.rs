//! Button clicks (`block_actions`) and modal submissions (`view_submission`), in the payload
//! shapes Slack documents, decoded into core commands. A click is answered with an empty 200 at
//! once (a form it asks for is opened first, within Slack's 3 seconds); what the clicker must
//! be told follows as an ephemeral message. A modal's refusal goes back in the answer itself
//! (`response_action: errors`) under the field core named, which keeps the modal open; a private
//! answer to a submitted modal arrives as a DM, since a closed modal cannot show it.

use crate::{PLATFORM, Slack, encode};
use elevate_core::{
    Field,
    chat::{self, Answer, Command, Refusal, Text},
};
use serde_json::Value;

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("")
}

/// A field of a submitted modal: typed text, the chosen option of a select, or the chosen
/// options of a multi-select joined with commas (`db,logs`, as roles are typed); `None` if
/// empty.
fn field(view: &Value, f: Field) -> Option<String> {
    let block = f.as_str();
    let v = &view["state"]["values"][block][block];
    if let Some(options) = v.get("selected_options").and_then(Value::as_array) {
        let values: Vec<&str> = options.iter().filter_map(|o| o["value"].as_str()).collect();
        return Some(values.join(",")).filter(|s| !s.is_empty());
    }
    let s = v.get("value").and_then(Value::as_str).or_else(|| v["selected_option"]["value"].as_str()).unwrap_or("");
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The workspace of an interaction: `team.id`, else the user's (Enterprise Grid org-wide apps).
pub(crate) fn team(p: &Value) -> &str {
    match str_at(p, &["team", "id"]) {
        "" => str_at(p, &["user", "team_id"]),
        t => t,
    }
}

/// The clicker's own workspace, where the payload says it (shared channels, Enterprise Grid).
pub(crate) fn user_team(p: &Value) -> Option<&str> {
    p["user"]["team_id"].as_str()
}

pub(crate) fn refused(message: impl Into<String>) -> Answer {
    Answer::Refused(Refusal { text: Text::from_marked(&message.into()), field: None })
}

impl Slack {
    /// Handles one interaction payload; the JSON is the HTTP answer (`None`: empty 200).
    pub async fn handle_interaction(&self, payload: Value) -> Option<Value> {
        // A repeat is acknowledged and nothing else: the first delivery answered already.
        if !self.first_delivery(str_at(&payload, &["trigger_id"])).await {
            return None;
        }
        match payload["type"].as_str() {
            Some("block_actions") => {
                self.block_action(&payload).await;
                None
            }
            Some("view_submission") => self.view_submission(&payload).await,
            Some("shortcut") | Some("message_action") => {
                self.shortcut(&payload).await;
                None
            }
            _ => None,
        }
    }

    async fn block_action(&self, p: &Value) {
        let user = str_at(p, &["user", "id"]).to_string();
        let channel = str_at(p, &["channel", "id"]).to_string();
        let action = &p["actions"][0];
        let answer = match encode::decode_action(str_at(action, &["action_id"]), str_at(action, &["value"])) {
            Err(why) => refused(why),
            Ok(action) => match self.caller_of(team(p), user_team(p), &user).await {
                Err(e) => Answer::Refused(chat::refusal(e.into(), PLATFORM)),
                Ok(caller) => self.run(&caller, team(p), &channel, Command::from_action(action)).await.answer,
            },
        };
        self.answer_click(p, channel, user, answer).await;
    }

    /// Answers a click or shortcut: a form opens at once (its trigger expires in 3 s), anything
    /// else is told privately after the acknowledgement.
    pub(crate) async fn answer_click(&self, p: &Value, channel: String, user: String, answer: Answer) {
        if let Answer::Form(f) = &answer {
            if let Err(e) = self.inner.api.open_view(str_at(p, &["trigger_id"]), encode::view(f)).await {
                tracing::warn!(error = %e, "views.open failed");
                self.tell_later(channel, user, refused("Slack did not open the form in time; click again."));
            }
            return;
        }
        self.tell_later(channel, user, answer);
    }

    /// Sends a private answer after the acknowledgement: ephemeral in the channel clicked in, or
    /// as a DM where there is no channel (the Home tab, a global shortcut).
    fn tell_later(&self, channel: String, user: String, answer: Answer) {
        let Some((line, blocks)) = self.private_parts(&answer) else { return };
        let slack = self.clone();
        self.later(async move {
            let sent = if channel.is_empty() {
                slack.dm(&user, &line, blocks).await
            } else {
                slack.inner.api.ephemeral(&channel, &user, &line, blocks).await
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not answer a click");
            }
        });
    }

    async fn view_submission(&self, p: &Value) -> Option<Value> {
        let view = &p["view"];
        let user = str_at(p, &["user", "id"]).to_string();
        let kind = match encode::decode_form_kind(str_at(view, &["callback_id"]), str_at(view, &["private_metadata"]))?
        {
            Ok(kind) => kind,
            Err(why) => {
                let r = Refusal { text: Text::from_marked(&why), field: None };
                return Some(self.field_error(&elevate_core::chat::FormKind::Request, &r));
            }
        };
        let handled = match self.caller_of(team(p), user_team(p), &user).await {
            Err(e) => Answer::Refused(chat::refusal(e.into(), PLATFORM)).into(),
            Ok(caller) => {
                let command = Command::from_form(&kind, &|f| field(view, f));
                self.run(&caller, team(p), "", command).await
            }
        };
        if let Some(id) = handled.created {
            self.remember_requester(id, &user).await;
        }
        match handled.answer {
            Answer::Refused(r) => Some(self.field_error(&kind, &r)),
            answer => {
                if let Some((line, blocks)) = self.private_parts(&answer) {
                    let slack = self.clone();
                    self.later(async move {
                        if let Err(e) = slack.dm(&user, &line, blocks).await {
                            tracing::warn!(error = %e, "could not DM the answer to a form");
                        }
                    });
                }
                None
            }
        }
    }

    /// Sends a DM to a Slack user.
    pub(crate) async fn dm(&self, user: &str, line: &str, blocks: Option<Value>) -> Result<(), String> {
        let channel = self.inner.api.open_dm(user).await?;
        self.inner.api.post(&channel, line, blocks).await.map(|_| ())
    }
}
