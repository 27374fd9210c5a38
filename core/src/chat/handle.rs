//! Runs one [`Command`] for an authenticated chat caller and words the typed [`Answer`]. This is
//! the only place chat commands are dispatched: Slack, Discord and any later platform decode
//! into a `Command` and encode the `Answer`, nothing more.

use super::{
    Action, Answer, Block, Button, Command, Form, FormKind, Input, Message, Refusal, Span, Style, Syntax, Text, Tone,
    usage::USAGES,
};
use crate::{
    CoreError, Field, RequestId, Service, State,
    policy::{Caller, Policy, Role},
    request::{Request, Source},
    service::RequestInput,
};

/// Who asks, from where, and how their platform shows things.
pub struct Ctx<'a> {
    pub service: &'a Service,
    pub caller: &'a Caller,
    /// Platform, workspace or guild, and channel the command came from.
    pub source: Source,
    pub syntax: Syntax,
    /// The role's approvers channel on this platform, for "sent to #db-approvers".
    pub role_channel: fn(&Role) -> Option<&String>,
}

/// An answer, and the request the command created (adapters record the requester's chat user
/// with it after answering, so DMs find them).
#[derive(Debug)]
pub struct Handled {
    pub answer: Answer,
    pub created: Option<RequestId>,
}

impl From<Answer> for Handled {
    fn from(answer: Answer) -> Self {
        Handled { answer, created: None }
    }
}

/// Runs `command` for `ctx.caller`.
pub async fn handle(ctx: &Ctx<'_>, command: Command) -> Handled {
    match run(ctx, command).await {
        Ok(h) => h,
        Err(e) => Answer::Refused(refusal(e, &ctx.source.platform)).into(),
    }
}

/// A core refusal as the person sees it. Internal failures are logged with a reference and
/// shown only as that reference.
pub fn refusal(e: CoreError, platform: &str) -> Refusal {
    match e {
        CoreError::User(u) => Refusal { text: Text::from_marked(&u.message), field: u.field },
        CoreError::Unavailable(detail) => {
            tracing::warn!(platform, error = %detail, "chat command refused: the database cannot be reached");
            Refusal { text: Text::plain(crate::error::UNAVAILABLE), field: None }
        }
        other => {
            use std::hash::{BuildHasher, RandomState};
            let reference = format!("{:016x}", RandomState::new().hash_one(std::time::SystemTime::now()));
            tracing::error!(reference, platform, error = %other, "chat command failed");
            Refusal {
                text: Text::plain(format!(
                    "Something went wrong on elevate's side (reference {reference}); nothing you typed was at fault."
                )),
                field: None,
            }
        }
    }
}

fn say(text: Text) -> Result<Handled, CoreError> {
    Ok(Answer::say(Tone::Info, text).into())
}

async fn run(ctx: &Ctx<'_>, command: Command) -> Result<Handled, CoreError> {
    let (svc, caller) = (ctx.service, ctx.caller);
    match command {
        Command::Help => Ok(Answer::Private(help(&svc.policy(), caller, ctx.syntax)).into()),
        Command::RequestForm => request_form(&svc.policy(), caller),
        Command::Request { role, duration, reason, ticket, start } => {
            let input = RequestInput { role, duration, reason, ticket, source: ctx.source.clone(), start };
            let req = svc.request(caller, input).await?;
            let text = match req.batch {
                Some(_) => sent_batch(&svc.with_batch(&req).await?),
                None => sent(ctx, &svc.policy(), &req),
            };
            let answer = Answer::say(Tone::Info, text);
            Ok(Handled { answer, created: Some(req.id) })
        }
        Command::Status => {
            let reqs = super::requests_of(svc, caller, super::OPEN_STATES.to_vec()).await?;
            Ok(Answer::Private(status(&reqs, svc.now())).into())
        }
        Command::Mine => mine(ctx).await,
        Command::Show(id) => Ok(Answer::Private(super::home::show(svc, caller, id).await?).into()),
        Command::Release(id) => {
            let id = match id {
                Some(id) => id,
                None => super::pick_release(
                    &super::requests_of(svc, caller, vec![State::Active]).await?,
                    &super::usage::usage("release", ctx.syntax),
                )?,
            };
            let req = svc.release(caller, id).await?;
            say(Text::plain(format!("Releasing {} (", req.id))
                .code(req.role.as_str())
                .and("): access is being removed."))
        }
        Command::Extend { id, duration: None, .. } => Ok(Answer::Form(extend_form(id)).into()),
        Command::Extend { id, duration: Some(d), reason } => {
            let out = svc.extend(caller, id, &d, reason.as_deref()).await?;
            let text = Text::plain(format!(
                "Extension {} of {} by {}: ",
                out.extension.id, out.parent.id, out.extension.duration
            ));
            let mut text = text;
            text.0.extend(sent(ctx, &svc.policy(), &out.extension).0);
            Ok(Handled { answer: Answer::say(Tone::Info, text), created: Some(out.extension.id) })
        }
        Command::Cancel(id) => {
            let req = svc.cancel(caller, id).await?;
            say(Text::plain(format!("Cancelled {}.", req.id)))
        }
        Command::Approve(id) => {
            let out = svc.approve(caller, id).await?;
            if !out.batch.is_empty() {
                return say(batch_approved(&out));
            }
            let text = if out.completed() {
                format!("You approved {}: it is approved.", out.request.id)
            } else {
                format!("You approved {}: {} of {} approvals so far.", out.request.id, out.approvals, out.required)
            };
            say(Text::plain(text))
        }
        Command::Deny { id, reason: None } => {
            svc.get(id).await?;
            Ok(Answer::Form(deny_form(id)).into())
        }
        Command::Deny { id, reason: Some(reason) } => {
            let req = svc.deny(caller, id, &reason).await?;
            say(Text::plain(format!("Denied {}.", req.id)))
        }
        Command::Breakglass { role, duration, justification } => {
            let r = svc.breakglass(caller, &role, &duration, &justification, ctx.source.clone()).await?;
            let text = Text::plain(format!("Break-glass {}: ", r.id)).code(r.role.as_str()).and(format!(
                " for {} is being applied now. The security team has been alerted and will review it.",
                r.duration
            ));
            Ok(Handled { answer: Answer::say(Tone::Alarm, text), created: Some(r.id) })
        }
        Command::Review { id, note } => {
            let r = svc.review(caller, id, &note).await?;
            say(Text::plain(format!("Review of {} recorded.", r.id)))
        }
        Command::Lockdown { scope, reason } => {
            svc.may_lock_down(caller, &scope)?;
            let what = if scope == "all" { Text::new().strong("every role") } else { Text::new().code(&scope) };
            match reason {
                None => Ok(Answer::Form(lockdown_form(&scope)).into()),
                Some(reason) => {
                    let mut q = Text::plain("Lock down ");
                    q.0.extend(what.0);
                    let q = q.and(format!(
                        "? New requests are refused and every grant of it is revoked now. Reason: {reason}"
                    ));
                    Ok(Answer::Private(confirm(q, "Lock down", Action::Lockdown { scope, reason })).into())
                }
            }
        }
        Command::ConfirmLockdown { scope, reason } => {
            let r = svc.lockdown(caller, &scope, &reason, false).await?;
            Ok(Answer::Private(super::lockdown_done(&r)).into())
        }
        Command::Unlock { scope } => {
            svc.unlock(caller, &scope).await?;
            say(Text::plain("Unlocked ").code(&scope).and("."))
        }
        Command::Revoke { id, reason } => {
            let r = svc.get(id).await?;
            match reason {
                None => Ok(Answer::Form(revoke_form(&r)).into()),
                Some(reason) => {
                    let q = Text::plain(format!("Revoke {} (", r.id))
                        .code(r.role.as_str())
                        .and(" held by ")
                        .push(Span::Person(r.requester.clone()))
                        .and(format!(") now? Reason: {reason}"));
                    Ok(Answer::Private(confirm(q, "Revoke", Action::Revoke { id, reason })).into())
                }
            }
        }
        Command::ConfirmRevoke { id, reason } => {
            let r = svc.revoke(caller, id, &reason).await?;
            say(Text::plain(format!("Revoking {}: access is being removed.", r.id)))
        }
    }
}

/// "Request #41 for `db` (1h) sent to #db-approvers; it needs 1 approval. I'll DM you when it
/// changes."
pub fn sent(ctx: &Ctx<'_>, policy: &Policy, req: &Request) -> Text {
    let role = policy.roles.get(&req.role);
    let threshold = req.threshold(policy);
    let missing = threshold.missing(req.approvals.len());
    let plural = if missing == 1 { "" } else { "s" };
    let needs = match threshold.credited {
        0 => format!("{missing} approval{plural}"),
        _ => format!("{missing} more approval{plural} (being on call counts as one)"),
    };
    let mut t = Text::plain(format!("Request {} for ", req.id)).code(req.role.as_str()).and(format!(
        " ({}{}) ",
        req.duration,
        super::card::from(req)
    ));
    t = match role.and_then(ctx.role_channel) {
        Some(c) => t.and("sent to ").push(Span::Channel(c.clone())),
        None => t.and("sent to the approvers"),
    };
    t.and(format!("; it needs {needs}. I'll DM you when it changes."))
}

/// "Request #41 for `db-admin`, `logs-read` (2h) sent to their approvers; …".
fn sent_batch(members: &[Request]) -> Text {
    let mut t = Text::plain(format!("Request {} for ", members[0].id));
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            t = t.and(", ");
        }
        t = t.code(m.role.as_str());
    }
    let lead = &members[0];
    let how = if lead.granted_in_part() {
        "each role needs its own approvals and is granted once none is still waiting for them; a role denied \
         does not stop the others."
    } else {
        "each role needs its own approvals and nothing is granted until all are in."
    };
    let mut t = t.and(format!(" ({}{}) sent to their approvers; {how}", lead.duration, super::card::from(lead)));
    for note in left_out(lead) {
        t = t.and(format!(" {note}"));
    }
    t.and(" I'll DM you when it changes.")
}

/// What a request granted in part says about the roles left out of it.
pub(super) fn left_out(req: &Request) -> impl Iterator<Item = &str> {
    req.rules.iter().filter(|f| f.effect == crate::request::REFUSED_ROLE).filter_map(|f| f.detail.as_deref())
}

fn help(policy: &Policy, caller: &Caller, syntax: Syntax) -> Message {
    let line = |u: &super::usage::Usage| {
        let mut t = Text::new().code(u.line(syntax)).and(": ");
        t.0.extend(Text::from_marked(u.what).0);
        t
    };
    let everyone: Vec<Text> = USAGES.iter().filter(|u| !u.restricted).map(line).collect();
    let restricted: Vec<Text> = USAGES.iter().filter(|u| u.restricted).map(line).collect();
    let mut may = Text::plain("You may request: ");
    let roles = policy.requestable_roles(caller);
    if roles.is_empty() {
        may = may.and("nothing yet");
    }
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            may = may.and(", ");
        }
        may = may.code(r.name.as_str()).and(format!(" (up to {})", r.max_duration));
    }
    Message::text(Tone::Info, Text::new().strong("elevate").and(": just-in-time access."))
        .with(Block::List(everyone))
        .with(Block::Text(Text::new().strong("Approvers and security")))
        .with(Block::List(restricted))
        .with(Block::Text(may))
}

/// One line per open request, or a sentence saying there are none.
fn status_lines(reqs: &[Request], now: chrono::DateTime<chrono::Utc>) -> Vec<Text> {
    reqs.iter().map(|r| super::home::status_line(r, now)).collect()
}

fn status(reqs: &[Request], now: chrono::DateTime<chrono::Utc>) -> Message {
    if reqs.is_empty() {
        return Message::text(Tone::Info, Text::plain("You have no pending requests and no active grants."));
    }
    Message { tone: Tone::Info, blocks: vec![Block::List(status_lines(reqs, now))] }
}

/// `mine`: what the Slack Home tab shows, as a private answer (Discord has no home tab).
async fn mine(ctx: &Ctx<'_>) -> Result<Handled, CoreError> {
    Ok(Answer::Private(super::home(ctx.service, ctx.caller).await?).into())
}

/// A question with one danger button; the platform asks once more before the click counts.
fn confirm(question: Text, label: &str, action: Action) -> Message {
    let button = Button { label: label.into(), action, style: Style::Danger, confirm: Some(question.clone()) };
    Message { tone: Tone::Warning, blocks: vec![Block::Text(question), Block::Buttons(vec![button])] }
}

fn request_form(policy: &Policy, caller: &Caller) -> Result<Handled, CoreError> {
    let roles = policy.requestable_roles(caller);
    if roles.is_empty() {
        return Ok(Answer::Refused(Refusal {
            text: Text::plain(
                "There is no role you may request. Ask an elevate admin to add you to a requester group.",
            ),
            field: Some(Field::Role),
        })
        .into());
    }
    let mut choices =
        roles.iter().map(|r| (format!("{} (max {})", r.name, r.max_duration), r.name.to_string())).collect::<Vec<_>>();
    // Bundles whose every role the caller may request.
    choices.extend(policy.bundles.values().filter(|b| b.roles.iter().all(|n| roles.iter().any(|r| r.name == *n))).map(
        |b| {
            let names = b.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
            (format!("{} (bundle: {names})", b.name), b.name.to_string())
        },
    ));
    let role = Input {
        choices: Some(choices),
        several: true,
        ..Input::text(Field::Role, "Roles", "Choose one or more roles", true)
    };
    Ok(Answer::Form(Form {
        kind: FormKind::Request,
        title: "Request access".into(),
        submit: "Request".into(),
        inputs: vec![
            role,
            Input::text(Field::Duration, "Duration", "e.g. 30m, 2h (empty: the role's default)", false),
            Input::text(Field::Reason, "Reason", "What do you need it for?", true),
            Input::text(Field::Ticket, "Ticket", "e.g. INC-4211", false),
            Input::text(Field::Start, "Start", "Later: 2026-12-05 22:00 Europe/Berlin, or in 3h (empty: now)", false),
        ],
    })
    .into())
}

fn deny_form(id: RequestId) -> Form {
    Form {
        kind: FormKind::Deny(id),
        title: format!("Deny request {id}"),
        submit: "Deny".into(),
        inputs: vec![Input::text(Field::Reason, "Reason", "Why is this denied?", true).multiline()],
    }
}

fn extend_form(id: RequestId) -> Form {
    Form {
        kind: FormKind::Extend(id),
        title: format!("Extend {id}"),
        submit: "Extend".into(),
        inputs: vec![
            Input::text(Field::Duration, "More time", "e.g. 30m", true),
            Input::text(Field::Reason, "Reason", "Why more time?", false).multiline(),
        ],
    }
}

fn lockdown_form(scope: &str) -> Form {
    let what = if scope == "all" { "every role" } else { scope };
    Form {
        kind: FormKind::Lockdown { scope: scope.to_string() },
        title: format!("Lock down {what}?"),
        submit: "Lock down".into(),
        inputs: vec![
            Input::text(Field::Reason, "Reason (submitting revokes every grant now)", "What happened?", true)
                .multiline(),
        ],
    }
}

fn revoke_form(r: &Request) -> Form {
    Form {
        kind: FormKind::Revoke(r.id),
        title: format!("Revoke {} ({})?", r.id, r.role),
        submit: "Revoke".into(),
        inputs: vec![
            Input::text(Field::Reason, "Reason (submitting revokes it now)", "Why is it revoked?", true).multiline(),
        ],
    }
}

/// "You approved `db-admin`, `logs-read` of #41; still waiting for approvals of `audit`."
fn batch_approved(out: &crate::service::ApproveOutcome) -> Text {
    let roles = |pick: &dyn Fn(&Request) -> bool| {
        out.batch.iter().filter(|r| pick(r)).map(|r| r.role.as_str()).collect::<Vec<_>>()
    };
    let mine =
        super::batch_card::codes(Text::plain("You approved "), roles(&|r| out.approved.contains(&r.id)).into_iter());
    let open = roles(&|r| r.state == State::Pending);
    if open.is_empty() {
        mine.and(format!(" of {}: every role is approved; it is being granted.", out.request.id))
    } else {
        let t = mine.and(format!(" of {}; still waiting for approvals of ", out.request.id));
        super::batch_card::codes(t, open.into_iter()).and(".")
    }
}
