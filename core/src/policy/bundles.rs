//! Bundles: a name for roles that are usually needed together (`[bundles.incident] roles =
//! ["db-admin", "logs-read"]`), requested by that name like a role (`/elevate incident 2h …`).
//! A bundle is only a shorthand for typing the roles: each role keeps its own requesters,
//! approvers, thresholds, durations and rules, and the request is all or nothing (see
//! `service::batch`) unless the bundle says `partial = true`.

use super::{
    Policy, Role,
    parse::{ConfigError, de, table},
};
use crate::{RoleName, UserError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// At most this many roles in one request (typed or through a bundle): a card must stay
/// readable, and one click approves at most this many rows.
pub const MAX_ROLES: usize = 8;

/// A named set of roles, requested together.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub name: RoleName,
    pub description: Option<String>,
    pub roles: Vec<RoleName>,
    /// `partial = true`: granted in part. A role refused by a rule (or a lockdown) when it is
    /// asked for is left out and the others go ahead; a role denied, withdrawn or timed out
    /// before the grant does not end the others. Off by default: all or nothing.
    pub partial: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    roles: Vec<String>,
    description: Option<String>,
    #[serde(default)]
    partial: bool,
}

/// Parses `[bundles.*]`: every role must exist, at least two, no repeats, at most
/// [`MAX_ROLES`], and a bundle may not share its name with a role (one name, one meaning).
pub(super) fn parse_bundles(
    root: &toml::Table,
    roles: &BTreeMap<RoleName, Role>,
    errs: &mut Vec<ConfigError>,
) -> BTreeMap<RoleName, Bundle> {
    let mut out = BTreeMap::new();
    // Roles named in the file, parsed or not: a role with an error of its own is reported
    // there, not again as unknown here.
    let named = |n: &RoleName| {
        roles.contains_key(n)
            || root.get("roles").and_then(|r| r.as_table()).is_some_and(|t| t.contains_key(n.as_str()))
    };
    for (key, v) in table(root, "bundles", errs).into_iter().flatten() {
        let path = format!("bundles.{key}");
        let name = match RoleName::parse(key) {
            Ok(n) => n,
            Err(e) => {
                errs.push(ConfigError::new(&path, e.replace("role name", "bundle name")));
                continue;
            }
        };
        if named(&name) {
            errs.push(ConfigError::new(&path, format!("`{key}` is already a role; give the bundle another name")));
            continue;
        }
        let Some(raw) = de::<RawBundle>(&path, v, errs) else { continue };
        let mut members: Vec<RoleName> = Vec::new();
        for (i, r) in raw.roles.iter().enumerate() {
            let at = format!("{path}.roles[{i}]");
            match RoleName::parse(r) {
                Ok(n) if !named(&n) => {
                    errs.push(ConfigError::new(at, format!("unknown role `{r}` (define it under [roles.{r}])")))
                }
                Ok(n) if members.contains(&n) => errs.push(ConfigError::new(at, format!("`{r}` is listed twice"))),
                Ok(n) => members.push(n),
                Err(e) => errs.push(ConfigError::new(at, e)),
            }
        }
        if raw.roles.len() < 2 {
            errs.push(ConfigError::new(
                format!("{path}.roles"),
                "name at least two roles (one role is requested by its own name)",
            ));
        } else if raw.roles.len() > MAX_ROLES {
            errs.push(ConfigError::new(format!("{path}.roles"), format!("name at most {MAX_ROLES} roles")));
        }
        out.insert(name.clone(), Bundle { name, description: raw.description, roles: members, partial: raw.partial });
    }
    out
}

impl Policy {
    /// The bundle `what` names, when it names exactly one bundle that is granted in part
    /// (`partial = true`). Roles typed with commas, or a bundle mixed with other roles, are
    /// all or nothing.
    pub fn partial_bundle(&self, what: &str) -> Option<&Bundle> {
        let name = RoleName::parse(what.trim()).ok()?;
        self.bundles.get(&name).filter(|b| b.partial)
    }

    /// The roles `what` asks for: one role, a bundle's roles, or roles separated by commas
    /// (`db-admin,logs-read`; bundles may be mixed in). Each role once, in the order named.
    /// An unknown name is refused with the closest known one.
    pub fn resolve_roles(&self, what: &str) -> Result<Vec<&Role>, UserError> {
        let mut out: Vec<&Role> = Vec::new();
        let names: Vec<&str> = what.split(',').map(str::trim).collect();
        if names.iter().any(|n| n.is_empty()) {
            return Err(UserError::invalid(format!(
                "`{}` has an empty role name: separate roles with commas and no spaces, e.g. `db-admin,logs-read`.",
                what.chars().take(80).collect::<String>()
            )));
        }
        for name in names {
            let bundle = RoleName::parse(name).ok().and_then(|n| self.bundles.get(&n));
            let roles = match bundle {
                Some(b) => b.roles.iter().filter_map(|r| self.roles.get(r)).collect(),
                None => vec![self.role(name)?],
            };
            for r in roles {
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(r);
                }
            }
        }
        if out.len() > MAX_ROLES {
            return Err(UserError::invalid(format!(
                "That is {} roles; one request holds at most {MAX_ROLES}.",
                out.len()
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::{ConfigError, Policy, parse_policy};

    const BASE: &str = r#"
        [persons.alice]
        [persons.dana]
        [groups.eng]
        members = ["alice", "dana"]
        [roles.db]
        provider = "dry"
        default_duration = "1h"
        max_duration = "2h"
        requesters = ["eng"]
        approvers = ["eng"]
        [roles.logs]
        provider = "dry"
        default_duration = "1h"
        max_duration = "2h"
        requesters = ["eng"]
        approvers = ["eng"]
    "#;

    fn parse(extra: &str) -> Result<Policy, Vec<ConfigError>> {
        let t: toml::Table = toml::from_str(&format!("{BASE}\n{extra}")).unwrap();
        parse_policy(&t, &["dry".to_string()])
    }

    #[test]
    fn bundles_name_existing_roles_and_resolve_with_commas() {
        let p = parse("[bundles.incident]\nroles = [\"db\", \"logs\"]").unwrap();
        let names = |s: &str| p.resolve_roles(s).unwrap().iter().map(|r| r.name.to_string()).collect::<Vec<_>>();
        assert_eq!(names("incident"), ["db", "logs"]);
        assert_eq!(names("logs,db"), ["logs", "db"]);
        assert_eq!(names("db,incident"), ["db", "logs"], "each role once");
        assert!(p.resolve_roles("db,,logs").unwrap_err().message.contains("empty role name"));
        assert!(p.resolve_roles("db,lgos").unwrap_err().message.contains("Did you mean `logs`"));
        assert!(p.partial_bundle("incident").is_none(), "all or nothing unless it says so");
    }

    #[test]
    fn a_bundle_can_be_granted_in_part() {
        let p = parse("[bundles.incident]\nroles = [\"db\", \"logs\"]\npartial = true").unwrap();
        assert_eq!(p.partial_bundle("incident").map(|b| b.roles.len()), Some(2));
        assert!(p.partial_bundle("incident,db").is_none() && p.partial_bundle("db").is_none());
        let errs = parse("[bundles.incident]\nroles = [\"db\", \"logs\"]\npartial = \"yes\"").unwrap_err();
        assert!(errs[0].path.starts_with("bundles.incident"), "{errs:?}");
        assert!(errs[0].message.contains("partial") || errs[0].path.ends_with("partial"), "{errs:?}");
    }

    #[test]
    fn bad_bundles_are_reported_with_their_path() {
        let errs = parse("[bundles.db]\nroles = [\"db\", \"logs\"]\n[bundles.x]\nroles = [\"db\", \"nope\", \"db\"]\n[bundles.y]\nroles = [\"db\"]")
            .unwrap_err();
        let paths: Vec<&str> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["bundles.db", "bundles.x.roles[1]", "bundles.x.roles[2]", "bundles.y.roles"], "{errs:?}");
    }
}
