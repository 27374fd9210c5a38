//! Ticket rules: `[rules.NAME] kind = "ticket"` makes the roles it names require a ticket that
//! exists in a ticket system (`[tickets.SYSTEM]`), in one of the allowed projects and statuses,
//! optionally assigned to the requester; optionally the grant ends when the ticket is closed.
//! The checks are pure and live here; asking the system is the service's (`service/tickets.rs`).

use super::{
    Person, Role,
    parse::{ConfigError, de},
};
use crate::{
    RoleName,
    tickets::{StatusCategory, Ticket},
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The person attribute compared with the ticket's assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeMatch {
    /// `persons.NAME.jira_user`: the Jira Cloud account id or Data Center username.
    JiraUser,
    /// `persons.NAME.email`, without case.
    Email,
}

impl AssigneeMatch {
    pub fn as_str(self) -> &'static str {
        match self {
            AssigneeMatch::JiraUser => "jira_user",
            AssigneeMatch::Email => "email",
        }
    }
}

/// What a ticket rule requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRule {
    /// `[tickets.NAME]` to ask.
    pub system: String,
    /// Project keys (empty: any).
    pub projects: Vec<String>,
    /// Status names, compared without case (empty: any).
    pub statuses: Vec<String>,
    /// Status categories (empty: any).
    pub categories: Vec<StatusCategory>,
    /// Must be assigned to the requester, matched by this attribute.
    pub assigned: Option<AssigneeMatch>,
    /// The grant ends when the ticket is closed (status category done), checked periodically.
    pub end_when_closed: bool,
}

impl TicketRule {
    /// Why `ticket` does not do for `role` requested by `person`, as the sentence they see; `Ok`
    /// when it does.
    pub fn check(&self, role: &Role, person: &Person, t: &Ticket) -> Result<(), String> {
        let key = &t.key;
        if !self.projects.is_empty() && !self.projects.iter().any(|p| p.eq_ignore_ascii_case(&t.project)) {
            return Err(format!(
                "Ticket {key} is in project {}; `{}` needs a ticket in {}.",
                t.project,
                role.name,
                self.projects.join(" or ")
            ));
        }
        let status_ok = self.statuses.is_empty() || self.statuses.iter().any(|s| s.eq_ignore_ascii_case(&t.status));
        let category_ok = self.categories.is_empty() || t.category.is_some_and(|c| self.categories.contains(&c));
        if !status_ok || !category_ok {
            let mut allowed: Vec<String> = self.statuses.clone();
            allowed.extend(self.categories.iter().map(|c| format!("in category {}", c.as_str())));
            return Err(format!(
                "Ticket {key} is {}; `{}` needs one that is {}.",
                t.status,
                role.name,
                allowed.join(self.glue())
            ));
        }
        if let Some(m) = self.assigned {
            let who = match m {
                AssigneeMatch::JiraUser => person.jira_user.as_deref(),
                AssigneeMatch::Email => person.email.as_deref(),
            };
            let Some(who) = who else {
                return Err(format!(
                    "`{}` needs a ticket assigned to you, and the policy has no {} for {}: ask an admin to add it.",
                    role.name,
                    m.as_str(),
                    person.id
                ));
            };
            let theirs = t.assignee.as_ref().is_some_and(|a| {
                let v = match m {
                    AssigneeMatch::JiraUser => &a.id,
                    AssigneeMatch::Email => &a.email,
                };
                v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(who))
            });
            if !theirs {
                let holder = t.assignee.as_ref().map(|a| {
                    a.display_name.clone().or(a.email.clone()).or(a.id.clone()).unwrap_or_else(|| "someone".into())
                });
                return Err(match holder {
                    None => {
                        format!("Ticket {key} is not assigned to anyone; `{}` needs it assigned to you.", role.name)
                    }
                    Some(h) => format!(
                        "Ticket {key} is assigned to {h}, not to you; `{}` needs it assigned to you.",
                        role.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Statuses and categories both given: both must hold.
    fn glue(&self) -> &'static str {
        if !self.statuses.is_empty() && !self.categories.is_empty() { ", and " } else { " or " }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTicketRule {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    roles: Vec<String>,
    advice: Option<String>,
    system: String,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    statuses: Vec<String>,
    #[serde(default)]
    status_categories: Vec<String>,
    #[serde(default)]
    assigned_to_requester: bool,
    match_by: Option<String>,
    #[serde(default)]
    end_when_closed: bool,
}

/// Reads one `kind = "ticket"` rule at `path`.
pub(super) fn parse_rule(
    path: &str,
    name: &str,
    v: &toml::Value,
    roles: &BTreeMap<RoleName, Role>,
    errs: &mut Vec<ConfigError>,
) -> Option<super::rules::Rule> {
    let raw = de::<RawTicketRule>(path, v, errs)?;
    let n = errs.len();
    if raw.roles.is_empty() {
        errs.push(ConfigError::new(format!("{path}.roles"), "name the roles that need a checked ticket"));
    }
    let mut role_names = Vec::new();
    for (i, r) in raw.roles.iter().enumerate() {
        match RoleName::parse(r) {
            Ok(rn) if roles.contains_key(&rn) => role_names.push(rn),
            _ => errs.push(ConfigError::new(format!("{path}.roles[{i}]"), format!("unknown role `{r}`"))),
        }
    }
    let mut categories = Vec::new();
    for (i, c) in raw.status_categories.iter().enumerate() {
        match StatusCategory::parse(c) {
            Some(c) => categories.push(c),
            None => errs.push(ConfigError::new(
                format!("{path}.status_categories[{i}]"),
                format!("`{c}`: use new, indeterminate or done (Jira's status category keys)"),
            )),
        }
    }
    let assigned = match (raw.assigned_to_requester, raw.match_by.as_deref()) {
        (false, None) => None,
        (false, Some(_)) => {
            errs.push(ConfigError::new(format!("{path}.match_by"), "only with assigned_to_requester = true"));
            None
        }
        (true, None) => {
            errs.push(ConfigError::new(
                format!("{path}.match_by"),
                "required with assigned_to_requester: jira_user or email (a person attribute)",
            ));
            None
        }
        (true, Some("jira_user")) => Some(AssigneeMatch::JiraUser),
        (true, Some("email")) => Some(AssigneeMatch::Email),
        (true, Some(other)) => {
            errs.push(ConfigError::new(format!("{path}.match_by"), format!("`{other}`: use jira_user or email")));
            None
        }
    };
    if raw.end_when_closed && categories.contains(&StatusCategory::Done) {
        errs.push(ConfigError::new(
            format!("{path}.end_when_closed"),
            "cannot go with status category done: a closed ticket would be allowed and end the grant at once",
        ));
    }
    if errs.len() != n {
        return None;
    }
    Some(super::rules::Rule {
        name: name.to_string(),
        roles: role_names,
        kind: super::rules::RuleKind::Ticket(TicketRule {
            system: raw.system,
            projects: raw.projects,
            statuses: raw.statuses,
            categories,
            assigned,
            end_when_closed: raw.end_when_closed,
        }),
        advice: raw.advice,
    })
}

/// `persons.NAME.jira_user`: one word of at most 128 characters.
pub(super) fn jira_user(path: &str, v: Option<String>, errs: &mut Vec<ConfigError>) -> Option<String> {
    v.filter(|u| {
        let ok = !u.is_empty() && u.len() <= 128 && !u.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            errs.push(ConfigError::new(
                format!("{path}.jira_user"),
                "must be the Jira Cloud account id or the Data Center username (one word)",
            ));
        }
        ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::Assignee;

    fn setup() -> (Role, Person) {
        let t: toml::Table = toml::from_str(
            r#"
            [persons.alice]
            email = "alice@example.com"
            jira_user = "5b10ac8d82e05b22cc7d4ef5"
            [groups.eng]
            members = ["alice"]
            [roles.db]
            provider = "dry"
            default_duration = "1h"
            max_duration = "4h"
            requesters = ["eng"]
            approvers = ["eng"]
            "#,
        )
        .unwrap();
        let p = crate::policy::parse_policy(&t, &["dry".to_string()]).unwrap();
        (p.roles.values().next().unwrap().clone(), p.persons.values().next().unwrap().clone())
    }

    fn ticket(project: &str, status: &str, cat: StatusCategory, assignee: Option<&str>) -> Ticket {
        Ticket {
            key: format!("{project}-42"),
            project: project.into(),
            status: status.into(),
            category: Some(cat),
            assignee: assignee.map(|a| Assignee {
                id: Some(a.into()),
                email: None,
                display_name: Some(format!("{a} (display)")),
            }),
            url: String::new(),
        }
    }

    #[test]
    fn each_refusal_names_what_is_wrong() {
        let (role, alice) = setup();
        let rule = TicketRule {
            system: "jira".into(),
            projects: vec!["INC".into()],
            statuses: vec![],
            categories: vec![StatusCategory::Indeterminate],
            assigned: Some(AssigneeMatch::JiraUser),
            end_when_closed: true,
        };
        let ok = ticket("INC", "In Progress", StatusCategory::Indeterminate, Some("5b10ac8d82e05b22cc7d4ef5"));
        assert_eq!(rule.check(&role, &alice, &ok), Ok(()));
        let e = rule.check(&role, &alice, &ticket("OPS", "In Progress", StatusCategory::Indeterminate, None));
        assert_eq!(e.unwrap_err(), "Ticket OPS-42 is in project OPS; `db` needs a ticket in INC.");
        let e = rule.check(&role, &alice, &ticket("INC", "Done", StatusCategory::Done, None));
        assert_eq!(e.unwrap_err(), "Ticket INC-42 is Done; `db` needs one that is in category indeterminate.");
        let e = rule.check(&role, &alice, &ticket("INC", "In Progress", StatusCategory::Indeterminate, None));
        assert!(e.unwrap_err().contains("is not assigned to anyone"));
        let e = rule.check(&role, &alice, &ticket("INC", "In Progress", StatusCategory::Indeterminate, Some("bob")));
        assert!(e.unwrap_err().contains("is assigned to bob (display), not to you"));
    }
}
