//! Service identities: `[services.NAME]` is automation (a CI pipeline, a deploy job) that may
//! request access for itself with an API token (`[tokens.X] service = "NAME"`), through the same
//! rules and approvals as a person. It has its own cloud principals, an owner who answers for
//! it, and no chat account. It never decides: a service in an approver, escalation, break-glass,
//! auto-approve or security group is a config error, so a pipeline cannot approve its own (or
//! anyone's) access.
//!
//! A service is kept among the persons (same id space, same group membership, same principals
//! for providers), marked [`PrincipalKind::Service`], so every check that reads persons covers
//! it and nothing can treat it as a human by accident.

use super::{
    Group, Person, Role, Security,
    parse::{ConfigError, de, table},
};
use crate::{GroupName, PersonId, RoleName};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Whether an id is a human or automation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PrincipalKind {
    #[default]
    Human,
    /// Automation, and the person who answers for it.
    Service { owner: PersonId },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    description: Option<String>,
    owner: String,
    #[serde(default)]
    principals: BTreeMap<String, String>,
}

/// Reads `[services.*]` into `persons` (after the persons are read: an owner is a person).
pub(super) fn parse_services(
    root: &toml::Table,
    persons: &mut BTreeMap<PersonId, Person>,
    errs: &mut Vec<ConfigError>,
) {
    for (key, v) in table(root, "services", errs).into_iter().flatten() {
        let path = format!("services.{key}");
        let id = PersonId::parse(key).map_err(|e| errs.push(ConfigError::new(&path, e))).ok();
        let Some(raw) = de::<RawService>(&path, v, errs) else { continue };
        let owner = match PersonId::parse(&raw.owner) {
            Ok(o) if persons.get(&o).is_some_and(|p| p.kind == PrincipalKind::Human) => Some(o),
            _ => {
                errs.push(ConfigError::new(
                    format!("{path}.owner"),
                    format!("`{}` is not a person: a service is owned by someone who answers for it", raw.owner),
                ));
                None
            }
        };
        let (Some(id), Some(owner)) = (id, owner) else { continue };
        if persons.contains_key(&id) {
            errs.push(ConfigError::new(&path, format!("`{id}` is also a person: a service needs a name of its own")));
            continue;
        }
        persons.insert(
            id.clone(),
            Person {
                id,
                display_name: raw.description,
                email: None,
                slack_id: None,
                discord_id: None,
                principals: raw.principals,
                on_call: Default::default(),
                jira_user: None,
                kind: PrincipalKind::Service { owner },
            },
        );
    }
}

/// Services request; they never decide. Reports each group that would let one decide.
pub(super) fn check_services(
    persons: &BTreeMap<PersonId, Person>,
    groups: &BTreeMap<GroupName, Group>,
    roles: &BTreeMap<RoleName, Role>,
    security: &Security,
    errs: &mut Vec<ConfigError>,
) {
    let services_in = |g: &GroupName| -> Vec<&PersonId> {
        groups
            .get(g)
            .map(|g| g.members.iter().filter(|m| persons.get(*m).is_some_and(Person::is_service)).collect())
            .unwrap_or_default()
    };
    let mut report = |path: String, gs: &[GroupName], what: &str| {
        for g in gs {
            for s in services_in(g) {
                errs.push(ConfigError::new(
                    path.clone(),
                    format!("group `{g}` has service `{s}`: a service may not {what}; a person must"),
                ));
            }
        }
    };
    for r in roles.values() {
        report(format!("roles.{}.approvers", r.name), &r.approvers, "approve");
        report(format!("roles.{}.escalate_to", r.name), &r.escalate_to, "approve");
        report(format!("roles.{}.breakglass_groups", r.name), &r.breakglass_groups, "use break-glass");
        report(format!("roles.{}.auto_approve_groups", r.name), &r.auto_approve_groups, "be approved without a person");
    }
    if let Some(g) = &security.group {
        report("security.group".into(), std::slice::from_ref(g), "act for the security team");
    }
}

impl Person {
    pub fn is_service(&self) -> bool {
        matches!(self.kind, PrincipalKind::Service { .. })
    }

    /// The owner of a service identity.
    pub fn owner(&self) -> Option<&PersonId> {
        match &self.kind {
            PrincipalKind::Service { owner } => Some(owner),
            PrincipalKind::Human => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{ConfigError, Policy, parse_policy};

    const BASE: &str = r#"
        [persons.alice]
        [persons.bob]
        [services.ci-deployer]
        description = "the deploy pipeline"
        owner = "alice"
        principals = { aws_iam_role = "arn:aws:iam::123456789012:role/ci-deployer" }
        [groups.eng]
        members = ["alice", "bob"]
        [groups.deployers]
        members = ["ci-deployer"]
        [roles.db]
        provider = "dry"
        default_duration = "1h"
        max_duration = "4h"
        requesters = ["eng", "deployers"]
        approvers = ["eng"]
        [tokens.ci]
        service = "ci-deployer"
        sha256 = "3af3645f8d45bbf65decdb11954254d92c485a1e08f25f0ea824565eb95e6724"
    "#;

    fn parse(text: &str) -> Result<Policy, Vec<ConfigError>> {
        parse_policy(&toml::from_str(text).unwrap(), &["dry".to_string()])
    }

    #[test]
    fn a_service_requests_with_its_own_principals_and_token() {
        let p = parse(BASE).unwrap();
        let ci = p.person(&crate::PersonId::parse("ci-deployer").unwrap()).unwrap();
        assert!(ci.is_service());
        assert_eq!(ci.owner().map(|o| o.as_str()), Some("alice"));
        assert!(ci.principals["aws_iam_role"].ends_with("role/ci-deployer"));
        assert_eq!(p.tokens[0].person.as_str(), "ci-deployer");
    }

    #[test]
    fn a_service_never_decides_and_tokens_name_the_right_kind() {
        let text = BASE
            .replace("approvers = [\"eng\"]", "approvers = [\"eng\", \"deployers\"]")
            .replace("service = \"ci-deployer\"", "person = \"ci-deployer\"")
            + "\n[tokens.b]\nservice = \"bob\"\nsha256 = \"3af3645f8d45bbf65decdb11954254d92c485a1e08f25f0ea824565eb95e6724\"";
        let errs = parse(&text).unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"roles.db.approvers"), "{errs:#?}");
        assert!(paths.contains(&"tokens.ci.person"), "{errs:#?}");
        assert!(paths.contains(&"tokens.b.service"), "{errs:#?}");
        let errs = parse(&BASE.replace("owner = \"alice\"", "owner = \"nobody\"")).unwrap_err();
        assert_eq!(errs[0].path, "services.ci-deployer.owner");
    }
}
