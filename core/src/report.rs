//! Usage reports: per role and per person, elevations with total and median time held,
//! approvals by approver, denials by reason and rule, break-glass uses and their review, revoke
//! failures. Built from requests and audit events; rendered as a table (chat, terminal), CSV or
//! JSON.

use crate::{
    State,
    audit::AuditEvent,
    request::{Request, RequestKind},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::{collections::BTreeMap, fmt::Write};

/// Elevations of one role or one person.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    pub name: String,
    pub elevations: u64,
    pub total_secs: i64,
    pub median_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakglassUse {
    pub id: i64,
    pub person: String,
    pub role: String,
    pub at: DateTime<Utc>,
    /// `open` or `done`.
    pub review: String,
}

/// The whole report for `since..until`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by_role: Vec<Usage>,
    pub by_person: Vec<Usage>,
    /// Approvals given, by approver.
    pub approvals: BTreeMap<String, u64>,
    /// Denials by who or what denied and why: `("bob", "use the replica") → 2`,
    /// `("rule freeze", "…") → 1`.
    pub denials: Vec<(String, String, u64)>,
    pub breakglass: Vec<BreakglassUse>,
    /// Failed revoke attempts, and the requests they were for.
    pub revoke_failures: u64,
    pub revoke_failed_requests: Vec<i64>,
}

fn median(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 }
}

/// How long a grant gave access (so far, for one still active).
fn held_secs(r: &Request, now: DateTime<Utc>) -> Option<i64> {
    let start = r.granted_at?;
    let end = match r.state {
        State::Active | State::Revoking => now.min(r.expires_at.unwrap_or(now)),
        State::Expired => r.expires_at.unwrap_or(r.updated_at),
        _ => r.updated_at.min(r.expires_at.unwrap_or(r.updated_at)),
    };
    Some((end - start).num_seconds().max(0))
}

/// Builds the report from the requests created in the period and the period's events.
pub fn build(requests: &[Request], events: &[AuditEvent], since: DateTime<Utc>, until: DateTime<Utc>) -> Report {
    let in_period: Vec<&Request> = requests
        .iter()
        .filter(|r| r.created_at >= since && r.created_at < until)
        .filter(|r| !matches!(r.kind, RequestKind::Extension(_)))
        .collect();
    let mut roles: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut persons: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in &in_period {
        if let Some(secs) = held_secs(r, until) {
            roles.entry(r.role.to_string()).or_default().push(secs);
            persons.entry(r.requester.to_string()).or_default().push(secs);
        }
    }
    let usage = |m: BTreeMap<String, Vec<i64>>| -> Vec<Usage> {
        m.into_iter()
            .map(|(name, v)| Usage {
                name,
                elevations: v.len() as u64,
                total_secs: v.iter().sum(),
                median_secs: median(v),
            })
            .collect()
    };
    let mut approvals: BTreeMap<String, u64> = BTreeMap::new();
    for a in requests.iter().flat_map(|r| r.approvals.iter()).filter(|a| a.at >= since && a.at < until) {
        *approvals.entry(a.approver.to_string()).or_default() += 1;
    }
    let mut denials: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in in_period.iter().filter(|r| r.state == State::Denied) {
        let by = r.closed_by.clone().unwrap_or_default();
        let by = by.strip_prefix("rule:").map(|x| format!("rule {x}")).unwrap_or(by);
        let why = r.note.clone().unwrap_or_default();
        *denials.entry((by, why)).or_default() += 1;
    }
    let breakglass = in_period
        .iter()
        .filter(|r| r.kind == RequestKind::BreakGlass && r.state != State::Denied)
        .map(|r| BreakglassUse {
            id: r.id.0,
            person: r.requester.to_string(),
            role: r.role.to_string(),
            at: r.created_at,
            review: if r.review_open() { "open".into() } else { "done".into() },
        })
        .collect();
    let failures: Vec<&AuditEvent> =
        events.iter().filter(|e| e.kind == "grant.revoke_failed" && e.at >= since && e.at < until).collect();
    let mut failed_ids: Vec<i64> = failures.iter().filter_map(|e| e.subject).collect();
    failed_ids.sort_unstable();
    failed_ids.dedup();
    Report {
        since,
        until,
        by_role: usage(roles),
        by_person: usage(persons),
        approvals,
        denials: denials.into_iter().map(|((by, why), n)| (by, why, n)).collect(),
        breakglass,
        revoke_failures: failures.len() as u64,
        revoke_failed_requests: failed_ids,
    }
}

fn hm(secs: i64) -> String {
    format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
}

impl Report {
    /// A fixed-width text table, readable in a terminal and in a chat code block.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "elevate usage {} – {}", crate::render::time(self.since), crate::render::time(self.until));
        for (title, rows) in [("role", &self.by_role), ("person", &self.by_person)] {
            let _ = writeln!(o, "\n{:<24} {:>10} {:>10} {:>10}", title, "elevations", "total", "median");
            for u in rows.iter() {
                let _ = writeln!(
                    o,
                    "{:<24} {:>10} {:>10} {:>10}",
                    u.name,
                    u.elevations,
                    hm(u.total_secs),
                    hm(u.median_secs)
                );
            }
            if rows.is_empty() {
                let _ = writeln!(o, "(none)");
            }
        }
        let _ = writeln!(o, "\n{:<24} {:>10}", "approver", "approvals");
        for (who, n) in &self.approvals {
            let _ = writeln!(o, "{who:<24} {n:>10}");
        }
        let _ = writeln!(o, "\n{:<24} {:>6}  reason", "denied by", "count");
        for (by, why, n) in &self.denials {
            let why: String = why.chars().take(60).collect();
            let _ = writeln!(o, "{by:<24} {n:>6}  {why}");
        }
        let _ = writeln!(o, "\nbreak-glass uses: {}", self.breakglass.len());
        for b in &self.breakglass {
            let _ = writeln!(
                o,
                "  #{} {} {} at {} — review {}",
                b.id,
                b.person,
                b.role,
                crate::render::time(b.at),
                b.review
            );
        }
        let _ = writeln!(
            o,
            "\nrevoke failures: {}{}",
            self.revoke_failures,
            if self.revoke_failed_requests.is_empty() {
                String::new()
            } else {
                format!(
                    " (requests {})",
                    self.revoke_failed_requests.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", ")
                )
            }
        );
        o
    }

    /// One CSV: `section,name,count,total_secs,median_secs,detail`.
    pub fn csv_rows(&self) -> Vec<[String; 6]> {
        let mut rows = vec![["section", "name", "count", "total_secs", "median_secs", "detail"].map(String::from)];
        for (section, list) in [("role", &self.by_role), ("person", &self.by_person)] {
            for u in list.iter() {
                rows.push([
                    section.into(),
                    u.name.clone(),
                    u.elevations.to_string(),
                    u.total_secs.to_string(),
                    u.median_secs.to_string(),
                    String::new(),
                ]);
            }
        }
        for (who, n) in &self.approvals {
            rows.push(["approvals".into(), who.clone(), n.to_string(), String::new(), String::new(), String::new()]);
        }
        for (by, why, n) in &self.denials {
            rows.push(["denials".into(), by.clone(), n.to_string(), String::new(), String::new(), why.clone()]);
        }
        for b in &self.breakglass {
            rows.push([
                "breakglass".into(),
                b.person.clone(),
                "1".into(),
                String::new(),
                String::new(),
                format!("#{} {} review {}", b.id, b.role, b.review),
            ]);
        }
        rows.push([
            "revoke_failures".into(),
            String::new(),
            self.revoke_failures.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median(vec![]), 0);
    }
}
