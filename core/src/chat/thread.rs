//! A request's story under its card. The card shows where a request stands now; every later
//! event (approvals, the grant, warnings, extensions, the end, reminders, escalation,
//! break-glass review) is also a reply in the card's thread, so the thread reads as the
//! request's whole history. Reminders and escalations can also reach the approvers who have not
//! decided yet, by DM, when the role asks for it (`remind_by_dm`).

use crate::{GrantDuration, GroupName, PersonId, audit::AuditEvent, policy::Policy, render, request::Request};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// Events told in the thread in core's feed wording. `request.created` is the card itself;
/// refused clicks and provider retries are noise for the people watching the card (the audit
/// feed has them).
const TOLD: &[&str] = &[
    "request.approval_added",
    "request.approved",
    "request.denied",
    "request.cancelled",
    "request.timed_out",
    "grant.applied",
    "grant.failed",
    "grant.expiry_warning",
    "grant.extended",
    "grant.released",
    "grant.revoked",
    "grant.expired",
    "grant.undone",
    "grant.revoke_alert",
    "breakglass.review_pending",
    "breakglass.reviewed",
];

/// The reply under the card that tells `ev`, if it is told there.
pub fn thread_line(ev: &AuditEvent, req: &Request, policy: &Policy) -> Option<String> {
    match ev.kind.as_str() {
        "request.reminder" => Some(format!("Still waiting: {}.", waiting(req, policy, ev.at))),
        "request.escalated" => Some(format!(
            "Escalated: {} may approve it now ({}).",
            groups(&escalation(req, policy)),
            waiting(req, policy, ev.at)
        )),
        k if TOLD.contains(&k) => Some(render::feed_line(ev, Some(req))),
        _ => None,
    }
}

/// The approvers to DM about `ev` (a reminder: the role's approvers who have not decided; an
/// escalation: the escalation groups' members), with what to tell them; none unless the role
/// sets `remind_by_dm`. Only members listed in the policy can be named: members a chat
/// platform adds at click time (a Slack user group, a Discord role) are reached by the thread.
pub fn nudges(ev: &AuditEvent, req: &Request, policy: &Policy) -> Vec<(PersonId, String)> {
    let Some(role) = policy.roles.get(&req.role).filter(|r| r.remind_by_dm) else {
        return Vec::new();
    };
    let (groups, why) = match ev.kind.as_str() {
        "request.reminder" => (role.approvers.clone(), "is still waiting for your approval"),
        "request.escalated" => (escalation(req, policy), "was escalated to you"),
        _ => return Vec::new(),
    };
    let decided: BTreeSet<&PersonId> = req.approvals.iter().map(|a| &a.approver).collect();
    let mut people: BTreeSet<&PersonId> =
        groups.iter().filter_map(|g| policy.groups.get(g)).flat_map(|g| g.members.iter()).collect();
    people.retain(|p| **p != req.requester && !decided.contains(p));
    let text = format!(
        "Request #{} by {} for `{}` {why} ({}). Approve or deny it on the card, or with `/elevate approve {}`.",
        req.id.0,
        req.requester,
        req.role,
        waiting(req, policy, ev.at),
        req.id.0
    );
    people.into_iter().map(|p| (p.clone(), text.clone())).collect()
}

/// "1 of 2 approvals, 25m left before it times out".
fn waiting(req: &Request, policy: &Policy, at: DateTime<Utc>) -> String {
    let role = policy.roles.get(&req.role);
    let threshold = req.threshold(policy);
    let required = threshold.required;
    let mut out = format!(
        "{} of {required} approval{}",
        threshold.given(req.approvals.len()),
        if required == 1 { "" } else { "s" }
    );
    if let Some(r) = role {
        let left = (req.created_at + r.pending_timeout.as_chrono() - at).num_seconds();
        // Rounded up to the minute: "0m left" would read as already gone.
        match GrantDuration::from_secs((left + 59) / 60 * 60) {
            Ok(d) => out.push_str(&format!(", {d} left before it times out")),
            Err(_) => out.push_str(", about to time out"),
        }
    }
    out
}

fn escalation(req: &Request, policy: &Policy) -> Vec<GroupName> {
    policy.roles.get(&req.role).map(|r| r.escalate_to.clone()).unwrap_or_default()
}

fn groups(names: &[GroupName]) -> String {
    match names {
        [] => "the escalation groups".into(),
        [one] => format!("members of {one}"),
        more => format!("members of {}", more.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")),
    }
}
