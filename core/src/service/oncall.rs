//! Evaluating on-call rules for a new request. Each rule that applies to the role asks its
//! on-call service (through the cache) whether the requester is on call now in one of the rule's
//! schedules, at one of its levels. Whatever it finds is kept with the request as a fired rule
//! with a detail line (shown on the card, written in the `request.created` event):
//! `on_call` (it approves), `one_approval` (it counts as one approval, and says where, in
//! [`FiredRule::credit`]), `not_on_call`, or `on_call_unavailable` (the service could not be
//! asked: the rule does not fire, a human decides, and a warning is logged).

use super::Service;
use crate::{
    oncall::{OnCallQuery, OnCallShift},
    policy::{
        Caller, Policy, Role,
        oncall::{OnCallEffect, OnCallMatch, OnCallRule},
        rules::{FiredRule, OnCallCredit, RuleKind},
    },
};
use serde_json::{Value, json};
use tracing::warn;

/// What the on-call rules found for one request.
#[derive(Debug, Default)]
pub(super) struct OnCallVerdict {
    pub fired: Vec<FiredRule>,
    /// The first rule that found the requester on call: why, and the audit details.
    pub approve: Option<(String, Value)>,
}

impl Service {
    pub(super) async fn on_call_rules(&self, policy: &Policy, caller: &Caller, role: &Role) -> OnCallVerdict {
        let mut v = OnCallVerdict::default();
        let now = self.now();
        for rule in policy.rules.iter().filter(|r| r.roles.contains(&role.name)) {
            let RuleKind::OnCall(oc) = &rule.kind else { continue };
            let fired = |effect: &str, detail: String| FiredRule {
                rule: rule.name.clone(),
                effect: effect.into(),
                detail: Some(detail),
                credit: None,
            };
            let Some(id) = policy.person(&caller.person).and_then(|p| oc.match_by.identity(p)) else {
                let detail = format!(
                    "{} has no {} in the policy, so {} cannot say whether they are on call",
                    caller.person,
                    oc.match_by.as_str(),
                    oc.service
                );
                v.fired.push(fired("not_on_call", detail));
                continue;
            };
            let query = OnCallQuery {
                schedules: oc.schedules.clone(),
                escalation_policies: oc.escalation_policies.clone(),
                user: (oc.match_by == OnCallMatch::PagerDutyUser).then(|| id.to_string()),
                emails: oc.match_by == OnCallMatch::Email,
            };
            match self.on_call.lookup(oc.service, &query, now).await {
                Err(e) => {
                    warn!(rule = %rule.name, service = %oc.service, error = %e,
                          "on-call service unreachable: the rule does not fire, a human decides");
                    let detail =
                        format!("{} could not be reached ({e}): not auto-approved, a human approves", oc.service);
                    v.fired.push(fired("on_call_unavailable", detail));
                }
                Ok(shifts) => match shifts.iter().find(|s| counts(oc, id, s)) {
                    Some(s) if oc.effect == OnCallEffect::OneApproval => {
                        let detail = format!("{} is on call in {} schedule {}", caller.person, oc.service, where_(s));
                        let credit = OnCallCredit {
                            service: oc.service,
                            schedule: s.schedule.clone(),
                            schedule_name: s.schedule_name.clone(),
                            level: s.level,
                        };
                        v.fired.push(FiredRule { credit: Some(credit), ..fired("one_approval", detail) });
                    }
                    Some(s) => {
                        let detail = format!("{} is on call in {} schedule {}", caller.person, oc.service, where_(s));
                        if v.approve.is_none() {
                            let audit = json!({ "rule": rule.name, "service": oc.service.as_str(),
                                "schedule": s.schedule, "schedule_name": s.schedule_name, "level": s.level });
                            v.approve = Some((detail.clone(), audit));
                        }
                        v.fired.push(fired("on_call", detail));
                    }
                    None => {
                        let levels = match oc.levels.as_slice() {
                            [] => String::new(),
                            ls => format!(
                                " at level {}",
                                ls.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(" or ")
                            ),
                        };
                        let detail = format!(
                            "{} is not on call now in {} schedule {}{levels}",
                            caller.person,
                            oc.service,
                            oc.schedules.join(", ")
                        );
                        v.fired.push(fired("not_on_call", detail));
                    }
                },
            }
        }
        v
    }
}

/// The shift is the requester's, in one of the rule's schedules, at one of its levels.
fn counts(rule: &OnCallRule, id: &str, s: &OnCallShift) -> bool {
    rule.schedules.contains(&s.schedule)
        && (rule.levels.is_empty() || s.level.is_some_and(|l| rule.levels.contains(&l)))
        && rule.match_by.is_theirs(id, s)
}

/// "PSCHED1 (Primary), level 1".
fn where_(s: &OnCallShift) -> String {
    let mut out = s.schedule.clone();
    if let Some(n) = &s.schedule_name {
        out.push_str(&format!(" ({n})"));
    }
    if let Some(l) = s.level {
        out.push_str(&format!(", level {l}"));
    }
    out
}
