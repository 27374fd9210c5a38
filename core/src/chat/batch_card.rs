//! The approval card of a request of several roles: one card for all of them, keyed by the
//! first role's request, with a line per role saying where that role stands and, while it is
//! pending, what it still needs. One Approve click approves every role the clicker may
//! approve; Deny refuses the whole request.

use super::{Action, Block, Button, Message, Span, Style, Text, Tone, card::status};
use crate::{State, policy::Policy, request::Request};

/// "Request #41: @alice asks for `db-admin`, `logs-read` for 2h".
fn heading(members: &[Request]) -> Text {
    let lead = &members[0];
    let t = Text::plain(format!("Request {}: ", lead.id)).push(Span::Person(lead.requester.clone())).and(" asks for ");
    codes(t, members.iter().map(|m| m.role.as_str()))
        .and(format!(" for {}", lead.duration))
        .and(super::card::from(lead))
}

/// One role's line: "`db-admin` (#41): 1 of 2 approvals: @dana — 1 more from `dba`".
fn role_line(policy: &Policy, m: &Request) -> Text {
    let threshold = m.threshold(policy);
    let mut line = Text::new().code(m.role.as_str()).and(format!(" ({}): ", m.id));
    for span in status(m, threshold).0 {
        line = line.push(span);
    }
    if m.state == State::Pending {
        let missing = threshold.missing(m.approvals.len());
        line = line.and(format!(" — needs {missing} more from "));
        let groups = policy.roles.get(&m.role).map(|r| r.approvers.clone()).unwrap_or_default();
        line = codes(line, groups.iter().map(|g| g.as_str()));
    }
    line
}

/// `t` followed by each name in code, separated by commas.
pub(super) fn codes<'a>(mut t: Text, names: impl Iterator<Item = &'a str>) -> Text {
    for (i, n) in names.enumerate() {
        if i > 0 {
            t = t.and(", ");
        }
        t = t.code(n);
    }
    t
}

pub fn batch_card(policy: &Policy, members: &[Request]) -> Message {
    let lead = &members[0];
    let mut fields = vec![("Reason".to_string(), Text::plain(lead.reason.as_str()))];
    if let Some(t) = &lead.ticket {
        fields.push(("Ticket".to_string(), Text::plain(t)));
    }
    let waiting: Vec<&Request> = members.iter().filter(|m| m.state == State::Pending).collect();
    let mut summary = if !waiting.is_empty() {
        let t = Text::plain(if lead.granted_in_part() {
            "Granted in part: each role approved is granted once none is still waiting, a role denied does not \
             stop the others; still waiting for "
        } else {
            "Granted only when every role is approved; still waiting for "
        });
        codes(t, waiting.iter().map(|m| m.role.as_str())).and(". Approve approves every role you may approve.")
    } else {
        Text::plain("Each role is granted, and ends, on its own:")
    };
    for note in super::handle::left_out(lead) {
        summary = summary.and(format!(" {note}"));
    }
    let mut msg = Message { tone: Tone::Info, blocks: vec![Block::Heading(heading(members))] }
        .with(Block::Fields(fields))
        .with(Block::Text(summary))
        .with(Block::List(members.iter().map(|m| role_line(policy, m)).collect()));
    if !waiting.is_empty() {
        msg = msg.with(Block::Buttons(vec![
            Button::new("Approve", Action::Approve(lead.id), Style::Success),
            Button::new("Deny", Action::Deny(lead.id), Style::Danger),
        ]));
    }
    msg
}
