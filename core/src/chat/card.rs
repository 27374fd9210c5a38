//! The approval card: who asks for what and why, where it stands, and (while pending) the
//! Approve and Deny buttons. It is re-rendered from the request as it is now, so delivering an
//! event twice, or late, updates the card to the same thing. Platforms encode it like any other
//! [`Message`].

use super::{Action, Block, Button, Message, Span, Style, Text, Tone};
use crate::{
    PersonId, State, Threshold,
    policy::Policy,
    render::time,
    request::{Request, RequestKind},
};

fn person(id: &str) -> Span {
    match PersonId::parse(id) {
        Ok(p) => Span::Person(p),
        Err(_) => Span::Plain(id.to_string()),
    }
}

/// Who closed a request: a person, a rule (`rule lockdown`) or elevate itself.
fn closer(closed_by: &str) -> Span {
    match closed_by.strip_prefix("rule:") {
        Some(rule) => Span::Plain(format!("rule {rule}")),
        None if closed_by == "system" => Span::Plain("elevate".into()),
        None => person(closed_by),
    }
}

fn joined(mut t: Text, spans: Vec<Span>) -> Text {
    for (i, s) in spans.into_iter().enumerate() {
        if i > 0 {
            t = t.and(", ");
        }
        t = t.push(s);
    }
    t
}

/// "Request #41: @alice asks for `db` for 1h", or "… asks to extend #40 (`db`) by 30m".
pub fn title(req: &Request) -> Text {
    let t = Text::plain(format!("Request {}: ", req.id)).push(Span::Person(req.requester.clone()));
    match req.kind.parent() {
        Some(p) => {
            t.and(format!(" asks to extend {p} (")).code(req.role.as_str()).and(format!(") by {}", req.duration))
        }
        None => t.and(" asks for ").code(req.role.as_str()).and(format!(" for {}", req.duration)).and(from(req)),
    }
}

/// " from 2026-12-05 21:00 UTC" for scheduled access; empty otherwise.
pub(super) fn from(req: &Request) -> String {
    req.starts_at.map(|s| format!(" from {}", time(s))).unwrap_or_default()
}

/// Where a request stands: "1 of 2 approvals: @dana", "1 of 2 approvals: on call", "Approved by
/// @dana, @lee — active until 14:05 UTC", "Denied by @bob: …".
pub fn status(req: &Request, threshold: Threshold) -> Text {
    let mut approvers: Vec<Span> = req.approvals.iter().map(|a| Span::Person(a.approver.clone())).collect();
    let required = threshold.required;
    let given = threshold.given(approvers.len());
    if threshold.credited > 0 {
        approvers.insert(0, Span::Plain("on call".into()));
    }
    let approved = || match req.kind {
        RequestKind::BreakGlass => Text::plain("Break-glass (no approval)"),
        _ if approvers.is_empty() => Text::plain("Auto-approved"),
        _ => joined(Text::plain("Approved by "), approvers.clone()),
    };
    let by = |t: Text| match req.closed_by.as_deref() {
        Some(c) => t.push(closer(c)),
        None => t,
    };
    let note = |t: Text| match req.note.as_deref() {
        Some(n) if !n.is_empty() => t.and(format!(": {n}")),
        _ => t,
    };
    let until = || req.expires_at.map(time).unwrap_or_else(|| "?".into());
    match req.state {
        State::Pending if given == 0 => {
            Text::plain(format!("Waiting for {required} approval{}", if required == 1 { "" } else { "s" }))
        }
        State::Pending => joined(Text::plain(format!("{given} of {required} approvals: ")), approvers),
        State::Waiting => approved().and(" — waiting for the other roles of this request"),
        State::Scheduled => approved().and(format!(" — starts at {}", req.starts_at.map(time).unwrap_or_default())),
        State::Approved => approved().and(" — being applied"),
        State::Active => approved().and(format!(" — active until {}", until())),
        State::Revoking => approved().and(" — access being removed"),
        State::Expired => approved().and(format!(" — expired at {}", until())),
        State::Released => by(approved().and(" — released by ")),
        State::Revoked => note(by(approved().and(" — revoked by "))),
        State::Denied => note(by(Text::plain("Denied by "))),
        State::Cancelled => by(Text::plain("Cancelled by ")),
        State::TimedOut => Text::plain("Timed out: nobody decided in time"),
        State::GrantFailed => note(approved().and(" — but the grant failed")),
        State::Extended => match req.kind.parent() {
            Some(p) => approved().and(format!(" — added to {p}")),
            None => approved(),
        },
    }
}

/// The small print under the status: first, for a service identity's request, that it is
/// automation and whose (approvers are letting a pipeline in); then what rules found out, one
/// clause each ("rule `pd-oncall`: alice is on call in PagerDuty schedule PSCHED1, level 1"), so
/// approvers see why it was or was not approved without them.
fn rule_notes(policy: &Policy, req: &Request) -> Option<Text> {
    let mut t = Text::default();
    if let Some(owner) = policy.person(&req.requester).and_then(|p| p.owner()) {
        t = t
            .and(format!("{} is a service identity (automation), owned by ", req.requester))
            .push(Span::Person(owner.clone()));
    }
    let threshold = req.threshold(policy);
    for f in &req.rules {
        if let Some(d) = &f.detail {
            t = if t.0.is_empty() { t } else { t.and("; ") }.and("rule ").code(&f.rule).and(format!(": {d}"));
            if f.credit.is_some() {
                t = t.and(credit_note(req, threshold));
            }
        }
    }
    (!t.0.is_empty()).then_some(t)
}

/// What an on-call rule's credit did: ": counts as one approval; 1 more needed".
pub(super) fn credit_note(req: &Request, threshold: Threshold) -> String {
    let missing = threshold.missing(req.approvals.len());
    match (threshold.credited, req.state) {
        (0, _) => ": it would count as one approval, but another rule asks for people's approval".into(),
        (_, State::Pending) => format!(": counts as one approval; {missing} more needed"),
        _ => ": counted as one approval".into(),
    }
}

/// The approval card of `members` (a request's roles, one row each, as
/// `Service::with_batch` returns them): the card of a one-role request, or the card of a
/// request of several roles.
pub fn card_of(policy: &Policy, members: &[Request]) -> Option<Message> {
    match members {
        [] => None,
        [one] => Some(card(policy, one)),
        many => Some(super::batch_card::batch_card(policy, many)),
    }
}

/// The whole card.
pub fn card(policy: &Policy, req: &Request) -> Message {
    let threshold = req.threshold(policy);
    let mut fields = vec![("Reason".to_string(), Text::plain(req.reason.as_str()))];
    if let Some(t) = &req.ticket {
        fields.push(("Ticket".to_string(), Text::plain(t)));
    }
    let mut msg = Message { tone: Tone::Info, blocks: vec![Block::Heading(title(req))] }
        .with(Block::Fields(fields))
        .with(Block::Text(status(req, threshold)));
    if let Some(notes) = rule_notes(policy, req) {
        msg = msg.with(Block::Context(notes));
    }
    if req.state == State::Pending {
        msg = msg.with(Block::Buttons(vec![
            Button::new("Approve", Action::Approve(req.id), Style::Success),
            Button::new("Deny", Action::Deny(req.id), Style::Danger),
        ]));
    }
    msg
}
