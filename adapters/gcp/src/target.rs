//! What a role's `target` table may say, who in Google a grant goes to, and the conditional
//! binding that carries a grant's window.

use chrono::{DateTime, SecondsFormat, Utc};
use elevate_core::ports::{GrantSpec, ProviderError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The principal key in a person's `[persons.X.principals]` table: an IAM member such as
/// `user:alice@example.com` or `serviceAccount:ci@p.iam.gserviceaccount.com`.
pub const PRINCIPAL_KEY: &str = "gcp_principal";

/// Conditions elevate writes are titled this plus the grant id (`elevate-grant-elevate-41`):
/// recognisable in the console and by `list`, and a retried grant finds its own binding.
pub const TITLE_PREFIX: &str = "elevate-grant-";

/// A role's `target`, one variant per kind of Google access.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// A role on a project, folder or organization, as a conditional role binding that Google
    /// stops honouring at the grant's end.
    IamRole {
        /// `projects/ID`, `folders/NUMBER` or `organizations/NUMBER`.
        resource: String,
        /// `roles/NAME`, or a custom role `projects/P/roles/NAME` / `organizations/N/roles/NAME`.
        role: String,
    },
    /// Membership of a Google group (Cloud Identity), with an expiry time Google enforces.
    GroupMembership {
        /// `groups/ID` or the group's email address.
        group: String,
    },
}

/// What a grant did in Google, kept as the grant's handle so that revoke undoes exactly that,
/// even if the person's principal in the policy file changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Applied {
    IamBinding {
        resource: String,
        role: String,
        member: String,
        /// The condition's title, which names the grant.
        title: String,
    },
    GroupMembership {
        /// `groups/ID` (an email in the target is resolved once, at grant).
        group: String,
        member: String,
        /// The person was already a member without an expiry when the grant came: that
        /// membership is not elevate's, and revoke leaves it.
        #[serde(default)]
        pre_existing: bool,
    },
}

impl Applied {
    pub fn describe(&self) -> String {
        match self {
            Applied::IamBinding { resource, role, member, .. } => format!("{role} on {resource} for {member}"),
            Applied::GroupMembership { group, member, .. } => format!("{member} in group {group}"),
        }
    }
}

fn is_id(s: &str, extra: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c))
}

/// `projects/ID`, `folders/N`, `organizations/N`.
fn check_resource(r: &str) -> Result<(), String> {
    let ok = match r.split_once('/') {
        Some(("projects", id)) => is_id(id, "-") && id.len() <= 30 && !id.starts_with('-'),
        Some(("folders" | "organizations", n)) => !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("gcp target iam_role: resource `{r}` is not projects/ID, folders/NUMBER or organizations/NUMBER"))
    }
}

/// IAM refuses conditions on these (and so on every binding elevate writes).
pub const BASIC_ROLES: [&str; 3] = ["roles/owner", "roles/editor", "roles/viewer"];

fn check_role(role: &str) -> Result<(), String> {
    if BASIC_ROLES.contains(&role) {
        return Err(format!(
            "gcp target iam_role: {role} is a basic role, which IAM does not allow in a conditional binding; use a predefined or custom role"
        ));
    }
    let parts: Vec<&str> = role.split('/').collect();
    let name_ok = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || "._".contains(c));
    let ok = match parts.as_slice() {
        ["roles", n] => name_ok(n),
        ["projects", p, "roles", n] => is_id(p, "-") && name_ok(n),
        ["organizations", o, "roles", n] => o.chars().all(|c| c.is_ascii_digit()) && !o.is_empty() && name_ok(n),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "gcp target iam_role: role `{role}` is not roles/NAME, projects/P/roles/NAME or organizations/N/roles/NAME"
        ))
    }
}

impl Target {
    /// Parses and checks a role's target, with messages that name the field at fault.
    pub fn parse(v: &Value) -> Result<Target, String> {
        let t: Target = serde_json::from_value(v.clone()).map_err(|e| {
            let kind = v.get("type").and_then(Value::as_str).unwrap_or("(no type)");
            format!("gcp target {kind}: {e} (type is one of iam_role, group_membership)")
        })?;
        match &t {
            Target::IamRole { resource, role } => {
                check_resource(resource)?;
                check_role(role)?;
            }
            Target::GroupMembership { group } => {
                let ok = match group.split_once('/') {
                    Some(("groups", id)) => !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()),
                    _ => is_email(group),
                };
                if !ok {
                    return Err(format!(
                        "gcp target group_membership: group `{group}` is not groups/ID or an email address"
                    ));
                }
            }
        }
        Ok(t)
    }

    /// The IAM member the grant goes to, from the person's principals.
    pub fn member(spec: &GrantSpec) -> Result<String, ProviderError> {
        let m = spec.principals.get(PRINCIPAL_KEY).ok_or_else(|| {
            ProviderError::permanent(
                "NoPrincipal",
                format!(
                    "{} has no `{PRINCIPAL_KEY}` in their principals (like \"user:alice@example.com\")",
                    spec.person
                ),
            )
        })?;
        check_member(m).map_err(|e| ProviderError::permanent("InvalidPrincipal", e))?;
        Ok(m.clone())
    }
}

fn is_email(s: &str) -> bool {
    s.split_once('@').is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !s.contains(char::is_whitespace))
}

/// An IAM member: `user:`, `group:` or `serviceAccount:` and an email, or a federated
/// `principal://` / `principalSet://` identifier.
pub fn check_member(m: &str) -> Result<(), String> {
    let ok = match m.split_once(':') {
        Some(("user" | "group" | "serviceAccount", email)) => is_email(email),
        Some(("principal" | "principalSet", rest)) => rest.starts_with("//") && rest.len() > 2,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{m}` is not an IAM member (user:EMAIL, group:EMAIL, serviceAccount:EMAIL, principal://…)"))
    }
}

/// The email address a group membership is keyed by (`user:a@x` → `a@x`).
pub fn member_email(member: &str) -> Result<String, ProviderError> {
    match member.split_once(':') {
        Some(("user" | "group" | "serviceAccount", email)) => Ok(email.to_string()),
        _ => Err(ProviderError::permanent(
            "InvalidPrincipal",
            format!("a group membership needs a user, group or service account, not `{member}`"),
        )),
    }
}

/// RFC 3339 in UTC to the second, as CEL's `timestamp()` and Cloud Identity read it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn title(grant_id: &str) -> String {
    format!("{TITLE_PREFIX}{grant_id}")
}

/// The binding for one grant: its own condition, so it can be found, changed and removed
/// without touching any other binding, and so that Google ends it by itself.
pub fn binding(spec: &GrantSpec, role: &str, member: &str) -> Value {
    json!({
        "role": role,
        "members": [member],
        "condition": {
            "title": title(&spec.grant_id),
            "description": format!(
                "elevate grant {} ({} for {}), ends {}",
                spec.grant_id, spec.role, spec.person, rfc3339(spec.expires_at)
            ),
            "expression": format!("request.time < timestamp(\"{}\")", rfc3339(spec.expires_at)),
        }
    })
}

/// The grant id of one of elevate's bindings, from its condition's title.
pub fn grant_of(binding: &Value) -> Option<&str> {
    binding["condition"]["title"].as_str()?.strip_prefix(TITLE_PREFIX).filter(|g| !g.is_empty())
}

/// When one of elevate's bindings stops granting: the timestamp in its expression.
pub fn ends_at(binding: &Value) -> Option<DateTime<Utc>> {
    let expr = binding["condition"]["expression"].as_str()?;
    let rest = expr.split_once("request.time < timestamp(\"")?.1;
    let ts = rest.split_once("\")")?.0;
    DateTime::parse_from_rfc3339(ts).ok().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_with_messages_naming_the_fault() {
        let ok = |v: Value| Target::parse(&v).unwrap();
        assert_eq!(
            ok(json!({"type": "iam_role", "resource": "projects/prod-1", "role": "roles/cloudsql.admin"})),
            Target::IamRole { resource: "projects/prod-1".into(), role: "roles/cloudsql.admin".into() }
        );
        ok(json!({"type": "iam_role", "resource": "folders/1234", "role": "organizations/99/roles/breakGlass"}));
        ok(json!({"type": "group_membership", "group": "oncall@example.com"}));
        ok(json!({"type": "group_membership", "group": "groups/01abcd"}));
        let err = |v: Value| Target::parse(&v).unwrap_err();
        assert!(
            err(json!({"type": "iam_role", "resource": "prod-1", "role": "roles/x"})).contains("resource `prod-1`")
        );
        assert!(err(json!({"type": "iam_role", "resource": "projects/p", "role": "owner"})).contains("role `owner`"));
        assert!(err(json!({"type": "iam_role", "resource": "projects/p"})).contains("role"));
        assert!(
            err(json!({"type": "iam_role", "resource": "projects/p", "role": "roles/owner"})).contains("basic role")
        );
        assert!(err(json!({"type": "group_membership", "group": "oncall"})).contains("group `oncall`"));
        assert!(err(json!({"type": "bucket"})).contains("iam_role, group_membership"));
        assert!(
            err(json!({"type": "iam_role", "resource": "projects/p", "role": "roles/x", "extra": 1})).contains("extra")
        );
    }

    #[test]
    fn members_must_be_iam_members() {
        assert!(check_member("user:alice@example.com").is_ok());
        assert!(check_member("serviceAccount:ci@p.iam.gserviceaccount.com").is_ok());
        assert!(check_member("alice@example.com").is_err());
        assert!(check_member("user:alice").is_err());
        assert_eq!(member_email("user:alice@example.com").unwrap(), "alice@example.com");
        assert!(member_email("principal://iam.googleapis.com/x").is_err());
    }

    #[test]
    fn a_binding_names_its_grant_and_ends_at_its_window() {
        let end: DateTime<Utc> = "2026-12-04T11:00:00Z".parse().unwrap();
        let spec = GrantSpec {
            grant_id: "elevate-41".into(),
            request: elevate_core::RequestId(41),
            role: elevate_core::RoleName::parse("prod-db").unwrap(),
            person: elevate_core::PersonId::parse("alice").unwrap(),
            principals: Default::default(),
            target: Value::Null,
            starts_at: end - chrono::Duration::hours(1),
            expires_at: end,
            handle: None,
        };
        let b = binding(&spec, "roles/cloudsql.admin", "user:alice@example.com");
        assert_eq!(b["condition"]["expression"], "request.time < timestamp(\"2026-12-04T11:00:00Z\")");
        assert_eq!(grant_of(&b), Some("elevate-41"));
        assert_eq!(ends_at(&b), Some(end));
        assert_eq!(grant_of(&json!({"role": "roles/viewer", "members": ["user:x@y.z"]})), None);
    }
}
