//! `elevate explain`: a dry run of the policy for one person and one role, in plain words.

use crate::{
    PersonId,
    policy::{Caller, Policy},
};
use std::fmt::Write;

/// Says whether `person` may request `role`, who approves it, how many approvals it needs, and
/// what would happen after approval. An error names what is unknown.
pub fn explain(policy: &Policy, person: &str, role: &str) -> Result<String, String> {
    let pid = PersonId::parse(person)?;
    if policy.person(&pid).is_none() {
        return Err(format!("there is no person `{person}` in the policy"));
    }
    let role = policy.role(role).map_err(|e| e.message)?;
    let caller = Caller::person(pid.clone());
    let mut out = String::new();
    let may = policy.may_request(&caller, role);
    let _ = writeln!(
        out,
        "role:        {}{}",
        role.name,
        role.description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
    );
    let _ = writeln!(out, "person:      {pid}");
    let _ = writeln!(
        out,
        "may request: {}",
        if may {
            "yes".to_string()
        } else {
            format!(
                "no: only members of {} may",
                role.requesters.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
            )
        }
    );
    let _ = writeln!(
        out,
        "durations:   default {}, max {}, max total with extensions {}",
        role.default_duration, role.max_duration, role.max_total_duration
    );
    let mut approvers: Vec<String> = policy
        .listed_approvers(role)
        .into_iter()
        .filter(|p| role.self_approval || *p != pid)
        .map(|p| p.to_string())
        .collect();
    approvers.sort();
    for g in &role.approvers {
        if let Some(grp) = policy.groups.get(g) {
            if let Some(r) = &grp.discord_role {
                approvers.push(format!("(anyone with Discord role {r}, read at click time: not counted here)"));
            }
            if let Some(u) = &grp.slack_usergroup {
                approvers.push(format!("(members of Slack user group {u}, read at click time: not counted here)"));
            }
        }
    }
    let _ = writeln!(
        out,
        "approvers:   {} (groups: {})",
        if approvers.is_empty() { "nobody".into() } else { approvers.join(", ") },
        role.approvers.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        out,
        "approvals:   {} distinct approver(s) needed; self-approval {}",
        role.approvals_required,
        if role.self_approval { "allowed" } else { "not allowed" }
    );
    if let Some(re) = &role.ticket_pattern {
        let _ = writeln!(
            out,
            "ticket:      pattern `{}`{}",
            re.as_str(),
            if role.ticket_required { ", required" } else { ", taken from the reason if present" }
        );
    }
    let _ = writeln!(
        out,
        "pending:     times out after {}{}",
        role.pending_timeout,
        role.reminder_interval.map(|r| format!("; approvers reminded every {r}")).unwrap_or_default()
    );
    let _ = writeln!(out, "provider:    {} with target {}", role.provider, role.target);
    if may {
        let approvals_possible = approvers.len() as u32 >= role.approvals_required;
        let _ = writeln!(
            out,
            "would:       create a pending request; {}after approval apply the grant through `{}` for the requested duration (from the moment it is applied), warn {} before expiry, and revoke it at expiry",
            if approvals_possible { "" } else { "NOTE: fewer listed approvers than required; " },
            role.provider,
            policy.settings.expiry_warning
        );
    } else {
        let _ = writeln!(out, "would:       refuse the request");
    }
    Ok(out)
}
