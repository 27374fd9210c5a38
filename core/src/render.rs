//! Platform-neutral wording of audit events: one readable line each, for the audit feed channel,
//! logs and DMs. Plain text: each chat adapter escapes it for its platform when it sends it.

use crate::{audit::AuditEvent, request::Request};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// `person:alice` → `alice`; `rule:freeze` → `rule freeze`; `system` → `elevate`.
pub fn actor_name(actor: &str) -> String {
    if let Some(p) = actor.strip_prefix("person:") {
        p.to_string()
    } else if let Some(r) = actor.strip_prefix("rule:") {
        format!("rule {r}")
    } else {
        "elevate".to_string()
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(|x| x.as_str()).unwrap_or("")
}

fn n(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(|x| x.as_i64()).unwrap_or(0)
}

fn when(v: &Value, k: &str) -> String {
    DateTime::parse_from_rfc3339(s(v, k)).map(|t| time(t.with_timezone(&Utc))).unwrap_or_else(|_| "?".into())
}

/// " (dry run: nothing was applied)" for grants of a dry-run provider.
pub fn dry_run_suffix(ev: &AuditEvent, req: Option<&Request>) -> &'static str {
    let flagged =
        ev.details.get("dry_run").and_then(|d| d.as_bool()).unwrap_or(false) || req.is_some_and(|r| r.is_dry_run());
    if flagged { " (dry run: nothing was applied)" } else { "" }
}

/// Events the security team must see in its own channel, not only in the audit feed: alerts
/// (flagged persons, repeated refusals, break-glass), lockdowns, open break-glass reviews, and
/// access that could not be removed.
pub fn for_security(kind: &str) -> bool {
    matches!(
        kind,
        "security.alert"
            | "security.lockdown"
            | "security.unlock"
            | "config.reloaded"
            | "breakglass.review_pending"
            | "breakglass.reviewed"
            | "grant.revoke_alert"
    )
}

/// ", starts at 2026-12-05 21:00 UTC" for an approval of scheduled access.
fn starts(d: &serde_json::Value) -> String {
    match d.get("starts_at").and_then(|v| v.as_str()).and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok()) {
        Some(t) => format!(", starts at {}", time(t.with_timezone(&chrono::Utc))),
        None => String::new(),
    }
}

/// " (service identity)" when a service identity caused the event (`actor_kind`).
fn service_suffix(d: &Value) -> &'static str {
    if s(d, "actor_kind") == "service" { " (service identity)" } else { "" }
}

/// One line per event.
pub fn feed_line(ev: &AuditEvent, req: Option<&Request>) -> String {
    let d = &ev.details;
    let id = ev.subject.map(|s| format!("#{s}")).unwrap_or_default();
    let who = actor_name(&ev.actor);
    let (person, role) = req.map(|r| (r.requester.to_string(), r.role.to_string())).unwrap_or_default();
    let dry = dry_run_suffix(ev, req);
    match ev.kind.as_str() {
        "request.created" => {
            let ticket = match s(d, "ticket") {
                "" => String::new(),
                t => format!(" [{t}]"),
            };
            let ext = match d.get("extends").and_then(|x| x.as_i64()) {
                Some(p) => format!(" to extend #{p}"),
                None => starts(d).replace(", starts at", " starting"),
            };
            format!(
                "{id} {who}{} requested {} for {}{ext}{ticket}: \"{}\" (needs {} approval{}{})",
                if s(d, "requester_kind") == "service" { " (service identity)" } else { "" },
                s(d, "role"),
                s(d, "duration"),
                s(d, "reason"),
                n(d, "approvals_required"),
                if n(d, "approvals_required") == 1 { "" } else { "s" },
                if n(d, "approvals_credited") > 0 { ", being on call counts as one" } else { "" }
            )
        }
        "request.approval_added" => format!("{id} approval {} of {} by {who}", n(d, "approvals"), n(d, "required")),
        "request.approved" => {
            let by: Vec<String> = d
                .get("approvers")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_else(|| vec![who.clone()]);
            if d.get("drill").is_some() {
                format!(
                    "{id} break-glass DRILL of {role} by {person}: granted without approval, revokes itself shortly"
                )
            } else if d.get("breakglass").is_some() {
                format!("{id} BREAK-GLASS: {person} has {role} without approval; the security team must review it")
            } else if d.get("auto_approved").is_some() {
                format!("{id} auto-approved ({}){}", s(d, "why"), starts(d))
            } else if d.get("on_call").is_some_and(|c| c.is_object()) {
                format!("{id} approved by {} and being on call{}", by.join(", "), starts(d))
            } else {
                format!("{id} approved by {}{}", by.join(", "), starts(d))
            }
        }
        "request.started" => format!("{id} scheduled start: checked again and being applied"),
        "request.approval_refused" => format!("{id} approval by {who} refused: {}", s(d, "why")),
        "request.denied" => format!("{id} denied by {who}: {}", s(d, "reason")),
        "request.cancelled" => format!("{id} cancelled by {who}{}", service_suffix(d)),
        "request.timed_out" if d.get("approval_expired").is_some() => {
            format!("{id} approval expired unused before its start")
        }
        "request.timed_out" => format!("{id} timed out waiting for approval"),
        "request.reminder" => format!(
            "{id} {person} is still waiting for approval of {role} ({} of {} so far)",
            n(d, "approvals"),
            n(d, "required")
        ),
        "grant.applied" => format!("{id} granted: {person} has {role} until {}{dry}", when(d, "expires_at")),
        "grant.apply_retry" => {
            format!("{id} provider error while granting (attempt {}), retrying: {}", n(d, "attempt"), s(d, "error"))
        }
        "grant.failed" => format!("{id} grant of {role} to {person} failed: {}: {}", s(d, "code"), s(d, "message")),
        "grant.revoking" => {
            let why = match s(d, "ending") {
                "expired" => "time is up".to_string(),
                "released" => format!("released by {who}{}", service_suffix(d)),
                _ => match s(d, "reason") {
                    "" => format!("revoked by {who}"),
                    r => format!("revoked by {who}: {r}"),
                },
            };
            format!("{id} removing {person}'s {role} access ({why}){dry}")
        }
        "grant.expired" => format!("{id} {person}'s {role} access expired and was removed{dry}"),
        "grant.released" => format!("{id} {person} released {role}; access removed{dry}"),
        "grant.revoked" => format!("{id} {person}'s {role} access was revoked{dry}"),
        "grant.revoke_failed" => format!(
            "{id} could not remove {person}'s {role} access (attempt {}); retrying at {}: {}",
            n(d, "attempt"),
            when(d, "retry_at"),
            s(d, "error")
        ),
        "grant.revoke_alert" => format!(
            "ALERT {id} {person}'s {role} access still not removed after {} attempts: {}",
            n(d, "attempts"),
            s(d, "error")
        ),
        "grant.extended" => format!("{id} extended by {}; now until {}", s(d, "by"), when(d, "expires_at")),
        "grant.expiry_warning" => format!("{id} {person}'s {role} access expires in {} min", n(d, "minutes_left")),
        "grant.undone" => {
            format!("{id} a grant applied after the request was closed was removed again")
        }
        "grant.drift_revoked" => format!(
            "drift: removed {} from provider {} ({}): no active grant behind it",
            s(d, "grant_id"),
            s(d, "provider"),
            s(d, "what")
        ),
        "audit.checkpoint" => format!(
            "audit checkpoint: seq {} head {}{}",
            n(d, "seq"),
            s(d, "hash"),
            if d.get("signature").is_some() { " (signed)" } else { "" }
        ),
        "request.escalated" => format!(
            "{id} still waiting for approval; members of {} may now approve it",
            d.get("to")
                .and_then(|t| t.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        ),
        "security.alert" => format!("SECURITY ALERT {id}: {}", s(d, "message")),
        "security.actor_refused" => {
            let tenant = match s(d, "tenant") {
                "" => String::new(),
                t => format!(" of {t}"),
            };
            format!("refused {} user {}{tenant}: {}", s(d, "platform"), s(d, "user"), s(d, "why").replace('_', " "))
        }
        "security.lockdown" => format!(
            "LOCKDOWN of {} by {who}: {}{}",
            match s(d, "scope") {
                "*" => "every role".to_string(),
                r => format!("role {r}"),
            },
            s(d, "reason"),
            if d.get("blocks_breakglass").and_then(|b| b.as_bool()) == Some(true) {
                " (break-glass blocked too)"
            } else {
                ""
            }
        ),
        "security.unlock" => format!(
            "lockdown of {} lifted by {who}",
            match s(d, "scope") {
                "*" => "every role".to_string(),
                r => format!("role {r}"),
            }
        ),
        "config.reloaded" => {
            let list = |k: &str| -> Vec<String> {
                d.get(k)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            };
            let mut changes = Vec::new();
            for (key, word) in [
                ("roles_added", "roles added"),
                ("roles_removed", "roles removed"),
                ("roles_changed", "roles changed"),
                ("persons_added", "persons added"),
                ("persons_removed", "persons removed"),
                ("groups_added", "groups added"),
                ("groups_removed", "groups removed"),
                ("groups_changed", "groups changed"),
                ("tokens_added", "tokens added"),
                ("tokens_removed", "tokens removed"),
                ("bundles_added", "bundles added"),
                ("bundles_removed", "bundles removed"),
                ("bundles_changed", "bundles changed"),
            ] {
                let l = list(key);
                if !l.is_empty() {
                    changes.push(format!("{word}: {}", l.join(", ")));
                }
            }
            if d.get("settings_changed").and_then(|v| v.as_bool()) == Some(true) {
                changes.push("settings changed".to_string());
            }
            let changes = if changes.is_empty() { "no policy change".to_string() } else { changes.join("; ") };
            let hash = s(d, "config_sha256");
            format!("policy reloaded by {who} (config {}): {changes}", &hash[..hash.len().min(12)])
        }
        "report.posted" => format!("{}\n```\n{}```", s(d, "title"), s(d, "table")),
        "breakglass.review_pending" => format!("{id} break-glass use by {person} of {role} still needs a review"),
        "breakglass.reviewed" => format!("{id} break-glass use reviewed by {who}: {}", s(d, "note")),
        other => format!("{id} {other} by {who}"),
    }
}

/// Who closed a request: a person (rendered by the platform) or a rule (`rule lockdown`).
fn closer_name(closed_by: &str, name: &dyn Fn(&str) -> String) -> String {
    match closed_by.strip_prefix("rule:") {
        Some(rule) => format!("rule {rule}"),
        None if closed_by == "system" => "elevate".to_string(),
        None => name(closed_by),
    }
}

/// What the requester is told about a change to their own request, in the second person, for
/// chat DMs; `None` for events that are not news to them (their own request being created, a
/// refused click by someone else, retries). `name` renders a person (a chat mention, or the
/// plain id) and `text` makes free text (reasons, provider messages) safe for the platform;
/// both are the adapter's.
pub fn requester_line(
    ev: &AuditEvent,
    req: &Request,
    name: &dyn Fn(&str) -> String,
    text: &dyn Fn(&str) -> String,
) -> Option<String> {
    let d = &ev.details;
    let what = format!("your request {} for `{}`", req.id, req.role);
    let who = || match ev.actor.strip_prefix("person:") {
        Some(p) => name(p),
        None => actor_name(&ev.actor),
    };
    let closer = || req.closed_by.as_deref().map(|c| closer_name(c, name)).unwrap_or_else(who);
    let why = || match req.note.as_deref() {
        Some(n) if !n.is_empty() => format!(": {}", text(n)),
        _ => String::new(),
    };
    let dry = dry_run_suffix(ev, Some(req));
    let line = match ev.kind.as_str() {
        "request.approval_added" => format!(
            "{who} approved {what} ({} of {} approvals so far).",
            n(d, "approvals"),
            n(d, "required"),
            who = who()
        ),
        "request.approved" => {
            let by: Vec<String> = d
                .get("approvers")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str()).map(name).collect())
                .unwrap_or_else(|| vec![who()]);
            if d.get("breakglass").is_some() {
                format!(
                    "Break-glass: {what} is being applied now. The security team has been alerted and will review it."
                )
            } else if d.get("starts_at").is_some() {
                format!("Approved by {}: {what} starts at {}.", by.join(", "), when(d, "starts_at"))
            } else if d.get("auto_approved").is_some() {
                format!("Auto-approved ({}): {what} is being applied.", text(s(d, "why")))
            } else {
                format!("Approved by {}: {what} is being applied.", by.join(", "))
            }
        }
        "request.denied" => format!("Denied by {}: {what}. Reason: {}", who(), text(s(d, "reason"))),
        "request.cancelled" => format!("Cancelled: {what}."),
        "request.timed_out" if d.get("approval_expired").is_some() => {
            format!("Timed out: the approval of {what} expired before its start. Ask again if you still need it.")
        }
        "request.timed_out" => {
            format!("Timed out: nobody decided on {what} in time. Ask again if you still need it.")
        }
        "grant.applied" => {
            format!("Granted: you have `{}` until {} ({}).{dry}", req.role, when(d, "expires_at"), req.id)
        }
        "grant.failed" => format!(
            "The grant of `{}` ({}) failed: {}: {}",
            req.role,
            req.id,
            text(s(d, "code")),
            text(s(d, "message"))
        ),
        "grant.expiry_warning" => {
            format!("Your `{}` access ({}) expires in {} min.", req.role, req.id, n(d, "minutes_left"))
        }
        "grant.extended" => {
            format!("Extended: your `{}` access ({}) now runs until {}.", req.role, req.id, when(d, "expires_at"))
        }
        "grant.expired" => format!("Expired: your `{}` access ({}) has been removed.{dry}", req.role, req.id),
        "grant.released" => format!("Released: your `{}` access ({}) has been removed.{dry}", req.role, req.id),
        "grant.revoked" => {
            format!("Revoked by {}{}: your `{}` access ({}) has been removed.{dry}", closer(), why(), req.role, req.id)
        }
        _ => return None,
    };
    Some(line)
}
