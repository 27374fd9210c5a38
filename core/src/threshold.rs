//! How many approvals a request needs: computed here, once, from the request as it was recorded
//! and the role as the policy has it now, and read by everything that decides or shows it (the
//! approve click, auto-approval at creation, the cards, the thread, reminders, the API and the
//! CLI), so that no two places can disagree about whether a rule's extra approval counts.
//!
//! Three things make the number:
//! - the role's `approvals_required` (1 when the role has since left the policy);
//! - approvals rules added when it was requested (`extra_approval` rules, e.g. outside hours);
//! - an approval an on-call rule with `effect = "one_approval"` credited because the requester
//!   was on call (at most one per request, however many such rules fired).
//!
//! The credit never replaces the last human when a rule asked for a human: if a rule added an
//! approval or forbade auto-approval, at least one person must still approve. Break-glass and
//! drills need none.

use crate::{
    policy::{
        Policy,
        rules::{Effect, FiredRule},
    },
    request::{Request, RequestKind},
};

/// The `FiredRule::effect` of a rule that asks for a human decision.
const NO_AUTO_APPROVE: &str = Effect::NoAutoApprove.fired_name();

/// A request's approval threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// Approvals the request needs in all: the role's plus the ones rules added.
    pub required: u32,
    /// Of those, approvals a rule counted for the requester (on call); the rest are people's.
    pub credited: u32,
}

impl Threshold {
    /// The threshold of a request of `kind` for a role needing `role_required`, with the
    /// `extra` approvals and `fired` rules recorded with it.
    pub fn new(kind: RequestKind, role_required: u32, extra: u32, fired: &[FiredRule]) -> Threshold {
        if matches!(kind, RequestKind::BreakGlass | RequestKind::Drill) {
            return Threshold { required: 0, credited: 0 };
        }
        let required = role_required + extra;
        let human_floor = u32::from(extra > 0 || fired.iter().any(|f| f.effect == NO_AUTO_APPROVE));
        let credit = u32::from(fired.iter().any(|f| f.credit.is_some()));
        Threshold { required, credited: credit.min(required.saturating_sub(human_floor)) }
    }

    /// The threshold of `req` under `policy`.
    pub fn of(policy: &Policy, req: &Request) -> Threshold {
        let role_required = policy.roles.get(&req.role).map(|r| r.approvals_required).unwrap_or(1);
        Threshold::new(req.kind, role_required, req.extra_approvals, &req.rules)
    }

    /// Approvals people must give.
    pub fn from_people(&self) -> u32 {
        self.required - self.credited
    }

    /// How many more people must approve, after `approvals`.
    pub fn missing(&self, approvals: usize) -> u32 {
        self.from_people().saturating_sub(approvals.min(u32::MAX as usize) as u32)
    }

    /// Whether `approvals` people's approvals are enough.
    pub fn met(&self, approvals: usize) -> bool {
        self.missing(approvals) == 0
    }

    /// Approvals counted so far: people's plus the credited one, for "2 of 2".
    pub fn given(&self, approvals: usize) -> u32 {
        (approvals.min(u32::MAX as usize) as u32).saturating_add(self.credited)
    }
}

/// The rule that counted as an approval, if one did (the first, when several could): for the
/// card and the audit trail.
pub fn credited_by(fired: &[FiredRule]) -> Option<&FiredRule> {
    fired.iter().find(|f| f.credit.is_some())
}

/// `{rule, service, schedule, schedule_name, level}` of the credited approval, for events.
pub fn credit_details(threshold: Threshold, fired: &[FiredRule]) -> Option<serde_json::Value> {
    let f = credited_by(fired).filter(|_| threshold.credited > 0)?;
    let c = f.credit.as_ref()?;
    Some(serde_json::json!({ "rule": f.rule, "service": c.service, "schedule": c.schedule,
        "schedule_name": c.schedule_name, "level": c.level }))
}

impl Request {
    /// This request's approval threshold under `policy` (see [`Threshold`]).
    pub fn threshold(&self, policy: &Policy) -> Threshold {
        Threshold::of(policy, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{oncall::OnCallService, policy::rules::OnCallCredit};

    fn fired(effect: &str, credit: bool) -> FiredRule {
        FiredRule {
            rule: "r".into(),
            effect: effect.into(),
            detail: None,
            credit: credit.then(|| OnCallCredit {
                service: OnCallService::PagerDuty,
                schedule: "PSCHED1".into(),
                schedule_name: None,
                level: Some(1),
            }),
        }
    }

    #[test]
    fn extra_approvals_count_and_a_credit_replaces_one_person() {
        let n = RequestKind::Normal;
        assert_eq!(Threshold::new(n, 1, 0, &[]), Threshold { required: 1, credited: 0 });
        assert_eq!(Threshold::new(n, 1, 1, &[]).from_people(), 2);
        let on_call = [fired("on_call_credit", true)];
        assert_eq!(Threshold::new(n, 2, 0, &on_call).from_people(), 1);
        assert_eq!(Threshold::new(n, 1, 0, &on_call).from_people(), 0, "the rule approves a role needing one");
        let twice = [fired("on_call_credit", true), fired("on_call_credit", true)];
        assert_eq!(Threshold::new(n, 3, 0, &twice).credited, 1, "one credit per request");
    }

    #[test]
    fn the_credit_never_replaces_the_last_human_a_rule_asked_for() {
        let n = RequestKind::Normal;
        let on_call = fired("on_call_credit", true);
        assert_eq!(Threshold::new(n, 1, 1, std::slice::from_ref(&on_call)).from_people(), 1);
        let humans = [on_call.clone(), fired(NO_AUTO_APPROVE, false)];
        assert_eq!(Threshold::new(n, 1, 0, &humans), Threshold { required: 1, credited: 0 });
        assert_eq!(Threshold::new(n, 2, 0, &humans).from_people(), 1);
    }

    #[test]
    fn missing_counts_down_and_breakglass_needs_nobody() {
        let t = Threshold::new(RequestKind::Normal, 2, 1, &[]);
        assert_eq!((t.missing(0), t.missing(2), t.missing(5)), (3, 1, 0));
        assert!(t.met(3) && !t.met(2));
        assert!(Threshold::new(RequestKind::BreakGlass, 2, 1, &[]).met(0));
    }
}
