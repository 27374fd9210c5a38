//! The security team's and on-call's commands in Slack: `/elevate breakglass`, `review`,
//! `lockdown`, `unlock` and `revoke`. Destructive ones (lockdown, revoke) answer with a button
//! behind Slack's confirm dialog; only the click acts, and authority is checked again then.

use crate::{PLATFORM, Slack, commands::ephemeral, text};
use elevate_core::{CoreError, RequestId, UserError, policy::Caller, request::Source};
use serde_json::{Value, json};

pub const CONFIRM_LOCKDOWN: &str = "elevate_confirm_lockdown";
pub const CONFIRM_REVOKE: &str = "elevate_confirm_revoke";

pub const HELP: &str = "\n• `/elevate breakglass ROLE DURATION JUSTIFICATION…`: emergency access without approval (alerts security)\n\
• `/elevate revoke ID REASON…`: take a grant away (approvers, security)\n\
• `/elevate lockdown ROLE|all REASON…` / `/elevate unlock ROLE|all`: kill switch (security)\n\
• `/elevate review ID NOTE…`: close the review of a break-glass grant (security)";

/// An ephemeral question with one danger button behind a confirm dialog.
fn confirm(question: &str, action_id: &str, value: Value, button: &str) -> Value {
    json!({
        "response_type": "ephemeral",
        "text": question,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": question } },
            { "type": "actions", "elements": [{
                "type": "button",
                "action_id": action_id,
                "style": "danger",
                "text": { "type": "plain_text", "text": button },
                "value": value.to_string(),
                "confirm": {
                    "title": { "type": "plain_text", "text": "Are you sure?" },
                    "text": { "type": "mrkdwn", "text": question },
                    "confirm": { "type": "plain_text", "text": button },
                    "deny": { "type": "plain_text", "text": "Cancel" },
                    "style": "danger"
                }
            }]}
        ]
    })
}

impl Slack {
    /// `None` when `first` is not one of these commands.
    pub(crate) async fn control_command(
        &self,
        caller: &Caller,
        team: &str,
        channel: &str,
        first: &str,
        rest: &[&str],
    ) -> Option<Result<Value, CoreError>> {
        let svc = &self.inner.service;
        Some(match first {
            "breakglass" => match rest {
                [role, duration, why @ ..] => {
                    let source = Source {
                        platform: PLATFORM.into(),
                        tenant: Some(team.into()),
                        channel: Some(channel.into()).filter(|c: &String| !c.is_empty()),
                    };
                    svc.breakglass(caller, role, duration, &why.join(" "), source).await.map(|r| {
                        ephemeral(format!(
                            ":rotating_light: Break-glass {}: `{}` for {} is being applied now. The security team has been alerted and will review it.",
                            r.id, r.role, r.duration
                        ))
                    })
                }
                _ => Err(UserError::invalid("Usage: `/elevate breakglass ROLE DURATION JUSTIFICATION…`").into()),
            },
            "review" => match rest {
                [id, note @ ..] => match RequestId::parse(id) {
                    Ok(id) => svc
                        .review(caller, id, &note.join(" "))
                        .await
                        .map(|r| ephemeral(format!("Review of {} recorded.", r.id))),
                    Err(e) => Err(UserError::invalid(e).into()),
                },
                _ => Err(UserError::invalid("Usage: `/elevate review ID NOTE…`").into()),
            },
            "unlock" => match rest {
                [scope] => {
                    svc.unlock(caller, scope).await.map(|_| ephemeral(format!("Unlocked `{}`.", text::escape(scope))))
                }
                _ => Err(UserError::invalid("Usage: `/elevate unlock ROLE|all`").into()),
            },
            "lockdown" => match rest {
                [scope, reason @ ..] if !reason.is_empty() => {
                    if let Err(e) = svc.may_lock_down(caller, scope) {
                        Err(e)
                    } else {
                        let what = if *scope == "all" {
                            "*every role*".to_string()
                        } else {
                            format!("`{}`", text::escape(scope))
                        };
                        let q = format!(
                            "Lock down {what}? New requests are refused and every grant of it is revoked now. Reason: {}",
                            text::escape(&reason.join(" "))
                        );
                        Ok(confirm(
                            &q,
                            CONFIRM_LOCKDOWN,
                            json!({ "scope": scope, "reason": reason.join(" ") }),
                            "Lock down",
                        ))
                    }
                }
                _ => Err(UserError::invalid("Usage: `/elevate lockdown ROLE|all REASON…`").into()),
            },
            "revoke" => match rest {
                [id, reason @ ..] if !reason.is_empty() => match RequestId::parse(id) {
                    Ok(id) => match svc.get(id).await {
                        Ok(r) => {
                            let q = format!(
                                "Revoke {} (`{}` held by {}) now? Reason: {}",
                                r.id,
                                r.role,
                                r.requester,
                                text::escape(&reason.join(" "))
                            );
                            Ok(confirm(&q, CONFIRM_REVOKE, json!({ "id": id.0, "reason": reason.join(" ") }), "Revoke"))
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(UserError::invalid(e).into()),
                },
                _ => Err(UserError::invalid("Usage: `/elevate revoke ID REASON…`").into()),
            },
            _ => return None,
        })
    }

    /// A click on a confirmed destructive button; the answer goes back ephemerally.
    pub(crate) async fn confirmed(&self, caller: &Caller, action_id: &str, value: &str) -> Result<String, CoreError> {
        let v: Value = serde_json::from_str(value)
            .map_err(|_| UserError::invalid("This button is broken; type the command again."))?;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
        match action_id {
            CONFIRM_LOCKDOWN => {
                let r = self.inner.service.lockdown(caller, &s("scope"), &s("reason"), false).await?;
                Ok(elevate_core::chat::lockdown_done(&r, &text::escape))
            }
            CONFIRM_REVOKE => {
                let id = RequestId(v["id"].as_i64().unwrap_or(0));
                let r = self.inner.service.revoke(caller, id, &s("reason")).await?;
                Ok(format!("Revoking {}: access is being removed.", r.id))
            }
            _ => Err(UserError::invalid("Unknown button.").into()),
        }
    }
}
