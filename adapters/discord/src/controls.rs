//! The security team's and on-call's sub-commands in Discord: `breakglass`, `review`,
//! `lockdown`, `unlock` and `revoke`. The destructive ones (lockdown, revoke) answer with a form
//! first: submitting it, with the reason typed, is the confirmation, and authority is checked
//! again when it arrives.

use crate::{Discord, PLATFORM, commands::refusal, messages::Reply, text};
use elevate_core::{CoreError, RequestId, UserError, policy::Caller, request::Source};
use serde_json::Value;
use serenity::{
    builder::{CreateActionRow, CreateInputText, CreateModal},
    model::application::InputTextStyle,
};

pub(crate) const LOCKDOWN: &str = "lockdown-confirm";
pub(crate) const REVOKE: &str = "revoke-confirm";

pub(crate) const HELP: &str = "\n• `/elevate breakglass role duration justification`: emergency access without approval (alerts security)\n\
• `/elevate revoke id`: take a grant away (approvers, security)\n\
• `/elevate lockdown scope` / `/elevate unlock scope`: kill switch for a role or `all` (security)\n\
• `/elevate review id note`: close the review of a break-glass grant (security)";

fn reason_form(custom_id: String, title: String, label: &str) -> CreateModal {
    CreateModal::new(custom_id, title).components(vec![CreateActionRow::InputText(
        CreateInputText::new(InputTextStyle::Paragraph, label, "reason").required(true).max_length(500),
    )])
}

impl Discord {
    /// `None` when `name` is not one of these sub-commands.
    pub(crate) async fn control_command(
        &self,
        caller: &Caller,
        p: &Value,
        name: &str,
        opt: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Option<Reply> {
        let svc = &self.inner.service;
        let id = || {
            opt("id")
                .ok_or_else(|| CoreError::from(UserError::invalid("Say which request: its id.")))
                .and_then(|s| RequestId::parse(&s).map_err(|e| UserError::invalid(e).into()))
        };
        let result: Result<String, CoreError> = match name {
            "breakglass" => {
                let source = Source {
                    platform: PLATFORM.into(),
                    tenant: p["guild_id"].as_str().map(String::from),
                    channel: p["channel_id"].as_str().map(String::from),
                };
                let (role, duration, why) = (
                    opt("role").unwrap_or_default(),
                    opt("duration").unwrap_or_default(),
                    opt("justification").unwrap_or_default(),
                );
                svc.breakglass(caller, &role, &duration, &why, source).await.map(|r| {
                    format!(
                        ":rotating_light: Break-glass {}: `{}` for {} is being applied now. The security team has been alerted and will review it.",
                        r.id, r.role, r.duration
                    )
                })
            }
            "review" => match id() {
                Ok(id) => svc
                    .review(caller, id, &opt("note").unwrap_or_default())
                    .await
                    .map(|r| format!("Review of {} recorded.", r.id)),
                Err(e) => Err(e),
            },
            "unlock" => {
                let scope = opt("scope").unwrap_or_default();
                svc.unlock(caller, &scope).await.map(|_| format!("Unlocked `{}`.", text::escape(&scope)))
            }
            "lockdown" => {
                let scope = opt("scope").unwrap_or_default();
                if let Err(e) = svc.may_lock_down(caller, &scope) {
                    Err(e)
                } else {
                    let what = if scope == "all" { "every role".to_string() } else { scope.clone() };
                    let title: String = format!("Lock down {what}?").chars().take(45).collect();
                    return Some(Reply::Modal(reason_form(
                        format!("{LOCKDOWN}:{scope}"),
                        title,
                        "Reason (submitting revokes every grant now)",
                    )));
                }
            }
            "revoke" => match id() {
                Ok(id) => match svc.get(id).await {
                    Ok(r) => {
                        return Some(Reply::Modal(reason_form(
                            format!("{REVOKE}:{}", id.0),
                            format!("Revoke {} ({})?", r.id, r.role).chars().take(45).collect(),
                            "Reason (submitting revokes it now)",
                        )));
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
            _ => return None,
        };
        Some(Reply::Ephemeral(result.unwrap_or_else(refusal)))
    }

    /// A submitted confirmation form; `None` when the form is not one of these.
    pub(crate) async fn control_submit(&self, caller: &Caller, custom_id: &str, reason: &str) -> Option<Reply> {
        let (kind, arg) = custom_id.split_once(':')?;
        let svc = &self.inner.service;
        let result = match kind {
            LOCKDOWN => svc
                .lockdown(caller, arg, reason, false)
                .await
                .map(|r| elevate_core::chat::lockdown_done(&r, &text::escape)),
            REVOKE => match RequestId::parse(arg) {
                Ok(id) => {
                    svc.revoke(caller, id, reason).await.map(|r| format!("Revoking {}: access is being removed.", r.id))
                }
                Err(e) => Err(UserError::invalid(e).into()),
            },
            _ => return None,
        };
        Some(Reply::Ephemeral(result.unwrap_or_else(refusal)))
    }
}
