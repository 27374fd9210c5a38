//! Decision rules: named, configured in the policy file, evaluated in core for every request
//! from every platform, and recorded with every decision they influenced. Deny wins over any
//! approval; the person refused is told which rule refused them and what to do instead.

use crate::{
    GrantDuration, PersonId, RoleName, State,
    policy::{Caller, Policy, Role},
    request::{Request, Source},
};
use chrono::{DateTime, Datelike, NaiveTime, Utc, Weekday};
use serde::Serialize;

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Refuse the request.
    Deny,
    /// One more distinct approver is needed.
    ExtraApproval,
    /// The request may not be auto-approved (a human must decide).
    NoAutoApprove,
}

impl Effect {
    /// The name a fired rule records (`FiredRule::effect`), kept as requests already store it.
    pub const fn fired_name(self) -> &'static str {
        match self {
            Effect::Deny => "deny",
            Effect::ExtraApproval => "extraapproval",
            Effect::NoAutoApprove => "noautoapprove",
        }
    }

    pub fn parse(s: &str) -> Option<Effect> {
        match s {
            "deny" => Some(Effect::Deny),
            "extra_approval" => Some(Effect::ExtraApproval),
            "no_auto_approve" => Some(Effect::NoAutoApprove),
            _ => None,
        }
    }
}

/// Which sources may request: `platform[:tenant[:channel]]`, e.g. `slack:T0123`,
/// `discord:8123:9001`, `api:ci-token`, `api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePattern {
    pub platform: String,
    pub tenant: Option<String>,
    pub channel: Option<String>,
}

impl SourcePattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = s.splitn(3, ':');
        let platform = parts.next().unwrap_or("").to_string();
        if !["slack", "discord", "api"].contains(&platform.as_str()) {
            return Err(format!("`{s}`: a source starts with slack, discord or api"));
        }
        Ok(SourcePattern {
            platform,
            tenant: parts.next().filter(|t| !t.is_empty()).map(String::from),
            channel: parts.next().filter(|t| !t.is_empty()).map(String::from),
        })
    }

    pub fn matches(&self, src: &Source) -> bool {
        self.platform == src.platform
            && self.tenant.as_ref().is_none_or(|t| src.tenant.as_ref() == Some(t))
            && self.channel.as_ref().is_none_or(|c| src.channel.as_ref() == Some(c))
    }
}

/// The kinds of rule.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Working hours in a time zone; the effect applies *outside* them.
    TimeWindow { tz: chrono_tz::Tz, days: Vec<Weekday>, start: NaiveTime, end: NaiveTime, effect: Effect },
    /// A change freeze; the effect applies *during* it.
    Freeze { from: DateTime<Utc>, until: DateTime<Utc>, effect: Effect },
    /// At most `max` requests per person per role per `window`; a re-request within
    /// `cooldown_after_denial` of a human denial is refused; after `revoke_after_refusals`
    /// refused attempts in the window the person's active grants of the role are revoked and the
    /// security channel alerted.
    RateLimit {
        max: u32,
        window: GrantDuration,
        cooldown_after_denial: Option<GrantDuration>,
        revoke_after_refusals: Option<u32>,
    },
    /// These persons are refused, and the security team alerted.
    Flagged { persons: Vec<PersonId> },
    /// Auto-approve when the requester is on call now (see `policy/oncall.rs`). Evaluated by
    /// the service, which can ask the on-call service; [`evaluate`] skips it.
    OnCall(super::oncall::OnCallRule),
    /// The request needs a ticket that exists and is in order (see `policy/tickets.rs`).
    /// Checked by the service, which can ask the ticket system; [`evaluate`] skips it.
    Ticket(super::tickets::TicketRule),
    /// Only these sources may request.
    AllowedSources { sources: Vec<SourcePattern> },
}

/// A named rule and the roles it applies to (all when `roles` is empty).
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub roles: Vec<RoleName>,
    pub kind: RuleKind,
    /// What to do instead, shown to the person refused.
    pub advice: Option<String>,
}

impl Rule {
    pub fn applies_to(&self, role: &RoleName) -> bool {
        self.roles.is_empty() || self.roles.contains(role)
    }
}

/// A rule that fired for a request, kept with the request and in its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FiredRule {
    pub rule: String,
    pub effect: String,
    /// What the rule found, for the card and the audit trail (on-call rules: who is on call
    /// where, or why nobody could tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// An on-call rule with `effect = "one_approval"` that found the requester on call: it
    /// counts as one approval (see [`crate::threshold::Threshold`]), and this says where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<OnCallCredit>,
}

/// Where the requester was found on call, for a rule that counts it as an approval; kept with
/// the request so the threshold, the card and the audit trail read the same fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct OnCallCredit {
    pub service: crate::oncall::OnCallService,
    pub schedule: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
}

/// Why a request is refused by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub message: String,
    /// Tell the security team (flagged persons, repeated refused attempts).
    pub alert: bool,
    /// Revoke the person's active grants of this role (repeated refused attempts).
    pub revoke_grants: bool,
}

/// What the rules say about one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub refusal: Option<Refusal>,
    pub extra_approvals: u32,
    pub no_auto_approve: bool,
    pub fired: Vec<FiredRule>,
}

/// What the rules look at.
pub struct RuleInput<'a> {
    pub caller: &'a Caller,
    pub role: &'a Role,
    pub source: &'a Source,
    pub now: DateTime<Utc>,
    /// This person's requests for this role, newest first, at least as far back as the longest
    /// rate-limit window.
    pub history: &'a [Request],
    /// Break-glass skips time windows, freezes, rate limits and source rules (it exists for
    /// emergencies) but not flagged persons.
    pub breakglass: bool,
}

fn in_window(now: DateTime<Utc>, tz: chrono_tz::Tz, days: &[Weekday], start: NaiveTime, end: NaiveTime) -> bool {
    let local = now.with_timezone(&tz);
    let t = local.time();
    days.contains(&local.weekday()) && t >= start && t < end
}

fn refused_by_rule(r: &Request) -> bool {
    r.state == State::Denied && r.closed_by.as_deref().is_some_and(|c| c.starts_with("rule:"))
}

/// Evaluates every rule for one request. The first deny wins; other effects accumulate.
pub fn evaluate(policy: &Policy, input: &RuleInput) -> Verdict {
    let mut v = Verdict::default();
    let advice = |r: &Rule, default: &str| r.advice.clone().unwrap_or_else(|| default.to_string());
    let emergency = "For an emergency, use break-glass if your role allows it, or ask the security team.";
    for rule in policy.rules.iter().filter(|r| r.applies_to(&input.role.name)) {
        if input.breakglass && !matches!(rule.kind, RuleKind::Flagged { .. }) {
            continue;
        }
        let fire = |effect: Effect, why: String, alert: bool, revoke: bool, v: &mut Verdict| {
            v.fired.push(FiredRule {
                rule: rule.name.clone(),
                effect: effect.fired_name().into(),
                detail: None,
                credit: None,
            });
            match effect {
                Effect::Deny if v.refusal.is_none() => {
                    v.refusal = Some(Refusal { rule: rule.name.clone(), message: why, alert, revoke_grants: revoke })
                }
                Effect::Deny => {}
                Effect::ExtraApproval => v.extra_approvals += 1,
                Effect::NoAutoApprove => v.no_auto_approve = true,
            }
        };
        match &rule.kind {
            RuleKind::TimeWindow { tz, days, start, end, effect } => {
                if !in_window(input.now, *tz, days, *start, *end) {
                    let why = format!(
                        "Refused by rule `{}`: `{}` may only be requested {}–{} {} on {}. {}",
                        rule.name,
                        input.role.name,
                        start.format("%H:%M"),
                        end.format("%H:%M"),
                        tz.name(),
                        days.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                        advice(rule, emergency)
                    );
                    fire(*effect, why, false, false, &mut v);
                }
            }
            RuleKind::Freeze { from, until, effect } => {
                if input.now >= *from && input.now < *until {
                    let why = format!(
                        "Refused by rule `{}`: changes are frozen until {}. {}",
                        rule.name,
                        crate::render::time(*until),
                        advice(rule, emergency)
                    );
                    fire(*effect, why, false, false, &mut v);
                }
            }
            RuleKind::RateLimit { max, window, cooldown_after_denial, revoke_after_refusals } => {
                let since = input.now - window.as_chrono();
                let recent: Vec<&Request> = input.history.iter().filter(|r| r.created_at >= since).collect();
                let refused = recent.iter().filter(|r| refused_by_rule(r)).count() as u32;
                let counted = recent.iter().filter(|r| !refused_by_rule(r)).count() as u32;
                let last_denial = input
                    .history
                    .iter()
                    .find(|r| r.state == State::Denied && !refused_by_rule(r))
                    .map(|r| r.updated_at);
                let revoke = revoke_after_refusals.is_some_and(|n| refused + 1 >= n);
                if let (Some(cool), Some(at)) = (cooldown_after_denial, last_denial)
                    && input.now < at + cool.as_chrono()
                {
                    let why = format!(
                        "Refused by rule `{}`: your last request for `{}` was denied; wait until {} or talk to the approver who denied it.",
                        rule.name,
                        input.role.name,
                        crate::render::time(at + cool.as_chrono())
                    );
                    fire(Effect::Deny, why, revoke, revoke, &mut v);
                } else if counted >= *max {
                    let why = format!(
                        "Refused by rule `{}`: at most {max} requests for `{}` per {window}; you have made {counted}. {}",
                        rule.name,
                        input.role.name,
                        advice(rule, "Ask for a longer duration next time, or extend an active grant.")
                    );
                    fire(Effect::Deny, why, revoke, revoke, &mut v);
                }
            }
            RuleKind::Flagged { persons } => {
                if persons.contains(&input.caller.person) {
                    let why = format!(
                        "Refused by rule `{}`: your account is flagged for review. {}",
                        rule.name,
                        advice(rule, "Contact the security team.")
                    );
                    fire(Effect::Deny, why, true, false, &mut v);
                }
            }
            // Need an outside system: the service evaluates them after these (service/oncall.rs,
            // service/tickets.rs).
            RuleKind::OnCall(_) | RuleKind::Ticket(_) => {}
            RuleKind::AllowedSources { sources } => {
                if !sources.iter().any(|p| p.matches(input.source)) {
                    let allowed = sources
                        .iter()
                        .map(|s| {
                            [Some(s.platform.clone()), s.tenant.clone(), s.channel.clone()]
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()
                                .join(":")
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let why = format!(
                        "Refused by rule `{}`: `{}` cannot be requested from here; use {allowed}.",
                        rule.name, input.role.name
                    );
                    fire(Effect::Deny, why, false, false, &mut v);
                }
            }
        }
    }
    v
}

/// The longest look-back any rate-limit rule of this role needs.
pub fn history_window(policy: &Policy, role: &RoleName) -> Option<GrantDuration> {
    policy
        .rules
        .iter()
        .filter(|r| r.applies_to(role))
        .filter_map(|r| match &r.kind {
            RuleKind::RateLimit { window, cooldown_after_denial, .. } => {
                Some((*window).max(cooldown_after_denial.unwrap_or(*window)))
            }
            _ => None,
        })
        .max()
}
