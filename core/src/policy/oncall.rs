//! On-call rules: `[rules.NAME] kind = "on_call"` auto-approves a request (or, with
//! `effect = "one_approval"`, counts as one of its approvals) when its requester is on call now in
//! one of the named schedules (optionally only at some escalation levels), for the roles the rule
//! names, never for every role. Who the requester is in the on-call service is a
//! person attribute the rule names (`match_by`): their PagerDuty user id, their Opsgenie username
//! or their email. The lookup itself is the service's (`service/oncall.rs`), through the
//! [`crate::oncall::OnCall`] port.

use super::{
    Person,
    parse::{ConfigError, de},
};
use crate::{RoleName, oncall::OnCallService};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The person attribute that names the requester in the on-call service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCallMatch {
    /// `persons.NAME.pagerduty_user`: a PagerDuty user id.
    PagerDutyUser,
    /// `persons.NAME.opsgenie_user`: an Opsgenie username.
    OpsgenieUser,
    /// `persons.NAME.email`, compared without case with the on-call user's email (Opsgenie:
    /// username).
    Email,
}

impl OnCallMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            OnCallMatch::PagerDutyUser => "pagerduty_user",
            OnCallMatch::OpsgenieUser => "opsgenie_user",
            OnCallMatch::Email => "email",
        }
    }

    /// The requester's identity for this match, if the policy gives them one.
    pub fn identity(self, person: &Person) -> Option<&str> {
        match self {
            OnCallMatch::PagerDutyUser => person.on_call.pagerduty_user.as_deref(),
            OnCallMatch::OpsgenieUser => person.on_call.opsgenie_user.as_deref(),
            OnCallMatch::Email => person.email.as_deref(),
        }
    }

    /// Whether a shift is the requester's (`id` from [`Self::identity`]).
    pub fn is_theirs(self, id: &str, shift: &crate::oncall::OnCallShift) -> bool {
        let same = |v: &Option<String>| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(id));
        match self {
            OnCallMatch::PagerDutyUser => shift.user_id.as_deref() == Some(id),
            OnCallMatch::OpsgenieUser => same(&shift.username),
            OnCallMatch::Email => same(&shift.email) || same(&shift.username),
        }
    }
}

/// A person's accounts in on-call services (`pagerduty_user`, `opsgenie_user`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnCallIdentity {
    pub pagerduty_user: Option<String>,
    pub opsgenie_user: Option<String>,
}

impl OnCallIdentity {
    /// Checks the person's on-call attributes, reporting each problem at `persons.NAME.KEY`.
    pub(super) fn parse(
        path: &str,
        pagerduty_user: Option<String>,
        opsgenie_user: Option<String>,
        errs: &mut Vec<ConfigError>,
    ) -> OnCallIdentity {
        let pagerduty_user = pagerduty_user.filter(|id| {
            let ok = (2..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            if !ok {
                errs.push(ConfigError::new(
                    format!("{path}.pagerduty_user"),
                    format!("`{id}` is not a PagerDuty user id (like PXPGF42: capital letters and digits)"),
                ));
            }
            ok
        });
        let opsgenie_user = opsgenie_user.filter(|u| {
            let ok = u.len() <= 254 && u.contains('@') && !u.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                errs.push(ConfigError::new(
                    format!("{path}.opsgenie_user"),
                    format!("`{u}` is not an Opsgenie username (the user's email address)"),
                ));
            }
            ok
        });
        OnCallIdentity { pagerduty_user, opsgenie_user }
    }
}

/// What an on-call rule checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCallRule {
    pub service: OnCallService,
    /// Schedule ids; the requester must be on call in one of them.
    pub schedules: Vec<String>,
    /// PagerDuty only: the escalation policies to look under (empty: any).
    pub escalation_policies: Vec<String>,
    /// PagerDuty only: the escalation levels that count (empty: any).
    pub levels: Vec<u32>,
    pub match_by: OnCallMatch,
    pub effect: OnCallEffect,
}

/// What being on call does for a request (`effect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCallEffect {
    /// `approve`: the request is approved without a human (unless another rule forbids it).
    #[default]
    Approve,
    /// `one_approval`: being on call counts as one approval; people give the rest, and at least
    /// one person still approves when another rule added an approval or forbade auto-approval.
    OneApproval,
}

impl OnCallEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            OnCallEffect::Approve => "approve",
            OnCallEffect::OneApproval => "one_approval",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [OnCallEffect::Approve, OnCallEffect::OneApproval].into_iter().find(|e| e.as_str() == s)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnCall {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
    advice: Option<String>,
    service: String,
    schedules: Vec<String>,
    #[serde(default)]
    escalation_policies: Vec<String>,
    #[serde(default)]
    escalation_levels: Vec<u32>,
    match_by: String,
    effect: Option<String>,
}

/// Schedule and escalation policy ids go into URLs: one word of at most 100 characters.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 100 || id.chars().any(|c| c.is_whitespace() || c.is_control() || "/?#%".contains(c))
    {
        return Err(format!("`{id}` is not a schedule or policy id (one word, at most 100 characters, no / ? # %)"));
    }
    Ok(())
}

/// Reads one `kind = "on_call"` rule at `path`.
pub(super) fn parse_rule(
    path: &str,
    name: &str,
    v: &toml::Value,
    roles: &BTreeMap<RoleName, super::Role>,
    errs: &mut Vec<ConfigError>,
) -> Option<super::rules::Rule> {
    let raw = de::<RawOnCall>(path, v, errs)?;
    let n = errs.len();
    let service = OnCallService::parse(&raw.service);
    if service.is_none() {
        errs.push(ConfigError::new(format!("{path}.service"), format!("`{}`: use pagerduty or opsgenie", raw.service)));
    }
    if raw.roles.is_empty() {
        errs.push(ConfigError::new(
            format!("{path}.roles"),
            "name the roles this rule approves: being on call must not approve every role",
        ));
    }
    let mut role_names = Vec::new();
    for (i, r) in raw.roles.iter().enumerate() {
        match RoleName::parse(r) {
            Ok(rn) if roles.contains_key(&rn) => role_names.push(rn),
            _ => errs.push(ConfigError::new(format!("{path}.roles[{i}]"), format!("unknown role `{r}`"))),
        }
    }
    if raw.schedules.is_empty() {
        errs.push(ConfigError::new(format!("{path}.schedules"), "name at least one schedule id"));
    }
    for (key, ids) in [("schedules", &raw.schedules), ("escalation_policies", &raw.escalation_policies)] {
        for (i, id) in ids.iter().enumerate() {
            if let Err(e) = check_id(id) {
                errs.push(ConfigError::new(format!("{path}.{key}[{i}]"), e));
            }
        }
    }
    let match_by = match raw.match_by.as_str() {
        "pagerduty_user" => Some(OnCallMatch::PagerDutyUser),
        "opsgenie_user" => Some(OnCallMatch::OpsgenieUser),
        "email" => Some(OnCallMatch::Email),
        other => {
            errs.push(ConfigError::new(
                format!("{path}.match_by"),
                format!("`{other}`: use pagerduty_user, opsgenie_user or email (a person attribute)"),
            ));
            None
        }
    };
    match (service, match_by) {
        (Some(OnCallService::Opsgenie), Some(OnCallMatch::PagerDutyUser))
        | (Some(OnCallService::PagerDuty), Some(OnCallMatch::OpsgenieUser)) => errs.push(ConfigError::new(
            format!("{path}.match_by"),
            format!("`{}` does not name anyone in {}", raw.match_by, service.expect("matched")),
        )),
        _ => {}
    }
    if service == Some(OnCallService::Opsgenie) {
        for (key, set) in [
            ("escalation_levels", !raw.escalation_levels.is_empty()),
            ("escalation_policies", !raw.escalation_policies.is_empty()),
        ] {
            if set {
                errs.push(ConfigError::new(
                    format!("{path}.{key}"),
                    "PagerDuty only: Opsgenie schedules have no levels",
                ));
            }
        }
    }
    let effect = match raw.effect.as_deref() {
        None => Some(OnCallEffect::Approve),
        Some(e) => OnCallEffect::parse(e).or_else(|| {
            errs.push(ConfigError::new(
                format!("{path}.effect"),
                format!("`{e}`: use approve (being on call approves) or one_approval (it counts as one approval)"),
            ));
            None
        }),
    };
    if let Some(i) = raw.escalation_levels.iter().position(|l| *l == 0) {
        errs.push(ConfigError::new(format!("{path}.escalation_levels[{i}]"), "levels start at 1"));
    }
    if errs.len() != n {
        return None;
    }
    Some(super::rules::Rule {
        name: name.to_string(),
        roles: role_names,
        kind: super::rules::RuleKind::OnCall(OnCallRule {
            service: service?,
            schedules: raw.schedules,
            escalation_policies: raw.escalation_policies,
            levels: raw.escalation_levels,
            match_by: match_by?,
            effect: effect?,
        }),
        advice: raw.advice,
    })
}

#[cfg(test)]
mod tests {
    use crate::policy::{ConfigError, Policy, parse_policy, rules::RuleKind};

    const BASE: &str = r#"
        [persons.alice]
        email = "alice@example.com"
        pagerduty_user = "PALICE1"
        [persons.bob]
        [groups.eng]
        members = ["alice", "bob"]
        [roles.db]
        provider = "dry"
        default_duration = "1h"
        max_duration = "4h"
        requesters = ["eng"]
        approvers = ["eng"]
    "#;

    fn parse(rule: &str) -> Result<Policy, Vec<ConfigError>> {
        let t: toml::Table = toml::from_str(&format!("{BASE}\n[rules.oncall]\n{rule}")).unwrap();
        parse_policy(&t, &["dry".to_string()])
    }

    #[test]
    fn a_pagerduty_rule_parses_with_levels() {
        let p = parse(
            "kind = \"on_call\"\nservice = \"pagerduty\"\nroles = [\"db\"]\nschedules = [\"PSCHED1\"]\nescalation_levels = [1]\nmatch_by = \"pagerduty_user\"",
        )
        .unwrap();
        let RuleKind::OnCall(r) = &p.rules[0].kind else { panic!("not an on-call rule") };
        assert_eq!(r.levels, vec![1]);
        assert_eq!(r.effect, super::OnCallEffect::Approve, "approve unless it says otherwise");
        assert_eq!(p.persons.values().next().unwrap().on_call.pagerduty_user.as_deref(), Some("PALICE1"));
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let errs = parse(
            "kind = \"on_call\"\nservice = \"opsgenie\"\nschedules = []\nescalation_levels = [1]\nmatch_by = \"pagerduty_user\"",
        )
        .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        for want in
            ["rules.oncall.roles", "rules.oncall.schedules", "rules.oncall.match_by", "rules.oncall.escalation_levels"]
        {
            assert!(paths.contains(&want), "missing {want} in {errs:#?}");
        }
        let errs = parse(
            "kind = \"on_call\"\nservice = \"pagerduty\"\nroles = [\"db\"]\nschedules = [\"S\"]\nmatch_by = \"pagerduty_user\"\neffect = \"half\"",
        )
        .unwrap_err();
        assert_eq!(errs[0].path, "rules.oncall.effect");
        assert!(errs[0].message.contains("one_approval"), "{errs:#?}");
        let errs =
            parse("kind = \"on_call\"\nservice = \"pd\"\nroles = [\"db\"]\nschedules = [\"S\"]\nmatch_by = \"slack\"")
                .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:#?}");
    }

    #[test]
    fn person_attributes_are_checked() {
        let text = BASE.replace("PALICE1", "alice") + "\n[persons.carol]\nopsgenie_user = \"carol\"";
        let t: toml::Table = toml::from_str(&text).unwrap();
        let errs = parse_policy(&t, &["dry".to_string()]).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["persons.alice.pagerduty_user", "persons.carol.opsgenie_user"]);
    }
}
