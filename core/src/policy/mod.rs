//! The policy: who exists, who belongs where, what can be requested and who approves it.
//!
//! Loaded from the TOML file (see [`parse`]) and consulted on every command, as it is at that
//! moment: approval authority is checked when the click arrives, not when the card was posted.

pub mod bundles;
pub mod oncall;
mod parse;
pub mod rules;
mod rules_parse;
pub mod services;
pub mod tickets;

pub use parse::{ConfigError, POLICY_SECTIONS, de as deserialize_at, parse_policy};

use crate::{GrantDuration, GroupName, PersonId, RoleName, UserError, error::ErrorCode};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};

/// The whole policy, validated: every reference resolves, every duration parses.
#[derive(Debug, Clone)]
pub struct Policy {
    pub persons: BTreeMap<PersonId, Person>,
    pub groups: BTreeMap<GroupName, Group>,
    pub roles: BTreeMap<RoleName, Role>,
    /// Names for roles requested together (`[bundles.incident]`).
    pub bundles: BTreeMap<RoleName, bundles::Bundle>,
    pub tokens: Vec<ApiToken>,
    pub security: Security,
    pub settings: Settings,
    pub rules: Vec<rules::Rule>,
}

/// A human known to the policy, or a service identity (automation) kept alongside them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: PersonId,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub slack_id: Option<String>,
    pub discord_id: Option<String>,
    /// Cloud principals by provider kind, e.g. `aws_iam_user = "alice"`,
    /// `aws_iam_role = "arn:…"`, `identity_center_user = "…"`, `webhook = "alice@corp"`.
    pub principals: BTreeMap<String, String>,
    /// Who they are in PagerDuty and Opsgenie, for on-call rules.
    pub on_call: oncall::OnCallIdentity,
    /// Their Jira Cloud account id or Data Center username, for ticket rules.
    pub jira_user: Option<String>,
    /// A human, or a service identity (`[services.NAME]`, see `services.rs`).
    pub kind: services::PrincipalKind,
}

/// A named set of persons. Membership can also come from the chat platform at click time: a
/// Discord role id the clicking member holds, or a Slack user group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: GroupName,
    pub members: BTreeSet<PersonId>,
    pub discord_role: Option<String>,
    pub slack_usergroup: Option<String>,
    /// Where the group is reached in Slack: a request escalated to the group gets a copy of its
    /// approval card here.
    pub slack_channel: Option<String>,
}

/// Something that can be requested.
#[derive(Debug, Clone)]
pub struct Role {
    pub name: RoleName,
    pub description: Option<String>,
    /// Name of a configured provider.
    pub provider: String,
    /// What the provider grants; its shape belongs to the provider and is checked by it.
    pub target: serde_json::Value,
    pub default_duration: GrantDuration,
    pub max_duration: GrantDuration,
    /// Ceiling on a grant's whole life, extensions included.
    pub max_total_duration: GrantDuration,
    pub requesters: Vec<GroupName>,
    pub approvers: Vec<GroupName>,
    /// Distinct approvers needed (N of the M members of the approver groups).
    pub approvals_required: u32,
    pub self_approval: bool,
    pub reason_required: bool,
    pub ticket_pattern: Option<Regex>,
    pub ticket_required: bool,
    pub pending_timeout: GrantDuration,
    pub reminder_interval: Option<GrantDuration>,
    /// Reminders (and escalations) are also DMed to each approver who has not decided yet, not
    /// only replied under the card.
    pub remind_by_dm: bool,
    /// Where the approval card goes, per platform.
    pub slack_channel: Option<String>,
    pub discord_channel: Option<String>,
    /// Approve without a human: for low-risk roles (`auto_approve`), or when the requester is in
    /// one of `auto_approve_groups` (on-call). Every deny rule still applies.
    pub auto_approve: bool,
    pub auto_approve_groups: Vec<GroupName>,
    /// Who may use break-glass for this role (none: nobody), and for how long at most.
    pub breakglass_groups: Vec<GroupName>,
    pub breakglass_max_duration: GrantDuration,
    /// After this long pending, members of `escalate_to` may approve too (and are reminded).
    pub escalate_after: Option<GrantDuration>,
    pub escalate_to: Vec<GroupName>,
}

/// An API token, stored as the SHA-256 of the secret so the config file is not itself a secret.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub name: String,
    pub person: PersonId,
    pub sha256: String,
}

/// The security team: may revoke any grant, veto any request, lock roles down and review
/// break-glass use.
#[derive(Debug, Clone)]
pub struct Security {
    pub group: Option<GroupName>,
    pub slack_channel: Option<String>,
    pub discord_channel: Option<String>,
    /// How often an open break-glass review reminds the security team.
    pub review_reminder: GrantDuration,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            group: None,
            slack_channel: None,
            discord_channel: None,
            review_reminder: GrantDuration::from_secs(4 * 3600).expect("constant"),
        }
    }
}

/// Timings that are not per role.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long before expiry the requester is warned.
    pub expiry_warning: GrantDuration,
    /// Revoke failures in a row after which an alert event is raised (and again every as many).
    pub revoke_alert_after: u32,
    /// Transient apply failures after which the request goes to `grant_failed`.
    pub apply_max_attempts: u32,
    /// Scheduled access: how far ahead a start may be.
    pub max_schedule_ahead: GrantDuration,
    /// Scheduled access: how long an approval stays good. A scheduled request whose start is
    /// further from its approval than this loses the approval at approval + ttl ("unused":
    /// not applied by then) and times out; so does one whose start runs that late.
    pub scheduled_approval_ttl: GrantDuration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            expiry_warning: GrantDuration::from_secs(600).expect("constant"),
            revoke_alert_after: 5,
            apply_max_attempts: 8,
            max_schedule_ahead: GrantDuration::from_secs(7 * 86_400).expect("constant"),
            scheduled_approval_ttl: GrantDuration::from_secs(86_400).expect("constant"),
        }
    }
}

/// The person acting, as authenticated by an adapter, plus what the platform says about them at
/// this moment (Discord role ids, Slack user groups) for chat-backed groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub person: PersonId,
    pub chat_roles: Vec<String>,
}

impl Caller {
    pub fn person(person: PersonId) -> Self {
        Caller { person, chat_roles: Vec::new() }
    }
}

impl Policy {
    pub fn person(&self, id: &PersonId) -> Option<&Person> {
        self.persons.get(id)
    }

    /// Looks a role up by name, with a did-you-mean for typos.
    pub fn role(&self, name: &str) -> Result<&Role, UserError> {
        if let Ok(n) = RoleName::parse(name)
            && let Some(r) = self.roles.get(&n)
        {
            return Ok(r);
        }
        let closest = self
            .roles
            .keys()
            .map(|k| (strsim::levenshtein(k.as_str(), &name.to_lowercase()), k))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| format!(" Did you mean `{k}`?"))
            .unwrap_or_default();
        let shown: String = name.chars().take(64).collect();
        Err(UserError::new(ErrorCode::NotFound, format!("There is no role `{shown}`.{closest}")))
    }

    pub fn is_member(&self, group: &GroupName, caller: &Caller) -> bool {
        let Some(g) = self.groups.get(group) else {
            return false;
        };
        g.members.contains(&caller.person)
            || g.discord_role.as_ref().is_some_and(|r| caller.chat_roles.contains(r))
            || g.slack_usergroup.as_ref().is_some_and(|r| caller.chat_roles.contains(r))
    }

    pub fn may_request(&self, caller: &Caller, role: &Role) -> bool {
        role.requesters.iter().any(|g| self.is_member(g, caller))
    }

    pub fn is_approver(&self, caller: &Caller, role: &Role) -> bool {
        !self.is_service(caller) && role.approvers.iter().any(|g| self.is_member(g, caller))
    }

    /// A service identity: it may request, never decide (the config refuses services in deciding
    /// groups; this holds even so).
    pub fn is_service(&self, caller: &Caller) -> bool {
        self.person(&caller.person).is_some_and(Person::is_service)
    }

    /// May approve now: an approver of the role, or, once the request has waited
    /// `escalate_after`, a member of the escalation groups.
    pub fn may_approve(&self, caller: &Caller, role: &Role, waited: chrono::Duration) -> bool {
        self.is_approver(caller, role)
            || (!self.is_service(caller)
                && role.escalate_after.is_some_and(|d| waited >= d.as_chrono())
                && role.escalate_to.iter().any(|g| self.is_member(g, caller)))
    }

    pub fn may_breakglass(&self, caller: &Caller, role: &Role) -> bool {
        !self.is_service(caller) && role.breakglass_groups.iter().any(|g| self.is_member(g, caller))
    }

    pub fn auto_approves(&self, caller: &Caller, role: &Role) -> Option<String> {
        if role.auto_approve {
            return Some("low-risk role".into());
        }
        role.auto_approve_groups.iter().find(|g| self.is_member(g, caller)).map(|g| format!("requester is in `{g}`"))
    }

    pub fn is_security(&self, caller: &Caller) -> bool {
        !self.is_service(caller) && self.security.group.as_ref().is_some_and(|g| self.is_member(g, caller))
    }

    /// Who may read a request: its requester, the approvers of its role (escalation groups
    /// included: they may be asked to decide), and the security group. Reading is scoped like
    /// acting, so a token or chat account does not learn who holds what elsewhere.
    pub fn may_see(&self, caller: &Caller, req: &crate::request::Request) -> bool {
        req.requester == caller.person
            || self.is_security(caller)
            || self.roles.get(&req.role).is_some_and(|role| {
                self.is_approver(caller, role) || role.escalate_to.iter().any(|g| self.is_member(g, caller))
            })
    }

    /// Persons listed in the role's approver groups (chat-backed members are not known ahead).
    pub fn listed_approvers(&self, role: &Role) -> BTreeSet<PersonId> {
        role.approvers.iter().filter_map(|g| self.groups.get(g)).flat_map(|g| g.members.iter().cloned()).collect()
    }

    /// Roles this caller may request, for pickers and help.
    pub fn requestable_roles(&self, caller: &Caller) -> Vec<&Role> {
        self.roles.values().filter(|r| self.may_request(caller, r)).collect()
    }

    pub fn person_by_token_hash(&self, sha256_hex: &str) -> Option<&ApiToken> {
        self.tokens.iter().find(|t| t.sha256.eq_ignore_ascii_case(sha256_hex))
    }

    pub fn person_by_slack_id(&self, id: &str) -> Option<&Person> {
        self.persons.values().find(|p| p.slack_id.as_deref() == Some(id))
    }

    pub fn person_by_discord_id(&self, id: &str) -> Option<&Person> {
        self.persons.values().find(|p| p.discord_id.as_deref() == Some(id))
    }

    pub fn person_by_email(&self, email: &str) -> Option<&Person> {
        self.persons.values().find(|p| p.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(email)))
    }
}

impl Role {
    /// Finds the ticket: the explicit one if given (checked against the pattern), else the first
    /// match of the pattern in the reason.
    pub fn ticket(&self, explicit: Option<&str>, reason: &str) -> Result<Option<String>, UserError> {
        let explicit = explicit.map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = explicit {
            crate::visible::check(t, "The ticket").map_err(UserError::invalid)?;
        }
        match (&self.ticket_pattern, explicit) {
            (Some(re), Some(t)) => {
                if re.is_match(t) {
                    Ok(Some(t.to_string()))
                } else {
                    Err(UserError::invalid(format!(
                        "Ticket `{}` does not match the pattern `{}` that role `{}` requires.",
                        t.chars().take(64).collect::<String>(),
                        re.as_str(),
                        self.name
                    )))
                }
            }
            (Some(re), None) => match re.find(reason) {
                Some(m) => Ok(Some(m.as_str().to_string())),
                None if self.ticket_required => Err(UserError::invalid(format!(
                    "Role `{}` needs a ticket matching `{}`: put it in the reason, e.g. `INC-1234 fix lag`.",
                    self.name,
                    re.as_str()
                ))),
                None => Ok(None),
            },
            (None, Some(t)) => {
                if t.len() > 100 || t.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(UserError::invalid("A ticket is one word of at most 100 characters."));
                }
                Ok(Some(t.to_string()))
            }
            (None, None) => Ok(None),
        }
    }
}
