//! "My access": what a person can do about elevate right now, in one place. It is the Slack
//! App Home tab, and on Discord (which has no home tab) the answer to `/elevate mine`: their
//! own open requests and grants with Release, Extend and Cancel, the requests waiting for
//! their decision with Approve and Deny (buttons whose clicks go through the same checks as
//! the card's), a button opening the request form, and for the security team the break-glass
//! grants still to review and the lockdowns in force.

use super::{Action, Block, Button, Message, Span, Style, Text, Tone};
use crate::{
    CoreError, Service, State,
    policy::Caller,
    ports::RequestQuery,
    request::{Request, RequestKind},
};
use chrono::{DateTime, Duration, Utc};

/// How far back the security section looks for break-glass grants still to review.
const REVIEW_WINDOW_DAYS: i64 = 90;
/// Most requests listed per section: a home stays readable, and within Slack's 100 blocks.
const MAX_LISTED: usize = 15;

/// Says how many more there are than were listed, and where to see them all.
fn more(msg: Message, total: usize, command: &str) -> Message {
    if total <= MAX_LISTED {
        return msg;
    }
    msg.with(Block::Text(Text::plain(format!("…and {} more: ", total - MAX_LISTED)).code(command)))
}

/// The caller's home: see the module comment.
pub async fn home(svc: &Service, caller: &Caller) -> Result<Message, CoreError> {
    let now = svc.now();
    let policy = svc.policy();
    let own = super::requests_of(svc, caller, super::OPEN_STATES.to_vec()).await?;
    let mut msg = Message::text(Tone::Info, Text::new().strong("Your access"));
    if own.is_empty() {
        msg = msg.with(Block::Text(Text::plain("You have no pending requests and no active grants.")));
    }
    for r in own.iter().take(MAX_LISTED) {
        msg = msg.with(Block::Text(status_line(r, now)));
        let buttons = match r.state {
            State::Active => vec![
                Button::new(&format!("Extend {}", r.id), Action::Extend(r.id), Style::Primary),
                Button::new(&format!("Release {}", r.id), Action::Release(r.id), Style::Plain),
            ],
            State::Pending | State::Waiting | State::Scheduled => {
                vec![Button::new(&format!("Cancel {}", r.id), Action::Cancel(r.id), Style::Plain)]
            }
            _ => vec![],
        };
        if !buttons.is_empty() {
            msg = msg.with(Block::Buttons(buttons));
        }
    }
    msg = more(msg, own.len(), "/elevate status");
    if !policy.requestable_roles(caller).is_empty() {
        msg = msg.with(Block::Buttons(vec![Button::new("Request access", Action::RequestForm, Style::Primary)]));
    }

    let q = RequestQuery { states: vec![State::Pending], ..Default::default() };
    let waiting: Vec<Request> = svc
        .store()
        .list_requests(&q)
        .await
        .map_err(CoreError::store)?
        .into_iter()
        .filter(|r| r.requester != caller.person)
        .filter(|r| policy.roles.get(&r.role).is_some_and(|role| policy.may_approve(caller, role, now - r.created_at)))
        .collect();
    if !waiting.is_empty() {
        msg = msg.with(Block::Text(Text::new().strong("Waiting for your decision")));
        for r in waiting.iter().take(MAX_LISTED) {
            let line = Text::plain(format!("{} ", r.id))
                .push(Span::Person(r.requester.clone()))
                .and(" asks for ")
                .code(r.role.as_str())
                .and(format!(" for {}: {}", r.duration, r.reason));
            msg = msg.with(Block::Text(line)).with(Block::Buttons(vec![
                Button::new(&format!("Approve {}", r.id), Action::Approve(r.id), Style::Success),
                Button::new(&format!("Deny {}", r.id), Action::Deny(r.id), Style::Danger),
            ]));
        }
        msg = more(msg, waiting.len(), "/elevate approve ID");
    }

    if policy.is_security(caller) {
        msg = security(svc, msg, now).await?;
    }
    Ok(msg)
}

/// Break-glass grants still to review, and the lockdowns in force.
async fn security(svc: &Service, mut msg: Message, now: DateTime<Utc>) -> Result<Message, CoreError> {
    let q = RequestQuery {
        states: vec![State::Active, State::Revoking, State::Expired, State::Released, State::Revoked],
        created_since: Some(now - Duration::days(REVIEW_WINDOW_DAYS)),
        skip_approvals: true,
        ..Default::default()
    };
    let open: Vec<Request> = svc
        .store()
        .list_requests(&q)
        .await
        .map_err(CoreError::store)?
        .into_iter()
        .filter(|r| r.kind == RequestKind::BreakGlass && r.review_open())
        .collect();
    msg = msg.with(Block::Text(Text::new().strong("Break-glass grants to review")));
    if open.is_empty() {
        msg = msg.with(Block::Text(Text::plain("None.")));
    }
    for r in open.iter().take(MAX_LISTED) {
        msg = msg.with(Block::Text(
            Text::plain(format!("{} ", r.id))
                .push(Span::Person(r.requester.clone()))
                .and(" used break-glass for ")
                .code(r.role.as_str())
                .and(format!(" ({}): {}. Review it with ", r.state, r.reason))
                .code(format!("/elevate review {} NOTE", r.id.0)),
        ));
    }
    msg = more(msg, open.len(), "/elevate review ID NOTE");
    let lockdowns = svc.lockdowns().await?;
    msg = msg.with(Block::Text(Text::new().strong("Lockdowns in force")));
    if lockdowns.is_empty() {
        msg = msg.with(Block::Text(Text::plain("None.")));
    }
    for l in &lockdowns {
        let scope = if l.scope == "*" { "every role".to_string() } else { l.scope.clone() };
        msg = msg.with(Block::Text(Text::plain("🔒 ").code(&scope).and(format!(
            " since {} by {}: {}",
            crate::render::time(l.locked_at),
            l.locked_by,
            l.reason
        ))));
    }
    Ok(msg)
}

/// One request as its card shows it (what, who, why, where it stands), with the buttons of
/// what the caller may do about it now: the message shortcut on a card, and `show ID`.
pub async fn show(svc: &Service, caller: &Caller, id: crate::RequestId) -> Result<Message, CoreError> {
    let req = svc.get(id).await?;
    let policy = svc.policy();
    let now = svc.now();
    let mine = req.requester == caller.person;
    let may = policy.roles.get(&req.role).is_some_and(|r| policy.may_approve(caller, r, now - req.created_at));
    if !mine && !may && !policy.is_security(caller) {
        return Err(crate::UserError::forbidden(format!(
            "{} is not yours to see: only its requester, its approvers and the security team see a request.",
            req.id
        ))
        .into());
    }
    let members = svc.with_batch(&req).await?;
    let mut msg = super::card_of(&policy, &members).unwrap_or_else(|| super::card(&policy, &req));
    // The card's own buttons are for everyone in its channel; these are the caller's.
    msg.blocks.retain(|b| !matches!(b, Block::Buttons(_)));
    let mut buttons = Vec::new();
    match req.state {
        State::Pending | State::Waiting | State::Scheduled if mine => {
            buttons.push(Button::new("Cancel", Action::Cancel(req.id), Style::Plain))
        }
        State::Pending if may => {
            buttons.push(Button::new("Approve", Action::Approve(req.id), Style::Success));
            buttons.push(Button::new("Deny", Action::Deny(req.id), Style::Danger));
        }
        State::Active if mine => {
            buttons.push(Button::new("Extend", Action::Extend(req.id), Style::Primary));
            buttons.push(Button::new("Release", Action::Release(req.id), Style::Plain));
        }
        _ => {}
    }
    if !buttons.is_empty() {
        msg = msg.with(Block::Buttons(buttons));
    }
    Ok(msg)
}

/// One request of the caller's, as `status` and the home show it.
pub(super) fn status_line(r: &Request, now: DateTime<Utc>) -> Text {
    // The roles of a request of several roles say which request they belong to.
    let line = status_only(r, now);
    match r.batch {
        Some(b) => line.and(format!(" (request {b})")),
        None => line,
    }
}

fn status_only(r: &Request, now: DateTime<Utc>) -> Text {
    match (r.state, r.expires_at) {
        (State::Scheduled, _) => Text::plain(format!("{} ", r.id)).code(r.role.as_str()).and(format!(
            " for {}: scheduled, starts {}",
            r.duration,
            r.starts_at.map(crate::render::time).unwrap_or_default()
        )),
        (State::Pending, _) if r.starts_at.is_some() => {
            Text::plain(format!("{} ", r.id)).code(r.role.as_str()).and(format!(
                " for {}: pending, to start {}",
                r.duration,
                r.starts_at.map(crate::render::time).unwrap_or_default()
            ))
        }
        (State::Active, Some(exp)) => {
            let left = (exp - now).num_minutes().max(0);
            Text::plain(format!("{} ", r.id)).code(r.role.as_str()).and(format!(
                " active, {}h{:02}m left (until {})",
                left / 60,
                left % 60,
                crate::render::time(exp)
            ))
        }
        (s, _) => Text::plain(format!("{} ", r.id)).code(r.role.as_str()).and(format!(" for {}: {s}", r.duration)),
    }
}
