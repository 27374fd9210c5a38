//! Button clicks (`block_actions`) and modal submissions (`view_submission`), in the payload
//! shapes Slack documents. A click is answered with an empty 200 at once; what the clicker must
//! be told (a refusal) follows as an ephemeral message. A modal's field errors go back in the
//! answer itself (`response_action: errors`), which keeps the modal open.

use crate::{Slack, blocks, commands::refusal};
use elevate_core::{CoreError, RequestId, UserError, chat, request::Source, service::RequestInput};
use serde_json::{Value, json};

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or("")
}

/// A field of a submitted modal: typed text, or the chosen option of a select.
fn field(view: &Value, block: &str) -> String {
    let v = &view["state"]["values"][block][block];
    v.get("value")
        .and_then(Value::as_str)
        .or_else(|| v["selected_option"]["value"].as_str())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn field_errors(block: &str, e: CoreError) -> Value {
    let msg = match e {
        CoreError::User(u) => u.message,
        other => refusal(other),
    };
    // Slack shows at most 150 characters under a field.
    let short: String = msg.chars().take(150).collect();
    json!({ "response_action": "errors", "errors": { block: short } })
}

impl Slack {
    /// Handles one interaction payload; the JSON is the HTTP answer (`None`: empty 200).
    pub async fn handle_interaction(&self, payload: Value) -> Option<Value> {
        match payload["type"].as_str() {
            Some("block_actions") => {
                self.block_action(&payload).await;
                None
            }
            Some("view_submission") => self.view_submission(&payload).await,
            _ => None,
        }
    }

    async fn block_action(&self, p: &Value) {
        let user = str_at(p, &["user", "id"]).to_string();
        let team = match str_at(p, &["team", "id"]) {
            "" => str_at(p, &["user", "team_id"]),
            t => t,
        };
        let channel = str_at(p, &["channel", "id"]).to_string();
        let action = &p["actions"][0];
        let action_id = str_at(action, &["action_id"]);
        if matches!(action_id, crate::controls::CONFIRM_LOCKDOWN | crate::controls::CONFIRM_REVOKE) {
            let answer = match self.caller(team, &user).await {
                Ok(caller) => {
                    self.confirmed(&caller, action_id, str_at(action, &["value"])).await.unwrap_or_else(refusal)
                }
                Err(e) => refusal(e.into()),
            };
            let slack = self.clone();
            self.later(async move {
                if let Err(e) = slack.inner.api.ephemeral(&channel, &user, &answer).await {
                    tracing::warn!(error = %e, "could not answer a confirmed action");
                }
            });
            return;
        }
        let id = match RequestId::parse(str_at(action, &["value"])) {
            Ok(id) => id,
            Err(_) => return,
        };
        let outcome: Result<(), CoreError> = async {
            let caller = self.caller(team, &user).await?;
            match action_id {
                blocks::APPROVE => self.inner.service.approve(&caller, id).await.map(|_| ()),
                blocks::DENY | blocks::EXTEND => {
                    let view =
                        if action_id == blocks::DENY { blocks::deny_modal(id.0) } else { blocks::extend_modal(id.0) };
                    let trigger = str_at(p, &["trigger_id"]);
                    self.inner.api.open_view(trigger, view).await.map_err(|e| {
                        tracing::warn!(error = %e, "views.open failed");
                        UserError::conflict("Slack did not open the form in time; click again.").into()
                    })
                }
                _ => Ok(()),
            }
        }
        .await;
        if let Err(e) = outcome {
            let slack = self.clone();
            let message = refusal(e);
            self.later(async move {
                if let Err(e) = slack.inner.api.ephemeral(&channel, &user, &message).await {
                    tracing::warn!(error = %e, "could not tell a clicker why their click was refused");
                }
            });
        }
    }

    async fn view_submission(&self, p: &Value) -> Option<Value> {
        let view = &p["view"];
        let user = str_at(p, &["user", "id"]).to_string();
        let team = match str_at(p, &["team", "id"]) {
            "" => str_at(p, &["user", "team_id"]),
            t => t,
        };
        let caller = match self.caller(team, &user).await {
            Ok(c) => c,
            Err(e) => {
                let first_block = view["blocks"][0]["block_id"].as_str().unwrap_or("reason");
                return Some(field_errors(first_block, e.into()));
            }
        };
        let id = RequestId::parse(str_at(view, &["private_metadata"]));
        let service = &self.inner.service;
        match str_at(view, &["callback_id"]) {
            blocks::REQUEST_MODAL => {
                let input = RequestInput {
                    role: field(view, "role"),
                    duration: Some(field(view, "duration")).filter(|d| !d.is_empty()),
                    reason: field(view, "reason"),
                    ticket: Some(field(view, "ticket")).filter(|t| !t.is_empty()),
                    source: Source { platform: crate::PLATFORM.into(), tenant: Some(team.to_string()), channel: None },
                };
                match service.request(&caller, input).await {
                    Ok(req) => {
                        self.remember_requester(req.id, &user).await;
                        let slack = self.clone();
                        let line = self.sent_message(&req);
                        self.later(async move {
                            slack.dm(&user, &line, None).await.ok();
                        });
                        None
                    }
                    Err(e) => Some(field_errors(chat::request_field(&e), e)),
                }
            }
            blocks::DENY_MODAL => {
                let Ok(id) = id else { return None };
                service.deny(&caller, id, &field(view, "reason")).await.err().map(|e| field_errors("reason", e))
            }
            blocks::EXTEND_MODAL => {
                let Ok(id) = id else { return None };
                let reason = field(view, "reason");
                match service.extend(&caller, id, &field(view, "duration"), Some(&reason)).await {
                    Ok(out) => {
                        let slack = self.clone();
                        let line = chat::extension_sent(&out, self.sent_message(&out.extension));
                        self.later(async move {
                            slack.dm(&user, &line, None).await.ok();
                        });
                        None
                    }
                    Err(e) => Some(field_errors("duration", e)),
                }
            }
            _ => None,
        }
    }

    /// Sends a DM to a Slack user.
    pub(crate) async fn dm(&self, user: &str, line: &str, blocks: Option<Value>) -> Result<(), String> {
        let channel = self.inner.api.open_dm(user).await?;
        self.inner.api.post(&channel, line, blocks).await.map(|_| ())
    }
}
